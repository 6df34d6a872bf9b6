"""One customer's timeline across channels (GET /customers/{id}/timeline, issue #17): a
customer who writes on Telegram and, linked by a link code, by mail has two conversations;
the timeline merges their messages in time order, each with its channel, pages exactly, and
shows each caller only the conversations they may see."""

from __future__ import annotations

import time

import orjson
import pytest

from tests.conftest import write_config
from tests.helpers import auth
from tests.identity.people import config_extra, customer_of, feed
from tests.identity.people import mail as past_mail
from tests.identity.people import tg_text as past_tg_text
from tests.workspace.conftest import TEAMS
from tongdai.core.identity import graph as identity
from tongdai.core.models import RawEvent


@pytest.fixture
def config_file(tmp_path):
    return write_config(tmp_path / "tongdai.yaml", extra=config_extra() + TEAMS)


def tg_text(uid: int, text: str, ago_s: int) -> RawEvent:
    """A Telegram message sent ``ago_s`` seconds ago (the update's ``date``)."""
    raw = past_tg_text(uid, text, name="Lan")
    body = orjson.loads(raw.body)
    body["message"]["date"] = int(time.time()) - ago_s
    return RawEvent(raw.channel_id, orjson.dumps(body), {}, raw.received_ts_ms)


def mail(text: str) -> RawEvent:
    """Lan's mail (mail is placed by its arrival, not by the sender's Date header)."""
    return past_mail("lan@customer.example", text, dmarc=True)


def linked_customer(hub) -> str:
    """Telegram, then mail linked by a link code, one customer, four messages alternating
    between the channels; the top-up in the mail routes to billing."""
    feed(hub, tg_text(5501, "Chào shop, đơn #A77 của mình chưa giao", ago_s=240))
    cust = customer_of(hub, "tg-test", "5501")
    code = identity.issue_link_code(hub, cust)["code"]
    feed(hub, mail(f"Mã liên kết {code}. Mình nạp thẻ 200k chưa vào"))
    assert customer_of(hub, "mail", "lan@customer.example") == cust, "linked by the code"
    time.sleep(1 - time.time() % 1)  # Telegram's dates are whole seconds: the next one
    feed(hub, tg_text(5501, "Shop kiểm tra giúp mình với", ago_s=0))
    feed(hub, mail("Mình gửi thêm ảnh hoá đơn nạp thẻ"))
    return cust


def test_the_timeline_merges_channels_in_time_order_for_those_who_see_them(client, hub,
                                                                             people):
    cust = linked_customer(hub)
    url = f"/api/v1/customers/{cust}/timeline"

    got = client.get(url, headers=auth(people["admin"]))
    assert got.status_code == 200, got.json
    items = got.json["items"]
    assert [(m["channel_id"], " ".join(m["text"].split()[:3])) for m in items] == [
        ("mail", "Mình gửi thêm"), ("tg-test", "Shop kiểm tra"), ("mail", "Mã liên kết"),
        ("tg-test", "Chào shop, đơn")]
    assert len({m["conversation_id"] for m in items}) == 3  # the hub opened three
    assert got.json["next_cursor"] is None

    # page by page (two at a time): the same messages, none twice, none lost
    seen, cursor = [], None
    while True:
        page = client.get(url, query_string={"limit": 2, "before": cursor or ""},
                          headers=auth(people["admin"])).json
        seen += [(m["conversation_id"], m["id"]) for m in page["items"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert seen == [(m["conversation_id"], m["id"]) for m in items]

    # the support agent sees the first conversation only (queue general); billing's agent
    # the rest (the top-up moved the customer's next conversations to billing)
    an = client.get(url, headers=auth(people["an"])).json["items"]
    assert [m["text"] for m in an] == [items[3]["text"]]
    bich = client.get(url, headers=auth(people["bich"])).json["items"]
    assert [m["id"] for m in bich] == [m["id"] for m in items[:3]]

    assert client.get(url, query_string={"before": "nonsense"},
                      headers=auth(people["admin"])).status_code == 400
    assert client.get("/api/v1/customers/999999/timeline",
                      headers=auth(people["an"])).status_code == 404
