"""Console tests: the workspace's two teams, users of every role, and log-in helpers.

Teams: ``support`` works queue ``general``; ``billing`` works queue ``billing`` (where the
``payment`` tag routes, e.g. "nạp thẻ"). Users (password ``correct-horse-1``): an (agent,
support), bich (agent, billing), cuong (supervisor, support), admin (admin). Three failed
log-ins lock a name for a minute.
"""

from __future__ import annotations

import re

import pytest

from tests.conftest import write_config
from tests.staff import PASSWORD, PEOPLE, create_people
from tests.staff import TEAMS as STAFF_TEAMS
from tongdai.core.hub import Hub

TEAMS = STAFF_TEAMS + """
console:
  login_attempts: 3
  lockout: 60s
  default_language: vi
"""


@pytest.fixture
def config_file(tmp_path):
    return write_config(tmp_path / "tongdai.yaml", extra=TEAMS)


@pytest.fixture
def people(hub: Hub) -> list[str]:
    create_people(hub)
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
