"""The staff every workspace, console and security test works with.

Teams: ``support`` works queue ``general``; ``billing`` works queue ``billing`` (where the
``payment`` tag routes, e.g. "nạp thẻ"). Users (password ``correct-horse-1``): an (agent,
support), bich (agent, billing), cuong (supervisor, support), admin (admin).
"""

from __future__ import annotations

from tongdai.core.hub import Hub
from tongdai.core.workspace import tokens, users

PASSWORD = "correct-horse-1"
TEAMS = """
teams:
  - {id: support, name: "Hỗ trợ", queues: [general], auto_assign: "off", capacity: 3}
  - {id: billing, name: "Thanh toán", queues: [billing], auto_assign: "off", capacity: 3}
"""
PEOPLE = [("an", "agent", ["support"]), ("bich", "agent", ["billing"]),
          ("cuong", "supervisor", ["support"]), ("admin", "admin", [])]


def cheap_argon2(monkeypatch) -> None:
    """argon2id with small parameters: the same code path, a fraction of the CPU (the suite
    hashes hundreds of passwords). Production uses argon2-cffi's defaults."""
    from argon2 import PasswordHasher

    monkeypatch.setattr(users, "_hasher", PasswordHasher(time_cost=1, memory_cost=1024,
                                                         parallelism=1))


def create_people(hub: Hub) -> dict[str, str]:
    """The users above, each with a password and an API token of their role and teams;
    returns name -> token."""
    out = {}
    for name, role, teams in PEOPLE:
        users.create(hub, users.User(name=name, role=role, teams=teams,
                                     display_name=name.title()), PASSWORD)
        out[name] = tokens.create(hub, name, role, teams)
    return out
