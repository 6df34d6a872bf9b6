"""Answering by email: an agent is mailed when a conversation is assigned to them, and their
mail reply reaches the customer on the customer's channel, under their name.

Real peers: the hub's SMTP listener (aiosmtpd) takes the agent's mail, a recording aiosmtpd
relay stands in for the mail server, the fake Telegram Bot API is the customer's side.
"""

from __future__ import annotations

import logging
import smtplib
import time
from email.message import EmailMessage
from email.utils import make_msgid

import orjson
import pytest

from tests.conftest import write_config
from tests.fakes import echo_adapter
from tests.helpers import auth, drain_all, post, run_outbound, tg_update
from tests.workspace.conftest import TEAMS
from tongdai.core.errors import DeliveryError
from tongdai.core.pipeline import feed
from tongdai.core.workspace import (
    agentmail,
    agentmail_notices,
    agentmail_sending,
    assignment,
    users,
)
from tongdai.core.workspace.access import Principal

SUPPORT = "support@shop.example.vn"
AN = "an@shop.example"
MX = "mx.shop.example.vn"
CUSTOMER_TEXT = "Chào shop, mình nạp tiền điện thoại 100k từ sáng mà chưa thấy vào tài khoản ạ"
ANSWER = "Dạ shop đã nạp lại thẻ cho bạn rồi ạ"
SUPERVISOR = Principal("cuong", "supervisor", frozenset({"support"}))


@pytest.fixture
def config_file(tmp_path, tg_fake, relay, listen_port):
    return write_config(tmp_path / "tongdai.yaml", api_base=tg_fake.base_url, extra=f"""
  - id: mail
    adapter: email
    settings:
      address: {SUPPORT}
      name: Shop ABC hỗ trợ
      inbound:
        smtp: {{host: 127.0.0.1, port: {listen_port}}}
      outbound:
        smtp: {{host: 127.0.0.1, port: {relay.port}, starttls: false}}
      trusted_authserv_id: {MX}
  - id: echo-1
    adapter: tests.fakes.echo_adapter:EchoAdapter
    settings:
      signing_key: k3y
{TEAMS}
notifications:
  console_url: https://hub.shop.example.vn/
""")


@pytest.fixture
def an(hub, people):
    users.update(hub, "an", {"email": AN})
    return people


def run_agentmail(hub) -> None:
    feed.run_pending(hub, ["agentmail"])


def send_to(port: int, m: EmailMessage) -> None:
    with smtplib.SMTP("127.0.0.1", port, timeout=10) as conn:
        conn.send_message(m)


def telegram_conversation(client, hub, text: str = CUSTOMER_TEXT) -> str:
    assert post(client, tg_update(1, 4242, 1, text, first_name="Lan")).status_code == 200
    assert drain_all(hub)["stored"] == 1
    (conv,) = [c.decode() for c in hub.redis.zrange(hub.keys.conversations_by_status("open"),
                                                     0, -1)]
    return conv


def notify(hub, conv: str, relay) -> EmailMessage:
    """Assign ``conv`` to an (a supervisor does it) and return the one mail an gets."""
    before = len(relay.received)
    assignment.assign(hub, SUPERVISOR, conv, "an")
    run_agentmail(hub)
    assert len(relay.received) == before + 1
    return relay.received[-1].message


def agent_reply(to: str, text: str, notification: EmailMessage | None = None,
                sender: str = AN, authenticated: bool = True) -> EmailMessage:
    """An's answer as Gmail writes it: new text on top, the notification quoted below."""
    m = EmailMessage()
    m["From"] = f"An <{sender}>"
    m["To"] = to
    m["Subject"] = f"Re: {notification['Subject']}" if notification else "Re: thông báo"
    m["Message-ID"] = make_msgid(domain=sender.rpartition("@")[2])
    m["Date"] = "Mon, 23 Nov 2026 10:05:00 +0700"
    if notification:
        m["In-Reply-To"] = notification["Message-ID"]
    if authenticated:
        domain = sender.rpartition("@")[2]
        m["Authentication-Results"] = (f"{MX}; spf=pass smtp.mailfrom={domain}; "
                                       f"dmarc=pass header.from={domain}")
    quoted = ""
    if notification:
        body = notification.get_body(("plain",)).get_content()
        quoted = ("\n\nVào Th 2, 23 thg 11, 2026 lúc 10:01 Shop ABC hỗ trợ <" + SUPPORT +
                  "> đã viết:\n" + "\n".join(f"> {line}" for line in body.splitlines()))
    m.set_content(text + quoted)
    return m


def timeline(client, token, conv) -> list[dict]:
    """The conversation with the customer, oldest first (not the system lines: assignments)."""
    r = client.get(f"/api/v1/conversations/{conv}/messages", headers=auth(token))
    assert r.status_code == 200, r.json
    return [m for m in reversed(r.json["items"]) if m["kind"] != "system"]


def test_assigned_agent_is_mailed_once_and_their_reply_reaches_telegram(
        hub, client, an, listener, relay, tg_fake, caplog):
    caplog.set_level(logging.DEBUG)
    conv = telegram_conversation(client, hub)
    mail = notify(hub, conv, relay)
    assert relay.received[-1].rcpt_tos == [AN]
    token_address = mail["Reply-To"]
    assert token_address.startswith(f"reply+a{conv}.an.")
    assert token_address.endswith("@shop.example.vn")
    assert mail["Subject"] == f"[#{conv}] Lan — Chào shop, mình nạp tiền điện thoại 100k"
    assert mail["Auto-Submitted"] == "auto-generated"
    body = mail.get_body(("plain",)).get_content()
    assert CUSTOMER_TEXT in body  # the customer's Vietnamese, intact
    assert f"https://hub.shop.example.vn/console#{conv}" in body

    # The feed redelivers the event (a reactor crashed before acknowledging): no second mail.
    events = [e for e in feed.read_after(hub, "0-0") if e.type == "conversation.assigned"]
    agentmail.react(hub, events)
    run_agentmail(hub)
    assert len(relay.received) == 1

    answer = agent_reply(token_address, ANSWER, mail)
    send_to(listener.port, answer)
    drain_all(hub)
    run_outbound(hub)
    sent = tg_fake.sent("sendMessage")
    assert [(s["chat_id"], s["text"]) for s in sent] == [(4242, ANSWER)]  # quote cut off
    last = timeline(client, an["admin"], conv)[-1]
    assert (last["text"], last["author"], last["status"]) == (
        ANSWER, {"kind": "agent", "id": "an"}, "sent")

    # The same mail delivered again (the agent's server retried): sent once.
    send_to(listener.port, answer)
    drain_all(hub)
    run_outbound(hub)
    assert len(tg_fake.sent("sendMessage")) == 1
    assert len(timeline(client, an["admin"], conv)) == 2
    # Nothing personal in the logs: no addresses, no message text.
    for secret in (AN, CUSTOMER_TEXT, ANSWER, token_address):
        assert secret not in caplog.text


def test_mail_to_the_token_from_someone_else_is_not_an_agent_reply(hub, client, an, listener,
                                                                     relay, tg_fake):
    conv = telegram_conversation(client, hub)
    token_address = notify(hub, conv, relay)["Reply-To"]
    # A stranger who learnt the address, and an's address without our MX vouching for it.
    send_to(listener.port, agent_reply(token_address, "Gửi mã OTP cho tôi",
                                       sender="ke.gian@evil.example"))
    send_to(listener.port, agent_reply(token_address, "Giả danh an", authenticated=False))
    assert drain_all(hub)["stored"] == 2  # kept as strangers' mail, in conversations of theirs
    run_outbound(hub)
    assert tg_fake.sent("sendMessage") == []
    assert [m["text"] for m in timeline(client, an["admin"], conv)] == [CUSTOMER_TEXT]


def test_a_forged_token_does_nothing(hub, client, an, listener, relay, tg_fake):
    conv = telegram_conversation(client, hub)
    notify(hub, conv, relay)
    for forged in (f"reply+a{conv}.an.{'0' * 20}@shop.example.vn",
                   f"reply+a{conv}.cuong.{'f' * 20}@shop.example.vn"):
        send_to(listener.port, agent_reply(forged, "Hoàn tiền cho khách ngay"))
    drain_all(hub)
    run_outbound(hub)
    run_agentmail(hub)
    assert tg_fake.sent("sendMessage") == []
    assert [m["text"] for m in timeline(client, an["admin"], conv)] == [CUSTOMER_TEXT]
    assert len(relay.received) == 1  # the notification only


def _echo_message_days_ago(client, hub, days: float) -> None:
    """A message on the echo channel (24 h reply window) written ``days`` ago."""
    adapter = hub.adapter("echo-1")
    body = orjson.dumps({"id": time.time_ns(), "user": "u1", "name": "Wei", "text": "还在吗？",
                         "ts": int(time.time() * 1000 - days * 86400_000)})
    r = client.post("/webhooks/echo-1", data=body, headers={
        "X-Echo-Signature": adapter._sign(body), "Content-Type": "application/json"})
    assert r.status_code == 200


def test_closed_window_is_explained_to_the_agent_once_and_nothing_is_sent(
        hub, client, an, listener, relay):
    _echo_message_days_ago(client, hub, 2)
    drain_all(hub)
    (conv,) = [c.decode() for c in hub.redis.zrange(hub.keys.conversations_by_status("open"),
                                                     0, -1)]
    mail = notify(hub, conv, relay)
    answer = agent_reply(mail["Reply-To"], "Dạ shop vẫn ở đây ạ", mail)
    echo_adapter.SENT.clear()
    for _ in range(2):  # delivered twice: explained once
        send_to(listener.port, answer)
        drain_all(hub)
        run_outbound(hub)
        run_agentmail(hub)
    assert echo_adapter.SENT == []
    assert len(relay.received) == 2
    back = relay.received[-1]
    assert back.rcpt_tos == [AN]
    assert back.message["Subject"] == f"[#{conv}] Chưa gửi được trả lời của bạn"
    assert back.message["In-Reply-To"] == answer["Message-ID"]
    assert back.message["Auto-Submitted"] == "auto-replied"
    assert "24 h" in back.message.get_body(("plain",)).get_content()
    assert [m["direction"] for m in timeline(client, an["admin"], conv)] == ["in"]


def test_a_reply_with_nothing_new_sends_nothing(hub, client, an, listener, relay, tg_fake):
    conv = telegram_conversation(client, hub)
    mail = notify(hub, conv, relay)
    send_to(listener.port, agent_reply(mail["Reply-To"], "", mail))  # hit "send" by mistake
    drain_all(hub)
    run_outbound(hub)
    run_agentmail(hub)
    assert tg_fake.sent("sendMessage") == []
    assert "không có nội dung mới" in relay.received[-1].message.get_body(
        ("plain",)).get_content()


def test_disabled_agent_is_refused_and_others_are_not_notified(hub, client, an, listener,
                                                               relay, tg_fake):
    conv = telegram_conversation(client, hub)
    mail = notify(hub, conv, relay)
    users.update(hub, "an", {"disabled": True})
    send_to(listener.port, agent_reply(mail["Reply-To"], ANSWER, mail))
    drain_all(hub)
    run_outbound(hub)
    run_agentmail(hub)
    assert tg_fake.sent("sendMessage") == []
    assert len(relay.received) == 1
    # A claim (self-assignment) mails nobody: the agent is in the console already.
    users.update(hub, "an", {"disabled": False})
    assignment.assign(hub, SUPERVISOR, conv, None)
    assignment.claim(hub, Principal("an", "agent", frozenset({"support"})), conv)
    run_agentmail(hub)
    assert len(relay.received) == 1


def test_daily_digest_lists_waiting_conversations_once(hub, client, an, relay):
    conv = telegram_conversation(client, hub)
    notify(hub, conv, relay)
    assert agentmail_notices.send_digests(hub, "2020-01-01") == 1
    assert agentmail_notices.send_digests(hub, "2020-01-01") == 0
    digest = relay.received[-1].message
    assert digest["Subject"] == "Các cuộc hội thoại đang chờ bạn trả lời (1)"
    body = digest.get_body(("plain",)).get_content()
    assert f"#{conv} · Lan · tg-test: Chào shop" in body
    assert f"reply+a{conv}.an." in body
    # The scheduler's tick, from digest_hour on: once a day.
    hub.config.hub.notifications.digest_hour = 0
    assert agentmail_notices.digest_tick(hub) == 1
    assert agentmail_notices.digest_tick(hub) == 0
    assert len(relay.received) == 3  # notification, 2020-01-01's digest, today's
    # An agent who chose Chinese gets the mail in Chinese (i18n/zh.json's mail.* texts).
    users.update(hub, "an", {"language": "zh"})
    assert agentmail_notices.send_digests(hub, "2020-01-02") == 1
    assert relay.received[-1].message["Subject"] == "等待您回复的会话（1）"
    assert "分配给您、正在等待回复的会话" in relay.received[-1].message.get_body(
        ("plain",)).get_content()


def test_long_vietnamese_subjects_keep_their_spaces(hub):
    """The stdlib's header folder loses the space between two encoded words; ours does not
    (customers' replies use the same ``sending.set_subject``)."""
    import email
    import email.policy

    from tongdai.adapters.base import OutboundMessage
    from tongdai.adapters.email import sending
    from tongdai.core.models import AuthorKind

    subject = "Đơn hàng #123 chưa nhận được, shop kiểm tra giúp mình với nhé, cảm ơn của bạn"
    out = OutboundMessage(address="lan@example.vn", text="Dạ", author_kind=AuthorKind.AGENT,
                          idempotency_key="9", conversation_id="7", subject=subject)
    raw = sending.build(hub.adapters["mail"].settings, out).as_bytes()
    back = email.message_from_bytes(raw, policy=email.policy.default)
    assert back["Subject"] == f"Re: {subject} [#7]"


def test_notifications_must_name_an_email_channel(tmp_path):
    from tongdai.core.config import ConfigInvalid, load_config

    path = write_config(tmp_path / "bad.yaml", extra="notifications:\n  email_channel: tg-test\n")
    with pytest.raises(ConfigInvalid) as err:
        load_config(str(path))
    assert "notifications.email_channel" in str(err.value)


def test_relay_down_then_up_sends_the_notification_once(hub, client, an, relay):
    conv = telegram_conversation(client, hub)
    relay.answer_next("451 4.3.0 try again later")
    assignment.assign(hub, SUPERVISOR, conv, "an")
    with pytest.raises(DeliveryError):
        run_agentmail(hub)  # the reactor's batch stays pending
    run_agentmail(hub)
    run_agentmail(hub)
    assert [r.rcpt_tos for r in relay.received] == [[AN]]


def test_agent_who_lost_the_conversation_cannot_answer_it(hub, client, an, listener, relay,
                                                         tg_fake):
    conv = telegram_conversation(client, hub)
    mail = notify(hub, conv, relay)
    # A supervisor hands it to billing's bich: an no longer sees it.
    assignment.assign(hub, Principal("admin", "admin"), conv, "bich", team="billing")
    send_to(listener.port, agent_reply(mail["Reply-To"], ANSWER, mail))
    drain_all(hub)
    run_outbound(hub)
    run_agentmail(hub)
    assert tg_fake.sent("sendMessage") == []
    back = relay.received[-1]
    assert back.rcpt_tos == [AN]
    assert "không còn quyền" in back.message.get_body(("plain",)).get_content()


def test_a_sender_that_died_mid_send_is_replaced_once_its_marker_expires(hub, client, an,
                                                                         relay):
    conv = telegram_conversation(client, hub)
    assignment.assign(hub, SUPERVISOR, conv, "an")
    (event,) = [e for e in feed.read_after(hub, "0-0") if e.type == "conversation.assigned"]
    marker = hub.keys.agent_mail_sent(f"assign:{event.id}:an")
    hub.redis.set(marker, "sending", ex=agentmail_sending.SENDING_TTL_S)  # a reactor died here
    with pytest.raises(DeliveryError):
        run_agentmail(hub)  # not given up: the event stays pending
    assert relay.received == []
    hub.redis.delete(marker)  # the marker's lifetime is over
    run_agentmail(hub)
    run_agentmail(hub)
    assert [r.rcpt_tos for r in relay.received] == [[AN]]


def test_a_copy_of_an_answer_delivered_days_later_is_not_sent_again(hub, client, an, listener,
                                                                     relay, tg_fake):
    """The send idempotency lasts 24 h; a DKIM-signed mail stays valid for longer. Someone who
    got hold of a copy of an's answer and delivers it again later must not make the hub
    answer the customer twice."""
    conv = telegram_conversation(client, hub)
    answer = agent_reply(notify(hub, conv, relay)["Reply-To"], ANSWER)
    send_to(listener.port, answer)
    drain_all(hub)
    run_outbound(hub)
    assert len(tg_fake.sent("sendMessage")) == 1
    for k in hub.redis.scan_iter(hub.keys.idempotency("agentmail", "*")):
        hub.redis.delete(k)  # as 24 h later
    send_to(listener.port, answer)
    drain_all(hub)
    run_outbound(hub)
    assert len(tg_fake.sent("sendMessage")) == 1
    assert [m["text"] for m in timeline(client, an["admin"], conv)] == [CUSTOMER_TEXT, ANSWER]
