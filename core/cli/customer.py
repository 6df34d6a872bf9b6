"""`tongdai customer`: export, erase, merge and split customers; let one receive broadcasts
again."""

from __future__ import annotations

import os

import click

from tongdai.core.cli.base import main, open_hub
from tongdai.core.errors import TongdaiError


@main.group()
def customer() -> None:
    """Customers' data requests."""


@customer.command("export")
@click.argument("customer_id")
@click.option("--out", "out_path", default="-", show_default=True, help="file, or - for stdout")
def customer_export(customer_id: str, out_path: str) -> None:
    """Write everything held about a customer as JSON (decrypted): profile, identities,
    identifiers, channels, every conversation and message."""
    import orjson

    from tongdai.core.workspace.privacy import export_customer

    with open_hub() as hub:
        try:
            data = orjson.dumps(export_customer(hub, customer_id), option=orjson.OPT_INDENT_2)
        except TongdaiError as exc:
            raise click.ClickException(str(exc)) from None
    if out_path == "-":
        click.echo(data.decode())
    else:
        with open(out_path, "wb") as f:
            f.write(data)
        click.echo(f"wrote {out_path}", err=True)


@customer.command("erase")
@click.argument("customer_id")
@click.option("--yes", is_flag=True, help="do not ask for confirmation")
@click.option("--by", "actor", default=lambda: os.environ.get("USER", "admin"),
              help="who asked for it (recorded)")
def customer_erase(customer_id: str, yes: bool, actor: str) -> None:
    """Erase a customer (a deletion request): personal data, conversations, files and retained
    raw events go; anonymous counts stay. Export first if you must keep a copy."""
    from tongdai.core.workspace.privacy import erase_customer

    if not yes:
        click.confirm(f"Erase customer {customer_id} and all their conversations for good?",
                      abort=True)
    with open_hub() as hub:
        try:
            result = erase_customer(hub, customer_id, actor)
        except TongdaiError as exc:
            raise click.ClickException(str(exc)) from None
    click.echo(" ".join(f"{k}={v}" for k, v in result.items()))


@customer.command("merge")
@click.argument("target_id")
@click.argument("source_id")
@click.option("--why", required=True, help="why they are one person (audit log)")
@click.option("--by", "actor", default=lambda: os.environ.get("USER", "admin"))
def customer_merge(target_id: str, source_id: str, why: str, actor: str) -> None:
    """Merge customer SOURCE_ID into TARGET_ID (undo with `tongdai customer split`)."""
    from tongdai.core.identity import graph as identity

    with open_hub() as hub:
        try:
            m = identity.merge(hub, target_id, source_id, actor, why)
        except TongdaiError as exc:
            raise click.ClickException(str(exc)) from None
    click.echo(f"merge {m['id']}: customer {source_id} is now part of {target_id}")


@customer.command("split")
@click.argument("merge_id")
@click.option("--why", required=True, help="why they are two people (audit log)")
@click.option("--by", "actor", default=lambda: os.environ.get("USER", "admin"))
def customer_split(merge_id: str, why: str, actor: str) -> None:
    """Undo merge MERGE_ID: both customers back with their identities and conversations."""
    from tongdai.core.identity import graph as identity

    with open_hub() as hub:
        try:
            m = identity.split(hub, merge_id, actor, why)
        except TongdaiError as exc:
            raise click.ClickException(str(exc)) from None
    click.echo(f"merge {merge_id} split: customer {m['source_customer_id']} restored")


@customer.command("opt-in")
@click.argument("customer_id")
@click.option("--by", "actor", default=lambda: os.environ.get("USER", "admin"),
              help="who did it (audit log)")
def customer_opt_in(customer_id: str, actor: str) -> None:
    """Let broadcasts reach CUSTOMER_ID again (they asked for news after answering "stop")."""
    from tongdai.core.pipeline import store
    from tongdai.core.workspace.broadcast_optout import opt_in

    with open_hub() as hub:
        try:
            store.get_customer(hub, customer_id)
        except TongdaiError as exc:
            raise click.ClickException(str(exc)) from None
        was = opt_in(hub, customer_id, actor)
    if was is None:
        click.echo(f"customer {customer_id} had not opted out of broadcasts: nothing to do")
    else:
        from datetime import UTC, datetime

        when = datetime.fromtimestamp(int(was.get("ts", 0)) / 1000, UTC)
        click.echo(f"customer {customer_id} receives broadcasts again (had opted out "
                   f"{when:%Y-%m-%d %H:%M} UTC on {was.get('channel', '?')})")
