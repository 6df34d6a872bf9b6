"""`tongdai search`: the search index of this node (core/workspace/search_index.py)."""

from __future__ import annotations

import click

from tongdai.core.cli.base import main, open_hub


@main.group()
def search() -> None:
    """The search index: rebuild it, see what it holds."""


@search.command("reindex")
def search_reindex() -> None:
    """Rebuild this node's search index from Redis: every conversation's messages and every
    customer. Runs online: searches meanwhile find what is indexed so far, and the search
    reactor keeps adding new messages."""
    from tongdai.core.workspace import search_feed, search_index

    with open_hub() as hub, click.progressbar(length=1, label="conversations") as bar:
        def progress(done: int, total: int) -> None:
            bar.length = max(total, 1)
            bar.update(done - bar.pos)

        counts = search_feed.reindex(hub, progress=progress)
    click.echo(f"indexed {counts['messages']:,} messages of {counts['conversations']:,} "
               f"conversations and {counts['customers']:,} customers into "
               f"{search_index.path()}")


@search.command("status")
def search_status() -> None:
    """Where this node's index is, and how much it holds."""
    from tongdai.core.workspace import search_index

    index = search_index.open_index()
    messages, customers = index.count()
    built = index.get_state("built") is not None
    size = sum(p.stat().st_size for p in index.path.parent.glob(index.path.name + "*"))
    click.echo(f"{index.path}: {messages:,} messages, {customers:,} customers, "
               f"{size / 1e6:.1f} MB" + ("" if built else
                                        " — never built: run `tongdai search reindex`"))
