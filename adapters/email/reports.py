"""Which kind of mail this is: a person's message, an automatic reply, or a report about a
mail we sent — bounce or delay (RFC 3464 DSN, or a plain-text bounce), read receipt (RFC 8098
MDN) or spam complaint (RFC 5965 ARF)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from email import policy
from email.message import Message
from email.parser import BytesHeaderParser
from email.utils import getaddresses


@dataclass(slots=True)
class Report:
    """What a bounce, delay, read receipt or complaint says about one mail we sent."""

    original_message_id: str | None  # Message-ID of the mail reported on, without <>
    recipient: str | None  # the failed / reading / complaining address, lower-case
    action: str | None  # DSN Action, MDN disposition type or ARF Feedback-Type
    status: str | None  # DSN Status, e.g. "5.1.1"
    reason: str | None  # Diagnostic-Code text, or the first lines of the human part
    recipients: list[str] = field(default_factory=list)  # every recipient with that action


_ID = re.compile(r"<([^<>\s]+)>")
_STATUS = re.compile(r"\b([245]\.\d{1,3}\.\d{1,3})\b")
_SMTP_REPLY = re.compile(r"(?m)^\s*([45]\d\d[ -]\S.*)$")
_BODY_MESSAGE_ID = re.compile(r"(?im)^Message-ID:\s*<([^<>\s]+)>")
_ADDRESS = re.compile(r"[\w.+=-]+@[\w-]+(\.[\w-]+)+")
_BOUNCE_SUBJECT = re.compile(
    r"(?i)undeliver|returned mail|delivery status notification|delivery (failure|failed|has failed)"
    r"|mail delivery failed|failure notice|could not be delivered|non-?delivery|退信")
_DELAY_SUBJECT = re.compile(r"(?i)\(delay\)|delayed|warning: could not send|still being retried")
_DAEMONS = ("mailer-daemon", "postmaster")
_NOREPLY = re.compile(r"^(no[-_.]?reply|do[-_.]?not[-_.]?reply)([-_.+].*)?$")
_PRECEDENCE = ("bulk", "junk", "list", "auto_reply")
# DSN Action -> kind; delivered/relayed/expanded are success notices: automatic, no problem.
_DSN_KIND = {"failed": "bounce", "delayed": "delayed"}


def message_ids(value: str | None) -> list[str]:
    """The message ids in a Message-ID / In-Reply-To / References value, without <>, in order.

    Bare ids without brackets (seen from broken clients) are accepted when no bracketed id is
    there. Duplicates are dropped.
    """
    value = str(value or "")
    ids = _ID.findall(value) or [t for t in re.split(r"[\s,]+", value) if "@" in t]
    return list(dict.fromkeys(i.strip() for i in ids if i.strip()))


def _header(msg: Message, name: str) -> str:
    """The unfolded value of header ``name``, or ""."""
    return " ".join(str(msg.get(name, "")).split())


def _first_lines(text: str, count: int = 3) -> str | None:
    """The first ``count`` non-blank lines of ``text`` joined by spaces, for a short reason."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return " ".join(lines[:count])[:500] or None


def _typed(value: str) -> str:
    """A DSN field value without its type: "rfc822; <A@B>" -> "A@B", "smtp; 550 x" -> "550 x"."""
    return value.partition(";")[2].strip().strip("<>").strip() if ";" in value else value.strip()


def _field_blocks(part: Message) -> list[dict[str, str]]:
    """The field blocks of a machine-readable report part, as lower-cased-name dicts."""
    payload = part.get_payload()
    if isinstance(payload, str):  # not split by the parser: parse the bytes ourselves
        raw = (part.get_payload(decode=True) or b"").replace(b"\r\n", b"\n")
        payload = [BytesHeaderParser(policy=policy.default).parsebytes(b)
                   for b in raw.split(b"\n\n") if b.strip()]
    blocks = []
    for block in payload:
        if isinstance(block, Message):
            fields: dict[str, str] = {}
            for name, value in block.items():
                fields.setdefault(name.lower(), " ".join(str(value).split()))  # first one wins
            blocks.append(fields)
    return blocks


def _returned(report: Message) -> Message | None:
    """The returned original mail (or its headers) attached to a report, if any."""
    for part in report.iter_parts():
        ctype = part.get_content_type()
        # Some MTAs send the headers as "message/rfc822-headers", which parses as a mail.
        if ctype.startswith(("message/rfc822", "message/global")) and part.is_multipart():
            return part.get_payload(0)
        if ctype in ("text/rfc822-headers", "message/global-headers"):
            data = part.get_payload(decode=True) or b""
            return BytesHeaderParser(policy=policy.default).parsebytes(data)
    return None


def _original_id(msg: Message, returned: Message | None) -> str | None:
    """Message-ID of the reported mail: the returned copy's, else the report's own threading."""
    ids = message_ids(_header(returned, "Message-ID")) if returned is not None else []
    ids = ids or message_ids(_header(msg, "In-Reply-To")) or message_ids(
        _header(msg, "References"))[-1:]
    return ids[0] if ids else None


def _dsn(msg: Message, report: Message, human: str) -> tuple[str, Report]:
    """Kind and report of an RFC 3464 delivery status notification."""
    recipients = []
    for part in report.iter_parts():
        if part.get_content_type() == "message/delivery-status":
            # The first block is about the message; recipients' blocks carry an Action.
            recipients += [b for b in _field_blocks(part) if b.get("action")]
    actions = [r["action"].split()[0].lower() for r in recipients]
    # A report about several recipients is as bad as its worst one.
    action = next((a for a in ("failed", "delayed") if a in actions), actions[0] if actions
                  else "failed")
    chosen = [r for r, a in zip(recipients, actions, strict=True) if a == action]
    first = chosen[0] if chosen else {}
    who = [_typed(r.get("final-recipient") or r.get("original-recipient", "")).lower()
           for r in chosen]
    status = _STATUS.search(first.get("status", ""))
    return _DSN_KIND.get(action, "auto_reply"), Report(
        original_message_id=_original_id(msg, _returned(report)),
        recipient=who[0] if who else None, action=action,
        status=status.group(1) if status else None,
        reason=_typed(first["diagnostic-code"]) if first.get("diagnostic-code")
        else _first_lines(human), recipients=[w for w in who if w])


def _mdn_or_arf(msg: Message, report: Message, rtype: str, human: str) -> tuple[str, Report]:
    """Kind and report of a read receipt (RFC 8098) or a spam complaint (RFC 5965)."""
    part_type = "message/disposition-notification" if rtype == "disposition-notification" \
        else "message/feedback-report"
    fields: dict[str, str] = {}
    for part in report.iter_parts():
        if part.get_content_type() == part_type:
            fields = next(iter(_field_blocks(part)), {})
    returned = _returned(report)
    if rtype == "disposition-notification":
        ids = message_ids(fields.get("original-message-id"))
        who = _typed(fields.get("final-recipient") or fields.get("original-recipient", ""))
        # "manual-action/MDN-sent-manually; displayed" -> "displayed"
        action = fields.get("disposition", "").partition(";")[2].split("/")[0].strip().lower()
        kind = "receipt"
    else:
        ids = []
        # The envelope recipient names the complaining mailbox exactly; To may list many.
        who = fields.get("original-rcpt-to", "")
        if not who and returned is not None:
            who = next((a for _, a in getaddresses([_header(returned, "To")]) if a), "")
        action = fields.get("feedback-type", "abuse").lower()
        kind = "complaint"
    return kind, Report(
        original_message_id=ids[0] if ids else _original_id(msg, returned),
        recipient=who.strip().strip("<>").lower() or None, action=action or None,
        status=None, reason=_first_lines(human))


def _plain_bounce(msg: Message, subject: str, human: str) -> tuple[str, Report]:
    """Kind and report of a bounce written for people only (Gmail's, qmail's, Exim's)."""
    failed = [a.lower() for _, a in getaddresses([_header(msg, "X-Failed-Recipients")]) if a]
    if not failed and (found := _ADDRESS.search(human)):
        failed = [found.group(0).lower()]
    status, smtp = _STATUS.search(human), _SMTP_REPLY.search(human)
    ids = _BODY_MESSAGE_ID.findall(human)
    kind = "delayed" if _DELAY_SUBJECT.search(subject) else "bounce"
    return kind, Report(
        original_message_id=ids[0] if ids else _original_id(msg, None),
        recipient=failed[0] if failed else None, action="delayed" if kind == "delayed" else
        "failed", status=status.group(1) if status else None,
        reason=smtp.group(1).strip() if smtp else _first_lines(human), recipients=failed)


def automatic_reason(msg: Message, from_addr: str | None) -> str | None:
    """Why this mail was sent by a program (RFC 3834 and common practice), or None.

    ``X-Auto-Response-Suppress`` is deliberately not a sign: Outlook puts it on people's own
    mail and meeting requests to ask *others* not to auto-reply.
    """
    auto = _header(msg, "Auto-Submitted").split(";")[0].split("(")[0].strip().lower()
    if auto and auto != "no":
        return f"Auto-Submitted: {auto}"
    for name in ("X-Autoreply", "X-Autorespond"):
        if msg.get(name) is not None:
            return name
    precedence = _header(msg, "Precedence").lower()
    if precedence in _PRECEDENCE:
        return f"Precedence: {precedence}"
    for name in ("List-Id", "List-Unsubscribe"):
        if msg.get(name) is not None:
            return name
    local = (from_addr or "").partition("@")[0]
    if local in _DAEMONS:
        return f"sender {local}"
    if _NOREPLY.match(local):
        return "sender no-reply"
    if _header(msg, "Return-Path") == "<>":  # a null reverse-path: only notifications use it
        return "Return-Path: <>"
    return None


def _report_part(msg: Message) -> Message | None:
    """The multipart/report at the top of ``msg`` or in its multipart/mixed wrapping."""
    if msg.get_content_type() == "multipart/report":
        return msg
    if msg.get_content_type() == "multipart/mixed":
        return next((p for p in msg.iter_parts() if p.get_content_type() == "multipart/report"),
                    None)
    return None


def classify(msg: Message, from_addr: str | None, subject: str,
             human: str) -> tuple[str, str | None, Report | None]:
    """(kind, automatic reason, report) for a parsed mail whose readable text is ``human``."""
    reason = automatic_reason(msg, from_addr)
    report = _report_part(msg)
    rtype = str(report.get_param("report-type", "")).strip().lower() if report else ""
    if report is not None and rtype == "delivery-status":
        kind, rep = _dsn(msg, report, human)
        return kind, reason or f"report-type={rtype}", rep
    if report is not None and rtype in ("disposition-notification", "feedback-report"):
        kind, rep = _mdn_or_arf(msg, report, rtype, human)
        return kind, reason or f"report-type={rtype}", rep
    daemon = (from_addr or "").partition("@")[0] in _DAEMONS
    bouncy = _BOUNCE_SUBJECT.search(subject) or _DELAY_SUBJECT.search(subject)
    if msg.get("X-Failed-Recipients") is not None or (daemon and bouncy):
        kind, rep = _plain_bounce(msg, subject, human)
        return kind, reason or "X-Failed-Recipients", rep
    return ("auto_reply" if reason else "message"), reason, None
