"""Reading the fields of a Zalo event: ids and timestamps arrive as strings, numbers may be
strings, a business card hides JSON inside a string, and the docs' samples are not always well
formed."""

from __future__ import annotations

from typing import Any

import orjson

from tongdai.core.errors import PayloadError

JSON = dict[str, Any]


def _ts_ms(raw: Any, received_ms: int) -> int:
    """Zalo's string timestamp in ms. The docs' own samples carry truncated ones
    ("154390853474", 12 digits): anything that is not a plausible time is replaced by ours."""
    try:
        v = int(str(raw))
    except (TypeError, ValueError):
        return received_ms
    if 10**12 <= v < 10**14:
        return v
    if 10**9 <= v < 10**10:  # seconds
        return v * 1000
    return received_ms


def _id_of(event: JSON, field: str) -> str:
    value = _maybe_id(event, field)
    if value is None:
        raise PayloadError(f"Zalo {event['event_name']} lacks {field}.id")
    return value


def _maybe_id(event: JSON, field: str) -> str | None:
    """``event[field].id`` when there is one (for the OA's side, whose absence is no error)."""
    obj = event.get(field)
    return _plain_id(obj.get("id") if isinstance(obj, dict) else None)


def _plain_id(value: Any) -> str | None:
    if value is None or isinstance(value, dict | list | bool) or str(value) == "":
        return None
    return str(value)


def _float(v: Any) -> float | None:
    try:
        return float(v)
    except (TypeError, ValueError):
        return None


def _int(v: Any) -> int | None:
    try:
        return int(v)
    except (TypeError, ValueError):
        return None


def _json_object(text: Any) -> JSON:
    """Business cards carry their phone inside a JSON string (``payload.description``)."""
    if not isinstance(text, str):
        return {}
    try:
        obj = orjson.loads(text)
    except orjson.JSONDecodeError:
        return {}
    return obj if isinstance(obj, dict) else {}


def _pick(d: JSON) -> JSON:
    return {k: v for k, v in d.items() if v not in (None, "")}
