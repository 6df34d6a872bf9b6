"""`tongdai channels`: platform set-up steps (Telegram webhook, Zalo OAuth)."""

from __future__ import annotations

import re

import click

from tongdai.core.cli.base import configured_adapter, main, of_platform, open_hub
from tongdai.core.errors import TongdaiError


@main.group()
def channels() -> None:
    """Platform-specific channel operations."""


@channels.group("telegram")
def channels_telegram() -> None:
    """Telegram channels."""


@channels_telegram.command("set-webhook")
@click.argument("channel_id")
@click.option("--url", required=True, help="public base URL of the hub, or the full webhook URL")
def telegram_set_webhook(channel_id: str, url: str) -> None:
    """Point the bot at this hub (setWebhook with the channel's secret token)."""
    adapter = configured_adapter(channel_id, "telegram")
    if not re.search(r"/webhooks/[^/]+$", url):
        url = f"{url.rstrip('/')}/webhooks/{channel_id}"
    try:
        result = adapter.set_webhook(url)
    except TongdaiError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"webhook set to {url}: {result}")


@channels.group("zalo")
def channels_zalo() -> None:
    """Zalo OA channels."""


@channels_zalo.command("authorize")
@click.argument("channel_id")
@click.option("--code", required=True, help="the authorization code Zalo's OAuth page returned")
def zalo_authorize(channel_id: str, code: str) -> None:
    """Exchange an OAuth code for the OA's first token pair, stored for every worker."""
    with open_hub() as hub:
        adapter = of_platform(hub.adapter(channel_id), "zalo")  # tokens go to Redis
        try:
            adapter.exchange_code(code)
        except TongdaiError as exc:
            raise click.ClickException(str(exc)) from None
        click.echo(f"{channel_id}: authorized; the token pair is stored and rotates by itself")
