"""Presence: whether a user is online, away or offline.

Two sources: the user's own toggle (``PUT /api/v1/presence``) and activity (every signed-in API
request). Activity brings a user back online unless they chose away or offline themselves; the
scheduler turns users away after ``console.away_after`` without activity and offline after
``console.offline_after`` (see ``core/assignment.py``, which also hands an offline agent's
conversations back to the queue).

State: ``td:presence`` (user -> ``status|how|since ms``, ``how`` = manual for the user's own
away/offline) and ``td:presence:seen`` (user -> last activity, ms). Every change goes through
``core/lua/presence.lua``, which writes ``presence.changed`` on the feed in the same step.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass

from tongdai.core.clock import now_ms
from tongdai.core.errors import BadRequest, NotFound
from tongdai.core.hub import Hub

STATUSES = ("online", "away", "offline")
# Activity is written at most this often per user and process: a console polling every few
# seconds costs one Redis call per user per half minute, not one per request.
TOUCH_EVERY_S = 30.0
_touched: weakref.WeakKeyDictionary[Hub, dict[str, int]] = weakref.WeakKeyDictionary()


@dataclass(frozen=True)
class Presence:
    user: str
    status: str                 # online | away | offline (never seen: offline)
    manual: bool                # the user chose away/offline: activity does not undo it
    since_ms: int | None        # when the status last changed
    last_seen_ms: int | None    # last activity (a request, the toggle)

    def to_api(self) -> dict:
        return {"user": self.user, "status": self.status, "manual": self.manual,
                "since_ts": self.since_ms, "last_seen_ts": self.last_seen_ms}


def _parse(raw: bytes | None) -> tuple[str, str, int | None]:
    """(status, how, since) of a stored value; never seen = offline."""
    if not raw:
        return "offline", "auto", None
    status, how, since = (raw.decode().split("|") + ["", ""])[:3]
    return status or "offline", how or "auto", int(since) if since else None


def _run(hub: Hub, name: str, mode: str, status: str, now: int, expected: str = ""
         ) -> tuple[int, str]:
    k = hub.keys
    res = hub.scripts.presence(keys=[k.presence(), k.presence_seen(), k.user(name)],
                               args=[name, mode, status, now, expected])
    return int(res[0]), res[1].decode() if isinstance(res[1], bytes) else str(res[1])


def touch(hub: Hub, name: str, now: int | None = None) -> bool:
    """Record activity of user ``name`` (cheap: see ``TOUCH_EVERY_S``; a name that is not a
    user, such as an integration's token, is ignored). True when it brought them online."""
    now = now if now is not None else now_ms()
    seen = _touched.setdefault(hub, {})
    last = seen.get(name)
    if last is not None and 0 <= now - last < TOUCH_EVERY_S * 1000:
        return False
    seen[name] = now
    return _run(hub, name, "touch", "online", now)[0] == 1


def set_status(hub: Hub, name: str, status: str, now: int | None = None) -> tuple[bool, str]:
    """The user's own toggle: (changed, previous status)."""
    if status not in STATUSES:
        raise BadRequest(f"status must be one of {', '.join(STATUSES)}")
    code, old = _run(hub, name, "set", status, now if now is not None else now_ms())
    if code == -1:
        raise NotFound(f"no user {name!r}: only users have a presence")
    return code == 1, old


def get_many(hub: Hub, names: list[str]) -> dict[str, Presence]:
    """Presence of each user (two Redis calls however many)."""
    if not names:
        return {}
    pipe = hub.redis.pipeline(transaction=False)
    pipe.hmget(hub.keys.presence(), names)
    pipe.zmscore(hub.keys.presence_seen(), names)
    raws, seens = pipe.execute()
    out = {}
    for name, raw, seen in zip(names, raws, seens, strict=True):
        status, how, since = _parse(raw)
        out[name] = Presence(name, status, how == "manual", since,
                             int(seen) if seen is not None else None)
    return out


def get(hub: Hub, name: str) -> Presence:
    return get_many(hub, [name])[name]


def timeouts(hub: Hub, now: int, away_after_s: float, offline_after_s: float
             ) -> list[tuple[str, str]]:
    """Turn users without activity away (``away_after_s``) or offline (``offline_after_s``);
    returns the (user, new status) changes. Costs one read of the inactive users."""
    k = hub.keys
    away_at, offline_at = now - int(away_after_s * 1000), now - int(offline_after_s * 1000)
    rows = hub.redis.zrangebyscore(k.presence_seen(), "-inf", away_at, withscores=True)
    if not rows:
        return []
    names = [n.decode() for n, _ in rows]
    raws = hub.redis.hmget(k.presence(), names)
    changes = []
    for (name, (_, seen), raw) in zip(names, rows, raws, strict=True):
        status, _how, _ = _parse(raw)
        if seen <= offline_at and status != "offline":
            target = "offline"
        elif status == "online":
            target = "away"
        else:
            continue
        code, _ = _run(hub, name, "timeout", target, now, raw.decode() if raw else "")
        if code == 1:
            changes.append((name, target))
    return changes
