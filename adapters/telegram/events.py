"""Reading Telegram webhook updates: one ``Update`` as one normalised event.

Updates are read as plain dicts. Message content not understood (a poll, dice) comes back as
``UNSUPPORTED``, kept for the agent; an update that carries nothing the hub can mean (only an
``update_id``, or a kind of update we never asked for) is no event at all: answered 200 and
dropped, not a dead letter nobody can fix.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from typing import Any

from tongdai.adapters.base import load_json_object
from tongdai.core.errors import PayloadError
from tongdai.core.models import Attachment, EventKind, IdentifierClaim, InboundEvent

JSON = dict[str, Any]


def _load(body: bytes) -> JSON:
    return load_json_object(body, "Telegram update")


def _name(user: JSON) -> str:
    full = " ".join(p for p in (user.get("first_name"), user.get("last_name")) if p)
    return full or user.get("title") or user.get("username") or str(user.get("id", "?"))


def _pick(obj: JSON, keys: tuple[str, ...]) -> JSON:
    return {k: obj[k] for k in keys if obj.get(k) is not None}


def _event(kind: EventKind, key: str, who: JSON, ts_ms: int, **fields: Any) -> InboundEvent:
    """An event from ``who`` (a User, or a Chat for channel posts), with its profile."""
    name = _name(who) if who else None
    profile = {"name": name, "username": who.get("username"), "language": who.get("language_code")}
    profile = {k: v for k, v in profile.items() if v}
    return InboundEvent(kind, key, str(who.get("id", "unknown")), ts_ms, profile=profile, **fields)


def _ts_ms(obj: JSON, field: str, received_ms: int) -> int:
    return obj[field] * 1000 if obj.get(field) else received_ms


# field -> (attachment kind, name keys, meta keys). One media field per message; the first hit
# wins, which also skips the legacy twin Telegram sends along (animation + document).
_MEDIA: tuple[tuple[str, str, tuple[str, ...], tuple[str, ...]], ...] = (
    ("photo", "image", (), ("width", "height")),
    ("sticker", "sticker", (), ("emoji", "set_name")),
    ("animation", "animation", ("file_name",), ("duration", "width", "height")),
    ("video", "video", ("file_name",), ("duration", "width", "height")),
    ("video_note", "video_note", (), ("duration", "length")),
    ("voice", "voice", (), ("duration",)),
    ("audio", "audio", ("file_name", "title"), ("duration", "performer")),
    ("document", "file", ("file_name",), ()),
)
_LAT_LON = ("latitude", "longitude")


def _attachments(msg: JSON) -> list[Attachment]:
    for field, kind, name_keys, meta_keys in _MEDIA:
        if not (obj := msg.get(field)):
            continue
        if field == "photo":  # a list of sizes: keep the largest
            obj = max(obj, key=lambda s: s.get("width", 0) * s.get("height", 0))
        meta = _pick(obj, meta_keys)
        if obj.get("file_unique_id"):  # absent from pre-2019 payloads
            meta["unique_id"] = obj["file_unique_id"]
        name = next((obj[k] for k in name_keys if obj.get(k)), None)
        found = Attachment(kind, file_id=obj.get("file_id"), name=name, meta=meta)
        found.mime, found.size = obj.get("mime_type"), obj.get("file_size")
        return [found]
    if venue := msg.get("venue"):  # venues carry a plain `location` too: look at them first
        meta = _pick(venue.get("location") or {}, _LAT_LON) | _pick(venue, ("title", "address"))
        return [Attachment("location", meta=meta)]
    if location := msg.get("location"):
        return [Attachment("location", meta=_pick(location, _LAT_LON))]
    return []


def _contact(ev: InboundEvent, msg: JSON) -> None:
    contact = msg["contact"]
    keys = ("phone_number", "first_name", "last_name", "user_id")
    ev.kind = EventKind.CONTACT_SHARED
    ev.attachments = [Attachment("contact", meta=_pick(contact, keys))]
    # Telegram fills user_id with the sender's id only when they share their own number.
    owner = contact.get("user_id")
    verified = owner is not None and owner == (msg.get("from") or {}).get("id")
    ev.identifier = IdentifierClaim("phone", contact["phone_number"], verified, "telegram_contact")


# Group service messages: field -> short English line for the timeline (first match wins).
_SERVICE: dict[str, Callable[[Any], str]] = {
    "new_chat_members": lambda users: ", ".join(_name(u) for u in users) + " joined",
    "new_chat_member": lambda u: f"{_name(u)} joined",
    "left_chat_member": lambda u: f"{_name(u)} left",
    "new_chat_title": lambda title: f"title changed to {title}",
    "new_chat_photo": lambda _: "chat photo changed",
    "delete_chat_photo": lambda _: "chat photo removed",
    "group_chat_created": lambda _: "group created",
    "supergroup_chat_created": lambda _: "supergroup created",
    "channel_chat_created": lambda _: "channel created",
    "pinned_message": lambda _: "message pinned",
    "migrate_to_chat_id": lambda chat: f"group moved to supergroup {chat}",
    "migrate_from_chat_id": lambda chat: f"supergroup created from group {chat}",
}
# Message keys that are envelope, not content: the first other key names what a message holds.
_ENVELOPE = re.compile(
    r"message_id|message_thread_id|from|sender_chat|chat|date|edit_date|reply_to_message|via_bot"
    r"|.*entities|media_group_id|reply_markup|author_signature|forward_.*|is_.*|has_.*"
)


def _ids(msg: Any, what: str) -> tuple[str, int]:
    chat, mid = (msg.get("chat"), msg.get("message_id")) if isinstance(msg, dict) else (0, 0)
    if not isinstance(chat, dict) or "id" not in chat or not isinstance(mid, int):
        raise PayloadError(f"Telegram {what} lacks chat.id or message_id: not a Message object")
    return str(chat["id"]), mid


def _message(msg: JSON, received_ms: int, what: str = "message") -> InboundEvent:
    """A message as MESSAGE, CONTACT_SHARED, SYSTEM or UNSUPPORTED (edits reuse it)."""
    chat_id, mid = _ids(msg, what)
    reply = msg.get("reply_to_message")
    # Channel posts have no `from`: the chat itself speaks.
    ev = _event(
        EventKind.MESSAGE,
        f"m:{chat_id}:{mid}",
        msg.get("from") or msg["chat"],
        _ts_ms(msg, "date", received_ms),
        address=chat_id,
        external_message_id=str(mid),
        text=msg.get("text") or msg.get("caption"),
        attachments=_attachments(msg),
        reply_to=f"m:{chat_id}:{reply['message_id']}" if reply else None,
        platform_type="message",
    )
    # In a forum supergroup: the topic it was posted in (message_thread_id alone also marks
    # plain reply threads, so only ``is_topic_message`` counts).
    if msg.get("is_topic_message") and msg.get("message_thread_id") is not None:
        ev.topic_id = str(msg["message_thread_id"])
    if ev.text is not None or ev.attachments:
        return ev
    if "contact" in msg:
        _contact(ev, msg)
    elif service := next((f for f in _SERVICE if f in msg), None):
        ev.kind, ev.platform_type = EventKind.SYSTEM, service
        ev.text = _SERVICE[service](msg[service])
    else:  # a poll, dice, game...: kept and counted
        ev.kind = EventKind.UNSUPPORTED
        ev.platform_type = next((k for k in msg if not _ENVELOPE.fullmatch(k)), "message")
    return ev


def _edit(msg: JSON, _key: str, received_ms: int) -> InboundEvent:
    ev = _message(msg, received_ms, "edited_message")
    chat_id, mid = _ids(msg, "edited_message")
    edited = msg.get("edit_date") or msg.get("date") or received_ms // 1000
    ev.kind, ev.platform_type, ev.identifier = EventKind.EDIT, "edited_message", None
    ev.dedupe_key, ev.target_ids = f"e:{chat_id}:{mid}:{edited}", [f"m:{chat_id}:{mid}"]
    ev.platform_ts_ms = edited * 1000
    return ev


def _callback(cb: JSON, _key: str, received_ms: int) -> InboundEvent:
    # Callbacks carry no date: the time we received it is the best there is.
    ev = _event(
        EventKind.POSTBACK,
        f"cb:{cb['id']}",
        cb.get("from") or {},
        received_ms,
        payload=cb.get("data"),
        platform_type="callback_query",
        ack=str(cb["id"]),  # Telegram shows a spinner until answerCallbackQuery
    )
    ev.address = ev.external_user_id
    if msg := cb.get("message"):  # absent under inline-mode messages
        chat_id, mid = _ids(msg, "callback_query.message")
        ev.address, ev.target_ids = chat_id, [f"m:{chat_id}:{mid}"]
    return ev


_BOT_STATUS = {"kicked": EventKind.UNFOLLOW, "left": EventKind.UNFOLLOW}
_BOT_STATUS |= dict.fromkeys(("member", "administrator", "restricted"), EventKind.FOLLOW)


def _member(upd: JSON, key: str, received_ms: int) -> InboundEvent:
    status = upd["new_chat_member"]["status"]
    kind = _BOT_STATUS.get(status, EventKind.UNSUPPORTED)
    return _event(
        kind,
        key,
        upd.get("from") or {},
        _ts_ms(upd, "date", received_ms),
        address=str(upd["chat"]["id"]),
        text=f"bot status: {status}",
        platform_type="my_chat_member",
    )


def _reaction(upd: JSON, key: str, received_ms: int) -> InboundEvent:
    chat_id, mid = _ids(upd, "message_reaction")
    first = (upd.get("new_reaction") or [None])[0]  # empty: the reaction was removed
    who = upd.get("user") or upd.get("actor_chat") or {}  # actor_chat: anonymous admins
    return _event(
        EventKind.REACTION,
        key,
        who,
        _ts_ms(upd, "date", received_ms),
        address=chat_id,
        target_ids=[f"m:{chat_id}:{mid}"],
        reaction=(first.get("emoji") or first.get("type")) if first else None,
        platform_type="message_reaction",
    )


_HANDLERS: dict[str, Callable[[JSON, str, int], InboundEvent]] = {
    "message": lambda msg, _key, received_ms: _message(msg, received_ms),
    "edited_message": _edit,
    "callback_query": _callback,
    "my_chat_member": _member,
    "message_reaction": _reaction,
}


def parse_update(body: bytes, received_ms: int) -> list[InboundEvent]:
    """Normalise one webhook body (one Telegram ``Update``) into events: none for an update
    with no content, or of a kind the hub does not handle (``ALLOWED_UPDATES`` asks for the
    ones it does; a bot set up by hand also gets channel posts, polls, inline queries...)."""
    update = _load(body)
    field = next((k for k in update if k != "update_id" and update[k] not in (None, {}, [])),
                 None)
    if field is None or field not in _HANDLERS:
        return []
    obj, uid = update[field], update.get("update_id")
    # Without update_id (hand-made payloads) the body's hash stands in: redeliveries repeat it.
    key = f"u:{uid}"
    if uid is None:
        key = "b:" + hashlib.blake2b(body, digest_size=12).hexdigest()
    handler = _HANDLERS[field]
    if not isinstance(obj, dict):
        raise PayloadError(f"Telegram update field {field!r} is not an object")
    try:
        return [handler(obj, key, received_ms)]
    except (KeyError, TypeError, AttributeError) as e:  # a required part missing or mistyped
        raise PayloadError(f"Telegram {field} is malformed ({type(e).__name__}: {e})") from None
