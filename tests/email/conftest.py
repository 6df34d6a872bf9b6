"""An email channel wired to real peers: the hub's own SMTP listener (aiosmtpd) for mail in,
a recording aiosmtpd relay for replies out."""

from __future__ import annotations

import smtplib
from email.message import EmailMessage
from email.utils import make_msgid

import pytest

from core.hub import Hub
from tests.conftest import free_port, write_config
from tests.fakes.smtp_peer import SmtpPeer

SIGNING_KEY = "key-mailgun-test-0123456789"
SUPPORT = "support@shop.example.vn"


@pytest.fixture
def relay():
    with SmtpPeer() as peer:
        yield peer


@pytest.fixture
def listen_port() -> int:
    return free_port()


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


@pytest.fixture
def hub(redis_client, redis_url, config_file, monkeypatch, tmp_path) -> Hub:
    monkeypatch.setenv("TONGDAI_CONFIG", str(config_file))
    monkeypatch.setenv("REDIS_URL", redis_url)
    monkeypatch.setenv("TONGDAI_DATA_DIR", str(tmp_path / "var"))
    h = Hub.from_env()
    from core import rawlog

    rawlog.ensure_groups(h)
    return h


@pytest.fixture
def listener(hub):
    """The hub's SMTP listener (``tongdai smtp``), in this process."""
    from webhooks import smtp

    controllers = smtp.start(hub)
    yield controllers[0]
    for c in controllers:
        c.stop()


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
