"""What every command group shares: the ``main`` group, logging, the config, a Hub."""

from __future__ import annotations

import contextlib
import logging
import sys
from collections.abc import Iterator

import click

import tongdai.core.workspace  # noqa: F401  (registers the workspace on the pipeline's hooks)
from tongdai.core.config import ConfigInvalid, load_config

log = logging.getLogger("tongdai")


def setup_logging(level: int = logging.INFO) -> None:
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # httpx logs every request URL at INFO, and Telegram's URLs carry the bot token.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    logging.getLogger("httpcore").setLevel(logging.WARNING)


def config_or_exit(path: str | None = None):
    try:
        return load_config(path)
    except ConfigInvalid as exc:
        click.echo("Configuration errors:", err=True)
        for e in exc.errors:
            click.echo(f"  {e}", err=True)
        sys.exit(2)


def configured_adapter(channel_id: str, platform: str):
    """The adapter of a configured channel of ``platform`` (no Redis), or a usage error."""
    cfg = config_or_exit()
    if channel_id not in cfg.channel_settings:
        raise click.UsageError(f"no channel {channel_id!r} in {cfg.path}")
    cls, settings = cfg.channel_settings[channel_id]
    return of_platform(cls(channel_id, settings), platform)


def of_platform(adapter, platform: str):
    if adapter.name != platform:
        raise click.UsageError(
            f"channel {adapter.channel_id!r} is a {adapter.name} channel, not {platform}")
    return adapter


@contextlib.contextmanager
def open_hub() -> Iterator:
    """A Hub on REDIS_URL, the running embedded server, or one started just for this command."""
    from tongdai.core.crypto import load_keyring
    from tongdai.core.errors import ConfigError
    from tongdai.core.hub import Hub, connect, data_dir, redis_url
    from tongdai.core.redis_server import EmbeddedRedis

    config = config_or_exit()
    url = redis_url()
    embedded = url is None or url.startswith("unix://")
    server = None
    if url is None:
        here = data_dir().resolve()
        if not (here / "keys.json").exists() and not any(here.glob("appendonly*")):
            # no hub has ever run here: a user or token made now would land in a new, empty
            # store that no running hub reads
            raise click.ClickException(
                f"no hub data in {here} (and no REDIS_URL): start the hub with `tongdai up` "
                "first, or point this command at it: TONGDAI_DATA_DIR=<the hub's data dir> "
                "(tongdai up --data-dir) or REDIS_URL=<its Redis>")
        server = EmbeddedRedis(data_dir(), config.hub.redis.appendfsync)
        server.start()
        url = server.url

    try:  # a local, embedded set-up gets its key file; elsewhere keys must be provided
        keyring = load_keyring(data_dir(), create=embedded)
    except ConfigError as exc:
        if server is not None:
            server.stop()
        raise click.ClickException(str(exc)) from None
    hub = Hub(config, connect(url), keyring)
    try:
        yield hub
    finally:
        if server is not None:
            server.stop()


@click.group()
def main() -> None:
    """tongdai — omnichannel customer-support hub."""
    setup_logging()
