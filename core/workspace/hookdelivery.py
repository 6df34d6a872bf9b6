"""Webhook deliveries: one record per (subscription, event), its log, and the attempts to send it.

A delivery holds the JSON body (encrypted at rest), its status and every attempt; ``add``
writes one once per delivery id, whatever the reactor (``core/workspace/hooks.py``) reads
twice. ``attempt`` makes one signed request and settles the outcome: delivered, retried later
(``RETRY_DELAYS_S``, jitter, ``Retry-After``) or failed; a 410 disables the subscription. The
``hooks`` tick hands due deliveries to the RQ queue; tests call ``deliver_due(hub, now_ms)``.
"""

from __future__ import annotations

import email.utils
import hashlib
import logging
import random
import secrets
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import httpx
import orjson

from tongdai.core.clock import now_ms
from tongdai.core.errors import Conflict, DestinationRefused, NotFound
from tongdai.core.hub import Hub
from tongdai.core.pipeline import store
from tongdai.core.workspace import audit, hookdestinations, hooks

log = logging.getLogger(__name__)

PING = "ping"
RETRY_DELAYS_S = (10, 60, 300, 1800, 7200, 21600)  # after attempt 1, 2, ...; then failed
JITTER = 0.2               # ± this share of a delay, so retries of one outage spread out
MAX_RETRY_AFTER_S = 6 * 3600
TIMEOUT_S = 10.0
ADDRESSES_TRIED = 3        # of a name's addresses, when the first ones refuse the connection
LOCK_MS = 60_000           # one attempt at a time per delivery (longer than TIMEOUT_S)
LOG_KEPT = 1000            # deliveries kept per subscription (older ones are dropped)
RECORD_TTL_S = 30 * 86400
SEEN_TTL_S = 7 * 86400     # how long a feed entry is remembered as delivered
HISTORY_KEPT = 20          # attempts listed per delivery
DISPATCH_BATCH = 500
_PAYLOAD = b"hook-payload"


# -- deliveries -------------------------------------------------------------------------------
def delivery_id(sub_id: str, source: str, event: str) -> str:
    """Stable per (subscription, feed entry, event): the receiver's dedupe key too."""
    return "dl_" + hashlib.sha256(f"{sub_id}|{source}|{event}".encode()).hexdigest()[:24]


def add(hub: Hub, sub_id: str, did: str, event: str, data: dict[str, Any], created_ts: int,
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
    for sub in hooks.all_subscriptions(hub):
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
    hooks.get(hub, sub_id)
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
    if not hooks.get(hub, sub_id).active:
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
    sub = hooks.get(hub, sub_id)
    did, now = "dl_" + secrets.token_hex(12), now_ms()
    add(hub, sub_id, did, PING, {"subscription_id": sub_id, "events": sub.events}, now, "",
         now, dedupe=False)
    return get_delivery(hub, sub_id, did)


# -- sending ----------------------------------------------------------------------------------
@dataclass(slots=True)
class Outcome:
    code: int | None
    error: str | None
    duration_ms: int
    retry_after_s: float | None = None


def retry_after_s(value: str | None) -> float | None:
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


def _post(url: str, secret: str, event: str, did: str, body: bytes,
          allowed: Sequence[hookdestinations.Network] = ()) -> Outcome:
    """One signed POST of ``body`` to ``url``, connecting only to an address checked here."""
    ts = str(int(time.time()))  # the receiver's clock check: real time, whatever ``now`` is
    headers = {"Content-Type": "application/json", "User-Agent": "tongdai-webhooks/1",
               "X-Tongdai-Event": event, "X-Tongdai-Delivery": did, "X-Tongdai-Timestamp": ts,
               "X-Tongdai-Signature": hooks.sign(secret, ts, body)}
    started = time.monotonic()
    code, error, retry_after = None, None, None
    try:  # resolved once, here: the request connects to an address this checked
        dest = hookdestinations.check(url, allowed)
    except DestinationRefused as exc:
        return Outcome(None, str(exc), int((time.monotonic() - started) * 1000))
    # trust_env off: a proxy from the environment would connect on our behalf, to wherever
    # its own lookup says; SSL_CERT_FILE / SSL_CERT_DIR still choose the CAs
    client = httpx.Client(timeout=TIMEOUT_S, follow_redirects=False, trust_env=False,
                          verify=httpx.create_ssl_context(trust_env=True))
    tried = dest.addresses[:ADDRESSES_TRIED]
    with client:
        for n, address in enumerate(tried, 1):
            try:  # streamed: the receiver's answer body is never read (nor kept)
                with client.stream("POST", dest.request_url(address), content=body,
                                   headers={**headers, **dest.headers()},
                                   extensions=dest.extensions()) as r:
                    code = r.status_code
                    if code in (429, 503):
                        retry_after = retry_after_s(r.headers.get("Retry-After"))
                error = None  # an earlier address's refusal is not this outcome
                break
            except httpx.ConnectError as exc:
                error = f"could not connect ({type(exc).__name__})"
                if n < len(tried):
                    continue  # nothing was sent: the name's next address may answer
            except httpx.TimeoutException:
                error = f"no answer within {TIMEOUT_S:g} s"
            except (httpx.HTTPError, httpx.InvalidURL) as exc:
                error = f"could not connect ({type(exc).__name__})"
            break
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
            sub = hooks.get(hub, d["sub"])
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
        outcome = _post(sub.url, hooks.secret_of(hub, sub.id), d["type"], did, body.encode(),
                        hooks.allowed_networks(hub))
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

