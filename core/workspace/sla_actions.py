"""What happens when an SLA wait reaches its warning share or its due time: the ``sla`` reactor.

The scheduler's tick (core/pipeline/sla.py) reports each step once on the change feed
(``conversation.sla_warning`` / ``conversation.sla_breached``); this reactor acts on them as
``sla.on_warning`` / ``sla.on_breach`` say:

* ``raise_priority: N`` — the conversation's priority becomes at least N (it moves up its
  queue), with the reason kept as ``priority_why``;
* ``escalate: true`` — it moves up a tier (``tiers.escalate``, by ``policy:sla``);
* ``notify: true`` — supervisors hear of it: every console gets the feed event (the inbox marks
  the conversation), the team's Telegram staff group gets a line in the conversation's topic,
  and outgoing webhooks subscribed to ``sla.warning`` / ``sla.breached`` get a delivery
  (core/workspace/hooks.py).

The feed is read at least once: each action is idempotent (a priority only rises; the
escalation and the staff-group post run once per step through ``feed.act_once``).
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any
from zoneinfo import ZoneInfo

import redis

from tongdai.core.clock import now_ms
from tongdai.core.config import SlaAction
from tongdai.core.errors import DeliveryError, NotFound
from tongdai.core.hub import Hub
from tongdai.core.pipeline import feed, store
from tongdai.core.workspace.workflow import queue_score

log = logging.getLogger(__name__)
STEPS = {"conversation.sla_warning": "warning", "conversation.sla_breached": "breach"}
_ONCE_MS, _KEEP_S = 60_000, 7 * 86400


def action_for(hub: Hub, step: str) -> SlaAction:
    cfg = hub.config.hub.sla
    return cfg.on_warning if step == "warning" else cfg.on_breach


def raise_priority(hub: Hub, conv_id: str, level: int, why: str) -> bool:
    """At least ``level``, re-filed in its queue where it is queued. False: already there."""
    ck, k = hub.keys.conversation(conv_id), hub.keys
    raised = False

    def change(pipe: redis.client.Pipeline) -> None:
        nonlocal raised
        prio, created, queue, status = pipe.hmget(ck, ["priority", "created", "queue", "status"])
        raised = created is not None and status != b"resolved" and int(prio or 0) < level
        if not raised:
            return
        pipe.multi()
        pipe.hset(ck, mapping={"priority": level, "priority_why": why})
        pipe.zadd(k.queue(queue.decode()), {conv_id: queue_score(level, int(created))}, xx=True)
        feed.publish(hub, {"type": "conversation.priority_changed", "conversation_id": conv_id,
                           "priority": level, "why": why, "ts": now_ms()}, pipe)

    hub.redis.transaction(change, ck)
    return raised


def _text(data: dict[str, Any], step: str, tz: str) -> str:
    due = dt.datetime.fromtimestamp(int(data["due_ts"]) / 1000, ZoneInfo(tz))
    when = due.strftime("%H:%M %d/%m")
    target = {"first_response": "first reply", "next_response": "next reply"}.get(
        str(data.get("target")), str(data.get("target")))
    if step == "warning":
        return f"⏰ SLA: {target} due at {when} (policy {data.get('policy')})"
    return f"🚨 SLA breached: {target} was due at {when} (policy {data.get('policy')})"


def _staff_group(hub: Hub, conv_id: str, data: dict[str, Any], step: str) -> None:
    from tongdai.core.workspace.staffgroup_topics import ensure_topic, groups_of_queue, post_once

    try:
        conv = store.get_conversation(hub, conv_id)
    except NotFound:
        return
    text = _text(data, step, hub.config.hub.notifications.timezone)
    for g in groups_of_queue(hub, conv.queue):
        try:
            post_once(hub, g, ensure_topic(hub, g, conv), f"sla:{step}:{data['due_ts']}", text)
        except DeliveryError as exc:
            if exc.retryable:
                raise
            log.warning("staff group %s: SLA %s for conversation %s not posted (%s)",
                        g.chat_id, step, conv_id, exc.code)


def act(hub: Hub, data: dict[str, Any], step: str) -> None:
    conv_id = str(data.get("conversation_id") or "")
    if not conv_id or "due_ts" not in data:
        return
    a = action_for(hub, step)
    target = str(data.get("target") or "")
    # "SLA <target> <label>": consoles translate this exact form (webhooks/static/conversation.js)
    label = "breached" if step == "breach" else "warning"
    if a.raise_priority is not None:
        raise_priority(hub, conv_id, a.raise_priority, f"SLA {target} {label}")
    if a.escalate:
        from tongdai.core.workspace import tiers

        feed.act_once(hub, hub.keys.sla_action(conv_id, f"escalate:{data['due_ts']}"),
                      lambda: tiers.escalate(hub, None, conv_id,
                                             reason=f"SLA {target} {label}", by="policy:sla"),
                      f"SLA escalation of {conv_id}", _ONCE_MS, _KEEP_S)
    if a.notify:
        _staff_group(hub, conv_id, data, step)


@feed.reactor("sla")
def react(hub: Hub, events: list[feed.FeedEvent]) -> None:
    for ev in events:
        step = STEPS.get(ev.type)
        if step is not None:
            act(hub, ev.data, step)
