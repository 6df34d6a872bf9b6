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


def with_socket_timeout(client: redis.Redis, socket_timeout: float) -> redis.Redis:
    """A client of the same Redis with its own pool and another socket timeout: for a use whose
    blocking command waits longer than ``SOCKET_TIMEOUT_S`` (RQ's BLPOP). A pool's timeout
    cannot be raised in place: connections it already made keep the old one."""
    pool = client.connection_pool
    kwargs = dict(pool.connection_kwargs, socket_timeout=socket_timeout)
    return redis.Redis(connection_pool=redis.ConnectionPool(
        connection_class=pool.connection_class, **kwargs))


class _Snapshot:
    """What one version of the config makes: swapped as one reference, so a reader sees one
    version whole (code that took the old one finishes with it)."""

    __slots__ = ("account_channels", "adapters", "config", "generation", "memo")

    def __init__(self, config: LoadedConfig, adapters: dict[str, Adapter], generation: int) -> None:
        self.config = config
        self.adapters = adapters
        # (adapter name, platform account) → channel, for webhooks that serve several accounts
        self.account_channels: dict[tuple[str, str], str] = {
            (a.name, a.account_id): cid for cid, a in adapters.items() if a.account_id}
        self.memo: dict[str, object] = {}
        self.generation = generation


class Hub:
    """Everything a process needs to work on the hub's data."""

    def __init__(self, config: LoadedConfig, r: redis.Redis, keyring: Keyring | None = None) -> None:
        self.redis = r
        self.keyring = keyring or load_keyring(data_dir())
        self.keys = Keys(config.hub.redis.prefix)  # redis.* needs a restart (config_watch.py)
        clock.follow(r)  # every time this process stores or compares is Redis's
        from tongdai.core.subjects import Subjects

        self.subjects = Subjects(self)  # per-identity keys: erase = destroy them
        self.keyring.subject_lookup = self.subjects.lookup
        self.scripts = Scripts(r, self.keys)
        self._snap = _Snapshot(config, self._adapters_for(config, {}), 1)

    # The running config and what is built from it; ``apply_config`` swaps them all at once.
    @property
    def config(self) -> LoadedConfig:
        return self._snap.config

    @property
    def adapters(self) -> dict[str, Adapter]:
        return self._snap.adapters

    @property
    def account_channels(self) -> dict[tuple[str, str], str]:
        return self._snap.account_channels

    @property
    def generation(self) -> int:
        """1 for the config the process started with, +1 for each edit applied since."""
        return self._snap.generation

    def apply_config(self, config: LoadedConfig) -> None:
        """Run ``config`` from now on: adapters whose settings changed are built anew (the
        others kept, with their open connections), memo'd values rebuilt on first use. The
        caller has checked that nothing in it needs a restart (``core/config_watch.py``)."""
        old = self._snap
        self._snap = _Snapshot(config, self._adapters_for(config, old.adapters),
                               old.generation + 1)

    def _adapters_for(self, config: LoadedConfig, current: dict[str, Adapter]) -> dict[str, Adapter]:
        from tongdai.core.credentials import RedisTokenStore

        replies = config.hub.replies
        timeout = httpx.Timeout(replies.platform_timeout, connect=min(5.0, replies.platform_timeout))
        out: dict[str, Adapter] = {}
        for cid, (cls, settings) in config.channel_settings.items():
            kept = current.get(cid)
            if (kept is not None and type(kept) is cls and kept.settings == settings
                    and kept.http_timeout == timeout):
                out[cid] = kept
                continue
            adapter = out[cid] = cls(cid, settings)
            adapter.token_store = RedisTokenStore(self, cid)
            adapter.http_timeout = timeout
        return out

    @cached_property
    def watch(self):
        """This process's eye on its config file (``core/config_watch.py``)."""
        from tongdai.core.config_watch import ConfigWatch

        return ConfigWatch(self)

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
        """Where files customers send are kept (``storage.blobs``: needs a restart)."""
        from tongdai.core.blobs import BlobStore

        root = Path(self.config.hub.storage.blobs)
        return BlobStore(root if root.is_absolute() else data_dir() / root, self.keyring)

    def memo(self, name: str, build: Callable[[], T]) -> T:
        """A value derived from this hub's config, built once per config version (the domain
        layers keep their tagger, router, own addresses, ... here rather than the hub knowing
        them). An applied edit starts an empty memo: each value is rebuilt from the new config
        at its first use."""
        memo = self._snap.memo
        try:
            return memo[name]  # type: ignore[return-value]
        except KeyError:
            return memo.setdefault(name, build())  # type: ignore[return-value]

    @cached_property
    def shards(self) -> int:
        return self.config.hub.ingest.shards  # needs a restart (the streams' layout)
