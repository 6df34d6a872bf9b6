"""`tongdai agentmail`: the agents' daily digest by hand."""

from __future__ import annotations

import click

from tongdai.core.cli.base import main, open_hub


@main.group()
def agentmail() -> None:
    """Agents' mail: assignment notifications, replies by mail, digests."""


@agentmail.command("digest")
@click.option("--day", default=None, help="YYYY-MM-DD (default: today); each agent gets one a day")
def agentmail_digest(day: str | None) -> None:
    """Mail every agent with an address their conversations waiting for a reply, now."""
    from tongdai.core.workspace import agentmail_notices as mails

    with open_hub() as hub:
        click.echo(f"{mails.send_digests(hub, day)} digest(s) sent")
