"""`tongdai up`: the whole hub in one command (embedded Redis, web, workers, mail)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import click

from tongdai.core.cli.base import config_or_exit, main


@main.command()
@click.option("--port", default=8000, show_default=True)
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--workers", default=2, show_default=True,
              help="ingest worker processes (plus one sender for replies)")
@click.option("--web-workers", default=2, show_default=True, help="gunicorn processes")
@click.option("--data-dir", default=None, help="embedded Redis data (default ./var)")
def up(port: int, host: str, workers: int, web_workers: int, data_dir: str | None) -> None:
    """Run everything: (embedded) Redis, web server, workers, scheduler. Ctrl-C stops it."""
    from tongdai.core.hub import Hub
    from tongdai.core.pipeline import rawlog
    from tongdai.core.redis_server import EmbeddedRedis
    from tongdai.core.workspace import tokens

    if data_dir:
        os.environ["TONGDAI_DATA_DIR"] = data_dir
    config = config_or_exit()
    server = None
    if not os.environ.get("REDIS_URL"):
        from tongdai.core.hub import data_dir as dd

        server = EmbeddedRedis(dd(), config.hub.redis.appendfsync)
        server.start()
        os.environ["REDIS_URL"] = server.url
        click.echo(f"embedded Redis: {server.data_dir} (append-only file, fsync "
                   f"{config.hub.redis.appendfsync})")
    from tongdai.core.crypto import load_keyring
    from tongdai.core.hub import data_dir as _dd

    if not os.environ.get("TONGDAI_DATA_KEYS"):
        load_keyring(_dd(), create=True)  # var/keys.json, once: every child reads it
        click.echo(f"customer data keys: {_dd() / 'keys.json'} (back it up; production: set "
                   "TONGDAI_DATA_KEYS and TONGDAI_INDEX_KEY)")
    hub = Hub.from_env()
    rawlog.ensure_groups(hub)
    if tokens.count(hub) == 0:
        token = tokens.create(hub, "admin", "admin")
        click.echo(f"\nFirst start: admin API token (shown once, keep it):\n  {token}\n")
    py = sys.executable
    # gthread: a request waiting for Redis's fsync does not idle the whole process.
    specs = [("web", [py, "-m", "gunicorn", "-k", "gthread", "--threads", "8",
                      "-w", str(web_workers), "-b", f"{host}:{port}", "tongdai.webhooks.wsgi:app"]),
             ("scheduler", [py, "-m", "tongdai.core.cli", "scheduler"]),
             ("reactor", [py, "-m", "tongdai.core.cli", "reactor"])]
    specs += [(f"worker-{i + 1}", [py, "-m", "tongdai.core.cli", "worker", "--queues", "ingest"])
              for i in range(workers)]
    specs.append(("sender", [py, "-m", "tongdai.core.cli", "worker", "--queues", "outbound"]))
    # integrators' webhooks: a slow receiver never holds up a reply (core/hooks.py)
    specs.append(("hooks", [py, "-m", "tongdai.core.cli", "worker", "--queues", "hooks"]))
    from tongdai.webhooks.smtp import listeners
    from tongdai.worker.imap import channels as imap_channels

    if listeners(hub):  # the mail processes the configured email channels need
        specs.append(("smtp", [py, "-m", "tongdai.core.cli", "smtp"]))
    if imap_channels(hub):
        specs.append(("imap", [py, "-m", "tongdai.core.cli", "imap"]))
    if workers < config.hub.ingest.consumers:
        click.echo(f"note: ingest.consumers is {config.hub.ingest.consumers} but only {workers} "
                   "ingest worker(s) run; the extra loops wait for a free worker", err=True)
    procs = {name: subprocess.Popen(cmd) for name, cmd in specs}
    base = f"http://{host}:{port}"
    from tongdai.core.workspace import users as _users

    who = ("" if _users.all_users(hub) else
           "  (first user: tongdai users add NAME --role admin)")
    click.echo(f"tongdai is up:\n  console   {base}/console{who}\n"
               f"  webhooks  {base}/webhooks/<channel-id>\n"
               f"  API       {base}/api/v1 (OpenAPI: {base}/api/v1/openapi.json)\n"
               f"  health    {base}/healthz\n"
               f"  channels  {', '.join(hub.adapters) or '(none configured)'}\nCtrl-C stops.")
    stopping = False

    def _stop(*_: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, _stop)
    signal.signal(signal.SIGTERM, _stop)
    restarts: dict[str, int] = {}
    while not stopping:
        time.sleep(0.5)
        for name, cmd in specs:
            if procs[name].poll() is not None and not stopping:
                restarts[name] = restarts.get(name, 0) + 1
                if restarts[name] > 5:
                    click.echo(f"{name} keeps exiting; stopping", err=True)
                    stopping = True
                    break
                click.echo(f"{name} exited ({procs[name].returncode}); restarting", err=True)
                procs[name] = subprocess.Popen(cmd)
    click.echo("stopping...")
    for p in procs.values():
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + 15
    for p in procs.values():
        try:
            p.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            p.kill()
    if server is not None:
        server.stop()
    click.echo("stopped.")
