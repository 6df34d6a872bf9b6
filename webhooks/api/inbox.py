"""The inbox: filtered conversation lists with unread counts and search; marking read."""

from __future__ import annotations

from typing import Literal

from flask import jsonify
from pydantic import Field
from spectree import Response as Resp

from tongdai.core.workspace import access, inbox
from tongdai.webhooks.api import bp, hub, principal, spec
from tongdai.webhooks.api.schemas import ERRORS, ConversationOut, Model, Strict

TAG = "inbox"


class InboxQuery(Strict):
    queue: str | None = Field(None, max_length=100)
    status: Literal["open", "pending", "resolved"] = "open"
    channel: str | None = Field(None, max_length=100)
    tag: str | None = Field(None, max_length=100)
    priority_min: int | None = Field(None, ge=0, le=100)
    assignee: str | None = Field(None, min_length=1, max_length=100)
    sla: Literal["due", "breached"] | None = None
    q: str | None = Field(None, max_length=200)
    since: int | None = Field(None, ge=0, description="search: messages from (ms)")
    until: int | None = Field(None, ge=0, description="search: messages until (ms)")
    cursor: str | None = Field(None, max_length=200)
    limit: int = Field(50, ge=1, le=200)


class LastMessage(Model):
    id: str
    text: str
    direction: str | None
    ts: int | None
    channel_id: str | None
    author_kind: str | None


class InboxItem(ConversationOut):
    customer_name: str | None
    last_message: LastMessage | None
    unread: int
    sla_due_ts: int | None
    sla_breached: bool
    resolution_due_ts: int | None = None


class InboxPage(Model):
    items: list[InboxItem]
    next_cursor: str | None
    counts: dict[str, int]


class ReadOut(Model):
    conversation_id: str
    unread: int


@bp.get("/inbox")
@spec.validate(query=InboxQuery, resp=Resp(HTTP_200=InboxPage, **ERRORS), tags=[TAG])
def get_inbox(query: InboxQuery):
    """The caller's inbox: conversations they may see, filtered, with unread counts.

    Filters: ``queue``, ``status`` (default open), ``channel`` (the customer's latest),
    ``tag``, ``priority_min``, ``assignee`` (``me``, ``none`` or a name), ``sla`` (``due``: a
    reply is owed; ``breached``: past its due time), ``q`` (every message, customer name and
    identifier, conversation id; phones and order numbers in any format; accents, case and
    Chinese script ignored) with ``since``/``until`` (ms: the matching message's time).
    Order: by SLA due time with ``sla``, queue order (priority, then oldest) with ``queue``,
    else latest activity; a search: exact hits (id, identifier, name) first, then by the
    newest matching message. ``counts``: queue → open conversations with unread messages, for
    every queue the caller sees. Each item: the conversation, ``customer_name``,
    ``last_message`` (a preview of at most 140 characters), ``unread`` (customer messages
    since an agent last read or answered), ``sla_due_ts``, ``sla_breached``,
    ``resolution_due_ts`` (while the resolution clock runs)."""
    h, p, a = hub(), principal(), query
    assignee = {"me": p.name, "none": ""}.get(a.assignee or "", a.assignee)
    f = inbox.Filters(status=a.status, queue=a.queue or None, channel=a.channel or None,
                      tag=a.tag or None, priority_min=a.priority_min, assignee=assignee,
                      sla=a.sla, q=a.q or None, since=a.since, until=a.until)
    page = inbox.page(h, p, f, a.cursor, a.limit)
    return jsonify({"items": page.items, "next_cursor": page.next_cursor,
                    "counts": page.counts})


@bp.post("/conversations/<conv_id>/read")
@spec.validate(resp=Resp(HTTP_200=ReadOut, **ERRORS), tags=[TAG])
def read_conversation(conv_id: str):
    """Mark the conversation's messages read: its unread count goes to 0 for everyone (the
    team shares one inbox), and ``conversation.read`` tells the other consoles."""
    p = principal()
    access.conversation(hub(), p, conv_id)
    inbox.mark_read(hub(), conv_id, p.name)
    return jsonify({"conversation_id": conv_id, "unread": 0})
