"""Console tests: the workspace's two teams, users of every role, and log-in helpers.

Teams: ``support`` works queue ``general``; ``billing`` works queue ``billing`` (where the
``payment`` tag routes, e.g. "nạp thẻ"). Users (password ``correct-horse-1``): an (agent,
support), bich (agent, billing), cuong (supervisor, support), admin (admin). Three failed
log-ins lock a name for a minute.
"""

from __future__ import annotations

import re

import pytest

from core import users
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
  default_language: vi
"""
PEOPLE = [("an", "agent", ["support"]), ("bich", "agent", ["billing"]),
          ("cuong", "supervisor", ["support"]), ("admin", "admin", [])]


@pytest.fixture
def config_file(tmp_path):
    return write_config(tmp_path / "tongdai.yaml", extra=TEAMS)


@pytest.fixture(autouse=True)
def cheap_argon2(monkeypatch):
    """argon2id with small parameters: the same code path, a fraction of the CPU (the machine
    runs several suites at once). Production parameters are argon2-cffi's defaults."""
    from argon2 import PasswordHasher

    monkeypatch.setattr(users, "_hasher", PasswordHasher(time_cost=1, memory_cost=1024,
                                                         parallelism=1))


@pytest.fixture
def people(hub: Hub) -> list[str]:
    for name, role, teams in PEOPLE:
        users.create(hub, users.User(name=name, role=role, teams=teams,
                                     display_name=name.title()), PASSWORD)
    return [p[0] for p in PEOPLE]


def form_token(html: str) -> str:
    m = re.search(r'name="csrf" value="([^"]+)"', html)
    assert m, "the page has no CSRF field"
    return m.group(1)


def log_in(client, name: str, password: str = PASSWORD):
    """Fill in and post the log-in form as a browser would (token cookie + hidden field)."""
    page = client.get("/login")
    return client.post("/login", data={"csrf": form_token(page.get_data(as_text=True)),
                                       "name": name, "password": password})


def console_csrf(client) -> str:
    """The session's CSRF token, as the console page embeds it."""
    html = client.get("/console").get_data(as_text=True)
    m = re.search(r'<meta name="csrf-token" content="([^"]+)">', html)
    assert m, "not on the console page"
    return m.group(1)
