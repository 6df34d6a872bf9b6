"""A real SMTP server (aiosmtpd) standing in for a mail relay: it records every mail it
accepts, and can be told to answer the next mails with an error (``451`` try later, ``550``
rejected) the way real relays do."""

from __future__ import annotations

import asyncio
import email
import email.policy
import ssl
from dataclasses import dataclass, field
from pathlib import Path
from typing import Self

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult

from tests.conftest import free_port
from tests.fakes.tls import self_signed_cert


@dataclass
class Received:
    mail_from: str
    rcpt_tos: list[str]
    data: bytes

    @property
    def message(self) -> email.message.EmailMessage:
        return email.message_from_bytes(self.data, policy=email.policy.default)


@dataclass
class _Handler:
    received: list[Received] = field(default_factory=list)
    answers: list[str] = field(default_factory=list)  # replies to the next DATA commands
    stall_s: float = 0.0  # keep the mail, answer this late (past the client's timeout)

    async def handle_DATA(self, server, session, envelope) -> str:
        if self.answers:
            return self.answers.pop(0)
        self.received.append(Received(envelope.mail_from, list(envelope.rcpt_tos),
                                      envelope.original_content or envelope.content))
        if self.stall_s:
            await asyncio.sleep(self.stall_s)
        return "250 2.0.0 queued as test"


class SmtpPeer:
    """``with SmtpPeer() as peer:`` a relay on 127.0.0.1:``peer.port``.

    With ``login=(user, password)`` it behaves like a submission server (port 587): STARTTLS
    with a self-signed certificate is required, then AUTH, before any mail.
    """

    def __init__(self, login: tuple[str, str] | None = None, cert_dir: Path | None = None) -> None:
        self.port = free_port()
        self.handler = _Handler()
        kwargs: dict = {}
        if login is not None:
            self_signed_cert(cert_dir)
            ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            ctx.load_cert_chain(cert_dir / "cert.pem", cert_dir / "key.pem")

            def authenticate(server, session, envelope, mechanism, auth_data):
                ok = (auth_data.login.decode(), auth_data.password.decode()) == login
                return AuthResult(success=ok, handled=False)

            kwargs = {"tls_context": ctx, "require_starttls": True, "auth_required": True,
                      "authenticator": authenticate}
        self._controller = Controller(self.handler, hostname="127.0.0.1", port=self.port,
                                      **kwargs)

    @property
    def received(self) -> list[Received]:
        return self.handler.received

    def answer_next(self, *replies: str) -> None:
        """Answer the next mails with these SMTP replies instead of accepting them."""
        self.handler.answers.extend(replies)

    def __enter__(self) -> Self:
        self._controller.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._controller.stop()
