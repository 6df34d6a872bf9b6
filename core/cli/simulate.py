"""`tongdai simulate`: hand the hub a platform's event without the platform."""

from __future__ import annotations

import sys

import click
import httpx

from tongdai.core.cli.base import configured_adapter, main


@main.command()
@click.argument("platform")
@click.option("--channel", "channel_id", required=True)
@click.option("--text", required=True)
@click.option("--user-id", default="700000001", show_default=True)
@click.option("--name", default=None, help="the customer's name [default: Khách Demo; email: "
              "from the address, lan.nguyen@… → Lan Nguyen]")
@click.option("--from", "sender", default="khach.demo@example.vn", show_default=True,
              help="email: the customer's address")
@click.option("--subject", default="Hỗ trợ đơn hàng", show_default=True, help="email: subject")
@click.option("--url", default="http://127.0.0.1:8000", show_default=True, help="the running hub")
def simulate(platform: str, channel_id: str, text: str, user_id: str, name: str | None,
             sender: str, subject: str, url: str) -> None:
    """Send a correctly signed inbound event to a running hub, as the platform would.

    Email goes to the channel's SMTP listener when it has one, else to its webhook.
    """
    adapter = configured_adapter(channel_id, platform)
    if name is None:  # two mails from two addresses look like two people
        local = sender.partition("@")[0].replace(".", " ").replace("_", " ").strip()
        name = local.title() if platform == "email" and local else "Khách Demo"
    if platform == "email" and adapter.settings.inbound.smtp is not None:
        import smtplib

        listen = adapter.settings.inbound.smtp
        mime = adapter.compose(sender, name, subject, text)
        try:
            with smtplib.SMTP(listen.host, listen.port, timeout=30) as conn:
                conn.sendmail(sender, [adapter.settings.address], mime)
        except OSError as exc:
            raise click.ClickException(
                f"no SMTP listener at {listen.host}:{listen.port} ({type(exc).__name__}): start "
                "the hub with `tongdai up` (or `tongdai smtp`)") from None
        click.echo(f"250 mail from {sender} handed to {listen.host}:{listen.port}")
        return
    if platform == "email":
        headers, body = adapter.webhook_post(adapter.compose(sender, name, subject, text))
    else:
        headers, body = adapter.simulate(text, user_id, name)
    target = f"{url.rstrip('/')}/webhooks/{channel_id}"
    try:
        resp = httpx.post(target, content=body, headers=headers, timeout=15)
    except httpx.HTTPError as exc:
        raise click.ClickException(f"no hub at {url} ({type(exc).__name__}): start it with "
                                   "`tongdai up`, or give its address with --url") from None
    click.echo(f"{resp.status_code} {resp.text.strip()}")
    if resp.status_code != 200:
        sys.exit(1)
