"""Agents' mail: a notification when a conversation is assigned to them, their answer by mail
sent to the customer on the customer's channel, and an optional daily digest.

The loop, one way like everything else:

- ``conversation.assigned`` (feed) → the ``agentmail`` reactor mails the assignee, if they have
  an address: the customer's latest messages, a console link, and ``Reply-To`` set to an *agent
  token* address, ``reply+a<conv>.<user>.<check>@<domain>`` (the mail channel's
  ``reply_address`` template). The check is an HMAC of (conversation, user) under the hub's
  index key with its own purpose, so it cannot be forged or confused with a customer's token.
- The agent's answer reaches the email channel like any mail. ``core/ingest.py`` hands mail
  addressed to an agent token to :func:`handle_reply` before it could become a customer's
  message. It is the agent's only when the token verifies, the From mailbox is the agent's
  configured address and (with ``trusted_authserv_id``) our MX vouched for it (DMARC or
  aligned DKIM); anything else is ingested as a stranger's mail, as before. The new text
  (quotes and signature cut) goes out through ``outbound.create_reply`` under the agent's
  name, once per Message-ID, with the channel's window rules.
- A reply that cannot go out (window closed, no access any more, nothing new written) becomes
  an ``agentmail.refused`` feed event; the reactor mails the agent why, once.

Every mail to an agent is sent once: a marker key per event (``td:agentmail:sent:*``) taken
before sending, and a Message-ID derived from the event, so even a resend after a crash is the
same mail to the receiving server. Logs name conversations, users and raw ids, never
addresses or text.

This module holds the interceptor, agents' replies and the reactor; the notifications and the
digest are ``agentmail_notices``, tokens, composing and sending once ``agentmail_sending``.
"""

from __future__ import annotations

import hashlib
import hmac
import logging

from tongdai.adapters.email import quotes
from tongdai.adapters.email.mime import parse_mail
from tongdai.adapters.email.settings import EmailSettings
from tongdai.core.errors import BadRequest, DeliveryError, NotFound, WindowClosed
from tongdai.core.hub import Hub
from tongdai.core.identity import identifiers
from tongdai.core.models import Attachment, EventKind, InboundEvent, RawEvent
from tongdai.core.pipeline import feed, files, intercept, outbound, store
from tongdai.core.workspace import access, audit, users

# (importing the notices registers the digest's tick: ``core/workspace/__init__.py`` imports
# only this module)
from tongdai.core.workspace.agentmail_notices import notify_assigned
from tongdai.core.workspace.agentmail_sending import (
    KEEP_S,
    addressed_to_agent,
    agent_of_token,
    agent_tokens,
    compose,
    console_link,
    mail_channel,
    send_once,
    texts_for,
)

log = logging.getLogger(__name__)


@intercept.interceptor("agent mail", order=20)
def _take_agent_replies(hub: Hub) -> intercept.Take:
    """Ingest asks: a mail to an agent's reply address, proven the agent's, is a reply."""
    return lambda raw, ev, channel_id: addressed_to_agent(ev) and handle_reply(
        hub, raw, ev, channel_id)


def _principal(user: users.User) -> access.Principal:
    return access.Principal(user.name, user.role, frozenset(user.teams), via="email",
                            language=user.language)


def _digest(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()[:24]


# -- agents' replies -------------------------------------------------------------------------
def reply_text(full_text: str) -> str:
    """What the agent wrote: quotes and signature cut (``quotes.new_text``), and everything
    from the notification's ``REPLY_ABOVE`` line (``agentmail_notices``) down. "" when nothing
    new is left."""
    kept = []
    for line in quotes.new_text(full_text).split("\n"):
        if "##-" in line and "-##" in line:
            break
        kept.append(line)
    return "\n".join(kept).strip()


def handle_reply(hub: Hub, raw: RawEvent, ev: InboundEvent, channel_id: str) -> bool:
    """An event of a mail addressed to an agent token (``core/ingest.py`` asks). True: it was
    the agent's (answered, or refused and explained) and is not a customer's message. False:
    not proven to be the agent's; ingest it as anyone's mail."""
    settings: EmailSettings = hub.adapters[channel_id].settings
    found = next((hit for t in agent_tokens(ev) if (hit := agent_of_token(hub, t))), None)
    if found is None:
        log.warning("raw %s: mail to an agent reply address whose token does not verify; "
                    "taken as a customer's mail", raw.id)
        return False
    conv_id, name = found
    pm = parse_mail(raw.body, settings.trusted_authserv_id)
    user = users.find(hub, name)
    sender = identifiers.email(pm.from_addr or "") or ""
    own = identifiers.email(user.email or "") if user else None
    if not own or not hmac.compare_digest(sender.encode(), own.encode()):
        log.warning("raw %s: mail to %s's reply address for conversation %s is not from "
                    "their address; taken as a customer's mail", raw.id, name, conv_id)
        return False
    if settings.trusted_authserv_id and not pm.authenticated:
        log.warning("raw %s: mail to %s's reply address for conversation %s is not "
                    "authenticated by %s; taken as a customer's mail", raw.id, name, conv_id,
                    settings.trusted_authserv_id)
        return False
    if ev.kind != EventKind.MESSAGE:  # their out-of-office answering the notification
        log.info("raw %s: automatic mail from %s about conversation %s dropped", raw.id, name,
                 conv_id)
        return True
    if user.disabled:
        log.warning("raw %s: reply by mail from disabled user %s refused", raw.id, name)
        audit.record(hub, name, "reply.email_refused", conv_id, {"why": "disabled"})
        return True
    ref = _digest(f"{channel_id}|{ev.dedupe_key}")
    # The send idempotency below lasts 24 h; a copy of this mail delivered again later (a
    # DKIM signature stays valid) must not answer the customer again, nor a refused one late.
    # Marked once handled (a crash before that leaves a redelivery to the idempotency).
    handled = hub.keys.agent_mail_reply(ref)
    if hub.redis.exists(handled):
        log.warning("raw %s: %s's mail about conversation %s was handled before; a copy "
                    "delivered again is dropped", raw.id, name, conv_id)
        return True
    done = _answer(hub, conv_id, user, ref, pm.message_id, pm.full_text, ev,
                   _files_of(pm.attachments))
    hub.redis.set(handled, "1", ex=KEEP_S)
    return done


def _files_of(parts: list) -> list[Attachment]:
    """The files an agent attached to their reply by mail (an inline image, such as a logo in
    a signature, is not one), each sent on to the customer."""
    out = []
    for f in parts:
        if f.inline or not f.data:
            continue
        mime = files.sniff(f.data) or f.content_type or "application/octet-stream"
        kind = "image" if mime.startswith("image/") else "file"
        out.append(Attachment(kind, name=f.filename or "file", mime=mime, data=f.data))
    return out


def _answer(hub: Hub, conv_id: str, user: users.User, ref: str, message_id: str | None,
            full_text: str, ev: InboundEvent, attached: list[Attachment] = ()) -> bool:
    """Send a genuine agent's mail reply to the customer, or refuse it and say why."""
    name = user.name
    t = {k[7:]: v for k, v in texts_for(hub, user).items() if k.startswith("reason.")}
    try:
        conv = store.get_conversation(hub, conv_id)
    except NotFound:
        return _refuse(hub, conv_id, name, t["gone"], ref, message_id)
    if not access.can_see(hub, _principal(user), conv):
        return _refuse(hub, conv_id, name, t["access"], ref, message_id)
    text = reply_text(full_text)
    if not text and not attached:
        return _refuse(hub, conv_id, name, t["empty"], ref, message_id)
    try:
        msg, created = outbound.create_reply(
            hub, conv_id, text or None, name, f"mail:{message_id or ev.dedupe_key}",
            "agentmail", attachments=list(attached))
    except (WindowClosed, BadRequest) as exc:  # closed, or a file the channel will not take
        return _refuse(hub, conv_id, name, str(exc), ref, message_id)
    if created:
        audit.record(hub, name, "reply.email", conv_id, {"message_id": msg.id})
        log.info("%s answered conversation %s by mail (message %s)", name, conv_id, msg.id)
    return True


def _refuse(hub: Hub, conv_id: str, name: str, reason: str, ref: str,
            in_reply_to: str | None) -> bool:
    """Nothing goes to the customer; the reactor tells the agent why (once per mail)."""
    log.info("reply by mail from %s to conversation %s not sent: %s", name, conv_id, reason)
    feed.publish(hub, {"type": "agentmail.refused", "conversation_id": conv_id, "user": name,
                       "reason": reason, "ref": ref, "in_reply_to": in_reply_to})
    return True


def explain_refusal(hub: Hub, event: feed.FeedEvent) -> bool:
    """Mail an agent why their reply by mail was not sent (once per mail)."""
    data = event.data
    user = users.find(hub, str(data.get("user") or ""))
    channel = mail_channel(hub)
    if user is None or user.disabled or not user.email or channel is None:
        return False
    settings = hub.adapters[channel].settings
    conv_id, ref = str(data.get("conversation_id")), str(data.get("ref"))
    t = texts_for(hub, user)
    mail = compose(settings, user.email, user.display_name,
                   t["refused_subject"].format(conv=conv_id),
                   t["refused"].format(conv=conv_id, reason=data.get("reason", ""),
                                       link=console_link(hub, conv_id)),
                   f"refused-{ref}", in_reply_to=data.get("in_reply_to"), auto="auto-replied")
    return send_once(hub, settings, f"refused:{ref}", mail)


@feed.reactor("agentmail")
def react(hub: Hub, events: list[feed.FeedEvent]) -> None:
    """Notifications of assignments and explanations of refused replies."""
    for e in events:
        try:
            if e.type == "conversation.assigned":
                notify_assigned(hub, e)
            elif e.type == "agentmail.refused":
                explain_refusal(hub, e)
        except DeliveryError:
            raise  # the relay is unreachable: the batch comes back (what went out is marked)
        except Exception:  # one bad event must not hold back every later one
            log.exception("agent mail for feed event %s failed; skipped", e.id)
