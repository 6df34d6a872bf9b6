"""Replies through a submission server that requires STARTTLS and a login (aiosmtpd with a
self-signed certificate): sent with the right login, failed with a clear reason otherwise."""

from __future__ import annotations

import pytest

from tests.fakes.smtp_peer import SmtpPeer
from tongdai.adapters.base import OutboundMessage
from tongdai.adapters.email.sending import send
from tongdai.adapters.email.settings import EmailSettings
from tongdai.core.errors import DeliveryError
from tongdai.core.models import AuthorKind


@pytest.fixture
def submission(tmp_path):
    with SmtpPeer(login=("support@shop.example.vn", "s3cret-pass"), cert_dir=tmp_path) as peer:
        yield peer


def settings(port: int, password: str, verify: bool = False) -> EmailSettings:
    return EmailSettings.model_validate({
        "address": "support@shop.example.vn", "inbound": {"smtp": {}},
        "outbound": {"smtp": {"host": "127.0.0.1", "port": port, "starttls": True,
                              "user": "support@shop.example.vn", "password": password,
                              "verify_tls": verify}}})


def message() -> OutboundMessage:
    return OutboundMessage(address="lan@gmail.com", text="Dạ shop đã nhận ạ",
                           author_kind=AuthorKind.AGENT, idempotency_key="42",
                           conversation_id="7", subject="Đơn hàng", reply_token="7.abc")


def test_starttls_and_login_then_the_mail_goes_out(submission):
    receipt = send(settings(submission.port, "s3cret-pass"), message())
    (got,) = submission.received
    assert got.message["Message-ID"].strip("<>") == receipt.external_id
    assert got.message["Subject"] == "Re: Đơn hàng [#7]"


def test_wrong_password_fails_without_retry_and_says_what_to_check(submission):
    with pytest.raises(DeliveryError) as e:
        send(settings(submission.port, "wrong"), message())
    assert not e.value.retryable and "password" in str(e.value)
    assert submission.received == []


def test_an_unverifiable_certificate_is_refused_unless_allowed(submission):
    with pytest.raises(DeliveryError) as e:
        send(settings(submission.port, "s3cret-pass", verify=True), message())
    assert e.value.retryable  # a certificate problem may be fixed on the server side
    assert submission.received == []


def plain(port: int, timeout_s: float = 1.0) -> EmailSettings:
    return EmailSettings.model_validate({
        "address": "support@shop.example.vn", "inbound": {"smtp": {}},
        "outbound": {"smtp": {"host": "127.0.0.1", "port": port, "timeout_s": timeout_s,
                              "starttls": False}}})


def test_a_relay_that_takes_the_mail_but_answers_late_is_an_uncertain_send():
    """Issue #12: a send that timed out after the mail was handed over was resent (a second
    mail to the customer). It is now 'uncertain': retried once, later, and shown as such."""
    with SmtpPeer() as peer:
        peer.handler.stall_s = 3.0
        with pytest.raises(DeliveryError) as e:
            send(plain(peer.port, timeout_s=1.0), message())
        assert e.value.uncertain and e.value.retryable
        assert "may have gone out" in str(e.value)
        assert len(peer.received) == 1  # the relay has it


def test_a_relay_that_cannot_be_reached_is_a_plain_retry():
    from tests.conftest import free_port

    with pytest.raises(DeliveryError) as e:
        send(plain(free_port()), message())
    assert e.value.retryable and not e.value.uncertain
