"""A parsed mail → the hub's events: a message, an automatic reply, or a report about a mail
we sent (bounce, delay, read receipt, spam complaint)."""

from __future__ import annotations

import re

from tongdai.adapters.email.mime import ParsedMail, content_hash, normalise_address
from tongdai.core.errors import PayloadError
from tongdai.core.identity import identifiers
from tongdai.core.models import Attachment, EventKind, IdentifierClaim, InboundEvent, RawEvent

_TICKET = re.compile(r"\[#(\d{1,12})\]")
_COMPLAINT_TEXT = ("The customer reported our mail as spam ({kind}): no more mail is sent to "
                   "them on this channel")
_KIND = {"bounce": "failed", "delayed": "delayed"}


def dedupe_key(pm: ParsedMail, raw: bytes) -> str:
    """``mid:<Message-ID>``, or a content hash for mail without one."""
    return f"mid:{pm.message_id}" if pm.message_id else f"hash:{content_hash(raw)}"


def thread_candidates(pm: ParsedMail, token_prefix: str, token_suffix: str,
                      envelope_to: list[str]) -> list[str]:
    """Clues to the conversation a mail continues, most trusted first (see core/mail.py)."""
    out = []
    for mid in [*pm.in_reply_to, *reversed(pm.references)]:
        key = f"k:mid:{mid}"
        if key not in out:
            out.append(key)
    for addr in [*pm.to, *pm.cc, *pm.delivered_to, *envelope_to]:
        if addr.startswith(token_prefix) and addr.endswith(token_suffix):
            token = addr[len(token_prefix):len(addr) - len(token_suffix)]
            if token and f"t:{token}" not in out:
                out.append(f"t:{token}")
    out += [f"c:{n}" for n in _TICKET.findall(pm.subject)]
    return out


def attachments(pm: ParsedMail, raw: bytes) -> list[Attachment]:
    """The mail's files, and the original mail itself (viewable whole, quotes included)."""
    out = []
    for a in pm.attachments:
        kind = "image" if a.content_type.startswith("image/") else "file"
        meta = {"inline": True} if a.inline else {}
        if a.content_id:
            meta["content_id"] = a.content_id
        out.append(Attachment(kind, name=a.filename, mime=a.content_type, size=len(a.data),
                              meta=meta, data=a.data))
    out.append(Attachment("file", name="original.eml", mime="message/rfc822", size=len(raw),
                          meta={"original": True}, data=raw))
    return out


_WHAT = {"auto_reply": "automatic mail", "bounce": "bounce", "delayed": "delay notice",
         "receipt": "read receipt", "complaint": "spam complaint"}


def _unmatched(pm: ParsedMail) -> str:
    """The dead-letter reason of an automatic mail that joins nothing (the core keeps it so:
    docs/connect-email.md promises automatic mail is kept). Ids only, no addresses."""
    why = ("its sender has no conversation to join, and automatic mail opens none; kept here "
           "only (replaying it dismisses it)" if pm.kind == "auto_reply"
           else "it names no mail of ours stored here; kept here only")
    return (f"{_WHAT.get(pm.kind, pm.kind)} ({pm.automatic or pm.kind}), Message-ID "
            f"{pm.message_id or 'none'}: {why}")


def events(pm: ParsedMail, raw: RawEvent, token_prefix: str, token_suffix: str) -> list[InboundEvent]:
    """The events of one mail."""
    # Ordered by arrival: a sender's Date header is set by their clock, often wrong, and a
    # reply dated before our message would appear above it.
    ts = raw.received_ts_ms
    key = dedupe_key(pm, raw.body)
    if pm.kind in ("bounce", "delayed", "receipt", "complaint"):
        rep = pm.report
        targets = [f"mid:{rep.original_message_id}"] if rep and rep.original_message_id else []
        who = (rep.recipient if rep else None) or pm.from_addr or "unknown"
        who = identifiers.email(who) or who  # the mailbox, as identities are keyed
        if pm.kind == "complaint":
            # acted on only when it names a mail we sent this customer (the core checks)
            return [InboundEvent(EventKind.COMPLAINT, key, who, ts, external_message_id=pm.message_id,
                                 text=_COMPLAINT_TEXT.format(kind=rep.action if rep else "abuse"),
                                 platform_type="email:complaint", target_ids=targets,
                                 thread=[f"k:{t}" for t in targets],
                                 unmatched=_unmatched(pm))]
        kind = EventKind.READ if pm.kind == "receipt" else EventKind.DELIVERY
        reason = " ".join(x for x in ((rep.status, rep.reason) if rep else ()) if x) or None
        return [InboundEvent(kind, key, who, ts, external_message_id=pm.message_id,
                             target_ids=targets, delivery_status=_KIND.get(pm.kind),
                             status_reason=reason, platform_type=f"email:{pm.kind}",
                             unmatched=_unmatched(pm))]
    if not pm.from_addr:
        raise PayloadError("the mail has no usable From address")
    envelope = [a for a in (normalise_address(x) for x in
                            raw.headers.get("x-envelope-to", "").split(",") if x) if a]
    automatic = pm.kind == "auto_reply"
    # The identity is the mailbox: Gmail's dotted and +tagged spellings are one account.
    mailbox = identifiers.email(pm.from_addr) or pm.from_addr
    return [InboundEvent(
        EventKind.AUTO_REPLY if automatic else EventKind.MESSAGE, key, mailbox, ts,
        # Reply-To only when the sender is proven: a forged From with the forger's Reply-To
        # would otherwise receive the agent's answer about someone else's order.
        address=pm.reply_to[0] if pm.reply_to and pm.authenticated else pm.from_addr,
        external_message_id=pm.message_id,
        text=pm.text or pm.full_text or pm.subject,
        subject=pm.subject or None,
        attachments=attachments(pm, raw.body),
        profile={"name": pm.from_name} if pm.from_name else {},
        identifier=IdentifierClaim("email", pm.from_addr, pm.authenticated,
                                   "email-dmarc" if pm.authenticated else "email-from"),
        platform_type=f"email:{pm.kind}" + (f" ({pm.automatic})" if automatic else ""),
        thread=thread_candidates(pm, token_prefix, token_suffix, envelope),
        unmatched=_unmatched(pm) if automatic else None,
    )]
