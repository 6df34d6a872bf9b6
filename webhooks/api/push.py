"""Web Push subscriptions of the caller's browsers (core/workspace/pushsubs.py): each user
registers, lists and removes their own; nobody sees or touches another's."""

from __future__ import annotations

from flask import jsonify, request
from pydantic import Field
from spectree import Response as Resp

from tongdai.core.errors import BadRequest
from tongdai.core.workspace import push, pushsubs
from tongdai.webhooks.api import bp, hub, principal, spec
from tongdai.webhooks.api.schemas import ERRORS, Model

TAG = "push"


class SubscriptionKeys(Model):
    p256dh: str = Field(min_length=1, max_length=200,
                        description="the browser's P-256 public key, base64url (65 bytes)")
    auth: str = Field(min_length=1, max_length=100,
                      description="the browser's auth secret, base64url (16 bytes)")


class SubscriptionIn(Model):
    """``PushSubscription.toJSON()`` as the browser gives it (its ``expirationTime`` is
    accepted and ignored)."""

    endpoint: str = Field(min_length=1, max_length=pushsubs.MAX_ENDPOINT,
                          description="the push service's URL for this browser "
                                      "(one of notifications.push_services)")
    keys: SubscriptionKeys


class SubscriptionOut(Model):
    id: str = Field(description="the subscription (the same browser always has the same id)")
    service: str = Field(description="the push service's origin, e.g. https://fcm.googleapis.com")
    created_ts: int
    user_agent: str


class SubscriptionPage(Model):
    items: list[SubscriptionOut]
    next_cursor: str | None
    public_key: str | None = Field(
        description="the hub's VAPID key to subscribe with (base64url); null: push is off")


@bp.post("/push/subscriptions")
@spec.validate(json=SubscriptionIn, resp=Resp(HTTP_200=SubscriptionOut,
                                              HTTP_201=SubscriptionOut, **ERRORS), tags=[TAG])
def register_push(json: SubscriptionIn):
    """Register this browser for pushes to the caller (a customer's message on a
    conversation assigned to them, a note mentioning them), or update it: the same
    ``endpoint`` again is the same subscription (200), a new one 201. A browser belongs to one
    user: registering it takes it from whoever had it. Each user keeps their 10 newest."""
    if json is None:
        raise BadRequest("the body must be a JSON object (Content-Type: application/json)")
    if not hub().config.hub.notifications.push:
        raise BadRequest("push is off on this hub (notifications.push)")
    sub, created = pushsubs.register(hub(), principal().name, json.endpoint, json.keys.p256dh,
                                     json.keys.auth, request.headers.get("User-Agent", ""))
    return jsonify(sub.to_api()), 201 if created else 200


@bp.get("/push/subscriptions")
@spec.validate(resp=Resp(HTTP_200=SubscriptionPage, **ERRORS), tags=[TAG])
def list_push():
    """The caller's registered browsers, newest first (endpoints and keys are never shown),
    and the hub's ``public_key`` to subscribe with."""
    return _page()


@bp.delete("/push/subscriptions/<sub_id>")
@spec.validate(resp=Resp(HTTP_200=SubscriptionPage, **ERRORS), tags=[TAG])
def remove_push(sub_id: str):
    """Stop pushes to one of the caller's browsers (404 when it is not theirs). Answers the
    ones left."""
    pushsubs.remove(hub(), principal().name, sub_id)
    return _page()


def _page():
    items = [s.to_api() for s in pushsubs.listing(hub(), principal().name)]
    return jsonify({"items": items, "next_cursor": None, "public_key": push.public_key(hub())})
