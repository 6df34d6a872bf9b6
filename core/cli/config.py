"""`tongdai config`: validate the configuration."""

from __future__ import annotations

import click

from tongdai.core.cli.base import config_or_exit, main


@main.group()
def config() -> None:
    """Configuration."""


@config.command("check")
@click.option("--file", "path", default=None, help="default: $TONGDAI_CONFIG or config/tongdai.yaml")
def config_check(path: str | None) -> None:
    """Validate the configuration, every channel's settings included."""
    cfg = config_or_exit(path)
    click.echo(f"{cfg.path}: OK — {len(cfg.channel_settings)} channel(s): "
               f"{', '.join(cfg.channel_settings) or 'none'}")
