"""API bearer tokens. Only their SHA-256 is stored; the token itself is shown once."""

from __future__ import annotations

import hashlib
import secrets
import time

import orjson

from core.hub import Hub

ROLES = ("admin", "agent")


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def create(hub: Hub, name: str, role: str) -> str:
    """A new token for ``name`` with ``role``; returns the token (not stored in clear)."""
    if role not in ROLES:
        raise ValueError(f"role must be one of {', '.join(ROLES)}")
    token = "td_" + secrets.token_urlsafe(32)
    record = {"name": name, "role": role, "created": int(time.time())}
    hub.redis.hset(hub.keys.tokens(), _digest(token), orjson.dumps(record))
    return token


def lookup(hub: Hub, token: str) -> dict | None:
    """The token's record (name, role) or None. A hash look-up: no timing on the secret."""
    raw = hub.redis.hget(hub.keys.tokens(), _digest(token))
    return orjson.loads(raw) if raw else None


def count(hub: Hub) -> int:
    return hub.redis.hlen(hub.keys.tokens())
