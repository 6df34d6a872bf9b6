"""Workspace tests: a hub with two teams and users of every role (tests/staff.py)."""

from __future__ import annotations

import pytest

from tests.conftest import write_config
from tests.staff import PASSWORD, PEOPLE, TEAMS, create_people  # noqa: F401
from tongdai.core.hub import Hub

# The integrators' receivers these tests run are on this machine (tests/workspace/test_hooks.py)
LOCAL_RECEIVERS = """
security:
  webhook_allowed_networks: [127.0.0.0/8]
"""


@pytest.fixture
def shop(monkeypatch):
    """The business's fake shop API (tests/fakes/shop_api.py), its key in the environment the
    lookups' config reads (``${SHOP_API_KEY}``)."""
    from tests.fakes.shop_api import API_KEY, FakeShopAPI

    monkeypatch.setenv("SHOP_API_KEY", API_KEY)
    with FakeShopAPI() as fake:
        yield fake


@pytest.fixture
def config_file(tmp_path):
    return write_config(tmp_path / "tongdai.yaml", extra=TEAMS + LOCAL_RECEIVERS)


@pytest.fixture
def people(hub: Hub) -> dict[str, str]:
    """name -> an API token carrying that user's role and teams."""
    return create_people(hub)
