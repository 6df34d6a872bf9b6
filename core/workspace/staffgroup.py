"""The Telegram staff group: a team answers its customers from a supergroup with topics.

A team's ``staff_group`` names a Telegram bot channel and a forum supergroup where that bot is
an admin (with the *manage topics* right). Two directions:

- **Out** — the ``staffgroup`` reactor (``staffgroup_mirror``) reads the change feed. A
  customer's message in a conversation of the team's queues gets the conversation its own topic
  (created once, see ``staffgroup_topics.ensure_topic``), then is posted there; agents'
  replies made elsewhere (console, API, mail) are posted too, marked with the agent's name;
  answers to commands (``staffgroup.notice`` events) are posted under the command. Each post
  is made once: a marker per posted item is set after Telegram accepted it and checked before.
  A 429 is waited out (short waits inline, long ones by leaving the batch pending), never
  dropped.
- **In** — updates from a staff chat reach the same bot webhook as customers'. Ingest hands
  them to ``handle`` instead of filing them as customer messages. A linked user's message in
  a conversation's topic becomes a reply (``outbound.create_reply``: window rules, send
  idempotency, the agent as author); ``/claim``, ``/resolve``, ``/note text``,
  ``/escalate reason`` and ``/deescalate`` act on the conversation. Anyone else is ignored
  and logged by Telegram user id.

Nothing here runs in a web request: ``handle`` runs in the ingest worker and only touches
Redis (its answers ride the feed to the reactor, which does the Telegram calls).

This module holds the configured chats' interceptor and the in direction; the out direction is
``staffgroup_mirror``, and both use ``staffgroup_topics`` (the chats, Telegram calls, topics).
"""

from __future__ import annotations

import hashlib
import logging

from tongdai.core import i18n
from tongdai.core.errors import NotFound, TongdaiError
from tongdai.core.hub import Hub
from tongdai.core.models import Attachment, ConversationStatus, EventKind, InboundEvent, RawEvent
from tongdai.core.pipeline import feed, intercept, outbound
from tongdai.core.workspace import access, users
from tongdai.core.workspace.access import Principal

# (importing the mirror registers its reactor: ``core/workspace/__init__.py`` imports only this)
from tongdai.core.workspace.staffgroup_mirror import NOTICE, SCOPE
from tongdai.core.workspace.staffgroup_topics import chats, conversation_of

log = logging.getLogger(__name__)

DONE_TTL_S = 2 * 86400        # Telegram redelivers an update for up to 24 h


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
    """Do what the agent's message asks; returns the answer to post under it (None: none),
    in the agent's console language (``staff.*`` of webhooks/static/i18n/<lang>.json)."""
    who = user.display_name or user.name
    lang = user.language or hub.config.hub.console.default_language
    try:
        access.conversation(hub, principal, conv_id)
    except NotFound:
        return i18n.text(lang, "staff.not_your_team", who=who, id=conv_id)
    if ev.kind == EventKind.EDIT:
        return i18n.text(lang, "staff.edits")
    text = (ev.text or "").strip()
    command, arg = _command(text)
    key = f"tg-staff:{chat}:{message_id}"
    try:
        if command == "claim":
            return _claim(hub, principal, conv_id, who, lang)
        if command == "resolve":
            from tongdai.core.workspace import workflow

            workflow.set_status(hub, principal, conv_id, ConversationStatus.RESOLVED,
                                via="telegram")
            return i18n.text(lang, "staff.resolved", who=who)
        if command == "note":
            return _note(hub, principal, conv_id, arg, key, lang)
        if command in ("escalate", "deescalate"):
            return _tier(hub, principal, conv_id, command, arg, who, lang)
        if command is not None:
            return i18n.text(lang, "staff.unknown_command", command=command)
        return _reply(hub, conv_id, user.name, text, ev.attachments, key, lang,
                      (channel_id, chat, ev.topic_id or "", message_id))
    except TongdaiError as exc:  # refused (window closed, conflict, ...): say why, in place
        return i18n.text(lang, "staff.not_done", why=i18n.explain(lang, exc))


def _claim(hub: Hub, principal: Principal, conv_id: str, who: str, lang: str) -> str:
    from tongdai.core.workspace import assignment  # imported when first used, like workflow

    assignment.claim(hub, principal, conv_id)
    return i18n.text(lang, "staff.claimed", who=who)


def _note(hub: Hub, principal: Principal, conv_id: str, text: str, key: str, lang: str) -> str:
    if not text:
        return i18n.text(lang, "staff.note_usage")
    from tongdai.core.workspace import (
        workflow,  # imported when first used (it imports much of the core)
    )

    workflow.add_note(hub, principal, conv_id, text, key)
    return i18n.text(lang, "staff.note_saved")


def _tier(hub: Hub, principal: Principal, conv_id: str, command: str, reason: str,
          who: str, lang: str) -> str:
    from tongdai.core.workspace import tiers  # imported when first used, like workflow

    if command == "escalate":
        if not reason:
            return i18n.text(lang, "staff.escalate_usage")
        conv = tiers.escalate(hub, principal, conv_id, reason)
    else:
        conv = tiers.deescalate(hub, principal, conv_id, reason)
    return i18n.text(lang, f"staff.{command}d", who=who, queue=conv.queue,
                     tier=tiers.tier_of(hub, conv.queue))


def _reply(hub: Hub, conv_id: str, author: str, text: str, attachments: list[Attachment],
           key: str, lang: str, where: tuple[str, str, str, str]) -> str | None:
    """A reply to the customer; with a photo or file (``where``: the staff channel, chat,
    topic and message) the background job fetches it from Telegram and sends both."""
    from tongdai.adapters.base import FILE_KINDS

    files = [a for a in attachments if a.kind in FILE_KINDS and a.file_id]
    if not text and not files:
        return i18n.text(lang, "staff.no_files")
    # Noted before the reply exists, so the reactor never mirrors it back (see
    # ``staffgroup_mirror._replied_from_topic``); the digest is the one create_reply files the
    # key under.
    digest = hashlib.sha256(key.encode()).hexdigest()[:32]
    echoes = hub.keys.staff_echoes(conv_id)
    pipe = hub.redis.pipeline(transaction=False)
    pipe.sadd(echoes, digest)
    pipe.expire(echoes, outbound.IDEMPOTENCY_TTL_S)
    pipe.execute()
    if files:  # fetched from Telegram off the ingest path; the reply made there
        from rq import Queue, Retry

        from tongdai.core.keys import BACKGROUND_QUEUE

        Queue(BACKGROUND_QUEUE, connection=hub.redis).enqueue(
            FILES_JOB, *where, conv_id, author, text, [a.to_dict() for a in files], key, lang,
            job_id=f"staff-files-{digest}", result_ttl=0, failure_ttl=86400,
            retry=Retry(max=5, interval=[2, 10, 60, 300, 900]))
        return None
    try:
        outbound.create_reply(hub, conv_id, text, author_id=author, idempotency_key=key,
                              scope=SCOPE)
    except TongdaiError:
        hub.redis.srem(echoes, digest)
        raise
    if attachments:
        return i18n.text(lang, "staff.text_only")
    return None


FILES_JOB = "tongdai.worker.jobs.staff_reply_files"


def reply_with_files(hub: Hub, channel_id: str, chat: str, topic: str, message_id: str,
                     conv_id: str, author: str, text: str, atts: list[dict], key: str,
                     lang: str) -> str:
    """The background half of a staff-group reply with files: each file fetched from Telegram
    (getFile; 429/5xx raise for RQ to retry), then one reply with them (``key`` makes a re-run
    job the same reply). A refusal (too big, a type the customer's channel does not take) is
    said under the agent's message in the topic."""
    from tongdai.adapters.telegram.adapter import DOWNLOAD_LIMIT
    from tongdai.core.errors import BadRequest, DeliveryError
    from tongdai.core.pipeline import files

    adapter = hub.adapter(channel_id)
    limit = hub.config.hub.storage.max_blob_bytes
    found: list[Attachment] = []
    try:
        for d in atts:
            try:
                got = adapter.fetch_file(Attachment.from_dict(d), limit)
            except DeliveryError as e:
                if e.code != "too_big":
                    raise
                most = min(limit, DOWNLOAD_LIMIT)  # what the hub keeps, what bots may fetch
                raise BadRequest(str(e)).because(
                    "file_too_big", name=d.get("name") or "", max_mb=round(most / 2**20, 1),
                    channel=channel_id) from None
            if got is None:
                continue
            mime = files.sniff(got.data) or got.mime or d.get("mime") or "application/octet-stream"
            found.append(Attachment("image" if mime.startswith("image/") else "file",
                                    name=d.get("name") or got.name, mime=mime, data=got.data))
        outbound.create_reply(hub, conv_id, text or None, author_id=author, idempotency_key=key,
                              scope=SCOPE, attachments=found)
    except DeliveryError as exc:
        if exc.retryable:
            raise
        why = exc
    except TongdaiError as exc:
        why = exc
    else:
        return f"replied with {len(found)} file(s)"
    digest = hashlib.sha256(key.encode()).hexdigest()[:32]
    hub.redis.srem(hub.keys.staff_echoes(conv_id), digest)
    _notice(hub, channel_id, chat, topic, conv_id, message_id,
            i18n.text(lang, "staff.not_done", why=i18n.explain(lang, why)))
    return f"refused: {why}"
