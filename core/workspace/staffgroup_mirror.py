"""The staff group's out direction: the ``staffgroup`` feed reactor.

It mirrors customers' messages and agents' replies made elsewhere (console, API, mail) into
the conversations' topics — a customer's photos and files too, once the background job has
fetched them into the blob store (``message.updated``, op ``files``): photos as photos, other
files as documents, each under the line that named it — and posts the answers to agents'
commands (``staffgroup.notice`` events) under the command. The topics and the Telegram calls
are ``staffgroup_topics``'s.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from tongdai.core import i18n
from tongdai.core.config import StaffGroup
from tongdai.core.errors import DeliveryError, NotFound
from tongdai.core.hub import Hub
from tongdai.core.models import Attachment, AuthorKind, Conversation, Direction, Message
from tongdai.core.pipeline import feed, store
from tongdai.core.workspace import users
from tongdai.core.workspace.staffgroup_topics import (
    chats,
    ensure_topic,
    forget_topic,
    group_of,
    groups_of_queue,
    post_file_once,
    post_once,
    thread_gone,
    topic_of,
)

log = logging.getLogger(__name__)

SCOPE = "staffgroup"          # idempotency scope of replies written in a topic
NOTICE = "staffgroup.notice"  # feed event: an answer to post under an agent's message
MAX_TEXT = 3800               # Telegram takes 4096 characters; room for our prefix


# -- out: the reactor ----------------------------------------------------------------------------
def _clip(hub: Hub, text: str) -> str:
    if len(text) <= MAX_TEXT:
        return text
    return text[:MAX_TEXT] + _say(hub, "staff.cut")


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
        return _clip(hub, _say(hub, "staff.agent_reply", who=who, text=_body(msg)))
    return _clip(hub, _say(hub, "staff.auto_reply", text=_body(msg)))


def _say(hub: Hub, key: str, **params: object) -> str:
    """A line for the whole group: in console.default_language (the team's)."""
    return i18n.text(hub.config.hub.console.default_language, key, **params)


def _replied_from_topic(hub: Hub, conv_id: str, mid: str) -> bool:
    """Whether reply ``mid`` was written in a topic (it is there already).
    ``staffgroup.handle`` notes the idempotency digest *before* creating the reply, and the
    reply's idempotency key (set in the same script as its feed event) names the message: no
    race with this reactor."""
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
        text = _clip(hub, ("" if customer else "ℹ ") + _body(msg))
        for g in groups:
            if hub.redis.get(hub.keys.staff_posted(str(g.chat_id), item)) == b"sent":
                continue  # (no topic needed for it)
            if customer:
                thread = ensure_topic(hub, g, conv)
            elif (thread := topic_of(hub, g, conv_id)) is None:
                continue  # a system line (blocked the bot, ...) opens no topic either
            _post_into(hub, g, conv, thread, item, text, reopen=customer)


def _mirror_files(hub: Hub, data: dict[str, Any]) -> None:
    """A customer's files, stored at last: uploaded into the topics that showed their line
    (``[image: name]``). A file Telegram would not take from a bot (too big) stays a line."""
    conv_id, mid = str(data.get("conversation_id") or ""), str(data.get("message_id") or "")
    if data.get("op") != "files" or not conv_id or not mid:
        return
    try:
        conv = store.get_conversation(hub, conv_id)
        msg = store.get_message(hub, conv_id, mid)
    except NotFound:
        return
    if msg.direction != Direction.IN or msg.author_kind != AuthorKind.CUSTOMER:
        return
    for g in groups_of_queue(hub, conv.queue):
        thread = topic_of(hub, g, conv_id)
        if thread is None:
            continue  # (the line opens the topic; without it there is nowhere to put them)
        adapter = hub.adapter(g.channel)
        for n, a in enumerate(msg.attachments):
            if not (a.file_id or "").startswith("blob:") or adapter.file_refusal(
                    a.kind, a.mime or "", a.size or 0) is not None:
                continue

            def load(a: Attachment = a, n: int = n) -> Attachment:
                try:
                    data = hub.blobs.get(a.file_id or "")
                except ValueError:  # sealed with a data key no longer configured
                    raise DeliveryError("stored file cannot be read", retryable=False,
                                        code="unreadable") from None
                return replace(a, data=data, name=a.name or f"{a.kind}-{n + 1}")

            try:
                post_file_once(hub, g, thread, f"f:{mid}:{n}", load)
            except DeliveryError as exc:
                if exc.retryable:
                    raise
                log.warning("staff group %s: file %d of message %s not posted (%s)",
                            g.chat_id, n, mid, exc.code)


def _post_into(hub: Hub, group: StaffGroup, conv: Conversation, thread: int, item: str,
               text: str | Callable[[], str], reopen: bool = False) -> None:
    """Post into the conversation's topic; a topic deleted in Telegram is forgotten and, for
    a customer's message (``reopen``), replaced by a new one."""
    try:
        post_once(hub, group, thread, item, text)
    except DeliveryError as exc:
        if not thread_gone(exc):
            raise
        forget_topic(hub, group, conv.id, thread)
        if reopen:
            post_once(hub, group, ensure_topic(hub, group, conv), item, text)


def _post_notice(hub: Hub, data: dict[str, Any]) -> None:
    group = group_of(hub, str(data.get("channel")), str(data.get("chat")))
    if group is None or not data.get("thread") or not data.get("reply_to"):
        return
    try:
        post_once(hub, group, int(data["thread"]), f"n:{data['reply_to']}",
                   _clip(hub, str(data.get("text") or "")), reply_to=int(data["reply_to"]))
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
            elif ev.type == "message.updated":
                _mirror_files(hub, ev.data)
            elif ev.type == NOTICE:
                _post_notice(hub, ev.data)
        except DeliveryError as exc:
            if exc.retryable:
                raise
            log.warning("staff group: feed event %s not mirrored: %s", ev.id, exc)
