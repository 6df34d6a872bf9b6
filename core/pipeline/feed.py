"""The change feed: one Redis stream of everything that happens to conversations.

Every change (a message stored or updated, a status, an assignment, a note, a merge) is one
entry ``{"e": json}`` on ``td:feed``, written in the same script or transaction as the change
itself, so the feed never misses or invents one. Two kinds of readers:

- live clients (the console's Server-Sent Events) read from an entry id onwards: a client that
  reconnects with ``Last-Event-ID`` gets everything it missed, as long as the feed still holds it
  (``FEED_MAXLEN`` entries);
- reactors (auto-assignment, outgoing webhooks, the Telegram staff group, agents' mail) each
  read through their own consumer group: at-least-once, resumed after a crash, one reactor's
  failure never holds back another. Reactors must be idempotent.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import orjson
import redis

from tongdai.core.clock import now_ms
from tongdai.core.hub import Hub
from tongdai.core.keys import FEED_MAXLEN

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FeedEvent:
    id: str  # the stream entry id: what SSE sends as ``id:`` and takes back as Last-Event-ID
    data: dict[str, Any]

    @property
    def type(self) -> str:
        return self.data.get("type", "")


def publish(hub: Hub, event: dict[str, Any], pipe: redis.client.Pipeline | None = None) -> None:
    """Append one event (inside ``pipe`` when given, so it lands with the change it reports)."""
    event.setdefault("ts", now_ms())
    target = pipe if pipe is not None else hub.redis
    target.xadd(hub.keys.feed(), {"e": orjson.dumps(event)}, maxlen=FEED_MAXLEN,
                approximate=True)


def decode(entries: Iterable) -> list[FeedEvent]:
    """Feed entries as read from Redis (XREAD/XRANGE) → events; unreadable ones skipped."""
    out = []
    for eid, fields in entries:
        try:
            data = orjson.loads(fields[b"e"])
        except (KeyError, orjson.JSONDecodeError):
            continue
        out.append(FeedEvent(eid.decode() if isinstance(eid, bytes) else eid, data))
    return out


def last_id(hub: Hub) -> str:
    """The newest entry's id ("0-0" for an empty feed): where a new client starts."""
    info = hub.redis.xrevrange(hub.keys.feed(), count=1)
    return info[0][0].decode() if info else "0-0"


def read_after(hub: Hub, after: str, count: int = 200, block_ms: int | None = None
               ) -> list[FeedEvent]:
    """Events after entry id ``after`` (oldest first), waiting up to ``block_ms`` for one."""
    res = hub.redis.xread({hub.keys.feed(): after}, count=count, block=block_ms)
    return decode(res[0][1]) if res else []


def oldest_id(hub: Hub) -> str | None:
    first = hub.redis.xrange(hub.keys.feed(), count=1)
    return first[0][0].decode() if first else None


# -- reactors ---------------------------------------------------------------------------------
Handler = Callable[[Hub, list[FeedEvent]], None]
REACTORS: dict[str, Handler] = {}
# A failed batch is retried one event at a time (run_once); this many failures in a row end
# that round: an outage, not one bad event, and each try may wait for a timeout.
FAILURES_IN_A_ROW = 3
# Periodic work (snoozes waking up, presence timing out, ...): name -> (function, seconds).
# ``tongdai scheduler`` runs each when due; they must be idempotent (several schedulers may run).
TICKS: dict[str, tuple[Callable[[Hub], object], float]] = {}
def tick(name: str, every_s: float) -> Callable:
    """Register ``fn(hub)`` to run every ``every_s`` seconds in ``tongdai scheduler``."""
    def wrap(fn: Callable[[Hub], object]) -> Callable[[Hub], object]:
        TICKS[name] = (fn, every_s)
        return fn
    return wrap


def act_once(hub: Hub, key: str, act: Callable[[], object], what: str, hold_ms: int,
             keep_s: int) -> bool:
    """Run ``act`` (a send to the outside world) unless marker ``key`` says it ran: reactors
    see an event at least once, a customer or an agent must get its mail or post once.
    Returns False when it had run.

    The marker reads ``sending:<owner>`` while one consumer acts (another consumer that
    reclaimed the same event gets a retryable DeliveryError and tries again later) and
    ``sent`` for ``keep_s`` once ``act`` returned. When ``act`` raises, the owner's marker is
    released and the error goes on; a crash leaves it to expire after ``hold_ms``, and the
    event, still pending, is acted on then."""
    from tongdai.core.errors import DeliveryError

    owner = f"sending:{secrets.token_hex(8)}"
    if not hub.redis.set(key, owner, nx=True, px=hold_ms):
        if (hub.redis.get(key) or b"").startswith(b"sending"):
            raise DeliveryError(f"{what} is being sent", retryable=True, code="busy")
        return False
    try:
        act()
    except BaseException:
        hub.scripts.release_lock(keys=[key], args=[owner])
        raise
    hub.redis.set(key, "sent", ex=keep_s)
    return True


def load_reactors() -> dict[str, Handler]:
    """The registered reactors. Layers above the pipeline register on import (importing
    ``tongdai.core.workspace`` registers the workspace's); a process that imported none has
    nothing to react with, which is a wiring mistake, not an empty feed: say so."""
    if not REACTORS:
        raise RuntimeError("no feed reactors are registered: import tongdai.core.workspace "
                           "(every process entry point does) before starting reactors")
    return REACTORS


def reactor(name: str) -> Callable[[Handler], Handler]:
    """Register a function that handles batches of feed events in consumer group ``name``."""
    def wrap(fn: Handler) -> Handler:
        REACTORS[name] = fn
        return fn
    return wrap


def ensure_group(hub: Hub, name: str) -> None:
    """Create reactor ``name``'s consumer group; a new reactor starts at the feed's end."""
    try:
        hub.redis.xgroup_create(hub.keys.feed(), name, id="$", mkstream=True)
    except redis.ResponseError as exc:
        if "BUSYGROUP" not in str(exc):
            raise


def run_once(hub: Hub, name: str, handler: Handler, consumer: str, count: int = 200,
             block_ms: int | None = None, claim_idle_ms: int = 30_000) -> int:
    """One round for reactor ``name``: events a dead consumer left (idle ``claim_idle_ms``),
    then new ones; acknowledged only after ``handler`` returns (a redelivered batch that fails
    again, one event at a time). Returns events handled."""
    k = hub.keys.feed()
    events = _claim(hub, k, name, consumer, claim_idle_ms, count)
    again = bool(events)  # (a batch failing for the first time simply stays pending)
    if not events:
        res = hub.redis.xreadgroup(name, consumer, {k: ">"}, count=count, block=block_ms)
        events = decode(res[0][1]) if res else []
    if not events:
        return 0
    try:
        handler(hub, events)
    except Exception:
        if len(events) == 1 or not again:
            raise
        # one bad event must not hold back its batch (retried together, failing together,
        # forever): failing again, one at a time, each acknowledged once handled; the bad one
        # stays pending.
        # Several failures in a row look like an outage (a relay, an API): the rest wait too.
        failed, in_a_row = None, 0
        for e in events:
            if in_a_row == FAILURES_IN_A_ROW:
                break
            try:
                handler(hub, [e])
            except Exception as exc:
                log.exception("reactor %s failed on feed entry %s (%s)", name, e.id, e.type)
                failed, in_a_row = failed or exc, in_a_row + 1
                continue
            in_a_row = 0
            hub.redis.xack(k, name, e.id)
        if failed is not None:
            raise failed
        return len(events)
    hub.redis.xack(k, name, *[e.id for e in events])
    return len(events)


def _claim(hub: Hub, k: str, name: str, consumer: str, idle_ms: int, count: int
           ) -> list[FeedEvent]:
    """Pending events a dead (or failed) consumer left idle ``idle_ms``, now ours. Entries the
    feed trimmed meanwhile are acknowledged and skipped: Redis 6.2 keeps them pending and
    XAUTOCLAIM answers them as nil entries without their ids (so JUSTID, then the entries)."""
    ids = hub.redis.xautoclaim(k, name, consumer, idle_ms, "0-0", count=count, justid=True)
    if not ids:
        return []
    pipe = hub.redis.pipeline(transaction=False)
    for i in ids:
        pipe.xrange(k, i, i)
    found = pipe.execute()
    gone = [i for i, rows in zip(ids, found, strict=True) if not rows]
    if gone:
        log.warning("reactor %s: %d feed entries were trimmed before it handled them",
                    name, len(gone))
        hub.redis.xack(k, name, *gone)
    return decode([rows[0] for rows in found if rows])


def run_pending(hub: Hub, names: Iterable[str] | None = None, consumer: str = "once") -> int:
    """Let every (or the named) reactor handle everything waiting now (tests, one-off runs)."""
    total = 0
    load_reactors()
    for name in list(names or REACTORS):
        ensure_group(hub, name)
        while n := run_once(hub, name, REACTORS[name], consumer, claim_idle_ms=0):
            total += n
    return total
