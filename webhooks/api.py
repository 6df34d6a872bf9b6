"""The agent API, ``/api/v1``: every route needs a bearer token (``tongdai token create``)."""

from __future__ import annotations

from urllib.parse import quote

from flask import Blueprint, Response, current_app, g, jsonify, request

from core import identity, ingest, outbound, privacy, rawlog, store, tokens
from core.errors import BadRequest, Forbidden, NotFound, Unauthorized
from core.models import Attachment, ConversationStatus

bp = Blueprint("api", __name__, url_prefix="/api/v1")
MAX_LIMIT = 200


def _hub():
    return current_app.extensions["tongdai"]


@bp.before_request
def _authenticate() -> None:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token:
        raise Unauthorized("send 'Authorization: Bearer <token>' (create one: tongdai token create)")
    record = tokens.lookup(_hub(), token.strip())
    if record is None:
        raise Unauthorized("unknown or revoked token")
    g.principal = record


def _require_admin() -> None:
    if g.principal.get("role") != "admin":
        raise Forbidden("this needs an admin token")


def _limit() -> int:
    try:
        limit = int(request.args.get("limit", 50))
    except ValueError:
        raise BadRequest("limit must be a number") from None
    if not 1 <= limit <= MAX_LIMIT:
        raise BadRequest(f"limit must be between 1 and {MAX_LIMIT}")
    return limit


@bp.get("/conversations")
def list_conversations():
    """Conversations of a queue (priority order) or a status (latest first). ?queue=&status="""
    page = store.list_conversations(_hub(), request.args.get("queue"),
                                    request.args.get("status"), request.args.get("cursor"),
                                    _limit())
    return jsonify({"items": [c.to_api() for c in page.items], "next_cursor": page.next_cursor})


@bp.get("/conversations/<conv_id>")
def get_conversation(conv_id: str):
    return jsonify(store.get_conversation(_hub(), conv_id).to_api())


@bp.get("/conversations/<conv_id>/channels")
def conversation_channels(conv_id: str):
    """The customer's channels, reachable first, each with whether a reply can go out now and
    why not (the platforms' window rules, blocks): what a reply's channel picker shows."""
    conv = store.get_conversation(_hub(), conv_id)
    states = outbound.channel_states(_hub(), conv.customer_id)
    return jsonify({"items": [c.to_api() for c in states], "next_cursor": None})


@bp.get("/conversations/<conv_id>/messages")
def list_messages(conv_id: str):
    """The timeline, newest first; ``next_cursor`` goes into ``before`` for older ones."""
    page = store.message_page(_hub(), conv_id, request.args.get("before"), _limit())
    return jsonify({"items": [m.to_api() for m in page.items], "next_cursor": page.next_cursor})


@bp.post("/conversations/<conv_id>/messages")
def post_message(conv_id: str):
    """An agent's reply: ``{"text": ..., "attachments": [{"kind": "image", "url": ...}]}``."""
    key = request.headers.get("Idempotency-Key", "").strip()
    if not key:
        raise BadRequest("send an Idempotency-Key header (any unique string per reply), "
                         "so a retried request never sends twice")
    data = request.get_json(silent=True)
    if not isinstance(data, dict):
        raise BadRequest("the body must be a JSON object")
    text = data.get("text")
    if text is not None and not isinstance(text, str):
        raise BadRequest("text must be a string")
    try:
        attachments = [Attachment(kind=a["kind"], url=a["url"], name=a.get("name"))
                       for a in data.get("attachments") or []]
    except (KeyError, TypeError):
        raise BadRequest("each attachment needs a kind and a url") from None
    if len(attachments) > 1:
        # Platforms send each attachment as its own message: a retry after a partial failure
        # could not tell which went out. One attachment per reply keeps sends exactly-once.
        raise BadRequest("send one attachment per reply")
    if not (text and text.strip()) and not attachments:
        raise BadRequest("a reply needs text or an attachment")
    channel = data.get("channel_id")
    msg, created = outbound.create_reply(
        _hub(), conv_id, text, author_id=g.principal["name"], idempotency_key=key,
        scope=g.principal["name"], attachments=attachments, channel_id=channel)
    return jsonify(msg.to_api()), 201 if created else 200


@bp.get("/conversations/<conv_id>/messages/<msg_id>/attachments/<int:n>")
def download_attachment(conv_id: str, msg_id: str, n: int):
    """The bytes of a file a customer sent by mail (attachments, the original .eml)."""
    msg = store.get_message(_hub(), conv_id, msg_id)
    if not 0 <= n < len(msg.attachments) or not (msg.attachments[n].file_id or "").startswith(
            "blob:"):
        raise NotFound(f"message {msg_id} has no stored file number {n}")
    a = msg.attachments[n]
    data = _hub().blobs.get(a.file_id)
    name = (a.name or f"attachment-{n}").replace('"', "")
    return Response(data, 200, mimetype=a.mime or "application/octet-stream", headers={
        "Content-Disposition": f"attachment; filename*=UTF-8''{quote(name)}",
        "X-Content-Type-Options": "nosniff"})


@bp.post("/conversations/<conv_id>/resolve")
def resolve_conversation(conv_id: str):
    """Mark a conversation resolved: it leaves its queue; the customer's next message within
    ``conversations.reopen_window`` reopens it (automatic mail never does)."""
    return jsonify(store.set_status(_hub(), conv_id, ConversationStatus.RESOLVED).to_api())


@bp.post("/conversations/<conv_id>/reopen")
def reopen_conversation(conv_id: str):
    """Put a resolved conversation back in its queue."""
    return jsonify(store.set_status(_hub(), conv_id, ConversationStatus.OPEN).to_api())


@bp.get("/customers/<customer_id>")
def get_customer(customer_id: str):
    """A customer: name, identities per channel, shared identifiers, current conversation."""
    return jsonify(store.get_customer(_hub(), customer_id).to_api())


@bp.delete("/customers/<customer_id>")
def erase_customer(customer_id: str):
    """Erase a customer (admin): personal data, conversations, files and retained raw events
    go; anonymous counts stay."""
    _require_admin()
    return jsonify(privacy.erase_customer(_hub(), customer_id, g.principal["name"]))


@bp.get("/customers/<customer_id>/suggestions")
def customer_suggestions(customer_id: str):
    """Customers who may be the same person, with the evidence (never merged by itself)."""
    return jsonify({"items": identity.suggestions(_hub(), customer_id), "next_cursor": None})


@bp.get("/suggestions")
def all_suggestions():
    """The newest open merge suggestions, for a review queue."""
    return jsonify({"items": identity.suggestions(_hub(), None, _limit()), "next_cursor": None})


@bp.post("/suggestions/<pair>/dismiss")
def dismiss_suggestion(pair: str):
    """Not the same person: the same evidence never merges them afterwards."""
    identity.dismiss(_hub(), pair, g.principal["name"])
    return jsonify({"id": pair, "status": "dismissed"})


def _why() -> str:
    data = request.get_json(silent=True)
    if not isinstance(data, dict):
        raise BadRequest("the body must be a JSON object")
    return str(data.get("why") or "")


@bp.post("/customers/<customer_id>/merge")
def merge_customers(customer_id: str):
    """Merge ``{"source_customer_id", "why"}`` into this customer (reversible: split)."""
    data = request.get_json(silent=True) or {}
    source = str(data.get("source_customer_id") or "")
    if not source:
        raise BadRequest("name the customer to merge in: source_customer_id")
    return jsonify(identity.merge(_hub(), customer_id, source, g.principal["name"], _why()))


@bp.get("/customers/<customer_id>/merges")
def customer_merges(customer_id: str):
    """The customer's merges and splits, newest first: who, when, why, what moved."""
    return jsonify({"items": identity.merges_of(_hub(), customer_id), "next_cursor": None})


@bp.get("/merges/<merge_id>")
def get_merge(merge_id: str):
    return jsonify(identity.get_merge(_hub(), merge_id))


@bp.post("/merges/<merge_id>/split")
def split_merge(merge_id: str):
    """Undo a merge ``{"why"}``: both customers back with their identities, identifiers and
    conversations; the same evidence will not merge them again by itself."""
    return jsonify(identity.split(_hub(), merge_id, g.principal["name"], _why()))


@bp.post("/customers/<customer_id>/link-code")
def link_code(customer_id: str):
    """A one-time code (10 minutes) the customer sends from another channel to link it."""
    return jsonify(identity.issue_link_code(_hub(), customer_id)), 201


@bp.get("/deadletters")
def list_dead_letters():
    """Events that could not be processed, with the error (admin)."""
    _require_admin()
    items = [{"id": i, "channel_id": raw.channel_id, "raw_id": raw.id, "error": err,
              "received_ts": raw.received_ts_ms, "dead_ts": at}
             for i, raw, err, at in rawlog.dead_letters(_hub(), _limit())]
    return jsonify({"items": items, "next_cursor": None})


@bp.post("/deadletters/<dl_id>/replay")
def replay_dead_letter(dl_id: str):
    """Run a dead letter through the pipeline again (after a fix); removed when it succeeds."""
    _require_admin()
    result = ingest.replay_dead_letter(_hub(), dl_id)
    if result is None:
        raise NotFound(f"no dead letter {dl_id}")
    return jsonify({"replayed": result.dead == 0, "stored": result.stored,
                    "duplicates": result.duplicates})
