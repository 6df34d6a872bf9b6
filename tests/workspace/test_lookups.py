"""Lookups: the business's data in the customer panel, from a fake shop API (tests/fakes/
shop_api.py) over real HTTP — found, not found, timed out, failing, the circuit breaker, the
cache, who may see it, nothing of it in the logs, and a rule tagging from an answer."""

from __future__ import annotations

import logging
import time

import pytest

from tests.conftest import write_config
from tests.fakes.shop_api import API_KEY, wait_calls
from tests.helpers import auth, drain_all, post, tg_update
from tests.staff import TEAMS
from tongdai.core.config import ConfigInvalid, load_config
from tongdai.core.pipeline import feed
from tongdai.core.workspace import lookup_rules, lookups

LOOKUPS = r"""
lookups:
  orders:
    title: {vi: "Đơn hàng", en: "Orders", zh: "订单"}
    url: "BASE/v1/orders?phone={phone}"
    headers: {Authorization: "Bearer ${SHOP_API_KEY}"}
    timeout: 300ms
    inputs:
      phone: {source: phone}
    rows: orders
    fields:
      - {path: id, label: {vi: "Mã đơn", en: "Order", zh: "订单号"}}
      - {path: amount, label: {vi: "Số tiền", en: "Amount"}}
      - path: "payments[0].status"
        label: {vi: "Thanh toán", en: "Payment", zh: "支付"}
        colours: {success: green, pending_bank: amber, failed: red}
    breaker: {failures: 2, cooldown: 300ms}
  order:
    title: {vi: "Đơn theo mã", en: "Order by number"}
    url: "BASE/v1/orders/{order_id}"
    headers: {Authorization: "Bearer ${SHOP_API_KEY}"}
    timeout: 300ms
    inputs:
      order_id: {source: text, pattern: '#(\d{6})'}
    rows: order
    fields:
      - {path: id, label: {vi: "Mã đơn", en: "Order"}}
      - {path: "payments[0].status", label: {en: "Payment"}, colours: {pending_bank: amber}}
    tag_when:
      - field: "order.payments[0].status"
        equals: pending_bank
        tags_any: [payment]
        tag: bank-delay
        suggest_canned: /bank_delay
        answer:
          vi: "Dạ, giao dịch #{order_id} đang chờ ngân hàng xác nhận ({value}), thường dưới 15 phút ạ."
          zh: "您的交易 #{order_id} 正在等待银行确认，通常不超过15分钟。"
"""
TEXT = "Shop ơi nạp thẻ đơn #123456 chưa nhận được xu, sdt 0912 345 678"


@pytest.fixture
def config_file(tmp_path, shop):
    return write_config(tmp_path / "tongdai.yaml",
                        extra=TEAMS + LOOKUPS.replace("BASE", shop.base_url))


def _conv(hub, client, text: str = TEXT, chat: int = 5001) -> str:
    assert post(client, tg_update(chat, chat, 1, text)).status_code == 200
    drain_all(hub)
    customer = hub.redis.hget(hub.keys.identity_index("tg-test"), str(chat)).decode()
    return hub.redis.zrange(hub.keys.customer_conversations(customer), 0, -1)[0].decode()


def _read(client, token: str, conv: str, **query) -> dict[str, dict]:
    r = client.get(f"/api/v1/conversations/{conv}/lookups", query_string=query,
                   headers=auth(token))
    assert r.status_code == 200, r.get_json()
    return {x["name"]: x for x in r.get_json()["items"]}


def _settled(client, token: str, conv: str, **query) -> dict[str, dict]:
    lookups.wait_idle()
    return _read(client, token, conv, **query)


def test_the_panel_shows_orders_by_phone_and_by_order_number(hub, client, people, shop):
    conv = _conv(hub, client)
    first = _read(client, people["bich"], conv)  # the billing agent: "nạp thẻ" went there
    assert {x["state"] for x in first.values()} == {"loading"}
    got = _settled(client, people["bich"], conv)
    orders = got["orders"]
    assert orders["state"] == "ok" and orders["title"] == "Đơn hàng"
    first_row = orders["rows"][0]["fields"]
    assert [(f["label"], f["value"], f["colour"]) for f in first_row] == [
        ("Mã đơn", "123456", None), ("Số tiền", 100000, None), ("Thanh toán", "pending_bank", "amber")]
    assert orders["rows"][1]["fields"][2]["colour"] == "green"
    assert got["order"]["state"] == "ok"
    assert got["order"]["suggestions"] == [{"tag": "bank-delay", "canned": "/bank_delay"}]
    en = _read(client, people["bich"], conv, lang="en")["orders"]
    assert [f["label"] for f in en["rows"][0]["fields"]] == ["Order", "Amount", "Payment"]
    assert shop.calls == 2  # both answers came from the cache the second and third time

    # another customer: a phone and an order number the shop does not know
    other = _conv(hub, client, "nạp thẻ đơn #999999 lỗi, sdt 0987 654 321", chat=5002)
    _read(client, people["bich"], other)
    got = _settled(client, people["bich"], other)
    assert got["orders"]["state"] == "not_found"  # an empty list
    assert got["order"]["state"] == "not_found"   # a 404
    # one who gave neither: nothing asked, and the panel says what is missing
    third = _conv(hub, client, "nạp thẻ không được", chat=5003)
    got = _read(client, people["bich"], third)
    assert got["orders"]["state"] == "no_input" and got["orders"]["missing"] == ["phone"]
    assert got["order"]["missing"] == ["order_id"]


def test_an_agent_who_cannot_see_the_conversation_sees_nothing(hub, client, people, shop):
    conv = _conv(hub, client)
    r = client.get(f"/api/v1/conversations/{conv}/lookups", headers=auth(people["an"]))
    assert r.status_code == 404  # support's agent; the conversation is billing's
    assert shop.calls == 0


def test_a_slow_system_never_holds_the_console(hub, client, people, shop):
    shop.mode = "slow"  # answers after 5 s; the lookups give up after 300 ms
    conv = _conv(hub, client)
    # the route answered while the shop had not: it did not wait for the fetch
    assert _read(client, people["bich"], conv)["orders"]["state"] == "loading"
    wait_calls(shop, 2)
    got = _settled(client, people["bich"], conv)
    assert got["orders"]["state"] == "timeout" and "0.3s" in got["orders"]["reason"]
    assert got["order"]["state"] == "timeout"


def test_failures_open_the_circuit_and_a_success_closes_it(hub, client, people, shop):
    shop.mode = "fail"
    conv = _conv(hub, client)
    _read(client, people["bich"], conv)
    got = _settled(client, people["bich"], conv)
    assert got["orders"]["state"] == "error" and got["orders"]["reason"] == "HTTP 503"
    calls = shop.calls
    _read(client, people["bich"], conv, refresh=1)
    got = _settled(client, people["bich"], conv)  # the second failure in a row: open
    assert shop.calls == calls + 2
    opened = _read(client, people["bich"], conv, refresh=1)["orders"]
    assert opened["state"] == "circuit_open" and opened["until"] > 0
    lookups.wait_idle()
    assert shop.calls == calls + 3  # only "order" was called; "orders" was not

    shop.mode = "ok"
    time.sleep(0.35)  # the cooldown
    assert _read(client, people["bich"], conv, refresh=1)["orders"]["state"] == "loading"
    assert _settled(client, people["bich"], conv)["orders"]["state"] == "ok"
    assert not hub.redis.exists(hub.keys.lookup("orders", "breaker"))  # closed

    shop.mode = "garbage"  # 200 with a page that is not JSON: the business system failed
    got = _read(client, people["bich"], conv, refresh=1)
    assert _settled(client, people["bich"], conv)["orders"]["reason"] == "not a JSON answer"


def test_answers_are_cached_encrypted_and_briefly(hub, client, people, shop):
    conv = _conv(hub, client)
    _read(client, people["bich"], conv)
    assert _settled(client, people["bich"], conv)["orders"]["state"] == "ok"
    (key,) = [k for k in hub.redis.keys(hub.keys.lookup("orders", "*"))
              if len(k.rpartition(b":")[2]) == 32]  # an answer (not a marker, the breaker)
    raw = hub.redis.get(key)
    assert b"pending_bank" not in raw and b"912345678" not in raw and b"123456" not in raw
    assert 0 < hub.redis.pttl(key) <= 60_000
    assert _read(client, people["bich"], conv)["orders"]["state"] == "ok"
    assert shop.calls == 2
    hub.redis.pexpire(key, 1)  # its minute is up
    time.sleep(0.01)
    assert _read(client, people["bich"], conv)["orders"]["state"] == "loading"
    assert _settled(client, people["bich"], conv)["orders"]["state"] == "ok"
    assert shop.calls == 3


def test_nothing_of_the_answer_reaches_the_logs(hub, client, people, shop, caplog):
    caplog.set_level(logging.DEBUG)
    conv = _conv(hub, client)
    _read(client, people["bich"], conv)
    assert _settled(client, people["bich"], conv)["orders"]["state"] == "ok"
    shop.mode = "fail"
    _read(client, people["bich"], conv, refresh=1)
    _settled(client, people["bich"], conv)
    logged = caplog.text
    assert "lookup orders: ok" in logged  # it does log: the outcome, never the data
    for secret in ("pending_bank", "123456", "912345678", "Garena", API_KEY, "100000"):
        assert secret not in logged


def test_a_rule_tags_the_conversation_from_the_answer(hub, client, people, shop):
    feed.ensure_group(hub, "lookups")
    conv = _conv(hub, client)
    feed.run_pending(hub, ["lookups"])
    tags = {t.decode() for t in hub.redis.smembers(hub.keys.conversation_tags(conv))}
    assert {"payment", "bank-delay"} <= tags
    r = client.get(f"/api/v1/conversations/{conv}/messages", headers=auth(people["bich"]))
    lines = [m for m in r.get_json()["items"] if m.get("kind") == "system"]
    assert len(lines) == 1 and "bank-delay" in lines[0]["text"]
    assert "/bank_delay" in lines[0]["text"] and "pending_bank" not in lines[0]["text"]
    # redelivered, or the customer writing again: nothing twice
    assert lookup_rules.apply(hub, conv) == []
    post(client, tg_update(5001 + 100, 5001, 2, "sao lâu vậy shop"))
    drain_all(hub)
    feed.run_pending(hub, ["lookups"])
    r = client.get(f"/api/v1/conversations/{conv}/messages", headers=auth(people["bich"]))
    assert len([m for m in r.get_json()["items"] if m.get("kind") == "system"]) == 1
    events = [e.type for e in feed.read_after(hub, "0-0", count=1000)]
    assert events.count("conversation.tagged") == 1
    # what a bot may tell the customer instead of a queue wait (#14's hook)
    assert lookup_rules.answer(hub, conv, "vi") == (
        "Dạ, giao dịch #123456 đang chờ ngân hàng xác nhận (pending_bank), thường dưới 15 phút ạ.")
    assert lookup_rules.answer(hub, conv, "zh-Hans").startswith("您的交易 #123456 正在等待")
    other = _conv(hub, client, "đơn #123456 sao rồi shop", chat=5004)  # no payment tag
    assert lookup_rules.answer(hub, other, "vi") is None


def test_config_mistakes_name_the_key_and_the_fix(tmp_path, shop):
    bad = LOOKUPS.replace("BASE", shop.base_url).replace(
        "?phone={phone}", "?phone={mobile}").replace("rows: order\n", "rows: 'order[0'\n")
    path = write_config(tmp_path / "bad.yaml", extra=bad)
    with pytest.raises(ConfigInvalid) as err:
        load_config(str(path))
    said = str(err.value)
    assert "lookups.orders: placeholder(s) {mobile} are not inputs" in said
    assert "lookups.order.rows: " in said and "is not a JMESPath expression" in said
    path.write_text(path.read_text().replace("'order[0'", "order").replace("({value})",
                                                                          "({amount})"))
    with pytest.raises(ConfigInvalid) as err:
        load_config(str(path))
    assert ("lookups.order: tag_when[0].answer.vi: {amount} is neither {value} nor an input"
            in str(err.value))


def test_inputs_from_an_attribute_the_intake_collected_and_verified_identifiers(hub, client,
                                                                                shop):
    from tongdai.core.config_lookups import Lookup
    from tongdai.core.pipeline import store

    conv = store.get_conversation(hub, _conv(hub, client))
    by_attribute = Lookup.model_validate({
        "url": "http://shop.test/v1/orders/{order_id}?phone={phone}",
        "inputs": {"order_id": {"source": "attribute", "name": "order_id"},
                   "phone": {"source": "phone", "verified": True, "optional": True}},
        "fields": [{"path": "id"}]})
    assert lookups.inputs_for(hub, conv, by_attribute) == ({}, ["order_id"])
    hub.redis.hset(hub.keys.conversation_attributes(conv.id), "order_id",
                   hub.keyring.encrypt_text("778899", b"attribute"))
    # the typed phone is not verified: left out, and the lookup runs without it
    values, missing = lookups.inputs_for(hub, conv, by_attribute)
    assert values == {"order_id": "778899"} and missing == []
    req = lookups.request_for(hub, "x", by_attribute, values)
    assert req.url == "http://shop.test/v1/orders/778899?phone="


def test_labels_in_traditional_chinese_come_from_the_chinese_ones():
    """A config written with zh: labels shows them to a zh-Hant console in Traditional
    characters, not in English (found by review)."""
    from tongdai.core.workspace import lookups

    labels = {"vi": "Đơn hàng", "en": "Orders", "zh": "订单号"}
    assert lookups._label(labels, "zh-Hant", "x") == "訂單號"
    assert lookups._label({**labels, "zh-Hant": "我的訂單"}, "zh-Hant", "x") == "我的訂單"
    assert lookups._label(labels, "fr", "x") == "Orders"
