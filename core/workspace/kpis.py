"""Support KPIs counted as things happen: the ``kpis`` reactor on the change feed.

Each feed event that moves a KPI adds to counters in hour buckets (UTC hours: epoch ms //
3,600,000) and day buckets (dates in ``notifications.timezone``, the team's time zone), one
Redis hash per bucket and dimension — ``all``, ``channel``, ``team``, ``agent``, ``tag``,
``lang`` — with fields ``value␟metric``; the same again per team (the team whose queue the
conversation is in), so a supervisor's report reads only their teams' hashes. Sums and
counts, never averages: a report over any range adds them up (core/workspace/kpi_report.py).
Response times also go to a coarse histogram (``EDGES_S``) for the distribution and
percentiles.

What is counted, and when (docs/workspace.md "KPIs" says what each figure means):

- a customer's message: ``in``; a new conversation ``conv``; a resolved one written to again
  (or reopened by hand, ``conversation.open``) ``reopened``; the customer's wait starts when
  none is running;
- an agent's reply: ``out``; it ends the wait: the first reply of the conversation is a first
  response (``frt_*``), later ones next responses (``nrt_*``) — working time on the calendar of
  the conversation's SLA policy (core/pipeline/sla.py), round the clock without one;
- an assignment to an agent: ``asg``, and the handle time's start; resolving: ``resolved``,
  the resolution time (``res_*``, from the customer's opening message, on the resolution
  policy's calendar) and the handle time (``aht_*``, from the assignment, same calendar);
- the self-service bot taking part (its answer, ``selfservice.answered`` or
  ``selfservice.handoff``): ``ss`` once per conversation, ``ss_handoff`` once when it leaves
  it to a person, ``ss_helped`` when the customer says it helped (``selfservice.helped``);
- surveys: ``csat.rated`` (``score`` 1–5) and ``nps.rated`` (``score`` 0–10).

Replays change nothing: per conversation, ``td:kpi:conv:<id>`` keeps the id of the last feed
entry applied (``ev``) with the clocks, and the counters move in the same MULTI as that id; an
entry at or before it is skipped (the feed is ordered per conversation).
"""

from __future__ import annotations

import datetime as dt
from bisect import bisect_left
from typing import Any
from zoneinfo import ZoneInfo

import redis

from tongdai.core.hub import Hub
from tongdai.core.models import AuthorKind, Direction, Message
from tongdai.core.pipeline import feed, sla
from tongdai.core.workspace.access import teams_of_queue

SEP = "\x1f"
DIMS = ("all", "channel", "team", "agent", "tag", "lang")
# Response-time histogram: bin i holds times <= EDGES_S[i] (and > the edge before); the last
# bin, index len(EDGES_S), holds everything longer than a day.
EDGES_S = (30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 14400, 28800, 86400)
HOUR_TTL_S = 62 * 86400  # hour buckets: two months of hourly charts
DAY_TTL_S = 400 * 86400  # day buckets: a year, and a month to compare with (as SLA stats)
STATE_TTL_S = 180 * 86400
MAX_TAGS = 20  # a conversation's tags counted (the rest would only widen every bucket)
_CONV = ["channel", "queue", "priority", "assignee", "status"]
BOT_AUTHOR = "selfservice"  # the self-service bot's answers (core/selfservice/bot.py)
SURVEYS = {"csat.rated": (1, 5), "nps.rated": (0, 10)}
BOT_EVENTS = {"selfservice.answered": "answered", "selfservice.handoff": "handoff",
              "selfservice.helped": "helped"}


def bin_of(ms: int) -> int:
    return bisect_left(EDGES_S, ms / 1000)


def day_of(ms: int, tz: str) -> str:
    """The day bucket's id: the local date, ``YYYYMMDD``."""
    return dt.datetime.fromtimestamp(ms / 1000, ZoneInfo(tz)).strftime("%Y%m%d")


def _eid(s: str | bytes | None) -> tuple[int, int]:
    if not s:
        return (0, 0)
    a, _, b = (s.decode() if isinstance(s, bytes) else s).partition("-")
    return int(a), int(b or 0)


def _kind(hub: Hub, ev: feed.FeedEvent) -> tuple[str, Message | None] | None:
    """What the event is for the KPIs (None: nothing), with the message when it is one."""
    t = ev.type
    if t == "message.created":
        blob = hub.redis.hget(hub.keys.messages(str(ev.data.get("conversation_id"))),
                              str(ev.data.get("message_id")))
        if blob is None:
            return None
        msg = Message.from_blob(str(ev.data["message_id"]), str(ev.data["conversation_id"]),
                                blob)
        if msg.direction == Direction.IN and msg.author_kind == AuthorKind.CUSTOMER:
            return "customer", msg
        if msg.direction == Direction.OUT and msg.author_kind == AuthorKind.AGENT:
            return "agent", msg
        if (msg.direction == Direction.OUT and msg.author_kind == AuthorKind.BOT
                and msg.author_id == BOT_AUTHOR):  # (not automatic acknowledgements)
            return "bot", msg
        return None
    if t in ("conversation.assigned", "conversation.resolved", "conversation.open"):
        return t.partition(".")[2], None
    if t in BOT_EVENTS:
        return "bot" if BOT_EVENTS[t] == "answered" else BOT_EVENTS[t], None
    if t in SURVEYS:
        lo, hi = SURVEYS[t]
        score = ev.data.get("score")
        if isinstance(score, int) and not isinstance(score, bool) and lo <= score <= hi:
            return t.partition(".")[0], None
    return None


class _Counts:
    """The increments of one event: metric -> n, for the agent it is about."""

    def __init__(self) -> None:
        self.n: dict[str, int] = {}

    def add(self, metric: str, n: int = 1) -> None:
        self.n[metric] = self.n.get(metric, 0) + n

    def duration(self, prefix: str, ms: int, histogram: bool = False) -> None:
        self.add(f"{prefix}_n")
        self.add(f"{prefix}_ms", ms)
        if histogram:
            self.add(f"{prefix}_h{bin_of(ms)}")


def _calendars(hub: Hub, conv: dict[str, str]):
    """(response calendar, resolution calendar) of the conversation's SLA policy."""
    plan = sla.plan(hub)
    ch, prio, queue = conv["channel"], int(conv["priority"] or 0), conv["queue"]
    return plan.policy(ch, prio, queue)[1], plan.resolution(ch, prio, queue)[1]


def _step(hub: Hub, kind: str, msg: Message | None, ev: feed.FeedEvent, ts: int,
          st: dict[str, str], conv: dict[str, str]) -> tuple[_Counts, dict, list, str]:
    """The counts of one event, the state to set and to delete, and the agent it is about."""
    c, put, drop = _Counts(), {}, []
    agent = conv["assignee"]
    if kind == "customer":
        c.add("in")
        opened = ev.data.get("opened")
        if opened == 1 and "open" not in st:
            c.add("conv")
            put["open"] = ts
        elif st.get("res") == "1":
            c.add("reopened")
            put.update(open=ts, res="0")
        if "wait" not in st:
            put["wait"] = ts
    elif kind == "agent":
        c.add("out")
        agent = (msg.author_id if msg else None) or agent
        if "wait" in st:
            cal = _calendars(hub, conv)[0]
            c.duration("nrt" if st.get("answered") == "1" else "frt",
                       cal.working_ms(int(st["wait"]), ts), histogram=True)
            drop.append("wait")
        put["answered"] = "1"
    elif kind in ("bot", "handoff", "helped"):
        if st.get("ss") != "1":
            c.add("ss")
            put["ss"] = "1"
        if kind != "bot" and st.get(kind) != "1":
            c.add(f"ss_{kind}")
            put[kind] = "1"
    elif kind == "assigned":
        new = ev.data.get("assignee")
        if new and new != st.get("agent"):
            c.add("asg")
            put.update(asg=ts, agent=new)
            agent = new
        elif not new:
            drop += ["asg", "agent"]
    elif kind == "resolved":
        if st.get("res") == "1":
            return c, put, drop, agent or ""
        c.add("resolved")
        cal = _calendars(hub, conv)[1]
        if "open" in st:
            c.duration("res", cal.working_ms(int(st["open"]), ts))
        if "asg" in st:
            agent = st.get("agent") or agent
            c.duration("aht", cal.working_ms(int(st["asg"]), ts))
        put["res"] = "1"
        drop += ["wait", "asg", "agent"]
    elif kind == "open":
        if st.get("res") == "1":
            c.add("reopened")
            put.update(open=ts, res="0")
    elif kind in ("csat", "nps"):
        score = int(ev.data["score"])
        agent = ev.data.get("agent") or agent
        c.add(f"{kind}_n")
        c.add(f"{kind}_sum", score)
        if kind == "csat":
            c.add(f"csat_s{score}")
        else:
            c.add("nps_pro" if score >= 9 else "nps_det" if score <= 6 else "nps_pas")
    return c, put, drop, agent or ""


def _fields(conv: dict[str, str], tags: list[str], agent: str, channel: str
             ) -> list[tuple[str, str]]:
    """(dimension, value) rows an event of this conversation counts in."""
    langs = sorted(t[5:] for t in tags if t.startswith("lang:"))
    rows = [("all", ""), ("channel", channel)]
    if conv["team"]:
        rows.append(("team", conv["team"]))
    if agent:
        rows.append(("agent", agent))
    if langs:
        rows.append(("lang", langs[0]))
    rows += [("tag", t) for t in sorted(t for t in tags if not t.startswith("lang:"))[:MAX_TAGS]]
    return rows


def bucket_keys(hub: Hub, ts: int, dim: str, team: str) -> list[tuple[str, int]]:
    """(key, TTL s) of the buckets an event at ``ts`` counts in: the hub's hour and day, and
    the team's (a supervisor's report reads only their teams' keys)."""
    hour, day = ts // 3_600_000, day_of(ts, hub.config.hub.notifications.timezone)
    scopes = [(), ("team", team)] if team else [()]
    return [(hub.keys.kpi(kind, b, dim, *sc), ttl) for sc in scopes
            for kind, b, ttl in (("h", hour, HOUR_TTL_S), ("d", day, DAY_TTL_S))]


def apply(hub: Hub, ev: feed.FeedEvent) -> bool:
    """Count one feed event once; False when it moves no KPI or was counted already."""
    found = _kind(hub, ev)
    conv_id = str(ev.data.get("conversation_id") or "")
    if found is None or not conv_id:
        return False
    kind, msg = found
    sk, ck, keys = hub.keys.kpi("conv", conv_id), hub.keys.conversation(conv_id), hub.keys
    ts = int(ev.data.get("ts") or 0)
    done = False

    def change(pipe: redis.client.Pipeline) -> None:
        nonlocal done
        st = {k.decode(): v.decode() for k, v in pipe.hgetall(sk).items()}
        if _eid(ev.id) <= _eid(st.get("ev")):
            return  # counted already
        vals = pipe.hmget(ck, _CONV)
        if vals[4] is None:
            return  # the conversation is gone (erased)
        conv = {k: (v or b"").decode() for k, v in zip(_CONV, vals, strict=True)}
        teams = teams_of_queue(hub, conv["queue"])
        conv["team"] = teams[0] if teams else ""
        tags = [t.decode() for t in pipe.smembers(keys.conversation_tags(conv_id))]
        counts, put, drop, agent = _step(hub, kind, msg, ev, ts, st, conv)
        channel = msg.channel_id if msg is not None else conv["channel"]
        pipe.multi()
        pipe.hset(sk, mapping={"ev": ev.id, **put})
        if drop:
            pipe.hdel(sk, *drop)
        pipe.expire(sk, STATE_TTL_S)
        if not counts.n:
            return
        for dim, value in _fields(conv, tags, agent, channel):
            for bucket, ttl in bucket_keys(hub, ts, dim, conv["team"]):
                for metric, n in counts.n.items():
                    pipe.hincrby(bucket, f"{value}{SEP}{metric}", n)
                pipe.expire(bucket, ttl)
        done = True

    hub.redis.transaction(change, sk)
    return done


@feed.reactor("kpis")
def react(hub: Hub, events: list[feed.FeedEvent]) -> None:
    for ev in events:
        apply(hub, ev)


def fields_of(raw: dict[bytes, bytes]) -> list[tuple[str, str, int]]:
    """A bucket hash → (value, metric, n) rows."""
    out: list[tuple[str, str, int]] = []
    names = _NAMES
    for f, n in raw.items():
        got = names.get(f)
        if got is None:
            value, _, metric = f.decode().rpartition(SEP)
            got = (value, metric)
            if len(names) < 100_000:
                names[f] = got
        out.append((got[0], got[1], int(n)))
    return out


_NAMES: dict[bytes, tuple[str, str]] = {}  # field → (value, metric): reports read the same ones


def state(hub: Hub, conv_id: str) -> dict[str, Any]:
    """The conversation's KPI clocks (tests, ``keys`` inspection)."""
    return {k.decode(): v.decode() for k, v in
            hub.redis.hgetall(hub.keys.kpi("conv", conv_id)).items()}
