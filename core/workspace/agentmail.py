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
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
from datetime import datetime
from email.message import EmailMessage
from email.utils import format_datetime, formataddr, localtime
from zoneinfo import ZoneInfo

from tongdai.adapters.email import quotes, sending
from tongdai.adapters.email.mime import parse_mail
from tongdai.adapters.email.settings import EmailSettings
from tongdai.core.errors import DeliveryError, NotFound, WindowClosed
from tongdai.core.hub import Hub
from tongdai.core.identity import identifiers
from tongdai.core.models import (
    AuthorKind,
    ConversationStatus,
    Direction,
    EventKind,
    InboundEvent,
    Message,
    RawEvent,
)
from tongdai.core.pipeline import feed, intercept, outbound, store
from tongdai.core.workspace import access, audit, users

log = logging.getLogger(__name__)

TOKEN_PURPOSE = "agent-reply-token"  # the HMAC's own purpose: never a customer token's check
_TOKEN = re.compile(r"^a(\d{1,12})\.([a-z0-9][a-z0-9_.-]{0,62})\.([0-9a-f]{20})$")
SENDING_TTL_S = 300  # a sender that died mid-send: its event is sent again after this
KEEP_S = 30 * 86400  # how long "sent" is remembered (longer than any redelivery)
RECENT_SCAN = 50  # timeline entries looked at for the customer's latest messages
# Top of every notification: the agent's client quotes it, and everything from it down is cut
# even when the client quotes in a way ``adapters/email/quotes.py`` does not know.
REPLY_ABOVE = "##- Trả lời phía trên dòng này · Reply above this line -##"

_TEXT = {
    "vi": {
        "assigned": "Cuộc hội thoại #{conv} đã được giao cho bạn{by}.",
        "by": " (bởi {by})",
        "customer": "Khách hàng: {name} · kênh {channel}",
        "latest": "Tin nhắn gần nhất của khách:",
        "none": "(chưa có tin nhắn)",
        "how": "Trả lời thư này để trả lời khách trên kênh của khách; phần trích dẫn bên dưới "
               "sẽ được bỏ đi.",
        "open": "Mở trong bảng điều khiển: {link}",
        "refused_subject": "[#{conv}] Chưa gửi được trả lời của bạn",
        "refused": "Trả lời của bạn cho cuộc hội thoại #{conv} chưa được gửi cho khách:\n\n"
                   "{reason}\n\nBạn có thể trả lời trong bảng điều khiển: {link}",
        "digest_subject": "Các cuộc hội thoại đang chờ bạn trả lời ({n})",
        "digest": "Các cuộc hội thoại được giao cho bạn đang chờ trả lời:",
        "reply_to": "trả lời: {address}",
    },
    "en": {
        "assigned": "Conversation #{conv} was assigned to you{by}.",
        "by": " (by {by})",
        "customer": "Customer: {name} · channel {channel}",
        "latest": "The customer's latest messages:",
        "none": "(no messages yet)",
        "how": "Reply to this mail to answer the customer on their channel; the quoted part "
               "below is cut off.",
        "open": "Open in the console: {link}",
        "refused_subject": "[#{conv}] Your reply was not sent",
        "refused": "Your reply to conversation #{conv} was not sent to the customer:\n\n"
                   "{reason}\n\nYou can answer in the console: {link}",
        "digest_subject": "Conversations waiting for your reply ({n})",
        "digest": "Conversations assigned to you that wait for a reply:",
        "reply_to": "reply: {address}",
    },
}
_REASONS = {
    "vi": {"access": "bạn không còn quyền trên cuộc hội thoại này",
           "gone": "cuộc hội thoại không còn tồn tại",
           "empty": "thư của bạn không có nội dung mới phía trên phần trích dẫn"},
    "en": {"access": "you may no longer act on this conversation",
           "gone": "the conversation no longer exists",
           "empty": "your mail had no new text above the quoted part"},
}


# -- tokens ------------------------------------------------------------------------------------
def agent_token(hub: Hub, conv_id: str, user: str) -> str:
    """The token of (conversation, agent) for ``reply+<token>@``: ``a<conv>.<user>.<check>``."""
    check = hub.keyring.blind_index(TOKEN_PURPOSE, f"{conv_id}\x1f{user}")[:20]
    return f"a{conv_id}.{user}.{check}"


def agent_of_token(hub: Hub, token: str) -> tuple[str, str] | None:
    """(conversation, user) a genuine agent token names, else None (constant-time check)."""
    m = _TOKEN.match(token)
    if not m:
        return None
    conv_id, user, check = m.groups()
    good = agent_token(hub, conv_id, user).rpartition(".")[2]
    return (conv_id, user) if hmac.compare_digest(check.encode(), good.encode()) else None


def _agent_tokens(ev: InboundEvent) -> list[str]:
    return [c[2:] for c in ev.thread or () if c.startswith("t:a") and _TOKEN.match(c[2:])]


def addressed_to_agent(ev: InboundEvent) -> bool:
    """True when a mail event is addressed to something shaped like an agent token (pure:
    whether it is genuine is :func:`handle_reply`'s question)."""
    return ev.thread is not None and bool(_agent_tokens(ev))


@intercept.interceptor("agent mail", order=20)
def _take_agent_replies(hub: Hub) -> intercept.Take:
    """Ingest asks: a mail to an agent's reply address, proven the agent's, is a reply."""
    return lambda raw, ev, channel_id: addressed_to_agent(ev) and handle_reply(
        hub, raw, ev, channel_id)


def token_address(settings: EmailSettings, token: str) -> str:
    return settings.reply_template.format(token=token)


# -- the mail channel and sending once -------------------------------------------------------
def mail_channel(hub: Hub) -> str | None:
    """The email channel that mails agents: ``notifications.email_channel``, else the first
    email channel that can send."""
    chosen = hub.config.hub.notifications.email_channel
    if chosen:
        return chosen if chosen in hub.adapters else None
    return next((cid for cid, a in hub.adapters.items()
                 if a.name == "email" and a.settings.outbound is not None), None)


def send_once(hub: Hub, settings: EmailSettings, marker: str, mail: EmailMessage) -> bool:
    """Send ``mail`` unless ``marker`` says it went (or is going) out. A retryable failure
    releases the marker and raises, so the reactor's redelivery tries again; a permanent one
    is remembered and logged. Returns True when this call sent it."""
    key = hub.keys.agent_mail_sent(marker)
    try:
        return feed.act_once(hub, key, lambda: sending.send_mail(settings, mail),
                             f"agent mail {marker}", SENDING_TTL_S * 1000, KEEP_S)
    except DeliveryError as exc:
        if exc.retryable:
            raise
        hub.redis.set(key, "failed", ex=KEEP_S)
        log.warning("agent mail %s not sent: %s", marker, exc.code)
        return False


def _compose(settings: EmailSettings, to: str, to_name: str, subject: str, text: str,
             idempotency_key: str, reply_to: str | None = None,
             in_reply_to: str | None = None, auto: str = "auto-generated") -> EmailMessage:
    m = EmailMessage()
    m["From"] = formataddr((settings.name, settings.address)) if settings.name else settings.address
    m["To"] = formataddr((to_name, to)) if to_name else to
    sending.set_subject(m, " ".join(subject.split()))
    m["Date"] = format_datetime(localtime())
    m["Message-ID"] = f"<{sending.message_id(settings, idempotency_key)}>"
    if reply_to:
        m["Reply-To"] = reply_to
    if in_reply_to:
        m["In-Reply-To"] = f"<{in_reply_to}>"
        m["References"] = f"<{in_reply_to}>"
    m["Auto-Submitted"] = auto  # RFC 3834: out-of-office robots must not answer it
    m["X-Auto-Response-Suppress"] = "All"
    m.set_content(text, charset="utf-8")
    return m


def _lang(hub: Hub, user: users.User) -> dict[str, str]:
    return _TEXT.get(user.language or hub.config.hub.console.default_language, _TEXT["en"])


def _link(hub: Hub, conv_id: str) -> str:
    return f"{hub.config.hub.notifications.console_url.rstrip('/')}/console#{conv_id}"


def _principal(user: users.User) -> access.Principal:
    return access.Principal(user.name, user.role, frozenset(user.teams), via="email",
                            language=user.language)


def _digest(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()[:24]


# -- notifications -----------------------------------------------------------------------------
def _shown(m: Message) -> str:
    """One customer message as a line of text (files named by kind)."""
    parts = [m.text.strip()] if m.text and m.text.strip() else []
    parts += [f"[{a.kind}{': ' + a.name if a.name else ''}]" for a in m.attachments
              if not a.meta.get("original")]
    return " ".join(parts) or f"[{m.kind}]"


def recent_customer_messages(hub: Hub, conv_id: str, count: int) -> list[Message]:
    """The customer's latest ``count`` messages, oldest first."""
    page = store.message_page(hub, conv_id, None, RECENT_SCAN)
    mine = [m for m in page.items if m.direction == Direction.IN
            and m.author_kind == AuthorKind.CUSTOMER]
    return list(reversed(mine[:count]))


def _first_words(text: str, words: int = 8, chars: int = 60) -> str:
    short = " ".join(text.split()[:words])
    return short if len(short) <= chars else short[:chars - 1].rstrip() + "…"


def notification(hub: Hub, settings: EmailSettings, conv_id: str, user: users.User,
                 idempotency_key: str, by: str | None) -> EmailMessage:
    """The mail telling ``user`` that conversation ``conv_id`` is theirs."""
    cfg = hub.config.hub.notifications
    t = _lang(hub, user)
    conv = store.get_conversation(hub, conv_id)
    customer = store.get_customer(hub, conv.customer_id)
    name = customer.name or f"#{customer.id}"
    recent = recent_customer_messages(hub, conv_id, cfg.recent_messages)
    tz = ZoneInfo(cfg.timezone)
    lines = [REPLY_ABOVE, "",
             t["assigned"].format(conv=conv_id, by=t["by"].format(by=by)
                                  if by and by != "system" else ""),
             t["customer"].format(name=name, channel=conv.channel_id), "", t["latest"]]
    for m in recent:
        when = datetime.fromtimestamp(m.platform_ts_ms / 1000, tz).strftime("%d/%m %H:%M")
        lines.append(f"[{when}] {_shown(m)}")
    if not recent:
        lines.append(t["none"])
    lines += ["", t["how"], t["open"].format(link=_link(hub, conv_id))]
    about = _first_words(_shown(recent[-1])) if recent else ""
    subject = f"[#{conv_id}] {name}" + (f" — {about}" if about else "")
    token = agent_token(hub, conv_id, user.name)
    return _compose(settings, user.email or "", user.display_name, subject, "\n".join(lines),
                    idempotency_key, reply_to=token_address(settings, token))


def notify_assigned(hub: Hub, event: feed.FeedEvent) -> bool:
    """Mail the assignee of a ``conversation.assigned`` event (once per event). Nothing for
    releases, self-assignments (a claim: they are in the console), users without an address,
    disabled users, or when the conversation has moved on to someone else since."""
    data = event.data
    conv_id, name, by = str(data.get("conversation_id") or ""), data.get("assignee"), data.get("by")
    if not hub.config.hub.notifications.email or not name or not conv_id or name == by:
        return False
    user = users.find(hub, name)
    channel = mail_channel(hub)
    if user is None or user.disabled or not user.email or channel is None:
        return False
    try:
        conv = store.get_conversation(hub, conv_id)
    except NotFound:
        return False
    if conv.assignee != name or conv.status == ConversationStatus.RESOLVED:
        return False
    settings = hub.adapters[channel].settings
    mail = notification(hub, settings, conv_id, user, f"assign-{event.id}-{name}", by)
    sent = send_once(hub, settings, f"assign:{event.id}:{name}", mail)
    if sent:
        log.info("notified %s of conversation %s by mail", name, conv_id)
    return sent


# -- agents' replies -------------------------------------------------------------------------
def reply_text(full_text: str) -> str:
    """What the agent wrote: quotes and signature cut (``quotes.new_text``), and everything
    from the notification's ``REPLY_ABOVE`` line down. "" when nothing new is left."""
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
    found = next((hit for t in _agent_tokens(ev) if (hit := agent_of_token(hub, t))), None)
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
    done = _answer(hub, conv_id, user, ref, pm.message_id, pm.full_text, ev)
    hub.redis.set(handled, "1", ex=KEEP_S)
    return done


def _answer(hub: Hub, conv_id: str, user: users.User, ref: str, message_id: str | None,
            full_text: str, ev: InboundEvent) -> bool:
    """Send a genuine agent's mail reply to the customer, or refuse it and say why."""
    name = user.name
    t = _REASONS.get(user.language or hub.config.hub.console.default_language, _REASONS["en"])
    try:
        conv = store.get_conversation(hub, conv_id)
    except NotFound:
        return _refuse(hub, conv_id, name, t["gone"], ref, message_id)
    if not access.can_see(hub, _principal(user), conv):
        return _refuse(hub, conv_id, name, t["access"], ref, message_id)
    text = reply_text(full_text)
    if not text:
        return _refuse(hub, conv_id, name, t["empty"], ref, message_id)
    try:
        msg, created = outbound.create_reply(
            hub, conv_id, text, name, f"mail:{message_id or ev.dedupe_key}", "agentmail")
    except WindowClosed as exc:
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
    t = _lang(hub, user)
    mail = _compose(settings, user.email, user.display_name,
                    t["refused_subject"].format(conv=conv_id),
                    t["refused"].format(conv=conv_id, reason=data.get("reason", ""),
                                        link=_link(hub, conv_id)),
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


# -- the daily digest --------------------------------------------------------------------------
def waiting_for(hub: Hub, name: str) -> list[str]:
    """The user's assigned, unresolved conversations whose latest message is the customer's
    (``td:user:{name}:load`` is kept by core/assignment.py; re-checked here)."""
    ids = sorted((c.decode() for c in hub.redis.smembers(hub.keys.user_load(name))), key=int)
    pipe = hub.redis.pipeline(transaction=False)
    for c in ids:
        pipe.hmget(hub.keys.conversation(c), ["assignee", "status"])
        pipe.zrevrange(hub.keys.timeline(c), 0, 9)
    res = pipe.execute()
    out = []
    for c, (assignee, status), latest in zip(ids, res[::2], res[1::2], strict=True):
        if assignee != name.encode() or status == b"resolved" or not latest:
            continue
        for mid, blob in zip(latest, hub.redis.hmget(hub.keys.messages(c), latest), strict=True):
            if not blob:
                continue
            direction = Message.from_blob(mid.decode(), c, blob).direction
            if direction != Direction.INTERNAL:  # notes and system lines answer nobody
                if direction == Direction.IN:
                    out.append(c)
                break
    return out


def send_digests(hub: Hub, day: str | None = None) -> int:
    """Mail each agent with an address their waiting conversations, once per ``day``
    (default: today in ``notifications.timezone``). Returns the mails sent."""
    cfg = hub.config.hub.notifications
    channel = mail_channel(hub)
    if channel is None:
        return 0
    settings = hub.adapters[channel].settings
    day = day or datetime.now(ZoneInfo(cfg.timezone)).strftime("%Y-%m-%d")
    sent = 0
    for user in users.all_users(hub):
        name = user.name
        convs = [] if user.disabled or not user.email else waiting_for(hub, name)
        if not convs:
            continue
        t = _lang(hub, user)
        lines = [t["digest"], ""]
        for c in convs:
            conv = store.get_conversation(hub, c)
            who = store.get_customer(hub, conv.customer_id).name or f"#{conv.customer_id}"
            last = recent_customer_messages(hub, c, 1)
            about = _first_words(_shown(last[0])) if last else ""
            lines += [f"#{c} · {who} · {conv.channel_id}: {about}",
                      f"    {_link(hub, c)} · " + t["reply_to"].format(
                          address=token_address(settings, agent_token(hub, c, name))), ""]
        mail = _compose(settings, user.email, user.display_name,
                        t["digest_subject"].format(n=len(convs)), "\n".join(lines),
                        f"digest-{name}-{day}")
        sent += send_once(hub, settings, f"digest:{name}:{day}", mail)
    return sent


@feed.tick("agentmail-digest", 600)
def digest_tick(hub: Hub) -> int:
    """From ``notifications.digest_hour`` (local time) on, today's digests (each once)."""
    cfg = hub.config.hub.notifications
    if cfg.digest_hour is None:
        return 0
    now = datetime.now(ZoneInfo(cfg.timezone))
    day = now.strftime("%Y-%m-%d")
    done = hub.keys.agent_mail_sent(f"digests:{day}")
    if now.hour < cfg.digest_hour or hub.redis.exists(done):
        return 0
    sent = send_digests(hub, day)  # each agent's own marker: a retried round skips them
    hub.redis.set(done, "sent", ex=KEEP_S)
    return sent
