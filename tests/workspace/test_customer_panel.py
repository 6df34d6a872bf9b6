"""The customer panel's history: a customer's past conversations, newest first, only those the
caller may see (so nobody asks the customer to repeat themselves)."""

from __future__ import annotations

import time

import pytest

from tests.conftest import write_config
from tests.helpers import auth, drain_all, post, tg_update
from tests.workspace.conftest import TEAMS


@pytest.fixture
def config_file(tmp_path):
    # resolved conversations do not reopen: the next message starts a new one
    return write_config(tmp_path / "tongdai.yaml",
                        extra=TEAMS + "conversations:\n  reopen_window: 1ms\n")


def test_past_conversations_are_listed_for_those_who_see_them(client, hub, people):
    post(client, tg_update(1, 4242, 1, "Đơn #A1 của mình đâu rồi?"))
    drain_all(hub)
    admin = auth(people["admin"])
    first = client.get("/api/v1/conversations", headers=admin).json["items"][0]
    assert client.post(f"/api/v1/conversations/{first['id']}/resolve",
                       headers=admin).status_code == 200
    time.sleep(0.01)
    post(client, tg_update(2, 4242, 2, "Shop ơi nạp thẻ giúp mình"))  # -> billing
    drain_all(hub)
    cust = first["customer_id"]

    got = client.get(f"/api/v1/customers/{cust}", headers=admin).json
    assert [(c["queue"], c["status"]) for c in got["conversations"]] == [
        ("billing", "open"), ("general", "resolved")]
    # the support agent sees the customer through the general conversation, not billing's
    an = client.get(f"/api/v1/customers/{cust}", headers=auth(people["an"])).json
    assert [c["id"] for c in an["conversations"]] == [first["id"]]
    bich = client.get(f"/api/v1/customers/{cust}", headers=auth(people["bich"])).json
    assert [c["queue"] for c in bich["conversations"]] == ["billing"]
