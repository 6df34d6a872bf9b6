"""Notes with @mentions, canned replies, priority, escalation and snooze (core/workspace:
workflow.py, tiers.py, canned.py)."""

from __future__ import annotations

from flask import jsonify, request
from pydantic import Field
from spectree import Response as Resp

from tongdai.core.errors import BadRequest
from tongdai.core.workspace import access, canned, tiers, workflow
from tongdai.webhooks.api import bp, hub, idempotency_key, idempotent, limit_arg, principal, spec
from tongdai.webhooks.api.schemas import (
    ERRORS,
    ConversationOut,
    IdempotencyHeaders,
    ListQuery,
    MessageOut,
    Model,
    Strict,
    WhyIn,
)

TAG = "workflow"


def _body(model):
    """The validated JSON body (spectree hands None for a body that is not JSON)."""
    if model is None:
        raise BadRequest("the body must be a JSON object (Content-Type: application/json)")
    return model


class NoteIn(Strict):
    text: str = Field(min_length=1, max_length=workflow.MAX_TEXT)


class NotMentioned(Model):
    name: str
    why: str = Field(description="cannot_see | disabled | unknown")


class NoteOut(MessageOut):
    not_mentioned: list[NotMentioned] = Field(
        default=[], description="@names in the text that mention nobody, and why")


class Mentionable(Model):
    name: str
    display_name: str


class MentionablePage(Model):
    items: list[Mentionable]
    next_cursor: str | None


class MentionOut(Model):
    conversation_id: str
    message_id: str
    author_id: str | None
    text: str | None
    ts: int


class MentionPage(Model):
    items: list[MentionOut]
    next_cursor: str | None


class SnoozeIn(Strict):
    until_ts: int = Field(ge=0, description="milliseconds since the epoch")


class CannedOut(Model):
    id: str
    shortcut: str
    title: str
    text: str
    team: str | None
    created_by: str
    created_ts: int
    updated_ts: int


class CannedPage(Model):
    items: list[CannedOut]
    next_cursor: str | None


class CannedQuery(ListQuery):
    q: str | None = Field(None, max_length=200)


class CannedIn(Strict):
    shortcut: str = Field(min_length=1, max_length=41)
    text: str = Field(min_length=1, max_length=workflow.MAX_TEXT)
    title: str = Field("", max_length=200)
    team: str | None = Field(None, max_length=63)


class CannedPatch(Strict):
    shortcut: str | None = Field(None, min_length=1, max_length=41)
    text: str | None = Field(None, min_length=1, max_length=workflow.MAX_TEXT)
    title: str | None = Field(None, max_length=200)
    team: str | None = Field(None, max_length=63)


class RenderedOut(Model):
    text: str


@bp.post("/conversations/<conv_id>/notes")
@spec.validate(json=NoteIn, headers=IdempotencyHeaders,
               resp=Resp(HTTP_200=NoteOut, HTTP_201=NoteOut, **ERRORS),
               tags=[TAG])
def add_note(conv_id: str, json: NoteIn):
    """A private note (``direction`` "internal", ``kind`` "note"): in the timeline, never sent
    to the customer. ``@name`` mentions users who may see the conversation; the others are
    listed in ``not_mentioned`` with why. Needs an ``Idempotency-Key``: a retry answers 200
    with the first note."""
    key = idempotency_key()
    text = _body(json).text
    msg, created = workflow.add_note(hub(), principal(), conv_id, text, key)
    conv = access.conversation(hub(), principal(), conv_id)
    left = workflow.not_mentioned(hub(), conv, text, principal().name)
    return jsonify(msg.to_api() | {"not_mentioned": left}), 201 if created else 200


@bp.get("/conversations/<conv_id>/mentionable")
@spec.validate(resp=Resp(HTTP_200=MentionablePage, **ERRORS), tags=[TAG])
def mentionable(conv_id: str):
    """The colleagues a note here can @mention: enabled users who may see the conversation
    (what the console's suggestions offer)."""
    return jsonify({"items": workflow.mentionable(hub(), principal(), conv_id),
                    "next_cursor": None})


@bp.get("/mentions")
@spec.validate(query=ListQuery, resp=Resp(HTTP_200=MentionPage, **ERRORS), tags=[TAG])
def list_mentions():
    """Notes that mention the caller, newest first (conversations they may still see)."""
    page = workflow.mentions(hub(), principal(), request.args.get("cursor"), limit_arg())
    return jsonify({"items": page.items, "next_cursor": page.next_cursor})


@bp.post("/conversations/<conv_id>/raise-priority")
@spec.validate(json=WhyIn, resp=Resp(HTTP_200=ConversationOut, **ERRORS), tags=[TAG])
def raise_priority(conv_id: str, json: WhyIn):
    """Priority raised to at least ``routing.escalation_priority`` (the front of its queue),
    a system line with the reason in the timeline. (Moving it up a tier: ``escalate``.)"""
    why = _body(json).why
    return jsonify(workflow.raise_priority(hub(), principal(), conv_id, why).to_api())


class EscalateIn(Strict):
    reason: str = Field(min_length=1, max_length=tiers.MAX_REASON,
                        description="why: in the timeline (sealed like notes), for the next tier")
    team: str | None = Field(None, max_length=64, description="one of the teams a step up "
                             "(teams[].escalates_to); default: the first whose conditions hold")


class DeescalateIn(Strict):
    reason: str = Field("", max_length=tiers.MAX_REASON)


@bp.post("/conversations/<conv_id>/escalate")
@spec.validate(json=EscalateIn, resp=Resp(HTTP_200=ConversationOut, **ERRORS), tags=[TAG])
def escalate(conv_id: str, json: EscalateIn):
    """Move the conversation up a tier: to the first queue of the next tier's team
    (``teams[].escalates_to``: the first step whose conditions hold, or ``team``), with a
    system line and the reason in the timeline. The assignee keeps it only when they work the
    new queue. 409 at the top of the ladder or when resolved. Like a transfer: the caller's
    own or unassigned conversations; someone else's needs a supervisor."""
    body = _body(json)
    conv = tiers.escalate(hub(), principal(), conv_id, body.reason, team=body.team)
    return jsonify(conv.to_api())


@bp.post("/conversations/<conv_id>/deescalate")
@spec.validate(json=DeescalateIn, resp=Resp(HTTP_200=ConversationOut, **ERRORS), tags=[TAG])
def deescalate(conv_id: str, json: DeescalateIn):
    """Move the conversation back down a tier: to the queue it was escalated from, else to
    the first team whose ``escalates_to`` leads to its team. 409 at the bottom."""
    reason = json.reason if json is not None else ""
    return jsonify(tiers.deescalate(hub(), principal(), conv_id, reason).to_api())


@bp.post("/conversations/<conv_id>/snooze")
@spec.validate(json=SnoozeIn, resp=Resp(HTTP_200=ConversationOut, **ERRORS), tags=[TAG])
def snooze(conv_id: str, json: SnoozeIn):
    """Snooze until ``until_ts`` (ms): status "pending", out of its queue; back (open, queued)
    when the time comes or as soon as the customer writes."""
    until = _body(json).until_ts
    return jsonify(workflow.snooze(hub(), principal(), conv_id, until).to_api())


@bp.get("/canned")
@spec.validate(query=CannedQuery, resp=Resp(HTTP_200=CannedPage, **ERRORS), tags=[TAG])
def list_canned():
    """Canned replies the caller may use (global ones and their teams'); ``?q=`` matches
    shortcut, title or text, ignoring case and accents ("hoan tien" finds "Hoàn tiền")."""
    page = canned.search(hub(), principal(), request.args.get("q"), request.args.get("cursor"),
                         limit_arg())
    return jsonify({"items": [c.to_api() for c in page.items], "next_cursor": page.next_cursor})


@bp.post("/canned")
@spec.validate(json=CannedIn, headers=IdempotencyHeaders,
               resp=Resp(HTTP_200=CannedOut, HTTP_201=CannedOut, **ERRORS),
               tags=[TAG])
def create_canned(json: CannedIn):
    """A canned reply (supervisor+; ``team`` one of yours, or none for everyone). ``text`` may
    use {{customer.name}}, {{customer.first_name}}, {{agent.name}}, {{conversation.id}}.
    Needs an ``Idempotency-Key``."""
    p = principal()
    json = _body(json)

    def create():
        c = canned.create(hub(), p, json.shortcut, json.text, json.title, json.team)
        return c.to_api(), 201

    body, status = idempotent("canned", create)
    return jsonify(body), status


@bp.get("/canned/<canned_id>")
@spec.validate(resp=Resp(HTTP_200=CannedOut, **ERRORS), tags=[TAG])
def get_canned(canned_id: str):
    """One canned reply the caller may use."""
    return jsonify(canned.get(hub(), principal(), canned_id).to_api())


@bp.patch("/canned/<canned_id>")
@spec.validate(json=CannedPatch, resp=Resp(HTTP_200=CannedOut, **ERRORS), tags=[TAG])
def update_canned(canned_id: str, json: CannedPatch):
    """Change a canned reply (supervisor+; ``"team": null`` makes it global)."""
    changes = _body(json).model_dump(exclude_unset=True)
    return jsonify(canned.update(hub(), principal(), canned_id, changes).to_api())


@bp.delete("/canned/<canned_id>")
@spec.validate(resp=Resp(HTTP_200=CannedOut, **ERRORS), tags=[TAG])
def delete_canned(canned_id: str):
    """Delete a canned reply (supervisor+); answers with what was deleted."""
    return jsonify(canned.delete(hub(), principal(), canned_id).to_api())


@bp.post("/conversations/<conv_id>/canned/<canned_id>/render")
@spec.validate(resp=Resp(HTTP_200=RenderedOut, **ERRORS), tags=[TAG])
def render_canned(conv_id: str, canned_id: str):
    """A canned reply's text for this conversation, variables filled in (unknown ones, or
    ones without a value, stay as written so you see them before sending)."""
    return jsonify({"text": canned.render(hub(), principal(), conv_id, canned_id)})
