"""Rotating channel credentials on Redis: the core's implementation of ``TokenStore``.

Zalo's refresh tokens are single-use: two workers refreshing at once would burn the pair and
lock the channel out. Rotation therefore happens under a lock that only its owner releases
(compare-and-delete), re-reads the stored pair first (another worker may have rotated already)
and persists the new pair before anyone uses it.
"""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the hub builds these stores: no import at run time (no cycle)
    from tongdai.core.hub import Hub

log = logging.getLogger(__name__)
LOCK_MS = 30_000
WAIT_S = 35.0


class RotationBusy(RuntimeError):
    """Another worker held the rotation lock for longer than a refresh can take."""


class RedisTokenStore:
    """One channel's current token pair, shared by every process of the hub."""

    def __init__(self, hub: Hub, channel_id: str) -> None:
        self.hub = hub
        self.channel_id = channel_id
        self.key = hub.keys.credentials(channel_id)
        self.lock_key = hub.keys.credentials_lock(channel_id)

    def current(self) -> dict[str, str] | None:
        h = self.hub.redis.hgetall(self.key)
        if not h:
            return None
        return {k.decode(): v.decode() for k, v in h.items()}

    def save(self, pair: dict[str, str]) -> None:
        fields = {k: pair[k] for k in ("access_token", "refresh_token") if pair.get(k)}
        fields["rotated_at"] = str(int(time.time()))
        if str(pair.get("expires_in", "")).isdigit():  # for `tongdai channels list`
            fields["access_expires_at"] = str(int(time.time()) + int(pair["expires_in"]))
        self.hub.redis.hset(self.key, mapping=fields)

    def rotate(self, used_access_token: str,
               refresh: Callable[[str], dict[str, str]]) -> dict[str, str]:
        owner = secrets.token_hex(8)
        deadline = time.monotonic() + WAIT_S
        while not self.hub.redis.set(self.lock_key, owner, nx=True, px=LOCK_MS):
            if time.monotonic() > deadline:
                raise RotationBusy(f"token rotation of {self.channel_id} is stuck")
            time.sleep(0.05)
        try:
            stored = self.current()
            if stored and stored.get("access_token") != used_access_token:
                return stored  # someone rotated while we waited: use theirs
            refresh_token = (stored or {}).get("refresh_token") or self._initial_refresh_token()
            pair = refresh(refresh_token)
            self.save(pair)  # persisted before anyone uses it
            log.info("rotated the access token of channel %s", self.channel_id)
            return self.current() or pair
        finally:
            self.hub.scripts.release_lock(keys=[self.lock_key], args=[owner])

    def _initial_refresh_token(self) -> str:
        settings = self.hub.adapter(self.channel_id).settings
        token = getattr(settings, "refresh_token", None)
        return token.get_secret_value() if token is not None else ""
