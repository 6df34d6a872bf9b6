"""An email channel wired to real peers: the hub's own SMTP listener (aiosmtpd) for mail in,
a recording aiosmtpd relay for replies out."""

from __future__ import annotations

import smtplib
from email.message import EmailMessage
from email.utils import make_msgid

import pytest

from tests.conftest import write_config

SIGNING_KEY = "key-mailgun-test-0123456789"
SUPPORT = "support@shop.example.vn"


@pytest.fixture
def config_file(tmp_path, relay, listen_port):
    return write_config(tmp_path / "tongdai.yaml", extra=f"""
  - id: mail
    adapter: email
    settings:
      address: {SUPPORT}
      name: Shop ABC hỗ trợ
      inbound:
        smtp: {{host: 127.0.0.1, port: {listen_port}}}
        webhook: {{signing_key: "{SIGNING_KEY}"}}
      outbound:
        smtp: {{host: 127.0.0.1, port: {relay.port}, starttls: false}}
      trusted_authserv_id: mx.shop.example.vn
      acknowledge: "Chúng tôi đã nhận được yêu cầu #{{ticket}} của bạn."
""")


def mail_channel(relay, listen_port: int) -> str:
    """Config lines for a plain mail channel ``mail`` (SMTP in on ``listen_port``, out through
    the ``relay`` peer), to add to ``write_config``'s channels."""
    return f"""  - id: mail
    adapter: email
    settings:
      address: {SUPPORT}
      inbound:
        smtp: {{host: 127.0.0.1, port: {listen_port}}}
      outbound:
        smtp: {{host: 127.0.0.1, port: {relay.port}, starttls: false}}
"""


def customer_mail(text: str, subject: str = "Đơn hàng #123 chưa nhận được",
                  sender: str = "lan.nguyen@gmail.com", name: str = "Nguyễn Thị Lan",
                  to: str = SUPPORT, **headers: str) -> EmailMessage:
    """A customer's mail, as a mail program writes it."""
    m = EmailMessage()
    m["From"] = f"{name} <{sender}>"
    m["To"] = to
    m["Subject"] = subject
    m["Message-ID"] = make_msgid(domain=sender.rpartition("@")[2])
    m["Date"] = "Mon, 23 Nov 2026 10:00:00 +0700"
    for k, v in headers.items():
        m[k.replace("_", "-")] = v
    m.set_content(text)
    return m


def send_to(port: int, m: EmailMessage, rcpts: list[str] | None = None) -> None:
    """Hand a mail to the listener with smtplib, as the customer's provider would."""
    with smtplib.SMTP("127.0.0.1", port, timeout=10) as conn:
        conn.send_message(m, to_addrs=rcpts)
