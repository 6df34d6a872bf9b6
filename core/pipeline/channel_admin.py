"""Channels as an admin runs them: disabled or not, and how each is doing.

**Disabled** (``tongdai channels disable ID``): kept in Redis (``Keys.channels_disabled``), so
every process sees it at its next read, no restart, no config edit. A disabled channel sends
nothing — replies are refused before they are stored (the reply pickers show it unreachable,
``reason_code`` ``disabled``), automatic acknowledgements skip it, and a reply queued before
waits, holding no sender, until the channel is enabled again — but its webhook still takes
every delivery and ingest still stores every message: nothing a customer writes is lost.

**Health** (``tongdai channels list``): cheap counters written where the work happens, in the
same round trips — per 10-minute bucket (``Keys.channel_counts``, kept 2 h): raw events read
by ingest, errors (dead letters), sends that went out and sends that failed for good; and the
time of each channel's last event (``Keys.channel_last_event``). "The last hour" is the
current bucket and the five before it.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field

from tongdai.core.clock import now_ms
from tongdai.core.errors import NotFound
from tongdai.core.hub import Hub

BUCKET_MS = 600_000
BUCKETS_PER_HOUR = 6
KEEP_S = 7200
# the sender's outcomes (core/pipeline/outbound.py) → the counter they add to
SEND_COUNTERS = {"sent": "sent", "failed": "send-failed", "uncertain": "send-failed"}
# how long a reply queued on a disabled channel waits before it looks again
HELD_RETRY_MS = 30_000


def bucket_of(ms: int) -> int:
    return ms // BUCKET_MS


def count_events(pipe, hub: Hub, raws: Iterable) -> int:
    """Queue the counts of a batch of raw events on ``pipe`` (ingest's own pipeline).
    Returns how many commands were queued."""
    per: dict[str, int] = {}
    last: dict[str, int] = {}
    for raw in raws:
        per[raw.channel_id] = per.get(raw.channel_id, 0) + 1
        last[raw.channel_id] = max(last.get(raw.channel_id, 0), raw.received_ts_ms)
    if not per:
        return 0
    key = hub.keys.channel_counts(bucket_of(now_ms()))
    for ch, n in per.items():
        pipe.hincrby(key, f"events:{ch}", n)
    pipe.expire(key, KEEP_S)
    pipe.hset(hub.keys.channel_last_event(), mapping=last)
    return len(per) + 2


def count_errors(pipe, hub: Hub, per_channel: dict[str, int]) -> None:
    """Dead letters written, per channel, on ``pipe``."""
    if per_channel:
        key = hub.keys.channel_counts(bucket_of(now_ms()))
        for ch, n in per_channel.items():
            pipe.hincrby(key, f"errors:{ch}", n)
        pipe.expire(key, KEEP_S)


def count_send(hub: Hub, channel_id: str, outcome: str) -> None:
    """A send's final outcome (``sent``, ``failed``, ``uncertain``); retries are not counted."""
    counter = SEND_COUNTERS.get(outcome)
    if counter is None:
        return
    key = hub.keys.channel_counts(bucket_of(now_ms()))
    pipe = hub.redis.pipeline(transaction=False)
    pipe.hincrby(key, f"{counter}:{channel_id}", 1)
    pipe.expire(key, KEEP_S)
    pipe.execute()


# -- disabled ---------------------------------------------------------------------------------
def disabled(hub: Hub) -> dict[str, dict]:
    """Every disabled channel → {at, by, why}."""
    return {k.decode(): json.loads(v) for k, v in
            hub.redis.hgetall(hub.keys.channels_disabled()).items()}


def is_disabled(hub: Hub, channel_id: str) -> bool:
    return bool(hub.redis.hexists(hub.keys.channels_disabled(), channel_id))


def disable(hub: Hub, channel_id: str, by: str, why: str = "") -> bool:
    """Disable a channel; False when it already was."""
    hub.adapter(channel_id)  # NotFound for a channel the config does not have
    record = json.dumps({"at": now_ms(), "by": by, "why": why}, ensure_ascii=False)
    return bool(hub.redis.hsetnx(hub.keys.channels_disabled(), channel_id, record))


def enable(hub: Hub, channel_id: str) -> bool:
    """Enable a channel again; False when it was not disabled. Replies held meanwhile are due
    now: the senders' promoters queue them at once."""
    if not hub.redis.hdel(hub.keys.channels_disabled(), channel_id):
        return False
    wake_held(hub, channel_id)
    return True


def wake_held(hub: Hub, channel_id: str) -> int:
    """Make the sends held on ``channel_id`` due now (the due set is small: sends waiting for
    a retry, a rate-limit slot or a slow channel). Returns how many."""
    from tongdai.core.models import DeliveryStatus
    from tongdai.core.pipeline import store
    from tongdai.core.pipeline.send_schedule import Waiting

    now, key, woken = now_ms(), hub.keys.sends_due(), 0
    for member in hub.redis.zrangebyscore(key, now, "+inf"):
        try:
            w = Waiting.parse(member.decode())
            msg = store.get_message(hub, w.conv_id, w.message_id)
        except (ValueError, NotFound):  # unreadable or gone: the promoter deals with it
            continue
        if (msg.channel_id == channel_id and msg.status == DeliveryStatus.QUEUED
                and (msg.status_why or {}).get("code") == "held_disabled"):
            woken += hub.redis.zadd(key, {member: now}, xx=True, ch=True)
    return woken


def why_disabled(record: dict) -> str:
    why = f": {record['why']}" if record.get("why") else ""
    return f"an admin disabled this channel{why} (tongdai channels enable to send again)"


# -- health -----------------------------------------------------------------------------------
@dataclass(slots=True)
class Health:
    channel_id: str
    last_event_ms: int | None = None
    counts: dict[str, int] = field(default_factory=dict)  # events, errors, sent, send-failed
    disabled: dict | None = None


def health(hub: Hub, channel_ids: list[str]) -> dict[str, Health]:
    """Each channel's last event, last-hour counts and disabled record (two round trips)."""
    now = bucket_of(now_ms())
    pipe = hub.redis.pipeline(transaction=False)
    pipe.hgetall(hub.keys.channel_last_event())
    pipe.hgetall(hub.keys.channels_disabled())
    for b in range(now - BUCKETS_PER_HOUR + 1, now + 1):
        pipe.hgetall(hub.keys.channel_counts(b))
    last, off, *buckets = pipe.execute()
    out = {ch: Health(ch) for ch in channel_ids}
    for ch, h in out.items():
        raw_last = last.get(ch.encode())
        h.last_event_ms = int(raw_last) if raw_last else None
        if ch.encode() in off:
            h.disabled = json.loads(off[ch.encode()])
        h.counts = dict.fromkeys(("events", "errors", "sent", "send-failed"), 0)
    for bucket in buckets:
        for f, n in bucket.items():
            name, _, ch = f.decode().partition(":")
            if ch in out and name in out[ch].counts:
                out[ch].counts[name] += int(n)
    return out
