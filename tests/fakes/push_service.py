"""A browser push service (what fcm.googleapis.com, updates.push.services.mozilla.com and
web.push.apple.com are to a hub), over real HTTP, with the browsers' side in it.

``subscribe()`` makes what a browser's ``PushSubscription.toJSON()`` gives: an endpoint here
and the keys of a P-256 pair and auth secret the fake keeps, so it can decrypt what arrives.
A push is ``POST /push/<token>`` (RFC 8030) and is taken (201) only when, as the real services
check:

- ``Authorization: vapid t=<JWT>,k=<key>`` (RFC 8292): ``k`` is the application server key the
  subscription was made with, the JWT (ES256) verifies under it, ``aud`` is this service's
  origin, ``exp`` is in the future and at most 24 h away, ``sub`` is set — else 401/403;
- ``Content-Encoding: aes128gcm`` and a ``TTL`` header (RFC 8030 requires it) — else 400;
- the body decrypts (RFC 8291) with the subscription's private key and auth secret — else 400.

An unknown token gets 404 (FCM's answer for an expired one), an unsubscribed one 410 (Mozilla's
and Apple's). ``script(token, 410 | 429 | 500 ...)`` makes the next pushes to it answer those.
"""

from __future__ import annotations

import os
import secrets
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler

import http_ece
import orjson
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from tests.fakes.server import FakeHandler, LocalHTTPServer
from tongdai.core.vapid import b64url, b64url_decode


@dataclass
class Browser:
    """One subscribed browser: its keys, and the pushes it received (decrypted)."""

    token: str
    server_key: str  # the applicationServerKey it subscribed with
    private_key: ec.EllipticCurvePrivateKey
    auth: bytes
    received: list[dict] = field(default_factory=list)
    headers: list[dict] = field(default_factory=list)
    script: list[int] = field(default_factory=list)
    gone: bool = False


class FakePushService(LocalHTTPServer):
    def __init__(self) -> None:
        self.browsers: dict[str, Browser] = {}
        self.attempts = 0
        self.sizes: list[int] = []  # each push's encrypted body, in bytes
        self._lock = threading.Lock()

    @property
    def origin(self) -> str:
        return self.base_url.rstrip("/")

    def subscribe(self, server_key: str) -> dict:
        """A new browser's subscription, as ``PushSubscription.toJSON()`` gives it."""
        token = secrets.token_urlsafe(24)
        key = ec.generate_private_key(ec.SECP256R1())
        auth = os.urandom(16)
        self.browsers[token] = Browser(token, server_key, key, auth)
        public = key.public_key().public_bytes(serialization.Encoding.X962,
                                               serialization.PublicFormat.UncompressedPoint)
        return {"endpoint": f"{self.origin}/push/{token}", "expirationTime": None,
                "keys": {"p256dh": b64url(public), "auth": b64url(auth)}}

    def browser(self, subscription: dict) -> Browser:
        return self.browsers[subscription["endpoint"].rsplit("/", 1)[1]]

    def script(self, subscription: dict, *statuses: int) -> None:
        """The next pushes to this browser are answered with these statuses, in order."""
        self.browser(subscription).script.extend(statuses)

    def unsubscribe(self, subscription: dict) -> None:
        self.browser(subscription).gone = True

    def _check_vapid(self, header: str, b: Browser) -> tuple[int, str]:
        scheme, _, params = header.partition(" ")
        parts = dict(p.split("=", 1) for p in params.split(",") if "=" in p)
        if scheme.lower() != "vapid" or "t" not in parts or "k" not in parts:
            return 401, "missing vapid authorization"
        if parts["k"] != b.server_key:
            return 403, "the key differs from the subscription's applicationServerKey"
        head, claims, sig = parts["t"].split(".")
        public = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(),
                                                              b64url_decode(parts["k"]))
        raw = b64url_decode(sig)
        der = encode_dss_signature(int.from_bytes(raw[:32], "big"),
                                   int.from_bytes(raw[32:], "big"))
        try:
            public.verify(der, f"{head}.{claims}".encode(), ec.ECDSA(hashes.SHA256()))
        except InvalidSignature:
            return 403, "JWT signature does not verify"
        if orjson.loads(b64url_decode(head)).get("alg") != "ES256":
            return 403, "JWT alg is not ES256"
        c = orjson.loads(b64url_decode(claims))
        if c.get("aud") != self.origin:
            return 403, f"aud {c.get('aud')!r} is not this push service"
        if not time.time() < c.get("exp", 0) <= time.time() + 86400:
            return 403, "exp is not within the next 24 h"
        if not c.get("sub"):
            return 403, "no sub"
        return 0, ""

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(FakeHandler):
            def serve(self, body: bytes) -> None:
                parts = self.path.strip("/").split("/")
                if self.command != "POST" or len(parts) != 2 or parts[0] != "push":
                    return self.reply(404, b"{}")
                with fake._lock:
                    fake.attempts += 1
                    fake.sizes.append(len(body))
                    b = fake.browsers.get(parts[1])
                    if b is None:
                        return self.reply(404, b'{"error": "no such subscription"}')
                    if b.gone:
                        return self.reply(410, b'{"error": "unsubscribed"}')
                    status, why = fake._check_vapid(self.headers.get("Authorization", ""), b)
                    if status:
                        return self.reply(status, orjson.dumps({"error": why}))
                    if (self.headers.get("Content-Encoding") != "aes128gcm"
                            or not self.headers.get("TTL", "").isdigit()):
                        return self.reply(400, b'{"error": "aes128gcm and TTL required"}')
                    if len(body) > 4096:  # RFC 8030 section 7.2; FCM, Mozilla, Apple alike
                        return self.reply(413, b'{"error": "payload too large"}')
                    if b.script:
                        status = b.script.pop(0)
                        if status == 410:
                            b.gone = True
                        return self.reply(status, b'{"error": "scripted"}')
                    try:
                        plain = http_ece.decrypt(body, private_key=b.private_key,
                                                 auth_secret=b.auth, version="aes128gcm")
                    except http_ece.ECEException:
                        return self.reply(400, b'{"error": "payload does not decrypt"}')
                    b.received.append(orjson.loads(plain))
                    b.headers.append(dict(self.headers.items()))
                self.reply(201, b"", headers={"Location": f"/message/{secrets.token_hex(8)}"})

        return Handler
