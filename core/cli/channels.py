"""`tongdai channels`: platform set-up steps (Telegram webhook, Zalo OAuth, trying a
declarative channel's mapping); list / check / disable / enable / add / remove live in
core/cli/channel_admin.py."""

from __future__ import annotations

import re

import click

from tongdai.core.cli.base import configured_adapter, main, of_platform, open_hub
from tongdai.core.errors import TongdaiError


@main.group()
def channels() -> None:
    """Channels: health, credential checks, disable/enable, add/remove; platform set-up."""


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


@channels.group("webhook")
def channels_webhook() -> None:
    """Declarative channels (adapter: webhook, docs/webhook-adapter.md)."""


@channels_webhook.command("try")
@click.argument("channel_id")
@click.argument("body", type=click.File("rb"))
@click.option("--reply", default=None, help="also show the request a reply with this text "
              "would make to the first event's sender (nothing is sent)")
def webhook_try(channel_id: str, body, reply: str | None) -> None:
    """Read a sample webhook BODY (a file, or - for stdin) with the channel's mapping and print
    the events it gives; nothing is stored or sent. Exit 1 when the mapping cannot read one."""
    from datetime import UTC, datetime

    from tongdai.adapters.base import OutboundMessage
    from tongdai.core.models import AuthorKind, RawEvent

    adapter = configured_adapter(channel_id, "webhook")
    now = int(datetime.now(UTC).timestamp() * 1000)
    try:
        events = adapter.parse(RawEvent(channel_id, body.read(), {}, now))
    except TongdaiError as exc:
        raise click.ClickException(str(exc)) from None
    failed = [e.unmatched for e in events if e.unmatched]
    events = [e for e in events if not e.unmatched]
    for e in events:
        at = datetime.fromtimestamp(e.platform_ts_ms / 1000, UTC).isoformat(timespec="seconds")
        parts = [f"{e.kind.value} ({e.platform_type})", f"key={e.dedupe_key}",
                 f"customer={e.external_user_id}", f"at={at}"]
        parts += [f"{k}={v}" for k, v in (
            ("address", e.address if e.address != e.external_user_id else None),
            ("name", e.profile.get("name")), ("reply_to", e.reply_to),
            ("target", ",".join(e.target_ids)), ("payload", e.payload),
            ("attachments", ",".join(a.kind for a in e.attachments))) if v]
        click.echo("  ".join(parts))
        if e.text is not None:
            click.echo(f"    text: {e.text}")
    click.echo(f"{len(events)} event(s)" + ("" if events or failed else
                                            " (ignored or empty: nothing would be stored)"))
    if reply is not None and events:
        first = events[0]
        out = OutboundMessage(first.address or first.external_user_id, reply, AuthorKind.AGENT,
                              "preview-1", reply_to_external_id=first.dedupe_key)
        url, headers, sent = adapter.request(out, masked=True)
        click.echo(f"reply: {adapter.settings.send.method} {url}")
        for k, v in headers.items():
            click.echo(f"    {k}: {v}")
        click.echo(f"    {sent.decode()}")
    if failed:
        click.echo(failed[0], err=True)
        raise SystemExit(1)
