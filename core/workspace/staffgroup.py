"""The Telegram staff group: a team answers its customers from a supergroup with topics.

A team's ``staff_group`` names a Telegram bot channel and a forum supergroup where that bot is
an admin (with the *manage topics* right). Two directions:

- **Out** — the ``staffgroup`` reactor reads the change feed. A customer's message in a
  conversation of the team's queues gets the conversation its own topic (created once, see
  ``ensure_topic``), then is posted there; agents' replies made elsewhere (console, API, mail)
  are posted too, marked with the agent's name; answers to commands (``staffgroup.notice``
  events) are posted under the command. Each post is made once: a marker per posted item is
  set after Telegram accepted it and checked before. A 429 is waited out (short waits inline,
  long ones by leaving the batch pending), never dropped.
- **In** — updates from a staff chat reach the same bot webhook as customers'. Ingest hands
  them to ``handle`` instead of filing them as customer messages. A linked user's message in
  a conversation's topic becomes a reply (``outbound.create_reply``: window rules, send
  idempotency, the agent as author); ``/claim``, ``/resolve`` and ``/note text`` act on the
  conversation. Anyone else is ignored and logged by Telegram user id.

Nothing here runs in a web request: ``handle`` runs in the ingest worker and only touches
Redis (its answers ride the feed to the reactor, which does the Telegram calls).
"""

from __future__ import annotations

import hashlib
import logging
import secrets
import time
import weakref
from collections.abc import Callable
from typing import Any

from tongdai.core.config import StaffGroup
from tongdai.core.errors import DeliveryError, NotFound, TongdaiError
from tongdai.core.hub import Hub
from tongdai.core.models import (
    Attachment,
    AuthorKind,
    Conversation,
    ConversationStatus,
    Direction,
    EventKind,
    InboundEvent,
    Message,
    RawEvent,
)
from tongdai.core.pipeline import feed, intercept, outbound, store
from tongdai.core.workspace import access, audit, users
from tongdai.core.workspace.access import Principal

log = logging.getLogger(__name__)

SCOPE = "staffgroup"          # idempotency scope of replies written in a topic
NOTICE = "staffgroup.notice"  # feed event: an answer to post under an agent's message
POSTED_TTL_S = 30 * 86400     # how long a post is remembered (feed replays older are unlikely)
DONE_TTL_S = 2 * 86400        # Telegram redelivers an update for up to 24 h
# A flood wait up to this long is slept in place (the reactor has its own thread, and posts
# stay in order); a longer one pauses the chat and leaves the batch pending.
MAX_INLINE_WAIT_S = 60.0
# While one reactor creates a topic or posts an item, others leave it alone: longer than one
# inline wait plus two HTTP timeouts, so a slow holder is never overtaken.
HOLD_MS = 120_000
CLAIM_WAIT_S = 5.0            # how long another reactor waits for a topic before retrying later
MAX_TEXT = 3800               # Telegram takes 4096 characters; room for our prefix
NAME_MAX = 128                # a topic name's limit


# -- configuration ----------------------------------------------------------------------------
_CHATS: weakref.WeakKeyDictionary[Hub, frozenset[tuple[str, str]]] = weakref.WeakKeyDictionary()


def chats(hub: Hub) -> frozenset[tuple[str, str]]:
    """(channel, chat id) of every configured staff group: ingest diverts their updates."""
    found = _CHATS.get(hub)
    if found is None:
        found = frozenset((t.staff_group.channel, str(t.staff_group.chat_id))
                          for t in hub.config.hub.teams if t.staff_group)
        _CHATS[hub] = found
    return found


@intercept.interceptor("staff group", order=10)
def _take_staff_updates(hub: Hub) -> intercept.Take | None:
    """Ingest asks: updates from a staff group are agents', never a customer's message."""
    staff = chats(hub)
    if not staff:
        return None

    def take(raw: RawEvent, ev: InboundEvent, channel_id: str) -> bool:
        if (channel_id, ev.address) not in staff:
            return False
        handle(hub, channel_id, ev)
        return True
    return take


def groups_of_queue(hub: Hub, queue: str) -> list[StaffGroup]:
    """The staff groups of the teams working ``queue`` (one per chat)."""
    out: dict[tuple[str, int], StaffGroup] = {}
    for t in hub.config.hub.teams:
        if t.staff_group and queue in t.queues:
            out.setdefault((t.staff_group.channel, t.staff_group.chat_id), t.staff_group)
    return list(out.values())


def _group(hub: Hub, channel_id: str, chat: str) -> StaffGroup | None:
    return next((t.staff_group for t in hub.config.hub.teams if t.staff_group
                 and t.staff_group.channel == channel_id
                 and str(t.staff_group.chat_id) == chat), None)


# -- talking to Telegram ------------------------------------------------------------------------
_sleep = time.sleep  # (tests replace it to see a flood wait honoured without waiting)


def _call(hub: Hub, group: StaffGroup, fn: Callable[[Any], Any]) -> Any:
    """One Bot API call for ``group``, honouring Telegram's flood waits: a short
    ``retry_after`` is slept here; a long one pauses the chat (every reactor process sees it)
    and raises, so the feed batch stays pending and is retried later."""
    chat = str(group.chat_id)
    pause = hub.keys.staff_pause(chat)
    left_ms = hub.redis.pttl(pause)
    if left_ms > 0:
        raise DeliveryError(f"staff group {chat}: Telegram asked us to wait", retryable=True,
                            retry_after=left_ms / 1000, code="rate_limited")
    adapter = hub.adapter(group.channel)
    try:
        return fn(adapter)
    except DeliveryError as exc:
        if exc.code != "rate_limited":
            raise
        wait = float(exc.retry_after or 1)
        if wait > MAX_INLINE_WAIT_S:
            hub.redis.set(pause, "1", px=max(1, int(wait * 1000)))
            raise
    _sleep(wait)
    try:
        return fn(adapter)
    except DeliveryError as exc:  # again: leave it to a later round
        if exc.code == "rate_limited":
            hub.redis.set(pause, "1", px=max(1, int(float(exc.retry_after or 1) * 1000)))
        raise


def _thread_gone(exc: DeliveryError) -> bool:
    """Telegram's answer for a topic deleted by a group admin."""
    return "message thread not found" in str(exc).lower()


def _post_once(hub: Hub, group: StaffGroup, thread: int, item: str, text: str | Callable[[], str],
               reply_to: int | None = None) -> bool:
    """Post ``text`` into the topic unless ``item`` was posted already (False then): once,
    however often the feed hands the event over (core/feed.py act_once)."""
    def post() -> None:
        body = text() if callable(text) else text
        _call(hub, group, lambda a: a.send_message(group.chat_id, body, thread, reply_to))

    return feed.act_once(hub, hub.keys.staff_posted(str(group.chat_id), item), post,
                         f"staff-group post {item}", HOLD_MS, POSTED_TTL_S)


# -- topics -------------------------------------------------------------------------------------
def topic_of(hub: Hub, group: StaffGroup, conv_id: str) -> int | None:
    """The topic of conversation ``conv_id`` in ``group``, if it has one."""
    t = hub.redis.hget(hub.keys.staff_topics(conv_id), str(group.chat_id))
    return int(t) if t else None


def conversation_of(hub: Hub, chat: str, thread: str) -> str | None:
    """The conversation topic ``thread`` of staff chat ``chat`` belongs to."""
    c = hub.redis.get(hub.keys.staff_topic(chat, thread))
    return c.decode() if c else None


def _customer_name(hub: Hub, conv: Conversation) -> str:
    try:
        name = store.get_customer(hub, conv.customer_id).name
    except NotFound:
        name = None
    return name or f"customer {conv.customer_id}"


def topic_name(hub: Hub, conv: Conversation) -> str:
    """"<customer name> · <channel> · #<conversation>", the name cut to fit 128 characters."""
    tail = f" · {conv.channel_id} · #{conv.id}"
    name = _customer_name(hub, conv)
    room = NAME_MAX - len(tail)
    if len(name) > room:
        name = name[:max(room - 1, 1)] + "…"
    return (name + tail)[:NAME_MAX]


def _intro(hub: Hub, conv: Conversation) -> str:
    tags = ", ".join(conv.tags) or "—"
    return (f"Conversation #{conv.id} with {_customer_name(hub, conv)} on {conv.channel_id}\n"
            f"Queue: {conv.queue} · Tags: {tags}\n"
            "Write in this topic to answer the customer. Commands: /claim, /resolve, "
            "/note text (private).")


def ensure_topic(hub: Hub, group: StaffGroup, conv: Conversation) -> int:
    """The conversation's topic in ``group``, created on first use — once, even with several
    reactors and redeliveries: the id is stored, and only the holder of a short claim (SET NX)
    asks Telegram for a new topic. Its first post names the customer, channel and tags."""
    chat, k = str(group.chat_id), hub.keys
    thread = topic_of(hub, group, conv.id)
    if thread is None:
        claim, owner = k.staff_topic_claim(chat, conv.id), secrets.token_hex(8)
        if not hub.redis.set(claim, owner, nx=True, px=HOLD_MS):
            thread = _wait_for_topic(hub, group, conv.id)
        else:
            try:
                thread = topic_of(hub, group, conv.id)  # finished between our look and claim?
                if thread is None:
                    name = topic_name(hub, conv)
                    thread = _call(hub, group, lambda a: a.create_forum_topic(group.chat_id, name))
                    pipe = hub.redis.pipeline(transaction=True)
                    pipe.hset(k.staff_topics(conv.id), chat, thread)
                    pipe.set(k.staff_topic(chat, str(thread)), conv.id)
                    pipe.execute()
                    log.info("staff group %s: topic %s opened for conversation %s", chat,
                             thread, conv.id)
            finally:
                hub.scripts.release_lock(keys=[claim], args=[owner])
    _post_once(hub, group, thread, f"intro:{thread}", lambda: _intro(hub, conv))
    return thread


def _wait_for_topic(hub: Hub, group: StaffGroup, conv_id: str) -> int:
    deadline = time.monotonic() + CLAIM_WAIT_S
    while time.monotonic() < deadline:
        time.sleep(0.1)
        if (thread := topic_of(hub, group, conv_id)) is not None:
            return thread
    raise DeliveryError(f"another reactor is opening the topic of conversation {conv_id}",
                        retryable=True, code="busy")


def _forget_topic(hub: Hub, group: StaffGroup, conv_id: str, thread: int) -> None:
    """A topic deleted in Telegram: the conversation gets a new one on its next message."""
    chat = str(group.chat_id)
    pipe = hub.redis.pipeline(transaction=True)
    pipe.hdel(hub.keys.staff_topics(conv_id), chat)
    pipe.delete(hub.keys.staff_topic(chat, str(thread)))
    pipe.execute()
    log.warning("staff group %s: topic %s of conversation %s is gone", chat, thread, conv_id)


# -- out: the reactor ----------------------------------------------------------------------------
def _clip(text: str) -> str:
    return text if len(text) <= MAX_TEXT else text[:MAX_TEXT] + "… (cut: read the rest in the console)"


def _attachment_line(a: Attachment) -> str:
    return f"[{a.kind}: {a.name}]" if a.name and a.kind != "contact" else f"[{a.kind}]"


def _body(msg: Message) -> str:
    lines = [msg.text] if msg.text else []
    lines += [_attachment_line(a) for a in msg.attachments]
    return "\n".join(lines) or f"[{msg.kind}]"


def _author_line(hub: Hub, msg: Message) -> str:
    if msg.author_kind == AuthorKind.AGENT and msg.author_id:
        user = users.find(hub, msg.author_id)
        who = (user.display_name or user.name) if user else msg.author_id
        return _clip(f"↩ {who} → customer:\n{_body(msg)}")
    return _clip(f"🤖 automatic reply:\n{_body(msg)}")


def _replied_from_topic(hub: Hub, conv_id: str, mid: str) -> bool:
    """Whether reply ``mid`` was written in a topic (it is there already). ``handle`` notes the
    idempotency digest *before* creating the reply, and the reply's idempotency key (set in
    the same script as its feed event) names the message: no race with this reactor."""
    echoes = hub.keys.staff_echoes(conv_id)
    digests = list(hub.redis.smembers(echoes))
    if not digests:
        return False
    got = hub.redis.mget([hub.keys.idempotency(SCOPE, d.decode()) for d in digests])
    for d, value in zip(digests, got):
        if value is not None and value.decode() == mid:
            hub.redis.srem(echoes, d)
            return True
    return False


def _mirror(hub: Hub, data: dict[str, Any]) -> None:
    conv_id, mid = str(data.get("conversation_id") or ""), str(data.get("message_id") or "")
    if not conv_id or not mid:
        return
    try:
        conv = store.get_conversation(hub, conv_id)
    except NotFound:
        return
    groups = groups_of_queue(hub, conv.queue)
    if not groups:
        return
    try:
        msg = store.get_message(hub, conv_id, mid)
    except NotFound:
        return
    item = f"m:{mid}"
    if msg.direction == Direction.OUT:
        if _replied_from_topic(hub, conv_id, mid):
            return
        for g in groups:  # only into an existing topic: a reply alone opens none
            if (thread := topic_of(hub, g, conv_id)) is not None:
                _post_into(hub, g, conv, thread, item, lambda: _author_line(hub, msg))
    elif msg.direction == Direction.IN:
        customer = msg.author_kind == AuthorKind.CUSTOMER
        text = _clip(("" if customer else "ℹ ") + _body(msg))
        for g in groups:
            if hub.redis.get(hub.keys.staff_posted(str(g.chat_id), item)) == b"sent":
                continue  # (no topic needed for it)
            if customer:
                thread = ensure_topic(hub, g, conv)
            elif (thread := topic_of(hub, g, conv_id)) is None:
                continue  # a system line (blocked the bot, ...) opens no topic either
            _post_into(hub, g, conv, thread, item, text, reopen=customer)


def _post_into(hub: Hub, group: StaffGroup, conv: Conversation, thread: int, item: str,
               text: str | Callable[[], str], reopen: bool = False) -> None:
    """Post into the conversation's topic; a topic deleted in Telegram is forgotten and, for
    a customer's message (``reopen``), replaced by a new one."""
    try:
        _post_once(hub, group, thread, item, text)
    except DeliveryError as exc:
        if not _thread_gone(exc):
            raise
        _forget_topic(hub, group, conv.id, thread)
        if reopen:
            _post_once(hub, group, ensure_topic(hub, group, conv), item, text)


def _post_notice(hub: Hub, data: dict[str, Any]) -> None:
    group = _group(hub, str(data.get("channel")), str(data.get("chat")))
    if group is None or not data.get("thread") or not data.get("reply_to"):
        return
    try:
        _post_once(hub, group, int(data["thread"]), f"n:{data['reply_to']}",
                   _clip(str(data.get("text") or "")), reply_to=int(data["reply_to"]))
    except DeliveryError as exc:
        if exc.retryable:
            raise
        log.warning("staff group %s: an answer to message %s was not posted (%s)",
                    data.get("chat"), data.get("reply_to"), exc.code)


@feed.reactor("staffgroup")
def mirror(hub: Hub, events: list[feed.FeedEvent]) -> None:
    """Mirror customers' messages and agents' replies into the conversations' topics, and post
    answers to commands. A retryable failure (a long flood wait, Telegram down) raises: the
    batch stays pending and is retried; what was posted before is not posted again. Other
    failures (the bot removed from the group, ...) are logged and that post is skipped — the
    timeline stays the record, the topic is a view of it."""
    if not chats(hub):
        return
    for ev in events:
        try:
            if ev.type == "message.created":
                _mirror(hub, ev.data)
            elif ev.type == NOTICE:
                _post_notice(hub, ev.data)
        except DeliveryError as exc:
            if exc.retryable:
                raise
            log.warning("staff group: feed event %s not mirrored: %s", ev.id, exc)


# -- in: updates from a staff chat ---------------------------------------------------------------
def _command(text: str) -> tuple[str | None, str]:
    """("claim", "") for "/claim@our_bot"; (None, text) for anything else."""
    if not text.startswith("/"):
        return None, text
    head, _, rest = text.partition(" ")
    return head[1:].partition("@")[0].lower(), rest.strip()


def _notice(hub: Hub, channel_id: str, chat: str, thread: str, conv_id: str, message_id: str,
            text: str) -> None:
    """Answer an agent's message in its topic (the reactor posts it, once)."""
    feed.publish(hub, {"type": NOTICE, "conversation_id": conv_id, "channel": channel_id,
                       "chat": chat, "thread": thread, "reply_to": message_id, "text": text})


def _linked_user(hub: Hub, telegram_id: str) -> users.User | None:
    try:
        user = users.by_telegram(hub, int(telegram_id))
    except ValueError:
        return None
    return user if user is not None and not user.disabled else None


def handle(hub: Hub, channel_id: str, ev: InboundEvent) -> None:
    """One update from staff chat ``ev.address`` (called by ingest instead of storing it)."""
    chat = ev.address or ""
    adapter = hub.adapters.get(channel_id)
    if ev.external_user_id == getattr(adapter, "bot_id", None):
        return  # our own posts and the service messages about topics we opened
    user = _linked_user(hub, ev.external_user_id)
    if user is None:  # the id only: names and text stay out of logs
        log.info("staff group %s: ignored an update from Telegram user %s (no linked user)",
                 chat, ev.external_user_id)
        return
    if ev.kind not in (EventKind.MESSAGE, EventKind.EDIT) or not ev.topic_id:
        return  # reactions, joins, the General topic: nothing to do
    conv_id = conversation_of(hub, chat, ev.topic_id)
    message_id = ev.external_message_id or ""
    if conv_id is None or not message_id:
        return  # a topic the hub did not open
    done = hub.keys.staff_update(chat, message_id if ev.kind == EventKind.MESSAGE
                                 else ev.dedupe_key)
    if hub.redis.exists(done):  # a redelivered update: acted on already
        return
    principal = Principal(user.name, user.role, frozenset(user.teams), via="telegram",
                          language=user.language)
    answer = _act(hub, principal, user, channel_id, chat, conv_id, message_id, ev)
    if answer:
        _notice(hub, channel_id, chat, ev.topic_id, conv_id, message_id, answer)
    hub.redis.set(done, "1", ex=DONE_TTL_S)


def _act(hub: Hub, principal: Principal, user: users.User, channel_id: str, chat: str,
         conv_id: str, message_id: str, ev: InboundEvent) -> str | None:
    """Do what the agent's message asks; returns the answer to post under it (None: none)."""
    who = user.display_name or user.name
    try:
        access.conversation(hub, principal, conv_id)
    except NotFound:
        return f"{who}: you may not work on conversation #{conv_id} (not in your teams)."
    if ev.kind == EventKind.EDIT:
        return "Edits are not passed on: the customer keeps the first version."
    text = (ev.text or "").strip()
    command, arg = _command(text)
    key = f"tg-staff:{chat}:{message_id}"
    try:
        if command == "claim":
            return _claim(hub, principal, conv_id, who)
        if command == "resolve":
            store.set_status(hub, conv_id, ConversationStatus.RESOLVED)
            audit.record(hub, principal.name, "conversation.resolved", conv_id,
                         {"via": "telegram"})
            return f"✅ Resolved by {who}."
        if command == "note":
            return _note(hub, principal, conv_id, arg, key)
        if command is not None:
            return (f"Unknown command /{command}. Commands: /claim, /resolve, /note text. "
                    "Anything else is sent to the customer.")
        return _reply(hub, conv_id, user.name, text, ev.attachments, key)
    except TongdaiError as exc:  # refused (window closed, conflict, ...): say why, in place
        return f"Not done: {exc}"


def _claim(hub: Hub, principal: Principal, conv_id: str, who: str) -> str:
    try:
        from tongdai.core.workspace import assignment  # written alongside; imported when first used
    except ImportError:
        return "/claim is not available on this hub yet: claim it in the console."
    assignment.claim(hub, principal, conv_id)
    return f"🙋 {who} took this conversation."


def _note(hub: Hub, principal: Principal, conv_id: str, text: str, key: str) -> str:
    if not text:
        return "Usage: /note text — a private note, never sent to the customer."
    from tongdai.core.workspace import (
        workflow,  # imported when first used (it imports much of the core)
    )

    workflow.add_note(hub, principal, conv_id, text, key)
    return "📝 Note saved (not sent to the customer)."


def _reply(hub: Hub, conv_id: str, author: str, text: str, attachments: list[Attachment],
           key: str) -> str | None:
    if not text:
        return "Files from the staff group are not passed on yet: send them from the console."
    # Noted before the reply exists, so the reactor never mirrors it back (see
    # ``_replied_from_topic``); the digest is the one create_reply files the key under.
    digest = hashlib.sha256(key.encode()).hexdigest()[:32]
    echoes = hub.keys.staff_echoes(conv_id)
    pipe = hub.redis.pipeline(transaction=False)
    pipe.sadd(echoes, digest)
    pipe.expire(echoes, outbound.IDEMPOTENCY_TTL_S)
    pipe.execute()
    try:
        outbound.create_reply(hub, conv_id, text, author_id=author, idempotency_key=key,
                              scope=SCOPE)
    except TongdaiError:
        hub.redis.srem(echoes, digest)
        raise
    if attachments:
        return "Only the text was sent: files from the staff group are not passed on yet."
    return None
