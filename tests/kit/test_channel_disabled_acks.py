"""A disabled channel's automatic acknowledgement is skipped (recorded, not sent), the
customer's message stored as ever; enabled again, the next new conversation is acknowledged."""

from __future__ import annotations

import pytest

from tests.conftest import write_config
from tests.helpers import drain_all, post, run_outbound, tg_update
from tongdai.core.pipeline import channel_admin


@pytest.fixture
def config_file(tmp_path, tg_fake):
    return write_config(tmp_path / "tongdai.yaml", api_base=tg_fake.base_url, extra="""
acknowledgements:
  enabled: true
""")


def test_acknowledgements_skip_a_disabled_channel(client, hub, tg_fake):
    channel_admin.disable(hub, "tg-test", "alice", "migrating the bot")
    post(client, tg_update(1, 555, 1, "Shop ơi"))
    assert drain_all(hub)["stored"] == 1
    run_outbound(hub, wait_s=0)
    assert tg_fake.sent() == []
    (conv,) = [k for k in hub.redis.scan_iter(hub.keys.conversation("*"))
               if k.decode().rpartition(":")[2].isdigit()]
    assert b"an admin disabled this channel: migrating the bot" in hub.redis.hget(
        conv, "ack_refused")

    channel_admin.enable(hub, "tg-test")
    post(client, tg_update(2, 777, 2, "Xin chào"))  # another customer, a new conversation
    drain_all(hub)
    run_outbound(hub, wait_s=0)
    assert [p["chat_id"] for p in tg_fake.sent()] == [777]
