"""`tongdai bench`: the project's benchmark (tongdai.benchmarks)."""

from __future__ import annotations

import click

from tongdai.core.cli.base import main


@main.command()
@click.option("--json", "as_json", is_flag=True, help="one JSON object on stdout")
@click.option("--quick", is_flag=True, help="smaller runs (a smoke test of the benchmark)")
@click.option("--section", "sections", multiple=True,
              help="run only this section (repeatable): webhook, ingest, rules, latency, ...")
def bench(as_json: bool, quick: bool, sections: tuple[str, ...]) -> None:
    """Measure speed as ratios against baselines run here, now (see benchmarks/)."""
    from tongdai.benchmarks.run import main as run_bench

    run_bench(as_json=as_json, quick=quick, only=sections)
