"""System lines: who did what to a conversation, on its timeline.

Every claim, assignment, transfer, release, resolve, reopen, escalation and de-escalation adds a
line to the conversation's timeline, written in the same script or MULTI as the change itself
(so the timeline never shows a change that did not happen, nor misses one that did). A line is
a :class:`Message` with direction ``internal``, kind ``system``, author kind ``system`` and
``author_id`` the actor (a user, ``system``, or a policy such as ``policy:sla``); its ``text``
is the sentence the console shows, its ``payload`` a JSON object naming the action for API
clients (``{"action": "escalated", "from_queue": ..., "to_queue": ...}``).

Like notes, lines are never sent and never make a ``message.created`` (reactors read that as the
conversation with the customer); the change's own feed event tells consoles to reload. With
``security.encrypt_message_text`` on, the text is sealed with the customer identity's key
(a transfer's "why" or an escalation's reason may name the customer's details); the payload
holds only queue, team and user names.
"""

from __future__ import annotations

from typing import Any

import orjson
import redis

from tongdai.core.hub import Hub
from tongdai.core.models import AuthorKind, Direction, EventKind, Message
from tongdai.core.pipeline import store

KIND = EventKind.SYSTEM.value


def subject(hub: Hub, conv_id: str):
    """The key internal lines are sealed with when ``encrypt_message_text`` is on: the
    customer identity's own (erasing the customer makes their notes unreadable too)."""
    if not hub.config.hub.security.encrypt_message_text:
        return None
    identity = hub.redis.hget(hub.keys.conversation(conv_id), "identity")
    return hub.subjects.key_for(identity.decode()) if identity else None


def internal(hub: Hub, conv_id: str, channel_id: str, kind: str, author_kind: AuthorKind,
             author_id: str, text: str, now: int, payload: str | None = None) -> Message:
    """An internal timeline entry (a note, a system line), its text sealed as stored."""
    return Message(id="", conversation_id=conv_id, direction=Direction.INTERNAL,
                   author_kind=author_kind, author_id=author_id, channel_id=channel_id,
                   platform_ts_ms=now, received_ts_ms=now, kind=kind,
                   text=store.seal_text(hub, text, subject(hub, conv_id)), payload=payload)


def line(hub: Hub, conv_id: str, channel_id: str, by: str, text: str, now: int,
         action: dict[str, Any]) -> Message:
    """A system line: ``text`` for people, ``action`` (``{"action": ..., ...}``) for programs."""
    return internal(hub, conv_id, channel_id, KIND, AuthorKind.SYSTEM, by, text, now,
                    orjson.dumps(action).decode())


def lua_blob(msg: Message) -> str:
    """The line for a script that knows the conversation's channel and adds it
    (core/lua/claim.lua): the stored blob without its ``c`` field."""
    d = orjson.loads(msg.to_blob())
    d.pop("c", None)
    return orjson.dumps(d).decode()


def write(hub: Hub, pipe: redis.client.Pipeline, conv_id: str, mid: str, msg: Message) -> None:
    """Queue the line's two writes in ``pipe`` (inside the caller's MULTI); ``mid`` from
    :func:`next_id`."""
    pipe.hset(hub.keys.messages(conv_id), mid, msg.to_blob())
    pipe.zadd(hub.keys.timeline(conv_id), {mid: msg.received_ts_ms})


def next_id(hub: Hub) -> str:
    """A message id, taken before a transaction (a retried or abandoned one wastes it)."""
    return str(hub.redis.incr(hub.keys.seq("message")))

