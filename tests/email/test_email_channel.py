"""The email channel end to end: smtplib → our SMTP listener → raw log → worker → API; an
agent's reply → the send job → a real SMTP relay (aiosmtpd) with threading headers; the
customer's answer threads back; automatic mail never reopens or triggers replies."""

from __future__ import annotations

import email
import email.policy
import logging
import smtplib

import pytest

from tests.email.conftest import SUPPORT, customer_mail, send_to
from tests.helpers import auth, drain_all, run_outbound


def conversations(client, token) -> list[dict]:
    r = client.get("/api/v1/conversations?status=open", headers=auth(token))
    assert r.status_code == 200, r.json
    return r.json["items"]


def timeline(client, token, conv_id) -> list[dict]:
    r = client.get(f"/api/v1/conversations/{conv_id}/messages", headers=auth(token))
    assert r.status_code == 200, r.json
    return list(reversed(r.json["items"]))  # oldest first


def reply(client, token, conv_id, text, key):
    return client.post(f"/api/v1/conversations/{conv_id}/messages", json={"text": text},
                       headers={**auth(token), "Idempotency-Key": key})


@pytest.fixture
def opened(hub, client, admin_token, listener, relay):
    """A customer's first mail, stored, and the automatic acknowledgement sent."""
    first = customer_mail("Chào shop, mình đặt đơn #123 hôm thứ 2 mà chưa nhận được hàng.")
    send_to(listener.port, first)
    assert drain_all(hub)["stored"] == 1
    run_outbound(hub)
    (conv,) = conversations(client, admin_token)
    return conv, first


def test_mail_in_appears_in_the_api_with_the_customer(hub, client, admin_token, opened):
    conv, first = opened
    msg, _ack = timeline(client, admin_token, conv["id"])
    assert msg["text"] == "Chào shop, mình đặt đơn #123 hôm thứ 2 mà chưa nhận được hàng."
    assert msg["subject"] == "Đơn hàng #123 chưa nhận được"
    assert msg["external_id"] == first["Message-ID"].strip("<>")
    assert any(a["name"] == "original.eml" for a in msg["attachments"])  # the whole mail
    cust = client.get(f"/api/v1/customers/{conv['customer_id']}", headers=auth(admin_token)).json
    assert cust["name"] == "Nguyễn Thị Lan"
    assert cust["identifiers"] == [{"kind": "email", "value": "lan.nguyen@gmail.com",
                                    "verified": False, "source": "email-from"}]
    assert cust["identities"][0]["address"] == "lan.nguyen@gmail.com"
    # The address is personal data: in no key or value in clear (RQ's jobs included), in any
    # spelling, not even as the identity's key.
    from tests.test_encryption_at_rest import _values

    for key in hub.redis.scan_iter("*"):
        data = _values(hub.redis, key)
        assert b"lan.nguyen@gmail.com" not in data and b"lannguyen@gmail.com" not in data, key


def test_a_mails_subject_is_tagged_and_routed_like_its_text(hub, client, admin_token, listener,
                                                            relay):
    """The subject is often the whole problem ("Nạp thẻ lỗi", the body only "xem giúp em"):
    tagging and routing read it with the text (found by a new-user walkthrough: a refund
    mail whose body said nothing went to the general queue)."""
    send_to(listener.port, customer_mail("Shop xem giúp em với ạ", subject="Nạp thẻ 200k lỗi",
                                         sender="minh@example.vn", name="Minh"))
    drain_all(hub)
    (conv,) = conversations(client, admin_token)
    assert "payment" in conv["tags"] and conv["queue"] == "billing"


def test_acknowledgement_is_sent_once_and_marked_automatic(hub, opened, relay):
    conv, first = opened
    (ack,) = relay.received
    m = ack.message
    assert ack.rcpt_tos == ["lan.nguyen@gmail.com"]
    assert m["Auto-Submitted"] == "auto-replied"
    assert m["In-Reply-To"] == first["Message-ID"]
    assert f"[#{conv['id']}]" in m["Subject"]
    assert f"#{conv['id']}" in m.get_body(("plain",)).get_content()
    # The same mail delivered again (a sender's retry) stores nothing and sends nothing.
    from tests.email.conftest import send_to as again
    from tongdai.webhooks import smtp  # noqa: F401  (listener already running)

    again(hub.adapters["mail"].settings.inbound.smtp.port, first)
    assert drain_all(hub)["duplicates"] == 1
    run_outbound(hub)
    assert len(relay.received) == 1


def test_agent_reply_is_threaded_and_the_answer_comes_back(hub, client, admin_token, opened,
                                                             listener, relay):
    conv, first = opened
    r = reply(client, admin_token, conv["id"], "Dạ, đơn #123 đã giao cho bên vận chuyển ạ.",
              "r-1")
    assert r.status_code == 201, r.json
    run_outbound(hub)
    out = relay.received[-1].message
    assert out["In-Reply-To"] == first["Message-ID"]
    assert first["Message-ID"] in out["References"]
    assert out["Subject"] == f"Re: Đơn hàng #123 chưa nhận được [#{conv['id']}]"
    assert out["Reply-To"].startswith("reply+") and out["Reply-To"].endswith("@shop.example.vn")
    assert "Auto-Submitted" not in out  # a person wrote it
    assert out.get_body(("plain",)).get_content().strip() == (
        "Dạ, đơn #123 đã giao cho bên vận chuyển ạ.")
    assert out.get_body(("html",)) is not None
    sent = timeline(client, admin_token, conv["id"])[-1]
    assert sent["status"] == "sent" and sent["external_id"] == out["Message-ID"].strip("<>")

    answer = customer_mail("Cảm ơn shop, mình nhận được rồi.\n\nVào Th 2 Shop ABC đã viết:\n"
                           "> Dạ, đơn #123 đã giao", subject=f"Re: {out['Subject']}",
                           In_Reply_To=out["Message-ID"],
                           References=f"{first['Message-ID']} {out['Message-ID']}")
    send_to(listener.port, answer)
    drain_all(hub)
    msgs = timeline(client, admin_token, conv["id"])
    assert msgs[-1]["text"] == "Cảm ơn shop, mình nhận được rồi."
    assert len(conversations(client, admin_token)) == 1


def test_outlook_rewritten_headers_still_thread_by_reply_token(hub, client, admin_token, opened,
                                                                listener, relay):
    conv, _ = opened
    token_addr = relay.received[-1].message["Reply-To"]
    # Outlook dropped In-Reply-To and References and replied to the Reply-To address.
    answer = customer_mail("Mình gửi thêm ảnh hóa đơn.", subject="RE: hỏi đơn", to=token_addr)
    send_to(listener.port, answer)
    drain_all(hub)
    assert len(conversations(client, admin_token)) == 1
    assert timeline(client, admin_token, conv["id"])[-1]["text"] == "Mình gửi thêm ảnh hóa đơn."


def test_subject_tag_threads_when_nothing_else_does(hub, client, admin_token, opened, listener):
    conv, _ = opened
    send_to(listener.port, customer_mail("Bổ sung thông tin", subject=f"Về đơn [#{conv['id']}]"))
    drain_all(hub)
    assert len(conversations(client, admin_token)) == 1


def test_other_senders_are_never_swallowed_into_the_thread(hub, client, admin_token, opened,
                                                             listener, relay):
    conv, first = opened
    ack_id = relay.received[-1].message["Message-ID"]
    # A new subject from a different sender: a new conversation of a new customer.
    send_to(listener.port, customer_mail("Shop còn size M không?", subject="Hỏi hàng",
                                         sender="minh@yahoo.com", name="Minh"))
    # Someone else replying to our mail (a forwarded thread, a newsletter): not merged either.
    send_to(listener.port, customer_mail("Tôi cũng chưa nhận được", subject="Re: Đơn hàng",
                                         sender="hung@outlook.com", name="Hùng",
                                         In_Reply_To=ack_id, References=ack_id))
    # Even with our [#id] tag and reply token copied: the conversation is not theirs.
    send_to(listener.port, customer_mail("xem giúp", subject=f"[#{conv['id']}]",
                                         sender="hung@outlook.com", name="Hùng"))
    drain_all(hub)
    convs = conversations(client, admin_token)
    # Lan's, Minh's, and Hùng's two (a mail that continues no thread of his is a new one)
    assert len(convs) == 4
    assert len({c["customer_id"] for c in convs}) == 3
    assert [m["text"] for m in timeline(client, admin_token, conv["id"])
            if m["direction"] == "in"] == [first.get_content().strip()]


def test_auto_reply_neither_reopens_nor_triggers_a_reply(hub, client, admin_token, opened,
                                                          listener, relay):
    conv, _ = opened
    r = client.post(f"/api/v1/conversations/{conv['id']}/resolve", headers=auth(admin_token))
    assert r.status_code == 200, r.json
    ack_id = relay.received[-1].message["Message-ID"]
    ooo = customer_mail("Tôi đang nghỉ phép đến 30/11.", subject="Trả lời tự động: Đơn hàng",
                        In_Reply_To=ack_id, Auto_Submitted="auto-replied")
    send_to(listener.port, ooo)
    assert drain_all(hub)["stored"] == 1
    run_outbound(hub)
    assert len(relay.received) == 1  # only the acknowledgement, never an answer to the robot
    assert conversations(client, admin_token) == []  # still resolved
    last = timeline(client, admin_token, conv["id"])[-1]
    assert last["kind"] == "auto_reply" and last["author"]["kind"] == "system"


def test_bounce_marks_our_reply_failed(hub, client, admin_token, opened, listener, relay):
    conv, _ = opened
    reply(client, admin_token, conv["id"], "Dạ shop kiểm tra ạ", "r-2")
    run_outbound(hub)
    ours = relay.received[-1].message["Message-ID"]
    dsn = (f"From: Mail Delivery Subsystem <mailer-daemon@googlemail.com>\r\n"
           f"To: {SUPPORT}\r\nSubject: Delivery Status Notification (Failure)\r\n"
           "Message-ID: <dsn-1@mx.google.com>\r\nMIME-Version: 1.0\r\n"
           'Content-Type: multipart/report; report-type=delivery-status; boundary="b"\r\n\r\n'
           "--b\r\nContent-Type: text/plain\r\n\r\nAddress not found\r\n"
           "--b\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; google.com"
           "\r\n\r\nFinal-Recipient: rfc822; lan.nguyen@gmail.com\r\nAction: failed\r\n"
           "Status: 5.1.1\r\nDiagnostic-Code: smtp; 550 5.1.1 The email account does not exist"
           f"\r\n\r\n--b\r\nContent-Type: text/rfc822-headers\r\n\r\nMessage-ID: {ours}\r\n"
           f"To: lan.nguyen@gmail.com\r\n\r\n--b--\r\n").encode()
    with smtplib.SMTP("127.0.0.1", listener.port) as c:
        c.sendmail("", [SUPPORT], dsn)
    assert drain_all(hub)["updated"] == 1
    msgs = timeline(client, admin_token, conv["id"])
    assert msgs[-1]["status"] == "failed" and "5.1.1" in msgs[-1]["status_reason"]
    assert len(conversations(client, admin_token)) == 1  # no conversation for the bounce


def test_listener_logs_no_addresses(hub, listener, caplog):
    caplog.set_level(logging.DEBUG)
    send_to(listener.port, customer_mail("xin chào"))
    drain_all(hub)
    assert caplog.records and "lan.nguyen" not in caplog.text


def test_listener_refuses_mail_for_other_addresses(listener):
    with smtplib.SMTP("127.0.0.1", listener.port) as c:
        c.ehlo()
        c.mail("spammer@example.com")
        code, _ = c.rcpt("someone-else@shop.example.vn")
        assert code == 550
        assert c.rcpt(SUPPORT.upper())[0] == 250


def test_relay_errors_retry_or_fail_with_the_reason(hub, client, admin_token, opened, relay):
    conv, _ = opened
    relay.answer_next("451 4.7.1 greylisted, try again later")
    reply(client, admin_token, conv["id"], "Thử lại", "r-3")
    run_outbound(hub)  # 451 → retried after a second, then accepted
    assert relay.received[-1].message.get_body(("plain",)).get_content().strip() == "Thử lại"
    assert timeline(client, admin_token, conv["id"])[-1]["status"] == "sent"
    relay.answer_next("550 5.7.1 message rejected as spam")
    reply(client, admin_token, conv["id"], "Lần nữa", "r-4")
    run_outbound(hub)
    last = timeline(client, admin_token, conv["id"])[-1]
    assert last["status"] == "failed"
    assert "550 5.7.1 message rejected as spam" in last["status_reason"]


def test_the_full_original_stays_downloadable(hub, client, admin_token, listener):
    send_to(listener.port, customer_mail("Nội dung mới\n\n> trích dẫn cũ"))
    drain_all(hub)
    (conv,) = conversations(client, admin_token)
    msg = timeline(client, admin_token, conv["id"])[0]
    assert msg["text"] == "Nội dung mới"
    n = next(i for i, a in enumerate(msg["attachments"]) if a["name"] == "original.eml")
    r = client.get(f"/api/v1/conversations/{conv['id']}/messages/{msg['id']}/attachments/{n}",
                   headers=auth(admin_token))
    assert r.status_code == 200 and r.mimetype == "message/rfc822"
    assert "> trích dẫn cũ" in email.message_from_bytes(
        r.data, policy=email.policy.default).get_content()
    # on disk, encrypted like all customer data
    files = [p for p in hub.blobs.root.rglob("*") if p.is_file()]
    needle = r.data.strip()[-24:]
    assert files and all(needle not in p.read_bytes() for p in files)
    assert client.get(f"/api/v1/conversations/{conv['id']}/messages/{msg['id']}/attachments/"
                      f"{n}").status_code == 401


def _report(report_type: str, machine: str, original: str, sender: str) -> bytes:
    """A multipart/report as mail servers send them (RFC 6522), with the original's headers."""
    return (f"From: {sender}\r\nTo: {SUPPORT}\r\nSubject: report\r\n"
            f"Message-ID: <report-{report_type}@mx.example.com>\r\nMIME-Version: 1.0\r\n"
            f'Content-Type: multipart/report; report-type={report_type}; boundary="b"\r\n\r\n'
            "--b\r\nContent-Type: text/plain\r\n\r\nA report about your mail.\r\n"
            f"--b\r\nContent-Type: message/{report_type}\r\n\r\n{machine}\r\n"
            f"--b\r\nContent-Type: text/rfc822-headers\r\n\r\n{original}\r\n--b--\r\n").encode()


def test_delay_and_read_receipt_update_our_reply(hub, client, admin_token, opened, listener,
                                                 relay):
    conv, _ = opened
    ours = relay.received[-1].message["Message-ID"]
    original = f"Message-ID: {ours}\r\nTo: lan.nguyen@gmail.com\r\n"
    delay = _report("delivery-status", "Reporting-MTA: dns; mx.gmail.com\r\n\r\n"
                    "Final-Recipient: rfc822; lan.nguyen@gmail.com\r\nAction: delayed\r\n"
                    "Status: 4.2.2\r\nDiagnostic-Code: smtp; 452 4.2.2 mailbox full",
                    original, "MAILER-DAEMON@mx.example.com")
    send_to(listener.port, email.message_from_bytes(delay, policy=email.policy.default))
    drain_all(hub)
    ack = timeline(client, admin_token, conv["id"])[-1]
    assert ack["status"] == "delayed" and "4.2.2" in ack["status_reason"]
    mdn = _report("disposition-notification", "Reporting-UA: Thunderbird\r\n"
                  "Final-Recipient: rfc822; lan.nguyen@gmail.com\r\n"
                  f"Original-Message-ID: {ours}\r\n"
                  "Disposition: manual-action/MDN-sent-manually; displayed", original,
                  "Nguyễn Thị Lan <lan.nguyen@gmail.com>")
    send_to(listener.port, email.message_from_bytes(mdn, policy=email.policy.default))
    drain_all(hub)
    assert timeline(client, admin_token, conv["id"])[-1]["status"] == "read"
    assert len(conversations(client, admin_token)) == 1


def test_spam_complaint_blocks_further_mail_to_that_customer(hub, client, admin_token, opened,
                                                              listener, relay):
    conv, _ = opened
    ours = relay.received[-1].message["Message-ID"]
    arf = _report("feedback-report", "Feedback-Type: abuse\r\nUser-Agent: Yahoo!-Mail-Feedback/2.0"
                  "\r\nVersion: 1\r\nOriginal-Rcpt-To: lan.nguyen@gmail.com",
                  f"Message-ID: {ours}\r\nTo: lan.nguyen@gmail.com\r\nFrom: {SUPPORT}\r\n",
                  "feedback@arf.mail.yahoo.com")
    send_to(listener.port, email.message_from_bytes(arf, policy=email.policy.default))
    drain_all(hub)
    (state,) = client.get(f"/api/v1/conversations/{conv['id']}/channels",
                          headers=auth(admin_token)).json["items"]
    assert state["reachable"] is False and "blocked" in state["reason"]
    r = reply(client, admin_token, conv["id"], "Dạ shop xin lỗi", "r-5")
    assert r.status_code == 409 and len(relay.received) == 1


def test_sender_is_verified_only_by_the_trusted_mta(hub, client, admin_token, listener):
    for i, (authserv, sender) in enumerate([("mx.evil.example", "a@gmail.com"),
                                            ("mx.shop.example.vn", "b@gmail.com")]):
        m = customer_mail(f"mail {i}", sender=sender, name=f"K{i}")
        m["Authentication-Results"] = (f"{authserv}; dkim=pass header.d=gmail.com; "
                                       "spf=pass smtp.mailfrom=gmail.com; dmarc=pass "
                                       "header.from=gmail.com")
        send_to(listener.port, m)
    drain_all(hub)
    found = {}
    for conv in conversations(client, admin_token):
        cust = client.get(f"/api/v1/customers/{conv['customer_id']}",
                          headers=auth(admin_token)).json
        (idf,) = cust["identifiers"]
        found[idf["value"]] = (idf["verified"], idf["source"])
    assert found == {"a@gmail.com": (False, "email-from"), "b@gmail.com": (True, "email-dmarc")}


def test_mail_without_message_id_is_stored_once(hub, client, admin_token, listener):
    m = customer_mail("Mail không có Message-ID")
    del m["Message-ID"]
    send_to(listener.port, m)
    send_to(listener.port, m)  # the sender's retry after a lost 250
    result = drain_all(hub)
    assert (result["stored"], result["duplicates"]) == (1, 1)


def test_listener_answers_451_when_the_mail_cannot_be_stored(hub, config_file):
    """Redis unreachable: the sender keeps the mail and retries; nothing is lost."""
    import redis as redis_lib

    from tongdai.core.config import load_config
    from tongdai.core.hub import Hub
    from tongdai.webhooks import smtp

    broken = Hub(load_config(str(config_file)), redis_lib.Redis(port=1, socket_timeout=0.5),
                 hub.keyring)
    (controller,) = smtp.start(broken)
    try:
        with pytest.raises(smtplib.SMTPDataError) as e, smtplib.SMTP(
                "127.0.0.1", controller.port) as c:
            c.send_message(customer_mail("xin chào"))
        assert e.value.smtp_code == 451
    finally:
        controller.stop()


def test_a_report_about_a_mail_we_never_sent_blocks_nobody(hub, client, admin_token, opened,
                                                           listener, relay):
    conv, _ = opened
    fake = _report("feedback-report", "Feedback-Type: abuse\r\nVersion: 1\r\n"
                   "Original-Rcpt-To: lan.nguyen@gmail.com",
                   "Message-ID: <not-ours@elsewhere.example>\r\nTo: lan.nguyen@gmail.com\r\n",
                   "prankster@example.com")
    send_to(listener.port, email.message_from_bytes(fake, policy=email.policy.default))
    drain_all(hub)
    (state,) = client.get(f"/api/v1/conversations/{conv['id']}/channels",
                          headers=auth(admin_token)).json["items"]
    assert state["reachable"] is True


def test_acknowledgement_survives_a_worker_dying_before_sending_it(hub, listener, relay,
                                                                    monkeypatch):
    """The worker stores the mail, then dies before queueing the acknowledgement: the
    scheduler's sweep sends it, once (review finding, 2026-11-23)."""
    from tongdai.core.pipeline import ingest

    monkeypatch.setattr(ingest, "acknowledge", lambda *a: None)  # dies right after storing
    send_to(listener.port, customer_mail("Cho mình hỏi đơn #77"))
    assert drain_all(hub)["stored"] == 1
    monkeypatch.undo()
    run_outbound(hub)
    assert relay.received == []
    assert ingest.acknowledge_due(hub) == 1  # the scheduler's sweep
    assert ingest.acknowledge_due(hub) == 0
    run_outbound(hub)
    (ack,) = relay.received
    assert ack.message["Auto-Submitted"] == "auto-replied"
