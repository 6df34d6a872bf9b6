"""Customer data at rest: AES-GCM with key ids, and an HMAC blind index for look-ups.

Keys come from the environment in production (``TONGDAI_DATA_KEYS``: ``id:base64,...``, the
first one encrypts, all decrypt, so keys can rotate; ``TONGDAI_INDEX_KEY``: the blind-index
key, which never rotates with them). ``tongdai up`` on a single machine creates them once in
``<data dir>/keys.json`` when neither is set. ``tongdai keys generate`` prints a fresh set.

Two forms: ``encrypt_bytes`` (binary, for raw-log fields) and ``encrypt_text`` (``enc:...``
text, for hash fields and JSON blobs). Both carry the key id. The *purpose* is bound as
associated data, so a ciphertext moved to another field does not decrypt.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import secrets
from collections.abc import Callable
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from tongdai.core.errors import ConfigError

TEXT_PREFIX = "enc:"
_MAGIC = b"\x01"
SUBJECT_PREFIX = "s."  # key ids of per-identity keys (core/subjects.py)


class Erased(ValueError):
    """The value was encrypted with a customer's own key, destroyed when they were erased."""


# A per-identity key for encrypt_*: (key id, cipher). None: the data keys.
SubjectKey = tuple[str, AESGCM] | None


class Keyring:
    """The data keys (the first encrypts) and the blind-index key."""

    def __init__(self, keys: list[tuple[str, bytes]], index_key: bytes) -> None:
        if not keys:
            raise ValueError("a keyring needs at least one data key")
        self._aead = {kid: AESGCM(k) for kid, k in keys}
        self.active = keys[0][0]
        self._index_key = index_key
        # Finds a per-identity key by id (set by the Hub: they live in Redis); None: erased.
        self.subject_lookup: Callable[[str], AESGCM | None] | None = None

    def key_ids(self) -> list[str]:
        """The configured data keys' ids, the active one first."""
        return list(self._aead)

    # -- binary form ---------------------------------------------------------------------------
    def encrypt_bytes(self, data: bytes, purpose: bytes, subject: SubjectKey = None) -> bytes:
        kid_s, aead = subject if subject is not None else (self.active, self._aead[self.active])
        kid = kid_s.encode()
        nonce = secrets.token_bytes(12)
        return _MAGIC + bytes([len(kid)]) + kid + nonce + aead.encrypt(nonce, data, purpose)

    def decrypt_bytes(self, blob: bytes, purpose: bytes) -> bytes:
        if not blob.startswith(_MAGIC):
            return blob  # written before encryption was on
        n = blob[1]
        kid = blob[2:2 + n].decode()
        nonce, ct = blob[2 + n:14 + n], blob[14 + n:]
        if kid.startswith(SUBJECT_PREFIX):
            aead = self.subject_lookup(kid) if self.subject_lookup else None
            if aead is None:
                raise Erased(f"encrypted with the erased customer key {kid}")
            try:
                return aead.decrypt(nonce, ct, purpose)
            except InvalidTag:
                raise ValueError("ciphertext does not authenticate (wrong key or field)") from None
        try:
            return self._aead[kid].decrypt(nonce, ct, purpose)
        except KeyError:
            raise ValueError(f"data encrypted with key {kid!r}, which is not configured") from None
        except InvalidTag:
            raise ValueError("ciphertext does not authenticate (wrong key or field)") from None

    # -- text form -----------------------------------------------------------------------------
    def encrypt_text(self, text: str, purpose: bytes, subject: SubjectKey = None) -> str:
        raw = self.encrypt_bytes(text.encode(), purpose, subject)
        return TEXT_PREFIX + base64.b64encode(raw).decode()

    def decrypt_text(self, value: str | bytes | None, purpose: bytes) -> str | None:
        if value is None:
            return None
        if isinstance(value, bytes):
            value = value.decode()
        if not value.startswith(TEXT_PREFIX):
            return value  # written before encryption was on
        try:
            return self.decrypt_bytes(base64.b64decode(value[len(TEXT_PREFIX):]),
                                      purpose).decode()
        except Erased:
            return None  # the customer was erased: nothing to show

    def key_id_of(self, value: str | bytes) -> str | None:
        """Which key encrypted a value (for rotation), or None when it is in clear."""
        raw = value.encode() if isinstance(value, str) else value
        if raw.startswith(TEXT_PREFIX.encode()):
            raw = base64.b64decode(raw[len(TEXT_PREFIX):])
        if not raw.startswith(_MAGIC):
            return None
        return raw[2:2 + raw[1]].decode()

    # -- look-ups --------------------------------------------------------------------------------
    def blind_index(self, kind: str, value: str) -> str:
        """A stable, keyed digest of an identifier: equal values meet, the value stays hidden."""
        return hmac.new(self._index_key, f"{kind}:{value}".encode(),
                        hashlib.sha256).hexdigest()[:32]


def generate() -> dict[str, str]:
    """A fresh key set, as environment values."""
    kid = "k" + secrets.token_hex(3)
    return {"TONGDAI_DATA_KEYS": f"{kid}:{base64.b64encode(os.urandom(32)).decode()}",
            "TONGDAI_INDEX_KEY": base64.b64encode(os.urandom(32)).decode()}


def _parse(data_keys: str, index_key: str, where: str) -> Keyring:
    keys = []
    for n, part in enumerate(p.strip() for p in data_keys.split(",") if p.strip()):
        kid, sep, b64 = part.partition(":")
        try:
            key = base64.b64decode(b64, validate=True) if sep else b""
        except ValueError:
            key = b""
        if not kid or len(key) != 32:
            raise ConfigError(where, f"TONGDAI_DATA_KEYS[{n}]",
                              "each key is 'id:base64 of 32 random bytes'",
                              "run `tongdai keys generate` and use its output")
        keys.append((kid, key))
    try:
        index = base64.b64decode(index_key, validate=True)
    except ValueError:
        index = b""
    if len(index) != 32:
        raise ConfigError(where, "TONGDAI_INDEX_KEY", "must be the base64 of 32 random bytes",
                          "run `tongdai keys generate` and use its output")
    return Keyring(keys, index)


def load_keyring(data_dir: Path, create: bool = False) -> Keyring:
    """Keys from the environment, else ``<data_dir>/keys.json`` (created when ``create``)."""
    env_keys, env_index = os.environ.get("TONGDAI_DATA_KEYS"), os.environ.get("TONGDAI_INDEX_KEY")
    if env_keys or env_index:
        return _parse(env_keys or "", env_index or "", "environment")
    path = data_dir / "keys.json"
    if not path.exists():
        if not create:
            raise ConfigError(str(path), "(file)", "no encryption keys for customer data",
                              "set TONGDAI_DATA_KEYS and TONGDAI_INDEX_KEY (`tongdai keys "
                              "generate`), or run `tongdai up` once to create this file")
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump(generate(), f)
    stored = json.loads(path.read_text())
    return _parse(stored["TONGDAI_DATA_KEYS"], stored["TONGDAI_INDEX_KEY"], str(path))
