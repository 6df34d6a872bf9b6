"""Real-world mail through the hub (issue #12): the SMTP listener takes lines longer than
RFC 5321's 1000 bytes, and automatic mail that joins no conversation stays visible as a dead
letter saying why, instead of vanishing. Each test failed on the code before the fix."""

from __future__ import annotations

import smtplib

from tests.email.conftest import SUPPORT, customer_mail, send_to
from tests.helpers import auth, drain_all


def dead_letters(client, token) -> list[dict]:
    r = client.get("/api/v1/deadletters", headers=auth(token))
    assert r.status_code == 200, r.json
    return r.json["items"]


def open_conversations(client, token) -> list[dict]:
    r = client.get("/api/v1/conversations?status=open", headers=auth(token))
    assert r.status_code == 200, r.json
    return r.json["items"]


def test_listener_takes_lines_over_1000_bytes(hub, client, admin_token, listener):
    """A web shop's order form mails its HTML as one 6 KB line (and the text part as one
    long paragraph): aiosmtpd answered "500 Line too long", a permanent failure, so the
    customer got a bounce. Postfix, Gmail and Exchange take such lines."""
    paragraph = "Đơn #88: " + "áo thun size M màu xanh, " * 120 + "hết."
    html = "<html><body>" + "".join(f"<p>Dòng {i}: quần jean</p>" for i in range(250))
    raw = (f"From: Lan <lan@example.vn>\r\nTo: {SUPPORT}\r\nSubject: Form\r\n"
           "Message-ID: <form-88@example.vn>\r\nMIME-Version: 1.0\r\n"
           'Content-Type: multipart/alternative; boundary="b"\r\n\r\n'
           "--b\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit"
           f"\r\n\r\n{paragraph}\r\n--b\r\nContent-Type: text/html; charset=utf-8\r\n"
           f"Content-Transfer-Encoding: 8bit\r\n\r\n{html}</body></html>\r\n--b--\r\n"
           ).encode()
    assert max(len(line) for line in raw.split(b"\r\n")) > 6000
    with smtplib.SMTP("127.0.0.1", listener.port, timeout=10) as conn:
        conn.sendmail("lan@example.vn", [SUPPORT], raw)  # raised SMTPDataError 500 before
    assert drain_all(hub)["stored"] == 1
    (conv,) = open_conversations(client, admin_token)
    r = client.get(f"/api/v1/conversations/{conv['id']}/messages", headers=auth(admin_token))
    assert r.json["items"][-1]["text"] == paragraph


def test_long_commands_are_still_refused(listener):
    """The control: only mail lines got longer; a command keeps its 512-byte limit."""
    with smtplib.SMTP("127.0.0.1", listener.port, timeout=10) as conn:
        code, _ = conn.docmd("NOOP", "x" * 5000)
        assert code == 500
        assert conn.noop()[0] == 250  # and the session goes on


def test_automatic_mail_from_a_sender_without_conversation_is_kept(hub, client, admin_token,
                                                                   listener):
    """An out-of-office answer from someone who has no conversation with us (a forwarded mail
    of ours reached them, or a robot answered a newsletter) vanished: no conversation, no
    dead letter, although docs/connect-email.md says automatic mail is kept."""
    ooo = customer_mail("Tôi đang nghỉ phép đến 30/11.", subject="Trả lời tự động",
                        sender="hung.pham@example.vn", Auto_Submitted="auto-replied")
    send_to(listener.port, ooo)
    assert drain_all(hub) == {"stored": 0, "duplicates": 0, "updated": 0, "dead": 1}
    assert open_conversations(client, admin_token) == []  # automatic mail opens none
    (dead,) = dead_letters(client, admin_token)
    assert dead["error"].startswith("automatic mail (Auto-Submitted: auto-replied), Message-ID "
                                    + ooo["Message-ID"].strip("<>"))
    assert "no conversation to join" in dead["error"]
    assert "hung.pham" not in dead["error"]  # ids only: dead letters are listed to admins
    # Seen and dismissed: its replay stores nothing and removes it.
    r = client.post(f"/api/v1/deadletters/{dead['id']}/replay", headers=auth(admin_token))
    assert r.json == {"replayed": True, "stored": 0, "duplicates": 1}
    assert dead_letters(client, admin_token) == []


def _bounce(original: str | None) -> bytes:
    """A DSN (RFC 3464) from a mail server about ``original``, or naming no Message-ID."""
    headers = f"Message-ID: {original}\r\nTo: lan@example.vn\r\n" if original else ""
    return ("From: Mail Delivery Subsystem <mailer-daemon@mx.example.com>\r\n"
            f"To: {SUPPORT}\r\nSubject: Undelivered Mail Returned to Sender\r\n"
            f"Message-ID: <dsn-{len(headers)}@mx.example.com>\r\nMIME-Version: 1.0\r\n"
            'Content-Type: multipart/report; report-type=delivery-status; boundary="b"\r\n\r\n'
            "--b\r\nContent-Type: text/plain\r\n\r\nYour message could not be delivered.\r\n"
            "--b\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; "
            "mx.example.com\r\n\r\nFinal-Recipient: rfc822; lan@example.vn\r\nAction: failed"
            "\r\nStatus: 5.1.1\r\n\r\n--b\r\nContent-Type: text/rfc822-headers\r\n\r\n"
            f"{headers}\r\n--b--\r\n").encode()


def test_bounces_naming_no_mail_of_ours_are_kept(hub, client, admin_token, listener):
    """Bounces about a mail the hub never stored (sent from the mailbox by hand, or naming no
    Message-ID at all) were skipped without a trace."""
    with smtplib.SMTP("127.0.0.1", listener.port, timeout=10) as conn:
        conn.sendmail("", [SUPPORT], _bounce("<sent-by-hand@shop.example.vn>"))
        conn.sendmail("", [SUPPORT], _bounce(None))
    assert drain_all(hub)["dead"] == 2
    errors = sorted(d["error"] for d in dead_letters(client, admin_token))
    assert all(e.startswith("bounce (sender mailer-daemon), Message-ID dsn-") and
               e.endswith("it names no mail of ours stored here; kept here only")
               for e in errors), errors
