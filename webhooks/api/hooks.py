"""Outgoing webhooks for integrators (admin): subscriptions, their delivery log, redelivery,
ping. The sending itself is core/workspace/hookdelivery.py."""

from __future__ import annotations

from typing import Literal
from urllib.parse import urlsplit

from flask import jsonify, request
from pydantic import Field
from spectree import Response as Resp

from tongdai.core.workspace import audit, hookdelivery, hooks
from tongdai.core.workspace.access import require
from tongdai.webhooks.api import bp, hub, idempotent, limit_arg, principal, spec
from tongdai.webhooks.api.schemas import ERRORS, IdempotencyHeaders, ListQuery, Model, Strict

TAG = "webhooks"
Event = Literal["conversation.created", "message.created", "conversation.assigned",
                "conversation.resolved", "sla.warning", "sla.breached", "spike.detected"]


class HookOut(Model):
    id: str
    url: str
    events: list[str]
    active: bool
    description: str
    created_ts: int
    created_by: str
    updated_ts: int
    disabled_reason: str | None


class HookWithSecret(HookOut):
    secret: str = Field(description="the signing secret: shown only now, keep it")


class HookPage(Model):
    items: list[HookOut]
    next_cursor: str | None


class HookIn(Strict):
    url: str = Field(min_length=1, max_length=2000,
                     description="https:// in production (http:// only on your own network, "
                                 "listed in security.webhook_allowed_networks)")
    events: list[Event] | None = Field(None, description="default: all")
    description: str = Field("", max_length=500)
    active: bool = True


class HookPatch(Strict):
    url: str | None = Field(None, min_length=1, max_length=2000)
    events: list[Event] | None = None
    description: str | None = Field(None, max_length=500)
    active: bool | None = None
    rotate_secret: bool = Field(False, description="issue a new secret (returned once)")


class Attempt(Model):
    ts: int
    status_code: int | None
    error: str | None
    duration_ms: int


class DeliveryOut(Model):
    id: str
    subscription_id: str
    type: str
    feed_id: str | None
    status: str = Field(description="pending | delivered | failed | skipped")
    attempts: int
    created_ts: int
    next_attempt_ts: int | None
    last_attempt_ts: int | None
    last_status_code: int | None
    last_error: str | None
    last_duration_ms: int | None
    history: list[Attempt]


class DeliveryDetail(DeliveryOut):
    payload: dict | None


class DeliveryPage(Model):
    items: list[DeliveryOut]
    next_cursor: str | None


def _admin():
    p = principal()
    require(p, "admin")
    return p


def _host(url: str) -> str:
    return urlsplit(url).hostname or ""  # audit details: the host, not a query's tokens


def _with_secret(sub: hooks.Subscription, secret: str | None) -> dict:
    body = sub.to_api()
    if secret is not None:
        body["secret"] = secret
    return body


@bp.get("/webhooks")
@spec.validate(resp=Resp(HTTP_200=HookPage, **ERRORS), tags=[TAG])
def list_hooks():
    """Every webhook subscription (admin)."""
    _admin()
    return jsonify({"items": [s.to_api() for s in hooks.all_subscriptions(hub())],
                    "next_cursor": None})


@bp.post("/webhooks")
@spec.validate(json=HookIn, headers=IdempotencyHeaders,
               resp=Resp(HTTP_201=HookWithSecret, HTTP_200=HookWithSecret,
                                      **ERRORS), tags=[TAG])
def create_hook(json: HookIn):
    """Subscribe a URL to events (admin; Idempotency-Key). The answer carries the signing
    secret, shown this once (a retry with the same key gets the same answer)."""
    p = _admin()

    def create():
        sub, secret = hooks.create(hub(), json.url, json.events, json.description, json.active,
                                   p.name)
        audit.record(hub(), p.name, "webhook.created", sub.id,
                     {"host": _host(sub.url), "events": sub.events})
        # kept for Idempotency-Key replays: encrypted, like the stored secret
        return _with_secret(sub, hooks.seal_shown_secret(hub(), secret)), 201

    body, status = idempotent("webhook", create)
    body = {**body, "secret": hooks.reveal_shown_secret(hub(), body["secret"])}
    return jsonify(body), status


@bp.get("/webhooks/<sub_id>")
@spec.validate(resp=Resp(HTTP_200=HookOut, **ERRORS), tags=[TAG])
def get_hook(sub_id: str):
    """One subscription (admin; the secret is never shown again)."""
    _admin()
    return jsonify(hooks.get(hub(), sub_id).to_api())


@bp.patch("/webhooks/<sub_id>")
@spec.validate(json=HookPatch, resp=Resp(HTTP_200=HookWithSecret, **ERRORS), tags=[TAG])
def update_hook(sub_id: str, json: HookPatch):
    """Change url, events, description; ``active: true`` turns a disabled subscription back
    on; ``rotate_secret: true`` returns a new secret (the old one stops at once)."""
    p = _admin()
    changes = json.model_dump(exclude_unset=True)
    sub, secret = hooks.update(hub(), sub_id, changes)
    audit.record(hub(), p.name, "webhook.updated", sub_id, {"fields": sorted(changes)})
    return jsonify(_with_secret(sub, secret))


@bp.delete("/webhooks/<sub_id>")
@spec.validate(resp=Resp(HTTP_200=HookOut, **ERRORS), tags=[TAG])
def delete_hook(sub_id: str):
    """Remove a subscription with its delivery log; pending deliveries are dropped."""
    p = _admin()
    sub = hooks.get(hub(), sub_id)
    hooks.delete(hub(), sub_id)
    audit.record(hub(), p.name, "webhook.deleted", sub_id, {"host": _host(sub.url)})
    return jsonify(sub.to_api())


@bp.get("/webhooks/<sub_id>/deliveries")
@spec.validate(query=ListQuery, resp=Resp(HTTP_200=DeliveryPage, **ERRORS), tags=[TAG])
def list_deliveries(sub_id: str):
    """The delivery log, newest first: status, attempts, last response code and error,
    duration, next attempt (the last ``LOG_KEPT`` deliveries)."""
    _admin()
    items, nxt = hookdelivery.deliveries(hub(), sub_id, request.args.get("cursor"), limit_arg())
    return jsonify({"items": items, "next_cursor": nxt})


@bp.get("/webhooks/<sub_id>/deliveries/<delivery_id>")
@spec.validate(resp=Resp(HTTP_200=DeliveryDetail, **ERRORS), tags=[TAG])
def get_delivery(sub_id: str, delivery_id: str):
    """One delivery with the JSON body it sends."""
    _admin()
    return jsonify(hookdelivery.get_delivery(hub(), sub_id, delivery_id, with_payload=True))


@bp.post("/webhooks/<sub_id>/deliveries/<delivery_id>/redeliver")
@spec.validate(resp=Resp(HTTP_202=DeliveryOut, **ERRORS), tags=[TAG])
def redeliver(sub_id: str, delivery_id: str):
    """Send a delivery again, same id and body, with a fresh round of retries (the receiver
    dedupes by ``X-Tongdai-Delivery``)."""
    p = _admin()
    out = hookdelivery.redeliver(hub(), sub_id, delivery_id)
    audit.record(hub(), p.name, "webhook.redelivered", sub_id, {"delivery_id": delivery_id})
    return jsonify(out), 202


@bp.post("/webhooks/<sub_id>/ping")
@spec.validate(headers=IdempotencyHeaders,
               resp=Resp(HTTP_202=DeliveryOut, HTTP_200=DeliveryOut, **ERRORS), tags=[TAG])
def ping(sub_id: str):
    """Queue a ``ping`` event to the receiver (Idempotency-Key); follow it in the delivery
    log. Sent even while the subscription is disabled, to check a fixed receiver."""
    p = _admin()

    def create():
        out = hookdelivery.ping(hub(), sub_id)
        audit.record(hub(), p.name, "webhook.pinged", sub_id, {"delivery_id": out["id"]})
        return out, 202

    body, status = idempotent(f"webhook-ping:{sub_id}", create)
    return jsonify(body), status
