"""`tongdai deadletter` and `tongdai replay`: what could not be ingested, and running events again."""

from __future__ import annotations

import click

from tongdai.core import clock
from tongdai.core.cli.base import main, open_hub
from tongdai.core.config import parse_duration


@main.group()
def deadletter() -> None:
    """Events that could not be processed."""


@deadletter.command("list")
@click.option("--limit", default=100, show_default=True)
def deadletter_list(limit: int) -> None:
    """Show dead letters with their errors."""
    from tongdai.core.pipeline import rawlog

    with open_hub() as hub:
        items = rawlog.dead_letters(hub, limit)
        for dl_id, raw, error, _at in items:
            click.echo(f"{dl_id}  channel={raw.channel_id}  raw={raw.id}  {len(raw.body)} bytes\n"
                       f"    {error}")
        click.echo(f"{len(items)} dead letter(s)")


@deadletter.command("replay")
@click.argument("dl_id")
def deadletter_replay(dl_id: str) -> None:
    """Run a dead letter through the pipeline again (after fixing its cause)."""
    from tongdai.core.pipeline import ingest

    with open_hub() as hub:
        result = ingest.replay_dead_letter(hub, dl_id)
        if result is None:
            raise click.ClickException(f"no dead letter {dl_id}")
        if result.dead:
            raise click.ClickException("it failed again; see `tongdai deadletter list`")
        click.echo(f"replayed: {result.stored} stored, {result.duplicates} already there")


@main.command()
@click.option("--since", "since", required=True, help="e.g. 30m, 2h, 3d")
def replay(since: str) -> None:
    """Run retained raw events again, idempotently (nothing is stored twice)."""
    from tongdai.core.pipeline import ingest, rawlog

    seconds = parse_duration(since)
    with open_hub() as hub:
        totals = ingest.IngestResult()
        for batch in rawlog.since(hub, clock.now_ms() - int(seconds * 1000)):
            r = ingest.process(hub, batch.events)
            totals.stored += r.stored
            totals.duplicates += r.duplicates
            totals.dead += r.dead
        click.echo(f"replayed: {totals.stored} new, {totals.duplicates} already stored, "
                   f"{totals.dead} dead-lettered")
