"""Security tests: the workspace's two teams, users of every role, each with an API token.

Teams: ``support`` works queue ``general``; ``billing`` works queue ``billing`` (where the
``payment`` tag routes, e.g. "nạp thẻ"). Users (password ``correct-horse-1``): an (agent,
support), bich (agent, billing), cuong (supervisor, support), admin (admin). Three failed
log-ins lock a name for a minute.
"""

from __future__ import annotations

import pytest

from core import tokens, users
from core.hub import Hub
from tests.conftest import write_config

PASSWORD = "correct-horse-1"
TEAMS = """
teams:
  - {id: support, name: "Hỗ trợ", queues: [general], auto_assign: "off", capacity: 3}
  - {id: billing, name: "Thanh toán", queues: [billing], auto_assign: "off", capacity: 3}
console:
  login_attempts: 3
  lockout: 60s
"""
PEOPLE = [("an", "agent", ["support"]), ("bich", "agent", ["billing"]),
          ("cuong", "supervisor", ["support"]), ("admin", "admin", [])]


@pytest.fixture
def config_file(tmp_path):
    return write_config(tmp_path / "tongdai.yaml", extra=TEAMS)


@pytest.fixture(autouse=True)
def cheap_argon2(monkeypatch):
    """argon2id with small parameters (same code path, a fraction of the CPU)."""
    from argon2 import PasswordHasher

    monkeypatch.setattr(users, "_hasher", PasswordHasher(time_cost=1, memory_cost=1024,
                                                         parallelism=1))


@pytest.fixture
def people(hub: Hub) -> dict[str, str]:
    """The users above; returns name -> an API token carrying that user's role and teams."""
    out = {}
    for name, role, teams in PEOPLE:
        users.create(hub, users.User(name=name, role=role, teams=teams,
                                     display_name=name.title()), PASSWORD)
        out[name] = tokens.create(hub, name, role, teams)
    return out
