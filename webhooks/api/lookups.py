"""Lookups: the business's data about the conversation's customer (core/workspace/lookups.py)."""

from __future__ import annotations

from typing import Any

from flask import jsonify, request
from pydantic import Field
from spectree import Response as Resp

from tongdai.core.workspace import access, lookups
from tongdai.webhooks.api import bp, hub, principal, spec
from tongdai.webhooks.api.schemas import ERRORS, Model, Strict

TAG = "conversations"


class LookupQuery(Strict):
    refresh: int = Field(0, ge=0, le=1, description="1: fetch again, whatever is cached")
    lang: str | None = Field(None, pattern=r"^[a-z]{2,3}(-[A-Za-z0-9]{2,8})?$",
                             description="labels' language (a console language: vi, en, zh, "
                             "...); default: the console user's, else console.default_language")


class LookupOut(Model):
    name: str
    title: str
    state: str = Field(description="ok | loading | not_found | timeout | error | circuit_open "
                                   "| no_input")
    fetched_ts: int | None = None
    rows: list[dict[str, Any]] | None = None
    suggestions: list[dict[str, Any]] | None = None


class LookupPage(Model):
    items: list[LookupOut]
    next_cursor: str | None


@bp.get("/conversations/<conv_id>/lookups")
@spec.validate(query=LookupQuery, resp=Resp(HTTP_200=LookupPage, **ERRORS), tags=[TAG])
def conversation_lookups(conv_id: str):
    """What the business's systems say about the conversation's customer (orders, top-ups,
    account state: ``lookups:`` in the config), each lookup with its ``state``. Answers at
    once from the cache: a lookup not cached is ``loading`` (``retry_ms``: ask again then)
    while it is fetched in the background, and ends ``ok`` (``rows`` of labelled ``fields``
    with a ``colour`` per status, ``suggestions`` from its ``tag_when`` rules), ``not_found``,
    ``timeout``, ``error`` or ``circuit_open`` (``until``). ``no_input``: the customer's
    ``missing`` identifiers are unknown. ``?refresh=1`` fetches again."""
    h, p = hub(), principal()
    conv = access.conversation(h, p, conv_id)
    lang = request.args.get("lang") or p.language or h.config.hub.console.default_language
    items = lookups.read(h, conv, lang, refresh=request.args.get("refresh") == "1")
    return jsonify({"items": items, "next_cursor": None})
