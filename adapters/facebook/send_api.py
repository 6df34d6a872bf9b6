"""Shaping Send API requests: text split to Meta's limit, attachments by URL, recipients."""

from __future__ import annotations

from tongdai.adapters.facebook.events import JSON, USER_REF
from tongdai.core.errors import DeliveryError
from tongdai.core.models import Attachment

TEXT_LIMIT = 2000  # Send API: message.text is at most 2000 characters
UPLOAD_LIMIT = 25 * 2**20  # Send API: attachments up to 25 MB


def _text_chunks(text: str, limit: int = TEXT_LIMIT) -> list[str]:
    """Split text over Meta's per-message limit, at a line or word break when there is one."""
    chunks = []
    while len(text) > limit:
        cut = max(text.rfind("\n", 0, limit), text.rfind(" ", 0, limit))
        cut = cut if cut > limit // 2 else limit
        chunks.append(text[:cut].rstrip())
        text = text[cut:].lstrip()
    return [*chunks, text] if text else chunks


# Our attachment kinds → Send API attachment types (Messenger sends attachments by URL).
_SEND_TYPES = {
    "image": "image",
    "sticker": "image",
    "animation": "image",
    "audio": "audio",
    "voice": "audio",
    "video": "video",
    "video_note": "video",
}


# The key of a part carrying an agent's upload (removed before the part is sent).
_UPLOAD = "_upload"


def _outgoing(att: Attachment) -> JSON:
    if att.kind == "sticker" and att.meta.get("sticker_id"):  # Sticker API (Jun 2026)
        sid = att.meta["sticker_id"]  # stored as a string (core.models.lua_exact): a number again
        return {"sticker_id": int(sid) if str(sid).isdigit() else sid}
    if att.data is not None:  # an agent's upload: multipart with the bytes as ``filedata``
        kind = _SEND_TYPES.get(att.kind, "file")
        return {"attachment": {"type": kind, "payload": {"is_reusable": False}}, _UPLOAD: att}
    if not att.url:
        raise DeliveryError(
            f"facebook send: the {att.kind} attachment has no URL; Messenger "
            "sends attachments by URL",
            retryable=False,
            code="bad_request",
        )
    kind = _SEND_TYPES.get(att.kind, "file")
    return {"attachment": {"type": kind, "payload": {"url": att.url, "is_reusable": True}}}


def _recipient(address: str) -> JSON:
    if address.startswith(USER_REF):
        return {"user_ref": address.removeprefix(USER_REF)}
    if address.isdigit():
        return {"id": address}
    raise DeliveryError(
        f"facebook send: {address!r} is not a Page-scoped id", retryable=False, code="bad_request"
    )
