"""Claim, assign/transfer, presence and teams (core/assignment.py, core/presence.py)."""

from __future__ import annotations

from typing import Literal

from flask import jsonify
from pydantic import Field
from spectree import Response as Resp

from tongdai.core.errors import Forbidden
from tongdai.core.workspace import assignment, presence, users
from tongdai.webhooks.api import bp, hub, principal, spec
from tongdai.webhooks.api.schemas import ERRORS, ConversationOut, Model, Strict

TAG = "assignment"


class AssignIn(Strict):
    assignee: str | None = Field(None, max_length=64,
                                 description="user name; null hands it back to the queue")
    team: str | None = Field(None, max_length=64,
                             description="team id: moves it to that team's first queue")
    why: str = Field("", max_length=2000)


class PresenceIn(Strict):
    status: Literal["online", "away", "offline"]


class PresenceOut(Model):
    user: str
    display_name: str
    status: str
    manual: bool
    since_ts: int | None
    last_seen_ts: int | None


class PresencePage(Model):
    items: list[PresenceOut]
    next_cursor: str | None


class MemberOut(Model):
    name: str
    display_name: str
    role: str
    status: str
    load: int
    capacity: int


class TeamOut(Model):
    id: str
    name: str
    queues: list[str]
    auto_assign: str
    capacity: int
    release_on_offline: bool
    tier: int
    escalates_to: list[str]  # the teams a step up (core/workspace/tiers.py)
    members: list[MemberOut]


class TeamPage(Model):
    items: list[TeamOut]
    next_cursor: str | None


@bp.post("/conversations/<conv_id>/claim")
@spec.validate(resp=Resp(HTTP_200=ConversationOut, **ERRORS), tags=[TAG])
def claim_conversation(conv_id: str):
    """Take a conversation ("take" in the console). Atomic: of two agents taking it at once,
    one gets it and the other 409 ``already taken by NAME``; 409 too at capacity."""
    return jsonify(assignment.claim(hub(), principal(), conv_id).to_api())


@bp.post("/conversations/<conv_id>/assign")
@spec.validate(json=AssignIn, resp=Resp(HTTP_200=ConversationOut, **ERRORS), tags=[TAG])
def assign_conversation(conv_id: str, json: AssignIn):
    """Transfer to an agent (``assignee``) and/or a team (``team``: its first queue);
    ``assignee`` null hands it back to the queue. Someone else's conversation needs a
    supervisor of its team, or an admin; agents' transfers respect capacity (409)."""
    conv = assignment.assign(hub(), principal(), conv_id, json.assignee, json.team, json.why)
    return jsonify(conv.to_api())


def _presence_out(states: dict[str, presence.Presence], people: list[users.User]) -> list[dict]:
    return [{**states[u.name].to_api(), "display_name": u.display_name or u.name}
            for u in people]


@bp.get("/presence")
@spec.validate(resp=Resp(HTTP_200=PresencePage, **ERRORS), tags=[TAG])
def list_presence():
    """Every enabled user's presence: online, away or offline, since when, last activity."""
    people = [u for u in users.all_users(hub()) if not u.disabled]
    states = presence.get_many(hub(), [u.name for u in people])
    return jsonify({"items": _presence_out(states, people), "next_cursor": None})


@bp.put("/presence")
@spec.validate(json=PresenceIn, resp=Resp(HTTP_200=PresenceOut, **ERRORS), tags=[TAG])
def put_presence(json: PresenceIn):
    """Set your own presence. ``away`` and ``offline`` hold until you change them (activity
    does not undo them); going offline hands your conversations back to the queue where your
    team's ``release_on_offline`` is on."""
    p = principal()
    user = users.find(hub(), p.name)
    if user is None:
        raise Forbidden(f"{p.name} is not a user: only users have a presence")
    assignment.set_presence(hub(), p, json.status)
    return jsonify(_presence_out(presence.get_many(hub(), [user.name]), [user])[0])


@bp.get("/teams")
@spec.validate(resp=Resp(HTTP_200=TeamPage, **ERRORS), tags=[TAG])
def list_teams():
    """Your teams (admins: all) with their members' presence, load and capacity, their tier
    and the teams they escalate to."""
    h, p = hub(), principal()
    teams = [t for t in h.config.hub.teams if p.is_admin or t.id in p.teams]
    people = [u for u in users.all_users(h) if not u.disabled]
    states = presence.get_many(h, [u.name for u in people])
    load = assignment.loads(h, [u.name for u in people])
    items = []
    for t in teams:
        members = [{"name": u.name, "display_name": u.display_name or u.name, "role": u.role,
                    "status": states[u.name].status, "load": load[u.name],
                    "capacity": assignment.capacity(h, u)}
                   for u in people if t.id in u.teams]
        items.append({"id": t.id, "name": t.name or t.id, "queues": t.queues,
                      "auto_assign": t.auto_assign, "capacity": t.capacity,
                      "release_on_offline": t.release_on_offline, "tier": t.tier,
                      "escalates_to": [x.team for x in t.escalates_to], "members": members})
    return jsonify({"items": items, "next_cursor": None})
