"""The hub's VAPID key pair (RFC 8292): what identifies it to browsers' push services.

A browser subscribes to push with the hub's public key (the console gets it in its boot data)
and the push service then takes messages for that subscription only when they are signed by
the matching private key — so every process that sends must hold the same key, and changing it
orphans every subscription (agents turn push on again).

Where the key comes from, like the data keys (``core/crypto.py``):

- ``TONGDAI_VAPID_PRIVATE_KEY`` in the environment: the P-256 private key as the base64url of
  its 32-byte secret (what ``tongdai keys generate`` and ``npx web-push generate-vapid-keys``
  print), or a PEM. Set it when processes run on several machines.
- else ``<data dir>/vapid.json`` (mode 0600, beside ``keys.json``), created by the first
  process that needs it; the others read that one (an exclusive link: no two keys race in).
"""

from __future__ import annotations

import base64
import json
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from tongdai.core.errors import ConfigError

ENV = "TONGDAI_VAPID_PRIVATE_KEY"
FILE = "vapid.json"


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b64url_decode(text: str) -> bytes:
    text = text.strip()
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass(frozen=True)
class VapidKey:
    private_key: ec.EllipticCurvePrivateKey

    @property
    def public_key(self) -> str:
        """The application server key the browser subscribes with (base64url, 65 bytes)."""
        return b64url(self.private_key.public_key().public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint))

    def secret(self) -> str:
        """The private key as base64url of its 32-byte scalar (the environment's form)."""
        return b64url(self.private_key.private_numbers().private_value.to_bytes(32, "big"))


def generate() -> VapidKey:
    return VapidKey(ec.generate_private_key(ec.SECP256R1()))


def parse(text: str, where: str) -> VapidKey:
    """A key written as base64url of the 32-byte secret, or as a PEM."""
    text = text.strip()
    try:
        if text.startswith("-----BEGIN"):
            key = serialization.load_pem_private_key(text.encode(), password=None)
        else:
            raw = b64url_decode(text)
            if len(raw) != 32:
                raise ValueError("not 32 bytes")
            key = ec.derive_private_key(int.from_bytes(raw, "big"), ec.SECP256R1())
    except ValueError:
        key = None
    if not isinstance(key, ec.EllipticCurvePrivateKey) or key.curve.name != "secp256r1":
        raise ConfigError(where, ENV, "must be a P-256 private key: the base64url of its "
                          "32 bytes, or a PEM", "run `tongdai keys generate` and use its "
                          f"{ENV} line")
    return VapidKey(key)


def load(data_dir: Path) -> VapidKey:
    """The hub's key: the environment's, else ``<data_dir>/vapid.json`` (created once)."""
    env = os.environ.get(ENV)
    if env:
        return parse(env, "environment")
    path = data_dir / FILE
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{FILE}.{secrets.token_hex(4)}")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump({ENV: generate().secret()}, f)
        try:
            os.link(tmp, path)  # fails if another process made it first: theirs wins
        except FileExistsError:
            pass
        finally:
            tmp.unlink()
    try:
        return parse(json.loads(path.read_text())[ENV], str(path))
    except (KeyError, ValueError):
        raise ConfigError(str(path), ENV, "unreadable VAPID key file", "delete the file "
                          "(agents then turn push on again) or set the environment "
                          "variable") from None


def encrypt(payload: bytes, p256dh: str, auth: str) -> bytes:
    """RFC 8291: ``payload`` for the browser holding the subscription's keys (one record)."""
    import http_ece

    return http_ece.encrypt(payload, salt=os.urandom(16),
                            private_key=ec.generate_private_key(ec.SECP256R1()),
                            dh=b64url_decode(p256dh), auth_secret=b64url_decode(auth),
                            version="aes128gcm")
