"""Auto-assignment: waiting conversations go to a team's online agents with room.

Teams with ``auto_assign`` (``round_robin`` or ``least_loaded``) get new and reopened
conversations at once, and their queues handed out when an agent comes online or gets room.
Every assignment goes through claim.lua (``assignment.run_claim``) and only takes a conversation
that is still unassigned, so it never races a manual claim. The ``assign`` reactor and tick
that call this live in ``core/workspace/assignment.py``.
"""

from __future__ import annotations

from tongdai.core.config import TeamSection
from tongdai.core.errors import NotFound
from tongdai.core.hub import Hub
from tongdai.core.models import ConversationStatus
from tongdai.core.pipeline import store
from tongdai.core.workspace import assignment, presence, users
from tongdai.core.workspace.assignment import SYSTEM

FILL_SCAN = 500          # queue entries looked at per team and round when filling agents up


class Agents:
    """A team's online members with their load and capacity, for one round of assigning."""

    def __init__(self, hub: Hub, t: TeamSection) -> None:
        members = [u for u in users.all_users(hub) if t.id in u.teams and not u.disabled]
        states = presence.get_many(hub, [u.name for u in members])
        online = [u for u in members if states[u.name].status == "online"]
        self.load = assignment.loads(hub, [u.name for u in online])
        self.cap = {u.name: assignment.capacity(hub, u) for u in online}

    def with_room(self, exclude: str | None) -> list[str]:
        return sorted(n for n, c in self.cap.items()
                      if n != exclude and (c == 0 or self.load[n] < c))


def _pick(hub: Hub, t: TeamSection, names: list[str], agents: Agents) -> str:
    if t.auto_assign == "least_loaded":
        return min(names, key=lambda n: (agents.load[n], n))
    last = hub.redis.get(hub.keys.team_pointer(t.id))
    last = last.decode() if last else ""
    return next((n for n in names if n > last), names[0])  # the next name after the last one


def _auto_one(hub: Hub, t: TeamSection, conv_id: str, agents: Agents,
              exclude: str | None) -> str | None:
    """Give one waiting conversation to an online agent of team ``t`` with room, if any."""
    while names := agents.with_room(exclude):
        name = _pick(hub, t, names, agents)
        code, val = assignment.run_claim(
            hub, conv_id, name, seen="", by=SYSTEM, reason="auto", cap=agents.cap[name],
            need="open", team_id=t.id, pointer=t.id if t.auto_assign == "round_robin" else None)
        if code == 1:
            agents.load[name] += 1
            return name
        if code != -1:  # taken meanwhile, no longer open: nothing to do
            return None
        agents.load[name] = int(val)  # full after all (a claim elsewhere): try the next one
    return None


def _auto_team(hub: Hub, queue: str) -> TeamSection | None:
    return next((t for t in assignment.teams_of_queue(hub, queue) if t.auto_assign != "off"),
                None)


def fill(hub: Hub, t: TeamSection) -> int:
    """Give team ``t``'s waiting conversations (most urgent first) to its online agents with
    room. Returns how many were assigned."""
    if t.auto_assign == "off":
        return 0
    agents = Agents(hub, t)
    if not agents.with_room(None):
        return 0
    rows = []
    for q in t.queues:
        rows += [(s, m.decode()) for m, s in
                 hub.redis.zrange(hub.keys.queue(q), 0, FILL_SCAN - 1, withscores=True)]
    rows.sort()
    pipe = hub.redis.pipeline(transaction=False)
    for _, cid in rows:
        pipe.hmget(hub.keys.conversation(cid), "assignee", "status", "released_by")
    done = 0
    for (_, cid), (assignee, status, released_by) in zip(rows, pipe.execute(), strict=True):
        if assignee or status != b"open":
            continue
        if _auto_one(hub, t, cid, agents, released_by.decode() if released_by else None):
            done += 1
        if not agents.with_room(None):
            break
    return done


def opened(hub: Hub, conv_id: str, crews: dict[str, Agents]) -> None:
    """A new or reopened conversation: a reopened one whose agent is offline goes back to the
    queue (if their team says so); an unassigned one goes to an online agent (auto teams).
    ``crews``: the teams' agents, read once per batch of events."""
    try:
        conv = store.get_conversation(hub, conv_id)
    except NotFound:
        return
    if conv.assignee:
        if presence.get(hub, conv.assignee).status != "offline":
            return
        user = users.find(hub, conv.assignee)
        teams = assignment.teams_of_queue(hub, conv.queue)
        mine = [t for t in teams if user is not None and t.id in user.teams] or teams
        if not any(t.release_on_offline for t in mine):
            return
        code, _ = assignment.run_claim(hub, conv_id, None, seen=conv.assignee, by=SYSTEM,
                                       reason="offline", team_id=mine[0].id if mine else "")
        if code != 1:
            return
    t = _auto_team(hub, conv.queue)
    if t is not None and conv.status == ConversationStatus.OPEN:
        if t.id not in crews:
            crews[t.id] = Agents(hub, t)
        _auto_one(hub, t, conv_id, crews[t.id], None)

