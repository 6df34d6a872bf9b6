"""Fixtures for tests with an email channel: a recording aiosmtpd relay (where replies go),
a free port for the hub's SMTP listener, and the listener itself (``tongdai smtp``) in this
process. Import the fixtures into a conftest or test module to use them."""

from __future__ import annotations

import pytest

from tests.conftest import free_port
from tests.fakes.smtp_peer import SmtpPeer


@pytest.fixture
def relay():
    with SmtpPeer() as peer:
        yield peer


@pytest.fixture
def listen_port() -> int:
    return free_port()


@pytest.fixture
def listener(hub):
    """The hub's SMTP listener (``tongdai smtp``), in this process."""
    from tongdai.webhooks import smtp

    controllers = smtp.start(hub)
    yield controllers[0]
    for c in controllers:
        c.stop()
