"""The self-service bot, end to end against the fake platforms: a question gets the article
with native buttons, "talk to a person" hands the conversation to its queue, "this helped" is
counted; nothing is sent outside a platform's window, and a redelivered event sends nothing
twice. Plus the knowledge base's API and `tongdai faq eval`.

Callback and quick-reply payloads follow the platforms' docs: Telegram Bot API ``Update``
with ``callback_query`` (id, from, message, chat_instance, data); Messenger
``messages`` webhook with ``message.quick_reply.payload``."""

from __future__ import annotations

import orjson
import pytest

from tests.conftest import write_config
from tests.helpers import auth, drain_all, fb_and_zalo_channels, post, run_outbound, tg_update
from tests.test_channels_e2e import fb_msg, fb_post, zalo_post, zalo_text
from tongdai.core.clock import now_ms
from tongdai.core.pipeline import feed
from tongdai.core.selfservice import articles, bot

CHAT = 7770001


@pytest.fixture
def config_file(tmp_path, tg_fake, graph, zalo):
    return write_config(tmp_path / "tongdai.yaml", api_base=tg_fake.base_url, extra=fb_and_zalo_channels(graph, zalo) + """
selfservice:
  enabled: true
""")


@pytest.fixture
def kb(hub):
    articles.save(hub, articles.load_file(articles.SAMPLE))
    return hub


def settle(hub) -> None:
    """Ingest, the bot's reactor, the senders — as the worker, reactor and sender would."""
    drain_all(hub)
    feed.run_pending(hub, ["selfservice"])
    run_outbound(hub)


def conv_of(hub, channel: str) -> str:
    for cid in hub.redis.zrange(hub.keys.conversations_by_status("open"), 0, -1):
        if hub.redis.hget(hub.keys.conversation(cid.decode()), "channel") == channel.encode():
            return cid.decode()
    raise AssertionError(f"no conversation on {channel}")


def press(update_id: int, message_id: int, data: str) -> bytes:
    return orjson.dumps({"update_id": update_id, "callback_query": {
        "id": f"cb{update_id}", "from": {"id": CHAT, "is_bot": False, "first_name": "Lan"},
        "message": {"message_id": message_id, "chat": {"id": CHAT, "type": "private"},
                    "date": 1700000000},
        "chat_instance": "-77", "data": data}})


def test_telegram_question_article_buttons_then_a_person(client, kb, tg_fake):
    hub = kb
    post(client, tg_update(1, CHAT, 11, "nạp thẻ 100k mà chưa nhận được xu"))
    settle(hub)
    [sent] = tg_fake.sent("sendMessage")
    assert sent["text"].startswith("Nạp thẻ nhưng chưa nhận được xu")
    buttons = sent["reply_markup"]["inline_keyboard"][0]
    assert [b["text"] for b in buttons] == ["Đã giải quyết", "Gặp nhân viên"]
    assert [b["callback_data"] for b in buttons] == ["ss:helped:topup-not-received", "ss:agent"]
    conv = conv_of(hub, "tg-test")
    assert hub.redis.hget(hub.keys.conversation(conv), "selfservice") == \
        b"answered:topup-not-received"

    post(client, press(2, 1, "ss:agent"))  # "talk to a person"
    settle(hub)
    ck = hub.keys.conversation(conv)
    assert hub.redis.hget(ck, "selfservice") == b"handoff"
    queue = hub.redis.hget(ck, "queue").decode()
    assert hub.redis.zscore(hub.keys.queue(queue), conv) is not None  # waiting for a person
    post(client, tg_update(3, CHAT, 12, "quên mật khẩu"))  # the bot stays quiet now
    settle(hub)
    assert len(tg_fake.sent("sendMessage")) == 1
    s = bot.stats(hub)
    assert s["total"] == {"answered": 1, "handoff": 1}
    assert s["channels"]["tg-test"] == {"answered": 1, "handoff": 1}


def test_the_longest_article_id_fits_a_telegram_button(client, kb, tg_fake):
    hub = kb
    long_id = "bao-hanh-" + "x" * 39  # 48 characters: the most an article id may have
    articles.save(hub, [articles.parse({"id": long_id, "variants": {"vi": {
        "title": "Bảo hành điện thoại", "body": "Bảo hành 12 tháng tại mọi cửa hàng.",
        "keywords": ["bảo hành điện thoại bao lâu"]}}})])
    with pytest.raises(ValueError, match="1-48"):
        articles.parse({"id": long_id + "y", "variants": {"vi": {"title": "a", "body": "b"}}})
    post(client, tg_update(1, CHAT, 11, "bảo hành điện thoại bao lâu vậy"))
    settle(hub)
    [sent] = tg_fake.sent("sendMessage")  # the fake refuses callback_data over 64 bytes
    assert sent["reply_markup"]["inline_keyboard"][0][0]["callback_data"] == \
        f"ss:helped:{long_id}"


def test_typed_handoff_words_and_unsure_questions_go_to_a_person(client, kb, tg_fake):
    hub = kb
    post(client, tg_update(1, CHAT, 11, "cho em gặp người thật"))
    settle(hub)
    assert tg_fake.sent("sendMessage") == []
    assert hub.redis.hget(hub.keys.conversation(conv_of(hub, "tg-test")), "selfservice_why") \
        == b"asked"
    assert bot.wants_person("转人工") and bot.wants_person("gap nv voi") \
        and bot.wants_person("AGENT please") and not bot.wants_person("my agency order")

    post(client, tg_update(2, CHAT + 1, 12, "shop ơi áo này còn size L không"))  # no article
    settle(hub)
    assert tg_fake.sent("sendMessage") == []
    whys = {hub.redis.hget(hub.keys.conversation(c.decode()), "selfservice_why") for c in
            hub.redis.zrange(hub.keys.conversations_by_status("open"), 0, -1)}
    assert whys == {b"asked", b"unsure"}
    assert bot.stats(hub)["total"] == {"handoff": 2}


def test_redelivered_feed_event_sends_once(client, kb, tg_fake):
    hub = kb
    post(client, tg_update(1, CHAT, 11, "quen mat khau thi lam sao"))
    drain_all(hub)
    event = hub.redis.xrange(hub.keys.feed())[-1][1]
    hub.redis.xadd(hub.keys.feed(), event)  # the same event again (a reclaimed batch)
    feed.run_pending(hub, ["selfservice"])
    run_outbound(hub)
    assert [s["text"].split("\n")[0] for s in tg_fake.sent("sendMessage")] == ["Quên mật khẩu"]
    assert bot.stats(hub)["total"] == {"answered": 1}


def test_messenger_quick_replies_and_this_helped(client, kb, graph):
    hub = kb
    fb_post(client, [fb_msg("m1", "I forgot my password, how do I reset it?", now_ms())])
    settle(hub)
    [sent] = graph.sent()
    assert sent["message"]["text"].startswith("I forgot my password")
    assert sent["message"]["quick_replies"] == [
        {"content_type": "text", "title": "This helped", "payload": "ss:helped:forgot-password"},
        {"content_type": "text", "title": "Talk to a person", "payload": "ss:agent"}]
    helped = fb_msg("m2", "This helped", now_ms())
    helped["message"]["quick_reply"] = {"payload": "ss:helped:forgot-password"}
    fb_post(client, [helped])
    settle(hub)
    conv = conv_of(hub, "fb-test")
    assert hub.redis.hget(hub.keys.conversation(conv), "selfservice") == b"helped:forgot-password"
    assert bot.stats(hub)["channels"]["fb-test"] == {"answered": 1, "helped": 1}
    assert len(graph.sent()) == 1


def test_zalo_buttons_and_a_hidden_query_press(client, kb, zalo):
    hub = kb
    zalo_post(client, zalo_text("z1", "账号被封了怎么解封", now_ms()))
    settle(hub)
    [sent] = zalo.sent()
    assert sent["message"]["text"].startswith("账号被锁定")
    assert sent["message"]["attachment"] == {"type": "template", "payload": {"buttons": [
        {"title": "已解决", "type": "oa.query.hide", "payload": "ss:helped:account-locked"},
        {"title": "转人工", "type": "oa.query.hide", "payload": "ss:agent"}]}}
    zalo_post(client, zalo_text("z2", "ss:agent", now_ms()))  # the press: the payload as text
    settle(hub)
    assert hub.redis.hget(hub.keys.conversation(conv_of(hub, "zalo-test")), "selfservice") \
        == b"handoff"
    assert len(zalo.sent()) == 1


def test_nothing_sent_outside_the_window(client, kb, graph):
    hub = kb
    two_days_ago = now_ms() - 2 * 86400_000  # Messenger: 24 h for a bot's message
    fb_post(client, [fb_msg("m1", "when do I get my refund", two_days_ago)])
    settle(hub)
    assert graph.sent() == []
    conv = conv_of(hub, "fb-test")
    assert hub.redis.hget(hub.keys.conversation(conv), "selfservice") == b"handoff"
    assert bot.stats(hub)["total"]["refused"] == 1


def test_articles_api_supervisors_edit_and_every_process_sees_it(client, kb, admin_token):
    from tongdai.core.workspace import tokens

    hub = kb
    agent = tokens.create(hub, "bob", "agent")
    got = client.get("/api/v1/kb/articles", headers=auth(agent)).json  # agents read
    assert {a["id"] for a in got["items"]} >= {"refund", "forgot-password"}
    before = articles.version(hub)
    body = {"id": "opening-hours", "tags": ["store"], "variants": {
        "vi": {"title": "Giờ mở cửa", "body": "Cửa hàng mở 8:00–21:00 mỗi ngày.",
               "keywords": ["mấy giờ mở cửa", "giờ làm việc cửa hàng"]}}}
    assert client.put("/api/v1/kb/articles/opening-hours", json=body,
                      headers=auth(agent)).status_code == 403  # and do not write
    r = client.put("/api/v1/kb/articles/opening-hours", json=body, headers=auth(admin_token))
    assert r.status_code == 200, r.json
    assert articles.version(hub) == before + 1
    r = client.post("/api/v1/kb/match", json={"text": "cửa hàng mấy giờ mở cửa"},
                    headers=auth(admin_token))
    assert r.json["article"] == "opening-hours"
    # the list's search folds as the inbox search does: no accents, either Chinese script
    ship = {"variants": {"zh-Hant": {"title": "訂單什麼時候發貨？", "body": "付款後 24 小時內。"}}}
    assert client.put("/api/v1/kb/articles/ship-time", json=ship,
                      headers=auth(admin_token)).status_code == 200

    def found(q: str) -> list[str]:
        return [a["id"] for a in client.get("/api/v1/kb/articles", query_string={"q": q},
                                            headers=auth(agent)).json["items"]]

    assert "ship-time" in found("发货") and "opening-hours" not in found("发货")
    assert found("GIO MO cua") == ["opening-hours"]
    bad = client.put("/api/v1/kb/articles/x1", json={"variants": {"fr": {"title": "Heures", "body": "8h–21h"}}},
                     headers=auth(admin_token))
    assert bad.status_code == 400
    assert "variants.fr" in bad.json["error"]["message"] and "zh-Hans" in bad.json["error"]["message"]
    assert client.delete("/api/v1/kb/articles/opening-hours",
                         headers=auth(admin_token)).status_code == 204
    assert client.get("/api/v1/kb/stats", headers=auth(admin_token)).status_code == 200


def test_faq_eval_command_prints_precision_and_the_curve():
    from click.testing import CliRunner

    from tongdai.core.cli import main

    r = CliRunner().invoke(main, ["faq", "eval", "--threshold", "0.3"])
    assert r.exit_code == 0, r.output
    assert "precision@1" in r.output and "threshold  precision@1  answered" in r.output
    line = next(x for x in r.output.splitlines() if x.startswith("threshold 0.30"))
    precision = float(line.split("precision@1 ")[1].split()[0])
    assert precision >= 0.9


def test_a_channel_the_config_does_not_have_is_named_with_the_fix(tmp_path):
    from tongdai.core.config import ConfigInvalid, load_config

    path = write_config(tmp_path / "bad.yaml", extra="""
selfservice:
  enabled: true
  channels: [tg-test, zalo-nope]
  threshold: 1.5
""")
    with pytest.raises(ConfigInvalid) as err:
        load_config(str(path))
    text = str(err.value)
    assert "selfservice.threshold" in text
    with pytest.raises(ConfigInvalid) as err:
        load_config(str(write_config(tmp_path / "bad2.yaml", extra="""
selfservice:
  channels: [zalo-nope]
""")))
    assert "selfservice.channels[0]: no channel 'zalo-nope'" in str(err.value)
    assert "Fix: name a channel instance" in str(err.value)


def test_faq_import_export_round_trip_and_a_bad_file(hub, tmp_path):
    from click.testing import CliRunner

    from tongdai.core.cli import main

    r = CliRunner().invoke(main, ["faq", "import", str(articles.SAMPLE)])
    assert r.exit_code == 0, r.output
    assert "12 articles imported" in r.output
    out = CliRunner().invoke(main, ["faq", "export", "--format", "json"])
    assert out.exit_code == 0, out.output
    exported = tmp_path / "kb.json"
    exported.write_text(out.output, encoding="utf-8")
    assert [a.to_dict()["variants"] for a in articles.load_file(exported)] == \
        [a.to_dict()["variants"] for a in sorted(articles.load_file(articles.SAMPLE),
                                                  key=lambda a: a.id)]
    bad = tmp_path / "bad.yaml"
    bad.write_text("articles:\n- id: refund\n  variants: {vi: {title: Hoàn tiền}}\n", "utf-8")
    r = CliRunner().invoke(main, ["faq", "import", str(bad)])
    assert r.exit_code != 0 and "articles[0][refund].variants.vi: needs a title and a body" \
        in r.output
    tried = CliRunner().invoke(main, ["faq", "try", "quen mat khau"])
    assert tried.output.startswith("forgot-password")
