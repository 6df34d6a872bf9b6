"""Reading conversations and messages, paginated by cursor at O(page) cost.

Writes that must be atomic go through the Lua scripts (``core/ingest.py``,
``core/outbound.py``); this module holds the reads and the simple state changes.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import orjson

from tongdai.core.clock import now_ms
from tongdai.core.crypto import TEXT_PREFIX, SubjectKey
from tongdai.core.errors import BadRequest, NotFound
from tongdai.core.hub import Hub
from tongdai.core.models import (
    Attachment,
    Conversation,
    ConversationStatus,
    Customer,
    Identity,
    Message,
)
from tongdai.core.pipeline import feed


@dataclass(slots=True)
class Page:
    items: list
    next_cursor: str | None


def _decode_cursor(cursor: str | None) -> tuple[float, str] | None:
    if not cursor:
        return None
    score, sep, member = cursor.partition(":")
    try:
        return float(score), member if sep else ""
    except ValueError:
        raise BadRequest(f"cursor {cursor!r} is not one this API gave out") from None


def _encode_cursor(score: float, member: str) -> str:
    return f"{int(score)}:{member}"


def _zpage(hub: Hub, key: str, cursor: str | None, limit: int, desc: bool) -> tuple[list[tuple[str, float]], str | None]:
    """A page of a sorted set after an exclusive (score, member) cursor.

    Equal scores are ordered by member, so the cursor carries both; fetching a few extra rows
    skips the ties already served. Cost: O(log N + page).
    """
    cur = _decode_cursor(cursor)
    want = limit + 1
    extra = 16
    while True:
        if desc:
            hi = cur[0] if cur else "+inf"
            rows = hub.redis.zrange(key, hi, "-inf", desc=True, byscore=True, offset=0,
                                    num=want + extra, withscores=True)
        else:
            lo = cur[0] if cur else "-inf"
            rows = hub.redis.zrange(key, lo, "+inf", byscore=True, offset=0, num=want + extra,
                                    withscores=True)
        items = [(m.decode(), s) for m, s in rows]
        if cur:
            cs, cm = cur
            if desc:
                items = [(m, s) for m, s in items if s < cs or (s == cs and m < cm)]
            else:
                items = [(m, s) for m, s in items if s > cs or (s == cs and m > cm)]
        if len(items) >= want or len(rows) < want + extra:
            break
        extra *= 4  # many equal scores at the cursor: fetch wider
    page = items[:limit]
    nxt = _encode_cursor(page[-1][1], page[-1][0]) if len(items) > limit else None
    return page, nxt


def get_conversation(hub: Hub, conv_id: str) -> Conversation:
    (conv,) = get_conversations(hub, [conv_id])
    if conv is None:
        raise NotFound(f"no conversation {conv_id}")
    return conv


def get_conversations(hub: Hub, ids: list[str], chunk: int = 1000
                      ) -> list[Conversation | None]:
    """The conversations of these ids (None: none), ``chunk`` per round trip."""
    out: list[Conversation | None] = []
    for i in range(0, len(ids), chunk):
        part = ids[i:i + chunk]
        pipe = hub.redis.pipeline(transaction=False)
        for cid in part:
            pipe.hgetall(hub.keys.conversation(cid))
            pipe.smembers(hub.keys.conversation_tags(cid))
        got = pipe.execute()
        out += [conversation_from(cid, h, tags)
                for cid, h, tags in zip(part, got[::2], got[1::2], strict=True)]
    return out


def conversation_from(conv_id: str, h: dict[bytes, bytes], tags: set[bytes]
                      ) -> Conversation | None:
    """A conversation from its hash and tags as Redis returns them (None: no hash)."""
    if not h:
        return None
    return Conversation.from_hash(conv_id, {k.decode(): v.decode() for k, v in h.items()},
                                  [t.decode() for t in tags])


def list_conversations(hub: Hub, queue: str | None, status: str | None, cursor: str | None,
                       limit: int) -> Page:
    """Conversations of a queue (priority order) or of a status (latest activity first)."""
    if status is not None and status not in ConversationStatus._value2member_map_:
        raise BadRequest(f"status must be one of {', '.join(ConversationStatus)}")
    if queue is not None:
        if queue not in hub.config.hub.routing.queues:
            raise NotFound(f"no queue {queue!r}")
        rows, nxt = _zpage(hub, hub.keys.queue(queue), cursor, limit, desc=False)
    else:
        rows, nxt = _zpage(hub, hub.keys.conversations_by_status(status or "open"), cursor,
                           limit, desc=True)
    convs = [get_conversation(hub, cid) for cid, _ in rows]
    if queue is not None and status is not None:
        convs = [c for c in convs if c.status.value == status]
    return Page(convs, nxt)


def message_page(hub: Hub, conv_id: str, before: str | None, limit: int) -> Page:
    """The newest ``limit`` messages before the cursor, newest first."""
    rows, nxt = _zpage(hub, hub.keys.timeline(conv_id), before, limit, desc=True)
    if not rows:
        if not hub.redis.exists(hub.keys.conversation(conv_id)):
            raise NotFound(f"no conversation {conv_id}")
        return Page([], None)
    blobs = hub.redis.hmget(hub.keys.messages(conv_id), [m for m, _ in rows])
    return Page([reveal(hub, Message.from_blob(m, conv_id, b))
                 for (m, _), b in zip(rows, blobs) if b], nxt)


def get_message(hub: Hub, conv_id: str, msg_id: str) -> Message:
    blob = hub.redis.hget(hub.keys.messages(conv_id), msg_id)
    if blob is None:
        raise NotFound(f"no message {msg_id} in conversation {conv_id}")
    return reveal(hub, Message.from_blob(msg_id, conv_id, blob))


def seal_text(hub: Hub, text: str | None, subject: SubjectKey = None,
              purpose: bytes = b"text") -> str | None:
    """Message text (or a mail's subject) as stored: encrypted when
    ``security.encrypt_message_text`` is on (with the customer identity's own key, so erasing
    them makes it unreadable everywhere)."""
    if text and hub.config.hub.security.encrypt_message_text:
        return hub.keyring.encrypt_text(text, purpose, subject)
    return text


def seal_attachments(hub: Hub, attachments: list[Attachment],
                     subject: SubjectKey = None) -> list[Attachment]:
    """Attachments as stored: contact cards carry phones, names and addresses, encrypted."""
    out = []
    names = hub.config.hub.security.encrypt_message_text  # file names say as much as text
    for a in attachments:
        if a.kind == "contact" and a.meta:
            sealed = hub.keyring.encrypt_text(orjson.dumps(a.meta).decode(), b"contact", subject)
            a = Attachment(a.kind, a.url, a.file_id, a.name, a.mime, a.size, {"enc": sealed})
        if names and a.name:
            a = Attachment(a.kind, a.url, a.file_id,
                           hub.keyring.encrypt_text(a.name, b"filename", subject), a.mime,
                           a.size, a.meta, a.data)
        out.append(a)
    return out


def stored_user(hub: Hub, channel_id: str, user: str) -> str:
    """An event sender's user id as stored: a blind index on channels whose user ids are
    personal data (a mail address), so equal addresses still meet."""
    adapter = hub.adapters.get(channel_id)
    if adapter is not None and adapter.user_ids_are_personal:
        return hub.keyring.blind_index(f"user:{adapter.name}", user)
    return user


def identity_of(hub: Hub, channel_id: str, user: str, address: str | None,
                subject: SubjectKey = None, stored: str | None = None) -> tuple[str, str]:
    """(user, reply address) as stored for an event's sender: on channels whose user ids are
    personal data the address is encrypted (with the identity's own key when given).
    ``stored``: the user id as stored, when the caller worked it out already."""
    stored = stored if stored is not None else stored_user(hub, channel_id, user)
    if stored != user:
        return stored, hub.keyring.encrypt_text(address or user, b"address", subject)
    return user, address or user


def reveal_address(hub: Hub, address: str) -> str:
    """A stored reply address in clear (see :func:`identity_of`)."""
    if address.startswith(TEXT_PREFIX):
        return hub.keyring.decrypt_text(address, b"address") or ""
    return address


def keep_files(hub: Hub, attachments: list[Attachment],
               subject: SubjectKey = None) -> list[Attachment]:
    """Attachments whose bytes came inline go to the blob store; the message keeps the id
    and the content's SHA-256."""
    out = []
    for a in attachments:
        if a.data is not None:
            if len(a.data) > hub.config.hub.storage.max_blob_bytes:
                a = Attachment(a.kind, a.url, None, a.name, a.mime, len(a.data),
                               {**a.meta, "dropped": "over storage.max_blob_bytes; the raw "
                                "log has the original until it is trimmed"})
            else:
                a = Attachment(a.kind, a.url, hub.blobs.put(a.data, subject), a.name, a.mime,
                               len(a.data), {**a.meta,
                                             "sha256": hashlib.sha256(a.data).hexdigest()})
        out.append(a)
    return out


def reveal(hub: Hub, msg: Message) -> Message:
    """Undo ``seal_text`` and ``seal_attachments`` (text sealed while the switch was on
    stays readable after it is turned off)."""
    k = hub.keyring
    if msg.text and msg.text.startswith(TEXT_PREFIX):
        msg.text = k.decrypt_text(msg.text, b"text")
    if msg.subject and msg.subject.startswith(TEXT_PREFIX):
        msg.subject = k.decrypt_text(msg.subject, b"subject")
    for a in msg.attachments:
        if a.name and a.name.startswith(TEXT_PREFIX):
            a.name = k.decrypt_text(a.name, b"filename")
        if a.kind == "contact" and "enc" in a.meta:
            card = k.decrypt_text(a.meta["enc"], b"contact")
            a.meta = orjson.loads(card) if card else {"erased": True}
    return msg


def get_customer(hub: Hub, customer_id: str) -> Customer:
    """A customer with their identities on every channel and the identifiers they shared."""
    pipe = hub.redis.pipeline(transaction=False)
    pipe.hgetall(hub.keys.customer(customer_id))
    pipe.hgetall(hub.keys.customer_identities(customer_id))
    pipe.hgetall(hub.keys.customer_identifiers(customer_id))
    h, idents, idfs = pipe.execute()
    if not h:
        raise NotFound(f"no customer {customer_id}")
    h = {k.decode(): v.decode() for k, v in h.items()}
    keyring = hub.keyring
    identities = []
    for key, address in sorted(idents.items()):
        channel, _, user = key.decode().partition("|")
        identities.append(Identity(channel, user, reveal_address(hub, address.decode())))
    identifiers = []
    for key, val in sorted(idfs.items()):
        kind = key.decode().partition(":")[0]
        verified, source, _ts, sealed = (val.decode().split("|", 3) + ["", "", ""])[:4]
        identifiers.append({"kind": kind, "value": keyring.decrypt_text(sealed, b"identifier"),
                            "verified": verified == "1", "source": source})
    return Customer(customer_id, keyring.decrypt_text(h.get("name"), b"name"), h.get("picture"),
                    int(h.get("created", 0)), h.get("conv"), identities, identifiers,
                    h.get("merged_into"), int(h["erased"]) if "erased" in h else None)


def set_status(hub: Hub, conv_id: str, status: ConversationStatus,
               line: Message | None = None) -> Conversation:
    """Resolve or reopen a conversation: its status, the status indexes and its queue change
    together (one MULTI), so lists never show it in two states. ``line``: a timeline line
    saying so, written in the same MULTI (only when the status changes)."""
    conv = get_conversation(hub, conv_id)
    if conv.status == status:
        return conv
    k, ck = hub.keys, hub.keys.conversation(conv_id)
    mid = str(hub.redis.incr(k.seq("message"))) if line is not None else ""

    # WATCHed: a transfer moving the queue, or a second resolve, between our read and write
    # would otherwise leave it queued where it no longer is, or report the change twice
    def change(pipe) -> None:
        cur, queue, prio, created = pipe.hmget(ck, ["status", "queue", "priority", "created"])
        if cur is None or cur.decode() == status.value:
            return
        queue = queue.decode()
        now = now_ms()
        pipe.multi()
        for s in ConversationStatus:
            if s != status:
                pipe.zrem(k.conversations_by_status(s.value), conv_id)
        pipe.zadd(k.conversations_by_status(status.value), {conv_id: now})
        if status == ConversationStatus.RESOLVED:
            pipe.hset(ck, mapping={"status": status.value, "resolved_at": now, "updated": now})
            pipe.zrem(k.queue(queue), conv_id)
            # nothing is owed on a resolved conversation: no unread badge, no SLA wait
            # (core/sla.py)
            pipe.zrem(k.unread(), conv_id)
            pipe.zrem(k.sla_due(), conv_id)
            pipe.zrem(k.sla_warn(), conv_id)
            pipe.hdel(ck, "sla_due", "sla_breached", "sla_warn", "sla_warned", "sla_policy",
                      "sla_target")
        else:
            pipe.hset(ck, mapping={"status": status.value, "updated": now})
            pipe.hdel(ck, "resolved_at")
            # the queue's order: priority first, then age (as core/lua/ingest.lua files it)
            pipe.zadd(k.queue(queue), {conv_id: (100 - int(prio or 0)) * 1e13 + int(created)})
        # the assignee's load (core/assignment.py): in this MULTI, so it sees the assignee of now
        hub.scripts.sync_load(keys=[ck], args=[conv_id], client=pipe)
        if line is not None:
            pipe.hset(k.messages(conv_id), mid, line.to_blob())
            pipe.zadd(k.timeline(conv_id), {mid: line.received_ts_ms})
        feed.publish(hub, {"type": f"conversation.{status.value}", "conversation_id": conv_id,
                           "ts": now}, pipe)

    hub.redis.transaction(change, ck)
    return get_conversation(hub, conv_id)
