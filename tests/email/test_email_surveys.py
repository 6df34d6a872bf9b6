"""Ticket status and CSAT by mail (issue #14): a reply asking for the status gets it in the
thread; after resolve the survey mail asks for a number, the customer's reply "4" (quoted
question below it, as mail programs write) is the rating and does not reopen the ticket; an
out-of-office answer to the survey is never taken as one, nor answered."""

from __future__ import annotations

import pytest

from tests.conftest import write_config
from tests.email.conftest import customer_mail, mail_channel, send_to
from tests.helpers import drain_all, run_outbound
from tongdai.core.models import ConversationStatus
from tongdai.core.pipeline import feed, store
from tongdai.core.selfservice import surveys


@pytest.fixture
def config_file(tmp_path, relay, listen_port):
    return write_config(tmp_path / "tongdai.yaml", extra=mail_channel(relay, listen_port) + """
selfservice:
  status: true
  csat: true
""")


def settle(hub) -> None:
    drain_all(hub)
    feed.run_pending(hub, ["surveys"])
    run_outbound(hub)


def body(m) -> str:
    return m.get_body(("plain",)).get_content().strip()


def test_status_then_csat_by_mail(hub, listener, relay):
    first = customer_mail("Chào shop, mình đặt cái đèn (đơn #123) tuần trước mà chưa nhận được.")
    send_to(listener.port, first)
    settle(hub)
    conv = "1"
    send_to(listener.port, customer_mail("Cho mình hỏi tình trạng đơn với ạ?",
                                         subject=f"Re: Đơn hàng [#{conv}]",
                                         In_Reply_To=first["Message-ID"]))
    settle(hub)
    (status,) = relay.received
    assert body(status.message).startswith(f"Yêu cầu #{conv} đang chờ nhân viên hỗ trợ")

    store.set_status(hub, conv, ConversationStatus.RESOLVED)
    settle(hub)
    survey = relay.received[1].message
    assert body(survey).endswith("Trả lời bằng một số từ 1 đến 5.")
    send_to(listener.port, customer_mail("I am out of the office until 30/11. 5",
                                         subject="Automatic reply", Auto_Submitted="auto-replied",
                                         In_Reply_To=survey["Message-ID"]))
    send_to(listener.port, customer_mail(
        "4\n\nOn Mon, 23 Nov 2026, Shop <support@shop.example.vn> wrote:\n> " +
        body(survey).replace("\n", "\n> "), subject="Re: " + (survey["Subject"] or ""),
        In_Reply_To=survey["Message-ID"]))
    settle(hub)
    got = surveys.of_conversation(hub, conv)
    assert got["csat"] == 4
    assert hub.redis.hget(hub.keys.conversation(conv), "status") == b"resolved"
    assert len(relay.received) == 3  # the invitation to comment; nothing to the robot
    assert body(relay.received[2].message).startswith("Cảm ơn bạn đã đánh giá!")
