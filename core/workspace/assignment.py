"""Who works a conversation: claims, transfers, auto-assignment, and presence's consequences.

Every change of assignee (or of queue) goes through one script, ``core/lua/claim.lua``: it
checks that the assignee is still the one the caller saw, the new assignee's capacity and the
status, then writes the conversation, the agents' load sets, ``conversation.assigned`` on the
feed and the audit entry in one step. So two agents taking the same conversation, or an agent
and the auto-assigner, can never both win.

Load: ``td:user:{name}:load`` holds the agent's assigned conversations that are not resolved
(claim.lua keeps it; ``store.set_status`` and ingest's reopening keep it in step with the
status), so capacity checks cost one SCARD.

Rules (``assign``): agents act on unassigned conversations of their teams and on their own;
someone else's needs a supervisor of a team working its queue, or an admin. Capacity (the
user's, else their teams' largest) stops claims and agents' transfers, not a supervisor's
explicit assignment.

Auto-assignment (handing waiting conversations to online agents) is
``core/workspace/autoassign.py``; its ``assign`` reactor and tick are registered here.
"""

from __future__ import annotations

import logging

import redis

from tongdai.core.config import TeamSection
from tongdai.core.errors import BadRequest, Conflict, Forbidden, NotFound
from tongdai.core.hub import Hub
from tongdai.core.models import Conversation, ConversationStatus
from tongdai.core.pipeline import feed, store
from tongdai.core.workspace import access, presence, timeline, users
from tongdai.core.workspace.access import Principal
from tongdai.core.workspace.audit import AUDIT_MAXLEN

log = logging.getLogger(__name__)

SYSTEM = "system"        # the actor of automatic changes (auto-assignment, presence timing)


# -- teams, capacity, load --------------------------------------------------------------------
def find_team(hub: Hub, team_id: str) -> TeamSection | None:
    return next((t for t in hub.config.hub.teams if t.id == team_id), None)


def teams_of_queue(hub: Hub, queue: str) -> list[TeamSection]:
    return [t for t in hub.config.hub.teams if queue in t.queues]


def capacity(hub: Hub, user: users.User) -> int:
    """Open conversations the user may hold: their own setting, else the largest of their
    teams' (0: no limit, for users in no team)."""
    if user.capacity:
        return user.capacity
    return max((t.capacity for t in hub.config.hub.teams if t.id in user.teams), default=0)


def load(hub: Hub, name: str) -> int:
    """The user's assigned conversations that are not resolved."""
    return hub.redis.scard(hub.keys.user_load(name))


def loads(hub: Hub, names: list[str]) -> dict[str, int]:
    pipe = hub.redis.pipeline(transaction=False)
    for n in names:
        pipe.scard(hub.keys.user_load(n))
    return dict(zip(names, pipe.execute(), strict=True))


def _team_for(hub: Hub, queue: str, user: users.User | None) -> str:
    """The team a conversation of ``queue`` is worked by (the assignee's, when several)."""
    teams = teams_of_queue(hub, queue)
    mine = [t for t in teams if user is not None and t.id in user.teams]
    return (mine or teams)[0].id if (mine or teams) else ""


def _name(hub: Hub, name: str) -> str:
    """How people are named in messages: their display name."""
    u = users.find(hub, name)
    return (u.display_name or u.name) if u else name


def run_claim(hub: Hub, conv_id: str, new: str | None, *, seen: str | None, by: str,
              reason: str, cap: int = 0, need: str = "", queue: str = "", team_id: str = "",
              why: str = "", released_by: str = "", pointer: str | None = None
              ) -> tuple[int, str]:
    """core/lua/claim.lua; returns its (code, value). The change's line goes on the
    timeline in the same script (core/workspace/timeline.py)."""
    k, now = hub.keys, presence.now_ms()
    text = _line_text(new or "", seen or "", by, reason, queue, team_id, why)
    line = timeline.line(hub, conv_id, "", by, text, now, {
        "action": "assigned", "reason": reason, "assignee": new or None,
        "previous": seen or None, "queue": queue or None, "team": team_id or None})
    res = hub.scripts.claim(
        keys=[k.conversation(conv_id), k.audit(), k.team_pointer(pointer or team_id or "-")],
        args=[conv_id, new or "", seen or "", cap, need, queue, team_id, by,
              "1" if pointer else "0", now, reason, why, AUDIT_MAXLEN,
              released_by, timeline.lua_blob(line)])
    val = res[1].decode() if isinstance(res[1], bytes) else str(res[1])
    if int(res[0]) == -3:
        raise NotFound(f"no conversation {conv_id}")
    return int(res[0]), val


def _line_text(new: str, seen: str, by: str, reason: str, queue: str, team: str,
               why: str) -> str:
    """The timeline's sentence for a change of assignee and/or queue."""
    if reason == "auto":
        text = f"auto-assigned to {new}"
    elif reason == "offline":
        text = f"{seen} went offline: back to the queue"
    elif reason == "claim":
        text = f"{by} took the conversation"
    elif new == seen:  # only the queue changes
        text = f"{by} moved it"
    elif not new:
        text = (f"{by} handed it back to the queue" if seen == by
                else f"{by} took it from {seen}, back to the queue")
    elif seen:
        text = f"{by} transferred it from {seen} to {new}"
    else:
        text = f"{by} assigned it to {new}"
    if queue:
        text += f" to team {team} (queue {queue})" if team else f" to queue {queue}"
    return text + (f" — {why}" if why else "")


def _taker(hub: Hub, name: str) -> users.User:
    u = users.find(hub, name)
    if u is None or u.disabled:
        raise Forbidden(f"{name} is not an enabled user: only users take conversations")
    return u


# -- claim and assign -------------------------------------------------------------------------
def claim(hub: Hub, principal: Principal, conv_id: str) -> Conversation:
    """Take a conversation the principal can see. Conflict when someone else has it ("already
    taken by NAME"), when the principal is at capacity, or when it is resolved."""
    conv = access.conversation(hub, principal, conv_id)
    if conv.assignee == principal.name:
        return conv
    if conv.assignee:
        raise Conflict(f"already taken by {_name(hub, conv.assignee)}").because(
            "already_taken", by=_name(hub, conv.assignee))
    user = _taker(hub, principal.name)
    cap = capacity(hub, user)
    code, val = run_claim(hub, conv_id, user.name, seen="", by=user.name, reason="claim",
                          cap=cap, need="active", team_id=_team_for(hub, conv.queue, user))
    if code == 0:
        raise Conflict(f"already taken by {_name(hub, val)}").because(
            "already_taken", by=_name(hub, val))
    if code == -1:
        raise Conflict(f"you are at capacity ({val} open conversations of {cap}): resolve or "
                       "hand one back first, or ask a supervisor to assign it to you").because(
            "at_capacity", n=val, cap=cap)
    if code == -2:
        raise Conflict(f"conversation {conv_id} is {val}: reopen it first").because(
            "reopen_first", id=conv_id)
    return store.get_conversation(hub, conv_id)


def may_act(hub: Hub, principal: Principal, conv: Conversation) -> None:
    """Forbidden unless the principal may move this conversation (someone else's needs a
    supervisor of a team working its queue, or an admin)."""
    if principal.is_admin or conv.assignee in (None, principal.name):
        return
    if principal.at_least("supervisor"):
        if conv.queue in access.team_queues(hub, principal.teams):
            return
        raise Forbidden(f"conversation {conv.id} is in queue {conv.queue}, not one of your "
                        "teams': its supervisors or an admin can reassign it").because(
            "not_your_queue", id=conv.id, queue=conv.queue)
    raise Forbidden(f"conversation {conv.id} is {_name(hub, conv.assignee)}'s: taking it over "
                    "needs a supervisor").because("needs_supervisor", id=conv.id,
                                                  who=_name(hub, conv.assignee))


def assign(hub: Hub, principal: Principal, conv_id: str, assignee: str | None,
           team: str | None = None, why: str = "") -> Conversation:
    """Give a conversation to ``assignee`` (None: back to the queue) and/or move it to
    ``team``'s queue (its first, unless the conversation is in one of the team's already)."""
    conv = access.conversation(hub, principal, conv_id)
    may_act(hub, principal, conv)
    queue = conv.queue
    if team is not None:
        t = find_team(hub, team)
        if t is None:
            known = ", ".join(x.id for x in hub.config.hub.teams) or "none configured"
            raise BadRequest(f"no team {team!r} (teams: {known})")
        if not t.queues:
            raise BadRequest(f"team {team!r} works no queue (teams[].queues in the config)")
        if queue not in t.queues:
            queue = t.queues[0]
    target = None
    if assignee is not None:
        target = users.find(hub, assignee)
        if target is None or target.disabled:
            raise BadRequest(f"no enabled user {assignee!r}")
        working = {x.id for x in teams_of_queue(hub, queue)}
        if target.role != "admin" and not working & set(target.teams):
            raise BadRequest(f"{assignee} is in no team working queue {queue} "
                             f"(teams: {', '.join(sorted(working)) or 'none'})")
    # Capacity binds agents (taking, or handing to a colleague), not a supervisor's decision.
    cap = capacity(hub, target) if target and not principal.at_least("supervisor") else 0
    released_by = principal.name if assignee is None and conv.assignee == principal.name else ""
    code, val = run_claim(hub, conv_id, assignee, seen=conv.assignee, by=principal.name,
                          reason="assign" if assignee else "release", cap=cap,
                          queue=queue if queue != conv.queue else "",
                          team_id=team or _team_for(hub, queue, target), why=why,
                          released_by=released_by)
    if code == 0:
        now = f"assigned to {_name(hub, val)}" if val else "unassigned"
        raise Conflict(f"conversation {conv_id} changed meanwhile (now {now}); reload and retry"
                       ).because("changed_meanwhile", id=conv_id)
    if code == -1:
        raise Conflict(f"{_name(hub, assignee)} is at capacity ({val} open conversations of "
                       f"{cap}); a supervisor can assign it anyway").because(
            "assignee_at_capacity", who=_name(hub, assignee), n=val, cap=cap)
    return store.get_conversation(hub, conv_id)


def release_all(hub: Hub, name: str, by: str, reason: str = "offline") -> list[str]:
    """Hand an agent's open conversations back to their queues, where the team working them
    has ``release_on_offline`` (the default). Returns the conversations released."""
    released = []
    for raw in hub.redis.smembers(hub.keys.user_load(name)):
        cid = raw.decode()
        try:
            conv = store.get_conversation(hub, cid)
        except NotFound:
            conv = None
        if conv is None or conv.assignee != name or conv.status == ConversationStatus.RESOLVED:
            _drop_stale(hub, name, cid)
            continue
        user = users.find(hub, name)
        teams = teams_of_queue(hub, conv.queue)
        mine = [t for t in teams if user is not None and t.id in user.teams] or teams
        if not any(t.release_on_offline for t in mine):
            continue
        code, _ = run_claim(hub, cid, None, seen=name, by=by, reason=reason,
                            team_id=mine[0].id if mine else "")
        if code == 1:
            released.append(cid)
    return released


def _drop_stale(hub: Hub, name: str, conv_id: str) -> bool:
    """Remove a conversation from a load set it no longer belongs in (it was erased, or a
    change raced); checked again under WATCH so a concurrent claim is not undone."""
    ck = hub.keys.conversation(conv_id)
    with hub.redis.pipeline() as pipe:
        try:
            pipe.watch(ck)
            assignee, status = pipe.hmget(ck, "assignee", "status")
            if assignee == name.encode() and status not in (None, b"resolved"):
                return False
            pipe.multi()
            pipe.srem(hub.keys.user_load(name), conv_id)
            pipe.execute()
            return True
        except redis.WatchError:
            return False


# -- presence ---------------------------------------------------------------------------------
def set_presence(hub: Hub, principal: Principal, status: str, now: int | None = None
                 ) -> presence.Presence:
    """The principal's own toggle; going offline hands their conversations back."""
    changed, _ = presence.set_status(hub, principal.name, status, now)
    if changed and status == "offline":
        release_all(hub, principal.name, by=principal.name)
    return presence.get(hub, principal.name)


@feed.tick("presence", 15.0)
def presence_tick(hub: Hub, now: int | None = None) -> list[tuple[str, str]]:
    """Away after ``console.away_after`` without activity, offline after
    ``console.offline_after`` (conversations handed back). Returns the changes."""
    cfg = hub.config.hub.console
    changes = presence.timeouts(hub, now if now is not None else presence.now_ms(),
                                cfg.away_after, cfg.offline_after)
    for name, status in changes:
        if status == "offline":
            release_all(hub, name, by=SYSTEM)
    return changes


# -- auto-assignment: its reactor and tick (the rest is core/workspace/autoassign.py) ---------
@feed.reactor("assign")
def on_feed(hub: Hub, events: list[feed.FeedEvent]) -> None:
    """Auto-assignment. New and reopened conversations go to an online agent with room at
    once; when an agent comes online or gets room (a resolve, a release), the team's waiting
    conversations are handed out. Redelivered events change nothing: the script only assigns
    a conversation that is still unassigned."""
    from tongdai.core.workspace import autoassign  # here, not at the top: it imports this module

    to_fill: set[str] = set()
    crews: dict[str, autoassign.Agents] = {}
    for e in events:
        d = e.data
        opened = e.type == "message.created" and d.get("opened") in (1, 2)
        if opened or e.type == "conversation.open":  # new, reopened by a message or by hand
            autoassign.opened(hub, str(d["conversation_id"]), crews)
        elif e.type == "presence.changed":
            crews.clear()  # who is online changed: read the teams again
            u = users.find(hub, d.get("user", "")) if d.get("status") == "online" else None
            to_fill.update(u.teams if u else ())
            # the toggle and the tick release at once; this finishes what a crash between
            # their two steps left (nothing to do otherwise), if they are still offline
            name = d.get("user", "")
            if d.get("status") == "offline" and presence.get(hub, name).status == "offline":
                release_all(hub, name, by=SYSTEM)  # (its events fill the teams next round)
        elif e.type in ("conversation.escalated", "conversation.deescalated"):
            # waiting in another team's queue now (core/workspace/tiers.py)
            to_fill.update(t.id for t in teams_of_queue(hub, d.get("to_queue") or ""))
        elif e.type == "conversation.resolved" or (
                e.type == "conversation.assigned" and d.get("assignee") is None):
            q = d.get("queue") or hub.redis.hget(hub.keys.conversation(
                str(d["conversation_id"])), "queue")
            q = q.decode() if isinstance(q, bytes) else q
            to_fill.update(t.id for t in teams_of_queue(hub, q or ""))
    for tid in sorted(to_fill):
        t = find_team(hub, tid)
        if t is not None:
            autoassign.fill(hub, t)


def reconcile_loads(hub: Hub) -> int:
    """Drop conversations from load sets they no longer belong in (an erased customer's,
    say): capacity must not count ghosts. Returns how many were dropped."""
    dropped = 0
    for u in users.all_users(hub):
        cids = [c.decode() for c in hub.redis.smembers(hub.keys.user_load(u.name))]
        if not cids:
            continue
        pipe = hub.redis.pipeline(transaction=False)
        for cid in cids:
            pipe.hmget(hub.keys.conversation(cid), "assignee", "status")
        for cid, (assignee, status) in zip(cids, pipe.execute(), strict=True):
            if assignee != u.name.encode() or status in (None, b"resolved"):
                dropped += _drop_stale(hub, u.name, cid)
    return dropped


@feed.tick("assign", 30.0)
def assign_tick(hub: Hub) -> int:
    """Safety net for the reactor: hand out what waits in every auto-assigning team (after
    clearing stale load)."""
    from tongdai.core.workspace import autoassign  # here, not at the top: it imports this module

    reconcile_loads(hub)
    return sum(autoassign.fill(hub, t) for t in hub.config.hub.teams if t.auto_assign != "off")
