"""Agent replies: API → outbound job → Telegram (a fake Bot API over real HTTP)."""

from __future__ import annotations

import time

import pytest

from tests.conftest import write_config
from tests.helpers import auth, drain_all, post, run_outbound, tg_update
from tongdai.worker import jobs


@pytest.fixture
def config_file(tmp_path, tg_fake):
    return write_config(tmp_path / "tongdai.yaml", api_base=tg_fake.base_url)


@pytest.fixture
def conv_id(client, hub, admin_token) -> str:
    post(client, tg_update(1, 4242, 1, "Xin chào, đơn hàng của tôi đâu?"))
    drain_all(hub)
    return client.get("/api/v1/conversations", headers=auth(admin_token)).json["items"][0]["id"]


def reply(client, token, conv_id, text, key):
    return client.post(f"/api/v1/conversations/{conv_id}/messages", json={"text": text},
                       headers={**auth(token), "Idempotency-Key": key})


def messages(client, token, conv_id):
    return client.get(f"/api/v1/conversations/{conv_id}/messages",
                      headers=auth(token)).json["items"]


def test_reply_reaches_telegram_and_status_follows(client, hub, admin_token, conv_id, tg_fake):
    r = reply(client, admin_token, conv_id, "Dạ, đơn của anh/chị đang giao ạ", "k1")
    assert r.status_code == 201 and r.json["status"] == "queued"
    assert r.json["author"] == {"kind": "agent", "id": "alice"}
    run_outbound(hub)
    sent = tg_fake.sent("sendMessage")
    assert len(sent) == 1
    assert sent[0]["chat_id"] in (4242, "4242") and sent[0]["text"] == "Dạ, đơn của anh/chị đang giao ạ"
    out = [m for m in messages(client, admin_token, conv_id) if m["direction"] == "out"]
    assert len(out) == 1 and out[0]["status"] == "sent" and out[0]["external_id"]


def test_429_then_success_is_sent_once(client, hub, admin_token, conv_id, tg_fake):
    tg_fake.fail_next("sendMessage", 429, description="Too Many Requests: retry after 1",
                      retry_after=1)
    reply(client, admin_token, conv_id, "one moment please", "k2")
    run_outbound(hub)
    assert len(tg_fake.sent("sendMessage")) == 1
    attempts = [c for c in tg_fake.calls if c[0] == "sendMessage"]
    assert len(attempts) == 2  # the 429, then the success
    out = [m for m in messages(client, admin_token, conv_id) if m["direction"] == "out"]
    assert out[0]["status"] == "sent" and out[0]["status_reason"] is None


def test_5xx_is_retried(client, hub, admin_token, conv_id, tg_fake):
    tg_fake.fail_next("sendMessage", 502, description="Bad Gateway")
    reply(client, admin_token, conv_id, "retry me", "k5")
    run_outbound(hub)
    assert len(tg_fake.sent("sendMessage")) == 1


def test_same_idempotency_key_one_message_one_send(client, hub, admin_token, conv_id, tg_fake):
    first = reply(client, admin_token, conv_id, "only once", "same-key")
    again = reply(client, admin_token, conv_id, "only once", "same-key")
    assert first.status_code == 201 and again.status_code == 200
    assert first.json["id"] == again.json["id"]
    run_outbound(hub)
    # a retried send job after the success sends nothing
    assert jobs.send(conv_id, first.json["id"]) == "already sent"
    assert len(tg_fake.sent("sendMessage")) == 1
    assert len([m for m in messages(client, admin_token, conv_id) if m["direction"] == "out"]) == 1


def test_blocked_bot_fails_with_reason_no_retry(client, hub, admin_token, conv_id, tg_fake):
    tg_fake.fail_next("sendMessage", 403, description="Forbidden: bot was blocked by the user")
    reply(client, admin_token, conv_id, "hello?", "k3")
    run_outbound(hub)
    out = next(m for m in messages(client, admin_token, conv_id) if m["direction"] == "out")
    assert out["status"] == "failed" and "blocked" in out["status_reason"]
    assert len([c for c in tg_fake.calls if c[0] == "sendMessage"]) == 1
    # the next reply is refused up front instead of failing at Telegram again
    again = reply(client, admin_token, conv_id, "hello??", "k3b")
    assert again.status_code == 409 and "blocked" in again.json["error"]["message"]


def test_reply_needs_idempotency_key_and_text(client, admin_token, conv_id):
    r = client.post(f"/api/v1/conversations/{conv_id}/messages", json={"text": "x"},
                    headers=auth(admin_token))
    assert r.status_code == 400 and "Idempotency-Key" in r.json["error"]["message"]
    assert reply(client, admin_token, conv_id, "   ", "k4").status_code == 400
    assert reply(client, admin_token, "999", "x", "k6").status_code == 404


def test_per_chat_rate_limit_spaces_sends(client, hub, admin_token, conv_id, tg_fake):
    for i in range(3):
        reply(client, admin_token, conv_id, f"part {i}", f"rl{i}")
    started = time.monotonic()
    run_outbound(hub)
    # Telegram allows about one message a second per chat: three sends span two seconds.
    assert time.monotonic() - started >= 1.9
    assert [p["text"] for p in tg_fake.sent("sendMessage")] == ["part 0", "part 1", "part 2"]


def test_customer_who_blocked_the_bot_is_not_sent_to(client, hub, admin_token, conv_id, tg_fake):
    kicked = {"update_id": 99, "my_chat_member": {
        "chat": {"id": 4242, "type": "private"}, "from": {"id": 4242, "first_name": "Lan"},
        "date": 1700000500,
        "old_chat_member": {"status": "member", "user": {"id": 1, "is_bot": True}},
        "new_chat_member": {"status": "kicked", "until_date": 0,
                            "user": {"id": 1, "is_bot": True}}}}
    import orjson

    post(client, orjson.dumps(kicked))
    drain_all(hub)
    timeline = messages(client, admin_token, conv_id)
    assert timeline[0]["author"]["kind"] == "system" and "blocked" in timeline[0]["text"]
    r = reply(client, admin_token, conv_id, "are you there?", "kb1")
    assert r.status_code == 409 and "blocked" in r.json["error"]["message"]
    run_outbound(hub)
    assert tg_fake.calls == []
    # writing again unblocks
    post(client, tg_update(100, 4242, 77, "sorry, unblocked"))
    unblock = dict(kicked, update_id=101)
    unblock["my_chat_member"] = dict(kicked["my_chat_member"],
                                     new_chat_member={"status": "member",
                                                      "user": {"id": 1, "is_bot": True}})
    post(client, orjson.dumps(unblock))
    drain_all(hub)
    assert reply(client, admin_token, conv_id, "welcome back", "kb2").status_code == 201


def test_pressed_button_is_answered_once_off_the_ingest_path(client, hub, admin_token,
                                                             conv_id, tg_fake):
    import orjson

    press = orjson.dumps({"update_id": 77, "callback_query": {
        "id": "4382bf", "from": {"id": 4242, "is_bot": False, "first_name": "Lan"},
        "message": {"message_id": 1, "chat": {"id": 4242, "type": "private"}, "date": 1},
        "chat_instance": "-1", "data": "order:status"}})
    post(client, press)
    post(client, press)  # Telegram redelivers
    drain_all(hub)
    assert [c for c in tg_fake.calls if c[0] == "answerCallbackQuery"] == []  # not in ingest
    run_outbound(hub)
    answers = [p for m, p in tg_fake.calls if m == "answerCallbackQuery"]
    assert answers == [{"callback_query_id": "4382bf"}]
    kinds = [(m["kind"], m["payload"]) for m in messages(client, admin_token, conv_id)]
    assert kinds.count(("postback", "order:status")) == 1
