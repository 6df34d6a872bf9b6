"""Identity tests: the conftest's Telegram bot plus a Zalo OA and a mailbox."""

from __future__ import annotations

import pytest

from tests.conftest import write_config
from tests.identity.people import config_extra


@pytest.fixture
def config_file(tmp_path):
    path = write_config(tmp_path / "tongdai.yaml", extra=config_extra())
    return path
