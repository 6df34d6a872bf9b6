"""`tongdai bench`: the project's benchmark (tongdai.benchmarks)."""

from __future__ import annotations

import click

from tongdai.core.cli.base import main


@main.command()
@click.option("--json", "as_json", is_flag=True, help="one JSON object on stdout")
@click.option("--quick", is_flag=True, help="smaller runs (a smoke test of the benchmark)")
def bench(as_json: bool, quick: bool) -> None:
    """Measure speed as ratios against baselines run here, now (see benchmarks/)."""
    from tongdai.benchmarks.run import main as run_bench

    run_bench(as_json=as_json, quick=quick)
