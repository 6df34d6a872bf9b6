"""The self-service bot answers from the business's own data: a customer who writes "nạp thẻ
đơn #123456 chưa nhận được xu" gets what the shop's API says about that order (a lookup rule's
``answer``), not a general article — and a failing shop leaves it to a person at once."""

from __future__ import annotations

import pytest

from tests.conftest import write_config
from tests.helpers import drain_all, post, run_outbound, tg_update
from tests.staff import TEAMS
from tests.workspace.test_lookups import LOOKUPS, TEXT
from tongdai.core.pipeline import feed
from tongdai.core.selfservice import bot

CHAT = 6001


@pytest.fixture
def config_file(tmp_path, shop, tg_fake):
    return write_config(tmp_path / "tongdai.yaml", api_base=tg_fake.base_url,
                        extra=TEAMS + LOOKUPS.replace("BASE", shop.base_url)
                        + "selfservice:\n  enabled: true\n")


def settle(hub) -> str:
    drain_all(hub)
    feed.run_pending(hub, ["selfservice"])
    run_outbound(hub)
    customer = hub.redis.hget(hub.keys.identity_index("tg-test"), str(CHAT)).decode()
    return hub.redis.hget(hub.keys.customer(customer), "conv").decode()


def test_the_bot_answers_from_the_shops_api_with_its_buttons(client, hub, tg_fake, shop):
    post(client, tg_update(1, CHAT, 1, TEXT))
    conv = settle(hub)
    [sent] = tg_fake.sent("sendMessage")
    assert sent["text"] == ("Dạ, giao dịch #123456 đang chờ ngân hàng xác nhận (pending_bank), "
                            "thường dưới 15 phút ạ.")
    assert [b["callback_data"] for b in sent["reply_markup"]["inline_keyboard"][0]] == [
        "ss:helped:lookup", "ss:agent"]
    assert hub.redis.hget(hub.keys.conversation(conv), "selfservice") == b"answered:lookup"
    assert bot.stats(hub)["total"] == {"answered": 1}
    post(client, tg_update(2, CHAT, 2, TEXT))  # asked again: the same answer, a new reply
    feed.run_pending(hub, ["selfservice"])  # the same events again: nothing more
    settle(hub)
    assert len(tg_fake.sent("sendMessage")) == 2


def test_a_failing_shop_leaves_it_to_a_person(client, hub, tg_fake, shop):
    shop.mode = "fail"
    post(client, tg_update(1, CHAT, 1, TEXT))
    conv = settle(hub)
    assert tg_fake.sent("sendMessage") == []  # no article matches either (none loaded)
    h = hub.redis.hgetall(hub.keys.conversation(conv))
    assert (h[b"selfservice"], h[b"selfservice_why"]) == (b"handoff", b"unsure")
