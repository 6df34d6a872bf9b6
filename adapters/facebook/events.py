"""Reading Page webhook bodies: every ``entry[]`` item as one normalised event.

Bodies are read as plain dicts; anything not understood comes back as ``UNSUPPORTED``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson

from tongdai.adapters.base import load_json_object
from tongdai.core.errors import PayloadError
from tongdai.core.models import Attachment, Direction, EventKind, InboundEvent

JSON = dict[str, Any]
# The webhook fields the hub understands (docs/connect-facebook.md subscribes these).
SUBSCRIBED_FIELDS = [
    "messages",
    "message_echoes",
    "message_deliveries",
    "message_reads",
    "message_reactions",
    "message_edits",
    "messaging_postbacks",
]
USER_REF = "user_ref:"  # prefix of customers known by a plugin's user_ref instead of a PSID


def _load(body: bytes) -> JSON:
    """The body as a dict, or PayloadError when it is not a Page webhook."""
    update = load_json_object(body, "Messenger webhook body")
    if update.get("object") != "page":
        raise PayloadError(
            f'this channel takes Page webhooks ("object": "page"), got {update.get("object")!r}'
            ": point only the app's Page subscription at this URL"
        )
    if not isinstance(update.get("entry"), list):
        raise PayloadError('a Messenger webhook body has an "entry" list')
    return update


def _ms(value: Any) -> int | None:
    """A Meta timestamp in ms. Dashboard test events send seconds, as text: both are read."""
    if isinstance(value, str) and value.isdigit():
        value = int(value)
    if not isinstance(value, int) or isinstance(value, bool):
        return None
    return value * 1000 if 0 < value < 10**11 else value


def _party(item: JSON, role: str) -> str | None:
    """A sender or recipient: its PSID/Page id, or ``user_ref:...`` for plugin guests."""
    who = item.get(role)
    if not isinstance(who, dict):
        return None
    if who.get("id") is not None:
        return str(who["id"])
    return f"{USER_REF}{who['user_ref']}" if who.get("user_ref") else None


@dataclass(slots=True)
class _Item:
    """The envelope every messaging item shares."""

    sender: str
    recipient: str
    ts_ms: int
    field: str


def _event(
    it: _Item, kind: EventKind, key: str, customer: str | None = None, **fields: Any
) -> InboundEvent:
    who = customer or it.sender
    return InboundEvent(kind, key, who, it.ts_ms, address=who, platform_type=it.field, **fields)


_MEDIA = {
    "image": "image",
    "audio": "audio",
    "video": "video",
    "file": "file",
    "reel": "video",
    "ig_reel": "video",
}


def _attachment(att: JSON, msg: JSON) -> Attachment:
    kind = att.get("type")
    payload = att.get("payload") if isinstance(att.get("payload"), dict) else {}
    url = payload.get("url") or att.get("url")
    # Stickers came as images carrying a sticker_id (on the payload, or in 2016 on the
    # message); since June 2026 also as type "sticker" (changelog).
    sticker_id = payload.get("sticker_id") or (msg.get("sticker_id") if kind == "image" else None)
    if kind == "sticker" or (kind == "image" and sticker_id):
        return Attachment("sticker", url=url, meta={"sticker_id": sticker_id} if sticker_id else {})
    if kind in _MEDIA:
        return Attachment(
            _MEDIA[kind], url=url, meta={} if kind == _MEDIA[kind] else {"type": kind}
        )
    title = att.get("title") or payload.get("title")
    if kind == "location":  # legacy: Meta stopped sending locations, old payloads have them
        coords = payload.get("coordinates") or {}
        meta = {"latitude": coords.get("lat"), "longitude": coords.get("long"), "title": title}
        return Attachment(
            "location", url=url, meta={k: v for k, v in meta.items() if v is not None}
        )
    if kind in ("fallback", "share"):  # a shared link
        return Attachment("link", url=url, meta={"title": title} if title else {})
    if kind == "template":  # echoes of the Page's own templates
        return Attachment("template", name=title, meta=payload)
    return Attachment("file", url=url, meta={"type": kind})


def _attachments(msg: JSON) -> list[Attachment]:
    out: list[Attachment] = []
    stickers: dict[Any, int] = {}
    for att in msg.get("attachments") or []:
        found = _attachment(att, msg)
        sticker_id = found.meta.get("sticker_id") if found.kind == "sticker" else None
        if sticker_id is not None:
            # During the 2026 transition one sticker comes twice (image + sticker): keep one,
            # the newer type.
            if sticker_id in stickers:
                if att.get("type") == "sticker":
                    out[stickers[sticker_id]] = found
                continue
            stickers[sticker_id] = len(out)
        out.append(found)
    return out


def _message(it: _Item, msg: JSON) -> InboundEvent:
    """A message from the customer, or the echo of one the Page sent them."""
    echo = bool(msg.get("is_echo"))
    mid = str(msg["mid"])
    reply = msg.get("reply_to") or {}
    ev = _event(
        it,
        EventKind.MESSAGE,
        f"m:{mid}",
        it.recipient if echo else it.sender,
        external_message_id=mid,
        direction=Direction.OUT if echo else Direction.IN,
        text=msg.get("text"),
        attachments=_attachments(msg),
        reply_to=f"m:{reply['mid']}" if reply.get("mid") else None,
        payload=(msg.get("quick_reply") or {}).get("payload"),
    )
    ev.platform_type = "message_echo" if echo else "message"
    if ev.text is None and not ev.attachments:  # a product share, a story mention...
        ev.kind = EventKind.UNSUPPORTED
    return ev


def _delivery(it: _Item, d: JSON) -> InboundEvent:
    watermark = int(d["watermark"])
    return _event(
        it,
        EventKind.DELIVERY,
        f"d:{it.sender}:{watermark}",
        target_ids=[f"m:{mid}" for mid in d.get("mids") or []],
        watermark_ms=watermark,
    )


def _read(it: _Item, r: JSON) -> InboundEvent:
    watermark = int(r["watermark"])
    return _event(it, EventKind.READ, f"r:{it.sender}:{watermark}", watermark_ms=watermark)


def _reaction(it: _Item, r: JSON) -> InboundEvent:
    mid = r["mid"]
    emoji = None if r.get("action") == "unreact" else (r.get("emoji") or r.get("reaction"))
    return _event(
        it,
        EventKind.REACTION,
        f"x:{mid}:{it.sender}:{it.ts_ms}",
        target_ids=[f"m:{mid}"],
        reaction=emoji,
    )


def _edit(it: _Item, e: JSON) -> InboundEvent:
    mid = e["mid"]
    return _event(
        it,
        EventKind.EDIT,
        f"e:{mid}:{e.get('num_edit')}",
        target_ids=[f"m:{mid}"],
        external_message_id=str(mid),
        text=e.get("text"),
    )


def _postback(it: _Item, p: JSON) -> InboundEvent:
    mid = p.get("mid")  # absent from older postbacks
    key = f"m:{mid}" if mid else f"pb:{it.sender}:{it.ts_ms}"
    return _event(
        it,
        EventKind.POSTBACK,
        key,
        external_message_id=mid,
        payload=p.get("payload"),
        text=p.get("title"),
    )


_HANDLERS: dict[str, Callable[[_Item, JSON], InboundEvent]] = {
    "message": _message,
    "delivery": _delivery,
    "read": _read,
    "reaction": _reaction,
    "message_edit": _edit,
    "postback": _postback,
}
_ENVELOPE = frozenset({"sender", "recipient", "timestamp"})


def _item(item: Any, entry_ms: int, where: str) -> InboundEvent:
    """One ``messaging[]`` (or ``standby[]``) item as one event."""
    if not isinstance(item, dict):
        raise PayloadError(f"Messenger {where} is not an object")
    field = next((k for k in _HANDLERS if k in item), None)
    field = field or next((k for k in item if k not in _ENVELOPE), "unknown")
    obj = item.get(field)
    sender, recipient = _party(item, "sender"), _party(item, "recipient")
    if sender is None and field == "optin" and isinstance(obj, dict) and obj.get("user_ref"):
        sender = f"{USER_REF}{obj['user_ref']}"  # checkbox plugin opt-ins name no sender
    if sender is None or recipient is None:
        missing = "sender" if sender is None else "recipient"
        raise PayloadError(f"Messenger {where} ({field}) has no {missing} id: not a messaging item")
    watermark = (
        obj.get("watermark") if field in ("delivery", "read") and isinstance(obj, dict) else None
    )
    ts_ms = _ms(item.get("timestamp"))
    if ts_ms is None and ("timestamp" in item or watermark is None):
        raise PayloadError(f"Messenger {where} ({field}) has no valid timestamp")
    # 2016 deliveries carry timestamp 0 and Meta's own examples none: the watermark says when.
    it = _Item(sender, recipient, ts_ms or _ms(watermark) or entry_ms, field)
    handler = _HANDLERS.get(field)
    if handler is None:  # optin, referral, handover...
        return _event(it, EventKind.UNSUPPORTED, f"u:{it.sender}:{it.ts_ms}:{field}")
    if not isinstance(obj, dict):
        raise PayloadError(f"Messenger {where}.{field} is not an object")
    try:
        return handler(it, obj)
    except (KeyError, TypeError, ValueError) as e:  # a required part missing or mistyped
        raise PayloadError(
            f"Messenger {where} ({field}) is malformed ({type(e).__name__}: {e})"
        ) from None


# Change fields whose value is a messaging item: the app dashboard's "Test" button sends these.
_MESSAGING_FIELDS = frozenset(SUBSCRIBED_FIELDS) | {
    "messaging_optins",
    "messaging_referrals",
    "messaging_handovers",
    "standby",
}


def _change(change: Any, entry_ms: int, where: str) -> InboundEvent:
    """An ``entry[].changes[]`` item: a messaging test event, or a Page feed change."""
    if not isinstance(change, dict) or not isinstance(change.get("value"), dict):
        raise PayloadError(f"Messenger {where} is not a {{field, value}} object")
    field, value = str(change.get("field")), change["value"]
    if field in _MESSAGING_FIELDS:
        return _item(value, entry_ms, f"{where}.value")
    # Feed comments, mentions...: kept under the person they name. The value has no id of its
    # own, so its hash keys it (a redelivery repeats it byte for byte once sorted).
    who = value.get("sender_id") or (value.get("from") or {}).get("id") or "unknown"
    digest = hashlib.blake2b(orjson.dumps(change, option=orjson.OPT_SORT_KEYS), digest_size=12)
    ts_ms = _ms(value.get("created_time")) or entry_ms
    return InboundEvent(
        EventKind.UNSUPPORTED,
        f"c:{field}:{digest.hexdigest()}",
        str(who),
        ts_ms,
        platform_type=field,
    )


def parse_body(body: bytes, received_ms: int) -> list[InboundEvent]:
    """Every event of one webhook body: all entries, all their items, in order."""
    update = _load(body)
    events: list[InboundEvent] = []
    for n, entry in enumerate(update["entry"]):
        if not isinstance(entry, dict):
            raise PayloadError(f"Messenger entry[{n}] is not an object")
        entry_ms = _ms(entry.get("time")) or received_ms
        # standby: items for threads another app (e.g. Page Inbox) controls; same shape.
        for field in ("messaging", "standby", "changes"):
            items = entry.get(field) or []
            if not isinstance(items, list):
                raise PayloadError(f"Messenger entry[{n}].{field} is not a list")
            read = _change if field == "changes" else _item
            page = str(entry["id"]) if entry.get("id") is not None else None
            for i, x in enumerate(items):
                ev = read(x, entry_ms, f"entry[{n}].{field}[{i}]")
                ev.account_id = page  # Meta sends every Page of an app to one URL
                events.append(ev)
    return events
