"""How far behind the hub is, read from Redis: job queues, the raw log, the change feed's
reactors. ``/healthz`` and ``/metrics`` both show these; each call is a handful of commands
(no scan of a backlog: counts of what lies unread are capped on Redis 6.2, which has no
XINFO ``lag``)."""

from __future__ import annotations

from dataclasses import dataclass

import redis
from rq import Queue, Worker
from rq.job import Job
from rq.registry import FailedJobRegistry
from rq.utils import utcparse

from tongdai.core import config_watch
from tongdai.core.clock import now_ms
from tongdai.core.hub import Hub
from tongdai.core.keys import (
    BACKGROUND_QUEUE,
    HOOKS_QUEUE,
    INGEST_QUEUE,
    LEGACY_OUTBOUND_QUEUE,
    RAW_GROUP,
    REPLIES_QUEUE,
)
from tongdai.core.pipeline import feed

# Every RQ queue, and the ``tongdai worker --queues`` name that serves it.
JOB_QUEUES = {INGEST_QUEUE: "ingest", REPLIES_QUEUE: "replies", BACKGROUND_QUEUE: "background",
              HOOKS_QUEUE: "hooks", LEGACY_OUTBOUND_QUEUE: "background"}
# Queues that need a live worker (the legacy one drains with background's).
SERVED = (INGEST_QUEUE, REPLIES_QUEUE, BACKGROUND_QUEUE, HOOKS_QUEUE)
COUNT_CAP = 1000  # unread entries counted one by one at most (Redis < 7)


@dataclass(slots=True)
class JobQueue:
    name: str
    depth: int
    oldest_age_s: float  # the job waiting longest (0 when none waits)
    failed: int
    workers: int


@dataclass(slots=True)
class StreamLag:
    behind: int        # entries not yet read by the group (capped at COUNT_CAP on Redis < 7)
    pending: int       # read, not yet acknowledged
    oldest_age_s: float  # the oldest entry not yet processed (0 when none)


def _ms(entry_id: bytes | str) -> int:
    s = entry_id.decode() if isinstance(entry_id, bytes) else entry_id
    return int(s.partition("-")[0])


def job_queues(hub: Hub, now: int | None = None) -> list[JobQueue]:
    """Every RQ queue: depth, the oldest waiting job's age, failed jobs, live workers."""
    now = now or now_ms()
    r = hub.redis
    serving: dict[str, int] = {}
    for w in Worker.all(connection=r):
        for name in w.queue_names():
            serving[name] = serving.get(name, 0) + 1
    queues = [Queue(name, connection=r) for name in JOB_QUEUES]
    pipe = r.pipeline(transaction=False)
    for q in queues:
        pipe.llen(q.key)
        pipe.lindex(q.key, 0)
        pipe.zcard(FailedJobRegistry(q.name, connection=r).key)
    got = pipe.execute()
    firsts = [got[i * 3 + 1] for i in range(len(queues))]
    pipe = r.pipeline(transaction=False)
    for jid in firsts:
        pipe.hget(Job.key_for(jid.decode()), "enqueued_at") if jid else pipe.echo("")
    enqueued = pipe.execute()
    out = []
    for i, q in enumerate(queues):
        age = 0.0
        if firsts[i] and enqueued[i]:
            age = max(0.0, (now - utcparse(enqueued[i].decode()).timestamp() * 1000) / 1000)
        out.append(JobQueue(q.name, got[i * 3], round(age, 3), got[i * 3 + 2],
                            serving.get(q.name, 0)))
    return out


def stream_lag(hub: Hub, key: str, group: str, now: int | None = None) -> StreamLag:
    """How far consumer group ``group`` of stream ``key`` is behind its stream."""
    now = now or now_ms()
    r = hub.redis
    try:
        info = next((g for g in r.xinfo_groups(key)
                     if g["name"] in (group, group.encode())), None)
    except redis.ResponseError:  # no stream yet
        return StreamLag(0, 0, 0.0)
    if info is None:
        return StreamLag(0, 0, 0.0)
    last = info["last-delivered-id"]
    last = last.decode() if isinstance(last, bytes) else last
    lag = info.get("lag")
    pipe = r.pipeline(transaction=False)
    pipe.xrange(key, min=f"({last}", count=1 if lag is not None else COUNT_CAP)
    if info["pending"]:
        pipe.xpending(key, group)
    got = pipe.execute()
    unread = got[0]
    behind = int(lag) if lag is not None else len(unread)
    oldest = [_ms(unread[0][0])] if unread else []
    if info["pending"] and got[1]["min"] is not None:
        oldest.append(_ms(got[1]["min"]))
    age = max(0.0, (now - min(oldest)) / 1000) if oldest else 0.0
    return StreamLag(behind, info["pending"], round(age, 3))


def raw_lag(hub: Hub, now: int | None = None) -> StreamLag:
    """The raw log's ingest backlog over every shard: the age of the oldest raw event not yet
    processed is the ingest lag."""
    now = now or now_ms()
    total = StreamLag(0, 0, 0.0)
    for s in range(hub.shards):
        one = stream_lag(hub, hub.keys.raw(s), RAW_GROUP, now)
        total.behind += one.behind
        total.pending += one.pending
        total.oldest_age_s = max(total.oldest_age_s, one.oldest_age_s)
    return total


def reactor_lags(hub: Hub, now: int | None = None) -> dict[str, StreamLag]:
    """Each reactor's consumer group on the change feed: how far behind it is."""
    now = now or now_ms()
    return {name: stream_lag(hub, hub.keys.feed(), name, now) for name in feed.load_reactors()}


def processes(hub: Hub) -> dict[str, int]:
    """Running hub processes by role (``web``, ``reactor``, ``scheduler``, ``worker:ingest``,
    ...), from the records every long-running process keeps (core/config_watch.py): one that
    stops removes its own, a killed one's goes after ``STALE_S``."""
    out: dict[str, int] = {}
    for name in config_watch.processes(hub.redis, hub.keys.config_processes()):
        role = name.partition("@")[0]
        out[role] = out.get(role, 0) + 1
    return out
