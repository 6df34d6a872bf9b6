"""Tiers and escalation: a conversation moves up its team's ladder, with a reason, and back.

Teams have a ``tier`` (1 first line, 2 specialists, 3 managers...) and ``escalates_to``: the
next step up, an ordered list of teams with the conditions of routing rules (tags, language,
channel, priority, customer attributes), the last without any (core/config_routing.py checks
the ladder at start-up). A queue is on the tier of the teams working it.

- **Escalate** moves the conversation to the first queue of the first step whose conditions
  hold for it (a person may name the step's team instead), and remembers where it came from.
- **De-escalate** moves it back down: to the queue it was last escalated from, else to the
  first queue of the first team (in config order) whose ladder leads to its team.

Who keeps it: the assignee keeps the conversation when they are in a team working the new
queue; otherwise it goes to the new queue unassigned (its team's auto-assignment hands it
out), which is reported as a release too (``conversation.assigned``, reason ``escalate`` /
``deescalate``). Priority and SLA due times do not change.

Each move is one WATCHed MULTI on the conversation (a claim or transfer racing it makes it
start over): the conversation's queue and place (priority, then age), the assignee's load,
a system line on the timeline (core/workspace/timeline.py), the feed event
(``conversation.escalated`` / ``conversation.deescalated``) and the audit entry.

People (the console, the API, ``/escalate`` in the staff group) get a clear 409 at the top
of the ladder (or the bottom); a policy (``principal`` None: the SLA reactor) gets None.
"""

from __future__ import annotations

import orjson
import redis

from tongdai.core.clock import now_ms
from tongdai.core.config import TeamSection
from tongdai.core.errors import BadRequest, Conflict, NotFound
from tongdai.core.hub import Hub
from tongdai.core.models import Conversation
from tongdai.core.pipeline import feed, routing, store
from tongdai.core.workspace import access, assignment, audit, timeline, users
from tongdai.core.workspace.access import Principal
from tongdai.core.workspace.workflow import queue_score

MAX_REASON = 2000
_FIELDS = ["status", "queue", "assignee", "priority", "created", "channel", "customer",
           "tier_from"]


def team_of(hub: Hub, queue: str) -> TeamSection | None:
    """The team whose ladder a queue is on: the first (config order) working it."""
    return next((t for t in hub.config.hub.teams if queue in t.queues), None)


def tier_of(hub: Hub, queue: str) -> int:
    """The queue's tier (1 when no team works it)."""
    t = team_of(hub, queue)
    return t.tier if t else 1


def _step_up(hub: Hub, here: TeamSection | None, h: dict[str, str], tags: set[str],
             team: str | None) -> TeamSection | str:
    """The team above, or why there is none."""
    steps = here.escalates_to if here else []
    if not steps:
        return (f"queue {h['queue']} (tier {tier_of(hub, h['queue'])}) is the top of its "
                "ladder: its team escalates to nobody (teams[].escalates_to)")
    if team is not None:
        if team not in [s.team for s in steps]:
            raise BadRequest(f"team {team!r} is not a step up from {here.id}: choose one of "
                             f"{', '.join(s.team for s in steps)}")
        pick = team
    else:
        lang = max((t[5:] for t in tags if t.startswith("lang:")), key=len, default=None)
        cust = {"tier": (hub.redis.hget(hub.keys.customer(h["customer"]), "tier")
                         or b"").decode()}
        pick = next(s.team for s in steps if s is steps[-1] or routing.holds(
            s, tags, lang, h["channel"], int(h.get("priority") or 0), cust))
    return assignment.find_team(hub, pick) or f"team {pick!r} is no longer configured"


def _step_down(hub: Hub, here: TeamSection | None, h: dict[str, str],
               came_from: list[str]) -> str | None:
    """The queue below: where it came from, else the first team whose ladder leads here."""
    if came_from:
        return came_from[-1]
    if here is None:
        return None
    below = next((t for t in hub.config.hub.teams
                  if t.queues and here.id in [s.team for s in t.escalates_to]), None)
    return below.queues[0] if below else None


def escalate(hub: Hub, principal: Principal | None, conv_id: str, reason: str,
             by: str | None = None, *, team: str | None = None) -> Conversation | None:
    """Move the conversation up a tier (see the module's docstring). ``principal`` None is a
    policy acting (``by`` names it, e.g. ``policy:sla``): no access check, and None instead
    of an error when there is nothing to do (resolved, at the top, gone). ``team`` (people
    only): which of the steps up, instead of the first whose conditions hold."""
    return _move(hub, principal, conv_id, reason, by, up=True, team=team)


def deescalate(hub: Hub, principal: Principal | None, conv_id: str, reason: str = "",
               by: str | None = None) -> Conversation | None:
    """Move the conversation back down a tier: to the queue it was escalated from, else to
    the first team whose ladder leads to its team. Same rules as :func:`escalate`."""
    return _move(hub, principal, conv_id, reason, by, up=False)


def _move(hub: Hub, principal: Principal | None, conv_id: str, reason: str, by: str | None,
          up: bool, team: str | None = None) -> Conversation | None:
    reason = (reason or "").strip()[:MAX_REASON]
    if principal is not None:
        conv = access.conversation(hub, principal, conv_id)
        assignment.may_act(hub, principal, conv)
        if up and not reason:
            raise BadRequest("an escalation needs a reason")
        by = by or principal.name
    by = by or "system"
    try:
        _apply(hub, conv_id, reason, by, up, team, via=principal.via if principal else "")
    except (Conflict, NotFound):
        if principal is not None:
            raise
        return None  # a policy: nothing to move (resolved, at the top, erased)
    return store.get_conversation(hub, conv_id)


def _apply(hub: Hub, conv_id: str, reason: str, by: str, up: bool, team: str | None,
           via: str) -> None:
    k, now = hub.keys, now_ms()
    ck, mid = k.conversation(conv_id), timeline.next_id(hub)
    verb = "escalated" if up else "deescalated"

    def change(pipe: redis.client.Pipeline) -> None:
        h = {f: v.decode() for f, v in zip(_FIELDS, pipe.hmget(ck, _FIELDS), strict=True) if v}
        if "created" not in h:
            raise NotFound(f"no conversation {conv_id}")
        if h["status"] == "resolved":
            raise Conflict(f"conversation {conv_id} is resolved: reopen it first").because(
                "reopen_first", id=conv_id)
        here, came_from = team_of(hub, h["queue"]), orjson.loads(h.get("tier_from", "[]"))
        if up:
            tags = {t.decode() for t in pipe.smembers(k.conversation_tags(conv_id))}
            to = _step_up(hub, here, h, tags, team)
            if isinstance(to, str):
                exc = Conflict(f"conversation {conv_id} cannot go higher: {to}")
                if not (here and here.escalates_to):  # the top (else: a team since removed)
                    exc.because("top_of_ladder", id=conv_id, queue=h["queue"])
                raise exc
            dest, to_team, came_from = to.queues[0], to, [*came_from, h["queue"]]
        else:
            while came_from and came_from[-1] == h["queue"]:  # moved back by hand since
                came_from = came_from[:-1]
            dest = _step_down(hub, here, h, came_from)
            if dest is None:
                raise Conflict(f"conversation {conv_id} cannot go lower: queue {h['queue']} "
                               "is the bottom of its ladder").because(
                    "bottom_of_ladder", id=conv_id, queue=h["queue"])
            to_team, came_from = team_of(hub, dest), came_from[:-1]
        _write(hub, pipe, conv_id, h, dest, to_team, came_from, reason, by, verb, mid, now,
               via)

    hub.redis.transaction(change, ck)


def _keeps(hub: Hub, assignee: str, queue: str) -> bool:
    user = users.find(hub, assignee) if assignee else None
    return user is not None and any(queue in t.queues for t in hub.config.hub.teams
                                    if t.id in user.teams)


def _write(hub: Hub, pipe: redis.client.Pipeline, conv_id: str, h: dict[str, str], dest: str,
           to_team: TeamSection | None, came_from: list[str], reason: str, by: str, verb: str,
           mid: str, now: int, via: str) -> None:
    k, ck, src = hub.keys, hub.keys.conversation(conv_id), h["queue"]
    previous = h.get("assignee") or None
    released = previous is not None and not _keeps(hub, previous, dest)
    tiers = [tier_of(hub, src), tier_of(hub, dest)]
    team_id = to_team.id if to_team else None
    word = "escalated" if verb == "escalated" else "de-escalated"
    text = (f"{by} {word} it from {src} (tier {tiers[0]}) to {dest} (tier {tiers[1]}"
            + (f", team {team_id})" if team_id else ")")
            + (f"; {previous} no longer has it" if released else "")
            + (f" — {reason}" if reason else ""))
    line = timeline.line(hub, conv_id, h["channel"], by, text, now, {
        "action": verb, "from_queue": src, "to_queue": dest, "from_tier": tiers[0],
        "to_tier": tiers[1], "team": team_id, "released": previous if released else None})
    pipe.multi()
    pipe.hset(ck, mapping={"queue": dest, "updated": now, "escalated": 1 if came_from else 0})
    if came_from:
        pipe.hset(ck, "tier_from", orjson.dumps(came_from))
    else:
        pipe.hdel(ck, "tier_from")
    if h["status"] == "open":  # queued (not while snoozed)
        pipe.zrem(k.queue(src), conv_id)
        pipe.zadd(k.queue(dest), {conv_id: queue_score(int(h.get("priority") or 0),
                                                       int(h["created"]))})
    if released:
        pipe.hdel(ck, "assignee", "released_by")
        pipe.srem(k.user_load(previous), conv_id)
    timeline.write(hub, pipe, conv_id, mid, line)
    event = {"type": f"conversation.{verb}", "conversation_id": conv_id, "from_queue": src,
             "to_queue": dest, "from_tier": tiers[0], "to_tier": tiers[1], "team": team_id,
             "by": by, "assignee": None if released else previous, "message_id": mid,
             "ts": now}
    if not hub.config.hub.security.encrypt_message_text:  # else: the sealed line only
        event["reason"] = reason
    feed.publish(hub, event, pipe)
    if released:
        feed.publish(hub, {"type": "conversation.assigned", "conversation_id": conv_id,
                           "assignee": None, "team": team_id, "by": by, "previous": previous,
                           "queue": dest, "reason": verb.removesuffix("d"), "ts": now}, pipe)
    # the reason stays in the timeline line (it may name the customer's details)
    audit.record(hub, by, f"conversation.{verb}", conv_id, {
        "from_queue": src, "to_queue": dest, "tiers": tiers, "released": previous if released else None,
        "message_id": mid, **({"via": via} if via and via != "token" else {})}, pipe)
