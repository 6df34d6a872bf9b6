"""A real SMTP server (aiosmtpd) standing in for a mail relay: it records every mail it
accepts, and can be told to answer the next mails with an error (``451`` try later, ``550``
rejected) the way real relays do."""

from __future__ import annotations

import email
import email.policy
from dataclasses import dataclass, field
from typing import Self

from aiosmtpd.controller import Controller

from tests.conftest import free_port


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

    async def handle_DATA(self, server, session, envelope) -> str:
        if self.answers:
            return self.answers.pop(0)
        self.received.append(Received(envelope.mail_from, list(envelope.rcpt_tos),
                                      envelope.original_content or envelope.content))
        return "250 2.0.0 queued as test"


class SmtpPeer:
    """``with SmtpPeer() as peer:`` a relay on 127.0.0.1:``peer.port``."""

    def __init__(self) -> None:
        self.port = free_port()
        self.handler = _Handler()
        self._controller = Controller(self.handler, hostname="127.0.0.1", port=self.port)

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
