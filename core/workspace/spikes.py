"""Spike alerts: one tag (or one channel) suddenly written about by far more customers than
usual for that time of the week — "nạp thẻ lỗi" ×50 in 15 minutes.

**Counting** — the ``spikes`` reactor reads the change feed: each customer's message adds its
conversation to a HyperLogLog per (bucket of ``spikes.bucket``, tag) and per (bucket,
channel). A window's count is the union of its buckets' sets: distinct conversations, so one
customer sending twenty lines counts once, and a replayed feed entry adds nothing (PFADD of a
member it holds). Nothing is added to ingest.

**Detecting** — after each batch the touched tags and channels are checked: the window's
count against a baseline of the same window at the same time of the week in the last
``weeks`` weeks (and the windows up to ``spread`` either side: the daily and weekly cycle is
in the baseline, so Monday 9:00 is compared with other Mondays 9:00); with fewer than
``min_weeks`` weeks of history, the ``recent`` windows just before. Median and MAD, robust to
one odd week; a spike is ``count >= min_count`` and ``count > median + sensitivity ×
max(1.4826·MAD, √median, 1)`` (√median: counts of customers are Poisson-like, so a flat
history with MAD 0 does not make count+1 a spike). ``verdict`` and ``plan`` are pure; tests
run them on synthetic series.

**Alerting** — once per tag (or channel) per ``cooldown``: a WATCHed MULTI sets the lock, writes
the alert and its ``spike.detected`` feed event together, so two reactor processes never both
alert. What the alert reaches is ``core/workspace/spike_alerts.py``.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import math
import statistics
import weakref
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

import orjson
import redis

from tongdai.core.clock import now_ms
from tongdai.core.config_spikes import SpikesSection
from tongdai.core.hub import Hub
from tongdai.core.models import AuthorKind, Direction, EventKind, Message
from tongdai.core.pipeline import feed

log = logging.getLogger(__name__)

SEP = "\x1f"
DIMS = ("tag", "channel")
EVENT = "spike.detected"
WEEK_S = 7 * 86400
MAX_MEMBERS = 200          # messages kept per (bucket, tag) for samples and affected channels
ALERTS_KEEP = 1000         # newest alerts listed
ALERTS_TTL_S = 90 * 86400
DETAIL_TTL_S = 2 * 86400
# per hub: (dim, value, end bucket, history start) → baseline (past windows do not change)
_BASELINES: weakref.WeakKeyDictionary[Hub, dict[tuple, Baseline]] = weakref.WeakKeyDictionary()


# -- the detector (pure) ----------------------------------------------------------------------
@dataclass(frozen=True)
class Baseline:
    kind: str          # seasonal | recent
    median: float
    mad: float
    samples: int

    def threshold(self, cfg: SpikesSection) -> float:
        """The count a window must exceed to be a spike (min_count aside)."""
        return self.median + cfg.sensitivity * max(1.4826 * self.mad, math.sqrt(self.median), 1.0)


def baseline_of(kind: str, counts: list[int]) -> Baseline:
    if not counts:
        return Baseline(kind, 0.0, 0.0, 0)
    med = statistics.median(counts)
    return Baseline(kind, float(med), float(statistics.median(abs(c - med) for c in counts)),
                    len(counts))


def verdict(count: int, base: Baseline, cfg: SpikesSection) -> bool:
    """Whether ``count`` customers in a window is a spike against ``base``."""
    return count >= cfg.min_count and count > base.threshold(cfg)


def plan(end: int, since: int, cfg: SpikesSection) -> tuple[str, list[int]]:
    """The baseline's windows for the window ending with bucket ``end``, history starting at
    bucket ``since``: ("seasonal" | "recent", their last buckets). Windows reaching before
    ``since`` are left out (nothing was counted then: not a zero)."""
    b = int(cfg.bucket)
    per_window, per_week = int(cfg.window) // b, WEEK_S // b
    weeks = (end - since) // per_week
    if weeks >= cfg.min_weeks:
        reach = int(cfg.spread) // b // per_window * per_window
        ends = [end - w * per_week + off for w in range(1, min(weeks, cfg.weeks) + 1)
                for off in range(-reach, reach + 1, per_window)]
        return "seasonal", [e for e in ends if e - per_window + 1 >= since]
    ends = [end - per_window * i for i in range(1, cfg.recent + 1)]
    return "recent", [e for e in ends if e - per_window + 1 >= since]


# -- counting (the reactor) -------------------------------------------------------------------
def _bucket_ms(hub: Hub) -> int:
    return int(hub.config.hub.spikes.bucket * 1000)


def current_bucket(hub: Hub) -> int:
    """The bucket of now (Redis time)."""
    return now_ms() // _bucket_ms(hub)


def _n(hub: Hub, bucket: int, dim: str, value: str) -> str:
    return hub.keys.spike("n", bucket, dim, value)


def _watched(cfg: SpikesSection, msg: Message) -> list[tuple[str, str]]:
    ignore = set(cfg.ignore_tags)
    rows = [("tag", t) for t in msg.tags if not t.startswith("lang:") and t not in ignore]
    return rows + [("channel", msg.channel_id)] if cfg.channels else rows


def count(hub: Hub, items: Iterable[tuple[str, Message, int]]) -> set[tuple[str, str, int]]:
    """Count customers' messages (conversation id, message, ms); returns the (dim, value,
    bucket) touched. Idempotent. One PFADD and one ZADD per touched key for the whole batch."""
    cfg, k = hub.config.hub.spikes, hub.keys
    bms = _bucket_ms(hub)
    keep_s = int(cfg.weeks * WEEK_S + cfg.spread + 2 * cfg.window + 86400)
    convs: dict[tuple[str, str, int], set[str]] = {}
    members: dict[tuple[str, str, int], dict[str, int]] = {}
    for conv_id, msg, ts in items:
        bucket = ts // bms
        for dim, value in _watched(cfg, msg):
            convs.setdefault((dim, value, bucket), set()).add(conv_id)
            members.setdefault((dim, value, bucket), {})[
                SEP.join((msg.channel_id, conv_id, msg.id))] = ts
    if not convs:
        return set()
    pipe = hub.redis.pipeline(transaction=False)
    for (dim, value, bucket), ids in convs.items():
        n, m = _n(hub, bucket, dim, value), k.spike("m", bucket, dim, value)
        pipe.pfadd(n, *sorted(ids))
        pipe.expire(n, keep_s)
        pipe.zadd(m, members[(dim, value, bucket)])
        pipe.zremrangebyrank(m, 0, -MAX_MEMBERS - 1)
        pipe.expire(m, DETAIL_TTL_S)
    for bucket in {b for _, _, b in convs}:
        pipe.sadd(k.spike("active", bucket), *{f"{d}{SEP}{v}" for d, v, b in convs if b == bucket})
        pipe.expire(k.spike("active", bucket), DETAIL_TTL_S)
    pipe.setnx(k.spike("since"), min(b for _, _, b in convs))  # the baseline's reach
    pipe.execute()
    return set(convs)


def _customer_messages(hub: Hub, events: list[feed.FeedEvent]) -> list[tuple[str, Message, int]]:
    evs = [e for e in events if e.type == "message.created" and e.data.get("conversation_id")]
    if not evs:
        return []
    pipe = hub.redis.pipeline(transaction=False)
    for e in evs:
        pipe.hget(hub.keys.messages(str(e.data["conversation_id"])), str(e.data.get("message_id")))
    out = []
    for e, blob in zip(evs, pipe.execute(), strict=True):
        if blob is None:
            continue
        conv_id = str(e.data["conversation_id"])
        msg = Message.from_blob(str(e.data["message_id"]), conv_id, blob)
        if (msg.direction == Direction.IN and msg.author_kind == AuthorKind.CUSTOMER
                and msg.kind == EventKind.MESSAGE.value):
            out.append((conv_id, msg, int(e.data.get("ts") or msg.received_ts_ms)))
    return out


@feed.reactor("spikes")
def react(hub: Hub, events: list[feed.FeedEvent]) -> None:
    """Count the batch's customer messages, then check what they touched in the current
    window (a reactor catching up on old entries counts them and alerts on nothing old)."""
    cfg = hub.config.hub.spikes
    if not cfg.enabled:
        return
    touched = count(hub, _customer_messages(hub, events))
    now_bucket = current_bucket(hub)
    per_window = int(cfg.window // cfg.bucket)
    for dim, value in sorted({(d, v) for d, v, b in touched if b > now_bucket - per_window}):
        evaluate(hub, dim, value, now_bucket, alert=True, quick=True)


# -- evaluating ---------------------------------------------------------------------------------
@dataclass
class Check:
    dim: str
    value: str
    end: int              # the window's last bucket
    count: int
    baseline: Baseline
    threshold: float
    spike: bool
    alert: dict[str, Any] | None = field(default=None)


def _window_keys(hub: Hub, dim: str, value: str, end: int) -> list[str]:
    per_window = int(hub.config.hub.spikes.window // hub.config.hub.spikes.bucket)
    return [_n(hub, b, dim, value) for b in range(end - per_window + 1, end + 1)]


def baseline(hub: Hub, dim: str, value: str, end: int) -> Baseline:
    """The baseline of ``value``'s window ending at bucket ``end`` (cached per window end:
    past windows do not change)."""
    raw = hub.redis.get(hub.keys.spike("since"))
    since = int(raw) if raw is not None else end
    cache = _BASELINES.setdefault(hub, {})
    key = (dim, value, end, since)
    found = cache.get(key)
    if found is not None:
        return found
    kind, ends = plan(end, since, hub.config.hub.spikes)
    pipe = hub.redis.pipeline(transaction=False)
    for e in ends:
        pipe.pfcount(*_window_keys(hub, dim, value, e))
    found = baseline_of(kind, [int(c) for c in pipe.execute()] if ends else [])
    if len(cache) > 10_000:
        cache.clear()
    cache[key] = found
    return found


def evaluate(hub: Hub, dim: str, value: str, end: int | None = None,
             alert: bool = False, quick: bool = False) -> Check:
    """The window ending at bucket ``end`` (default: now) of tag or channel ``value``; with
    ``alert``, a spike raises its alert (once per cooldown). ``quick`` (the reactor): below
    ``min_count`` the baseline is not read (its median and threshold then say nothing)."""
    cfg = hub.config.hub.spikes
    end = current_bucket(hub) if end is None else end
    n = int(hub.redis.pfcount(*_window_keys(hub, dim, value, end)))
    if quick and n < cfg.min_count:  # never a spike: no need for the baseline's reads
        return Check(dim, value, end, n, Baseline("unread", 0.0, 0.0, 0), float(cfg.min_count),
                     False)
    base = baseline(hub, dim, value, end)
    check = Check(dim, value, end, n, base, base.threshold(cfg), verdict(n, base, cfg))
    if check.spike and alert:
        check.alert = raise_alert(hub, check)
    return check


def active(hub: Hub, end: int | None = None) -> list[tuple[str, str]]:
    """The tags and channels written about in the window ending at bucket ``end``."""
    cfg = hub.config.hub.spikes
    end = current_bucket(hub) if end is None else end
    per_window = int(cfg.window // cfg.bucket)
    names = hub.redis.sunion([hub.keys.spike("active", b)
                              for b in range(end - per_window + 1, end + 1)])
    return sorted(tuple(n.decode().split(SEP, 1)) for n in names)  # type: ignore[misc]


def check_all(hub: Hub, alert: bool = False) -> list[Check]:
    """Every tag and channel of the current window, checked now (``tongdai spikes check``)."""
    end = current_bucket(hub)
    return [evaluate(hub, d, v, end, alert=alert) for d, v in active(hub, end)]


# -- alerts ---------------------------------------------------------------------------------------
def alert_id(dim: str, value: str, end: int) -> str:
    return f"sp_{end}_" + hashlib.sha256(f"{dim}{SEP}{value}".encode()).hexdigest()[:8]


def _detail(hub: Hub, c: Check) -> tuple[list[str], list[dict[str, str]]]:
    """Affected channels and the newest sample messages (one per conversation) of the window."""
    keys = [hub.keys.spike("m", b, c.dim, c.value)
            for b in range(c.end - int(hub.config.hub.spikes.window // hub.config.hub.spikes.bucket)
                           + 1, c.end + 1)]
    pipe = hub.redis.pipeline(transaction=False)
    for key in keys:
        pipe.zrange(key, 0, -1, withscores=True)
    rows = sorted(((s, m.decode()) for got in pipe.execute() for m, s in got), reverse=True)
    channels, samples, seen = set(), [], set()
    for _, member in rows:
        ch, conv, mid = member.split(SEP)
        channels.add(ch)
        if conv not in seen and len(samples) < hub.config.hub.spikes.samples:
            seen.add(conv)
            samples.append({"conversation_id": conv, "message_id": mid, "channel": ch})
    return sorted(channels), samples


def _iso(ms: int) -> str:
    return dt.datetime.fromtimestamp(ms / 1000, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def broadcast_path(alert: dict[str, Any]) -> str:
    """The console's broadcast page with the segment filled in: the tag (a tag spike), the
    window, the channels the customers wrote on."""
    q = {"tag": alert["value"]} if alert["dim"] == "tag" else {}
    q |= {"since": _iso(alert["since_ts"]), "until": _iso(alert["until_ts"]),
          "channels": ",".join(alert["channels"])}
    return "/console/broadcasts?" + urlencode(q, safe=",:")


def raise_alert(hub: Hub, c: Check) -> dict[str, Any] | None:
    """Write the alert and its ``spike.detected`` feed event, unless this tag (or channel) had
    one within ``cooldown``: the lock, the alert and the event in one WATCHed MULTI. Returns
    the alert, or None when the lock was held."""
    cfg, k = hub.config.hub.spikes, hub.keys
    lock = k.spike("lock", c.dim, c.value)
    if hub.redis.exists(lock):  # alerted within cooldown (checked again below, atomically)
        return None
    bms = _bucket_ms(hub)
    per_window = int(cfg.window // cfg.bucket)
    channels, samples = _detail(hub, c)
    aid = alert_id(c.dim, c.value, c.end)
    now = now_ms()
    alert = {"id": aid, "dim": c.dim, "value": c.value, "ts": now,
             "since_ts": (c.end - per_window + 1) * bms, "until_ts": (c.end + 1) * bms,
             "count": c.count, "median": c.baseline.median, "mad": c.baseline.mad,
             "threshold": round(c.threshold, 2), "baseline": c.baseline.kind,
             "baseline_samples": c.baseline.samples, "channels": channels, "samples": samples}
    made = False

    def once(pipe: redis.client.Pipeline) -> None:
        nonlocal made
        if pipe.exists(lock):
            return
        pipe.multi()
        pipe.set(lock, aid, px=int(cfg.cooldown * 1000))
        pipe.set(k.spike("alert", aid), orjson.dumps(alert), ex=ALERTS_TTL_S)
        pipe.zadd(k.spike("alerts"), {aid: now})
        pipe.zremrangebyrank(k.spike("alerts"), 0, -ALERTS_KEEP - 1)
        pipe.hincrby(k.stats(), f"spike:{c.dim}", 1)  # /metrics tongdai_spike_alerts_total
        feed.publish(hub, {"type": EVENT, "alert_id": aid, "dim": c.dim, "value": c.value,
                           "count": c.count, "threshold": alert["threshold"],
                           "median": c.baseline.median, "channels": channels,
                           "since_ts": alert["since_ts"], "until_ts": alert["until_ts"],
                           "broadcast_url": broadcast_path(alert), "ts": now}, pipe=pipe)
        made = True

    hub.redis.transaction(once, lock)
    if not made:
        return None
    log.warning("spike: %s %s has %d conversations in %ds (usual %.1f, threshold %.1f); "
                "alert %s", c.dim, c.value, c.count, int(cfg.window), c.baseline.median,
                c.threshold, aid)
    return alert


def get_alert(hub: Hub, aid: str) -> dict[str, Any] | None:
    raw = hub.redis.get(hub.keys.spike("alert", aid))
    return orjson.loads(raw) if raw else None


def recent_alerts(hub: Hub, since_ms: int = 0, limit: int = 50) -> list[dict[str, Any]]:
    """The newest alerts first (at most ``limit``), raised at or after ``since_ms``."""
    ids = hub.redis.zrevrangebyscore(hub.keys.spike("alerts"), "+inf", since_ms, start=0,
                                     num=limit)
    if not ids:
        return []
    raws = hub.redis.mget([hub.keys.spike("alert", i.decode()) for i in ids])
    return [orjson.loads(r) for r in raws if r]
