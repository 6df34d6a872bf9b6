"""Security tests: the workspace's two teams, users of every role, each with an API token.

Teams: ``support`` works queue ``general``; ``billing`` works queue ``billing`` (where the
``payment`` tag routes, e.g. "nạp thẻ"). Users (password ``correct-horse-1``): an (agent,
support), bich (agent, billing), cuong (supervisor, support), admin (admin). Three failed
log-ins lock a name for a minute.
"""

from __future__ import annotations

import pytest

from tests.conftest import write_config
from tests.staff import PASSWORD, PEOPLE, create_people  # noqa: F401
from tests.staff import TEAMS as STAFF_TEAMS
from tongdai.core.hub import Hub

TEAMS = STAFF_TEAMS + """
console:
  login_attempts: 3
  lockout: 60s
"""


@pytest.fixture
def config_file(tmp_path):
    return write_config(tmp_path / "tongdai.yaml", extra=TEAMS)


@pytest.fixture
def people(hub: Hub) -> dict[str, str]:
    """name -> an API token carrying that user's role and teams."""
    return create_people(hub)
