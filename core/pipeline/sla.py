"""Response-time targets (SLA): when an agent owes the customer an answer, and breaches.

A customer's message that arrives while no wait is running starts one: the conversation gets
``sla_due`` = the message's time + ``sla.first_response`` (no agent has answered this
conversation yet) or + ``sla.next_response`` (one has), per queue (``sla.queues``). Later
messages of the same wait keep the first due time. An agent's reply ends the wait (bots'
acknowledgements and notes do not); resolving the conversation drops it.

Where it is kept: the conversation hash (``sla_due``, ``agent_reply`` ms of the last agent
reply, ``sla_breached`` = the due time that was reported breached) and the sorted set
``td:sla:due`` (conversation → due ms), so "due within the hour" and "breached" are one
ZRANGEBYSCORE. Both are written atomically with the message: the ingest script starts the
wait (the targets ride in as one argument, :func:`lua_targets`: the script needs them for the
conversation's own queue, which only it knows), ``create_outbound.lua`` ends it.

The ``sla`` tick reports each breach once: ``conversation.sla_breached`` on the feed and the
mark on the conversation, written together in one optimistic transaction, so two schedulers
(or a re-run) never report one breach twice.
"""

from __future__ import annotations

import logging

import redis

from tongdai.core.clock import now_ms
from tongdai.core.config import SlaSection
from tongdai.core.hub import Hub
from tongdai.core.pipeline import feed

log = logging.getLogger(__name__)
SEP, RS = "\x1f", "\x1e"
CHUNK = 500


def targets(cfg: SlaSection, queue: str) -> tuple[float | None, float | None]:
    """(first response, next response) in seconds for ``queue``; None: no target. A queue's
    override replaces only the targets it names (``next_response: null`` turns one off)."""
    first, later = cfg.first_response, cfg.next_response
    o = cfg.queues.get(queue)
    if o is not None:
        if "first_response" in o.model_fields_set:
            first = o.first_response
        if "next_response" in o.model_fields_set:
            later = o.next_response
    return first, later


def lua_targets(cfg: SlaSection) -> str:
    """The targets as the ingest script's argument (ms): ``first␟next`` for every queue, then
    ``␞queue␟first␟next`` per override; an empty target is none."""
    def ms(v: float | None) -> str:
        return "" if v is None else str(int(v * 1000))

    out = ms(cfg.first_response) + SEP + ms(cfg.next_response)
    for q in cfg.queues:
        first, later = targets(cfg, q)
        out += RS + q + SEP + ms(first) + SEP + ms(later)
    return out


def due_between(hub: Hub, lo: float | str = "-inf", hi: float | str = "+inf",
                limit: int = 1000) -> list[tuple[str, int]]:
    """(conversation, due ms) of running waits due in [lo, hi], soonest first."""
    rows = hub.redis.zrange(hub.keys.sla_due(), lo, hi, byscore=True, offset=0, num=limit,
                            withscores=True)
    return [(m.decode(), int(s)) for m, s in rows]


def _report(hub: Hub, conv_id: str, now: int) -> bool:
    """Mark one conversation's breach and publish it, unless it is reported already, no longer
    due or answered meanwhile (WATCH: the mark and the event land together or not at all)."""
    k = hub.keys.conversation(conv_id)
    with hub.redis.pipeline(transaction=True) as pipe:
        try:
            pipe.watch(k)
            due, breached, status, queue, replied = pipe.hmget(
                k, ["sla_due", "sla_breached", "status", "queue", "agent_reply"])
            if due is None or status in (None, b"resolved"):
                # answered, resolved or deleted by a path that left the index behind
                pipe.multi()
                pipe.zrem(hub.keys.sla_due(), conv_id)
                if status == b"resolved":
                    pipe.hdel(k, "sla_due")
                pipe.execute()
                return False
            if int(due) > now or breached == due:
                return False
            pipe.multi()
            pipe.hset(k, "sla_breached", due)
            feed.publish(hub, {"type": "conversation.sla_breached", "conversation_id": conv_id,
                               "queue": queue.decode() if queue else None,
                               "due_ts": int(due),
                               "target": "next_response" if replied else "first_response",
                               "ts": now}, pipe)
            pipe.execute()
            return True
        except redis.WatchError:
            return False  # it changed under us: the next tick looks again


@feed.tick("sla", 15)
def report_breaches(hub: Hub, now: int | None = None) -> int:
    """Report every breach not reported yet. Returns how many were reported.

    Cost: the breached entries of ``td:sla:due`` (one HMGET each, pipelined, per tick); a
    transaction only for the few not reported yet."""
    now = now or now_ms()
    reported, offset = 0, 0
    while True:
        rows = hub.redis.zrange(hub.keys.sla_due(), "-inf", now, byscore=True, offset=offset,
                                num=CHUNK)
        if not rows:
            return reported
        pipe = hub.redis.pipeline(transaction=False)
        for m in rows:
            pipe.hmget(hub.keys.conversation(m.decode()), ["sla_due", "sla_breached"])
        for m, (due, breached) in zip(rows, pipe.execute()):
            if due is None or due != breached:
                reported += _report(hub, m.decode(), now)
        if len(rows) < CHUNK:
            return reported
        offset += CHUNK
