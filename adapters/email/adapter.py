"""The email channel: mail in (SMTP listener, IMAP, Mailgun-style webhook), replies out by
SMTP. Mail reaches the raw log whole; parsing happens in the workers like every platform's."""

from __future__ import annotations

import secrets
import time
from collections.abc import Mapping
from email.message import EmailMessage
from email.utils import format_datetime, formataddr, localtime, make_msgid
from typing import Any

from tongdai.adapters.base import Adapter, ChannelFacts, FileRefusal, OutboundMessage, Receipt
from tongdai.adapters.email import events, mailgun, sending
from tongdai.adapters.email.mime import normalise_address, parse_mail
from tongdai.adapters.email.settings import EmailSettings
from tongdai.core.errors import SignatureError
from tongdai.core.models import InboundEvent, RawEvent

MAIL_FILE_LIMIT = 18 * 2**20


class EmailAdapter(Adapter):
    name = "email"
    Settings = EmailSettings
    kept_headers = ("x-tongdai-source", "x-envelope-to")
    user_ids_are_personal = True
    threads_by_reference = True
    restart_settings = ("inbound",)  # `tongdai smtp` / `tongdai imap` bind them at start

    settings: EmailSettings

    # -- inbound: the webhook path (SMTP and IMAP mail skip it: they are ours) ----------------
    def _key(self) -> str:
        hook = self.settings.inbound.webhook
        if hook is None:
            raise SignatureError("this mail channel takes no webhooks (no inbound.webhook)")
        return hook.signing_key.get_secret_value()

    def verify(self, headers: Mapping[str, str], body: bytes) -> None:
        key = self._key()
        mailgun.verify(mailgun.form(headers, body), key, self.settings.inbound.webhook.max_age_s)

    def check_body(self, body: bytes) -> None:
        """Checked in ``stored_body``, which has the headers the form needs."""

    def replay_nonce(self, headers: Mapping[str, str], body: bytes) -> str | None:
        token = mailgun.form(headers, body).get("token")
        return token if isinstance(token, str) else None

    def stored_body(self, headers: Mapping[str, str], body: bytes) -> bytes:
        return mailgun.mime(mailgun.form(headers, body))

    def accepts(self, address: str) -> bool:
        """Whether mail to ``address`` is this channel's (its address, aliases, reply tokens)."""
        addr = normalise_address(address) or ""
        if addr in (self.settings.address, *self.settings.aliases):
            return True
        prefix, suffix = self._token_affixes()
        return addr.startswith(prefix) and addr.endswith(suffix) and len(addr) > len(prefix + suffix)

    def _token_affixes(self) -> tuple[str, str]:
        prefix, _, suffix = self.settings.reply_template.lower().partition("{token}")
        return prefix, suffix

    def parse(self, raw: RawEvent) -> list[InboundEvent]:
        pm = parse_mail(raw.body, self.settings.trusted_authserv_id)
        return events.events(pm, raw, *self._token_affixes())

    # -- outbound ------------------------------------------------------------------------------
    def send(self, message: OutboundMessage) -> Receipt:
        return sending.send(self.settings, message)

    def sent_dedupe_keys(self, message: OutboundMessage, receipt: Receipt) -> list[str]:
        # Bounces, delays and read receipts name our Message-ID; replies reference it.
        return [f"mid:{receipt.external_id}"]

    def acknowledgement(self) -> str | None:
        return self.settings.acknowledge

    def cannot_send(self) -> str | None:
        if self.settings.outbound is None:
            return ("this mail channel has no outbound relay (outbound.smtp in its settings): "
                    "it receives mail but cannot send replies")
        return None

    def file_refusal(self, kind: str, mime: str, size: int) -> FileRefusal | None:
        """Relays commonly refuse mails over 25 MB; base64 makes files a third bigger."""
        if size > MAIL_FILE_LIMIT:
            return FileRefusal("too_big", f"mail takes files up to {MAIL_FILE_LIMIT} bytes "
                               "(25 MB mails once encoded)",
                               {"platform": self.name, "max_mb": MAIL_FILE_LIMIT // 2**20})
        return None

    def facts(self) -> ChannelFacts:
        # Mail has no reply window and the relay sets its own pace.
        return ChannelFacts(verifiable_identifiers=frozenset({"email"}))

    # -- for newcomers and tests ----------------------------------------------------------------
    def compose(self, sender: str, name: str | None, subject: str, text: str) -> bytes:
        """A customer's mail to this channel, as their mail program would write it."""
        m = EmailMessage()
        m["From"] = formataddr((name, sender)) if name else sender
        m["To"] = self.settings.address
        m["Subject"] = subject
        m["Date"] = format_datetime(localtime())
        m["Message-ID"] = make_msgid(domain=sender.rpartition("@")[2] or "example.vn")
        m.set_content(text)
        return m.as_bytes()

    def simulate(self, text: str, user_id: str, name: str, subject: str = "Hỗ trợ") -> tuple[
            dict[str, str], bytes]:
        """A signed Mailgun-style post carrying a mail from ``user_id`` (an address)."""
        sender = user_id if "@" in user_id else f"{user_id}@example.vn"
        return self.webhook_post(self.compose(sender, name, subject, text))

    def webhook_post(self, mime: bytes) -> tuple[dict[str, str], bytes]:
        """(headers, body) of a correctly signed multipart post carrying ``mime``."""
        ts, token = str(int(time.time())), secrets.token_hex(25)
        fields: dict[str, Any] = {"timestamp": ts, "token": token,
                                  "signature": mailgun.sign(self._key(), ts, token)}
        boundary = secrets.token_hex(12)
        parts = [f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'
                 .encode() for k, v in fields.items()]
        parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="body-mime"\r\n'
                     "Content-Type: text/plain; charset=utf-8\r\n\r\n".encode() + mime + b"\r\n")
        body = b"".join(parts) + f"--{boundary}--\r\n".encode()
        return {"Content-Type": f"multipart/form-data; boundary={boundary}"}, body
