"""`tongdai config`: validate the configuration; see which version each process runs."""

from __future__ import annotations

import sys

import click

from tongdai.core.cli.base import config_or_exit, main


@main.group()
def config() -> None:
    """Configuration."""


@config.command("check")
@click.option("--file", "path", default=None, help="default: $TONGDAI_CONFIG or config/tongdai.yaml")
@click.option("--diff", is_flag=True,
              help="also say what the file would change in the running processes (needs the "
                   "running hub's Redis and data keys)")
def config_check(path: str | None, diff: bool) -> None:
    """Validate the configuration, every section and channel's settings included: exit 2 with
    one line per mistake (file: key: problem. Fix: ...)."""
    cfg = config_or_exit(path)
    click.echo(f"{cfg.path}: OK (version {cfg.version}) — {len(cfg.channel_settings)} "
               f"channel(s): {', '.join(cfg.channel_settings) or 'none'}")
    if diff:
        _diff(cfg)


def _diff(cfg) -> None:
    """The keys each running version differs in from ``cfg``, from the processes' records."""
    import redis

    from tongdai.core import config_watch as cw
    from tongdai.core.errors import ConfigError
    from tongdai.core.hub import Hub, connect, redis_url

    url = redis_url()
    if url is None:
        raise click.ClickException("no running hub to compare with: set REDIS_URL or start "
                                   "`tongdai up`")
    try:
        hub = Hub(cfg, connect(url))
    except ConfigError as exc:  # no data keys here: the fingerprints are keyed with them
        raise click.ClickException(str(exc)) from None
    mine = cw.parts(cfg, lambda text: hub.keyring.blind_index("config", text))
    running: dict[str, tuple[dict, list[str]]] = {}
    try:
        records = cw.processes(hub.redis, hub.keys.config_processes())
    except redis.RedisError as exc:
        raise click.ClickException(f"cannot read the hub's Redis ({type(exc).__name__})") from None
    for name, rec in records.items():
        running.setdefault(rec["version"], (rec, []))[1].append(name)
    if not running:
        click.echo("no running process has recorded its config (is the hub up?)")
    for version, (rec, names) in running.items():
        changed = cw.changed_keys(rec["parts"], mine)
        restart = cw.needing_restart(changed, set(rec["restart"]) | cw.restart_keys(cfg))
        click.echo(f"running version {version} ({len(names)} process(es): "
                   f"{', '.join(names)}):")
        if not changed:
            click.echo("  no setting would change")
        for key in changed:
            click.echo(f"  {key}" + ("  (needs a restart: nothing of this edit would apply "
                                     "until then)" if key in restart else ""))


@config.command("status")
def config_status() -> None:
    """Which config version each running process runs, and why an edit is not running (an
    invalid file, or a key only a restart applies). Exit 1 unless every process runs this
    host's file."""
    import redis

    from tongdai.core import clock
    from tongdai.core import config_watch as cw
    from tongdai.core.config import ConfigInvalid, config_path, file_version, load_config
    from tongdai.core.hub import connect, redis_url
    from tongdai.core.keys import Keys

    path = config_path()
    try:
        with open(path, "rb") as f:
            here = file_version(f.read())
    except OSError:
        here = "(missing)"
    try:
        prefix = load_config(path).hub.redis.prefix
        click.echo(f"{path} on this host: version {here}")
    except ConfigInvalid as exc:  # the status is wanted most when the file is wrong
        prefix = "td:"
        click.echo(f"{path} on this host: version {here}, invalid:")
        for e in exc.errors:
            click.echo(f"  {e}")
    url = redis_url()
    if url is None:
        raise click.ClickException("no running hub: set REDIS_URL or start `tongdai up`")
    r = connect(url)
    try:
        clock.follow(r)
        records = cw.processes(r, Keys(prefix).config_processes())
    except redis.RedisError as exc:
        raise click.ClickException(f"cannot read the hub's Redis ({type(exc).__name__})") from None
    if not records:
        click.echo("no running process has recorded its config (is the hub up?)")
        sys.exit(1)
    behind, reasons = 0, {}
    now = clock.now_ms()
    for name, rec in records.items():
        state = "runs this host's file" if rec["version"] == here else "runs another version"
        if rec["errors"] or rec["pending"]:
            why = "invalid" if rec["errors"] else "waits for a restart"
            state = f"edit (version {rec['file_version']}) not applied: {why}"
            restart = (f"{rec['file']}: {', '.join(rec['pending'])}: only a restart of every "
                       "process applies this (nothing of the edit is applied until then)")
            reasons[rec["file_version"]] = rec["errors"] or [restart]
        behind += rec["version"] != here or bool(rec["errors"] or rec["pending"])
        click.echo(f"{name:<40} {rec['version']:<13} seen {(now - rec['seen']) // 1000:>4} s "
                   f"ago  {state}")
    for version, lines in reasons.items():
        click.echo(f"version {version}:")
        for line in lines:
            click.echo(f"  {line}")
    sys.exit(1 if behind else 0)
