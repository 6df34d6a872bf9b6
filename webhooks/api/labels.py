"""Bulk work over many conversations, and labels added or removed by hand
(core/workspace/bulk.py, core/workspace/labels.py)."""

from __future__ import annotations

from typing import Any, Literal

from flask import jsonify, request
from pydantic import Field
from spectree import Response as Resp

from tongdai.core.errors import BadRequest
from tongdai.core.workspace import bulk, labels
from tongdai.webhooks.api import bp, hub, idempotent, principal, spec
from tongdai.webhooks.api.schemas import ERRORS, IdempotencyHeaders, Model, Strict

TAG = "bulk and labels"


class BulkIn(Strict):
    ids: list[str] = Field(min_length=1, max_length=bulk.MAX_IDS)
    action: Literal["assign", "transfer", "resolve", "snooze", "label", "unlabel"]
    params: dict[str, Any] = Field(
        default_factory=dict,
        description="assign: {assignee: name | null, why?}; transfer: {team, why?}; "
                    "snooze: {until_ts: ms}; label / unlabel: {tag}; resolve: {}")


class BulkResult(Model):
    id: str
    ok: bool
    status: int | None = Field(None, description="the single route's HTTP status, if refused")
    reason: str | None = Field(None, description="the case (error.<reason> in the console): "
                               "not_found, needs_supervisor, not_your_queue, reopen_first, "
                               "already_resolved, already_taken ... or the refusal's kind")
    params: dict[str, Any] | None = None
    message: str | None = None


class BulkOut(Model):
    action: str
    done: int
    refused: int
    results: list[BulkResult]


class LabelIn(Strict):
    tag: str = Field(min_length=1, max_length=labels.MAX_LABEL)


class LabelOut(Model):
    tag: str
    source: str = Field(description="hand (an agent added it) or rule (tagging rules, lookups)")
    by: str | None
    ts: int | None


class LabelPage(Model):
    items: list[LabelOut]
    next_cursor: str | None


class SuggestQuery(Strict):
    q: str | None = Field(None, max_length=labels.MAX_LABEL)


class SuggestOut(Model):
    items: list[str]
    next_cursor: str | None


@bp.post("/conversations/bulk")
@spec.validate(json=BulkIn, headers=IdempotencyHeaders,
               resp=Resp(HTTP_200=BulkOut, **ERRORS), tags=[TAG])
def bulk_action(json: BulkIn):
    """One action over up to 100 conversations, each checked like its own route (assign,
    transfer to a team's queue, resolve, snooze, label, unlabel). One result per id, in order:
    ``ok``, or refused with ``reason`` and ``params`` (the error reason codes of the single
    routes; ``not_found`` for a conversation you cannot see, ``already_resolved``). Needs an
    ``Idempotency-Key``: a retry answers with the first results and does nothing again."""
    if json is None:
        raise BadRequest("the body must be a JSON object (Content-Type: application/json)")
    p = principal()

    def run():
        results = bulk.apply(hub(), p, json.action, json.ids, json.params)
        done = sum(r["ok"] for r in results)
        return {"action": json.action, "done": done, "refused": len(results) - done,
                "results": results}, 200

    body, status = idempotent("bulk", run)
    return jsonify(body), status


@bp.get("/conversations/<conv_id>/labels")
@spec.validate(resp=Resp(HTTP_200=LabelPage, **ERRORS), tags=[TAG])
def list_labels(conv_id: str):
    """The conversation's tags, each with its ``source``: ``hand`` (who added it, when) or
    ``rule`` (tagging rules, lookups, the language detector)."""
    return jsonify({"items": labels.listing(hub(), principal(), conv_id), "next_cursor": None})


@bp.post("/conversations/<conv_id>/labels")
@spec.validate(json=LabelIn, resp=Resp(HTTP_200=LabelPage, **ERRORS), tags=[TAG])
def add_label(conv_id: str, json: LabelIn):
    """Label the conversation by hand (a system line in the timeline, ``conversation.tagged``
    in the feed, an audit entry); adding a tag it has changes nothing. Answers its labels."""
    if json is None:
        raise BadRequest("the body must be a JSON object (Content-Type: application/json)")
    labels.add(hub(), principal(), conv_id, json.tag)
    return jsonify({"items": labels.listing(hub(), principal(), conv_id), "next_cursor": None})


@bp.delete("/conversations/<conv_id>/labels/<path:tag>")
@spec.validate(resp=Resp(HTTP_200=LabelPage, **ERRORS), tags=[TAG])
def remove_label(conv_id: str, tag: str):
    """Take a tag off by hand, a hand label or a rule's (not ``lang:`` ones); a tag it does
    not have changes nothing. Answers its labels."""
    labels.remove(hub(), principal(), conv_id, tag)
    return jsonify({"items": labels.listing(hub(), principal(), conv_id), "next_cursor": None})


@bp.get("/labels")
@spec.validate(query=SuggestQuery, resp=Resp(HTTP_200=SuggestOut, **ERRORS), tags=[TAG])
def suggest_labels():
    """Labels to suggest while typing: hand labels used before (latest first), then the
    tagging rules' tags; ``?q=`` matches a word's start, ignoring case and accents."""
    return jsonify({"items": labels.suggestions(hub(), request.args.get("q") or ""),
                    "next_cursor": None})
