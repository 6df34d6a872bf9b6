"""Outgoing webhooks for integrators: subscriptions, the events they get, signed deliveries.

An admin subscribes a URL to some of ``EVENTS``. The ``hooks`` reactor turns change-feed
entries into those events and writes one **delivery** per (subscription, event): a record with
the JSON body (encrypted at rest), its status and every attempt. Delivery ids are derived from
(subscription, feed entry, event type), and a ``SET NX`` marker per delivery id makes the
reactor's at-least-once reading harmless: the same feed entry never delivers twice.

Sending is kept off the reactor and the scheduler, which must never wait on a stranger's
server: due deliveries sit in one zset (``Keys.hooks_due``, scored by the next attempt's time);
the ``hooks`` tick (``tongdai scheduler``) hands the due ones to the RQ queue ``tongdai-hooks``
and a worker of that queue (``tongdai worker --queues hooks``) makes the HTTP request. The zset,
not RQ, is the schedule: a lost job comes back after ``LEASE_MS``, and a duplicate job finds the
delivery already done (or not yet due) and does nothing. Tests call ``deliver_due(hub, now_ms)``.

A request carries ``X-Tongdai-Signature: sha256=<hex HMAC-SHA256 of "{timestamp}.{body}">``
keyed with the subscription's secret (``verify`` below is the receiver's side). 2xx delivers;
410 disables the subscription; anything else is retried ``RETRY_DELAYS_S`` later (with jitter,
or after the receiver's ``Retry-After`` on 429/503), then fails.

Receivers may be on the hub's own network (``http://`` is allowed for that), but never at a
link-local address: 169.254.0.0/16 holds the cloud metadata services (169.254.169.254 hands out
the host's credentials), so a subscription must not make the hub fetch them. An IP literal
there is refused when subscribing; a host name is resolved before each attempt and refused if
any of its addresses is one (``BLOCKED_NETWORKS``). The request then resolves the name again, so
a DNS server that answers differently the second time (rebinding) is not stopped by this; block
169.254.169.254 for the hub's processes on the host too if admins are not fully trusted.
"""

from __future__ import annotations

import email.utils
import hashlib
import hmac
import ipaddress
import logging
import random
import secrets
import socket
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpx
import orjson
from rq import Queue

from tongdai.core.clock import now_ms
from tongdai.core.errors import BadRequest, Conflict, NotFound
from tongdai.core.hub import Hub
from tongdai.core.keys import HOOKS_QUEUE
from tongdai.core.models import Direction
from tongdai.core.pipeline import feed, store
from tongdai.core.workspace import audit

log = logging.getLogger(__name__)

EVENTS = ("conversation.created", "message.created", "conversation.assigned",
          "conversation.resolved")
PING = "ping"
RETRY_DELAYS_S = (10, 60, 300, 1800, 7200, 21600)  # after attempt 1, 2, ...; then failed
JITTER = 0.2               # ± this share of a delay, so retries of one outage spread out
MAX_RETRY_AFTER_S = 6 * 3600
TIMEOUT_S = 10.0
LEASE_MS = 5 * 60 * 1000   # a handed-out delivery is handed out again if its job never ran
LOCK_MS = 60_000           # one attempt at a time per delivery (longer than TIMEOUT_S)
LOG_KEPT = 1000            # deliveries kept per subscription (older ones are dropped)
RECORD_TTL_S = 30 * 86400
SEEN_TTL_S = 7 * 86400     # how long a feed entry is remembered as delivered
HISTORY_KEPT = 20          # attempts listed per delivery
DISPATCH_BATCH = 500
DELIVER_JOB = "tongdai.worker.jobs.deliver_hook"
_SECRET = b"hook-secret"   # encryption purposes (associated data)
_PAYLOAD = b"hook-payload"
_SHOWN = b"hook-secret-shown"
# Never a webhook's destination: link-local v4/v6 (cloud metadata services), AWS's IPv6
# metadata address, "this host" and multicast.
BLOCKED_NETWORKS = tuple(ipaddress.ip_network(n) for n in (
    "169.254.0.0/16", "fe80::/10", "fd00:ec2::254/128", "0.0.0.0/8", "::/128", "224.0.0.0/4",
    "ff00::/8"))


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


def blocked_address(ip: str) -> bool:
    """Whether ``ip`` (an address, not a name) is one webhooks never go to."""
    try:
        a = ipaddress.ip_address(ip)
    except ValueError:
        return False
    if isinstance(a, ipaddress.IPv6Address) and a.ipv4_mapped is not None:
        a = a.ipv4_mapped
    return any(a in net for net in BLOCKED_NETWORKS)


def _refused_destination(url: str) -> str | None:
    """Why ``url`` must not be requested (its host resolves to a blocked address), or None.
    A name that does not resolve is left to the request, which reports it."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    try:
        infos = socket.getaddrinfo(host, parts.port or (443 if parts.scheme == "https" else 80),
                                   type=socket.SOCK_STREAM)
    except (OSError, UnicodeError, ValueError):
        return None
    for info in infos:
        if blocked_address(str(info[4][0])):
            return (f"refused: {host} resolves to {info[4][0]}, a link-local/metadata address "
                    "webhooks never go to")
    return None


def check_url(url: str) -> str:
    """http(s) URLs with a host and no user:password (the signature is the credential)."""
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
    if blocked_address(parts.hostname):
        raise BadRequest(f"url must not point at {parts.hostname}: link-local and metadata "
                         "addresses (169.254.0.0/16, fe80::/10) are refused")
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
    url, events = check_url(url), check_events(events)
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
        fields["url"] = check_url(changes["url"])
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


# -- deliveries -------------------------------------------------------------------------------
def delivery_id(sub_id: str, source: str, event: str) -> str:
    """Stable per (subscription, feed entry, event): the receiver's dedupe key too."""
    return "dl_" + hashlib.sha256(f"{sub_id}|{source}|{event}".encode()).hexdigest()[:24]


def _add(hub: Hub, sub_id: str, did: str, event: str, data: dict[str, Any], created_ts: int,
         source: str, due_ms: int, dedupe: bool = True) -> bool:
    """Write a pending delivery, once per delivery id (False: it existed already)."""
    k = hub.keys
    body = orjson.dumps({"id": did, "type": event, "created_ts": created_ts, "data": data})
    conv = (data.get("conversation") or {}).get("id", "")  # an id: erasure finds its bodies
    fields = {"sub": sub_id, "type": event, "source": source, "created": due_ms, "conv": conv,
              "payload": hub.keyring.encrypt_text(body.decode(), _PAYLOAD), "status": "pending",
              "attempts": 0, "round": 0, "next": due_ms, "history": "[]"}

    def tx(pipe) -> bool:
        if dedupe and pipe.exists(k.hook_seen(did)):
            return False
        pipe.multi()
        if dedupe:
            pipe.set(k.hook_seen(did), "1", ex=SEEN_TTL_S)
        pipe.hset(k.hook_delivery(did), mapping=fields)
        pipe.expire(k.hook_delivery(did), RECORD_TTL_S)
        pipe.zadd(k.hook_log(sub_id), {did: due_ms})
        pipe.zadd(k.hooks_due(), {did: due_ms})
        return True

    created = hub.redis.transaction(tx, k.hook_seen(did), value_from_callable=True)
    if created:
        _trim_log(hub, sub_id)
    return created


def _trim_log(hub: Hub, sub_id: str) -> None:
    k = hub.keys
    extra = hub.redis.zcard(k.hook_log(sub_id)) - LOG_KEPT
    if extra <= 0:
        return
    old = [i.decode() for i in hub.redis.zrange(k.hook_log(sub_id), 0, extra - 1)]
    pipe = hub.redis.pipeline(transaction=True)
    pipe.zrem(k.hook_log(sub_id), *old)
    pipe.zrem(k.hooks_due(), *old)
    pipe.delete(*[k.hook_delivery(i) for i in old])
    pipe.execute()


def forget_conversations(hub: Hub, conv_ids: set[str]) -> int:
    """Delete every delivery (with its body, which holds message text) about these
    conversations, sent or not: a customer's erasure reaches the integrators' log too."""
    k, gone = hub.keys, []
    for sub in all_subscriptions(hub):
        ids = [i.decode() for i in hub.redis.zrange(k.hook_log(sub.id), 0, -1)]
        pipe = hub.redis.pipeline(transaction=False)
        for i in ids:
            pipe.hget(k.hook_delivery(i), "conv")
        gone += [(sub.id, i) for i, c in zip(ids, pipe.execute(), strict=True)
                 if c is not None and c.decode() in conv_ids]
    if gone:
        pipe = hub.redis.pipeline(transaction=True)
        for sub_id, i in gone:
            pipe.zrem(k.hook_log(sub_id), i)
            pipe.zrem(k.hooks_due(), i)
            pipe.delete(k.hook_delivery(i))
        pipe.execute()
    return len(gone)


def _record(hub: Hub, did: str) -> dict[str, str] | None:
    h = {k.decode(): v.decode() for k, v in hub.redis.hgetall(hub.keys.hook_delivery(did)).items()}
    return h if "sub" in h else None  # nothing, or what a late write left of a dropped one


def _opt_int(v: str | None) -> int | None:
    return int(v) if v else None


def delivery_to_api(did: str, d: dict[str, str]) -> dict[str, Any]:
    return {"id": did, "subscription_id": d["sub"], "type": d["type"],
            "feed_id": d.get("source") or None, "status": d["status"],
            "attempts": int(d.get("attempts") or 0), "created_ts": int(d["created"]),
            "next_attempt_ts": _opt_int(d.get("next")) if d["status"] == "pending" else None,
            "last_attempt_ts": _opt_int(d.get("last_at")),
            "last_status_code": _opt_int(d.get("last_code")),
            "last_error": d.get("last_error") or None,
            "last_duration_ms": _opt_int(d.get("last_ms")),
            "history": orjson.loads(d.get("history") or "[]")}


def deliveries(hub: Hub, sub_id: str, cursor: str | None, limit: int
               ) -> tuple[list[dict[str, Any]], str | None]:
    """The subscription's delivery log, newest first."""
    get(hub, sub_id)
    rows, nxt = store._zpage(hub, hub.keys.hook_log(sub_id), cursor, limit, desc=True)
    pipe = hub.redis.pipeline(transaction=False)
    for did, _ in rows:
        pipe.hgetall(hub.keys.hook_delivery(did))
    out = []
    for (did, _), h in zip(rows, pipe.execute()):
        d = {k.decode(): v.decode() for k, v in h.items()}
        if "sub" in d:  # expired records leave a gap, not an error
            out.append(delivery_to_api(did, d))
    return out, nxt


def get_delivery(hub: Hub, sub_id: str, did: str, with_payload: bool = False) -> dict[str, Any]:
    d = _record(hub, did)
    if d is None or d["sub"] != sub_id:
        raise NotFound(f"no delivery {did} of webhook subscription {sub_id}")
    out = delivery_to_api(did, d)
    if with_payload:
        body = hub.keyring.decrypt_text(d["payload"], _PAYLOAD)
        out["payload"] = orjson.loads(body) if body else None
    return out


def redeliver(hub: Hub, sub_id: str, did: str, now: int | None = None) -> dict[str, Any]:
    """Send a delivery again (same id and body) with a fresh round of retries."""
    if not get(hub, sub_id).active:
        raise Conflict(f"webhook subscription {sub_id} is disabled; turn it on first "
                       "(PATCH active: true)")
    get_delivery(hub, sub_id, did)
    now = now_ms() if now is None else now
    pipe = hub.redis.pipeline(transaction=True)
    pipe.hset(hub.keys.hook_delivery(did), mapping={"status": "pending", "round": 0,
                                                    "next": now})
    pipe.expire(hub.keys.hook_delivery(did), RECORD_TTL_S)
    pipe.zadd(hub.keys.hooks_due(), {did: now})
    pipe.execute()
    return get_delivery(hub, sub_id, did)


def ping(hub: Hub, sub_id: str) -> dict[str, Any]:
    """A ``ping`` delivery to check the receiver (sent even while the subscription is off)."""
    sub = get(hub, sub_id)
    did, now = "dl_" + secrets.token_hex(12), now_ms()
    _add(hub, sub_id, did, PING, {"subscription_id": sub_id, "events": sub.events}, now, "",
         now, dedupe=False)
    return get_delivery(hub, sub_id, did)


# -- feed entries → integrator events ---------------------------------------------------------
def integrator_events(hub: Hub, ev: feed.FeedEvent) -> list[tuple[str, dict[str, Any]]]:
    """The integrator events one feed entry stands for (none for notes and other changes)."""
    if ev.type not in ("message.created", "conversation.assigned", "conversation.resolved"):
        return []
    try:
        conv = store.get_conversation(hub, str(ev.data["conversation_id"]))
    except (KeyError, NotFound):
        return []
    c = conv.to_api()
    if ev.type == "conversation.resolved":
        return [("conversation.resolved", {"conversation": c})]
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
                _add(hub, s.id, delivery_id(s.id, ev.id, event), event, data,
                     int(ev.data.get("ts") or now), ev.id, due_ms)


# -- sending ----------------------------------------------------------------------------------
@dataclass(slots=True)
class Outcome:
    code: int | None
    error: str | None
    duration_ms: int
    retry_after_s: float | None = None


def _retry_after_s(value: str | None) -> float | None:
    """``Retry-After``: seconds or an HTTP date; bounded to [1 s, MAX_RETRY_AFTER_S]."""
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            seconds = email.utils.parsedate_to_datetime(value).timestamp() - time.time()
        except (TypeError, ValueError, IndexError):
            return None
    return min(max(seconds, 1.0), MAX_RETRY_AFTER_S)


def _post(url: str, secret: str, event: str, did: str, body: bytes) -> Outcome:
    ts = str(int(time.time()))  # the receiver's clock check: real time, whatever ``now`` is
    headers = {"Content-Type": "application/json", "User-Agent": "tongdai-webhooks/1",
               "X-Tongdai-Event": event, "X-Tongdai-Delivery": did, "X-Tongdai-Timestamp": ts,
               "X-Tongdai-Signature": sign(secret, ts, body)}
    started = time.monotonic()
    code, error, retry_after = None, None, None
    refused = _refused_destination(url)
    if refused:
        return Outcome(None, refused, int((time.monotonic() - started) * 1000))
    try:  # streamed: the receiver's answer body is never read (nor kept)
        with httpx.stream("POST", url, content=body, headers=headers, timeout=TIMEOUT_S,
                          follow_redirects=False) as r:
            code = r.status_code
            if code in (429, 503):
                retry_after = _retry_after_s(r.headers.get("Retry-After"))
    except httpx.TimeoutException:
        error = f"no answer within {TIMEOUT_S:g} s"
    except (httpx.HTTPError, httpx.InvalidURL) as exc:
        error = f"could not connect ({type(exc).__name__})"
    if code is not None and not 200 <= code < 300:
        error = f"HTTP {code}"
    return Outcome(code, error, int((time.monotonic() - started) * 1000), retry_after)


def _finish(hub: Hub, did: str, status: str, error: str) -> str:
    pipe = hub.redis.pipeline(transaction=True)
    pipe.hset(hub.keys.hook_delivery(did), mapping={"status": status, "last_error": error,
                                                    "next": ""})
    pipe.expire(hub.keys.hook_delivery(did), RECORD_TTL_S)  # bounds a write after a delete
    pipe.zrem(hub.keys.hooks_due(), did)
    pipe.execute()
    return status


def _disable(hub: Hub, sub_id: str, why: str, did: str) -> None:
    if not hub.redis.exists(hub.keys.hook(sub_id)):
        return  # deleted meanwhile
    hub.redis.hset(hub.keys.hook(sub_id), mapping={"active": "0", "disabled_reason": why,
                                                   "updated": now_ms()})
    audit.record(hub, "tongdai", "webhook.disabled", sub_id, {"delivery_id": did, "status": 410})
    log.warning("webhook subscription %s disabled: its receiver answered 410", sub_id)


def _settle(hub: Hub, sub_id: str, did: str, d: dict[str, str], o: Outcome, now: int) -> str:
    """Write an attempt's outcome: delivered, retry later, or failed."""
    attempts, rnd = int(d.get("attempts") or 0) + 1, int(d.get("round") or 0) + 1
    history = orjson.loads(d.get("history") or "[]")
    history.append({"ts": now, "status_code": o.code, "error": o.error,
                    "duration_ms": o.duration_ms})
    fields: dict[str, Any] = {"attempts": attempts, "round": rnd, "last_at": now,
                              "last_code": o.code or "", "last_error": o.error or "",
                              "last_ms": o.duration_ms,
                              "history": orjson.dumps(history[-HISTORY_KEPT:])}
    k = hub.keys
    pipe = hub.redis.pipeline(transaction=True)
    if o.code is not None and 200 <= o.code < 300:
        fields.update(status="delivered", next="")
        pipe.zrem(k.hooks_due(), did)
    elif o.code == 410:
        fields.update(status="failed", next="",
                      last_error="HTTP 410: the receiver asked to stop; subscription disabled")
        pipe.zrem(k.hooks_due(), did)
    elif rnd <= len(RETRY_DELAYS_S):
        delay = o.retry_after_s
        if delay is None:
            delay = RETRY_DELAYS_S[rnd - 1] * random.uniform(1 - JITTER, 1 + JITTER)
        fields.update(status="pending", next=now + int(delay * 1000))
        pipe.zadd(k.hooks_due(), {did: fields["next"]})
    else:
        fields.update(status="failed", next="")
        pipe.zrem(k.hooks_due(), did)
    pipe.hset(k.hook_delivery(did), mapping=fields)
    pipe.expire(k.hook_delivery(did), RECORD_TTL_S)
    pipe.execute()
    if o.code == 410:
        _disable(hub, sub_id, f"the receiver answered 410 Gone to delivery {did}", did)
    log.info("webhook delivery %s (subscription %s, attempt %d): %s", did, sub_id, attempts,
             fields["status"])
    return fields["status"]


def attempt(hub: Hub, did: str, now: int | None = None) -> str:
    """Make one attempt at a delivery if it is pending and due at ``now`` (ms). Returns its
    status afterwards (or why nothing was done: ``busy``, ``gone``, ``not due``)."""
    now = now_ms() if now is None else now
    k, owner = hub.keys, secrets.token_hex(8)
    if not hub.redis.set(k.hook_lock(did), owner, nx=True, px=LOCK_MS):
        return "busy"
    try:
        d = _record(hub, did)
        if d is None or d["status"] != "pending":
            hub.redis.zrem(k.hooks_due(), did)
            return d["status"] if d else "gone"
        due_at = int(d.get("next") or 0)
        if due_at > now:
            hub.redis.zadd(k.hooks_due(), {did: due_at})
            return "not due"
        try:
            sub = get(hub, d["sub"])
        except NotFound:
            return _finish(hub, did, "skipped", "the subscription was deleted")
        if not sub.active and d["type"] != PING:
            return _finish(hub, did, "skipped", "the subscription is disabled")
        try:
            body = hub.keyring.decrypt_text(d["payload"], _PAYLOAD)
        except ValueError:
            body = None
        if body is None:
            return _finish(hub, did, "failed", "the stored body cannot be decrypted "
                           "(the data key it was sealed with is no longer configured)")
        outcome = _post(sub.url, secret_of(hub, sub.id), d["type"], did, body.encode())
        return _settle(hub, sub.id, did, d, outcome, now)
    finally:
        hub.scripts.release_lock(keys=[k.hook_lock(did)], args=[owner])


def due(hub: Hub, now: int, limit: int = DISPATCH_BATCH) -> list[str]:
    return [i.decode() for i in hub.redis.zrangebyscore(hub.keys.hooks_due(), "-inf", now,
                                                        start=0, num=limit)]


def deliver_due(hub: Hub, now: int | None = None, limit: int = DISPATCH_BATCH
                ) -> dict[str, str]:
    """Attempt every delivery due at ``now``, here and now (tests, one-off runs)."""
    now = now_ms() if now is None else now
    return {did: attempt(hub, did, now) for did in due(hub, now, limit)}


@feed.tick("hooks", 1.0)
def dispatch_due(hub: Hub, now: int | None = None) -> int:
    """Hand due deliveries to the ``tongdai-hooks`` RQ queue; each comes back after
    ``LEASE_MS`` unless its job has settled it by then."""
    now = now_ms() if now is None else now
    ids = due(hub, now)
    if not ids:
        return 0
    # +i keeps their order for the next hand-out (conversation.created before its message)
    hub.redis.zadd(hub.keys.hooks_due(), {did: now + LEASE_MS + i for i, did in enumerate(ids)},
                   xx=True)
    q = Queue(HOOKS_QUEUE, connection=hub.redis)
    for did in ids:
        q.enqueue(DELIVER_JOB, did, job_timeout=int(TIMEOUT_S * 3), result_ttl=0,
                  failure_ttl=86400, description=f"webhook delivery {did}")
    return len(ids)
