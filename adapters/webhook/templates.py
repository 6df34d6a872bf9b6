"""Templates of a declarative channel: ``{name}`` placeholders in URLs, headers, JSON bodies
and the signed string, checked against the names each place offers at start-up.

A JSON body template is the body itself (a YAML mapping): every string in it is a template.
A string that is exactly one placeholder takes the value as it is (a number stays a number);
when that value is missing (no reply-to id) the key is left out of its object.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import quote

PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z0-9_-]+)?)\}")
_MISSING = object()


def placeholders(template: Any) -> Iterator[tuple[str, str]]:
    """(where, name) of every placeholder in a string or a JSON-like structure."""
    if isinstance(template, str):
        for m in PLACEHOLDER.finditer(template):
            yield "", m.group(1)
    elif isinstance(template, dict):
        for k, v in template.items():
            for where, name in placeholders(v):
                yield f".{k}{where}", name
    elif isinstance(template, list):
        for i, v in enumerate(template):
            for where, name in placeholders(v):
                yield f"[{i}]{where}", name


def unknown(template: Any, known: frozenset[str], prefixes: frozenset[str] = frozenset()
            ) -> tuple[str, str] | None:
    """The first (where, name) whose name is neither in ``known`` nor ``prefix.anything``."""
    for where, name in placeholders(template):
        if name not in known and name.partition(".")[0] not in prefixes:
            return where, name
    return None


class Text:
    """A string template, split once into literal and placeholder parts."""

    __slots__ = ("parts", "whole")

    def __init__(self, template: str) -> None:
        self.parts: list[tuple[bool, str]] = []
        pos = 0
        for m in PLACEHOLDER.finditer(template):
            if m.start() > pos:
                self.parts.append((False, template[pos:m.start()]))
            self.parts.append((True, m.group(1)))
            pos = m.end()
        if pos < len(template):
            self.parts.append((False, template[pos:]))
        # the whole string is one placeholder: its value keeps its JSON type
        self.whole = self.parts[0][1] if len(self.parts) == 1 and self.parts[0][0] else None

    def render(self, values: dict[str, Any], escape: Callable[[str], str] | None = None) -> str:
        """The text with every placeholder replaced (a missing value as an empty string)."""
        out = []
        for is_name, part in self.parts:
            if not is_name:
                out.append(part)
                continue
            value = values.get(part)
            text = "" if value is None else str(value)
            out.append(escape(text) if escape else text)
        return "".join(out)


def url_part(text: str) -> str:
    """A value placed into a URL: every reserved character escaped."""
    return quote(text, safe="")


class Body:
    """A JSON body template, compiled once: strings become ``Text``s."""

    def __init__(self, template: Any) -> None:
        self.tree = self._compile(template)

    def _compile(self, node: Any) -> Any:
        if isinstance(node, str):
            return Text(node)
        if isinstance(node, dict):
            return {k: self._compile(v) for k, v in node.items()}
        if isinstance(node, list):
            return [self._compile(v) for v in node]
        return node

    def render(self, values: dict[str, Any]) -> Any:
        """The body as a JSON-ready value."""
        return self._render(self.tree, values)

    def _render(self, node: Any, values: dict[str, Any]) -> Any:
        if isinstance(node, Text):
            if node.whole is not None:
                value = values.get(node.whole)
                return _MISSING if value is None else value
            return node.render(values)
        if isinstance(node, dict):
            out = {}
            for k, v in node.items():
                value = self._render(v, values)
                if value is not _MISSING:
                    out[k] = value
            return out
        if isinstance(node, list):
            return [v for v in (self._render(x, values) for x in node) if v is not _MISSING]
        return node
