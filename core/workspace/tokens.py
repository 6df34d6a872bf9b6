"""API bearer tokens. Only their SHA-256 is stored; the token itself is shown once."""

from __future__ import annotations

import hashlib
import re
import secrets
import time

import orjson

from tongdai.core.hub import Hub

ROLES = ("agent", "supervisor", "admin")
# A token's name is who acts (author, idempotency scope, audit actor): a user-name shape, so
# "an:x" cannot share a scope with "an", nor a newline forge a log line.
_NAME = re.compile(r"[a-z0-9][a-z0-9_.-]{0,62}")
_SHOWN = b"api-token-shown"  # encryption purpose of a token kept for Idempotency-Key replays


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def create(hub: Hub, name: str, role: str, teams: list[str] | tuple[str, ...] = ()) -> str:
    """A new token for ``name`` with ``role`` and ``teams`` (what it may see, like a user's);
    returns the token (not stored in clear)."""
    if not _NAME.fullmatch(name or ""):
        raise ValueError("a token name is 1-63 lower-case letters, digits, '.', '_' or '-'")
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
    """The token's record (name, role) or None. A hash look-up: no timing on the secret. A
    token named after a disabled user stops working with the user's sessions."""
    raw = hub.redis.hget(hub.keys.tokens(), _digest(token))
    if not raw:
        return None
    record = orjson.loads(raw)
    if hub.redis.hget(hub.keys.user(str(record.get("name"))), "disabled") == b"1":
        return None
    return record


def count(hub: Hub) -> int:
    return hub.redis.hlen(hub.keys.tokens())


def revoke(hub: Hub, name: str) -> int:
    """Revoke every token named ``name``; returns how many there were."""
    gone = [d for d, raw in hub.redis.hgetall(hub.keys.tokens()).items()
            if orjson.loads(raw).get("name") == name]
    if gone:
        hub.redis.hdel(hub.keys.tokens(), *gone)
    return len(gone)


def seal_shown(hub: Hub, token: str) -> str:
    """The token as kept in an API answer for Idempotency-Key replays: encrypted, never in
    clear in Redis (only its hash is kept otherwise)."""
    return hub.keyring.encrypt_text(token, _SHOWN)


def reveal_shown(hub: Hub, sealed: str) -> str:
    return hub.keyring.decrypt_text(sealed, _SHOWN) or ""
