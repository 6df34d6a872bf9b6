"""Response-time targets (SLA): when an agent owes the customer an answer, warnings, breaches.

A customer's message that arrives while no wait is running starts one. Its targets come from
the first ``sla.policies`` entry that matches the conversation's channel (ids or adapter names)
and priority (``priority_min``), counted on the policy's business-hours calendar
(core/pipeline/calendars.py: weekly hours, public holidays, the team's own dates; the clock
stops outside them); with no policy, ``sla.first_response`` / ``sla.next_response`` per queue
(``sla.queues``), round the clock. ``first_response`` applies while no agent has answered the
conversation, ``next_response`` after. The wait ends with an agent's reply (bots'
acknowledgements and notes do not end it); resolving the conversation drops it. Waiting on the
customer stops the clock by construction: no wait runs then.

Calendars live in Python and the conversation's priority and queue in Redis, so the worker
works out, per message, the due and warning instants of every policy that may apply to its
channel (:meth:`Plan.lua_arg`, a handful of numbers) and the ingest script picks the one the
conversation's priority selects — atomically with the message.

Where it is kept: the conversation hash (``sla_due``, ``sla_warn``, ``sla_policy``,
``sla_target``, ``agent_reply`` ms of the last agent reply, ``sla_warned`` / ``sla_breached``
= the due time that was reported), the sorted sets ``td:sla:due`` and ``td:sla:warn``, and the
hourly counters ``td:sla:stats:<hour>`` of waits met and breached per channel, queue and target
(counted once: at the breach report, or at the reply).

The ``sla`` tick reports each warning and each breach once: ``conversation.sla_warning`` /
``conversation.sla_breached`` on the feed and the mark on the conversation, written together in
one optimistic transaction, so two schedulers (or a re-run) never report one step twice. What
happens then (notify supervisors, raise priority, escalate a tier) is the workspace's
``sla_actions`` reactor.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import redis

from tongdai.core.clock import now_ms
from tongdai.core.config import HubConfig, SlaSection
from tongdai.core.hub import Hub
from tongdai.core.pipeline import feed
from tongdai.core.pipeline.calendars import Calendar, build

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


@dataclass(frozen=True, slots=True)
class Band:
    """One policy as it applies to a channel."""

    name: str
    priority_min: int
    calendar: Calendar
    first: float | None
    later: float | None


class Plan:
    """The SLA policies of one config, resolved per channel (built once per config)."""

    def __init__(self, cfg: HubConfig) -> None:
        self.cfg = cfg.sla
        self.calendars = build(cfg.calendars)
        self.adapter_of = {c.id: c.adapter for c in cfg.channels}
        self.legacy = lua_targets(cfg.sla)
        self._bands: dict[str, list[Band]] = {}
        self._args: dict[tuple[str, int], str] = {}

    def bands(self, channel_id: str) -> list[Band]:
        """The policies that may apply to ``channel_id``, in config order."""
        got = self._bands.get(channel_id)
        if got is None:
            adapter = self.adapter_of.get(channel_id, "")
            got = [Band(p.name, p.priority_min, self.calendars[p.calendar], p.first_response,
                        p.next_response)
                   for p in self.cfg.policies
                   if (not p.channels or channel_id in p.channels)
                   and (not p.adapters or adapter in p.adapters)]
            self._bands[channel_id] = got
        return got

    def policy(self, channel_id: str, priority: int, queue: str) -> tuple[str, Calendar,
                                                                        float | None,
                                                                        float | None]:
        """(policy name, calendar, first, next) for a conversation; "queue" names the
        per-queue fallback."""
        for b in self.bands(channel_id):
            if priority >= b.priority_min:
                return b.name, b.calendar, b.first, b.later
        first, later = targets(self.cfg, queue)
        return "queue", self.calendars["24/7"], first, later

    def resolution(self, channel_id: str, priority: int, queue: str
                   ) -> tuple[str, Calendar, float | None]:
        """(policy name, calendar, resolution target) for a conversation."""
        for p in self.cfg.policies:
            if (priority >= p.priority_min and (not p.channels or channel_id in p.channels)
                    and (not p.adapters or self.adapter_of.get(channel_id, "") in p.adapters)):
                return p.name, self.calendars[p.calendar], p.resolution
        o = self.cfg.queues.get(queue)
        target = o.resolution if o is not None and "resolution" in o.model_fields_set \
            else self.cfg.resolution
        return "queue", self.calendars["24/7"], target

    def lua_arg(self, channel_id: str, start_ms: int) -> str:
        """The ingest script's ARGV for a wait that would start at ``start_ms``: per band,
        "priority_min␟name␟first due␟next due␟first warn␟next warn", ␞-joined ("" = none).
        Remembered per (channel, start): platforms stamp messages in whole seconds, so a busy
        batch has many messages starting at one instant."""
        key = (channel_id, start_ms)
        got = self._args.get(key)
        if got is None:
            if len(self._args) > 4096:
                self._args.clear()
            got = self._args[key] = self._lua_arg(channel_id, start_ms)
        return got

    def _lua_arg(self, channel_id: str, start_ms: int) -> str:
        out = []
        share = self.cfg.warning_at
        for b in self.bands(channel_id):
            cal = b.calendar
            row = [str(b.priority_min), b.name]
            for t in (b.first, b.later):
                row.append("" if t is None else str(cal.add(start_ms, t)))
            for t in (b.first, b.later):
                row.append("" if t is None else str(cal.add(start_ms, t * share)))
            out.append(SEP.join(row))
        return RS.join(out)


def plan(hub: Hub) -> Plan:
    return hub.memo("sla.plan", lambda: Plan(hub.config.hub))


def due_between(hub: Hub, lo: float | str = "-inf", hi: float | str = "+inf",
                limit: int = 1000) -> list[tuple[str, int]]:
    """(conversation, due ms) of running waits due in [lo, hi], soonest first."""
    rows = hub.redis.zrange(hub.keys.sla_due(), lo, hi, byscore=True, offset=0, num=limit,
                            withscores=True)
    return [(m.decode(), int(s)) for m, s in rows]


STATS_TTL_S = 400 * 86400  # a year of compliance figures, and a month to compare with
_FIELDS = ["sla_due", "sla_warn", "sla_warned", "sla_breached", "status", "queue", "agent_reply",
           "sla_policy", "sla_target", "channel", "priority"]


def stats_field(channel: str, queue: str, target: str, outcome: str) -> str:
    return SEP.join((channel, queue, target, outcome))


def _report(hub: Hub, conv_id: str, now: int, step: str) -> bool:
    """Report one conversation's warning or breach and mark it, unless it is reported already,
    not yet due, or answered meanwhile (WATCH: the mark and the event land together or not at
    all). A breach found before its warning was reported reports only the breach."""
    k, keys = hub.keys.conversation(conv_id), hub.keys
    index = keys.sla_warn() if step == "warning" else keys.sla_due()
    with hub.redis.pipeline(transaction=True) as pipe:
        try:
            pipe.watch(k)
            h = dict(zip(_FIELDS, pipe.hmget(k, _FIELDS)))
            due, status = h["sla_due"], h["status"]
            if due is None or status in (None, b"resolved"):
                # answered, resolved or deleted by a path that left the index behind
                pipe.multi()
                pipe.zrem(keys.sla_due(), conv_id)
                pipe.zrem(keys.sla_warn(), conv_id)
                if status == b"resolved":
                    pipe.hdel(k, "sla_due", "sla_warn")
                pipe.execute()
                return False
            when = int(due) if step == "breach" else int(h["sla_warn"] or due)
            done = h["sla_breached" if step == "breach" else "sla_warned"] == due
            if when > now or done or (step == "warning" and h["sla_breached"] == due):
                if step == "warning" and (done or h["sla_breached"] == due):
                    pipe.multi()
                    pipe.zrem(index, conv_id)
                    pipe.execute()
                return False
            pipe.multi()
            target = (h["sla_target"] or b"").decode() or (
                "next_response" if h["agent_reply"] else "first_response")
            queue = h["queue"].decode() if h["queue"] else None
            channel = h["channel"].decode() if h["channel"] else ""
            if step == "breach":
                pipe.hset(k, mapping={"sla_breached": due, "sla_warned": due})
                pipe.zrem(keys.sla_warn(), conv_id)
                hour = now // 3_600_000
                pipe.hincrby(keys.sla_stats(hour), stats_field(channel, queue or "", target,
                                                              "breached"), 1)
                pipe.expire(keys.sla_stats(hour), STATS_TTL_S)
            else:
                pipe.hset(k, "sla_warned", due)
                pipe.zrem(index, conv_id)
            # all-time counts per channel, read by /metrics (the hourly stats key met/breached)
            pipe.hincrby(keys.stats(), f"sla-{step}:{channel}", 1)
            feed.publish(hub, {"type": f"conversation.sla_{'breached' if step == 'breach' else 'warning'}",
                               "conversation_id": conv_id, "queue": queue, "channel": channel,
                               "due_ts": int(due), "target": target,
                               "policy": (h["sla_policy"] or b"queue").decode(),
                               "priority": int(h["priority"] or 0), "ts": now}, pipe)
            pipe.execute()
            return True
        except redis.WatchError:
            return False  # it changed under us: the next tick looks again


def _sweep(hub: Hub, index: str, now: int, step: str) -> int:
    reported, offset = 0, 0
    while True:
        rows = hub.redis.zrange(index, "-inf", now, byscore=True, offset=offset, num=CHUNK)
        if not rows:
            return reported
        mark = "sla_breached" if step == "breach" else "sla_warned"
        pipe = hub.redis.pipeline(transaction=False)
        for m in rows:
            pipe.hmget(hub.keys.conversation(m.decode()), ["sla_due", mark])
        before = reported
        for m, (due, done) in zip(rows, pipe.execute()):
            if due is None or due != done:
                reported += _report(hub, m.decode(), now, step)
        if len(rows) < CHUNK:
            return reported
        # warnings leave their index when reported; breaches stay (the inbox lists them)
        offset += CHUNK if step == "breach" else CHUNK - (reported - before)


@feed.tick("sla", 15)
def report_breaches(hub: Hub, now: int | None = None) -> int:
    """Report every breach, then every warning, not reported yet. Returns how many breaches
    were reported.

    Cost: the due entries of ``td:sla:due`` (one HMGET each, pipelined, per tick) and of
    ``td:sla:warn``; a transaction only for the few not reported yet."""
    now = now or now_ms()
    breaches = _sweep(hub, hub.keys.sla_due(), now, "breach")
    _sweep(hub, hub.keys.sla_warn(), now, "warning")
    return breaches


def report_warnings(hub: Hub, now: int | None = None) -> int:
    """Report every warning not reported yet (the tick runs it after the breaches)."""
    return _sweep(hub, hub.keys.sla_warn(), now or now_ms(), "warning")


def compliance(hub: Hub, since_ms: int, until_ms: int) -> dict[tuple[str, str, str], dict]:
    """Waits met and breached between two instants (whole UTC hours), by (channel, queue,
    target): {"met": n, "breached": n}."""
    first, last = since_ms // 3_600_000, (until_ms - 1) // 3_600_000
    if last - first > 24 * 400:
        raise ValueError("a compliance range is at most 400 days")
    pipe = hub.redis.pipeline(transaction=False)
    for hour in range(first, last + 1):
        pipe.hgetall(hub.keys.sla_stats(hour))
    out: dict[tuple[str, str, str], dict] = {}
    for h in pipe.execute():
        for f, n in h.items():
            channel, queue, target, outcome = f.decode().split(SEP)
            row = out.setdefault((channel, queue, target), {"met": 0, "breached": 0})
            row[outcome] = row.get(outcome, 0) + int(n)
    return out
