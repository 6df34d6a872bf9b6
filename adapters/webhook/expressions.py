"""JMESPath expressions of a declarative channel, compiled once at start-up.

``jmespath`` parses each expression (and says what is wrong with one that does not parse);
its tree is then turned into Python closures with the meaning of jmespath's interpreter, so an
event's fields cost a few dict lookups each, not a tree walk per call. Node types a mapping
rarely needs (slices, ``&expr`` references) stay with jmespath's own ``search``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jmespath
from jmespath.exceptions import JMESPathError
from jmespath.functions import Functions

Getter = Callable[[Any], Any]


class ExpressionError(ValueError):
    """An expression that does not compile; the message says where it breaks."""


def check(expr: str) -> str:
    """``expr`` when it compiles, else ``ExpressionError`` with JMESPath's own reason."""
    try:
        jmespath.compile(expr)
    except JMESPathError as exc:
        why = str(exc).splitlines()[0].split(": ", 1)[-1].rstrip(":. ") or "not understood"
        at = getattr(exc, "lex_position", None)
        where = f" at character {at + 1}" if isinstance(at, int) else ""
        raise ExpressionError(f"{expr!r} is not a valid JMESPath expression: "
                              f"{why.lower()}{where}") from None
    return expr


def _false(v: Any) -> bool:
    """JMESPath's falsehood: null, false, and empty strings, lists and objects (not 0)."""
    return v is None or v is False or v == "" or v == [] or v == {}


def _number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def _equals(x: Any, y: Any) -> bool:
    # JSON's true is not 1 (Python's is): JMESPath compares them unequal
    if (_number(x) and x in (0, 1) and isinstance(y, bool)) or (
            _number(y) and y in (0, 1) and isinstance(x, bool)):
        return False
    return x == y


_ORDER = {"lt": lambda a, b: a < b, "lte": lambda a, b: a <= b,
          "gt": lambda a, b: a > b, "gte": lambda a, b: a >= b}
_FUNCTIONS = Functions()


class _Unsupported(Exception):
    """A node the closure compiler leaves to jmespath's own interpreter."""


def _compile(node: dict[str, Any]) -> Getter:
    """A closure with the meaning of jmespath's TreeInterpreter for ``node`` (the node types a
    mapping uses); ``_Unsupported`` for the others (slices, exprefs...)."""
    t, kids = node["type"], node.get("children") or []
    if t == "field":
        k = node["value"]
        return lambda v: v.get(k) if isinstance(v, dict) else None
    if t in ("subexpression", "index_expression", "pipe"):
        steps = [_compile(c) for c in kids]

        def chain(v: Any) -> Any:
            for step in steps:
                v = step(v)
            return v

        return chain
    if t in ("current", "identity"):
        return lambda v: v
    if t == "literal":
        value = node["value"]
        return lambda v: value
    if t == "index":
        i = node["value"]

        def index(v: Any) -> Any:
            if not isinstance(v, list):
                return None
            try:
                return v[i]
            except IndexError:
                return None

        return index
    if t in ("or_expression", "and_expression"):
        left, right = _compile(kids[0]), _compile(kids[1])
        if t == "or_expression":
            return lambda v: right(v) if _false(m := left(v)) else m
        return lambda v: m if _false(m := left(v)) else right(v)
    if t == "not_expression":
        inner = _compile(kids[0])
        return lambda v: False if _number(r := inner(v)) and r == 0 else not r
    if t == "comparator":
        left, right, op = _compile(kids[0]), _compile(kids[1]), node["value"]
        if op == "eq":
            return lambda v: _equals(left(v), right(v))
        if op == "ne":
            return lambda v: not _equals(left(v), right(v))
        order = _ORDER[op]

        def compare(v: Any) -> Any:
            a, b = left(v), right(v)
            # numbers with numbers, text with text (jmespath 1.1); anything else: null
            both = (_number(a) and _number(b)) or (isinstance(a, str) and isinstance(b, str))
            return order(a, b) if both else None

        return compare
    if t in ("projection", "filter_projection"):
        base, each = _compile(kids[0]), _compile(kids[1])
        keep = _compile(kids[2]) if t == "filter_projection" else None

        def project(v: Any) -> Any:
            items = base(v)
            if not isinstance(items, list):
                return None
            out = []
            for item in items:
                if keep is not None and _false(keep(item)):
                    continue
                if (r := each(item)) is not None:
                    out.append(r)
            return out

        return project
    if t == "flatten":
        base = _compile(kids[0])

        def flatten(v: Any) -> Any:
            items = base(v)
            if not isinstance(items, list):
                return None
            out: list[Any] = []
            for item in items:
                out.extend(item) if isinstance(item, list) else out.append(item)
            return out

        return flatten
    if t == "multi_select_dict":
        pairs = [(c["value"], _compile(c["children"][0])) for c in kids]
        return lambda v: None if v is None else {k: f(v) for k, f in pairs}
    if t == "multi_select_list":
        items = [_compile(c) for c in kids]
        return lambda v: None if v is None else [f(v) for f in items]
    if t == "function_expression" and not any(c["type"] == "expref" for c in kids):
        name, args = node["value"], [_compile(c) for c in kids]
        return lambda v: _FUNCTIONS.call_function(name, [a(v) for a in args])
    raise _Unsupported(t)


class EvaluationError(ValueError):
    """An expression that failed on a value (a function given the wrong type: ``join`` on a
    null); the message names the expression."""


def _raises(node: dict[str, Any]) -> bool:
    """Whether evaluating ``node`` can raise: only function calls can (on a wrong type)."""
    return node["type"] == "function_expression" or any(
        _raises(c) for c in node.get("children") or [] if isinstance(c, dict))


def getter(expr: str) -> Getter:
    """A function evaluating ``expr`` on a parsed JSON value: a closure per node, built here
    once (jmespath's interpreter walks the tree on every call: 3-4x slower on a mapping's
    expressions), or jmespath's own search for the rare node types left to it. An expression
    with function calls raises ``EvaluationError`` naming itself when a call fails."""
    compiled = jmespath.compile(check(expr))
    try:
        run = _compile(compiled.parsed)
    except _Unsupported:
        run = compiled.search
    if not _raises(compiled.parsed):
        return run

    def guarded(value: Any) -> Any:
        try:
            return run(value)
        except JMESPathError as exc:
            raise EvaluationError(f"{expr!r} failed: {str(exc).splitlines()[0]}") from None

    return guarded


def truthy(value: Any) -> bool:
    """JMESPath's truth: false, null, empty strings, lists and objects are false (0 is true)."""
    return not _false(value)
