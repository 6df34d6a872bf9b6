"""Agents' Web Push subscriptions: the browsers (phones, laptops) that get a push when the
console is closed.

A subscription is what the browser's ``PushSubscription.toJSON()`` gives: the push service's
``endpoint`` URL (a capability: whoever knows it can push to that browser) and the browser's
keys (``p256dh``, its P-256 public key; ``auth``, 16 secret bytes) that payloads are encrypted
to. Each is sealed with the keyring at rest, under ``td:user:<name>:push`` (a hash: id → sealed
JSON). Its id is the endpoint's blind index, so registering the same browser again updates it
(upsert), and ``td:push:owner:<id>`` says whose it is: a browser belongs to one user at a time
(another agent turning push on in the same browser takes it over). At most ``MAX_PER_USER``
per user; the oldest goes first.

An endpoint must be at one of ``notifications.push_services`` (the browsers' push services):
the hub POSTs wherever it says, and an agent could otherwise point it inside the network.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass

import httpx
import orjson
from cryptography.hazmat.primitives.asymmetric import ec

from tongdai.core.clock import now_ms
from tongdai.core.errors import BadRequest, NotFound
from tongdai.core.hub import Hub
from tongdai.core.vapid import b64url_decode

MAX_PER_USER = 10
MAX_ENDPOINT = 2000
PURPOSE = b"push-subscription"


@dataclass(frozen=True)
class Subscription:
    id: str
    user: str
    endpoint: str
    p256dh: str  # base64url, as the browser gives them
    auth: str
    created_ts_ms: int
    user_agent: str = ""

    @property
    def service(self) -> str:
        """The push service's origin (the endpoint's path is the secret part)."""
        u = httpx.URL(self.endpoint)
        return f"{u.scheme}://{u.netloc.decode()}"

    def to_api(self) -> dict:
        return {"id": self.id, "service": self.service, "created_ts": self.created_ts_ms,
                "user_agent": self.user_agent}


def allowed_service(hub: Hub, endpoint: str) -> bool:
    """Whether ``endpoint`` is at a configured push service: its scheme, its host (``*.``
    matches subdomains only) and its port — the scheme's own (or 443) unless the pattern names
    one (``:8443``, ``:*``). No user:password part, no IP address unless the pattern is one."""
    try:
        u = httpx.URL(endpoint)
        host = u.host.lower()
    except (httpx.InvalidURL, ValueError):
        return False
    if not host or u.userinfo:
        return False
    port = str(u.port or "")
    for origin in hub.config.hub.notifications.push_services:
        scheme, _, hostport = origin.partition("://")
        pat_host, _, pat_port = hostport.partition(":")
        if u.scheme != scheme or not fnmatch.fnmatchcase(host, pat_host.lower()):
            continue
        if pat_host.startswith("*.") and host.count(".") < pat_host.count("."):
            continue
        if (fnmatch.fnmatchcase(port, pat_port) if pat_port else port in ("", "443")):
            return True
    return False


def check(hub: Hub, endpoint: str, p256dh: str, auth: str) -> None:
    """BadRequest naming the field that is not a usable subscription."""
    if len(endpoint) > MAX_ENDPOINT or not allowed_service(hub, endpoint):
        raise BadRequest("endpoint: not a push service this hub sends to (allowed: "
                         f"{', '.join(hub.config.hub.notifications.push_services)}; "
                         "notifications.push_services)")
    try:
        ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), b64url_decode(p256dh))
    except ValueError:
        raise BadRequest("keys.p256dh: not a P-256 public key (base64url of 65 bytes)") from None
    try:
        ok = len(b64url_decode(auth)) == 16
    except ValueError:
        ok = False
    if not ok:
        raise BadRequest("keys.auth: not 16 bytes in base64url")


def _seal(hub: Hub, sub: Subscription) -> str:
    return hub.keyring.encrypt_text(orjson.dumps({
        "endpoint": sub.endpoint, "p256dh": sub.p256dh, "auth": sub.auth,
        "created": sub.created_ts_ms, "ua": sub.user_agent}).decode(), PURPOSE)


def _open(hub: Hub, user: str, sub_id: str, sealed: bytes) -> Subscription | None:
    try:
        d = orjson.loads(hub.keyring.decrypt_text(sealed, PURPOSE) or "null")
    except (ValueError, orjson.JSONDecodeError):
        return None
    if not d:
        return None
    return Subscription(sub_id, user, d["endpoint"], d["p256dh"], d["auth"], int(d["created"]),
                        d.get("ua", ""))


def register(hub: Hub, user: str, endpoint: str, p256dh: str, auth: str,
             user_agent: str = "") -> tuple[Subscription, bool]:
    """Store (or update) ``user``'s subscription; (subscription, created)."""
    check(hub, endpoint, p256dh, auth)
    k = hub.keys
    sub_id = hub.keyring.blind_index("push", endpoint)
    mine = k.push_subscriptions(user)
    before = hub.redis.hget(mine, sub_id)
    old = _open(hub, user, sub_id, before) if before else None
    sub = Subscription(sub_id, user, endpoint, p256dh, auth,
                       old.created_ts_ms if old else now_ms(), user_agent[:200])
    previous = hub.redis.set(k.push("owner", sub_id), user, get=True)
    pipe = hub.redis.pipeline()
    if previous and previous.decode() != user:  # this browser was a colleague's
        pipe.hdel(k.push_subscriptions(previous.decode()), sub_id)
    pipe.hset(mine, sub_id, _seal(hub, sub))
    pipe.execute()
    _trim(hub, user)
    return sub, old is None


def _trim(hub: Hub, user: str) -> None:
    subs = listing(hub, user)
    for s in subs[MAX_PER_USER:]:
        remove(hub, user, s.id)


def listing(hub: Hub, user: str) -> list[Subscription]:
    """``user``'s subscriptions, newest first."""
    out = []
    for sub_id, sealed in hub.redis.hgetall(hub.keys.push_subscriptions(user)).items():
        s = _open(hub, user, sub_id.decode(), sealed)
        if s is not None:
            out.append(s)
    return sorted(out, key=lambda s: (-s.created_ts_ms, s.id))


def remove(hub: Hub, user: str, sub_id: str) -> None:
    """Delete one of ``user``'s subscriptions (NotFound when it is not theirs)."""
    k = hub.keys
    if not hub.redis.hdel(k.push_subscriptions(user), sub_id):
        raise NotFound(f"no push subscription {sub_id} of yours")
    # the owner mark goes only if it is still this user's (compare-and-delete)
    hub.scripts.release_lock(keys=[k.push("owner", sub_id)], args=[user])


def get(hub: Hub, user: str, sub_id: str) -> Subscription | None:
    """One of ``user``'s subscriptions (None: gone, or another user's now)."""
    sealed = hub.redis.hget(hub.keys.push_subscriptions(user), sub_id)
    return _open(hub, user, sub_id, sealed) if sealed else None


def remove_all(hub: Hub, user: str) -> int:
    """Delete every subscription of ``user`` (password changed, sessions ended, disabled: a
    lost phone gets no more previews); returns how many."""
    k = hub.keys
    ids = [i.decode() for i in hub.redis.hkeys(k.push_subscriptions(user))]
    hub.redis.delete(k.push_subscriptions(user))
    for sub_id in ids:
        hub.scripts.release_lock(keys=[k.push("owner", sub_id)], args=[user])
    return len(ids)
