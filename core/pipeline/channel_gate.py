"""No channel holds every sender; a platform that stops answering holds one.

Each send registers its call on its channel before calling (``send_gate.lua``) and reports how
it ended (``send_done.lua``). A channel may have as many calls running as its lane has live
senders but one (at least one), and only one while it is *slow*: after a call timed out and
until the platform answers again, or while one of its calls has run longer than
``replies.slow_after``. A send that finds no room is parked in the due set
(``send_schedule``), holding no sender: a call's end wakes the oldest parked sends, and after
``replies.park`` a parked send may become the next call itself. Before this, a platform
answering every call after 15 s held every sender: an unrelated reply once waited 85 s.

Live senders are counted from a heartbeat each sender's promoter thread writes
(``heartbeat``); with a single sender there is no isolation to give (``tongdai up`` runs two).
"""

from __future__ import annotations

from tongdai.core.clock import now_ms
from tongdai.core.hub import Hub

# A slow mark lasts this long without an answer (a channel nobody writes to forgets it).
SLOW_MARK_MS = 600_000
# An in-flight entry older than this belonged to a sender that died (the send lock's TTL).
LEASE_MS = 120_000
# A sender is live while its heartbeat is younger than this (it beats every HEARTBEAT_S).
LIVE_MS = 10_000
HEARTBEAT_S = 2.0


def _keys(hub: Hub, channel_id: str, lane: str) -> list[str]:
    k = hub.keys
    return [k.sends_in_flight(channel_id), k.channel_slow(channel_id),
            k.sends_parked(channel_id), k.sends_due(), k.senders(lane)]


def enter(hub: Hub, channel_id: str, message_id: str, lane: str, member: str) -> bool:
    """True: call the platform now (the call is registered in flight; end it with ``leave``).
    False: no room on the channel; the send was parked as ``member`` of the due set."""
    cfg, now = hub.config.hub.replies, now_ms()
    lease = max(LEASE_MS, int(cfg.platform_timeout * 4000))
    code = hub.scripts.send_gate(keys=_keys(hub, channel_id, lane), args=[
        now, message_id, int(cfg.slow_after * 1000), lease, member, int(cfg.park * 1000),
        now - LIVE_MS])
    return int(code) == 0


def leave(hub: Hub, channel_id: str, message_id: str, lane: str, outcome: str) -> None:
    """The call ended: ``ok`` (the platform answered, success or error), ``slow`` (it timed
    out) or ``none`` (no answer: a refused connection, or no call made at all)."""
    now = now_ms()
    hub.scripts.send_done(keys=_keys(hub, channel_id, lane),
                          args=[now, message_id, outcome, SLOW_MARK_MS, now - LIVE_MS])


def heartbeat(hub: Hub, sender: str, lanes: list[str], client=None) -> None:
    """``sender`` serves ``lanes`` (a sender process's promoter thread calls this)."""
    now = now_ms()
    pipe = (client or hub.redis).pipeline(transaction=False)
    for lane in lanes:
        pipe.zadd(hub.keys.senders(lane), {sender: now})
        pipe.zremrangebyscore(hub.keys.senders(lane), "-inf", now - 6 * LIVE_MS)
    pipe.execute()


def is_slow(hub: Hub, channel_id: str) -> bool:
    """Whether the channel's last call timed out and it has not answered since."""
    return bool(hub.redis.exists(hub.keys.channel_slow(channel_id)))
