"""Where a spike alert goes (core/workspace/spikes.py raises it, once).

- The console and the API: ``GET /api/v1/spikes`` lists alerts for supervisors and admins, and
  the ``spike.detected`` feed event reaches their open consoles live (a banner). The feed event
  carries counts and channels only; sample messages are read (decrypted) when an authorised
  caller asks, and only from conversations that caller may see.
- The Telegram staff groups (``spikes.staff_group_teams``, default every team's): the
  ``spike_alerts`` reactor posts one message per alert in the group's General topic, once per
  group however often the feed hands the event over (``staffgroup_topics.post_once``).
- Integrators: the outgoing webhook event ``spike.detected`` (core/workspace/hooks.py).

Each alert carries a link to a broadcast to the customers concerned:
``/console/broadcasts?tag=…&since=…&until=…&channels=…``.
"""

from __future__ import annotations

import logging
from typing import Any

from tongdai.core.config import StaffGroup
from tongdai.core.errors import NotFound
from tongdai.core.hub import Hub
from tongdai.core.pipeline import feed, store
from tongdai.core.workspace import access, spikes
from tongdai.core.workspace.access import Principal
from tongdai.core.workspace.staffgroup_topics import post_once

log = logging.getLogger(__name__)
SAMPLE_CHARS = 280


def broadcast_url(hub: Hub, alert: dict[str, Any]) -> str:
    """The link as given outside the console (absolute with ``notifications.console_url``)."""
    return hub.config.hub.notifications.console_url.rstrip("/") + spikes.broadcast_path(alert)


def _samples(hub: Hub, alert: dict[str, Any], who: Principal | None) -> list[dict[str, Any]]:
    """The alert's sample messages with their text, from conversations ``who`` may see
    (None: a place that sees every conversation — the staff group, an integrator)."""
    out = []
    for s in alert.get("samples", ()):
        try:
            if who is not None:
                access.conversation(hub, who, s["conversation_id"])
            msg = store.get_message(hub, s["conversation_id"], s["message_id"])
        except NotFound:
            continue  # erased since, or not theirs to read
        text = msg.text or ""
        out.append({**s, "text": text[:SAMPLE_CHARS] + ("…" if len(text) > SAMPLE_CHARS else ""),
                    "ts": msg.received_ts_ms})
    return out


def to_api(hub: Hub, alert: dict[str, Any], who: Principal | None) -> dict[str, Any]:
    """The alert as the API, the console and integrators see it."""
    keep = ("id", "dim", "value", "ts", "since_ts", "until_ts", "count", "median", "threshold",
            "baseline", "channels")
    return {**{k: alert[k] for k in keep}, "samples": _samples(hub, alert, who),
            "broadcast_url": spikes.broadcast_path(alert) if who is not None else broadcast_url(hub, alert)}


def alerts_for(hub: Hub, who: Principal, since_ms: int = 0, limit: int = 50
               ) -> list[dict[str, Any]]:
    """``GET /api/v1/spikes``: supervisors and admins."""
    access.require(who, "supervisor")
    return [to_api(hub, a, who) for a in spikes.recent_alerts(hub, since_ms, limit)]


# -- the staff groups ---------------------------------------------------------------------------
def staff_groups(hub: Hub) -> list[StaffGroup]:
    """The staff groups alerts go to, one per chat."""
    names = hub.config.hub.spikes.staff_group_teams
    out: dict[tuple[str, int], StaffGroup] = {}
    for t in hub.config.hub.teams:
        if t.staff_group and (names is None or t.id in names):
            out.setdefault((t.staff_group.channel, t.staff_group.chat_id), t.staff_group)
    return list(out.values())


def staff_text(hub: Hub, alert: dict[str, Any]) -> str:
    """The staff group's message: what, how many against usual, where, samples, the link."""
    what = f"tag {alert['value']}" if alert["dim"] == "tag" else f"channel {alert['value']}"
    minutes = round((alert["until_ts"] - alert["since_ts"]) / 60_000)
    lines = [(f"📈 Spike: {what} — {alert['count']} customers in {minutes} min "
              f"(usually {alert['median']:g}, alert above {alert['threshold']:g})"),
             f"Channels: {', '.join(alert['channels']) or '—'}"]
    for s in _samples(hub, alert, None):
        lines.append(f"• #{s['conversation_id']} ({s['channel']}): {s['text']}")
    lines.append(f"Broadcast to them: {broadcast_url(hub, alert)}")
    return "\n".join(lines)


@feed.reactor("spike_alerts")
def react(hub: Hub, events: list[feed.FeedEvent]) -> None:
    """Post each new alert to the staff groups, once per group."""
    todo = [e for e in events if e.type == spikes.EVENT]
    groups = staff_groups(hub) if todo else []
    for e in todo:
        alert = spikes.get_alert(hub, str(e.data.get("alert_id")))
        if alert is None:
            continue  # expired long ago
        for g in groups:
            post_once(hub, g, None, f"spike:{alert['id']}", lambda a=alert: staff_text(hub, a))


def webhook_events(hub: Hub, ev: feed.FeedEvent) -> list[tuple[str, dict[str, Any]]]:
    """The outgoing webhook event of a ``spike.detected`` feed entry (core/workspace/hooks)."""
    alert = spikes.get_alert(hub, str(ev.data.get("alert_id")))
    return [(spikes.EVENT, {"alert": to_api(hub, alert, None)})] if alert else []
