"""The hub's clock: Redis server time, read cheaply, and stream entry ids.

Every time stored or compared across processes is taken here. Processes on several machines
(or one process under a wrong clock) must agree on "now": a scheduler whose clock ran days
ahead once trimmed unprocessed raw events and forced online agents offline. So ``now_ms`` is
the local clock corrected by its offset to the Redis server's ``TIME``, measured when a Hub is
built and again every ``RESYNC_S`` seconds (one round trip per process per half-minute, not per
call). ``server_ms`` reads ``TIME`` itself for the decisions that delete data.
"""

from __future__ import annotations

import logging
import re
import threading
import time

import redis

log = logging.getLogger(__name__)
STREAM_ID = re.compile(r"\d{1,20}-\d{1,20}")  # a Redis stream entry id
RESYNC_S = 30.0
RETRY_S = 5.0  # after a failed sync (Redis away): keep the last offset, try again soon
MAX_RTT_NS = 250_000_000  # a slower TIME answer says little about the offset: not used
SKEW_WARN_MS = 2_000

_lock = threading.Lock()
_source: redis.Redis | None = None
_offset_ms = 0
_next_sync = 0.0


def follow(r: redis.Redis) -> None:
    """Take time from this Redis server from now on (each Hub calls this when it is built)."""
    global _source, _next_sync
    with _lock:
        _source, _next_sync = r, 0.0
    _sync()


def _sync() -> None:
    global _offset_ms, _next_sync
    r = _source
    if r is None:
        return
    try:
        t0 = time.time_ns()
        sec, usec = r.time()
        t1 = time.time_ns()
    except (redis.RedisError, OSError):
        _next_sync = time.monotonic() + RETRY_S
        return
    if t1 - t0 > MAX_RTT_NS:
        _next_sync = time.monotonic() + RETRY_S
        return
    offset = (int(sec) * 1000 + int(usec) // 1000) - (t0 + t1) // 2_000_000
    if abs(offset) > SKEW_WARN_MS and abs(offset - _offset_ms) > SKEW_WARN_MS:
        log.warning("this machine's clock is %+.1f s off the Redis server's; using Redis time",
                    -offset / 1000)
    _offset_ms = offset
    _next_sync = time.monotonic() + RESYNC_S


def now_ms() -> int:
    """Milliseconds since the epoch on the Redis server's clock (this process's own clock
    until a Hub is built)."""
    if _source is not None and time.monotonic() >= _next_sync:
        _sync()
    return time.time_ns() // 1_000_000 + _offset_ms


def offset_ms() -> int:
    """How far the Redis server's clock is ahead of this process's (for /healthz)."""
    return _offset_ms


def server_ms(r: redis.Redis) -> int:
    """The Redis server's ``TIME`` now, read directly (one round trip)."""
    sec, usec = r.time()
    return int(sec) * 1000 + int(usec) // 1000
