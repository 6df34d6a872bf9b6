"""Ticket status and CSAT/NPS, end to end against the fake platforms (issue #14): ``/status``
answers with the agent or the queue place and the due time, and never about someone else's
ticket; after resolve the customer rates with the platform's own buttons or a typed number,
once per conversation, and not at all when the window is closed.

Payloads: Telegram ``callback_query`` and Messenger ``message.quick_reply.payload`` as in
tests/test_selfservice.py (Bot API / Messenger Platform webhook docs); Zalo ``user_send_text``
(Zalo OA webhook docs)."""

from __future__ import annotations

import pytest

from tests.conftest import write_config
from tests.helpers import auth, drain_all, fb_and_zalo_channels, post, run_outbound, tg_update
from tests.test_channels_e2e import PSID, fb_msg, fb_post, zalo_post, zalo_text
from tests.test_selfservice import CHAT, conv_of, press
from tongdai.core.clock import now_ms
from tongdai.core.models import ConversationStatus
from tongdai.core.pipeline import feed, store
from tongdai.core.selfservice import surveys


@pytest.fixture
def config_file(tmp_path, tg_fake, graph, zalo):
    return write_config(tmp_path / "tongdai.yaml", api_base=tg_fake.base_url, extra=fb_and_zalo_channels(graph, zalo) + """
teams:
  - id: cskh
    queues: [general, billing]
sla:
  first_response: 30m
selfservice:
  status: true
  csat: true
  nps: true
  nps_every_days: 90
""")


def settle(hub) -> None:
    drain_all(hub)
    feed.run_pending(hub, ["surveys"])
    run_outbound(hub)


def resolve(hub, conv: str) -> None:
    store.set_status(hub, conv, ConversationStatus.RESOLVED)
    settle(hub)


def current(hub, chat: int) -> str:
    """The Telegram chat's customer's current conversation."""
    cust = hub.redis.hget(hub.keys.identity_index("tg-test"), str(chat)).decode()
    return hub.redis.hget(hub.keys.customer(cust), "conv").decode()


def now_s() -> int:
    return now_ms() // 1000


def texts(tg_fake) -> list[str]:
    return [s["text"] for s in tg_fake.sent("sendMessage")]


def test_status_on_telegram_says_the_queue_place_the_agent_and_the_due_time(client, hub,
                                                                            tg_fake):
    # someone ahead in the queue: ingested first (in one batch, the two would be queued in
    # the order ingest took the shards, whatever order they were posted in)
    post(client, tg_update(1, CHAT + 5, 10, "đơn của mình bị lỗi rồi shop ơi", now_s()))
    settle(hub)
    post(client, tg_update(2, CHAT, 11, "đơn hàng của mình bị lỗi, chưa nhận được", now_s()))
    settle(hub)
    mine, other = current(hub, CHAT), current(hub, CHAT + 5)
    post(client, tg_update(3, CHAT, 12, "/status", now_s()))
    settle(hub)
    [said] = texts(tg_fake)
    assert said.startswith(f"Yêu cầu #{mine} đang chờ nhân viên hỗ trợ, bạn đang ở vị trí 2 ")
    assert "Bạn sẽ nhận được phản hồi trong khoảng 30 phút." in said

    hub.redis.hset(hub.keys.user("lan"), mapping={"role": "agent", "display_name": "Chị Lan"})
    hub.redis.hset(hub.keys.conversation(mine), "assignee", "lan")
    post(client, tg_update(4, CHAT, 13, f"/status {other}", now_s()))  # not theirs
    settle(hub)
    said = texts(tg_fake)[1]
    assert said.startswith(f"Mã #{other} không phải yêu cầu của bạn")
    assert f"Yêu cầu #{mine} đang được Chị Lan xử lý." in said
    assert "đơn của mình" not in said and "vị trí" not in said  # nothing about the other one
    assert len(texts(tg_fake)) == 2  # and the bot said nothing else (once per message)

    # resolved long ago, the customer asks again: a new conversation, the answer is the old one
    store.set_status(hub, mine, ConversationStatus.RESOLVED)
    hub.redis.hset(hub.keys.conversation(mine), "resolved_at", now_ms() - 30 * 86400_000)
    post(client, tg_update(5, CHAT, 14, "cho mình hỏi tình trạng ticket", now_s()))
    settle(hub)
    assert current(hub, CHAT) != mine
    assert texts(tg_fake)[2].startswith("Cảm ơn bạn đã liên hệ! Bạn đánh giá")  # the CSAT
    assert texts(tg_fake)[3] == f"Yêu cầu #{mine} đã được giải quyết."


def test_csat_on_telegram_press_then_nps_then_a_comment_once(client, hub, tg_fake, admin_token):
    post(client, tg_update(1, CHAT, 11, "quên mật khẩu"))
    settle(hub)
    conv = conv_of(hub, "tg-test")
    hub.redis.hset(hub.keys.conversation(conv), "assignee", "lan")
    resolve(hub, conv)
    [ask] = tg_fake.sent("sendMessage")
    assert ask["text"].startswith("Cảm ơn bạn đã liên hệ! Bạn đánh giá")
    assert [b["callback_data"] for b in ask["reply_markup"]["inline_keyboard"][0]] == \
        [f"csat:{n}" for n in range(1, 6)]
    # the conversation is resolved again, and the feed redelivers: still one survey
    store.set_status(hub, conv, ConversationStatus.OPEN)
    resolve(hub, conv)
    for _id, fields in hub.redis.xrange(hub.keys.feed()):
        if b"conversation.resolved" in fields[b"e"]:
            hub.redis.xadd(hub.keys.feed(), fields)
    settle(hub)
    assert len(tg_fake.sent("sendMessage")) == 1

    post(client, press(2, 1, "csat:4"))
    post(client, press(2, 1, "csat:4"))  # Telegram redelivers the update
    settle(hub)
    assert texts(tg_fake)[1].startswith("Cảm ơn bạn! Từ 0 đến 10")
    post(client, tg_update(3, CHAT, 12, "9"))
    settle(hub)
    assert texts(tg_fake)[2].startswith("Cảm ơn bạn đã đánh giá!")
    post(client, tg_update(4, CHAT, 13, "nhân viên nhiệt tình, nhưng hơi chậm"))
    settle(hub)
    assert texts(tg_fake)[3] == "Cảm ơn góp ý của bạn!"
    assert hub.redis.hget(hub.keys.conversation(conv), "status") == b"resolved"  # not reopened
    assert len(tg_fake.sent("answerCallbackQuery")) >= 1

    r = client.get(f"/api/v1/conversations/{conv}", headers=auth(admin_token)).json
    assert r["survey"]["csat"] == 4 and r["survey"]["nps"] == 9
    assert r["survey"]["comment"] == "nhân viên nhiệt tình, nhưng hơi chậm"
    rated = [orjson_loads(f[b"e"]) for _i, f in hub.redis.xrange(hub.keys.feed())]
    rated = [e for e in rated if e["type"] in ("csat.rated", "nps.rated")]
    assert [(e["type"], e["score"], e["agent"], e["team"], e["channel"]) for e in rated] == [
        ("csat.rated", 4, "lan", "cskh", "tg-test"), ("nps.rated", 9, "lan", "cskh", "tg-test")]
    feed.run_pending(hub, ["kpis"])  # the dashboard's counters read the same events
    kpis = client.get("/api/v1/reports/kpis", headers=auth(admin_token)).json
    t = kpis["total"]["totals"]
    assert (t["csat_count"], t["csat_avg"], t["nps_count"], t["nps"]) == (1, 4.0, 1, 100.0)
    assert t["messages_in"] == 1  # the answers are not messages
    rep = client.get("/api/v1/reports/csat", headers=auth(admin_token)).json
    assert rep["csat"]["total"] == {"n": 1, "average": 4.0, "satisfied": 1.0}
    assert rep["csat"]["agent"]["lan"]["n"] == 1 and rep["csat"]["team"]["cskh"]["n"] == 1
    assert rep["csat"]["channel"]["tg-test"]["n"] == 1 and rep["nps"]["total"]["nps"] == 100

    from tongdai.core.workspace import privacy  # erased: the comment goes, the counts stay

    privacy.erase_customer(hub, hub.redis.hget(hub.keys.conversation(conv), "customer")
                           .decode(), "admin")
    assert surveys.of_conversation(hub, conv) is None
    assert surveys.report(hub)["csat"]["total"]["n"] == 1


def orjson_loads(b: bytes) -> dict:
    import orjson

    return orjson.loads(b)


def test_csat_on_messenger_quick_reply_and_zalo_typed_five(client, hub, graph, zalo):
    fb_post(client, [fb_msg("m1", "I want a refund", now_ms())])
    zalo_post(client, zalo_text("z1", "Shop ơi đơn hàng giao chưa", now_ms()))
    settle(hub)
    fb_conv, z_conv = conv_of(hub, "fb-test"), conv_of(hub, "zalo-test")
    resolve(hub, fb_conv)
    resolve(hub, z_conv)
    [fb_ask] = graph.sent()
    assert [q["payload"] for q in fb_ask["message"]["quick_replies"]] == \
        [f"csat:{n}" for n in range(1, 6)]
    [z_ask] = zalo.sent()
    assert [b["payload"] for b in z_ask["message"]["attachment"]["payload"]["buttons"]] == \
        [f"csat:{n}" for n in range(1, 6)]
    rated = fb_msg("m2", "⭐⭐⭐", now_ms())
    rated["message"]["quick_reply"] = {"payload": "csat:3"}
    fb_post(client, [rated])
    zalo_post(client, zalo_text("z2", "5", now_ms()))
    settle(hub)
    assert surveys.of_conversation(hub, fb_conv)["csat"] == 3
    assert surveys.of_conversation(hub, z_conv)["csat"] == 5
    for c in (fb_conv, z_conv):
        assert hub.redis.hget(hub.keys.conversation(c), "status") == b"resolved"
    rep = surveys.report(hub)["csat"]
    assert rep["channel"] == {"fb-test": {"n": 1, "average": 3.0, "satisfied": 0.0},
                              "zalo-test": {"n": 1, "average": 5.0, "satisfied": 1.0}}


def test_status_button_from_a_messenger_menu(client, hub, graph):
    """A persistent-menu postback (Messenger Platform docs, messaging_postbacks: title, payload,
    mid) carrying ``ss:status``; the answer in the customer's language."""
    fb_post(client, [fb_msg("m1", "I ordered a lamp last week and it has not arrived", now_ms())])
    settle(hub)
    conv = conv_of(hub, "fb-test")
    fb_post(client, [{"sender": {"id": PSID}, "recipient": {"id": "1122334455"},
                      "timestamp": now_ms(), "postback": {
                          "title": "Ticket status", "payload": "ss:status", "mid": "m_pb1"}}])
    settle(hub)
    [said] = graph.sent()
    assert said["message"]["text"] == (
        f"Ticket #{conv} is waiting for an agent; you are number 1 in the queue. "
        "Expect an answer within about 30 minutes.")


def test_window_closed_skips_the_survey_and_counts_why(client, hub, graph):
    fb_post(client, [fb_msg("m1", "when do I get my refund", now_ms() - 2 * 86400_000)])
    settle(hub)
    conv = conv_of(hub, "fb-test")
    resolve(hub, conv)
    assert graph.sent() == []
    assert surveys.of_conversation(hub, conv)["skipped"]
    assert sum(surveys.report(hub)["skipped"]["fb-test"].values()) == 1
    fb_post(client, [fb_msg("m2", "5", now_ms())])  # no survey waits: an ordinary message
    settle(hub)
    assert hub.redis.hget(hub.keys.conversation(conv), "status") == b"open"


def test_a_late_answer_is_a_message_again(client, hub, tg_fake):
    post(client, tg_update(1, CHAT, 11, "quên mật khẩu", now_s()))
    settle(hub)
    conv = current(hub, CHAT)
    resolve(hub, conv)
    assert len(tg_fake.sent("sendMessage")) == 1  # the question
    wk = hub.keys.survey("waiting")
    ident = f"tg-test|{CHAT}"
    assert hub.redis.hget(wk, ident).decode().startswith(f"{conv}\x1f")
    eight_days_ago = now_ms() - 8 * 86400_000
    hub.redis.hset(wk, ident, f"{conv}\x1f{eight_days_ago}")
    post(client, tg_update(2, CHAT, 12, "5", now_s()))
    assert drain_all(hub)["stored"] == 1  # a message of the conversation, as any other
    settle(hub)
    assert surveys.of_conversation(hub, conv)["csat"] is None
    assert hub.redis.hlen(wk) == 0


def test_answers_found_one_by_one_when_many_surveys_wait(client, hub, tg_fake, monkeypatch):
    monkeypatch.setattr(surveys, "READ_ALL_UP_TO", 0)  # as with more than 5,000 waiting
    post(client, tg_update(1, CHAT, 11, "quên mật khẩu", now_s()))
    settle(hub)
    conv = current(hub, CHAT)
    resolve(hub, conv)
    post(client, tg_update(2, CHAT, 12, "5 sao", now_s()))
    settle(hub)
    assert surveys.of_conversation(hub, conv)["csat"] == 5


def test_nps_at_most_every_nps_every_days_per_customer(hub):
    now = now_ms()
    assert surveys.nps_due(hub, "41", now)  # never asked
    hub.redis.hset(hub.keys.survey("nps"), "41", now - 89 * 86400_000)
    assert not surveys.nps_due(hub, "41", now)
    hub.redis.hset(hub.keys.survey("nps"), "41", now - 90 * 86400_000)
    assert surveys.nps_due(hub, "41", now)


@pytest.mark.parametrize("text,lo,hi,want", [
    ("5", 1, 5, 5), ("4/5", 1, 5, 4), ("5 sao", 1, 5, 5), ("⭐⭐⭐⭐", 1, 5, 4),
    ("⭐️⭐️", 1, 5, 2), ("9分", 0, 10, 9), ("10", 0, 10, 10), ("6", 1, 5, None),
    ("5 cái áo", 1, 5, None), ("", 1, 5, None)])
def test_typed_scores(text, lo, hi, want):
    assert surveys.score_of(text, lo, hi) == want


def test_nps_without_csat_is_named_with_the_fix(tmp_path):
    from tongdai.core.config import ConfigInvalid, load_config

    with pytest.raises(ConfigInvalid) as err:
        load_config(str(write_config(tmp_path / "bad.yaml", extra="""
selfservice:
  nps: true
  nps_every_days: 0
""")))
    text = str(err.value)
    assert "selfservice.nps_every_days" in text
    with pytest.raises(ConfigInvalid) as err:
        load_config(str(write_config(tmp_path / "bad2.yaml", extra="""
selfservice:
  nps: true
""")))
    assert "selfservice.nps: NPS is asked after the CSAT answer" in str(err.value)
    assert "Fix: set selfservice.csat: true" in str(err.value)
