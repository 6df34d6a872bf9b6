"""`tongdai spikes`: spike alerts raised, and the current window checked now."""

from __future__ import annotations

import datetime as dt

import click

from tongdai.core import clock
from tongdai.core.cli.base import main, open_hub
from tongdai.core.config import parse_duration


@main.group()
def spikes() -> None:
    """Tags and channels far above their usual volume (docs/spikes.md)."""


def _when(ms: int) -> str:
    return dt.datetime.fromtimestamp(ms / 1000, dt.UTC).strftime("%Y-%m-%d %H:%M UTC")


@spikes.command("list")
@click.option("--since", default="7d", show_default=True, help="e.g. 2h, 7d")
@click.option("--limit", default=50, show_default=True)
def spikes_list(since: str, limit: int) -> None:
    """Alerts raised, newest first, with the broadcast link for each."""
    from tongdai.core.workspace import spike_alerts
    from tongdai.core.workspace import spikes as spikes_

    with open_hub() as hub:
        start = clock.now_ms() - int(parse_duration(since) * 1000)
        items = spikes_.recent_alerts(hub, start, limit)
        for a in items:
            click.echo(f"{_when(a['ts'])}  {a['dim']} {a['value']}: {a['count']} customers in "
                       f"{_when(a['since_ts'])[11:16]}–{_when(a['until_ts'])[11:16]} (usually "
                       f"{a['median']:g}, threshold {a['threshold']:g}, {a['baseline']}) "
                       f"on {', '.join(a['channels']) or '-'}\n"
                       f"    {spike_alerts.broadcast_url(hub, a)}")
        click.echo(f"{len(items)} alert(s)")


@spikes.command("check")
@click.option("--alert", is_flag=True, help="raise the alerts found (once per cooldown, as "
              "the reactor does)")
def spikes_check(alert: bool) -> None:
    """Check the current window of every tag and channel written about in it, now."""
    from tongdai.core.workspace import spikes as spikes_

    with open_hub() as hub:
        checks = spikes_.check_all(hub, alert=alert)
        cfg = hub.config.hub.spikes
        click.echo(f"window: the last {cfg.window / 60:g} min; sensitivity {cfg.sensitivity:g}, "
                   f"min_count {cfg.min_count}")
        for c in checks:
            mark = "SPIKE" if c.spike else "ok"
            raised = f"  alert {c.alert['id']}" if c.alert else ""
            click.echo(f"{mark:5}  {c.dim:7} {c.value:20} {c.count:5d}  usual "
                       f"{c.baseline.median:g} ({c.baseline.kind}, {c.baseline.samples} "
                       f"windows)  threshold {c.threshold:.1f}{raised}")
        click.echo(f"{len(checks)} checked, {sum(c.spike for c in checks)} spike(s)")
