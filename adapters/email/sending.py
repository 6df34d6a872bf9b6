"""Replies out by SMTP: a threaded, UTF-8, text + HTML mail, and what the server's answer
means for the send (4xx: try again later; 5xx: failed, with the server's reason)."""

from __future__ import annotations

import hashlib
import html
import smtplib
import ssl
import time
from email.header import Header
from email.message import EmailMessage
from email.utils import format_datetime, formataddr, localtime

from tongdai.adapters.base import OutboundMessage, Receipt
from tongdai.adapters.email.settings import EmailSettings, SmtpRelay
from tongdai.core.errors import DeliveryError
from tongdai.core.models import AuthorKind

MAX_REFERENCES = 20  # long threads: the first mail and the latest ones (RFC 5322 §3.6.4)


def message_id(settings: EmailSettings, idempotency_key: str) -> str:
    """Our Message-ID for a send, without <>: the same for every retry of one message, so a
    resend after a crash is recognisable as the same mail by the receiver."""
    digest = hashlib.sha256(f"{settings.address}|{idempotency_key}".encode()).hexdigest()[:16]
    return f"tongdai.{idempotency_key}.{digest}@{settings.domain}"


def subject(message: OutboundMessage) -> str:
    """``Re: <the thread's subject> [#<conversation>]``: the tag threads replies whose client
    drops our headers."""
    # A decoded subject may carry line breaks (an encoded CR/LF): a header cannot.
    base = " ".join((message.subject or "").split())
    tag = f"[#{message.conversation_id}]" if message.conversation_id else ""
    if base and not base.lower().startswith(("re:", "aw:", "tr:", "回复:", "回覆:")):
        base = f"Re: {base}"
    if not base:
        base = "Re:"
    return f"{base} {tag}".strip() if tag and tag not in base else base


def set_subject(mail: EmailMessage, subject: str) -> None:
    """Set Subject so that it reads back exactly: the stdlib's folder drops the space where it
    splits a long non-ASCII subject between two encoded words ("của bạn" → "củabạn"), so
    such subjects are encoded here, split inside the words (RFC 2047)."""
    if subject.isascii():
        mail["Subject"] = subject
    else:
        mail.set_raw("Subject", Header(subject, "utf-8", header_name="Subject").encode())


def build(settings: EmailSettings, message: OutboundMessage) -> EmailMessage:
    """The reply as a MIME message."""
    m = EmailMessage()
    m["From"] = formataddr((settings.name, settings.address)) if settings.name else settings.address
    m["To"] = message.address
    set_subject(m, subject(message))
    m["Date"] = format_datetime(localtime())
    m["Message-ID"] = f"<{message_id(settings, message.idempotency_key)}>"
    if message.reply_token:
        m["Reply-To"] = settings.reply_template.format(token=message.reply_token)
    if message.in_reply_to:
        m["In-Reply-To"] = f"<{message.in_reply_to}>"
    refs = message.references
    if len(refs) > MAX_REFERENCES:
        refs = [refs[0], *refs[-(MAX_REFERENCES - 1):]]
    if refs:
        m["References"] = " ".join(f"<{r}>" for r in refs)
    if message.author_kind in (AuthorKind.BOT, AuthorKind.SYSTEM):
        m["Auto-Submitted"] = "auto-replied"  # RFC 3834: other robots must not answer it
        m["X-Auto-Response-Suppress"] = "All"  # and Exchange's out-of-office neither
    text = message.text or ""
    m.set_content(text, charset="utf-8")
    body = html.escape(text).replace("\n", "<br>\n")
    m.add_alternative(f'<!doctype html><html><body><div style="white-space:normal">{body}'
                      "</div></body></html>", subtype="html", charset="utf-8")
    for a in message.attachments:  # an agent's files: MIME attachments (multipart/mixed)
        if a.data is None:
            continue
        maintype, _, subtype = (a.mime or "application/octet-stream").partition("/")
        m.add_attachment(a.data, maintype=maintype, subtype=subtype or "octet-stream",
                         filename=a.name or "file")  # RFC 2231 names: "Hóa đơn.pdf" stays
    return m


def _connect(relay: SmtpRelay) -> smtplib.SMTP:
    ctx = ssl.create_default_context()
    if not relay.verify_tls:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    if relay.tls:
        conn: smtplib.SMTP = smtplib.SMTP_SSL(relay.host, relay.port, timeout=relay.timeout_s,
                                              context=ctx)
    else:
        conn = smtplib.SMTP(relay.host, relay.port, timeout=relay.timeout_s)
        if relay.starttls:
            conn.starttls(context=ctx)
    if relay.user is not None:
        conn.login(relay.user, relay.password.get_secret_value())
    return conn


def _watch_end_of_data(conn: smtplib.SMTP, handed: list[bool]) -> None:
    """Note when the mail's last line (CRLF "." CRLF) has been written: a failure after that is
    an unconfirmed send, not a failed one (a resend would be a second mail to the customer)."""
    write = conn.send

    def send(data: bytes | str) -> None:
        write(data)
        if isinstance(data, bytes) and data.endswith(b"\r\n.\r\n"):
            handed[0] = True
    conn.send = send  # type: ignore[method-assign]


def _close(conn: smtplib.SMTP) -> None:
    """QUIT politely; a relay that answers QUIT badly has already taken (or refused) the mail."""
    try:
        conn.quit()
    except (smtplib.SMTPException, OSError):
        conn.close()


def _refused(code: int, reason: bytes | str, what: str) -> DeliveryError:
    text = reason.decode("utf-8", "replace") if isinstance(reason, bytes) else str(reason)
    retry = 400 <= code < 500
    return DeliveryError(f"{what}: {code} {text}", retryable=retry,
                         code="smtp_temporary" if retry else "smtp_rejected")


def send(settings: EmailSettings, message: OutboundMessage) -> Receipt:
    """Send through the configured relay; DeliveryError says whether to retry."""
    return send_mail(settings, build(settings, message))


def send_mail(settings: EmailSettings, mail: EmailMessage) -> Receipt:
    """Hand a built mail to the channel's relay (replies, and the hub's own mail to agents)."""
    if settings.outbound is None:
        raise DeliveryError("this mail channel has no outbound.smtp: add the relay replies go "
                            "through to its settings", retryable=False, code="not_configured")
    relay = settings.outbound.smtp
    handed = [False]  # the whole mail and its final "." were written to the relay
    try:
        conn = _connect(relay)
        _watch_end_of_data(conn, handed)
        try:
            conn.send_message(mail)
        finally:
            _close(conn)
    except smtplib.SMTPRecipientsRefused as e:
        code, reason = next(iter(e.recipients.values()))
        raise _refused(code, reason, "the relay refused the recipient") from None
    except smtplib.SMTPAuthenticationError as e:
        raise DeliveryError(f"the relay refused our login ({e.smtp_code}): check "
                            "outbound.smtp.user and password", retryable=False,
                            code="smtp_auth") from None
    except smtplib.SMTPResponseException as e:
        raise _refused(e.smtp_code, e.smtp_error, "the relay refused the mail") from None
    except (smtplib.SMTPException, OSError) as e:
        if handed[0]:  # the relay has the mail; only its answer is missing: it may be sent
            raise DeliveryError(f"the relay {relay.host}:{relay.port} took the mail but did "
                                f"not confirm it ({type(e).__name__}): it may have gone out",
                                retryable=True, code="timeout", uncertain=True) from None
        raise DeliveryError(f"could not reach the relay {relay.host}:{relay.port}: "
                            f"{type(e).__name__}", retryable=True, code="smtp_unreachable") from None
    return Receipt(external_id=mail["Message-ID"].strip("<>"), sent_ts_ms=time.time_ns() // 10**6)
