"""Conversations: lists, the timeline, replies, files, resolve/reopen."""

from __future__ import annotations

import mimetypes
import re
import unicodedata
from urllib.parse import quote

from flask import Response, jsonify, request
from spectree import Response as Resp

from tongdai.core.errors import BadRequest, NotFound
from tongdai.core.models import Attachment, ConversationStatus
from tongdai.core.pipeline import files, outbound, store
from tongdai.core.workspace import access, workflow
from tongdai.webhooks.api import bp, hub, idempotency_key, limit_arg, principal, spec
from tongdai.webhooks.api.schemas import (
    ERRORS,
    ChannelStatePage,
    ConversationOut,
    ConversationPage,
    IdempotencyHeaders,
    MessageOut,
    MessagePage,
    ReplyIn,
    Strict,
    UploadForm,
)

TAG = "conversations"
# Path separators and what file systems refuse in a name; quotes would end filename="..."
_NOT_IN_NAMES = re.compile(r'[\\/:*?"<>|]')
_NAME_MAX = 150  # characters of a download's name; longer ones keep their extension


def download_disposition(name: str, fallback: str) -> str:
    """``Content-Disposition`` for a file a customer sent, whose name is theirs to choose:
    ``attachment`` with the name made harmless (its last path part only, no control or
    invisible formatting characters, no quotes or characters file systems refuse), as an ASCII
    ``filename`` for old clients and in full as ``filename*`` (RFC 6266, RFC 5987 UTF-8), so
    "Hóa đơn.pdf" and "发票.pdf" keep their names. ``fallback`` stands in for a name with
    nothing left."""
    kept = "".join(c for c in unicodedata.normalize("NFC", name)
                   if unicodedata.category(c) not in ("Cc", "Cf", "Cs", "Zl", "Zp"))
    kept = _NOT_IN_NAMES.sub("_", re.split(r"[\\/]", kept)[-1]).strip(" .")  # no ".", ".."
    stem, dot, ext = kept.rpartition(".") if "." in kept else (kept, "", "")
    if len(kept) > _NAME_MAX:
        ext = ext[:16]
        kept = stem[:_NAME_MAX - len(ext) - 1] + dot + ext
    if not kept:
        kept, dot, ext = fallback, "", ""
    # the ASCII fallback: Vietnamese loses its marks ("đ" has none to lose), the rest becomes _
    plain = unicodedata.normalize("NFKD", kept.replace("đ", "d").replace("Đ", "D"))
    plain = "".join(c for c in plain if not unicodedata.combining(c))
    # % and ; too: some clients decode the first, split parameters at the second
    plain = re.sub(r"[^\x20-\x7e]+|[%;]", "_", plain)
    if not any(c.isalnum() for c in plain.rpartition(".")[0] or plain):
        plain = fallback + (dot + ext if ext.isascii() and ext.isalnum() else "")
    return f"attachment; filename=\"{plain}\"; filename*=UTF-8''{quote(kept, safe='')}"


class ConversationListQuery(Strict):
    queue: str | None = None
    status: str | None = None
    cursor: str | None = None
    limit: int = 50


@bp.get("/conversations")
@spec.validate(query=ConversationListQuery, resp=Resp(HTTP_200=ConversationPage, **ERRORS),
               tags=[TAG])
def list_conversations():
    """Conversations of a queue (priority order) or a status (latest first): ``?queue=&status=``.

    Only conversations the caller may see (their teams' queues, their own assignments)."""
    h, p = hub(), principal()
    queue, status = request.args.get("queue"), request.args.get("status")
    if status is not None and status not in {s.value for s in ConversationStatus}:
        raise BadRequest(f"status must be one of {', '.join(s.value for s in ConversationStatus)}")
    visible = access.visible_queues(h, p)
    if queue is not None and visible is not None and queue not in visible:
        raise NotFound(f"no queue {queue!r} among yours")
    page = store.list_conversations(h, queue, status, request.args.get("cursor"), limit_arg())
    items = [c for c in page.items if access.can_see(h, p, c)]
    return jsonify({"items": [c.to_api() for c in items], "next_cursor": page.next_cursor})


@bp.get("/conversations/<conv_id>")
@spec.validate(resp=Resp(HTTP_200=ConversationOut, **ERRORS), tags=[TAG])
def get_conversation(conv_id: str):
    """One conversation, with its CSAT/NPS survey (``survey``, null: never asked) and what the
    bot's intake collected (``intake``, null: no intake ran)."""
    from tongdai.core.selfservice import intake, surveys

    out = access.conversation(hub(), principal(), conv_id).to_api()
    out["survey"] = surveys.of_conversation(hub(), conv_id)
    out["intake"] = intake.of_conversation(hub(), conv_id)
    return jsonify(out)


@bp.get("/conversations/<conv_id>/channels")
@spec.validate(resp=Resp(HTTP_200=ChannelStatePage, **ERRORS), tags=[TAG])
def conversation_channels(conv_id: str):
    """The customer's channels, reachable first, each with whether a reply can go out now and
    why not (the platforms' window rules, blocks): what a reply's channel picker shows."""
    conv = access.conversation(hub(), principal(), conv_id)
    states = outbound.channel_states(hub(), conv.customer_id)
    return jsonify({"items": [c.to_api() for c in states], "next_cursor": None})


class TimelineQuery(Strict):
    before: str | None = None
    limit: int = 50


@bp.get("/conversations/<conv_id>/messages")
@spec.validate(query=TimelineQuery, resp=Resp(HTTP_200=MessagePage, **ERRORS), tags=[TAG])
def list_messages(conv_id: str):
    """The timeline, newest first; ``next_cursor`` goes into ``before`` for older ones."""
    access.conversation(hub(), principal(), conv_id)
    page = store.message_page(hub(), conv_id, request.args.get("before"), limit_arg())
    return jsonify({"items": [m.to_api() for m in page.items], "next_cursor": page.next_cursor})


@bp.post("/conversations/<conv_id>/messages")
@spec.validate(json=ReplyIn, headers=IdempotencyHeaders,
               resp=Resp(HTTP_200=MessageOut, HTTP_201=MessageOut, **ERRORS),
               tags=[TAG])
def post_message(conv_id: str, json: ReplyIn):
    """An agent's reply: ``{"text", "attachments": [{"kind": "image", "url"}], "channel_id"}``.

    Needs an ``Idempotency-Key`` header: a retried request never sends twice (200 with the
    first message). Refused (409, with the reachable channels) when the channel's window is
    closed. Without ``channel_id``: the channel the customer last wrote on while it is open,
    else their most recent reachable one."""
    key = idempotency_key()
    p = principal()
    access.conversation(hub(), p, conv_id)
    attachments = [Attachment(kind=a.kind, url=a.url, name=a.name) for a in json.attachments]
    if any(not a.url for a in attachments):
        raise BadRequest("each attachment needs a kind and a url")
    text = json.text
    if not (text and text.strip()) and not attachments:
        raise BadRequest("a reply needs text or an attachment")
    msg, created = outbound.create_reply(
        hub(), conv_id, text, author_id=p.name, idempotency_key=key, scope=p.name,
        attachments=attachments, channel_id=json.channel_id)
    return jsonify(msg.to_api()), 201 if created else 200


@bp.post("/conversations/<conv_id>/messages/upload")
@spec.validate(headers=IdempotencyHeaders, form=UploadForm,
               resp=Resp(HTTP_200=MessageOut, HTTP_201=MessageOut, **ERRORS), tags=[TAG])
def post_message_with_files(conv_id: str):
    """An agent's reply with files: ``multipart/form-data`` with one or more ``file`` parts,
    optional ``text`` and ``channel_id``. Each file is checked against what the channel
    takes (size, type) before anything is stored: refused with 400 and ``reason``
    ``file_too_big`` / ``file_type_not_allowed`` / ``file_no_files`` otherwise. Stored
    encrypted, then sent like any reply (Telegram sendPhoto/sendDocument, Messenger and Zalo
    uploads, a mail attachment). Needs an ``Idempotency-Key``: a retry never sends twice.
    Bodies are limited to 10 MB."""
    key = idempotency_key()
    p = principal()
    access.conversation(hub(), p, conv_id)
    uploads = request.files.getlist("file")
    if not uploads:
        raise BadRequest("attach at least one file as a multipart 'file' part")
    attachments = [_uploaded(f) for f in uploads]
    text = request.form.get("text") or None
    msg, created = outbound.create_reply(
        hub(), conv_id, text, author_id=p.name, idempotency_key=key, scope=p.name,
        attachments=attachments, channel_id=request.form.get("channel_id") or None)
    return jsonify(msg.to_api()), 201 if created else 200


# What an agent may not send whatever the platform: programs a customer's device would run.
_RUNNABLE = re.compile(r"\.(exe|com|bat|cmd|scr|msi|vbs|js|jse|wsf|ps1|jar|apk|app|sh|html?|svg|"
                       r"xhtml|hta|lnk)$", re.IGNORECASE)


def _uploaded(f) -> Attachment:
    """An uploaded file as an attachment with its bytes: an image only when its bytes are one
    (whatever its name or the browser said), its type sniffed, else guessed from the name."""
    name = (f.filename or "file").replace("\\", "/").rsplit("/", 1)[-1][:200] or "file"
    if _RUNNABLE.search(name):
        raise BadRequest(f"{name}: programs and web pages cannot be sent to customers").because(
            "file_type_not_allowed", name=name)
    data = f.read()
    found = files.sniff(data)
    mime = found or mimetypes.guess_type(name)[0] or f.mimetype or "application/octet-stream"
    kind = "image" if found and found.startswith("image/") else "file"
    return Attachment(kind, name=name, mime=mime, data=data)


@bp.get("/conversations/<conv_id>/messages/<msg_id>/attachments/<int:n>")
@spec.validate(resp=Resp(HTTP_200=None, **ERRORS), tags=[TAG])
def download_attachment(conv_id: str, msg_id: str, n: int):
    """The bytes of a stored file: mail attachments and the original .eml, photos, voice,
    stickers and files fetched from the platform, agents' uploads. Only to those who may see
    the conversation (404 otherwise). Images, audio and video whose bytes say so are served
    inline (the console shows them; ``?download=1`` asks for a download); everything else is
    a download, and HTML, SVG or scripts never go out as themselves."""
    access.conversation(hub(), principal(), conv_id)
    msg = store.get_message(hub(), conv_id, msg_id)
    if not 0 <= n < len(msg.attachments) or not (msg.attachments[n].file_id or "").startswith(
            "blob:"):
        raise NotFound(f"message {msg_id} has no stored file number {n}")
    a = msg.attachments[n]
    data = hub().blobs.get(a.file_id)
    mime, inline = files.served_type(data, a.mime)
    disposition = download_disposition(a.name or "", f"attachment-{n}")
    if inline and not request.args.get("download"):
        disposition = "inline" + disposition.removeprefix("attachment")
    return Response(data, 200, mimetype=mime, headers={
        "Content-Disposition": disposition, "X-Content-Type-Options": "nosniff",
        "Content-Security-Policy": "default-src 'none'; sandbox",
        "Cache-Control": "private, max-age=300"})


def _set_status(conv_id: str, status: ConversationStatus):
    return jsonify(workflow.set_status(hub(), principal(), conv_id, status).to_api())


@bp.post("/conversations/<conv_id>/resolve")
@spec.validate(resp=Resp(HTTP_200=ConversationOut, **ERRORS), tags=[TAG])
def resolve_conversation(conv_id: str):
    """Mark a conversation resolved: it leaves its queue; the customer's next message within
    ``conversations.reopen_window`` reopens it (automatic mail never does)."""
    return _set_status(conv_id, ConversationStatus.RESOLVED)


@bp.post("/conversations/<conv_id>/reopen")
@spec.validate(resp=Resp(HTTP_200=ConversationOut, **ERRORS), tags=[TAG])
def reopen_conversation(conv_id: str):
    """Put a resolved conversation back in its queue."""
    return _set_status(conv_id, ConversationStatus.OPEN)
