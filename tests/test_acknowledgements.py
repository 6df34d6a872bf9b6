"""Automatic replies on every chat channel: in the customer's language, with the ticket and
when to expect an agent, the off-hours text on the calendar's nights and holidays, at most one
per conversation and period, never where the platform's window is closed.

Messages carry past platform times (the hub takes min(platform time, now)), so the hour of the
day is the test's, not the clock's."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pytest

from tests.conftest import write_config
from tests.helpers import drain_all, fb_and_zalo_channels, post, run_outbound, tg_update
from tests.test_channels_e2e import ZUSER, fb_msg, fb_post, zalo_post, zalo_text
from tongdai.core.clock import now_ms
from tongdai.core.pipeline import ingest

VN = ZoneInfo("Asia/Ho_Chi_Minh")
CHAT = 5550001


@pytest.fixture
def config_file(tmp_path, tg_fake, graph, zalo):
    return write_config(tmp_path / "tongdai.yaml", api_base=tg_fake.base_url, extra=fb_and_zalo_channels(graph, zalo) + """
sla:
  policies:
    - {name: telegram, adapters: [telegram], calendar: office, first_response: 30m}
    - {name: zalo, adapters: [zalo], calendar: everyday, first_response: 30m}
    - {name: messenger, adapters: [facebook], first_response: 15m}
calendars:
  office: {timezone: Asia/Ho_Chi_Minh, hours: {mon-fri: "08:00-17:30", sat: "08:00-12:00"},
           holidays: [VN]}
  everyday: {timezone: Asia/Ho_Chi_Minh, hours: {mon-sun: "08:00-17:30"}, holidays: []}
acknowledgements:
  enabled: true
  every: 24h
""")


def at(*when: int) -> int:
    """Epoch ms of a Vietnamese local time."""
    return int(dt.datetime(*when, tzinfo=VN).timestamp() * 1000)


def tg(client, hub, text: str, ms: int, update: int = 1, message: int = 1) -> dict:
    post(client, tg_update(update, CHAT, message, text, date=ms // 1000))
    return drain_all(hub)


def tg_acks(tg_fake) -> list[str]:
    return [p["text"] for p in tg_fake.sent()]


def conv_of(hub, channel: str = "tg-test") -> str:
    for conv in hub.redis.scan_iter(hub.keys.conversation("*")):
        cid = conv.decode().rpartition(":")[2]
        if cid.isdigit() and hub.redis.hget(conv, "channel") == channel.encode():
            return cid
    raise AssertionError(f"no conversation on {channel}")


def test_telegram_vietnamese_without_diacritics_in_hours(client, hub, tg_fake):
    assert tg(client, hub, "shop oi don hang cua minh chua giao", at(2026, 11, 23, 10))[
        "stored"] == 1  # a Monday, 10:00 in Hà Nội
    run_outbound(hub)
    conv = conv_of(hub)
    assert tg_acks(tg_fake) == [(
        f"Dạ, cảm ơn anh/chị đã liên hệ! Shop đã nhận được tin nhắn (mã hỗ trợ #{conv}). "
        "Nhân viên sẽ phản hồi anh/chị trong khoảng 30 phút ạ.")]
    assert hub.redis.hlen(hub.keys.acknowledgements_due()) == 0


def test_telegram_traditional_chinese_at_night(client, hub, tg_fake):
    tg(client, hub, "請問我的訂單什麼時候出貨？", at(2026, 11, 25, 22, 15))  # Wednesday night
    run_outbound(hub)
    conv = conv_of(hub)
    assert tg_acks(tg_fake) == [(
        f"您好，感謝您的留言！目前為非營業時間，您的訊息已記錄（工單號 #{conv}）。"
        "客服將於明天08:00上班，並在明天08:30前回覆您。")]


def test_telegram_english_on_tet(client, hub, tg_fake):
    """Tết 2026: closed Monday 16 to Friday 20 February; open again Saturday morning."""
    tg(client, hub, "Hi, my order has not arrived yet. Can you check it please?",
       at(2026, 2, 17, 10))
    run_outbound(hub)
    conv = conv_of(hub)
    assert tg_acks(tg_fake) == [(
        f"Thanks for contacting us! We are closed right now; your message is logged as "
        f"ticket #{conv}. We are back at 08:00 on Saturday and will reply by 08:30 on "
        "Saturday.")]


def test_messenger_english_within_the_window(client, hub, graph):
    fb_post(client, [fb_msg("m_1", "Hello, is the blue dress still in stock?",
                            now_ms() - 60_000)])
    drain_all(hub)
    run_outbound(hub)
    (sent,) = graph.sent()
    conv = conv_of(hub, "fb-test")
    assert sent["messaging_type"] == "RESPONSE" and "tag" not in sent
    assert sent["message"]["text"] == (
        f"Thanks for contacting us! We have received your message (ticket #{conv}). Our team "
        "will reply within about 15 minutes.")


def test_zalo_vietnamese_off_hours(client, hub, zalo):
    now = dt.datetime.fromtimestamp(now_ms() / 1000, VN)
    night = now.replace(hour=2, minute=0, second=0, microsecond=0)
    if night > now:
        night -= dt.timedelta(days=1)  # the latest 02:00: within Zalo's 48 h
    zalo_post(client, zalo_text("z1", "Shop ơi, nạp thẻ 100k mà chưa nhận được xu",
                                int(night.timestamp() * 1000)))
    drain_all(hub)
    run_outbound(hub)
    (sent,) = zalo.sent()
    conv = conv_of(hub, "zalo-test")
    assert sent["recipient"] == {"user_id": ZUSER}
    assert sent["message"]["text"] == (
        f"Dạ, cảm ơn anh/chị đã liên hệ! Hiện shop đã hết giờ làm việc, tin nhắn của anh/chị "
        f"đã được ghi nhận (mã hỗ trợ #{conv}). Nhân viên sẽ làm việc trở lại lúc 08:00 hôm "
        "nay và phản hồi anh/chị trước 08:30 hôm nay ạ.")


def test_at_most_one_per_period_and_none_for_a_redelivery(client, hub, tg_fake):
    t = at(2026, 11, 23, 10)
    tg(client, hub, "shop oi", t, update=1, message=1)
    tg(client, hub, "cho minh hoi don #55", t + 5_000, update=2, message=2)
    assert tg(client, hub, "shop oi", t, update=1, message=1)["duplicates"] == 1
    run_outbound(hub)
    assert len(tg_acks(tg_fake)) == 1
    conv = conv_of(hub)
    key = hub.keys.conversation(conv)
    # a day later with an agent's answer an hour ago: the customer is in a conversation
    hub.redis.hset(key, mapping={"ack_at": now_ms() - 25 * 3600_000,
                                 "agent_reply": now_ms() - 3600_000})
    tg(client, hub, "ok cam on shop", t + 60_000, update=3, message=3)
    run_outbound(hub)
    assert len(tg_acks(tg_fake)) == 1
    # a day after the last automatic and agent's replies: the first message is answered
    hub.redis.hset(key, "agent_reply", now_ms() - 25 * 3600_000)
    tg(client, hub, "shop oi con do khong", t + 120_000, update=4, message=4)
    tg(client, hub, "alo", t + 125_000, update=5, message=5)
    run_outbound(hub)
    acks = tg_acks(tg_fake)
    assert len(acks) == 2 and f"#{conv})" in acks[1]


def test_outside_the_window_nothing_is_sent_and_the_refusal_is_kept(client, hub, graph):
    fb_post(client, [fb_msg("m_old", "hello?", now_ms() - 25 * 3600_000)])  # a late delivery
    drain_all(hub)
    run_outbound(hub)
    assert graph.sent() == []
    conv = conv_of(hub, "fb-test")
    assert "24 h" in hub.redis.hget(hub.keys.conversation(conv), "ack_refused").decode()
    assert hub.redis.hget(hub.keys.stats(), "ack-refused:fb-test") == b"1"
    assert ingest.acknowledge_due(hub) == 0  # dropped, not retried


def test_a_worker_dying_before_sending_leaves_it_for_the_sweep(client, hub, tg_fake,
                                                               monkeypatch):
    monkeypatch.setattr(ingest, "acknowledge", lambda *a: None)
    tg(client, hub, "我的订单还没到", at(2026, 11, 23, 10))
    monkeypatch.undo()
    assert ingest.acknowledge_due(hub) == 1
    assert ingest.acknowledge_due(hub) == 0
    run_outbound(hub)
    (ack,) = tg_acks(tg_fake)
    assert ack.endswith("客服将在30分钟内回复您。")


def test_channel_overrides(tmp_path, client, hub, tg_fake, graph):
    from tongdai.core.config import load_config

    path = tmp_path / "tongdai.yaml"
    path.write_text(path.read_text() + """
  language: en
  channels:
    tg-test: {texts: {en: "Ticket {ticket}: {expected}."},
              off_hours: {en: "Ticket {ticket}: back {opens}, reply {expected}."}}
    fb-test: {enabled: false}
""", encoding="utf-8")
    hub.apply_config(load_config(str(path)))
    tg(client, hub, "xin chào", at(2026, 11, 23, 10))  # Vietnamese: the section's text
    tg(client, hub, "hello there", at(2026, 11, 23, 23), update=2, message=2)
    fb_post(client, [fb_msg("m_1", "hello", now_ms())])
    drain_all(hub)
    conv = conv_of(hub)
    hub.redis.hset(hub.keys.conversation(conv), "ack_at", 0)  # as if a day passed
    tg(client, hub, "anyone?", at(2026, 11, 23, 23, 5), update=3, message=3)
    run_outbound(hub)
    first, second = tg_acks(tg_fake)
    # the wait that began at 10:00 is overdue; Tuesday 24 is Vietnam Cultural Day
    assert first.startswith("Dạ, cảm ơn")
    assert second == f"Ticket {conv}: back 08:00 on Wednesday, reply as soon as we can."
    assert graph.sent() == []


def test_rules_test_shows_the_acknowledgement(config_file):
    import os
    import subprocess
    import sys

    def ack(*args: str) -> str:
        out = subprocess.run([sys.executable, "-m", "tongdai.core.cli", "rules", "test", *args],
                             env={**os.environ, "TONGDAI_CONFIG": str(config_file)},
                             capture_output=True, text=True, timeout=60, check=True)
        return next(x for x in out.stdout.splitlines() if x.startswith("ack"))

    assert ack("我的订单还没到", "--channel", "tg-test", "--at", "2026-11-23 10:00") == (
        "ack       zh-Hans, in hours (calendar office): 您好，感谢您的留言！我们已收到您的消息"
        "（工单号 #123），客服将在30分钟内回复您。")
    assert ack("shop oi", "--channel", "zalo-test", "--at", "2026-11-23 23:00").startswith(
        "ack       vi, off hours (calendar everyday): Dạ, cảm ơn anh/chị đã liên hệ! Hiện shop "
        "đã hết giờ làm việc")


def test_config_mistakes_are_named_with_their_fix(tmp_path):
    from tongdai.core.config import ConfigInvalid, load_config

    path = write_config(tmp_path / "bad.yaml", extra="""
acknowledgements:
  enabled: true
  every: 12h
  calendar: office
  texts: {vi: "Mã {ticket}, trả lời {expected}", fr: "Merci"}
  channels:
    tg-tset: {enabled: false}
""")
    with pytest.raises(ConfigInvalid) as e:
        load_config(str(path))
    assert "'fr' is not a language" in str(e.value)
    path.write_text(path.read_text().replace(', fr: "Merci"', "").replace(
        "{expected}", "{name}"))
    with pytest.raises(ConfigInvalid) as e:
        load_config(str(path))
    assert "{name} in the vi text is not a placeholder" in str(e.value)
    path.write_text(path.read_text().replace("{name}", "{expected}"))
    with pytest.raises(ConfigInvalid) as e:
        load_config(str(path))
    keys = sorted(x.key for x in e.value.errors)
    assert keys == ["acknowledgements.calendar", "acknowledgements.channels.tg-tset"]
