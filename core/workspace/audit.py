"""The audit log: who did what, when, to what (assignments, merges, resolves, exports,
erasures, settings, users, log-ins). One Redis stream, newest last; entries are never edited.

An entry is ``{actor, action, target, details}``; details never hold customer data in clear
(ids, not names or addresses), so the log itself needs no encryption.
"""

from __future__ import annotations

from typing import Any

import orjson

from tongdai.core.clock import STREAM_ID, now_ms
from tongdai.core.errors import BadRequest
from tongdai.core.hub import Hub

AUDIT_MAXLEN = 1_000_000


def record(hub: Hub, actor: str, action: str, target: str = "",
           details: dict[str, Any] | None = None, pipe=None) -> None:
    """Append an entry (inside ``pipe`` when given, so it lands with the change)."""
    entry = {"actor": actor, "action": action, "target": target,
             "ts": now_ms(),
             "details": orjson.dumps(details or {})}
    (pipe if pipe is not None else hub.redis).xadd(hub.keys.audit(), entry,
                                                   maxlen=AUDIT_MAXLEN, approximate=True)


def entries(hub: Hub, before: str | None = None, limit: int = 50, actor: str | None = None,
            action: str | None = None, target: str | None = None
            ) -> tuple[list[dict[str, Any]], str | None]:
    """Newest first; ``before`` is the previous page's ``next_cursor``. Filters match exactly
    (``action`` also as a prefix ending in '.', e.g. ``conversation.``)."""
    if before is not None and not STREAM_ID.fullmatch(before):
        raise BadRequest("cursor must be a next_cursor this list gave")
    out: list[dict[str, Any]] = []
    end = f"({before}" if before else "+"
    while len(out) < limit:
        batch = hub.redis.xrevrange(hub.keys.audit(), max=end, min="-", count=max(limit, 100))
        if not batch:
            return out, None
        for eid, f in batch:
            e = {k.decode(): v.decode() for k, v in f.items()}
            end = f"({eid.decode()}"
            if actor and e["actor"] != actor:
                continue
            if action and not (e["action"] == action or
                               (action.endswith(".") and e["action"].startswith(action))):
                continue
            if target and e["target"] != target:
                continue
            out.append({"id": eid.decode(), "actor": e["actor"], "action": e["action"],
                        "target": e["target"], "ts": int(e["ts"]),
                        "details": orjson.loads(e["details"])})
            if len(out) == limit:
                return out, eid.decode()
    return out, None
