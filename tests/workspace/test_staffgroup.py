"""The Telegram staff group: customers' messages mirrored into one forum topic per
conversation, agents answering (and /claim, /resolve, /note) from the topic — against the fake
Bot API over real HTTP. The staff supergroup talks to the same bot (channel tg-test) as the
customers do."""

from __future__ import annotations

import logging

import orjson
import pytest

from tests.conftest import TOKEN, write_config
from tests.helpers import auth, drain_all, post, run_outbound, tg_update
from tongdai.core.errors import DeliveryError
from tongdai.core.pipeline import feed, store
from tongdai.core.workspace import audit, users

STAFF_CHAT = -1001234567890
CUSTOMER = 4242
AN, BICH, STRANGER = 7001, 7002, 9999
BOT_ID = int(TOKEN.split(":")[0])
TEAMS = f"""
teams:
  - id: support
    name: "Hỗ trợ"
    queues: [general]
    staff_group: {{channel: tg-test, chat_id: {STAFF_CHAT}}}
    escalates_to: [billing]
  - {{id: billing, name: "Thanh toán", queues: [billing], tier: 2}}
"""


@pytest.fixture
def config_file(tmp_path, tg_fake):
    tg_fake.make_forum(STAFF_CHAT)
    return write_config(tmp_path / "tongdai.yaml", api_base=tg_fake.base_url, extra=TEAMS)


@pytest.fixture(autouse=True)
def staff(hub):
    """an (support) and bich (billing), linked to their Telegram ids (the reactor's group
    exists before any traffic: every process creates it at start, rawlog.ensure_groups); both
    chose English, the language the hub answers them in."""
    users.create(hub, users.User(name="an", role="agent", teams=["support"],
                                 display_name="An Nguyễn", telegram_user_id=AN,
                                 language="en"), None)
    users.create(hub, users.User(name="bich", role="agent", teams=["billing"],
                                 telegram_user_id=BICH, language="en"), None)


_update_ids = iter(range(500, 10_000))


def customer_says(client, hub, message_id: int, text: str) -> None:
    post(client, tg_update(next(_update_ids), CUSTOMER, message_id, text))
    drain_all(hub)


def staff_update(user_id: int, message_id: int, text: str, thread: int | None,
                 update_id: int | None = None, first_name: str = "An") -> bytes:
    """A message in the staff supergroup, in topic ``thread`` (None: the General topic)."""
    msg = {"message_id": message_id, "date": 1700000100, "text": text,
           "from": {"id": user_id, "is_bot": user_id == BOT_ID, "first_name": first_name},
           "chat": {"id": STAFF_CHAT, "type": "supergroup", "title": "Hỗ trợ", "is_forum": True}}
    if thread is not None:
        msg |= {"message_thread_id": thread, "is_topic_message": True}
    return orjson.dumps({"update_id": update_id or next(_update_ids), "message": msg})


def mirror(hub) -> None:
    feed.run_pending(hub, ["staffgroup"])


def only_conversation(hub) -> str:
    ids = [c.decode() for c in hub.redis.zrange(hub.keys.conversations_by_status("open"), 0, -1)]
    assert len(ids) == 1
    return ids[0]


def to_customer(tg_fake) -> list[str]:
    return [p["text"] for p in tg_fake.sent() if str(p["chat_id"]) == str(CUSTOMER)]


def topic(tg_fake) -> int:
    (thread,) = tg_fake.topics(STAFF_CHAT)
    return thread


@pytest.fixture
def opened(client, hub, tg_fake) -> tuple[str, int]:
    """A customer wrote; the reactor opened the topic. Returns (conversation, topic)."""
    customer_says(client, hub, 1, "Xin chào, đơn hàng của tôi đâu?")
    mirror(hub)
    return only_conversation(hub), topic(tg_fake)


def test_customer_message_opens_one_topic_and_is_mirrored(opened, tg_fake):
    conv, thread = opened
    assert tg_fake.topics(STAFF_CHAT) == {thread: {"name": f"Lan · tg-test · #{conv}",
                                                   "closed": False}}
    intro, message = tg_fake.posts(STAFF_CHAT, thread)
    assert f"#{conv}" in intro and "Lan" in intro and "general" in intro
    assert message == "Xin chào, đơn hàng của tôi đâu?"


def test_next_message_joins_the_same_topic_and_replays_post_nothing_twice(
        client, hub, opened, tg_fake):
    _, thread = opened
    customer_says(client, hub, 2, "Mã đơn 12345")
    mirror(hub)
    assert tg_fake.posts(STAFF_CHAT, thread)[1:] == ["Xin chào, đơn hàng của tôi đâu?",
                                                     "Mã đơn 12345"]
    calls = len(tg_fake.calls)
    # the whole feed handled again (a reset consumer group), and a redelivered webhook
    hub.redis.xgroup_setid(hub.keys.feed(), "staffgroup", "0")
    mirror(hub)
    post(client, tg_update(1, CUSTOMER, 1, "Xin chào, đơn hàng của tôi đâu?"))
    drain_all(hub)
    mirror(hub)
    assert len(tg_fake.calls) == calls
    assert len(tg_fake.topics(STAFF_CHAT)) == 1


def test_agent_answers_from_the_topic(client, hub, opened, tg_fake, admin_token):
    conv, thread = opened
    before = tg_fake.posts(STAFF_CHAT, thread)
    post(client, staff_update(AN, 900, "Dạ, đơn của chị đang giao ạ", thread))
    drain_all(hub)
    run_outbound(hub)
    assert to_customer(tg_fake) == ["Dạ, đơn của chị đang giao ạ"]
    items = client.get(f"/api/v1/conversations/{conv}/messages",
                       headers=auth(admin_token)).json["items"]
    out = [m for m in items if m["direction"] == "out"]
    assert len(out) == 1 and out[0]["text"] == "Dạ, đơn của chị đang giao ạ"
    assert out[0]["author"] == {"kind": "agent", "id": "an"} and out[0]["status"] == "sent"
    # the staff chat made no customer of its own, and the reply is not echoed into the topic
    assert len(hub.redis.zrange(hub.keys.conversations_by_status("open"), 0, -1)) == 1
    mirror(hub)
    assert tg_fake.posts(STAFF_CHAT, thread) == before


def test_console_reply_is_mirrored_with_the_agent_name(client, hub, opened, tg_fake):
    from tongdai.core.workspace import tokens

    conv, thread = opened
    token = tokens.create(hub, "an", "agent", ["support"])
    r = client.post(f"/api/v1/conversations/{conv}/messages", json={"text": "Chờ em chút ạ"},
                    headers=auth(token, "new"))
    assert r.status_code == 201
    mirror(hub)
    # a line for the whole group: in console.default_language (vi)
    assert tg_fake.posts(STAFF_CHAT, thread)[-1] == "↩ An Nguyễn → khách:\nChờ em chút ạ"


def test_the_same_update_twice_sends_once(client, hub, opened, tg_fake):
    _, thread = opened
    body = staff_update(AN, 901, "Em kiểm tra ngay ạ", thread, update_id=77)
    post(client, body)
    drain_all(hub)
    post(client, body)  # Telegram redelivers when it did not get our 200 in time
    drain_all(hub)
    run_outbound(hub)
    assert to_customer(tg_fake) == ["Em kiểm tra ngay ạ"]


def test_strangers_and_the_bot_itself_are_ignored(client, hub, opened, tg_fake, caplog):
    _, thread = opened
    calls = len(tg_fake.calls)
    with caplog.at_level(logging.INFO, logger="tongdai.core.workspace.staffgroup"):
        post(client, staff_update(STRANGER, 902, "Tôi là ai đây?", thread, first_name="Mallory"))
        post(client, staff_update(BOT_ID, 903, "an echo of our own post", thread))
        result = drain_all(hub)
    run_outbound(hub)
    mirror(hub)
    assert result["stored"] == 0 and result["dead"] == 0
    assert len(tg_fake.calls) == calls  # nothing sent anywhere, nothing answered
    assert len(hub.redis.zrange(hub.keys.conversations_by_status("open"), 0, -1)) == 1
    assert str(STRANGER) in caplog.text
    assert "Mallory" not in caplog.text and "Tôi là ai" not in caplog.text


def test_an_agent_of_another_team_is_told_no(client, hub, opened, tg_fake):
    _, thread = opened
    post(client, staff_update(BICH, 904, "Để em trả lời", thread, first_name="Bich"))
    drain_all(hub)
    run_outbound(hub)
    mirror(hub)
    assert to_customer(tg_fake) == []
    assert "may not work on conversation" in tg_fake.posts(STAFF_CHAT, thread)[-1]


def test_resolve_from_the_topic(client, hub, opened, tg_fake):
    conv, thread = opened
    post(client, staff_update(AN, 905, "/resolve", thread))
    drain_all(hub)
    mirror(hub)
    assert store.get_conversation(hub, conv).status.value == "resolved"
    assert tg_fake.posts(STAFF_CHAT, thread)[-1] == "✅ Resolved by An Nguyễn."
    entries, _ = audit.entries(hub, action="conversation.resolved", target=conv)
    assert [(e["actor"], e["details"]) for e in entries] == [("an", {"via": "telegram"})]
    run_outbound(hub)
    assert to_customer(tg_fake) == []
    # a refusal is the case the hub named, said as the console says it
    post(client, staff_update(AN, 906, "/escalate khách gấp", thread))
    drain_all(hub)
    mirror(hub)
    assert tg_fake.posts(STAFF_CHAT, thread)[-1] == (
        f"Not done: Conversation #{conv} is closed: reopen it first.")


def test_escalate_and_deescalate_from_the_topic(client, hub, opened, tg_fake, admin_token):
    conv, thread = opened
    post(client, staff_update(AN, 920, "/escalate", thread))
    drain_all(hub)
    mirror(hub)
    assert tg_fake.posts(STAFF_CHAT, thread)[-1].startswith("Usage: /escalate reason")
    post(client, staff_update(AN, 921, "/escalate khách bị trừ tiền hai lần", thread))
    drain_all(hub)
    mirror(hub)
    assert store.get_conversation(hub, conv).queue == "billing"
    assert tg_fake.posts(STAFF_CHAT, thread)[-1] == (
        "⬆️ Escalated by An Nguyễn: now in queue billing (tier 2).")
    # billing's agent (in the group too) sends it back down; an no longer may
    post(client, staff_update(AN, 922, "/deescalate", thread))
    drain_all(hub)
    mirror(hub)
    assert "may not work on conversation" in tg_fake.posts(STAFF_CHAT, thread)[-1]
    post(client, staff_update(BICH, 923, "/deescalate đã hoàn tiền", thread, first_name="Bich"))
    drain_all(hub)
    mirror(hub)
    assert store.get_conversation(hub, conv).queue == "general"
    assert tg_fake.posts(STAFF_CHAT, thread)[-1] == (
        "⬇️ De-escalated by bich: now in queue general (tier 1).")
    post(client, staff_update(AN, 924, "/resolve", thread))
    drain_all(hub)
    items = client.get(f"/api/v1/conversations/{conv}/messages",
                       headers=auth(admin_token)).json["items"]
    assert [m["text"] for m in reversed(items) if m["kind"] == "system"] == [
        ("an escalated it from general (tier 1) to billing (tier 2, team billing)"
        " — khách bị trừ tiền hai lần"),
        ("bich de-escalated it from billing (tier 2) to general (tier 1, team support)"
        " — đã hoàn tiền"),
        "an resolved the conversation"]
    assert to_customer(tg_fake) == []  # commands are never sent


def test_note_from_the_topic_is_never_sent(client, hub, opened, tg_fake, admin_token):
    conv, thread = opened
    post(client, staff_update(AN, 906, "/note@tongdai_bot khách quen, ưu tiên", thread))
    drain_all(hub)
    run_outbound(hub)
    mirror(hub)
    assert to_customer(tg_fake) == []
    items = client.get(f"/api/v1/conversations/{conv}/messages",
                       headers=auth(admin_token)).json["items"]
    notes = [m for m in items if m["kind"] == "note"]
    assert len(notes) == 1 and notes[0]["text"] == "khách quen, ưu tiên"
    assert notes[0]["direction"] == "internal" and notes[0]["author"]["id"] == "an"
    assert tg_fake.posts(STAFF_CHAT, thread)[-1].startswith("📝 Note saved")


def test_claim_from_the_topic(client, hub, opened, tg_fake):
    pytest.importorskip("tongdai.core.workspace.assignment", reason="core/assignment.py (claim) not written yet")
    conv, thread = opened
    post(client, staff_update(AN, 907, "/claim", thread))
    drain_all(hub)
    mirror(hub)
    assert store.get_conversation(hub, conv).assignee == "an"
    assert tg_fake.posts(STAFF_CHAT, thread)[-1] == "🙋 An Nguyễn took this conversation."
    # a second agent of the team is told who has it
    users.create(hub, users.User(name="chi", role="agent", teams=["support"],
                                 telegram_user_id=7003, language="zh"), None)
    post(client, staff_update(7003, 910, "/claim", thread, first_name="Chi"))
    drain_all(hub)
    mirror(hub)
    assert store.get_conversation(hub, conv).assignee == "an"
    # ... in chi's language (the case the hub named, as the console says it)
    assert tg_fake.posts(STAFF_CHAT, thread)[-1] == "未执行：An Nguyễn 已接手该会话。"


def test_a_refused_reply_is_explained_in_the_topic(client, hub, opened, tg_fake):
    _, thread = opened
    # the customer blocks the bot: replies on tg-test are refused before sending
    post(client, orjson.dumps({"update_id": 4000, "my_chat_member": {
        "chat": {"id": CUSTOMER, "type": "private", "first_name": "Lan"},
        "from": {"id": CUSTOMER, "is_bot": False, "first_name": "Lan"}, "date": 1700000200,
        "old_chat_member": {"user": {"id": BOT_ID, "is_bot": True}, "status": "member"},
        "new_chat_member": {"user": {"id": BOT_ID, "is_bot": True}, "status": "kicked"}}}))
    drain_all(hub)
    post(client, staff_update(AN, 908, "Chị ơi?", thread))
    drain_all(hub)
    run_outbound(hub)
    mirror(hub)
    assert to_customer(tg_fake) == []
    notice = tg_fake.posts(STAFF_CHAT, thread)[-1]
    assert notice == "Not done: Cannot reply on tg-test: the customer blocked this channel."


def test_flood_wait_on_create_topic_is_retried_later_not_lost(client, hub, tg_fake):
    tg_fake.fail_next("createForumTopic", 429, description="Too Many Requests: retry after 300",
                      retry_after=300)
    customer_says(client, hub, 1, "Có ai không?")
    with pytest.raises(DeliveryError):
        mirror(hub)
    with pytest.raises(DeliveryError):  # still waiting: Telegram is not asked again
        mirror(hub)
    assert [m for m, _ in tg_fake.calls].count("createForumTopic") == 1
    assert tg_fake.topics(STAFF_CHAT) == {}
    hub.redis.delete(hub.keys.staff_pause(str(STAFF_CHAT)))  # the 300 s have passed
    mirror(hub)
    thread = topic(tg_fake)
    assert tg_fake.posts(STAFF_CHAT, thread)[-1] == "Có ai không?"


def test_a_short_flood_wait_is_waited_out_in_place(client, hub, opened, tg_fake, monkeypatch):
    from tongdai.core.workspace import staffgroup_topics

    _, thread = opened
    waited = []
    monkeypatch.setattr(staffgroup_topics, "_sleep", waited.append)
    tg_fake.fail_next("sendMessage", 429, description="Too Many Requests: retry after 7",
                      retry_after=7)
    customer_says(client, hub, 2, "Alo?")
    mirror(hub)
    assert waited == [7.0]
    assert tg_fake.posts(STAFF_CHAT, thread)[1:] == ["Xin chào, đơn hàng của tôi đâu?", "Alo?"]


def test_a_deleted_topic_is_replaced_on_the_next_message(client, hub, opened, tg_fake):
    _, thread = opened
    hub.adapter("tg-test").call("deleteForumTopic", {"chat_id": STAFF_CHAT,
                                                     "message_thread_id": thread})
    customer_says(client, hub, 2, "Alo?")
    mirror(hub)
    new = topic(tg_fake)
    assert new != thread and tg_fake.posts(STAFF_CHAT, new)[-1] == "Alo?"
    post(client, staff_update(AN, 909, "Dạ em đây", new))
    drain_all(hub)
    run_outbound(hub)
    assert to_customer(tg_fake) == ["Dạ em đây"]


def test_racing_reactors_open_one_topic_and_post_its_intro_once(client, hub, tg_fake):
    import threading

    from tongdai.core.workspace import staffgroup_topics

    customer_says(client, hub, 1, "Xin chào")
    conv = store.get_conversation(hub, only_conversation(hub))
    (group,) = staffgroup_topics.groups_of_queue(hub, conv.queue)
    start, results = threading.Barrier(4), []

    def race():
        start.wait()
        try:
            results.append(staffgroup_topics.ensure_topic(hub, group, conv))
        except DeliveryError as exc:  # "busy": the other one is posting; retried later
            results.append(exc.code)

    threads = [threading.Thread(target=race) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    thread = topic(tg_fake)
    assert set(results) <= {thread, "busy"} and thread in results
    assert [m for m, _ in tg_fake.calls].count("createForumTopic") == 1
    assert len(tg_fake.posts(STAFF_CHAT, thread)) == 1  # the intro


def test_only_forum_topic_messages_carry_a_topic():
    from tongdai.adapters.telegram import parse_update

    def parsed(**extra) -> str | None:
        msg = {"message_id": 5, "date": 1700000000, "text": "hi", "from": {"id": AN},
               "chat": {"id": STAFF_CHAT, "type": "supergroup"}} | extra
        return parse_update(orjson.dumps({"update_id": 1, "message": msg}), 0)[0].topic_id

    assert parsed(message_thread_id=12, is_topic_message=True) == "12"
    assert parsed(message_thread_id=12) is None  # a reply thread in a group without topics
    assert parsed() is None
