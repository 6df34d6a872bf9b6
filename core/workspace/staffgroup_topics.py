"""The staff groups' chats and forum topics, shared by both directions of ``staffgroup``.

Which Telegram chats are staff groups (the teams' ``staff_group``), Bot API calls into them
that honour Telegram's flood waits and post each item once, and the conversations' topics
there: opened once (``ensure_topic``), found again from a topic (``conversation_of``),
forgotten when a group admin deleted one.
"""

from __future__ import annotations

import logging
import secrets
import time
import weakref
from collections.abc import Callable
from typing import Any

from tongdai.core import i18n
from tongdai.core.config import StaffGroup
from tongdai.core.errors import DeliveryError, NotFound
from tongdai.core.hub import Hub
from tongdai.core.models import Conversation
from tongdai.core.pipeline import feed, store

log = logging.getLogger(__name__)

POSTED_TTL_S = 30 * 86400     # how long a post is remembered (feed replays older are unlikely)
# A flood wait up to this long is slept in place (the reactor has its own thread, and posts
# stay in order); a longer one pauses the chat and leaves the batch pending.
MAX_INLINE_WAIT_S = 60.0
# While one reactor creates a topic or posts an item, others leave it alone: longer than one
# inline wait plus two HTTP timeouts, so a slow holder is never overtaken.
HOLD_MS = 120_000
CLAIM_WAIT_S = 5.0            # how long another reactor waits for a topic before retrying later
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


def groups_of_queue(hub: Hub, queue: str) -> list[StaffGroup]:
    """The staff groups of the teams working ``queue`` (one per chat)."""
    out: dict[tuple[str, int], StaffGroup] = {}
    for t in hub.config.hub.teams:
        if t.staff_group and queue in t.queues:
            out.setdefault((t.staff_group.channel, t.staff_group.chat_id), t.staff_group)
    return list(out.values())


def group_of(hub: Hub, channel_id: str, chat: str) -> StaffGroup | None:
    """The staff group of chat ``chat`` on channel ``channel_id``, if it is one."""
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


def thread_gone(exc: DeliveryError) -> bool:
    """Telegram's answer for a topic deleted by a group admin."""
    return "message thread not found" in str(exc).lower()


def post_once(hub: Hub, group: StaffGroup, thread: int, item: str, text: str | Callable[[], str],
               reply_to: int | None = None) -> bool:
    """Post ``text`` into the topic unless ``item`` was posted already (False then): once,
    however often the feed hands the event over (core/feed.py act_once)."""
    def post() -> None:
        body = text() if callable(text) else text
        _call(hub, group, lambda a: a.send_message(group.chat_id, body, thread, reply_to))

    return feed.act_once(hub, hub.keys.staff_posted(str(group.chat_id), item), post,
                         f"staff-group post {item}", HOLD_MS, POSTED_TTL_S)


def post_file_once(hub: Hub, group: StaffGroup, thread: int, item: str,
                   load: Callable[[], Any]) -> bool:
    """Upload the attachment ``load()`` gives (with its bytes) into the topic unless ``item``
    was posted already: a photo as a photo, other files as documents."""
    def post() -> None:
        att = load()
        _call(hub, group, lambda a: a.send_file(group.chat_id, att, thread))

    return feed.act_once(hub, hub.keys.staff_posted(str(group.chat_id), item), post,
                         f"staff-group file {item}", HOLD_MS, POSTED_TTL_S)


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
    """The topic's first post, in console.default_language (the group is the whole team's)."""
    return i18n.text(hub.config.hub.console.default_language, "staff.intro", id=conv.id,
                     name=_customer_name(hub, conv), channel=conv.channel_id, queue=conv.queue,
                     tags=", ".join(conv.tags) or "—")


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
    post_once(hub, group, thread, f"intro:{thread}", lambda: _intro(hub, conv))
    return thread


def _wait_for_topic(hub: Hub, group: StaffGroup, conv_id: str) -> int:
    deadline = time.monotonic() + CLAIM_WAIT_S
    while time.monotonic() < deadline:
        time.sleep(0.1)
        if (thread := topic_of(hub, group, conv_id)) is not None:
            return thread
    raise DeliveryError(f"another reactor is opening the topic of conversation {conv_id}",
                        retryable=True, code="busy")


def forget_topic(hub: Hub, group: StaffGroup, conv_id: str, thread: int) -> None:
    """A topic deleted in Telegram: the conversation gets a new one on its next message."""
    chat = str(group.chat_id)
    pipe = hub.redis.pipeline(transaction=True)
    pipe.hdel(hub.keys.staff_topics(conv_id), chat)
    pipe.delete(hub.keys.staff_topic(chat, str(thread)))
    pipe.execute()
    log.warning("staff group %s: topic %s of conversation %s is gone", chat, thread, conv_id)
