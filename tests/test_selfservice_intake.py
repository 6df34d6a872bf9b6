"""Intake before hand-off, end to end on the fake Telegram server: a failed top-up (tag
``payment``) gets the bot's questions, answers in any order and several per message, only the
missing ones asked again, the hand-off when done or skipped, a person taking over stopping it,
and the agent's API showing what was collected (sealed in ``td:conv:{id}:attrs``).

The photo update follows the Bot API ``Message.photo`` (an array of PhotoSize, largest last),
as in tests/fixtures/telegram/05_photo_sizes.json."""

from __future__ import annotations

from types import SimpleNamespace

import orjson
import pytest

from tests.conftest import write_config
from tests.helpers import auth, drain_all, fb_and_zalo_channels, post, run_outbound, tg_update
from tests.test_channels_e2e import fb_msg, fb_post
from tongdai.core.clock import now_ms
from tongdai.core.config_lookups import Lookup
from tongdai.core.config_selfservice import IntakeField
from tongdai.core.models import Attachment
from tongdai.core.pipeline import feed, store
from tongdai.core.selfservice import bot, intake
from tongdai.core.workspace import lookups, users

CHAT = 7780001
INTAKE = """
selfservice:
  enabled: true
  intake:
    - tags: [payment]
      fields:
        - name: order_id
          kind: order_id
          pattern: '(?:#|đơn |don |订单)\\s*(\\d{6,12})'
          prompt: {vi: "Mã đơn hàng (ví dụ #123456)", en: "Your order number",
                   zh-Hans: "订单号", zh-Hant: "訂單號"}
        - {name: phone, kind: phone, prompt: {vi: "Số điện thoại nạp", en: "Phone number"}}
        - {name: amount, kind: amount, prompt: {vi: "Số tiền nạp", en: "Amount"}}
        - {name: paid_at, kind: datetime, required: false,
           prompt: {vi: "Thời gian nạp", en: "When you paid"}}
        - {name: screenshot, kind: image, required: false,
           prompt: {vi: "Ảnh chụp màn hình giao dịch", en: "A screenshot of the payment"}}
"""


@pytest.fixture
def config_file(tmp_path, tg_fake, graph, zalo):
    return write_config(tmp_path / "tongdai.yaml", api_base=tg_fake.base_url,
                        extra=fb_and_zalo_channels(graph, zalo) + INTAKE)


def settle(hub) -> None:
    drain_all(hub)
    feed.run_pending(hub, ["selfservice"])
    run_outbound(hub)


def the_conv(hub) -> str:
    [cid] = hub.redis.zrange(hub.keys.conversations_by_status("open"), 0, -1)
    return cid.decode()


def photo(update_id: int, message_id: int) -> bytes:
    return orjson.dumps({"update_id": update_id, "message": {
        "message_id": message_id, "date": 1700000000,
        "from": {"id": CHAT, "is_bot": False, "first_name": "Lan"},
        "chat": {"id": CHAT, "type": "private", "first_name": "Lan"},
        "photo": [{"file_id": "AgADsmall", "file_unique_id": "s1", "file_size": 834,
                   "width": 90, "height": 48},
                  {"file_id": "AgADlarge", "file_unique_id": "l1", "file_size": 100634,
                   "width": 1280, "height": 684}]}})


def test_failed_top_up_asks_takes_answers_in_any_order_then_a_person(client, hub, tg_fake,
                                                                       admin_token):
    post(client, tg_update(1, CHAT, 11, "nạp thẻ mà chưa nhận được xu"))
    settle(hub)
    [asked] = tg_fake.sent("sendMessage")
    assert asked["text"].startswith("Để nhân viên xử lý nhanh, bạn vui lòng cho biết:")
    for prompt in ("Mã đơn hàng", "Số điện thoại nạp", "Số tiền nạp",
                   "Thời gian nạp (nếu có)", "Ảnh chụp màn hình giao dịch (nếu có)"):
        assert prompt in asked["text"]
    assert asked["reply_markup"]["inline_keyboard"][0][0]["callback_data"] == "ss:skip"
    conv = the_conv(hub)
    ck = hub.keys.conversation(conv)
    assert hub.redis.hget(ck, "selfservice") == b"intake"

    post(client, tg_update(2, CHAT, 12, "sdt 0912 345 678, đơn #123456"))  # two, any order
    settle(hub)
    again = tg_fake.sent("sendMessage")[1]["text"]
    assert again.startswith("Cảm ơn bạn! Bạn cho biết thêm:")
    assert "Số tiền nạp" in again and "Mã đơn hàng" not in again and "Số điện thoại" not in again

    post(client, tg_update(3, CHAT, 13, "100.000đ lúc 9h30 hôm qua"))  # the third
    settle(hub)
    done = tg_fake.sent("sendMessage")[2]["text"]
    assert done.startswith("Cảm ơn bạn! Nhân viên hỗ trợ sẽ tiếp nhận")
    assert hub.redis.hget(ck, "selfservice") == b"handoff"
    assert hub.redis.hget(ck, "selfservice_why") == b"intake"

    post(client, tg_update(4, CHAT, 14, "cho mình gặp nhân viên"))  # "talk to a person"
    settle(hub)
    assert len(tg_fake.sent("sendMessage")) == 3  # the bot is quiet now
    queue = hub.redis.hget(ck, "queue").decode()
    assert queue == "billing" and hub.redis.zscore(hub.keys.queue(queue), conv) is not None

    r = client.get(f"/api/v1/conversations/{conv}", headers=auth(admin_token))
    got = r.get_json()["intake"]
    assert {f["name"]: f["value"] for f in got["fields"]} == {
        "order_id": "123456", "phone": "+84912345678", "amount": "100,000 VND",
        "paid_at": "9h30 hôm qua", "screenshot": None}
    assert got["complete"] is True and got["skipped"] is False
    # sealed at rest: the phone is not readable in Redis
    raw = hub.redis.hget(hub.keys.conversation_attributes(conv), "phone")
    assert b"912345678" not in raw
    # a lookup reads the collected order id (docs/lookups.md, `source: attribute`)
    by_order = Lookup.model_validate({
        "url": "http://shop.test/v1/topups/{order_id}?phone={phone}",
        "inputs": {"order_id": {"source": "attribute", "name": "order_id"},
                   "phone": {"source": "attribute", "name": "phone"}},
        "fields": [{"path": "id"}]})
    values, missing = lookups.inputs_for(hub, store.get_conversation(hub, conv), by_order)
    assert values == {"order_id": "123456", "phone": "+84912345678"} and missing == []


def test_a_screenshot_then_skip_hands_off_with_what_is_known(client, hub, tg_fake,
                                                             admin_token):
    post(client, tg_update(1, CHAT, 11, "充值100元没到账 订单 88776655"))  # two answers in it
    settle(hub)
    [asked] = tg_fake.sent("sendMessage")
    assert asked["text"].startswith("为了尽快为您处理")
    assert "Phone number" in asked["text"]  # only what is missing, in English for want of zh
    assert "订单号" not in asked["text"] and "Amount" not in asked["text"]

    post(client, photo(2, 12))  # the screenshot
    post(client, tg_update(3, CHAT, 13, "跳过"))
    settle(hub)
    texts = [s["text"] for s in tg_fake.sent("sendMessage")]
    assert texts[-1] == "谢谢！客服人员会尽快为您处理。" and len(texts) == 3
    conv = the_conv(hub)
    assert hub.redis.hget(hub.keys.conversation(conv), "selfservice_why") == b"intake_skipped"
    got = client.get(f"/api/v1/conversations/{conv}", headers=auth(admin_token)).get_json()
    values = {f["name"]: f["value"] for f in got["intake"]["fields"]}
    assert values["order_id"] == "88776655" and values["amount"] == "100 CNY"
    assert values["screenshot"].startswith("message:") and values["phone"] is None
    assert got["intake"]["skipped"] is True and got["intake"]["complete"] is False


def test_an_agent_taking_the_conversation_stops_the_intake(client, hub, tg_fake, admin_token):
    post(client, tg_update(1, CHAT, 11, "nap the ko nhan dc xu"))
    settle(hub)
    assert len(tg_fake.sent("sendMessage")) == 1
    conv = the_conv(hub)
    users.create(hub, users.User(name="alice", role="admin"), None)
    r = client.post(f"/api/v1/conversations/{conv}/claim", headers=auth(admin_token))
    assert r.status_code == 200, r.get_json()
    post(client, tg_update(2, CHAT, 12, "đơn #123456"))
    settle(hub)
    assert len(tg_fake.sent("sendMessage")) == 1  # the bot said nothing more
    got = client.get(f"/api/v1/conversations/{conv}", headers=auth(admin_token)).get_json()
    assert got["intake"]["state"] == "taken"


def test_an_agent_answering_without_taking_it_stops_the_intake_too(client, hub, tg_fake,
                                                                  admin_token):
    post(client, tg_update(1, CHAT, 11, "nạp thẻ lỗi rồi"))
    settle(hub)
    conv = the_conv(hub)
    users.create(hub, users.User(name="alice", role="admin"), None)
    r = client.post(f"/api/v1/conversations/{conv}/messages", json={"text": "Dạ em xem ạ"},
                    headers=auth(admin_token, "new"))
    assert r.status_code in (200, 201), r.get_json()
    post(client, tg_update(2, CHAT, 12, "đơn #123456"))
    settle(hub)
    texts = [s["text"] for s in tg_fake.sent("sendMessage")]
    assert len(texts) == 2 and texts[1] == "Dạ em xem ạ"  # the question, the agent; no bot
    got = client.get(f"/api/v1/conversations/{conv}", headers=auth(admin_token)).get_json()
    assert got["intake"]["state"] == "taken"


def test_no_intake_without_the_tag_and_a_redelivered_answer_asks_once(client, hub, tg_fake):
    post(client, tg_update(1, CHAT, 11, "áo này còn size L không"))  # no payment tag
    settle(hub)
    assert tg_fake.sent("sendMessage") == []  # straight to a person, as before
    post(client, tg_update(2, CHAT + 1, 21, "top up failed"))
    settle(hub)
    post(client, tg_update(3, CHAT + 1, 22, "order #5551234"))
    drain_all(hub)
    event = hub.redis.xrange(hub.keys.feed())[-1][1]
    hub.redis.xadd(hub.keys.feed(), event)  # the same event again
    feed.run_pending(hub, ["selfservice"])
    run_outbound(hub)
    texts = [s["text"] for s in tg_fake.sent("sendMessage")]
    assert len(texts) == 2 and texts[1].startswith("Thank you! Please also tell us:")


def test_never_outside_the_window(client, hub, graph):
    two_days_ago = now_ms() - 2 * 86400_000  # Messenger: 24 h for a bot's message
    fb_post(client, [fb_msg("m1", "top up failed, order #5551234", two_days_ago)])
    settle(hub)
    assert graph.sent() == []  # no questions: a person answers, with a message tag
    [cid] = hub.redis.zrange(hub.keys.conversations_by_status("open"), 0, -1)
    ck = hub.keys.conversation(cid.decode())
    assert hub.redis.hget(ck, "selfservice") == b"handoff"
    assert hub.redis.hget(ck, "selfservice_why") == b"refused"
    assert bot.stats(hub)["total"] == {"refused": 1, "handoff": 1}


@pytest.mark.parametrize("text, expected", [
    ("đơn #123456, sdt 0912345678, nạp 100k lúc 9h",
     {"order_id": "123456", "phone": "+84912345678", "amount": "100,000 VND", "paid_at": "9h"}),
    ("don 99887766 so 0987.654.321 1,5tr", {"order_id": "99887766", "phone": "+84987654321",
                                             "amount": "1,500,000 VND"}),
    ("订单 12345678 手机 13812345678 ¥50 昨天下午3点",
     {"order_id": "12345678", "phone": "+8613812345678", "amount": "50 CNY",
      "paid_at": "昨天 下午3点"}),
    ("i paid 20/11 at 10:15pm", {"paid_at": "20/11 10:15pm"}),
    ("chưa nhận được xu", {}),
])
def test_formats_understood(text, expected):
    fields = [IntakeField(name="order_id", kind="order_id",
                          pattern=r"(?:#|đơn |don |订单)\s*(\d{6,12})", prompt={"vi": "x"}),
              IntakeField(name="phone", kind="phone", prompt={"vi": "x"}),
              IntakeField(name="amount", kind="amount", prompt={"vi": "x"}),
              IntakeField(name="paid_at", kind="datetime", prompt={"vi": "x"})]
    assert intake.extract(fields, _msg(text), set(), ("VN", "CN")) == expected


def test_free_text_and_an_image_file_answer_what_is_missing():
    fields = [IntakeField(name="amount", kind="amount", prompt={"vi": "x"}),
              IntakeField(name="note", kind="text", prompt={"vi": "x"}),
              IntakeField(name="screenshot", kind="image", prompt={"vi": "x"})]
    said = "tài khoản game là lan_99"
    assert intake.extract(fields, _msg(said), {"note"}, ("VN",)) == {"note": said}
    assert intake.extract(fields, _msg(said), set(), ("VN",)) == {}  # nothing asks for it
    assert intake.extract(fields, _msg("50k", [Attachment(kind="file", mime="image/png")]),
                          {"note"}, ("VN",)) == {"amount": "50,000 VND",
                                                "screenshot": "message:9"}


def _msg(text: str, attachments: list[Attachment] | None = None):
    """What extract reads of a message: its id, text and attachments."""
    return SimpleNamespace(id="9", text=text, attachments=attachments or [])


def test_config_mistakes_name_the_key_and_the_fix(tmp_path):
    from tongdai.core.config import ConfigInvalid, load_config

    bad = INTAKE.replace("kind: amount", "kind: money")
    with pytest.raises(ConfigInvalid) as err:
        load_config(str(write_config(tmp_path / "bad.yaml", extra=bad)))
    assert "selfservice.intake.0.fields.2.kind" in str(err.value).replace("[", ".").replace(
        "]", "")
    assert "use one of order_id, phone, amount" in str(err.value)
    bad = INTAKE.replace("tags: [payment]", "tags: [payment]\n      channels: [tg-nope]")
    with pytest.raises(ConfigInvalid) as err:
        load_config(str(write_config(tmp_path / "bad2.yaml", extra=bad)))
    assert "selfservice.intake[0].channels[0]: no channel 'tg-nope'" in str(err.value)
    with pytest.raises(ConfigInvalid) as err:
        load_config(str(write_config(tmp_path / "bad3.yaml", extra=INTAKE.replace(
            "(\\d{6,12})'", "(\\d{6,12}'"))))
    assert "pattern does not compile" in str(err.value)
