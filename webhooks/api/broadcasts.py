"""Proactive broadcasts (core/workspace/broadcast*.py): supervisors and admins create one, see
its dry-run counts, send it (the scheduler's ``broadcasts`` tick; sending again resumes) and
read its progress and report. A supervisor sees the broadcasts made within their teams, and their
segments hold only their teams' conversations."""

from __future__ import annotations

from typing import Any

from flask import jsonify
from pydantic import Field
from spectree import Response as Resp

from tongdai.core.workspace import broadcast as bc
from tongdai.core.workspace import broadcast_send as bs
from tongdai.core.workspace.access import require
from tongdai.webhooks.api import bp, hub, idempotent, json_body, principal, spec
from tongdai.webhooks.api.schemas import ERRORS, AnyObject, IdempotencyHeaders, Model, Strict

TAG = "broadcasts"


class SegmentIn(Strict):
    tag: str | None = Field(None, max_length=100)
    since: int | None = Field(None, description="conversations active since (ms)")
    until: int | None = Field(None, description="conversations started before (ms)")
    channels: list[str] = Field([], max_length=50)
    attributes: dict[str, str] = Field({}, description="tier, lang, queue, status")
    conversations: list[str] = Field([], max_length=5000,
                                     description="their customers, instead of the rest")


class BroadcastIn(Strict):
    name: str = Field("", max_length=200)
    segment: SegmentIn
    templates: dict[str, str] = Field(
        description="key '*' (every channel and language), a language (vi, en, zh, zh-Hans), "
                    "a channel id or channel:lang; variables {{customer.name}}, "
                    "{{customer.first_name}}, {{conversation.id}}")


class BroadcastOut(Model):
    id: str
    name: str
    segment: dict[str, Any]
    templates: dict[str, str]
    created_by: str
    created_ts: int
    state: str = Field(description="draft, sending, stopped (resumable), done")
    started_ts: int | None = None
    finished_ts: int | None = None
    total: int | None = None
    progress: dict[str, Any] | None = None


class BroadcastPage(Model):
    items: list[BroadcastOut]
    next_cursor: str | None = None


def _out(b: bc.Broadcast) -> dict:
    return b.to_api() | {"progress": bs.progress(hub(), b.id)}


@bp.get("/broadcasts")
@spec.validate(resp=Resp(HTTP_200=BroadcastPage, **ERRORS), tags=[TAG])
def list_broadcasts():
    """Broadcasts, newest first (supervisor or admin)."""
    return jsonify({"items": [_out(b) for b in bc.list_all(hub(), principal())],
                    "next_cursor": None})


@bp.post("/broadcasts")
@spec.validate(json=BroadcastIn, headers=IdempotencyHeaders,
               resp=Resp(HTTP_201=BroadcastOut, **ERRORS), tags=[TAG])
def create_broadcast():
    """Create a broadcast (nothing is sent yet; takes an Idempotency-Key)."""
    require(principal(), "supervisor")
    data = json_body()

    def make():
        b = bc.create(hub(), principal(), data.get("name", ""), data["segment"],
                      data["templates"])
        return _out(b), 201
    body, status = idempotent("broadcast", make)
    return jsonify(body), status


@bp.post("/broadcasts/dry-run")
@spec.validate(json=BroadcastIn, resp=Resp(HTTP_200=AnyObject, **ERRORS), tags=[TAG])
def dry_run_draft():
    """The dry run of a broadcast not saved yet (the console's form): ``totals``
    (customers, would_send, would_skip), per channel ``would_send`` and ``would_skip`` by
    reason, and one rendered ``samples`` text per channel and language."""
    data = json_body()
    b = bc.draft(hub(), principal(), data.get("name", ""), data["segment"], data["templates"])
    return jsonify(bc.dry_run(hub(), principal(), b))


@bp.get("/broadcasts/<broadcast_id>")
@spec.validate(resp=Resp(HTTP_200=BroadcastOut, **ERRORS), tags=[TAG])
def get_broadcast(broadcast_id: str):
    """A broadcast with its progress: total (frozen at the first send), handled, queued,
    skipped, failed, running."""
    return jsonify(_out(bc.get(hub(), principal(), broadcast_id)))


@bp.post("/broadcasts/<broadcast_id>/dry-run")
@spec.validate(resp=Resp(HTTP_200=AnyObject, **ERRORS), tags=[TAG])
def dry_run_broadcast(broadcast_id: str):
    """What sending it now would do (as the dry run of a draft)."""
    h, p = hub(), principal()
    return jsonify(bc.dry_run(h, p, bc.get(h, p, broadcast_id)))


@bp.post("/broadcasts/<broadcast_id>/send")
@spec.validate(resp=Resp(HTTP_202=BroadcastOut, **ERRORS), tags=[TAG])
def send_broadcast(broadcast_id: str):
    """Send it (202): the scheduler makes the messages, paced by each channel's rate, and the
    senders send them; a stopped one resumes, nobody gets it twice. 409 while a run holds it
    or once it was sent."""
    h = hub()
    b = bc.get(h, principal(), broadcast_id)
    bs.start(h, b.id)
    return jsonify(_out(bc.get(h, principal(), broadcast_id))), 202


@bp.get("/broadcasts/<broadcast_id>/report")
@spec.validate(resp=Resp(HTTP_200=AnyObject, **ERRORS), tags=[TAG])
def broadcast_report(broadcast_id: str):
    """``totals`` and per ``channels``: sent, queued (still going out), failed, uncertain,
    skipped; ``reasons`` for skips and failures; ``not_reached``: the first 200 customers
    skipped or failed, with why."""
    h = hub()
    b = bc.get(h, principal(), broadcast_id)
    return jsonify(bs.report(h, b.id))
