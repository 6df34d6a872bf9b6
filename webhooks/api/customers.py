"""Customers and the identity graph: profile, suggestions, merges, splits, link codes, erase."""

from __future__ import annotations

from itertools import islice

from flask import jsonify, request
from pydantic import Field
from spectree import Response as Resp

from tongdai.core.errors import BadRequest, NotFound
from tongdai.core.identity import graph as identity
from tongdai.core.pipeline import store
from tongdai.core.workspace import access, audit, broadcast_optout, customer_timeline, privacy
from tongdai.core.workspace.access import Principal, require
from tongdai.webhooks.api import bp, hub, idempotent, limit_arg, principal, spec
from tongdai.webhooks.api.schemas import (
    ERRORS,
    AnyObject,
    AnyPage,
    CustomerOut,
    IdempotencyHeaders,
    ListQuery,
    MergeIn,
    MessagePage,
    Strict,
    WhyIn,
)

TAG = "customers"


@bp.get("/customers/<customer_id>")
@spec.validate(resp=Resp(HTTP_200=CustomerOut, **ERRORS), tags=[TAG])
def get_customer(customer_id: str):
    """A customer: name, identities per channel, shared identifiers, current conversation,
    and their past conversations (newest first, the 50 newest the caller may see), so nobody
    asks the customer to repeat themselves."""
    return jsonify(_customer(principal(), customer_id))


def _customer(p: Principal, customer_id: str) -> dict:
    h = hub()
    past = [{"id": c.id, "status": c.status.value, "channel_id": c.channel_id,
             "queue": c.queue, "created_ts": c.created_ts_ms, "updated_ts": c.updated_ts_ms}
            for c in islice(access.conversations_of(h, p, customer_id), 50)]
    if not past:
        access.customer(h, p, customer_id)  # admins see customers without conversations
    body = store.get_customer(h, customer_id).to_api()
    tier = h.redis.hget(h.keys.customer(customer_id), "tier")
    body["tier"] = tier.decode() if tier else None
    # answered "stop" to a broadcast: no broadcast reaches them (core/workspace/broadcast_optout)
    body["opted_out"] = broadcast_optout.opted_out(h, customer_id)
    body["conversations"] = past
    return body


class CustomerTimelineQuery(Strict):
    before: str | None = None
    limit: int = 50


@bp.get("/customers/<customer_id>/timeline")
@spec.validate(query=CustomerTimelineQuery, resp=Resp(HTTP_200=MessagePage, **ERRORS),
               tags=[TAG])
def get_customer_timeline(customer_id: str):
    """The customer's messages on every channel, merged in time order, newest first: each
    with its ``conversation_id`` and ``channel_id``; only the conversations the caller may
    see (among the customer's 200 newest). ``next_cursor`` goes into ``before`` for older
    ones."""
    items, nxt = customer_timeline.page(hub(), principal(), customer_id,
                                        request.args.get("before"), limit_arg())
    return jsonify({"items": [m.to_api() for m in items], "next_cursor": nxt})


class CustomerPatch(Strict):
    tier: str | None = Field(pattern=r"^[A-Za-z0-9_-]{1,32}$", description="e.g. vip; null "
                             "removes it. Priority rules (customer_tier) and routing rules "
                             "(customer: {tier: [...]}) read it")


@bp.patch("/customers/<customer_id>")
@spec.validate(json=CustomerPatch, resp=Resp(HTTP_200=CustomerOut, **ERRORS), tags=[TAG])
def update_customer(customer_id: str, json: CustomerPatch):
    """Set the customer's ``tier`` (a supervisor who sees one of their conversations, or an
    admin). Rules read it for the customer's next messages: a conversation already open
    keeps its queue."""
    h, p = hub(), principal()
    if json is None:
        raise BadRequest("the body must be a JSON object (Content-Type: application/json)")
    require(p, "supervisor")
    access.customer(h, p, customer_id)
    store.get_customer(h, customer_id)  # 404 for no such customer (admins pass access)
    key = h.keys.customer(customer_id)
    before = h.redis.hget(key, "tier")
    if json.tier is None:
        h.redis.hdel(key, "tier")
    else:
        h.redis.hset(key, "tier", json.tier)
    audit.record(h, p.name, "customer.updated", customer_id,
                 {"tier": [before.decode() if before else None, json.tier]})
    return jsonify(_customer(p, customer_id))


@bp.delete("/customers/<customer_id>/optout")
@spec.validate(resp=Resp(HTTP_200=CustomerOut, **ERRORS), tags=[TAG])
def opt_in_customer(customer_id: str):
    """Broadcasts may reach the customer again: clears the opt-out they made by answering
    "stop" (a supervisor who sees one of their conversations, or an admin; audited as
    ``customer.opted_in``). Clearing it again changes nothing; the customer comes back with
    ``opted_out: null``."""
    h, p = hub(), principal()
    require(p, "supervisor")
    access.customer(h, p, customer_id)
    store.get_customer(h, customer_id)  # 404 for no such customer (admins pass access)
    broadcast_optout.opt_in(h, customer_id, p.name)
    return jsonify(_customer(p, customer_id))


@bp.delete("/customers/<customer_id>")
@spec.validate(resp=Resp(HTTP_200=AnyObject, **ERRORS), tags=[TAG])
def erase_customer(customer_id: str):
    """Erase a customer (admin): personal data, conversations, files and retained raw events
    go; anonymous counts stay."""
    p = principal()
    require(p, "admin")
    result = privacy.erase_customer(hub(), customer_id, p.name)
    audit.record(hub(), p.name, "customer.erased", customer_id)
    return jsonify(result)


@bp.get("/customers/<customer_id>/export")
@spec.validate(resp=Resp(HTTP_200=AnyObject, **ERRORS), tags=[TAG])
def export_customer(customer_id: str):
    """Everything held about a customer, as JSON (admin; a data-subject request)."""
    p = principal()
    require(p, "admin")
    data = privacy.export_customer(hub(), customer_id)
    audit.record(hub(), p.name, "customer.exported", customer_id)
    return jsonify(data)


@bp.get("/customers/<customer_id>/suggestions")
@spec.validate(resp=Resp(HTTP_200=AnyPage, **ERRORS), tags=[TAG])
def customer_suggestions(customer_id: str):
    """Customers who may be the same person, with the evidence (never merged by itself):
    those the caller sees (another team's customers are not told). Each evidence item:
    ``kind``, ``source`` (how it was given: ``typed``, ``telegram_contact``...), ``verified``
    (per customer id), ``reason`` (``verified_both``, ``unverified``, ``kept_apart``,
    ``own_account``, ``different_verified``) with ``detail`` (the channel or kind named), ``at``
    and ``note`` (the same in English)."""
    p = principal()
    access.customer(hub(), p, customer_id)
    items = [s for s in identity.suggestions(hub(), customer_id)
             if p.is_admin or all(_sees(p, c) for c in s["customer_ids"] if c != customer_id)]
    return jsonify({"items": items, "next_cursor": None})


@bp.get("/suggestions")
@spec.validate(query=ListQuery, resp=Resp(HTTP_200=AnyPage, **ERRORS), tags=[TAG])
def all_suggestions():
    """The newest open merge suggestions, for a review queue (supervisors and admins; a
    supervisor gets those whose customers they both see, as a merge needs)."""
    p = principal()
    require(p, "supervisor")
    items = identity.suggestions(hub(), None, limit_arg())
    if not p.is_admin:
        items = [s for s in items if all(_sees(p, c) for c in s["customer_ids"])]
    return jsonify({"items": items, "next_cursor": None})


def _sees(p: Principal, customer_id: str) -> bool:
    try:
        access.customer(hub(), p, customer_id)
        return True
    except NotFound:
        return False


@bp.post("/suggestions/<pair>/dismiss")
@spec.validate(resp=Resp(HTTP_200=AnyObject, **ERRORS), tags=[TAG])
def dismiss_suggestion(pair: str):
    """Not the same person: the same evidence never merges them afterwards."""
    p = principal()
    for cid in pair.split(":", 1):  # a suggestion's id is "{customer}:{customer}"
        access.customer(hub(), p, cid)
    identity.dismiss(hub(), pair, p.name)
    audit.record(hub(), p.name, "suggestion.dismissed", pair)
    return jsonify({"id": pair, "status": "dismissed"})


@bp.post("/customers/<customer_id>/merge")
@spec.validate(json=MergeIn, resp=Resp(HTTP_200=AnyObject, **ERRORS), tags=[TAG])
def merge_customers(customer_id: str, json: MergeIn):
    """Merge ``{"source_customer_id", "why"}`` into this customer (reversible: split). The
    caller must see both customers."""
    p = principal()
    access.customer(hub(), p, customer_id)
    access.customer(hub(), p, json.source_customer_id)
    result = identity.merge(hub(), customer_id, json.source_customer_id, p.name, json.why)
    audit.record(hub(), p.name, "customer.merged", customer_id,
                 {"source": json.source_customer_id, "merge_id": result.get("id")})
    return jsonify(result)


@bp.get("/customers/<customer_id>/merges")
@spec.validate(resp=Resp(HTTP_200=AnyPage, **ERRORS), tags=[TAG])
def customer_merges(customer_id: str):
    """The customer's merges and splits, newest first: who, when, why, what moved."""
    access.customer(hub(), principal(), customer_id)
    return jsonify({"items": identity.merges_of(hub(), customer_id), "next_cursor": None})


@bp.get("/merges/<merge_id>")
@spec.validate(resp=Resp(HTTP_200=AnyObject, **ERRORS), tags=[TAG])
def get_merge(merge_id: str):
    """One merge: who, when, why, what moved."""
    return jsonify(_merge(principal(), merge_id))


def _merge(p: Principal, merge_id: str) -> dict:
    """The merge, if the caller sees its customer; else the same 404 as for no merge (the
    answer must not name a customer they may not see)."""
    m = identity.get_merge(hub(), merge_id)
    if not _sees(p, m["target_customer_id"]):
        raise NotFound(f"no merge {merge_id}")
    return m


@bp.post("/merges/<merge_id>/split")
@spec.validate(json=WhyIn, resp=Resp(HTTP_200=AnyObject, **ERRORS), tags=[TAG])
def split_merge(merge_id: str, json: WhyIn):
    """Undo a merge ``{"why"}``: both customers back with their identities, identifiers and
    conversations; the same evidence will not merge them again by itself."""
    p = principal()
    m = _merge(p, merge_id)
    result = identity.split(hub(), merge_id, p.name, json.why)
    audit.record(hub(), p.name, "customer.split", m["target_customer_id"], {"merge_id": merge_id})
    return jsonify(result)


@bp.post("/customers/<customer_id>/link-code")
@spec.validate(headers=IdempotencyHeaders,
               resp=Resp(HTTP_200=AnyObject, HTTP_201=AnyObject, **ERRORS), tags=[TAG])
def link_code(customer_id: str):
    """A one-time code (10 minutes) the customer sends from another channel to link it.
    Needs an ``Idempotency-Key`` (a retry gets the same code)."""
    p = principal()
    access.customer(hub(), p, customer_id)
    body, status = idempotent(f"link-code:{customer_id}",
                              lambda: (identity.issue_link_code(hub(), customer_id), 201))
    return jsonify(body), status
