"""`tongdai users`: console users."""

from __future__ import annotations

import os

import click

from tongdai.core.cli.base import main, open_hub


@main.group()
def users() -> None:
    """Agents, supervisors and admins who log in to the console."""


@users.command("add")
@click.argument("name")
@click.option("--role", type=click.Choice(["agent", "supervisor", "admin"]), default="agent",
              show_default=True)
@click.option("--team", "teams", multiple=True, help="a team of teams: in the config (repeat)")
@click.option("--display-name", default="", help="shown to colleagues (default: NAME)")
@click.option("--email", default=None, help="assignment notifications; replies from it count")
@click.option("--telegram-id", type=int, default=None, help="their Telegram user id (staff group)")
@click.option("--capacity", type=int, default=None, help="open conversations at once")
@click.password_option(prompt="Password", help="prompted for when not given")
def users_add(name: str, role: str, teams: tuple[str, ...], display_name: str, email: str | None,
              telegram_id: int | None, capacity: int | None, password: str) -> None:
    """Add a user (the first admin: tongdai users add NAME --role admin)."""
    from tongdai.core.errors import TongdaiError
    from tongdai.core.workspace import audit
    from tongdai.core.workspace import users as u

    with open_hub() as hub:
        try:
            u.create(hub, u.User(name=name, role=role, display_name=display_name,
                                 teams=list(teams), email=email, telegram_user_id=telegram_id,
                                 capacity=capacity), password)
        except TongdaiError as exc:
            raise click.ClickException(str(exc)) from None
        audit.record(hub, os.environ.get("USER", "cli"), "user.created", name, {"role": role})
        click.echo(f"user {name} ({role}) added")


@users.command("list")
def users_list() -> None:
    """Every user with role, teams and whether they can log in."""
    from tongdai.core.workspace import users as u

    with open_hub() as hub:
        for user in u.all_users(hub):
            state = "disabled" if user.disabled else "active"
            click.echo(f"{user.name}\t{user.role}\t{','.join(user.teams) or '-'}\t{state}")


@users.command("passwd")
@click.argument("name")
@click.password_option(prompt="New password")
def users_passwd(name: str, password: str) -> None:
    """Set a user's password (ends their console sessions)."""
    from tongdai.core.errors import TongdaiError
    from tongdai.core.workspace import audit
    from tongdai.core.workspace import users as u

    with open_hub() as hub:
        try:
            u.set_password(hub, name, password)
        except TongdaiError as exc:
            raise click.ClickException(str(exc)) from None
        audit.record(hub, os.environ.get("USER", "cli"), "user.password", name)
        click.echo(f"password of {name} changed; their sessions ended")


@users.command("unlock")
@click.argument("name")
@click.option("--address", default=None, help="also the client address that was locked")
def users_unlock(name: str, address: str | None) -> None:
    """End a log-in lock now (too many wrong passwords), instead of waiting console.lockout."""
    from tongdai.core.workspace import audit
    from tongdai.core.workspace import users as u

    with open_hub() as hub:
        n = u.unlock(hub, name, address)
        audit.record(hub, os.environ.get("USER", "cli"), "user.unlock", name)
    click.echo(f"{name}: {'unlocked' if n else 'was not locked'}")
