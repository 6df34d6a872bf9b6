"""What the hub mails agents unasked: a notification when a conversation is assigned to them
(sent by the ``agentmail`` reactor), and the optional daily digest of the conversations
waiting for their reply (the ``agentmail-digest`` tick, or ``tongdai agentmail digest``).
"""

from __future__ import annotations

import logging
from datetime import datetime
from email.message import EmailMessage
from zoneinfo import ZoneInfo

from tongdai.adapters.email.settings import EmailSettings
from tongdai.core.errors import NotFound
from tongdai.core.hub import Hub
from tongdai.core.models import AuthorKind, ConversationStatus, Direction, Message
from tongdai.core.pipeline import feed, store
from tongdai.core.workspace import users
from tongdai.core.workspace.agentmail_sending import (
    KEEP_S,
    agent_token,
    compose,
    console_link,
    mail_channel,
    send_once,
    texts_for,
    token_address,
)

log = logging.getLogger(__name__)

RECENT_SCAN = 50  # timeline entries looked at for the customer's latest messages
# Top of every notification: the agent's client quotes it, and everything from it down is cut
# even when the client quotes in a way ``adapters/email/quotes.py`` does not know.
REPLY_ABOVE = "##- Trả lời phía trên dòng này · Reply above this line -##"


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
    t = texts_for(hub, user)
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
    lines += ["", t["how"], t["open"].format(link=console_link(hub, conv_id))]
    about = _first_words(_shown(recent[-1])) if recent else ""
    subject = f"[#{conv_id}] {name}" + (f" — {about}" if about else "")
    token = agent_token(hub, conv_id, user.name)
    return compose(settings, user.email or "", user.display_name, subject, "\n".join(lines),
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
        t = texts_for(hub, user)
        lines = [t["digest"], ""]
        for c in convs:
            conv = store.get_conversation(hub, c)
            who = store.get_customer(hub, conv.customer_id).name or f"#{conv.customer_id}"
            last = recent_customer_messages(hub, c, 1)
            about = _first_words(_shown(last[0])) if last else ""
            lines += [f"#{c} · {who} · {conv.channel_id}: {about}",
                      f"    {console_link(hub, c)} · " + t["reply_to"].format(
                          address=token_address(settings, agent_token(hub, c, name))), ""]
        mail = compose(settings, user.email, user.display_name,
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
