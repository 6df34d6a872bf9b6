"""The resolution target: from the customer's first message to "resolved", counted in the
policy's working hours, with the clock stopped while the team waits on the customer.

Unlike the response waits (written by the ingest script with the message), this clock moves
on the change feed, in the ``sla-resolution`` reactor: a customer's message starts it (or
resumes it with the working time that was left), an agent's reply pauses it (keeping what is
left), resolving stops it and counts the outcome. Each change is applied once and in feed
order: the conversation keeps the id of the last feed entry applied (``res_ev``), and an
entry at or before it is skipped, so a replayed batch changes nothing.

Kept on the conversation: ``res_due`` (ms, while running) or ``res_left`` (ms of working time,
while paused), ``res_policy``, ``res_ev``, ``res_breached``; ``td:sla:resolve`` indexes the
running clocks by due time for the ``sla`` tick, which reports a passed one once as
``conversation.sla_breached`` with ``target: resolution``.
"""

from __future__ import annotations

import logging

import redis

from tongdai.core.clock import now_ms
from tongdai.core.errors import NotFound
from tongdai.core.hub import Hub
from tongdai.core.models import AuthorKind, Direction
from tongdai.core.pipeline import feed, sla, store

log = logging.getLogger(__name__)
FIELDS = ["res_due", "res_left", "res_policy", "res_ev", "res_breached", "status", "channel",
          "queue", "priority"]


def _eid(s: str | bytes | None) -> tuple[int, int]:
    if not s:
        return (0, 0)
    a, _, b = (s.decode() if isinstance(s, bytes) else s).partition("-")
    return int(a), int(b or 0)


def _kind(hub: Hub, ev: feed.FeedEvent) -> str | None:
    """"customer", "agent" or None (anything else: bots, notes, echoes, system lines)."""
    if ev.type == "conversation.resolved":
        return "resolved"
    if ev.type != "message.created":
        return None
    try:
        msg = store.get_message(hub, str(ev.data["conversation_id"]), str(ev.data["message_id"]))
    except (KeyError, NotFound):
        return None
    if msg.direction == Direction.IN and msg.author_kind == AuthorKind.CUSTOMER:
        return "customer"
    if msg.direction == Direction.OUT and msg.author_kind == AuthorKind.AGENT:
        return "agent"
    return None


def apply(hub: Hub, ev: feed.FeedEvent) -> None:
    kind = _kind(hub, ev)
    if kind is None:
        return
    conv_id = str(ev.data["conversation_id"])
    ck, keys = hub.keys.conversation(conv_id), hub.keys
    ts = int(ev.data.get("ts") or now_ms())

    def change(pipe: redis.client.Pipeline) -> None:
        h = dict(zip(FIELDS, pipe.hmget(ck, FIELDS)))
        if h["status"] is None or _eid(ev.id) <= _eid(h["res_ev"]):
            return  # gone, or applied already
        due, left = h["res_due"], h["res_left"]
        plan = sla.plan(hub)
        pipe.multi()
        pipe.hset(ck, "res_ev", ev.id)
        if kind == "customer" and due is None and h["status"] != b"resolved":
            if left is None:  # a new clock
                name, cal, target = plan.resolution((h["channel"] or b"").decode(),
                                                    int(h["priority"] or 0),
                                                    (h["queue"] or b"").decode())
                if target is None:
                    return
                new_due = cal.add(ts, target)
                pipe.hset(ck, "res_policy", name)
            else:  # resumed with what was left
                cal = _calendar(hub, h)
                new_due = cal.add(ts, int(left) / 1000)
                pipe.hdel(ck, "res_left")
            pipe.hset(ck, "res_due", new_due)
            if h["res_breached"] is None:  # a breach is reported once per conversation
                pipe.zadd(keys.sla_resolve(), {conv_id: new_due})
        elif kind == "agent" and due is not None:
            rest = _calendar(hub, h).working_ms(ts, int(due))
            pipe.hset(ck, "res_left", rest)
            pipe.hdel(ck, "res_due")
            pipe.zrem(keys.sla_resolve(), conv_id)
        elif kind == "resolved" and (due is not None or left is not None):
            if h["res_breached"] is None:  # a reported breach was counted then
                late = due is not None and ts > int(due)
                _count(hub, pipe, h, ts, "breached" if late else "met")
            pipe.hdel(ck, "res_due", "res_left", "res_policy", "res_breached")
            pipe.zrem(keys.sla_resolve(), conv_id)

    hub.redis.transaction(change, ck)


def _calendar(hub: Hub, h: dict):
    plan = sla.plan(hub)
    name = (h["res_policy"] or b"queue").decode()
    for p in hub.config.hub.sla.policies:
        if p.name == name:
            return plan.calendars[p.calendar]
    return plan.calendars["24/7"]


def _count(hub: Hub, pipe, h: dict, ts: int, outcome: str) -> None:
    hour = ts // 3_600_000
    field = sla.stats_field((h["channel"] or b"").decode(), (h["queue"] or b"").decode(),
                            "resolution", outcome)
    pipe.hincrby(hub.keys.sla_stats(hour), field, 1)
    pipe.expire(hub.keys.sla_stats(hour), sla.STATS_TTL_S)


@feed.reactor("sla-resolution")
def react(hub: Hub, events: list[feed.FeedEvent]) -> None:
    for ev in events:
        if ev.type in ("message.created", "conversation.resolved"):
            apply(hub, ev)


def _report(hub: Hub, conv_id: str, now: int) -> bool:
    ck = hub.keys.conversation(conv_id)
    reported = False

    def change(pipe: redis.client.Pipeline) -> None:
        nonlocal reported
        h = dict(zip(FIELDS, pipe.hmget(ck, FIELDS)))
        due = h["res_due"]
        pipe.multi()
        if due is None or h["status"] in (None, b"resolved") or h["res_breached"] is not None:
            pipe.zrem(hub.keys.sla_resolve(), conv_id)
            return
        if int(due) > now:
            return
        pipe.hset(ck, "res_breached", due)
        pipe.zrem(hub.keys.sla_resolve(), conv_id)
        _count(hub, pipe, h, now, "breached")
        feed.publish(hub, {"type": "conversation.sla_breached", "conversation_id": conv_id,
                           "queue": (h["queue"] or b"").decode() or None,
                           "channel": (h["channel"] or b"").decode(), "due_ts": int(due),
                           "target": "resolution",
                           "policy": (h["res_policy"] or b"queue").decode(),
                           "priority": int(h["priority"] or 0), "ts": now}, pipe)
        reported = True

    hub.redis.transaction(change, ck)
    return reported


@feed.tick("sla-resolution", 15)
def report_breaches(hub: Hub, now: int | None = None) -> int:
    """Report each passed resolution due time once (two schedulers: still once)."""
    now = now or now_ms()
    rows = hub.redis.zrange(hub.keys.sla_resolve(), "-inf", now, byscore=True)
    return sum(_report(hub, m.decode(), now) for m in rows)
