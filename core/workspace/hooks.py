"""Outgoing webhooks for integrators: subscriptions, the events they get, signed deliveries.

An admin subscribes a URL to some of ``EVENTS``. The ``hooks`` reactor turns change-feed
entries into those events and writes one **delivery** per (subscription, event): a record with
the JSON body (encrypted at rest), its status and every attempt. Delivery ids are derived from
(subscription, feed entry, event type), and a ``SET NX`` marker per delivery id makes the
reactor's at-least-once reading harmless: the same feed entry never delivers twice. The
deliveries, their log and their sending are ``core/workspace/hookdelivery.py``.

Sending is kept off the reactor and the scheduler, which must never wait on a stranger's
server: due deliveries sit in one zset (``Keys.hooks_due``, scored by the next attempt's time);
the ``hooks`` tick (``tongdai scheduler``) hands the due ones to the RQ queue ``tongdai-hooks``
and a worker of that queue (``tongdai worker --queues hooks``) makes the HTTP request. The zset,
not RQ, is the schedule: a lost job comes back after ``LEASE_MS``, and a duplicate job finds the
delivery already done (or not yet due) and does nothing. Tests call
``hookdelivery.deliver_due(hub, now_ms)``.

A request carries ``X-Tongdai-Signature: sha256=<hex HMAC-SHA256 of "{timestamp}.{body}">``
keyed with the subscription's secret (``verify`` below is the receiver's side). 2xx delivers;
410 disables the subscription; anything else is retried ``RETRY_DELAYS_S`` later (with jitter,
or after the receiver's ``Retry-After`` on 429/503), then fails.

Receivers must be at public addresses, or in ``security.webhook_allowed_networks`` (a receiver
on the hub's own network); link-local and metadata addresses never (169.254.169.254 hands out
a cloud host's credentials). ``core/workspace/hookdestinations.py`` resolves the host, checks
every address, when subscribing and before each attempt, and the request connects to an
address it checked.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpx
from rq import Queue

from tongdai.core.clock import now_ms
from tongdai.core.errors import BadRequest, NotFound
from tongdai.core.hub import Hub
from tongdai.core.keys import HOOKS_QUEUE
from tongdai.core.models import Direction
from tongdai.core.pipeline import feed, store
from tongdai.core.workspace import hookdestinations

EVENTS = ("conversation.created", "message.created", "conversation.assigned",
          "conversation.resolved", "sla.warning", "sla.breached", "spike.detected")
SLA_EVENTS = {"conversation.sla_warning": ("sla.warning", "on_warning"),
              "conversation.sla_breached": ("sla.breached", "on_breach")}
LEASE_MS = 5 * 60 * 1000   # a handed-out delivery is handed out again if its job never ran
DELIVER_JOB = "tongdai.worker.jobs.deliver_hook"
_SECRET = b"hook-secret"   # encryption purposes (associated data)
_SHOWN = b"hook-secret-shown"


# -- subscriptions ----------------------------------------------------------------------------
@dataclass(slots=True)
class Subscription:
    id: str
    url: str
    events: list[str]
    active: bool
    description: str
    created_ts: int
    created_by: str
    updated_ts: int
    disabled_reason: str | None

    def to_api(self) -> dict[str, Any]:
        return {"id": self.id, "url": self.url, "events": self.events, "active": self.active,
                "description": self.description, "created_ts": self.created_ts,
                "created_by": self.created_by, "updated_ts": self.updated_ts,
                "disabled_reason": self.disabled_reason}


def allowed_networks(hub: Hub) -> tuple[hookdestinations.Network, ...]:
    """The non-public networks webhooks may reach: ``security.webhook_allowed_networks``."""
    return tuple(hub.config.hub.security.webhook_allowed_networks)


def check_url(url: str, allowed: Sequence[hookdestinations.Network] = ()) -> str:
    """http(s) URLs with a host and no user:password (the signature is the credential), whose
    host resolves to public addresses only, or to ``allowed`` networks (DestinationRefused)."""
    url = (url or "").strip()
    if any(c.isspace() or not c.isprintable() for c in url):
        raise BadRequest("url must not contain spaces or control characters")
    try:
        parts = urlsplit(url)
        _ = parts.port  # raises on a bad port
        httpx.URL(url)
    except (ValueError, httpx.InvalidURL):
        raise BadRequest(f"url {url[:100]!r} is not a valid URL") from None
    if parts.scheme not in ("http", "https"):
        raise BadRequest("url must start with https:// (or http:// for a receiver on your own "
                         "network)")
    if not parts.hostname:
        raise BadRequest("url needs a host name")
    if parts.username or parts.password:
        raise BadRequest("url must not carry a user name or password: verify the "
                         "X-Tongdai-Signature header instead")
    if parts.fragment:
        raise BadRequest("url must not have a #fragment")
    hookdestinations.check(url, allowed)
    return url


def check_events(events: list[str] | None) -> list[str]:
    if events is None:
        return list(EVENTS)
    unknown = sorted(set(events) - set(EVENTS))
    if unknown:
        raise BadRequest(f"unknown event(s) {', '.join(unknown)}; choose from {', '.join(EVENTS)}")
    if not events:
        raise BadRequest("subscribe to at least one event (or leave events out for all)")
    return [e for e in EVENTS if e in events]


def _from_hash(sub_id: str, h: dict[bytes, bytes]) -> Subscription | None:
    f = {k.decode(): v.decode() for k, v in h.items()}
    if "url" not in f:
        return None  # nothing, or what a late write left of a deleted one
    return Subscription(sub_id, f["url"], [e for e in f.get("events", "").split(",") if e],
                        f.get("active") == "1", f.get("description", ""), int(f["created"]),
                        f.get("created_by", ""), int(f.get("updated") or f["created"]),
                        f.get("disabled_reason") or None)


def get(hub: Hub, sub_id: str) -> Subscription:
    sub = _from_hash(sub_id, hub.redis.hgetall(hub.keys.hook(sub_id)))
    if sub is None:
        raise NotFound(f"no webhook subscription {sub_id}")
    return sub


def all_subscriptions(hub: Hub) -> list[Subscription]:
    """Every subscription, oldest first."""
    ids = [i.decode() for i in hub.redis.zrange(hub.keys.hooks(), 0, -1)]
    pipe = hub.redis.pipeline(transaction=False)
    for i in ids:
        pipe.hgetall(hub.keys.hook(i))
    subs = [_from_hash(i, h) for i, h in zip(ids, pipe.execute())]
    return [s for s in subs if s is not None]


def _new_secret() -> str:
    return "whsec_" + secrets.token_urlsafe(32)


def seal_shown_secret(hub: Hub, secret: str) -> str:
    """The secret as an API answer that is kept for Idempotency-Key replays (encrypted)."""
    return hub.keyring.encrypt_text(secret, _SHOWN)


def reveal_shown_secret(hub: Hub, sealed: str) -> str:
    return hub.keyring.decrypt_text(sealed, _SHOWN) or ""


def create(hub: Hub, url: str, events: list[str] | None, description: str, active: bool,
           by: str) -> tuple[Subscription, str]:
    """A new subscription and its signing secret (the only time the secret is returned)."""
    events = check_events(events)
    url = check_url(url, allowed_networks(hub))  # last: it may wait on DNS
    sub_id, secret, now = "wh_" + secrets.token_hex(6), _new_secret(), now_ms()
    pipe = hub.redis.pipeline(transaction=True)
    pipe.hset(hub.keys.hook(sub_id), mapping={
        "url": url, "events": ",".join(events), "active": "1" if active else "0",
        "description": description, "created": now, "updated": now, "created_by": by,
        "secret": hub.keyring.encrypt_text(secret, _SECRET)})
    pipe.zadd(hub.keys.hooks(), {sub_id: now})
    pipe.execute()
    return get(hub, sub_id), secret


def update(hub: Hub, sub_id: str, changes: dict[str, Any]) -> tuple[Subscription, str | None]:
    """Change url / events / description / active; ``rotate_secret`` issues a new secret
    (returned once). Turning a subscription back on clears why it was turned off."""
    get(hub, sub_id)
    fields: dict[str, Any] = {"updated": now_ms()}
    if changes.get("url") is not None:
        fields["url"] = check_url(changes["url"], allowed_networks(hub))
    if "events" in changes:
        fields["events"] = ",".join(check_events(changes["events"]))
    if changes.get("description") is not None:
        fields["description"] = changes["description"]
    if changes.get("active") is not None:
        fields["active"] = "1" if changes["active"] else "0"
    secret = _new_secret() if changes.get("rotate_secret") else None
    if secret:
        fields["secret"] = hub.keyring.encrypt_text(secret, _SECRET)
    pipe = hub.redis.pipeline(transaction=True)
    pipe.hset(hub.keys.hook(sub_id), mapping=fields)
    if changes.get("active"):
        pipe.hdel(hub.keys.hook(sub_id), "disabled_reason")
    pipe.execute()
    return get(hub, sub_id), secret


def delete(hub: Hub, sub_id: str) -> None:
    """The subscription, its delivery log and its pending deliveries."""
    get(hub, sub_id)
    k = hub.keys
    ids = [i.decode() for i in hub.redis.zrange(k.hook_log(sub_id), 0, -1)]
    pipe = hub.redis.pipeline(transaction=True)
    pipe.delete(k.hook(sub_id), k.hook_log(sub_id))
    pipe.zrem(k.hooks(), sub_id)
    for i in ids:
        pipe.delete(k.hook_delivery(i))
    if ids:
        pipe.zrem(k.hooks_due(), *ids)
    pipe.execute()


def secret_of(hub: Hub, sub_id: str) -> str:
    """The signing secret; re-encrypted under the active data key when an older one sealed
    it (so retiring a data key needs only each subscription to be used once)."""
    k = hub.keys.hook(sub_id)
    sealed = hub.redis.hget(k, "secret")
    if sealed is None:
        raise NotFound(f"no webhook subscription {sub_id}")
    secret = hub.keyring.decrypt_text(sealed, _SECRET) or ""
    if hub.keyring.key_id_of(sealed) not in (None, hub.keyring.active):
        hub.scripts.cas_hset(keys=[k], args=["secret", sealed,
                                             hub.keyring.encrypt_text(secret, _SECRET)])
    return secret


# -- signatures -------------------------------------------------------------------------------
def sign(secret: str, timestamp: int | str, body: bytes) -> str:
    """``sha256=`` + hex HMAC-SHA256 of ``"{timestamp}.{body}"`` keyed with the secret."""
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


def verify(secret: str, timestamp: str, body: bytes, signature: str,
           tolerance_s: int = 300, now_s: float | None = None) -> bool:
    """The receiver's check: right signature (constant-time) and a fresh timestamp."""
    try:
        age = abs((time.time() if now_s is None else now_s) - int(timestamp))
    except ValueError:
        return False
    return age <= tolerance_s and hmac.compare_digest(sign(secret, timestamp, body), signature)

# -- feed entries → integrator events ---------------------------------------------------------
def integrator_events(hub: Hub, ev: feed.FeedEvent) -> list[tuple[str, dict[str, Any]]]:
    """The integrator events one feed entry stands for (none for notes and other changes)."""
    if ev.type == "spike.detected":  # not a conversation's: core/workspace/spike_alerts.py
        from tongdai.core.workspace import spike_alerts

        return spike_alerts.webhook_events(hub, ev)
    if ev.type not in ("message.created", "conversation.assigned", "conversation.resolved",
                       *SLA_EVENTS):
        return []
    try:
        conv = store.get_conversation(hub, str(ev.data["conversation_id"]))
    except (KeyError, NotFound):
        return []
    c = conv.to_api()
    if ev.type == "conversation.resolved":
        return [("conversation.resolved", {"conversation": c})]
    if ev.type in SLA_EVENTS:  # as sla.on_warning / on_breach say (core/workspace/sla_actions)
        event, action = SLA_EVENTS[ev.type]
        if not getattr(hub.config.hub.sla, action).notify:
            return []
        fields = ("target", "policy", "due_ts", "queue", "channel")
        return [(event, {"conversation": c, **{f: ev.data.get(f) for f in fields}})]
    if ev.type == "conversation.assigned":
        fields = ("assignee", "team", "by", "previous", "reason")
        return [("conversation.assigned", {"conversation": c,
                                           **{f: ev.data.get(f) for f in fields}})]
    try:
        msg = store.get_message(hub, conv.id, str(ev.data["message_id"]))
    except (KeyError, NotFound):
        return []
    if msg.direction == Direction.INTERNAL:  # private notes never leave the hub
        return []
    out = [("conversation.created", {"conversation": c})] if ev.data.get("opened") == 1 else []
    return out + [("message.created", {"conversation": c, "message": msg.to_api()})]


@feed.reactor("hooks")
def react(hub: Hub, events: list[feed.FeedEvent]) -> None:
    """One delivery per (active subscription, integrator event); replays add nothing."""
    from tongdai.core.workspace import hookdelivery  # here, not at the top: it imports this module

    subs = [s for s in all_subscriptions(hub) if s.active]
    if not subs:
        return
    todo = [(ev, event, data) for ev in events for event, data in integrator_events(hub, ev)]
    now = now_ms()
    for n, (ev, event, data) in enumerate(todo):
        # due (and listed) in feed order, conversation.created before its message: the last
        # one is due now, the ones before it a millisecond earlier each
        due_ms = now - len(todo) + 1 + n
        for s in subs:
            if event in s.events:
                hookdelivery.add(hub, s.id, hookdelivery.delivery_id(s.id, ev.id, event), event,
                                 data, int(ev.data.get("ts") or now), ev.id, due_ms)


# -- handing due deliveries to the hooks worker -----------------------------------------------
@feed.tick("hooks", 1.0)
def dispatch_due(hub: Hub, now: int | None = None) -> int:
    """Hand due deliveries to the ``tongdai-hooks`` RQ queue; each comes back after
    ``LEASE_MS`` unless its job has settled it by then."""
    from tongdai.core.workspace import hookdelivery  # here, not at the top: it imports this module

    now = now_ms() if now is None else now
    ids = hookdelivery.due(hub, now)
    if not ids:
        return 0
    # +i keeps their order for the next hand-out (conversation.created before its message)
    hub.redis.zadd(hub.keys.hooks_due(), {did: now + LEASE_MS + i for i, did in enumerate(ids)},
                   xx=True)
    q = Queue(HOOKS_QUEUE, connection=hub.redis)
    for did in ids:
        q.enqueue(DELIVER_JOB, did, job_timeout=int(hookdelivery.TIMEOUT_S * 3), result_ttl=0,
                  failure_ttl=86400, description=f"webhook delivery {did}")
    return len(ids)
