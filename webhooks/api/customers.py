"""Customers and the identity graph: profile, suggestions, merges, splits, link codes, erase."""

from __future__ import annotations

from flask import jsonify
from spectree import Response as Resp

from core import access, audit, identity, privacy, store
from core.access import require
from webhooks.api import bp, hub, idempotent, limit_arg, principal, spec
from webhooks.api.schemas import ERRORS, AnyObject, AnyPage, CustomerOut, ListQuery, MergeIn, WhyIn

TAG = "customers"


@bp.get("/customers/<customer_id>")
@spec.validate(resp=Resp(HTTP_200=CustomerOut, **ERRORS), tags=[TAG])
def get_customer(customer_id: str):
    """A customer: name, identities per channel, shared identifiers, current conversation."""
    access.customer(hub(), principal(), customer_id)
    return jsonify(store.get_customer(hub(), customer_id).to_api())


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
    """Customers who may be the same person, with the evidence (never merged by itself)."""
    access.customer(hub(), principal(), customer_id)
    return jsonify({"items": identity.suggestions(hub(), customer_id), "next_cursor": None})


@bp.get("/suggestions")
@spec.validate(query=ListQuery, resp=Resp(HTTP_200=AnyPage, **ERRORS), tags=[TAG])
def all_suggestions():
    """The newest open merge suggestions, for a review queue (supervisors and admins)."""
    require(principal(), "supervisor")
    return jsonify({"items": identity.suggestions(hub(), None, limit_arg()), "next_cursor": None})


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
    m = identity.get_merge(hub(), merge_id)
    access.customer(hub(), principal(), m["target_customer_id"])
    return jsonify(m)


@bp.post("/merges/<merge_id>/split")
@spec.validate(json=WhyIn, resp=Resp(HTTP_200=AnyObject, **ERRORS), tags=[TAG])
def split_merge(merge_id: str, json: WhyIn):
    """Undo a merge ``{"why"}``: both customers back with their identities, identifiers and
    conversations; the same evidence will not merge them again by itself."""
    p = principal()
    m = identity.get_merge(hub(), merge_id)
    access.customer(hub(), p, m["target_customer_id"])
    result = identity.split(hub(), merge_id, p.name, json.why)
    audit.record(hub(), p.name, "customer.split", m["target_customer_id"], {"merge_id": merge_id})
    return jsonify(result)


@bp.post("/customers/<customer_id>/link-code")
@spec.validate(resp=Resp(HTTP_200=AnyObject, HTTP_201=AnyObject, **ERRORS), tags=[TAG])
def link_code(customer_id: str):
    """A one-time code (10 minutes) the customer sends from another channel to link it.
    Needs an ``Idempotency-Key`` (a retry gets the same code)."""
    p = principal()
    access.customer(hub(), p, customer_id)
    body, status = idempotent(f"link-code:{customer_id}",
                              lambda: (identity.issue_link_code(hub(), customer_id), 201))
    return jsonify(body), status
