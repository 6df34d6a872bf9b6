"""Reading Zalo webhook events: one request carries one event, read into one normalised
:class:`tongdai.core.models.InboundEvent` (messages, follows, shared contact info, receipts; anything
else is kept as UNSUPPORTED)."""

from __future__ import annotations

import hashlib

from tongdai.adapters.base import load_json_object
from tongdai.adapters.zalo.fields import (
    JSON,
    _float,
    _id_of,
    _int,
    _json_object,
    _maybe_id,
    _pick,
    _plain_id,
    _ts_ms,
)
from tongdai.adapters.zalo.outbound import ANON_PREFIX
from tongdai.core.errors import PayloadError
from tongdai.core.models import (
    Attachment,
    Direction,
    EventKind,
    IdentifierClaim,
    InboundEvent,
    RawEvent,
)


def _load(body: bytes) -> JSON:
    event = load_json_object(body, "Zalo event")
    if not isinstance(event.get("event_name"), str) or not event["event_name"]:
        raise PayloadError("a Zalo event names itself in 'event_name'; this body has none")
    return event


def _stamp(event: JSON, body: bytes) -> str:
    """The event's timestamp as sent (a dedupe key part), or the body's hash when it has none:
    a redelivery repeats the body byte for byte."""
    ts = event.get("timestamp")
    if ts is not None and str(ts):
        return str(ts)
    return "h" + hashlib.blake2b(body, digest_size=8).hexdigest()


# attachment ``type`` -> our Attachment.kind (docs: image/gif/link/audio/video/sticker/location/file)
_KIND = {t: t for t in ("image", "link", "audio", "video", "sticker", "location", "file")}
_KIND["gif"] = "animation"
_MESSAGE_TYPES = (*_KIND, "text", "business_card")
# Exact names: ``user_send_group_*`` (group chats) and ``oa_send_consent`` (calls) share
# the prefixes but are other things, so they stay UNSUPPORTED.
USER_MESSAGES = frozenset(f"user_send_{t}" for t in _MESSAGE_TYPES)
ANONYMOUS_MESSAGES = frozenset(f"anonymous_send_{t}" for t in ("text", "image", "file", "sticker"))
OA_MESSAGES = frozenset(f"oa_send_{t}" for t in (*_MESSAGE_TYPES, "list"))


def _attachment(att: JSON, message_type: str, text: str | None) -> Attachment:
    payload = att.get("payload") if isinstance(att.get("payload"), dict) else {}
    kind_of = str(att.get("type") or message_type)
    # A business card arrives as a "link" attachment; the event name says what it is.
    kind = "contact" if message_type == "business_card" else _KIND.get(kind_of, kind_of)
    url = payload.get("url") or None
    if kind == "location":
        coords = payload.get("coordinates") if isinstance(payload.get("coordinates"), dict) else {}
        meta = _pick({k: _float(coords.get(k)) for k in ("latitude", "longitude")})
        return Attachment("location", meta=meta)
    if kind == "contact":
        card = _json_object(payload.get("description"))
        meta = _pick(
            {
                "name": text,
                "phone": card.get("phone"),
                "qr_code_url": card.get("qrCodeUrl"),
                "thumbnail": payload.get("thumbnail"),
            }
        )
        return Attachment("contact", url=url, meta=meta)
    if kind == "file":
        meta = _pick({"extension": payload.get("type"), "checksum": payload.get("checksum")})
        return Attachment(
            "file",
            url=url,
            name=payload.get("name") or None,
            size=_int(payload.get("size")),
            meta=meta,
        )
    if kind == "sticker":
        sticker_id = payload.get("id")
        return Attachment("sticker", url=url, file_id=str(sticker_id) if sticker_id else None)
    meta = _pick({k: payload.get(k) for k in ("thumbnail", "title", "description")})
    return Attachment(kind, url=url, meta=meta)


def _message(event: JSON, name: str, received_ms: int) -> InboundEvent:
    msg = event.get("message")
    if not isinstance(msg, dict) or not msg.get("msg_id"):
        raise PayloadError(f"Zalo {name} lacks message.msg_id")
    msg_id = str(msg["msg_id"])
    out = name in OA_MESSAGES
    who = _id_of(event, "recipient" if out else "sender")  # the customer, either way
    address = who
    if name in ANONYMOUS_MESSAGES:  # replies need the conversation too (see ANON_PATH)
        conversation = _plain_id(msg.get("conversation_id"))
        # Without one the message is still kept; a reply is refused with the reason (send).
        address = f"{ANON_PREFIX}{who}:{conversation or ''}"
    text = msg.get("text") if isinstance(msg.get("text"), str) and msg.get("text") else None
    message_type = name.split("_send_", 1)[1]
    raw_atts = msg.get("attachments") or []
    if not isinstance(raw_atts, list):
        raise PayloadError(f"Zalo {name} message.attachments is not a list")
    atts = [_attachment(a, message_type, text) for a in raw_atts if isinstance(a, dict)]
    quote = msg.get("quote_msg_id")
    return InboundEvent(
        EventKind.MESSAGE,
        f"m:{msg_id}",
        who,
        _ts_ms(event.get("timestamp"), received_ms),
        address=address,
        external_message_id=msg_id,
        direction=Direction.OUT if out else Direction.IN,
        text=text,
        attachments=atts,
        reply_to=f"m:{quote}" if quote else None,
        platform_type=name,
        account_id=_maybe_id(event, "sender" if out else "recipient"),  # the OA, either way
    )


def _follow(event: JSON, name: str, received_ms: int, stamp: str) -> InboundEvent:
    field = "follower" if isinstance(event.get("follower"), dict) else "sender"
    user = _id_of(event, field)
    kind = EventKind.FOLLOW if name == "follow" else EventKind.UNFOLLOW
    return InboundEvent(
        kind,
        f"f:{user}:{stamp}:{name}",
        user,
        _ts_ms(event.get("timestamp"), received_ms),
        address=user,
        platform_type=name,
        # follow/unfollow name the OA in a top-level "oa_id" (docs sample and a live capture)
        account_id=_plain_id(event.get("oa_id")) or _maybe_id(event, "recipient"),
    )


def _submit_info(event: JSON, name: str, received_ms: int, stamp: str) -> InboundEvent:
    user = _id_of(event, "sender")
    info = event.get("info")
    if not isinstance(info, dict):
        raise PayloadError("Zalo user_submit_info lacks its 'info' object")
    # Newer payloads nest the address in full_address {user_address, user_ward, ...}.
    addr = info.get("full_address") if isinstance(info.get("full_address"), dict) else {}
    meta = _pick(
        {
            "name": info.get("name"),
            "phone": info.get("phone"),
            "address": addr.get("user_address") or info.get("address"),
            "ward": addr.get("user_ward") or info.get("ward"),
            "district": addr.get("user_district") or info.get("district"),
            "city": addr.get("user_city") or info.get("city"),
            "dob": info.get("user_dob"),
            "gender": info.get("gender"),
        }
    )
    phone = str(info["phone"]) if info.get("phone") else None
    return InboundEvent(
        EventKind.CONTACT_SHARED,
        f"i:{user}:{stamp}",
        user,
        _ts_ms(event.get("timestamp"), received_ms),
        address=user,
        attachments=[Attachment("contact", meta=meta)],
        # The user sent it through Zalo's own request_user_info form, from their account.
        identifier=IdentifierClaim("phone", phone, True, "zalo_user_submit_info")
        if phone
        else None,
        platform_type=name,
        account_id=_maybe_id(event, "recipient"),
    )


def _receipt(event: JSON, name: str, received_ms: int, stamp: str, oa_id: str) -> InboundEvent:
    """Delivered/seen: the OA sent the original, so the customer is the recipient."""
    msg = event.get("message")
    if not isinstance(msg, dict):
        raise PayloadError(f"Zalo {name} lacks its 'message' object")
    # user_seen_message lists msg_ids; user_received_message names one msg_id.
    ids = msg.get("msg_ids") if "msg_ids" in msg else [msg.get("msg_id")]
    if (
        not isinstance(ids, list)
        or not ids
        or not all(isinstance(i, str | int) and str(i) for i in ids)
    ):
        raise PayloadError(f"Zalo {name} has no message ids (message.msg_ids / msg_id)")
    user, oa = _id_of(event, "recipient"), _maybe_id(event, "sender")
    if user == oa_id:  # shape flipped: the other side is the customer
        user, oa = _id_of(event, "sender"), user
    seen = name == "user_seen_message"
    # ZNS receipts carry the real delivery time in message.delivery_time.
    when = msg.get("delivery_time") or event.get("timestamp")
    return InboundEvent(
        EventKind.READ if seen else EventKind.DELIVERY,
        f"{'s' if seen else 'd'}:{user}:{stamp}",
        user,
        _ts_ms(when, received_ms),
        address=user,
        target_ids=list(dict.fromkeys(f"m:{i}" for i in ids)),
        platform_type=name,
        account_id=oa,
    )


def _guess_customer(event: JSON, oa_id: str) -> str:
    """Who an event is about when we do not know its shape: anyone but our own OA."""
    tag = event.get("tag") if isinstance(event.get("tag"), dict) else {}
    candidates = [
        (event.get(f) or {}).get("id") if isinstance(event.get(f), dict) else None
        for f in ("follower", "sender", "recipient", "user")
    ]
    candidates += [event.get("user_id"), (tag.get("user_ids") or [None])[0]]
    return next((str(c) for c in candidates if c and str(c) != oa_id), "unknown")


def parse_event(raw: RawEvent, oa_id: str) -> list[InboundEvent]:
    """One webhook request is one Zalo event: one normalised event out."""
    event = _load(raw.body)
    name, received = event["event_name"], raw.received_ts_ms
    stamp = _stamp(event, raw.body)
    try:
        if name in USER_MESSAGES or name in OA_MESSAGES or name in ANONYMOUS_MESSAGES:
            return [_message(event, name, received)]
        if name in ("follow", "unfollow"):
            return [_follow(event, name, received, stamp)]
        if name == "user_submit_info":
            return [_submit_info(event, name, received, stamp)]
        if name in ("user_received_message", "user_seen_message"):
            return [_receipt(event, name, received, stamp, oa_id)]
    except (KeyError, TypeError, AttributeError, ValueError) as e:
        raise PayloadError(f"Zalo {name} is malformed ({type(e).__name__}: {e})") from None
    digest = hashlib.blake2b(raw.body, digest_size=8).hexdigest()
    return [
        InboundEvent(
            EventKind.UNSUPPORTED,
            f"u:{name}:{event.get('timestamp') or ''}:{digest}",
            _guess_customer(event, oa_id),
            _ts_ms(event.get("timestamp"), received),
            platform_type=name,
            # Only a top-level OA id says whose it is: sender/recipient sides are unknown.
            account_id=_plain_id(event.get("oa_id", event.get("oaId"))),
        )
    ]
