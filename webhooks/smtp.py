"""``tongdai smtp``: the hub's own SMTP listener (aiosmtpd), the mail twin of the webhooks.

It takes mail only for configured addresses (a channel's address, aliases and reply-token
addresses; anything else gets ``550`` at RCPT), appends the raw mail to the raw log and only
then answers ``250``. When Redis cannot take it, the answer is ``451``: the sending server keeps
the mail and tries again, so nothing is lost.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import threading
from collections import defaultdict

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP

from tongdai.core.hub import Hub
from tongdai.core.pipeline import mail

log = logging.getLogger(__name__)
MAX_MAIL_BYTES = 40 * 1024 * 1024  # a 25 MB attachment grows by a third in base64


class LongLineSMTP(SMTP):
    """aiosmtpd's server without its 1000-byte line limit (RFC 5321 §4.5.3.1.6), which it
    enforces with a permanent ``500``: the customer's provider bounces the mail. Real mail
    breaks it (HTML from web forms and newsletters in one line, unwrapped base64), and the
    large MTAs take it (Postfix splits long lines, Gmail and Exchange accept them). A line may
    be as long as a whole mail; commands keep their own 512-byte limit, checked separately."""

    line_length_limit = MAX_MAIL_BYTES


class LongLineController(Controller):
    """aiosmtpd's threaded controller serving ``LongLineSMTP`` (its documented way to change
    the server class: override ``factory``)."""

    def factory(self) -> SMTP:
        return LongLineSMTP(self.handler, **self.SMTP_kwargs)


class MailHandler:
    """aiosmtpd handler for the email channels listening on one host:port."""

    def __init__(self, hub: Hub, channel_ids: list[str]) -> None:
        self.hub = hub
        self.channel_ids = channel_ids

    def channel_for(self, address: str) -> str | None:
        # looked up each time: an applied config edit (addresses, aliases) counts at once
        for a in (self.hub.adapters[c] for c in self.channel_ids if c in self.hub.adapters):
            if a.accepts(address):
                return a.channel_id
        return None

    async def handle_RCPT(self, server, session, envelope, address: str, rcpt_options) -> str:
        if self.channel_for(address) is None:
            return "550 5.1.1 no such mailbox here"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope) -> str:
        by_channel: dict[str, list[str]] = defaultdict(list)
        for rcpt in envelope.rcpt_tos:
            by_channel[self.channel_for(rcpt)].append(rcpt)
        raw = envelope.original_content or envelope.content
        loop = asyncio.get_running_loop()
        try:
            for channel_id, rcpts in by_channel.items():
                await loop.run_in_executor(None, mail.store_raw_mail, self.hub, channel_id, raw,
                                           "smtp", {"x-envelope-to": ",".join(rcpts)})
        except Exception:
            log.exception("could not store a mail of %d bytes; answered 451", len(raw))
            return "451 4.3.0 cannot store the mail now, try again later"
        return "250 2.0.0 stored"


def listeners(hub: Hub) -> dict[tuple[str, int], list[str]]:
    """(host, port) → the email channels listening there."""
    out: dict[tuple[str, int], list[str]] = defaultdict(list)
    for cid, adapter in hub.adapters.items():
        if adapter.name == "email" and adapter.settings.inbound.smtp is not None:
            smtp = adapter.settings.inbound.smtp
            out[(smtp.host, smtp.port)].append(cid)
    return dict(out)


def start(hub: Hub) -> list[Controller]:
    """Start one listener per configured host:port (threads); the caller stops them."""
    # aiosmtpd logs every command, addresses included, at INFO: personal data stays out.
    logging.getLogger("mail.log").setLevel(logging.WARNING)
    controllers = []
    for (host, port), channel_ids in listeners(hub).items():
        c = LongLineController(MailHandler(hub, channel_ids), hostname=host, port=port,
                       data_size_limit=MAX_MAIL_BYTES, server_hostname=hub_name(hub))
        c.start()
        log.info("SMTP listener on %s:%d for %s", host, port, ", ".join(channel_ids))
        controllers.append(c)
    return controllers


def hub_name(hub: Hub) -> str:
    """The name the listener greets with: the first email channel's domain."""
    for a in hub.adapters.values():
        if a.name == "email":
            return a.settings.domain
    return "tongdai"


def serve(hub: Hub) -> None:
    """Run the listeners until SIGTERM / SIGINT."""
    controllers = start(hub)
    if not controllers:
        raise SystemExit("no email channel has inbound.smtp in the configuration")
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    signal.signal(signal.SIGINT, lambda *_: done.set())
    hub.watch.start("smtp")  # listening addresses need a restart (adapter.restart_settings)
    while not done.wait(max(0.5, hub.watch.check_s)):
        hub.watch.poll()
    hub.watch.forget()
    for c in controllers:
        c.stop()
