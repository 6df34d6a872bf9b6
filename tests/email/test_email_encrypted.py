"""With ``security.encrypt_message_text`` on, a mail's subject and its file names rest
encrypted like its text; agents and the reply's threading still see them."""

from __future__ import annotations

import pytest

from tests.email.conftest import customer_mail, send_to
from tests.email.test_email_channel import conversations, timeline
from tests.helpers import drain_all, run_outbound
from tests.test_encryption_at_rest import _values


@pytest.fixture
def config_file(config_file):
    config_file.write_text(config_file.read_text() + "security:\n  encrypt_message_text: true\n")
    return config_file


def test_subject_and_file_names_rest_encrypted(hub, client, admin_token, listener, relay):
    m = customer_mail("Hóa đơn đính kèm", subject="Khiếu nại đơn hàng Đặng Văn Lâm")
    m.add_attachment(b"%PDF-1.4 fake", maintype="application", subtype="pdf",
                     filename="hoa-don-Dang-Van-Lam.pdf")
    send_to(listener.port, m)
    drain_all(hub)
    run_outbound(hub)  # the acknowledgement: its subject comes from the sealed one
    (conv,) = conversations(client, admin_token)
    msg = timeline(client, admin_token, conv["id"])[0]
    assert msg["subject"] == "Khiếu nại đơn hàng Đặng Văn Lâm"
    assert "hoa-don-Dang-Van-Lam.pdf" in [a["name"] for a in msg["attachments"]]
    assert relay.received[-1].message["Subject"].startswith("Re: Khiếu nại đơn hàng Đặng")
    dump = b"".join(_values(hub.redis, k) for k in hub.redis.scan_iter("*"))
    assert "Đặng Văn Lâm".encode() not in dump and b"Dang-Van-Lam" not in dump
