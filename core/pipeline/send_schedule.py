"""Sends that wait: retries, rate-limit slots, sends parked behind a slow channel.

A waiting send is a member of one sorted set, ``td:send:due``, scored by the time (ms, the
hub's clock) from which it may run; nothing ever sleeps in a sender, so a platform's back-off
never holds up another channel's replies. Every sender process runs ``run_promoter`` in a
thread: it moves due members onto their RQ queue in a WATCH/MULTI transaction with their
removal, so each is enqueued exactly once however many senders promote, and a sender that
dies between the two leaves the member in place.

Why not RQ's ``enqueue_in``: RQ's scheduler stores whole seconds and polls once a second, so
a 429 asking for 2 s was retried anywhere between 1 s (too early: refused again) and 3.x s
later. Here a send runs at most ``POLL_S`` (plus the queue's pick-up) after its time.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from dataclasses import dataclass, replace

import redis
from rq import Queue

from tongdai.core.clock import now_ms
from tongdai.core.hub import Hub
from tongdai.core.keys import SEND_LANES
from tongdai.core.pipeline import channel_gate

log = logging.getLogger(__name__)
SEND_JOB = "tongdai.worker.jobs.send"
POLL_S = 0.05
PROMOTE_BATCH = 500
JOB_TTLS = {"result_ttl": 3600, "failure_ttl": 7 * 86400}


@dataclass(frozen=True, slots=True)
class Waiting:
    """One send that waits: the lane (``replies``: agents'; ``background``: automatic) it goes
    back to, the message, the attempt it will be, and flags: ``r`` it holds a rate-limit slot
    reserved for its due time (it must not reserve another), ``u`` an earlier try got no
    answer after the platform had the request (docs/decisions.md, "Replies first")."""

    lane: str
    conv_id: str
    message_id: str
    attempt: int
    flags: str = ""

    @property
    def member(self) -> str:
        """The due set's member: ``{lane}:{conv}:{msg}:{attempt}:{flags}``."""
        return f"{self.lane}:{self.conv_id}:{self.message_id}:{self.attempt}:{self.flags}"

    @classmethod
    def parse(cls, member: str) -> Waiting:
        lane, conv_id, message_id, attempt, flags = member.split(":")
        if lane not in SEND_LANES:
            raise ValueError(f"unknown lane {lane!r}")
        return cls(lane, conv_id, message_id, int(attempt), flags)

    def with_flag(self, flag: str) -> Waiting:
        return self if flag in self.flags else replace(self, flags=self.flags + flag)

    def without_flag(self, flag: str) -> Waiting:
        return replace(self, flags=self.flags.replace(flag, ""))


def schedule(hub: Hub, waiting: Waiting, due_ms: int) -> None:
    """Run ``waiting`` from ``due_ms`` on (the hub's clock)."""
    hub.redis.zadd(hub.keys.sends_due(), {waiting.member: due_ms})


def enqueue_now(queue: Queue, waiting: Waiting,
                pipeline: redis.client.Pipeline | None = None) -> None:
    """Queue the send job of ``waiting`` on ``queue`` (its lane's)."""
    queue.enqueue(SEND_JOB, waiting.conv_id, waiting.message_id, waiting.attempt, waiting.flags,
                  description=f"send message {waiting.message_id} (try {waiting.attempt})",
                  pipeline=pipeline, **JOB_TTLS)


def promote_due(hub: Hub, client: redis.Redis | None = None) -> int:
    """Queue every send due now; returns how many. Safe to run in any number of processes."""
    r = client or hub.redis
    key = hub.keys.sends_due()
    queues = {lane: Queue(name, connection=r) for lane, name in SEND_LANES.items()}
    for _ in range(10):  # a WatchError: the set changed meanwhile (a send was scheduled)
        with r.pipeline() as pipe:
            try:
                pipe.watch(key)
                members = pipe.zrangebyscore(key, "-inf", now_ms(), start=0, num=PROMOTE_BATCH)
                if not members:
                    return 0
                pipe.multi()
                for raw in members:
                    try:
                        waiting = Waiting.parse(raw.decode())
                    except ValueError:  # written by a newer or older hub: say so, drop it
                        log.error("dropping unreadable waiting send %r", raw)
                        continue
                    enqueue_now(queues[waiting.lane], waiting, pipeline=pipe)
                pipe.zrem(key, *members)
                pipe.execute()
                return len(members)
            except redis.WatchError:
                continue
    return 0


def next_due_ms(hub: Hub, client: redis.Redis | None = None) -> int | None:
    """When the earliest waiting send is due, or None when nothing waits."""
    first = (client or hub.redis).zrange(hub.keys.sends_due(), 0, 0, withscores=True)
    return int(first[0][1]) if first else None


def run_promoter(hub: Hub, stop: threading.Event, lanes: list[str]) -> None:
    """Promote due sends until ``stop`` is set (a thread of every sender process), and say
    that this sender serves ``lanes`` (``channel_gate`` counts live senders). It has a
    connection pool of its own: RQ forks a work horse per job, and a child must never find a
    pool lock held by this thread."""
    pool = hub.redis.connection_pool
    r = redis.Redis(connection_pool=redis.ConnectionPool(
        connection_class=pool.connection_class, **pool.connection_kwargs))
    sender, beat = f"{socket.gethostname()}:{os.getpid()}", 0.0
    while not stop.is_set():
        try:
            if time.monotonic() >= beat:
                channel_gate.heartbeat(hub, sender, lanes, client=r)
                beat = time.monotonic() + channel_gate.HEARTBEAT_S
            while promote_due(hub, client=r) == PROMOTE_BATCH:
                pass  # a backlog: keep going before sleeping
            first = next_due_ms(hub, client=r)
            wait = POLL_S if first is None else min(POLL_S, max(0.0, (first - now_ms()) / 1000))
        except redis.RedisError:  # Redis restarting: the senders wait for it anyway
            log.warning("promoting due sends failed; trying again", exc_info=True)
            wait = 1.0
        stop.wait(max(wait, 0.005))
    try:  # a sender that stops is no longer counted as room for other channels
        for lane in lanes:
            r.zrem(hub.keys.senders(lane), sender)
    except redis.RedisError:
        pass  # forgotten after channel_gate.LIVE_MS anyway
    r.close()
