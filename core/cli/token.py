"""`tongdai token`: API tokens."""

from __future__ import annotations

import os

import click

from tongdai.core.cli.base import main, open_hub


@main.group()
def token() -> None:
    """API tokens."""


@token.command("create")
@click.option("--name", required=True)
@click.option("--role", type=click.Choice(["agent", "supervisor", "admin"]), default="agent",
              show_default=True)
@click.option("--team", "teams", multiple=True, help="a team it may see (repeat); admins see all")
def token_create(name: str, role: str, teams: tuple[str, ...]) -> None:
    """Print a new bearer token (alone on stdout); only its hash is stored."""
    from tongdai.core.workspace import tokens

    with open_hub() as hub:
        try:
            click.echo(tokens.create(hub, name, role, teams))
        except ValueError as exc:
            raise click.ClickException(str(exc)) from None


@token.command("revoke")
@click.argument("name")
def token_revoke(name: str) -> None:
    """Revoke every API token named NAME (they stop working at once)."""
    from tongdai.core.workspace import audit, tokens

    with open_hub() as hub:
        n = tokens.revoke(hub, name)
        if n:
            audit.record(hub, os.environ.get("USER", "cli"), "token.revoked", name, {"count": n})
        click.echo(f"revoked {n} token(s) named {name}")
