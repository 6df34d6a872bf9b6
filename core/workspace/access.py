"""Who may see and do what.

Roles: an **agent** sees and works the conversations of their teams' queues (and any assigned
to them); a **supervisor** sees the same and may also move other people's work (reassign,
release, override); an **admin** sees everything and manages users, settings, integrations.
Teams map to queues in the config (``teams[].queues``). API tokens carry a role and teams just
like users do.

Conversations a principal may not see answer 404, not 403: their existence is not told.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

from tongdai.core.errors import Forbidden, NotFound
from tongdai.core.hub import Hub
from tongdai.core.models import Conversation

RANK = {"agent": 1, "supervisor": 2, "admin": 3}


@dataclass(frozen=True)
class Principal:
    name: str                       # user name (or token name): the author of what they do
    role: str                       # agent | supervisor | admin
    teams: frozenset[str] = field(default_factory=frozenset)
    via: str = "token"              # token | session | telegram | email
    language: str = ""

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"

    def at_least(self, role: str) -> bool:
        return RANK.get(self.role, 0) >= RANK[role]


def require(principal: Principal, role: str) -> None:
    """Forbidden unless the principal's role is ``role`` or above."""
    if not principal.at_least(role):
        raise Forbidden(f"this needs the {role} role (you are {principal.role})")


def team_queues(hub: Hub, teams: frozenset[str] | set[str]) -> set[str]:
    return {q for t in hub.config.hub.teams if t.id in teams for q in t.queues}


def visible_queues(hub: Hub, principal: Principal) -> set[str] | None:
    """The queues whose conversations the principal sees; None means all (admins)."""
    if principal.is_admin:
        return None
    return team_queues(hub, principal.teams)


def teams_of_queue(hub: Hub, queue: str) -> list[str]:
    return [t.id for t in hub.config.hub.teams if queue in t.queues]


def can_see(hub: Hub, principal: Principal, conv: Conversation) -> bool:
    queues = visible_queues(hub, principal)
    return queues is None or conv.queue in queues or conv.assignee == principal.name


def conversation(hub: Hub, principal: Principal, conv_id: str) -> Conversation:
    """The conversation, if the principal may see it (else NotFound, as if it did not exist)."""
    from tongdai.core.pipeline import store

    conv = store.get_conversation(hub, conv_id)
    if not can_see(hub, principal, conv):
        raise NotFound(f"no conversation {conv_id}")
    return conv


def conversations_of(hub: Hub, principal: Principal, customer_id: str
                     ) -> Iterator[Conversation]:
    """The customer's conversations the principal may see, newest first (among the newest
    200), read one by one as the caller asks for them."""
    from tongdai.core.pipeline import store

    ids = [c.decode() for c in hub.redis.zrevrange(
        hub.keys.customer_conversations(customer_id), 0, 199)]
    for cid in ids:
        try:
            conv = store.get_conversation(hub, cid)
        except NotFound:
            continue
        if can_see(hub, principal, conv):
            yield conv


def customer(hub: Hub, principal: Principal, customer_id: str) -> None:
    """NotFound unless the principal sees at least one of the customer's conversations."""
    if principal.is_admin:
        return
    if next(conversations_of(hub, principal, customer_id), None) is None:
        raise NotFound(f"no customer {customer_id}")
