"""The reply channel picker's answers (issue #17): a customer on Telegram and on a mailbox
whose channel has no outbound relay. The mail channel cannot send, so it is unreachable with
the reason (and a code the console translates); a reply without a channel goes out on the
conversation's own channel, not on the customer's most recent one."""

from __future__ import annotations

import pytest

from tests.conftest import write_config
from tests.helpers import auth
from tests.identity.people import feed, mail, tg_text
from tongdai.core.identity import graph as identity
from tongdai.core.pipeline import store


@pytest.fixture
def config_file(tmp_path):
    from tests.identity.people import config_extra

    return write_config(tmp_path / "tongdai.yaml", extra=config_extra())


def test_a_mail_channel_without_a_relay_is_unreachable_and_replies_keep_their_channel(
        hub, client, admin_token):
    feed(hub, tg_text(9301, "Chào shop, mình hỏi đơn hàng", name="Nguyễn Văn An"))
    feed(hub, mail("an.nguyen@example.vn", "Đơn #55 giao chưa?", dmarc=True))  # later
    tg_conv, mail_conv = store.get_conversation(hub, "1"), store.get_conversation(hub, "2")
    assert (tg_conv.channel_id, mail_conv.channel_id) == ("tg-test", "mail")
    identity.merge(hub, tg_conv.customer_id, mail_conv.customer_id, "admin", "same person")

    items = client.get("/api/v1/conversations/1/channels", headers=auth(admin_token)).json["items"]
    by_channel = {c["channel_id"]: c for c in items}
    assert by_channel["tg-test"]["reachable"] is True
    assert by_channel["mail"]["reachable"] is False
    assert by_channel["mail"]["reason_code"] == "cannot_send"
    assert "no outbound relay" in by_channel["mail"]["reason"]
    assert [c["channel_id"] for c in items] == ["tg-test", "mail"]  # reachable first

    r = client.post("/api/v1/conversations/1/messages", json={"text": "Dạ shop xem ngay ạ"},
                    headers=auth(admin_token, "k-1"))
    assert r.status_code == 201 and r.json["channel_id"] == "tg-test"
    r = client.post("/api/v1/conversations/2/messages", json={"text": "Dạ shop xem ngay ạ"},
                    headers=auth(admin_token, "k-2"))
    # the mail conversation's own channel cannot send: the customer's reachable one instead
    assert r.status_code == 201 and r.json["channel_id"] == "tg-test"
    r = client.post("/api/v1/conversations/1/messages",
                    json={"text": "Dạ shop xem ngay ạ", "channel_id": "mail"},
                    headers=auth(admin_token, "k-3"))
    assert r.status_code == 409 and "no outbound relay" in r.json["error"]["message"]
