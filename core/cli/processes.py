"""The long-running processes one by one (Procfile lines): worker, smtp, imap, reactor, scheduler."""

from __future__ import annotations

import click

from tongdai.core.cli.base import main, open_hub, setup_logging


@main.command()
@click.option("--queues", default="ingest", show_default=True,
              help="ingest, replies (agents' replies), background (profile fetches, "
                   "acknowledgements), hooks (outgoing webhooks); comma-separated")
@click.option("--burst", is_flag=True, help="exit when the queues are empty")
def worker(queues: str, burst: bool) -> None:
    """An RQ worker. Needs REDIS_URL or a running `tongdai up`."""
    from tongdai.core.hub import Hub
    from tongdai.worker.main import QUEUES, run_worker

    names = tuple(q.strip() for q in queues.split(",") if q.strip())
    unknown = [q for q in names if q not in QUEUES]
    if unknown or not names:
        raise click.UsageError(f"--queues takes {', '.join(QUEUES)}; got {queues!r}")
    run_worker(Hub.from_env(), queues=names, burst=burst)


@main.command()
def smtp() -> None:
    """Receive mail for the email channels that have inbound.smtp (aiosmtpd listener)."""
    from tongdai.webhooks import smtp as listener

    setup_logging()
    with open_hub() as hub:
        listener.serve(hub)


@main.command()
def imap() -> None:
    """Fetch mail for the email channels that have inbound.imap (one process is enough)."""
    from tongdai.worker import imap as pollers

    setup_logging()
    with open_hub() as hub:
        pollers.serve(hub)


@main.command()
def reactor() -> None:
    """Runs the change feed's reactors: auto-assignment, outgoing webhooks, the Telegram staff
    group, agents' mail (run one or more)."""
    from tongdai.core.hub import Hub
    from tongdai.worker.reactors import run_reactors

    run_reactors(Hub.from_env())


@main.command()
def scheduler() -> None:
    """Keeps ingest loops running and trims the raw log (run one or more; idempotent)."""
    from tongdai.core.hub import Hub
    from tongdai.worker.main import run_scheduler

    run_scheduler(Hub.from_env())
