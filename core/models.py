"""The conversation model: what every platform's events are normalised into.

Adapters build :class:`InboundEvent` lists; the ingest pipeline turns them into
:class:`Message` records inside :class:`Conversation` timelines of a :class:`Customer`.
Messages are stored as compact blobs (short keys, empty fields omitted) because a support hub
holds millions of them: see ``docs/redis-schema.md``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, ClassVar

import orjson

from tongdai.core.luajson import lua_exact


class EventKind(StrEnum):
    MESSAGE = "message"
    EDIT = "edit"
    REACTION = "reaction"
    DELIVERY = "delivery"
    READ = "read"
    POSTBACK = "postback"
    FOLLOW = "follow"
    UNFOLLOW = "unfollow"
    CONTACT_SHARED = "contact_shared"
    AUTO_REPLY = "auto_reply"  # an out-of-office or other automatic mail: kept, never reopens
    COMPLAINT = "complaint"  # the customer reported our mail as spam: no more mail to them
    SYSTEM = "system"  # group service messages and the like: kept in the timeline, not routed
    UNSUPPORTED = "unsupported"  # kept, counted, never dropped


class Direction(StrEnum):
    IN = "in"
    OUT = "out"
    INTERNAL = "internal"  # private notes and system lines: never sent to the customer


class AuthorKind(StrEnum):
    CUSTOMER = "customer"
    AGENT = "agent"
    BOT = "bot"
    SYSTEM = "system"


class ConversationStatus(StrEnum):
    OPEN = "open"
    PENDING = "pending"
    RESOLVED = "resolved"


class DeliveryStatus(StrEnum):
    RECEIVED = "received"  # inbound messages
    QUEUED = "queued"  # outbound, waiting for the send job
    UNCERTAIN = "uncertain"  # got by the platform, never answered: may have arrived; final
    SENT = "sent"
    DELAYED = "delayed"  # the mail server reported a delay; it keeps trying
    DELIVERED = "delivered"
    READ = "read"
    FAILED = "failed"


# Events that create a timeline entry and may open or reopen a conversation.
TIMELINE_KINDS = frozenset(
    {EventKind.MESSAGE, EventKind.POSTBACK, EventKind.CONTACT_SHARED, EventKind.UNSUPPORTED}
)
# Events that only add a system line to an existing conversation (never open one).
NOTICE_KINDS = frozenset({EventKind.FOLLOW, EventKind.UNFOLLOW, EventKind.SYSTEM,
                          EventKind.AUTO_REPLY, EventKind.COMPLAINT})
# Events that change an existing message.
UPDATE_KINDS = frozenset(
    {EventKind.EDIT, EventKind.REACTION, EventKind.DELIVERY, EventKind.READ}
)


@dataclass(slots=True)
class Attachment:
    """Metadata of a file, image, sticker, location... never the bytes themselves."""

    kind: str  # image | audio | voice | video | video_note | file | sticker | location | contact
    url: str | None = None
    file_id: str | None = None  # the platform's handle, to fetch it later
    name: str | None = None
    mime: str | None = None
    size: int | None = None
    meta: dict[str, Any] = field(default_factory=dict)
    # The bytes, when the platform delivered them inline (mail): the core moves them to the
    # blob store and keeps only ``file_id`` ("blob:<sha256>"). Never serialised.
    data: bytes | None = None

    def to_dict(self) -> dict[str, Any]:
        d = {"kind": self.kind}
        for k in ("url", "file_id", "name", "mime", "size"):
            v = getattr(self, k)
            if v is not None:
                d[k] = v
        if self.meta:
            d["meta"] = lua_exact(self.meta)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Attachment:
        return cls(
            kind=d["kind"],
            url=d.get("url"),
            file_id=d.get("file_id"),
            name=d.get("name"),
            mime=d.get("mime"),
            size=d.get("size"),
            meta=d.get("meta") or {},
        )


@dataclass(slots=True)
class IdentifierClaim:
    """A phone number or e-mail address a customer shared.

    ``verified`` is true only when the platform vouches that it belongs to the sender
    (e.g. a Telegram contact whose ``user_id`` equals the sender's id).
    """

    kind: str  # phone | email
    value: str
    verified: bool
    source: str


@dataclass(slots=True)
class InboundEvent:
    """One normalised platform event. Adapters return a list of these per raw request."""

    kind: EventKind
    dedupe_key: str  # unique per channel for as long as the platform can redeliver
    external_user_id: str  # who (the customer on the platform)
    platform_ts_ms: int
    address: str | None = None  # where replies go, when not the user id (e.g. a group chat)
    external_message_id: str | None = None  # the platform's id of the message (edits, replies)
    direction: Direction = Direction.IN
    text: str | None = None
    attachments: list[Attachment] = field(default_factory=list)
    reply_to: str | None = None  # external id of the message this one answers
    target_ids: list[str] = field(default_factory=list)  # messages an update applies to
    watermark_ms: int | None = None  # delivery/read: everything up to this time
    reaction: str | None = None
    payload: str | None = None  # postback / callback data
    profile: dict[str, Any] = field(default_factory=dict)  # display name, username, language
    identifier: IdentifierClaim | None = None
    platform_type: str | None = None  # the platform's own name for this event (kept for audit)
    # The platform account the event belongs to (a Page id, an OA id) when one webhook URL
    # serves several: the core files it under the channel configured for that account.
    account_id: str | None = None
    # A token the platform wants acknowledged out of band (Telegram's callback query id):
    # the core has a sender answer it through ``Adapter.acknowledge``, off the ingest path.
    ack: str | None = None
    # Mail threading: None for chat platforms (the customer's current conversation is used).
    # For mail, the candidates in order of trust: "k:<dedupe key>" (a Message-ID we stored),
    # "t:<reply token>" (checked by the core), "c:<conversation id>" (a [#id] subject tag). A
    # candidate counts only when its conversation belongs to the sender; none → a new one.
    thread: list[str] | None = None
    subject: str | None = None
    # Delivery reports: "failed" / "delayed" with the server's reason (DELIVERY events).
    delivery_status: str | None = None
    status_reason: str | None = None
    # Telegram forum topic (message_thread_id) a group message was posted in; the staff group
    # (core/staffgroup.py) maps topics to conversations. None outside forum topics.
    topic_id: str | None = None
    # What this event is, for an admin, when it must not vanish if the core finds nothing to
    # attach it to (automatic mail from a sender without a conversation, a bounce naming no
    # mail of ours): it becomes a dead letter saying so. None: such events are skipped.
    unmatched: str | None = None


@dataclass(slots=True)
class Message:
    """A timeline entry. ``id`` and ``conversation_id`` live in the Redis keys, not the blob."""

    id: str
    conversation_id: str
    direction: Direction
    author_kind: AuthorKind
    channel_id: str
    platform_ts_ms: int
    received_ts_ms: int
    kind: str = EventKind.MESSAGE.value
    text: str | None = None
    author_id: str | None = None  # agent id for outbound agent messages
    external_id: str | None = None
    attachments: list[Attachment] = field(default_factory=list)
    status: DeliveryStatus = DeliveryStatus.RECEIVED
    status_reason: str | None = None
    # the sender's reason in parts a console translates: {"code": retrying | uncertain | failed
    # | ..., "detail": the platform's or adapter's words, ...}; None: the reason came from elsewhere
    status_why: dict[str, Any] | None = None
    tags: list[str] = field(default_factory=list)
    reply_to: str | None = None
    edited_ts_ms: int | None = None
    reactions: dict[str, str] = field(default_factory=dict)  # reactor -> emoji
    payload: str | None = None
    address: str | None = None  # outbound: the platform address it goes to
    subject: str | None = None  # mail
    identity: str | None = None  # inbound: the "channel|user" that wrote it (splits use it)

    # Blob field names: short, because they are repeated in every stored message.
    _BLOB: ClassVar[dict[str, str]] = {
        "direction": "d",
        "author_kind": "a",
        "channel_id": "c",
        "platform_ts_ms": "t",
        "received_ts_ms": "r",
        "kind": "k",
        "text": "x",
        "author_id": "ai",
        "external_id": "e",
        "status": "s",
        "status_reason": "sr",
        "status_why": "sw",
        "tags": "g",
        "reply_to": "rt",
        "edited_ts_ms": "ed",
        "reactions": "re",
        "payload": "p",
        "address": "ad",
        "subject": "sj",
        "identity": "u",
    }

    def to_blob(self) -> bytes:
        """Serialise for Redis: short keys, empty fields left out."""
        d: dict[str, Any] = {}
        for name, short in self._BLOB.items():
            v = getattr(self, name)
            if v is None or v == [] or v == {}:
                continue
            d[short] = lua_exact(v) if short == "sw" else v
        # The commonest values are the defaults ``from_blob`` restores: not stored.
        if d.get("k") == EventKind.MESSAGE.value:
            del d["k"]
        if d.get("s") == DeliveryStatus.RECEIVED.value:
            del d["s"]
        if self.attachments:
            d["at"] = [a.to_dict() for a in self.attachments]
        return orjson.dumps(d)

    @classmethod
    def from_blob(cls, message_id: str, conversation_id: str, blob: bytes | str) -> Message:
        d = orjson.loads(blob)
        return cls(
            id=message_id,
            conversation_id=conversation_id,
            direction=Direction(d["d"]),
            author_kind=AuthorKind(d["a"]),
            channel_id=d["c"],
            platform_ts_ms=d["t"],
            received_ts_ms=d["r"],
            kind=d.get("k", EventKind.MESSAGE.value),
            text=d.get("x"),
            author_id=d.get("ai"),
            external_id=d.get("e"),
            attachments=[Attachment.from_dict(a) for a in d.get("at", ())],
            status=DeliveryStatus(d.get("s", DeliveryStatus.RECEIVED.value)),
            status_reason=d.get("sr"),
            status_why=d.get("sw"),
            tags=d.get("g", []),
            reply_to=d.get("rt"),
            edited_ts_ms=d.get("ed"),
            reactions=d.get("re", {}),
            payload=d.get("p"),
            address=d.get("ad"),
            subject=d.get("sj"),
            identity=d.get("u"),
        )

    def to_api(self) -> dict[str, Any]:
        """The public JSON shape (API, console, outgoing webhooks)."""
        return {
            "id": self.id,
            "conversation_id": self.conversation_id,
            "direction": self.direction.value,
            "author": {"kind": self.author_kind.value, "id": self.author_id},
            "channel_id": self.channel_id,
            "kind": self.kind,
            "text": self.text,
            "attachments": [a.to_dict() for a in self.attachments],
            "status": self.status.value,
            "status_reason": self.status_reason,
            "status_why": self.status_why,
            "external_id": self.external_id,
            "reply_to": self.reply_to,
            "tags": self.tags,
            "reactions": self.reactions,
            "payload": self.payload,
            "subject": self.subject,
            "platform_ts": self.platform_ts_ms,
            "received_ts": self.received_ts_ms,
            "edited_ts": self.edited_ts_ms,
        }


@dataclass(slots=True)
class Conversation:
    id: str
    customer_id: str
    channel_id: str  # the channel the customer last wrote on
    address: str  # where a reply on that channel goes (platform user or chat id)
    status: ConversationStatus
    queue: str
    priority: int
    assignee: str | None
    tags: list[str]
    created_ts_ms: int
    updated_ts_ms: int
    last_inbound_ts_ms: int | None
    resolved_ts_ms: int | None = None
    escalated: bool = False  # above the tier it entered (core/workspace/tiers.py)
    snoozed_until_ts_ms: int | None = None  # while pending: core/workflow.py snooze
    priority_reason: str | None = None  # the rule that set the priority (core/pipeline/priority.py)

    @classmethod
    def from_hash(cls, conv_id: str, h: dict[str, str], tags: list[str]) -> Conversation:
        def opt_int(k: str) -> int | None:
            v = h.get(k)
            return int(v) if v not in (None, "") else None

        return cls(
            id=conv_id,
            customer_id=h["customer"],
            channel_id=h["channel"],
            address=h.get("address", ""),
            status=ConversationStatus(h["status"]),
            queue=h["queue"],
            priority=int(h.get("priority", 0)),
            assignee=h.get("assignee") or None,
            tags=sorted(tags),
            created_ts_ms=int(h["created"]),
            updated_ts_ms=int(h["updated"]),
            last_inbound_ts_ms=opt_int("last_in"),
            resolved_ts_ms=opt_int("resolved_at"),
            escalated=h.get("escalated") == "1",
            snoozed_until_ts_ms=(opt_int("snoozed_until")
                                 if h["status"] == ConversationStatus.PENDING.value else None),
            priority_reason=h.get("priority_why") or None,
        )

    def to_api(self) -> dict[str, Any]:
        return {
            "id": self.id, "customer_id": self.customer_id, "channel_id": self.channel_id,
            "status": self.status.value, "queue": self.queue, "assignee": self.assignee,
            "tags": self.tags, "priority": self.priority, "created_ts": self.created_ts_ms,
            "updated_ts": self.updated_ts_ms, "last_inbound_ts": self.last_inbound_ts_ms,
            "resolved_ts": self.resolved_ts_ms, "escalated": self.escalated,
            "snoozed_until_ts": self.snoozed_until_ts_ms, "priority_reason": self.priority_reason,
        }


@dataclass(slots=True)
class Identity:
    """A customer's account on one channel: (channel id, external user id) → customer."""

    channel_id: str
    external_user_id: str
    address: str  # where replies on that channel go

    def to_api(self) -> dict[str, Any]:
        return {"channel_id": self.channel_id, "external_user_id": self.external_user_id,
                "address": self.address}


@dataclass(slots=True)
class Customer:
    id: str
    name: str | None
    picture: str | None
    created_ts_ms: int
    current_conversation_id: str | None
    identities: list[Identity]
    identifiers: list[dict[str, Any]]  # {kind, value, verified, source}
    merged_into: str | None = None  # merged into that customer (until split)
    erased_ts_ms: int | None = None  # erased on request: only counts are left

    def to_api(self) -> dict[str, Any]:
        return {"id": self.id, "name": self.name, "picture": self.picture,
                "created_ts": self.created_ts_ms, "merged_into": self.merged_into,
                "erased_ts": self.erased_ts_ms,
                "current_conversation_id": self.current_conversation_id,
                "identities": [i.to_api() for i in self.identities],
                "identifiers": self.identifiers}


@dataclass(slots=True)
class RawEvent:
    """A request as it reached the webhook, before any parsing: what the raw log keeps."""

    channel_id: str
    body: bytes
    headers: dict[str, str]
    received_ts_ms: int
    id: str | None = None  # the raw log's entry id, once stored
