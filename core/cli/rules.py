"""`tongdai rules`: try the tagging, priority and routing rules on a text, and score them on
a labelled set. Neither needs Redis: both run the classifier ingest runs."""

from __future__ import annotations

from pathlib import Path

import click

from tongdai.core.cli.base import config_or_exit, main


@main.group()
def rules() -> None:
    """Tagging, priority and routing rules."""


@rules.command("test")
@click.argument("text")
@click.option("--channel", default="", help="the channel the message arrives on")
@click.option("--tier", default=None,
              help="the customer's tier (e.g. vip), for priority and routing rules on it")
@click.option("--recent", default=1, show_default=True,
              help="customer messages within the repeat windows, this one included")
@click.option("--rules-file", "rules_file", default=None, type=click.Path(dir_okay=False),
              help="a rules file (tagging/priority/routing sections) instead of the config")
@click.option("--at", "at", default=None, type=click.DateTime(["%Y-%m-%d %H:%M"]),
              help="when the message is written, local time of the acknowledgement's calendar "
                   "(e.g. \"2027-02-08 22:00\"); default now")
def rules_test(text: str, channel: str, tier: str | None, recent: int,
               rules_file: str | None, at=None) -> None:
    """Language, tags, priority, queue, SLA and the automatic reply for TEXT — and which rule
    fired."""
    from tongdai.core.pipeline.classify import Classifier
    from tongdai.core.pipeline.priority import settle
    from tongdai.core.pipeline.sla import Plan

    loaded = None if rules_file else config_or_exit()
    hub_cfg = _rules(rules_file) if rules_file else loaded.hub
    classifier = Classifier(hub_cfg)
    c = classifier.classify(text, channel)
    click.echo(f"language  {c.language or '-'}   ({c.language_why})")
    click.echo(f"tags      {', '.join(c.tags) or '-'}")
    for tag, (i, kw) in c.fired.items():
        click.echo(f"          {tag}: tagging rule {i + 1}, keyword \"{kw}\"")
    p = settle(_priority(c), tier, recent)
    click.echo(f"priority  {p.level}   ({p.reason or 'no rule'})")
    route = c.route
    if route is not None and route.pending:  # rules on the customer or the priority
        route = classifier.router.decide(route, p.level, {"tier": tier} if tier else {})
    queue = route.queue if route else c.queue
    why = f"routing rule {route.rule + 1}" if route and route.rule is not None else "default queue"
    team = next((t for t in hub_cfg.teams if queue in t.queues), None)
    where = f", team {team.id}, tier {team.tier}" if team else ""
    click.echo(f"route     {queue}   ({why}{where})")
    name, cal, first, later = Plan(hub_cfg).policy(channel, p.level, queue)
    where = (f"per-queue targets, {cal.name}" if name == "queue"
             else f"policy {name}, calendar {cal.name}")
    resolve = Plan(hub_cfg).resolution(channel, p.level, queue)[2]
    click.echo(f"SLA       first response {_dur(first)}, next response {_dur(later)}"
               + (f", resolution {_dur(resolve)}" if resolve is not None else "")
               + f"   ({where})")
    if loaded is not None and channel in loaded.channel_settings:
        _acknowledgement(loaded, channel, c.language, p.level, queue, at)


def _acknowledgement(loaded, channel: str, language: str | None, priority: int, queue: str,
                     at) -> None:
    """The automatic reply a message opening a conversation would get (ticket 123)."""
    from tongdai.core.pipeline.acknowledgements import preview

    adapters = {cid: cls(cid, s) for cid, (cls, s) in loaded.channel_settings.items()}
    ack = preview(loaded.hub, adapters, channel, language, priority, queue, at)
    if ack is None:
        click.echo(f"ack       none   (acknowledgements are off on {channel})")
        return
    hours = "off hours" if ack.off_hours else "in hours"
    click.echo(f"ack       {ack.language}, {hours} (calendar {ack.calendar}): {ack.text}")


@rules.command("eval")
@click.option("--file", "path", default=None, type=click.Path(dir_okay=False),
              help="a labelled set (default: the project's, shipped with tongdai)")
@click.option("--rules-file", "rules_file", default=None, type=click.Path(dir_okay=False),
              help="score these rules (default: the rules the set names, else the config)")
@click.option("--misses", is_flag=True, help="list every message classified wrongly")
def rules_eval(path: str | None, rules_file: str | None, misses: bool) -> None:
    """Language accuracy and tag precision/recall on a labelled set of messages."""
    from tongdai.core.errors import ConfigError
    from tongdai.core.pipeline.classify import Classifier
    from tongdai.core.pipeline.evaluation import DEFAULT_SET, evaluate, load_set

    set_path = Path(path) if path else DEFAULT_SET
    try:
        messages, named = load_set(set_path)
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None
    if rules_file or named:
        source = Path(rules_file) if rules_file else named
        hub_cfg = _rules(str(source))
    else:
        loaded = config_or_exit()
        source, hub_cfg = loaded.path, loaded.hub
    s = evaluate(messages, Classifier(hub_cfg))
    click.echo(f"{set_path}: {s.messages} messages, rules from {source}")
    click.echo(f"language accuracy  {s.language_accuracy:.3f}  "
               f"({s.language_right}/{s.messages})")
    for cls, n in sorted(s.by_class.items()):
        click.echo(f"  {cls:<10} {s.right_by_class[cls] / n:.3f}  ({s.right_by_class[cls]}/{n})")
    click.echo(f"tags  precision {s.precision:.3f}  recall {s.recall:.3f}  F1 {s.f1:.3f}  "
               f"(tp {s.tp}, fp {s.fp}, fn {s.fn})")
    for tag, c in sorted(s.by_tag.items()):
        click.echo(f"  {tag:<16} tp {c['tp']:>3}  fp {c['fp']:>3}  fn {c['fn']:>3}")
    if misses:
        for m in s.misses:
            click.echo(f"MISS [{m.cls}] {m.text!r}: language {m.want_lang} → {m.got_lang}; "
                       f"tags {m.want_tags} → {m.got_tags}")


def _rules(path: str):
    from tongdai.core.errors import ConfigError
    from tongdai.core.pipeline.evaluation import load_rules

    try:
        return load_rules(Path(path))
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None


def _priority(c):
    from tongdai.core.pipeline.priority import Priority

    return Priority(c.priority, c.reason, c.pending)


def _dur(seconds: float | None) -> str:
    if seconds is None:
        return "none"
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{seconds:g}s"
