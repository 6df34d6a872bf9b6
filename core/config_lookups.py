"""The ``lookups:`` section of ``config/tongdai.yaml``: the business's own data beside a
conversation (orders, top-ups, account state), read from its HTTP endpoints.

Each lookup names an endpoint (URL template, method, headers whose secrets come from the
environment as ``${NAME}``, a timeout), the inputs it takes (the customer's phone, email or
platform id, a conversation attribute, a number found in the customer's messages by a pattern),
how its answer is shown (a JMESPath to the rows, fields with labels per language, status
value → colour) and ``tag_when`` rules on the answer. Fetching, the cache and the breaker:
core/workspace/lookups.py.
"""

from __future__ import annotations

import re
from typing import Any

from pydantic import Field, field_validator, model_validator

from tongdai.core import i18n
from tongdai.core.config_base import _Section, parse_duration

SOURCES = ("phone", "email", "platform_id", "attribute", "text")
COLOURS = ("green", "amber", "red", "blue", "grey")
_PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")
_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,31}$")


def _jmespath(v: str) -> str:
    import jmespath
    from jmespath.exceptions import JMESPathError

    try:
        jmespath.compile(v)
    except JMESPathError as exc:
        raise ValueError(f"{v!r} is not a JMESPath expression ({str(exc).splitlines()[0]}); "
                         "write it like orders[0].status (https://jmespath.org)") from None
    return v


def _labels(v: dict[str, str]) -> dict[str, str]:
    """Labels per console language (a file in webhooks/static/i18n)."""
    known = i18n.languages()
    bad = [k for k in v if k not in known]
    if bad:
        raise ValueError(f"labels for unknown language(s) {bad}: use {', '.join(known)}")
    return v


class LookupInput(_Section):
    # phone | email | platform_id (the customer's); attribute (a conversation attribute, e.g.
    # an order id the intake bot collected); text (the customer's latest messages, newest
    # first, searched with ``pattern``: its first group, else the whole match)
    source: str
    name: str = ""          # the attribute's name (source: attribute)
    pattern: str = ""       # a regular expression (source: text)
    optional: bool = False  # without it the lookup still runs (the placeholder is empty)
    # phone / email: only one the platform vouched for (not one typed into a message, which
    # anyone can type: with false, the agent sees the business's data for a typed number)
    verified: bool = False

    @model_validator(mode="after")
    def _check(self) -> LookupInput:
        if self.source not in SOURCES:
            raise ValueError(f"unknown source {self.source!r}: use {', '.join(SOURCES)}")
        if self.source == "attribute" and not self.name:
            raise ValueError("source: attribute needs name: (the attribute, e.g. order_id)")
        if self.source == "text":
            if not self.pattern:
                raise ValueError("source: text needs pattern: (e.g. '#(\\d{6,})')")
            try:
                re.compile(self.pattern)
            except re.error as exc:
                raise ValueError(f"pattern {self.pattern!r} is not a regular expression "
                                 f"({exc})") from None
        return self


class LookupField(_Section):
    path: str                        # JMESPath within one row, e.g. status or amount
    label: dict[str, str] = {}       # per language: {vi: "Trạng thái", en: Status, zh: 状态}
    colours: dict[str, str] = {}     # value → green | amber | red | blue | grey

    _p = field_validator("path")(classmethod(lambda cls, v: _jmespath(v)))
    _l = field_validator("label")(classmethod(lambda cls, v: _labels(v)))

    @field_validator("colours")
    @classmethod
    def _colours(cls, v: dict[str, str]) -> dict[str, str]:
        bad = sorted({c for c in v.values() if c not in COLOURS})
        if bad:
            raise ValueError(f"unknown colour(s) {bad}: use {', '.join(COLOURS)}")
        return {str(k): c for k, c in v.items()}


class TagWhen(_Section):
    """A rule on the answer: when ``field`` (JMESPath over the whole answer) equals ``equals``
    (or is one of ``in``) on a conversation with one of ``tags_any`` (any, when empty), the
    conversation gets ``tag`` and the agent sees canned reply ``suggest_canned`` offered."""

    field: str
    equals: Any = None
    in_: list[Any] = Field([], alias="in")
    tags_any: list[str] = []
    tag: str = ""
    suggest_canned: str = ""    # a canned reply's shortcut, e.g. /bank_delay
    # What a bot may tell the customer, per language; {value} is the field's value, {name}
    # an input's (e.g. {order_id}). For the self-service bot: lookup_rules.answer().
    answer: dict[str, str] = {}

    _f = field_validator("field")(classmethod(lambda cls, v: _jmespath(v)))
    _a = field_validator("answer")(classmethod(lambda cls, v: _labels(v)))

    @model_validator(mode="after")
    def _check(self) -> TagWhen:
        if self.equals is None and not self.in_:
            raise ValueError("a tag_when rule needs equals: or in:")
        if not self.tag and not self.suggest_canned and not self.answer:
            raise ValueError("a tag_when rule needs tag:, suggest_canned: or answer: (what it "
                             "does)")
        if self.suggest_canned and not self.suggest_canned.startswith("/"):
            raise ValueError(f"suggest_canned {self.suggest_canned!r} is a canned reply's "
                             "shortcut: write it with its /, e.g. /bank_delay")
        return self

    def values(self) -> list[str]:
        return [str(x) for x in ([self.equals] if self.equals is not None else self.in_)]


class Breaker(_Section):
    failures: int = Field(3, ge=1, le=100)  # this many failures in a row open the circuit ...
    cooldown: float = 30.0                  # ... for this long; then one call tries again

    _d = field_validator("cooldown", mode="before")(classmethod(lambda cls, v: parse_duration(v)))


class Lookup(_Section):
    title: dict[str, str] = {}      # per language; default: the lookup's name
    url: str                        # {input} placeholders, URL-encoded when filled in
    method: str = "GET"
    headers: dict[str, str] = {}    # secrets as ${ENV_NAME}: never written in this file
    body: dict[str, Any] | None = None  # POST: a JSON object; "{input}" strings filled in
    timeout: float = 3.0
    inputs: dict[str, LookupInput] = Field(min_length=1)
    not_found: list[int] = [404]    # HTTP statuses that mean "nothing for this customer"
    rows: str = "@"                 # JMESPath to the list (or one object) to show
    fields: list[LookupField] = Field(min_length=1)
    max_rows: int = Field(5, ge=1, le=50)
    cache: float = 60.0             # a fresh answer is served this long (encrypted in Redis)
    failure_cache: float = 10.0     # a failure is shown this long before another try
    breaker: Breaker = Breaker()
    tag_when: list[TagWhen] = []

    _d = field_validator("timeout", "cache", "failure_cache", mode="before")(
        classmethod(lambda cls, v: parse_duration(v)))
    _r = field_validator("rows")(classmethod(lambda cls, v: _jmespath(v)))
    _t = field_validator("title")(classmethod(lambda cls, v: _labels(v)))

    @field_validator("method")
    @classmethod
    def _method(cls, v: str) -> str:
        if v.upper() not in ("GET", "POST"):
            raise ValueError("method must be GET or POST")
        return v.upper()

    @field_validator("timeout")
    @classmethod
    def _timeout(cls, v: float) -> float:
        if not 0.05 <= v <= 30:
            raise ValueError(f"{v:g}s: a lookup's timeout is between 50ms and 30s (an agent "
                             "is waiting; 2s-5s is usual)")
        return v

    @field_validator("cache")
    @classmethod
    def _cache(cls, v: float) -> float:
        if not 1 <= v <= 3600:
            raise ValueError(f"{v:g}s: cache between 1s and 1h (the business's data is kept "
                             "no longer than this; 60s is usual)")
        return v

    @model_validator(mode="after")
    def _check(self) -> Lookup:
        if not re.match(r"^https?://[^/{}\s]+", self.url):
            raise ValueError(f"url {self.url!r} must start with http:// or https:// and a host "
                             "(placeholders go in the path or the query)")
        used = set(_PLACEHOLDER.findall(self.url))
        used |= {m for v in _strings(self.body) for m in _PLACEHOLDER.findall(v)}
        unknown = sorted(used - set(self.inputs))
        if unknown:
            raise ValueError(f"placeholder(s) {', '.join('{' + u + '}' for u in unknown)} are "
                             f"not inputs; declare them under inputs: (have "
                             f"{', '.join(sorted(self.inputs))})")
        if self.body is not None and self.method != "POST":
            raise ValueError("a body needs method: POST")
        for i, rule in enumerate(self.tag_when):
            for lang, text in rule.answer.items():
                bad = sorted(set(_PLACEHOLDER.findall(text)) - set(self.inputs) - {"value"})
                if bad:
                    raise ValueError(f"tag_when[{i}].answer.{lang}: {{{bad[0]}}} is neither "
                                     "{value} nor an input; use {value} or one of "
                                     + ", ".join("{" + n + "}" for n in sorted(self.inputs)))
        return self


def _strings(node: Any) -> list[str]:
    if isinstance(node, dict):
        return [s for v in node.values() for s in _strings(v)]
    if isinstance(node, list):
        return [s for v in node for s in _strings(v)]
    return [node] if isinstance(node, str) else []


def check_names(lookups: dict[str, Lookup]) -> list[tuple[str, str, str]]:
    """(key, problem, fix) for lookup names that cannot be part of a Redis key or a URL."""
    return [(f"lookups.{n}", "a lookup's name must be 1-32 lower-case letters, digits, - or _",
             "rename it (e.g. orders, topups, account)") for n in lookups if not _NAME.match(n)]
