"""Automatic replies on an email channel under the ``acknowledgements:`` section: a new
conversation is answered in the customer's language, marked Auto-Submitted; automatic mail
never is, and mail is acknowledged for new conversations only (a mail that is not a reply
opens one anyway)."""

from __future__ import annotations

import pytest

from tests.conftest import write_config
from tests.email.conftest import customer_mail, mail_channel, send_to
from tests.helpers import drain_all, run_outbound
from tongdai.core.clock import now_ms


@pytest.fixture
def config_file(tmp_path, relay, listen_port):
    return write_config(tmp_path / "tongdai.yaml", extra=mail_channel(relay, listen_port) + """
acknowledgements:
  enabled: true
  channels:
    tg-test: {enabled: false}
""")


def test_mail_acknowledged_once_in_its_language_never_to_robots(hub, listener, relay):
    first = customer_mail("Hello, I ordered a lamp (order #123) last week and it has not "
                          "arrived yet.")  # dated Monday 23 November 2026, 10:00 +07:00
    send_to(listener.port, first)
    assert drain_all(hub)["stored"] == 1
    run_outbound(hub)
    (ack,) = relay.received
    conv = "1"  # the first conversation of a fresh database
    assert hub.redis.hget(hub.keys.conversation(conv), "channel") == b"mail"
    m = ack.message
    assert m["Auto-Submitted"] == "auto-replied" and m["In-Reply-To"] == first["Message-ID"]
    assert m.get_body(("plain",)).get_content().strip() == (
        f"Thanks for contacting us! We have received your message (ticket #{conv}). Our team "
        "will reply within about 15 minutes.")  # sla.first_response 15m, round the clock

    # An out-of-office answer to our acknowledgement, a day later: no reply to a robot.
    hub.redis.hset(hub.keys.conversation(conv), "ack_at", now_ms() - 25 * 3600_000)
    send_to(listener.port, customer_mail("I am out of the office until 30/11.",
                                         subject="Automatic reply: your request",
                                         In_Reply_To=m["Message-ID"],
                                         Auto_Submitted="auto-replied"))
    # The customer's own answer in the thread: mail acknowledges new conversations only.
    send_to(listener.port, customer_mail("Any news about my order?", subject="Re: order",
                                         In_Reply_To=m["Message-ID"]))
    assert drain_all(hub)["stored"] == 2
    run_outbound(hub)
    assert len(relay.received) == 1
    assert hub.redis.hlen(hub.keys.acknowledgements_due()) == 0
