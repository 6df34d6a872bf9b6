"""Shaping a reply for Zalo: the recipient (a user id, or an anonymous user's two ids), the
text cut to Zalo's length, images as media templates, other files as links."""

from __future__ import annotations

import unicodedata

from tongdai.adapters.base import FileRefusal, OutboundMessage
from tongdai.adapters.zalo.fields import JSON
from tongdai.core.errors import DeliveryError
from tongdai.core.models import Attachment

CS_PATH = "/v3.0/oa/message/cs"
# Replies to anonymous users: ``POST /v2.0/oa/message`` with ``recipient: {anonymous_id,
# conversation_id}`` (both required), the message shapes of /message/cs (text up to 2,000
# characters, media template images), ``data.message_id`` in the answer. Sources: the compiled
# "Zalo Platform API — Integration Specification" (index file id 58853812468), §5.6 "Messaging
# anonymous users", §1.5 (this v2.0 path is current; the -240 "MessageV2 shut down" notice is
# about the old user_id message API) and its source index (Zalo page family
# official-account/tin-nhan/cac-loai-tin-khac/gui-tin-nhan-*-den-nguoi-dung-an-danh); a
# community Go client doing the same (index file ids 35219549113, 35843361389: anonymous_id =
# the event's sender.id, conversation_id = its message.conversation_id). No v3.0 form is
# documented.
ANON_PATH = "/v2.0/oa/message"
ANON_PREFIX = "anon:"
MAX_TEXT = 2000  # characters per consultation message (OA API, send a consultation message)


def _anonymous(address: str) -> JSON:
    """The recipient of ``anon:<anonymous_id>:<conversation_id>``: Zalo needs both ids."""
    _, anonymous_id, conversation_id = (address.split(":", 2) + ["", ""])[:3]
    if not anonymous_id or not conversation_id:
        raise DeliveryError(
            "zalo: this anonymous user's conversation_id is unknown (their message carried "
            "none), and Zalo answers anonymous users only with both ids; not sent",
            retryable=False,
            code="bad_request",
        )
    return {"anonymous_id": anonymous_id, "conversation_id": conversation_id}


def _media(url: str) -> JSON:
    return {
        "attachment": {
            "type": "template",
            "payload": {
                "template_type": "media",
                "elements": [{"media_type": "image", "url": url}],
            },
        }
    }


# Uploads (Zalo OA API, "upload image / gif / file"): multipart ``file``; images JPG/PNG up to
# 1 MB and GIFs up to 5 MB answer ``data.attachment_id``, files (PDF/DOC/DOCX, 5 MB) answer
# ``data.token``; kept by Zalo for 7 days.
UPLOAD = "_upload"
UPLOAD_IMAGE, UPLOAD_GIF, UPLOAD_FILE = ("/v2.0/oa/upload/image", "/v2.0/oa/upload/gif",
                                         "/v2.0/oa/upload/file")
IMAGE_TYPES = {"image/jpeg": 2**20, "image/png": 2**20, "image/gif": 5 * 2**20}
FILE_TYPES = {"application/pdf": 5 * 2**20, "application/msword": 5 * 2**20,
              "application/vnd.openxmlformats-officedocument.wordprocessingml.document":
                  5 * 2**20}


def upload_path(att: Attachment) -> str:
    if att.kind != "image":
        return UPLOAD_FILE
    return UPLOAD_GIF if att.mime == "image/gif" else UPLOAD_IMAGE


def uploaded_part(path: str, kind: str, answer: JSON) -> JSON:
    """The message part for an uploaded image (media template by attachment_id) or file."""
    handle = answer.get("attachment_id" if kind == "image" else "token")
    if not handle:
        raise DeliveryError(f"zalo {path}: the answer has no attachment id or token",
                            retryable=False, code="bad_response")
    if kind == "image":
        return {"attachment": {"type": "template", "payload": {
            "template_type": "media",
            "elements": [{"media_type": "image", "attachment_id": handle}]}}}
    return {"attachment": {"type": "file", "payload": {"token": handle}}}


def upload_refusal(platform: str, kind: str, mime: str, size: int) -> FileRefusal | None:
    """Why Zalo will not take an agent's file (type, then size), or None."""
    allowed = IMAGE_TYPES if kind == "image" else FILE_TYPES
    if mime not in allowed:
        return FileRefusal("type_not_allowed", "zalo takes JPG/PNG/GIF images and PDF/DOC/DOCX "
                           "files only", {"platform": platform,
                                          "allowed": "JPG, PNG, GIF, PDF, DOC, DOCX"})
    if size > allowed[mime]:
        return FileRefusal("too_big", f"zalo takes such files up to {allowed[mime]} bytes",
                           {"platform": platform, "max_mb": allowed[mime] // 2**20})
    return None


def _split(text: str, limit: int = MAX_TEXT) -> list[str]:
    """Cut text into messages Zalo accepts, at a line break when there is one."""
    chunks = []
    while len(text) > limit:
        cut = text.rfind("\n", 0, limit + 1)
        cut = cut if cut > 0 else limit
        chunks.append(text[:cut])
        text = text[cut:].removeprefix("\n")
    return [*chunks, text] if text else chunks


def _plan(message: OutboundMessage) -> list[JSON]:
    """The ``message`` objects to send, in order. Images by URL go as media templates, other
    files by URL as links in the text; an agent's uploads (bytes in hand) as a part holding
    ``UPLOAD``, which ``send`` turns into an uploaded image (``attachment_id``) or file
    (``token``) before sending anything."""
    by_url = [a for a in message.attachments if a.data is None]
    if unsendable := [a for a in by_url if not a.url]:
        raise DeliveryError(
            f"zalo sends attachments by URL; {unsendable[0].kind} "
            f"{unsendable[0].name or unsendable[0].file_id or ''} has none",
            retryable=False,
            code="bad_request",
        )
    images = [_media(a.url) for a in by_url if a.kind == "image"]
    images += [{UPLOAD: a} for a in message.attachments if a.data is not None and a.kind == "image"]
    files = [{UPLOAD: a} for a in message.attachments if a.data is not None and a.kind != "image"]
    links = [f"{a.name}: {a.url}" if a.name else a.url for a in by_url if a.kind != "image"]
    # NFC first: Zalo counts characters, and decomposed Vietnamese is longer.
    text = unicodedata.normalize("NFC", message.text or "")
    chunks = _split("\n".join(p for p in (text, *links) if p))
    if images and len(chunks) <= 1:  # the text rides with the first image
        first = images[0] | ({"text": chunks[0]} if chunks else {})
        parts = [first, *images[1:]]
    else:
        parts = [{"text": c} for c in chunks] + images
    parts += files
    if not parts:
        raise DeliveryError(
            "nothing to send: no text, no attachment", retryable=False, code="bad_request"
        )
    if message.buttons and "attachment" not in parts[-1] and UPLOAD not in parts[-1]:
        # Buttons ride on the last text (OA API v3 message/cs, a "template" attachment of
        # buttons). oa.query.hide: the press comes back as the user's text, the payload, not
        # shown in the chat.
        parts[-1]["attachment"] = {"type": "template", "payload": {"buttons": [
            {"title": title[:100], "type": "oa.query.hide", "payload": data}
            for data, title in message.buttons]}}
    return parts
