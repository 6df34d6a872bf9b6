"""`tongdai broadcast`: a proactive message to a segment of customers — create, dry-run, send
(with a progress bar; resumes after a crash), status, report."""

from __future__ import annotations

import re
from datetime import datetime

import click
import orjson

from tongdai.core.cli.base import main, open_hub
from tongdai.core.errors import TongdaiError

_AGO = re.compile(r"^(\d+)\s*([mhd])$")


def _when(value: str | None, now_ms: int) -> int | None:
    """``2h`` / ``30m`` / ``1d`` ago, an ISO date or time (local), or ms since the epoch."""
    if not value:
        return None
    if m := _AGO.match(value.strip()):
        return now_ms - int(m.group(1)) * {"m": 60, "h": 3600, "d": 86400}[m.group(2)] * 1000
    if value.isdigit():
        return int(value)
    try:
        return int(datetime.fromisoformat(value).timestamp() * 1000)
    except ValueError:
        raise click.BadParameter(f"{value!r}: use 2h, 30m, 1d, an ISO time or ms") from None


def _cli_principal():
    from tongdai.core.workspace.access import Principal

    return Principal("cli", "admin")


@main.group()
def broadcast() -> None:
    """Proactive messages to a segment of customers (docs/workspace.md#broadcasts)."""


@broadcast.command("create")
@click.option("--name", default="", help="what it is about (shown in lists)")
@click.option("--tag", help="customers whose conversation carries this tag")
@click.option("--since", help="active since: 2h, 30m, 1d, an ISO time or ms")
@click.option("--until", help="started before: same forms")
@click.option("--channel", "channels", multiple=True, help="only these channels (repeat)")
@click.option("--attr", "attrs", multiple=True, help="tier=vip, lang=vi, queue=billing, "
              "status=open (repeat)")
@click.option("--conversation", "conversations", multiple=True,
              help="the customers of these conversations instead (repeat)")
@click.option("--text", help="the template for every channel and language ('*')")
@click.option("--template", "templates", multiple=True,
              help="KEY=TEXT: KEY is a language (vi, en, zh), a channel id or channel:lang")
def broadcast_create(name, tag, since, until, channels, attrs, conversations, text,
                     templates) -> None:
    """Create a broadcast (nothing is sent); prints its id. Variables: {{customer.name}},
    {{customer.first_name}}, {{conversation.id}}."""
    from tongdai.core.clock import now_ms
    from tongdai.core.workspace import broadcast as bc

    tpl = {"*": text} if text else {}
    for t in templates:
        key, sep, value = t.partition("=")
        if not sep:
            raise click.BadParameter(f"{t!r}: use KEY=TEXT", param_hint="--template")
        tpl[key.strip()] = value
    attributes = {}
    for a in attrs:
        key, sep, value = a.partition("=")
        if not sep:
            raise click.BadParameter(f"{a!r}: use KEY=VALUE", param_hint="--attr")
        attributes[key.strip()] = value.strip()
    with open_hub() as hub:
        now = now_ms()
        seg = {"tag": tag, "since": _when(since, now), "until": _when(until, now),
               "channels": list(channels), "attributes": attributes,
               "conversations": list(conversations)}
        try:
            b = bc.create(hub, _cli_principal(), name, seg, tpl)
        except TongdaiError as exc:
            raise click.ClickException(str(exc)) from None
    click.echo(b.id)


@broadcast.command("list")
def broadcast_list() -> None:
    """Broadcasts, newest first."""
    from tongdai.core.workspace import broadcast as bc

    with open_hub() as hub:
        for b in bc.list_all(hub, _cli_principal(), 200):
            click.echo(f"{b.id}\t{b.state}\t{b.total if b.total is not None else '-'}\t{b.name}")


def _load(hub, bid: str):
    from tongdai.core.workspace import broadcast as bc

    try:
        return bc.get(hub, _cli_principal(), bid)
    except TongdaiError as exc:
        raise click.ClickException(str(exc)) from None


@broadcast.command("dry-run")
@click.argument("broadcast_id")
@click.option("--json", "as_json", is_flag=True)
def broadcast_dry_run(broadcast_id: str, as_json: bool) -> None:
    """Per channel: how many would get it now, how many would be skipped and why."""
    from tongdai.core.workspace import broadcast as bc

    with open_hub() as hub:
        b = _load(hub, broadcast_id)
        try:
            r = bc.dry_run(hub, _cli_principal(), b)
        except TongdaiError as exc:
            raise click.ClickException(str(exc)) from None
    if as_json:
        click.echo(orjson.dumps(r, option=orjson.OPT_INDENT_2).decode())
        return
    t = r["totals"]
    click.echo(f"{t['customers']} customers: {t['would_send']} would get it, "
               f"{t['would_skip']} would be skipped")
    for ch, c in sorted(r["channels"].items()):
        skips = ", ".join(f"{k} {v}" for k, v in sorted(c["would_skip"].items())) or "none"
        click.echo(f"  {ch}: send {c['would_send']}; skip: {skips}")
    for key, text in r["samples"].items():
        click.echo(f"  sample {key}: {text}")


@broadcast.command("send")
@click.argument("broadcast_id")
def broadcast_send(broadcast_id: str) -> None:
    """Send it, with a progress bar. Run it again after a crash or Ctrl-C: it goes on where it
    stopped and nobody gets it twice. Messages go out through the senders (rate limits)."""
    from tongdai.core.workspace import broadcast_send as bs

    with open_hub() as hub:
        _load(hub, broadcast_id)
        bar = None

        def progress(done: int, total: int) -> None:
            nonlocal bar
            if bar is None:
                bar = click.progressbar(length=total, label=f"broadcast {broadcast_id}")
                bar.__enter__()
            bar.update(done - bar.pos)

        try:
            r = bs.send(hub, broadcast_id, progress)
        except TongdaiError as exc:
            raise click.ClickException(str(exc)) from None
        finally:
            if bar is not None:
                bar.__exit__(None, None, None)
        click.echo(f"{r['state']}: {r.get('sent_now', 0)} messages queued in this run; "
                   f"`tongdai broadcast report {broadcast_id}` once the senders are done")


@broadcast.command("status")
@click.argument("broadcast_id")
def broadcast_status(broadcast_id: str) -> None:
    """State and progress."""
    from tongdai.core.workspace import broadcast_send as bs

    with open_hub() as hub:
        b = _load(hub, broadcast_id)
        p = bs.progress(hub, broadcast_id)
    total = p["total"] if p["total"] is not None else "?"
    click.echo(f"{b.id} {b.name}: {b.state}, {p['handled']}/{total} handled "
               f"({p['queued']} messages, {p['skipped']} skipped, {p['failed']} failed)")


@broadcast.command("report")
@click.argument("broadcast_id")
@click.option("--json", "as_json", is_flag=True)
def broadcast_report(broadcast_id: str, as_json: bool) -> None:
    """Sent / still queued / failed (why) / skipped (why), per channel."""
    from tongdai.core.workspace import broadcast_send as bs

    with open_hub() as hub:
        _load(hub, broadcast_id)
        r = bs.report(hub, broadcast_id)
    if as_json:
        click.echo(orjson.dumps(r, option=orjson.OPT_INDENT_2).decode())
        return
    t = r["totals"]
    click.echo(", ".join(f"{k} {v}" for k, v in t.items()))
    for ch, c in sorted(r["channels"].items()):
        click.echo(f"  {ch}: " + ", ".join(f"{k} {v}" for k, v in c.items() if v))
    for kind, reasons in r["reasons"].items():
        for why, n in sorted(reasons.items()):
            click.echo(f"  {kind} ({why}): {n}")
