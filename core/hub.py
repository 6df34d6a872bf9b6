"""The Hub: one process's view of the running system (config, Redis, adapters, scripts).

Web workers, RQ workers and CLI commands each build one ``Hub`` and pass it down; nothing in
``core`` reaches for globals.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from functools import cached_property
from pathlib import Path
from typing import TypeVar

import httpx
import redis

from tongdai.adapters.base import Adapter
from tongdai.core import clock
from tongdai.core.config import LoadedConfig, load_config
from tongdai.core.crypto import Keyring, load_keyring
from tongdai.core.errors import NotFound
from tongdai.core.keys import Keys
from tongdai.core.scripts import Scripts

log = logging.getLogger(__name__)
T = TypeVar("T")
DEFAULT_DATA_DIR = "var"


def data_dir() -> Path:
    return Path(os.environ.get("TONGDAI_DATA_DIR", DEFAULT_DATA_DIR))


def redis_url() -> str | None:
    """``REDIS_URL`` when set, else the embedded server's socket in the data directory."""
    url = os.environ.get("REDIS_URL")
    if url:
        return url
    sock = data_dir().resolve() / "redis.sock"
    if sock.exists():
        return f"unix://{sock}?db=0"
    return None


# Every Redis wait the hub makes is bounded by its own BLOCK argument (15 s at most: the
# Flask stream's heartbeat); the socket timeout sits above that, set here rather than left to
# redis-py's default, which changed to 5 s in 8.x and cut 15 s blocking reads short.
SOCKET_TIMEOUT_S = 30.0


def connect(url: str) -> redis.Redis:
    """A client for the hub's Redis with the timeouts chosen here, not the library's."""
    return redis.Redis.from_url(url, socket_timeout=SOCKET_TIMEOUT_S, socket_connect_timeout=5,
                                health_check_interval=30)


class Hub:
    """Everything a process needs to work on the hub's data."""

    def __init__(self, config: LoadedConfig, r: redis.Redis, keyring: Keyring | None = None) -> None:
        self.config = config
        self.redis = r
        self.keyring = keyring or load_keyring(data_dir())
        self.keys = Keys(config.hub.redis.prefix)
        clock.follow(r)  # every time this process stores or compares is Redis's
        from tongdai.core.subjects import Subjects

        self.subjects = Subjects(self)  # per-identity keys: erase = destroy them
        self.keyring.subject_lookup = self.subjects.lookup
        self.scripts = Scripts(r, self.keys)
        self._memo: dict[str, object] = {}
        self.adapters: dict[str, Adapter] = {
            cid: cls(cid, settings) for cid, (cls, settings) in config.channel_settings.items()
        }
        from tongdai.core.credentials import RedisTokenStore

        replies = config.hub.replies
        timeout = httpx.Timeout(replies.platform_timeout, connect=min(5.0, replies.platform_timeout))
        for cid, adapter in self.adapters.items():
            adapter.token_store = RedisTokenStore(self, cid)
            adapter.http_timeout = timeout
        # (adapter name, platform account) → channel, for webhooks that serve several accounts
        self.account_channels: dict[tuple[str, str], str] = {
            (a.name, a.account_id): cid for cid, a in self.adapters.items() if a.account_id
        }

    def channel_for(self, receiving_channel: str, account_id: str | None) -> str | None:
        """The channel an event belongs to: the receiving one, or the channel configured for
        the event's platform account. None when that account has no channel here."""
        adapter = self.adapters[receiving_channel]
        if account_id is None or adapter.account_id in (None, account_id):
            return receiving_channel
        return self.account_channels.get((adapter.name, account_id))

    @classmethod
    def from_env(cls, config_path: str | None = None, url: str | None = None) -> Hub:
        """Load the config and connect to ``url`` / ``REDIS_URL`` / the embedded server."""
        config = load_config(config_path)
        url = url or redis_url()
        if url is None:
            raise RuntimeError(
                "no Redis to talk to: start the hub with `tongdai up` (embedded Redis) "
                "or set REDIS_URL")
        return cls(config, connect(url))

    def adapter(self, channel_id: str) -> Adapter:
        try:
            return self.adapters[channel_id]
        except KeyError:
            raise NotFound(f"no channel {channel_id!r} in {self.config.path}") from None

    @cached_property
    def blobs(self):
        """Where files customers send are kept (``storage.blobs``)."""
        from tongdai.core.blobs import BlobStore

        root = Path(self.config.hub.storage.blobs)
        return BlobStore(root if root.is_absolute() else data_dir() / root, self.keyring)

    def memo(self, name: str, build: Callable[[], T]) -> T:
        """A value derived from this hub's config, built once (the domain layers keep their
        tagger, router, own addresses, ... here rather than the hub knowing them)."""
        try:
            return self._memo[name]  # type: ignore[return-value]
        except KeyError:
            return self._memo.setdefault(name, build())  # type: ignore[return-value]

    @cached_property
    def shards(self) -> int:
        return self.config.hub.ingest.shards
