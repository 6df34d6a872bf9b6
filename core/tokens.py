"""API bearer tokens. Only their SHA-256 is stored; the token itself is shown once."""

from __future__ import annotations

import hashlib
import secrets
import time

import orjson

from core.hub import Hub

ROLES = ("agent", "supervisor", "admin")


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def create(hub: Hub, name: str, role: str, teams: list[str] | tuple[str, ...] = ()) -> str:
    """A new token for ``name`` with ``role`` and ``teams`` (what it may see, like a user's);
    returns the token (not stored in clear)."""
    if role not in ROLES:
        raise ValueError(f"role must be one of {', '.join(ROLES)}")
    known = {t.id for t in hub.config.hub.teams}
    bad = [t for t in teams if t not in known]
    if bad:
        raise ValueError(f"unknown team(s) {', '.join(bad)}; teams are in {hub.config.path}")
    token = "td_" + secrets.token_urlsafe(32)
    record = {"name": name, "role": role, "teams": sorted(set(teams)),
              "created": int(time.time())}
    hub.redis.hset(hub.keys.tokens(), _digest(token), orjson.dumps(record))
    return token


def lookup(hub: Hub, token: str) -> dict | None:
    """The token's record (name, role) or None. A hash look-up: no timing on the secret."""
    raw = hub.redis.hget(hub.keys.tokens(), _digest(token))
    return orjson.loads(raw) if raw else None


def count(hub: Hub) -> int:
    return hub.redis.hlen(hub.keys.tokens())
