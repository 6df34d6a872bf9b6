"""``tongdai imap`` wiring against a real dovecot: a mailbox's new mail becomes conversations,
the folder's resume point is in Redis, and a mail that also arrives by another road (the SMTP
listener) is stored once."""

from __future__ import annotations

import pytest

from tests.conftest import write_config
from tests.email.conftest import SUPPORT, customer_mail, send_to
from tests.fakes.dovecot import PASSWORD, USER, running_dovecot
from tests.helpers import drain_all


@pytest.fixture(scope="module")
def dovecot():
    with running_dovecot() as server:
        yield server


@pytest.fixture
def config_file(tmp_path, relay, listen_port, dovecot):
    return write_config(tmp_path / "tongdai.yaml", extra=f"""
  - id: mail
    adapter: email
    settings:
      address: {SUPPORT}
      inbound:
        smtp: {{host: 127.0.0.1, port: {listen_port}}}
        imap:
          host: 127.0.0.1
          port: {dovecot.port}
          tls: false
          user: {USER}
          password: "{PASSWORD}"
          idle: false
      outbound:
        smtp: {{host: 127.0.0.1, port: {relay.port}, starttls: false}}
""")


def test_mailbox_mail_becomes_conversations_once(hub, dovecot, listener):
    from tongdai.worker.imap import pollers

    first = customer_mail("Mình muốn đổi size áo", subject="Đổi hàng")
    second = customer_mail("Shop có giao COD không?", subject="Hỏi COD",
                           sender="hoa@yahoo.com.vn", name="Hoa")
    for m in (first, second):
        dovecot.append(m.as_bytes())
    (poller,) = pollers(hub)
    try:
        assert poller.poll_once() == 2
        assert poller.poll_once() == 0  # nothing new: the resume point held
    finally:
        poller.close()
    assert hub.redis.hget(hub.keys.imap_cursor("mail"), "last_uid") is not None
    send_to(listener.port, first)  # the same mail by the other road
    result = drain_all(hub)
    assert (result["stored"], result["duplicates"]) == (2, 1)
    texts = sorted(hub.redis.zrange(hub.keys.conversations_by_status("open"), 0, -1))
    assert len(texts) == 2

    # A restarted process (new poller, same Redis) does not fetch them again.
    (again,) = pollers(hub)
    try:
        assert again.poll_once() == 0
    finally:
        again.close()
