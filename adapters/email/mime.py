"""One raw e-mail -> ``ParsedMail``: its headers, readable text, files and kind.

Text is decoded here from the transfer-decoded bytes rather than with the email package's
``get_content()``, which reads the declared charset with errors="replace": real "gb2312" mail
carries GBK-only characters, "us-ascii" mail carries 8-bit bytes. Such problems are recorded in
``defects``; only bytes that are not a mail at all raise ``PayloadError``.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from datetime import UTC
from email import policy
from email.message import Message
from email.parser import BytesParser
from email.utils import getaddresses, parsedate_to_datetime

from tongdai.adapters.email.authres import authenticated
from tongdai.adapters.email.charsets import (
    SURROGATES,
    decode_bytes,
    decode_undeclared,
    decode_words,
    nfc,
    reading,
)
from tongdai.adapters.email.htmltext import META_CHARSET, html_to_text, tidy
from tongdai.adapters.email.quotes import strip_quoted
from tongdai.adapters.email.repair import bare_addresses, mend_headers, raw_filename
from tongdai.adapters.email.reports import Report, classify, message_ids
from tongdai.core.errors import PayloadError

__all__ = ["MailAttachment", "ParsedMail", "Report", "content_hash", "decode_bytes",
           "decode_words", "html_to_text", "normalise_address", "parse_mail"]


@dataclass(slots=True)
class MailAttachment:
    """One file of a mail: a real attachment, an inline image, or an attached mail (.eml)."""

    filename: str | None
    content_type: str  # lower-case "type/subtype"
    data: bytes  # decoded payload
    content_id: str | None  # without <>
    inline: bool


@dataclass(slots=True)
class ParsedMail:
    """Everything the email channel needs from one mail; see parse_mail."""

    kind: str  # "message" | "auto_reply" | "bounce" | "delayed" | "receipt" | "complaint"
    message_id: str | None
    in_reply_to: list[str]
    references: list[str]
    subject: str
    from_addr: str | None
    from_name: str | None
    to: list[str]
    cc: list[str]
    reply_to: list[str]
    delivered_to: list[str]
    date_ms: int | None
    text: str  # the new text: quoted thread and signature stripped, NFC
    full_text: str  # the whole body as text (HTML converted), NFC
    html: str | None
    attachments: list[MailAttachment]
    automatic: str | None  # why a program sent it, e.g. "Auto-Submitted: auto-replied"
    report: Report | None
    authenticated: bool
    defects: list[str] = field(default_factory=list)


# --- charsets -------------------------------------------------------------------------------


class _Headers:
    """The raw headers of one message, decoded on demand with its charset as 8-bit hint."""

    def __init__(self, msg: Message, hint: str | None, defects: list[str]) -> None:
        """Index ``msg``'s raw header values by lower-case name."""
        self.hint, self.defects = hint, defects
        self.raw: dict[str, list[str]] = {}
        for name, value in msg.raw_items():
            self.raw.setdefault(name.lower(), []).append(str(value))
        self._sample: bytes | None = None

    def eight_bit(self, data: bytes) -> str:
        """Raw 8-bit header bytes, which carry no charset of their own, as text.

        UTF-8 first; else the charset is judged once for all of the message's 8-bit header
        bytes together (a name alone is too short to tell GBK from Big5), the body's charset
        favoured: a Chinese client's raw GBK subject above a body labelled ISO-8859-1 is GBK.
        """
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError:
            pass
        if self._sample is None:
            values = (v.encode("utf-8", "surrogateescape") for vs in self.raw.values()
                      for v in vs if SURROGATES.search(v))
            self._sample = b"\n".join(v for v in values if not _utf8(v))
        return decode_undeclared(data, reading(self._sample or data, self.hint), self.defects,
                                 "8-bit header", sample=self._sample)

    def plain(self, value: str) -> str:
        """A raw value unfolded, with 8-bit bytes (kept by the parser as surrogates) decoded."""
        value = re.sub(r"\r?\n(?=[ \t])", "", value).strip()
        if not SURROGATES.search(value):
            return value
        return self.eight_bit(value.encode("utf-8", "surrogateescape"))

    def first(self, name: str) -> str:
        """The first ``name`` header, unfolded and 8-bit decoded, or ""."""
        return self.plain(self.raw.get(name, [""])[0])

    def text(self, name: str) -> str:
        """The first ``name`` header as readable text (encoded-words decoded, NFC)."""
        return nfc(decode_words(self.first(name), self.defects)).strip()

    def addresses(self, *names: str) -> list[tuple[str, str]]:
        """(display name, lower-cased address) of every address in the ``names`` headers."""
        out: list[tuple[str, str]] = []
        for value in (self.plain(v) for n in names for v in self.raw.get(n, [])):
            found = [(n, a) for n, a in getaddresses([value]) if normalise_address(a)]
            if not found and "@" in value:  # "Name bare@address": no angle brackets
                found = bare_addresses(value)
                self.defects.append(f"{names[0]}: address without angle brackets")
            for name, addr in found:
                if (norm := normalise_address(addr)) and norm not in (a for _, a in out):
                    out.append((nfc(decode_words(name, self.defects)).strip(), norm))
        return out


def _utf8(data: bytes) -> bool:
    """Whether ``data`` is valid UTF-8."""
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def normalise_address(addr: str) -> str | None:
    """"Foo <A@B.VN>" or "A@B.VN" -> "a@b.vn"; None when ``addr`` holds no address."""
    found = next((a for _, a in getaddresses([addr or ""]) if "@" in a), "").strip()
    local, _, domain = found.rpartition("@")
    if not local or not domain or any(c.isspace() for c in found):
        return None
    return found.lower()


def _date_ms(value: str) -> int | None:
    """A Date header as epoch milliseconds, or None when missing or unreadable."""
    value = re.sub(r"\([^()]*\)", " ", value)  # comments like "(EDT)" hide the real offset
    try:
        moment = parsedate_to_datetime(value)
        if moment.tzinfo is None:  # "-0000": UTC with the zone unknown (RFC 5322 §3.3)
            moment = moment.replace(tzinfo=UTC)
        return int(moment.timestamp() * 1000)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None


# --- bodies and files -----------------------------------------------------------------------

@dataclass(slots=True)
class _Body:
    """What a walk over the parts found: text bodies and files."""

    plain: list[str] = field(default_factory=list)
    html: list[str] = field(default_factory=list)
    files: list[MailAttachment] = field(default_factory=list)


def _part_text(part: Message, defects: list[str]) -> str:
    """A text part decoded from its transfer encoding and charset."""
    data = part.get_payload(decode=True) or b""
    label = part.get_content_charset()
    if label is None and part.get_content_type() == "text/html":
        found = META_CHARSET.search(data[:2048])
        label = found.group(1).decode("ascii") if found else None
    return decode_bytes(data, label, defects)


def _file(part: Message, hint: str | None, defects: list[str]) -> MailAttachment:
    """One non-body part as an attachment; an attached mail becomes "<subject>.eml"."""
    ctype = part.get_content_type()
    # From the raw header: the email package has already put U+FFFD in place of 8-bit bytes.
    name = raw_filename(part, _Headers(part, hint, defects).eight_bit,
                        lambda data, charset: decode_bytes(data, charset, defects))
    name = name or part.get_filename()
    if ctype in ("message/rfc822", "message/global") and part.is_multipart():
        inner = part.get_payload(0)
        subject = _Headers(inner, hint, defects).text("subject")
        name = name or f"{subject.replace('/', '_') or 'message'}.eml"
        data = inner.as_bytes(policy=policy.default.clone(max_line_length=0))
    else:
        data = part.get_payload(decode=True) or b""
    cid = str(part.get("Content-ID", "")).strip().strip("<>").strip() or None
    disposition = part.get_content_disposition()
    return MailAttachment(
        filename=nfc(decode_words(name, defects)) if name else None, content_type=ctype,
        data=data, content_id=cid,
        inline=disposition == "inline" or (disposition is None and cid is not None))


def _walk(part: Message, body: _Body, hint: str | None, defects: list[str]) -> None:
    """Sort ``part`` and its children into text bodies and files."""
    ctype = part.get_content_type()
    if part.get_content_maintype() == "message" and ctype not in ("message/rfc822",
                                                                   "message/global"):
        return  # delivery-status and the like: read by reports.py, not shown
    if part.get_content_maintype() == "multipart":
        if not part.is_multipart():
            return  # a nested multipart without boundary: nothing readable to take from it
        children = list(part.iter_parts())
        if ctype == "multipart/report":
            children = children[:1]  # the human-readable part; the rest is machine data
        if ctype != "multipart/alternative":
            for child in children:
                _walk(child, body, hint, defects)
            return
        # Alternatives say the same thing: take one plain and one HTML version, all files.
        found = [_Body() for _ in children]
        for child, sub in zip(children, found, strict=True):
            _walk(child, sub, hint, defects)
        body.plain += next((b.plain for b in found if b.plain), [])
        body.html += next((b.html for b in found if b.html), [])
        body.files += [f for b in found for f in b.files]
        return
    is_body = part.get_content_disposition() != "attachment" and not part.get_filename()
    if ctype in ("text/plain", "text/html") and is_body:
        text = _part_text(part, defects)
        if text.strip():
            (body.plain if ctype == "text/plain" else body.html).append(text)
        return
    try:
        body.files.append(_file(part, hint, defects))
    except Exception as exc:  # noqa: BLE001 - the email package raises many kinds on bad parts
        defects.append(f"unreadable {ctype} part: {type(exc).__name__}")


# --- the whole mail -------------------------------------------------------------------------

# At least one of these must head the bytes for them to be a mail.
_MAIL_HEADERS = frozenset({
    "from", "to", "cc", "subject", "date", "message-id", "received", "mime-version",
    "content-type", "return-path", "delivered-to", "sender", "reply-to", "in-reply-to"})
_BOUNDARY_LINE = re.compile(r'(?m)^--([^\s"\\]{1,200})[ \t]*$')


def _read(raw: bytes, defects: list[str]) -> Message:
    """``raw`` parsed (its header block mended, see repair.py), or PayloadError when it has no
    mail header block at all."""
    raw = mend_headers((raw or b"").lstrip(b"\r\n\t "), defects)
    msg = BytesParser(policy=policy.default).parsebytes(raw)
    if not raw or not any(name.lower() in _MAIL_HEADERS for name in msg):
        raise PayloadError("not an e-mail: the bytes do not start with mail headers "
                           "(From, To, Subject, Date, ...); check what the source sends")
    if msg.get_content_maintype() == "multipart" and not msg.is_multipart():
        return _with_boundary(raw, msg)
    return msg


def _with_boundary(raw: bytes, msg: Message) -> Message:
    """A multipart mail whose Content-Type lost its boundary, re-read with the boundary taken
    from its first "--" line: a whole Content-Type is put on top, where the parser reads it
    before the broken one (below an mbox "From " line, if any)."""
    found = _BOUNDARY_LINE.search(str(msg.get_payload()))
    if not found:
        return msg
    rtype = msg.get_param("report-type")
    fixed = f'Content-Type: {msg.get_content_type()}; boundary="{found[1]}"' + (
        f'; report-type="{rtype}"\r\n' if isinstance(rtype, str) else "\r\n")
    mbox, newline, rest = raw.partition(b"\n") if raw.startswith(b"From ") else (b"", b"", raw)
    msg = BytesParser(policy=policy.default).parsebytes(mbox + newline + fixed.encode() + rest)
    msg.defects.append(f"boundary recovered from the body: {found[1][:40]}")
    return msg


def _charset_hint(msg: Message) -> str | None:
    """The first declared text charset: the best guess for raw 8-bit header bytes."""
    return next((c for p in msg.walk() if (c := p.get_content_charset())), None)


def _sender(headers: _Headers) -> tuple[str, str | None, bool]:
    """(name, address, from From?) of who wrote the mail: From, else Reply-To, else Sender
    (help desks answer a mail without From where its Reply-To or Sender points)."""
    for name in ("from", "reply-to", "sender"):
        if found := headers.addresses(name):
            if name != "from":
                headers.defects.append(f"no usable From: the sender is taken from {name}")
            return *found[0], name == "from"
    return "", None, False


def _ids(headers: _Headers, name: str) -> list[str]:
    """The message ids in every ``name`` header."""
    return message_ids(" ".join(headers.plain(v) for v in headers.raw.get(name, [])))


def parse_mail(raw: bytes, trusted_authserv_id: str | None = None) -> ParsedMail:
    """Read one raw mail (RFC 5322 / MIME bytes) into a ParsedMail.

    Raises PayloadError only when ``raw`` is no mail at all; decoding problems are recorded
    in ``defects``. ``trusted_authserv_id`` is our receiving server's id in its
    Authentication-Results headers (see authres.py).
    """
    defects: list[str] = []
    msg = _read(raw, defects)
    hint = _charset_hint(msg)
    headers = _Headers(msg, hint, defects)
    body = _Body()
    _walk(msg, body, hint, defects)
    plain = tidy("\n\n".join(body.plain))
    html = "\n".join(body.html) or None
    full_text = nfc(plain or "\n\n".join(html_to_text(h) for h in body.html))
    *sender, signed = _sender(headers)
    subject = headers.text("subject")
    try:
        kind, automatic, report = classify(msg, sender[1], subject, full_text)
    except Exception as exc:  # noqa: BLE001 - a broken report part must not lose the mail
        defects.append(f"unreadable report: {type(exc).__name__}")
        kind, automatic, report = "message", None, None
    for part in msg.walk():
        defects += [str(d) if isinstance(d, str) else type(d).__name__ for d in part.defects]
    return ParsedMail(
        kind=kind, message_id=next(iter(_ids(headers, "message-id")), None),
        in_reply_to=_ids(headers, "in-reply-to"), references=_ids(headers, "references"),
        subject=subject, from_addr=sender[1], from_name=sender[0] or None,
        to=[a for _, a in headers.addresses("to")], cc=[a for _, a in headers.addresses("cc")],
        reply_to=[a for _, a in headers.addresses("reply-to")],
        delivered_to=[a for _, a in headers.addresses("delivered-to", "x-original-to",
                                                      "envelope-to")],
        date_ms=_date_ms(headers.first("date")), text=strip_quoted(full_text),
        full_text=full_text, html=html, attachments=body.files, automatic=automatic,
        report=report,
        # DMARC and DKIM vouch for the From domain: a stand-in sender is never verified
        authenticated=signed and authenticated(msg, sender[1], trusted_authserv_id),
        defects=list(dict.fromkeys(defects)))


def content_hash(raw: bytes) -> str:
    """Hex SHA-256 of From, To, Date, Subject and the body's bytes (attachments included):
    the same mail delivered twice (different Received headers) hashes the same, different
    files sent without Message-ID or Date do not. For deduplicating mail without Message-ID."""
    mail = parse_mail(raw)
    sep = re.search(rb"\r?\n\r?\n", raw)
    body = raw[sep.end():] if sep else b""
    fields = [mail.from_addr or "", ",".join(mail.to), str(mail.date_ms or ""), mail.subject]
    return hashlib.sha256("\x1f".join(fields).encode("utf-8") + b"\x1f" + body).hexdigest()
