"""The raw event log: every inbound request, durably in Redis before the webhook answers.

One Redis stream per shard (``Keys.raw``), read by the ``ingest`` consumer group. Entries stay
after they are processed (XACK only marks them done) until the retention period trims them, so
``tongdai replay --since 2h`` can run them again.

The webhook's only write is one XADD. Ingest runs as ``ingest.consumers`` long-lived RQ jobs
(*ingest loops*), each blocked on every shard at once (XREADGROUP BLOCK) and processing what
arrives in batches: an event is picked up within milliseconds, and one RQ job handles
thousands of events instead of one. Each loop holds a *slot* (a short-lived key it refreshes);
the janitor keeps every slot filled, so a killed worker's loop is replaced within seconds and
its unacknowledged batch is claimed by the next loop.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import zlib
from dataclasses import dataclass

import orjson
import redis
from rq import Queue

from tongdai.core import clock
from tongdai.core.clock import STREAM_ID, now_ms
from tongdai.core.hub import Hub
from tongdai.core.keys import INGEST_QUEUE, RAW_GROUP
from tongdai.core.models import RawEvent

log = logging.getLogger(__name__)
INGEST_JOB = "tongdai.worker.jobs.ingest_loop"
SLOT_TTL_S = 5  # refreshed every read (≤ 0.5 s); a killed loop frees its slot within this
BLOCK_MS = 500


def consumer_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def shard_of(hub: Hub, body: bytes) -> int:
    """The same body always lands in the same shard (redeliveries are drained in order)."""
    return zlib.crc32(body) % hub.shards


def ensure_groups(hub: Hub) -> None:
    """Create every shard's stream and consumer group, and the change feed's reactor groups
    (idempotent). Every process runs this at start, so a reactor's group exists before the
    first event it must see — not only once the reactor process gets going."""
    for s in range(hub.shards):
        try:
            hub.redis.xgroup_create(hub.keys.raw(s), RAW_GROUP, id="0", mkstream=True)
        except redis.ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise
    from tongdai.core.pipeline import feed

    for name in feed.load_reactors():
        feed.ensure_group(hub, name)


def _sealed_fields(hub: Hub, raw: RawEvent) -> dict[str, bytes | str | int]:
    """A raw event's stream fields, body and headers encrypted before they are written:
    bodies carry phones and emails, and an append-only file keeps whatever was once clear."""
    k = hub.keyring
    return {"c": raw.channel_id, "b": k.encrypt_bytes(raw.body, b"raw"),
            "h": k.encrypt_bytes(orjson.dumps(raw.headers), b"raw-headers"),
            "t": raw.received_ts_ms}


def xadd_args(hub: Hub, raw: RawEvent) -> list:
    """The one XADD that stores ``raw`` (its shard, its sealed fields), for any client."""
    args: list = ["XADD", hub.keys.raw(shard_of(hub, raw.body)), "*"]
    for name, value in _sealed_fields(hub, raw).items():
        args += [name, value]
    return args


def append(hub: Hub, raw: RawEvent) -> str:
    """Store a raw request: the webhook's one and only write."""
    return hub.redis.execute_command(*xadd_args(hub, raw)).decode()


class Appender:
    """``append`` on one connection per web thread, skipping the pool on every request.

    redis-py's pool checkout, release and metrics hooks cost as much CPU as the XADD itself
    (103 → 51 µs per append, measured in ``docs/decisions.md``). A failed connection falls back
    to the pooled client, which reconnects and retries as usual.
    """

    def __init__(self, hub: Hub) -> None:
        self.hub = hub
        self._local = threading.local()

    def append(self, raw: RawEvent) -> str:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._local.conn = self.hub.redis.connection_pool.make_connection()
        try:
            conn.send_command(*xadd_args(self.hub, raw))
            return conn.read_response().decode()
        except (redis.ConnectionError, redis.TimeoutError, OSError):
            conn.disconnect()  # the next request reconnects
            return append(self.hub, raw)


def _decode(hub: Hub, entry_id: bytes | str, fields: dict[bytes, bytes]) -> RawEvent:
    k = hub.keyring
    return RawEvent(
        channel_id=fields[b"c"].decode(),
        body=k.decrypt_bytes(fields[b"b"], b"raw"),
        headers=orjson.loads(k.decrypt_bytes(fields.get(b"h", b"{}"), b"raw-headers")),
        received_ts_ms=int(fields[b"t"]),
        id=entry_id.decode() if isinstance(entry_id, bytes) else entry_id,
    )


@dataclass(slots=True)
class Batch:
    shard: int
    events: list[RawEvent]


def read(hub: Hub, consumer: str, count: int, block_ms: int | None = None) -> list[Batch]:
    """New entries of every shard for this consumer, waiting up to ``block_ms`` for some.

    They stay pending (owned by this consumer) until acked.
    """
    streams = {hub.keys.raw(s): ">" for s in range(hub.shards)}
    resp = hub.redis.xreadgroup(RAW_GROUP, consumer, streams, count=count, block=block_ms)
    shard_of_key = {hub.keys.raw(s).encode(): s for s in range(hub.shards)}
    return [Batch(shard_of_key[key], [_decode(hub, i, f) for i, f in entries if f])
            for key, entries in resp or () if entries]


def claim_stale(hub: Hub, shard: int, consumer: str, count: int) -> Batch:
    """Entries a dead worker read but never acked (idle longer than ``ingest.claim_idle``)."""
    idle_ms = int(hub.config.hub.ingest.claim_idle * 1000)
    resp = hub.redis.xautoclaim(hub.keys.raw(shard), RAW_GROUP, consumer, idle_ms, "0-0",
                                count=count)
    entries = resp[1]
    return Batch(shard, [_decode(hub, i, f) for i, f in entries if f])


def ack(hub: Hub, shard: int, ids: list[str]) -> None:
    if ids:
        hub.redis.xack(hub.keys.raw(shard), RAW_GROUP, *ids)


def enqueue_ingest_loops(hub: Hub, n: int) -> None:
    q = Queue(INGEST_QUEUE, connection=hub.redis)
    for _ in range(n):
        q.enqueue(INGEST_JOB, job_timeout=hub.config.hub.ingest.loop_time_box + 300,
                  result_ttl=0, failure_ttl=86400, description="ingest loop")


def take_slot(hub: Hub, owner: str) -> int | None:
    """A free ingest slot for a starting loop, or None when all are taken."""
    for slot in range(hub.config.hub.ingest.consumers):
        if hub.redis.set(hub.keys.ingest_slot(slot), owner, nx=True, ex=SLOT_TTL_S):
            return slot
    return None


def keep_slot(hub: Hub, slot: int, owner: str) -> None:
    hub.redis.set(hub.keys.ingest_slot(slot), owner, ex=SLOT_TTL_S)


def free_slot(hub: Hub, slot: int, owner: str) -> None:
    hub.scripts.release_lock(keys=[hub.keys.ingest_slot(slot)], args=[owner])


def ensure_ingest_loops(hub: Hub) -> int:
    """Enqueue ingest loops for empty slots not already covered by queued jobs (the janitor's
    tick: a killed worker's loop is replaced, and the new loop claims its unacknowledged
    batch). Returns how many it enqueued."""
    consumers = hub.config.hub.ingest.consumers
    pipe = hub.redis.pipeline(transaction=False)
    for slot in range(consumers):
        pipe.exists(hub.keys.ingest_slot(slot))
    alive = sum(pipe.execute())
    queued = Queue(INGEST_QUEUE, connection=hub.redis).count
    missing = consumers - alive - queued
    if missing > 0:
        enqueue_ingest_loops(hub, missing)
    return max(missing, 0)


def backlog(hub: Hub, shard: int) -> tuple[int, int, int]:
    """(undelivered, pending, oldest pending idle ms) of a shard."""
    key = hub.keys.raw(shard)
    try:
        groups = hub.redis.xinfo_groups(key)
    except redis.ResponseError:
        return 0, 0, 0
    group = next((g for g in groups if g["name"] in (RAW_GROUP, RAW_GROUP.encode())), None)
    if group is None:
        return 0, 0, 0
    last = group["last-delivered-id"]
    last = last.decode() if isinstance(last, bytes) else last
    # Redis 6.2 has no "lag": count what lies after the group's last delivered id.
    undelivered = len(hub.redis.xrange(key, min=f"({last}", count=10_000))
    pending, idle = group["pending"], 0
    if pending:
        oldest = hub.redis.xpending_range(key, RAW_GROUP, min="-", max="+", count=1)
        idle = oldest[0]["time_since_delivered"] if oldest else 0
    return undelivered, pending, idle


def trim(hub: Hub) -> int:
    """Drop raw entries older than ``ingest.raw_retention`` that every consumer group is done
    with. Returns how many went.

    Two guards, because a trim that removes an unprocessed event loses it silently (it was
    answered 200): the age is counted on the Redis server's clock, never this process's; and
    the cut never passes the oldest entry a group still needs — one pending (delivered, not
    acknowledged) or not yet delivered. Ingest stopped for longer than the retention keeps
    its whole backlog."""
    retention_ms = int(hub.config.hub.ingest.raw_retention * 1000)
    by_age = (clock.server_ms(hub.redis) - retention_ms, 0)
    removed = 0
    for s in range(hub.shards):
        key = hub.keys.raw(s)
        cut = min(by_age, *_still_needed(hub, key))
        if cut <= (0, 0):
            continue
        removed += hub.redis.execute_command("XTRIM", key, "MINID", f"{cut[0]}-{cut[1]}")
    return removed


def _id(value: bytes | str) -> tuple[int, int]:
    ms, _, seq = (value.decode() if isinstance(value, bytes) else value).partition("-")
    return int(ms), int(seq or 0)


def _still_needed(hub: Hub, key: str) -> list[tuple[int, int]]:
    """For each consumer group of stream ``key``: the lowest entry id it still needs (its
    oldest pending entry, else the one after its last delivered). A group's needs only move
    forward, so a cut computed from these and applied a moment later is still safe."""
    try:
        groups = hub.redis.xinfo_groups(key)
    except redis.ResponseError:  # no stream yet
        return []
    floors = []
    for g in groups:
        name = g["name"].decode() if isinstance(g["name"], bytes) else g["name"]
        ms, seq = _id(g["last-delivered-id"])
        floor = (ms, seq + 1)
        if g["pending"]:
            oldest = hub.redis.xpending(key, name)["min"]
            if oldest is not None:
                floor = min(floor, _id(oldest))
        floors.append(floor)
    return floors


def since(hub: Hub, since_ms: int, count: int = 1000):
    """Every retained raw event received since ``since_ms``, shard by shard, in batches."""
    for s in range(hub.shards):
        start = f"{since_ms}-0"
        while True:
            entries = hub.redis.xrange(hub.keys.raw(s), min=start, count=count)
            if not entries:
                break
            yield Batch(s, [_decode(hub, i, f) for i, f in entries])
            if len(entries) < count:
                break
            start = "(" + entries[-1][0].decode()


# -- dead letters ------------------------------------------------------------------------------
def dead_letter(pipe_or_redis, hub: Hub, raw: RawEvent, error: str) -> None:
    """Keep an event we could not process, with why, for an admin to see and replay."""
    pipe_or_redis.xadd(hub.keys.deadletter(), {
        "raw_id": raw.id or "", **_sealed_fields(hub, raw), "error": error[:2000],
        "at": now_ms()})


def dead_letters(hub: Hub, count: int = 100) -> list[tuple[str, RawEvent, str, int]]:
    out = []
    for i, f in hub.redis.xrange(hub.keys.deadletter(), count=count):
        raw = _decode(hub, f.get(b"raw_id") or i, f)
        out.append((i.decode(), raw, f[b"error"].decode(), int(f[b"at"])))
    return out


def dead_letter_get(hub: Hub, dl_id: str) -> tuple[RawEvent, str] | None:
    if not STREAM_ID.fullmatch(dl_id):
        return None
    entries = hub.redis.xrange(hub.keys.deadletter(), min=dl_id, max=dl_id)
    if not entries:
        return None
    i, f = entries[0]
    return _decode(hub, f.get(b"raw_id") or i, f), f[b"error"].decode()


def dead_letter_delete(hub: Hub, dl_id: str) -> None:
    hub.redis.xdel(hub.keys.deadletter(), dl_id)
