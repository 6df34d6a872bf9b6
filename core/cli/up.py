"""`tongdai up`: the whole hub in one command (embedded Redis, web, workers, mail)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import click

from tongdai.core.cli.base import config_or_exit, main
from tongdai.core.cli.supervisor import Child, DataDirLock


@main.command()
@click.option("--port", default=8000, show_default=True,
              help="the web server: console, API, live streams (and webhooks)")
@click.option("--webhook-port", default=None, type=int,
              help="the platforms' own server, webhooks only  [default: --port + 1]")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--workers", default=2, show_default=True,
              help="ingest worker processes (plus two senders for replies)")
@click.option("--web-workers", default=2, show_default=True,
              help="web server processes (uvicorn)")
@click.option("--data-dir", default=None, help="embedded Redis data (default ./var)")
def up(port: int, webhook_port: int | None, host: str, workers: int, web_workers: int,
       data_dir: str | None) -> None:
    """Run everything: (embedded) Redis, web server, workers, scheduler. Ctrl-C stops it."""
    from tongdai.core.hub import Hub
    from tongdai.core.pipeline import rawlog
    from tongdai.core.redis_server import EmbeddedRedis
    from tongdai.core.workspace import tokens

    if data_dir:
        os.environ["TONGDAI_DATA_DIR"] = data_dir
    config = config_or_exit()
    from tongdai.core.hub import data_dir as _dd

    lock = DataDirLock(_dd().resolve())
    lock.acquire()  # a second `tongdai up` on this data dir stops here, saying why
    server = redis_child = None
    if not os.environ.get("REDIS_URL"):
        server = EmbeddedRedis(_dd(), config.hub.redis.appendfsync)
        redis_child = Child("redis", lambda: _start_redis(server))
        redis_child.step(time.monotonic(), _say)  # started and answering before the rest
        if redis_child.proc is None:
            raise click.ClickException(f"the embedded Redis did not start: see {_dd()}/redis.log")
        os.environ["REDIS_URL"] = server.url
        click.echo(f"embedded Redis: {server.data_dir} (append-only file, fsync "
                   f"{config.hub.redis.appendfsync})")
    from tongdai.core.crypto import load_keyring

    if not os.environ.get("TONGDAI_DATA_KEYS"):
        load_keyring(_dd(), create=True)  # var/keys.json, once: every child reads it
        click.echo(f"customer data keys: {_dd() / 'keys.json'} (back it up; production: set "
                   "TONGDAI_DATA_KEYS and TONGDAI_INDEX_KEY)")
    hub = Hub.from_env()
    rawlog.ensure_groups(hub)
    from tongdai.core import metrics

    metrics.directory()  # PROMETHEUS_MULTIPROC_DIR, exported to every child: one per host
    if tokens.count(hub) == 0:
        token = tokens.create(hub, "admin", "admin")
        click.echo(f"\nFirst start: admin API token (shown once, keep it):\n  {token}\n")
    hooks_port = webhook_port or port + 1
    specs = _specs(hub, host, port, hooks_port, workers, web_workers)
    if workers < config.hub.ingest.consumers:
        click.echo(f"note: ingest.consumers is {config.hub.ingest.consumers} but only {workers} "
                   "ingest worker(s) run; the extra loops wait for a free worker", err=True)
    children = [Child(name, (lambda cmd=cmd: subprocess.Popen(cmd))) for name, cmd in specs]
    for c in children:
        c.step(time.monotonic(), _say)
    _welcome(hub, f"http://{host}:{port}", f"http://{host}:{hooks_port}")
    stopping = False

    def _stop(*_: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, _stop)
    signal.signal(signal.SIGTERM, _stop)
    while not stopping:
        time.sleep(0.5)
        if redis_child is not None:
            redis_child.step(time.monotonic(), _say)
            if redis_child.proc is None:
                continue  # the others would only fail against a Redis that is not there
        for c in children:
            if not stopping:
                c.step(time.monotonic(), _say)
    click.echo("stopping...")
    procs = [c.proc for c in children if c.proc is not None]
    for p in procs:
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + 15
    for p in procs:
        try:
            p.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            p.kill()
    if server is not None:
        server.stop()
    lock.release()
    click.echo("stopped.")


def _say(line: str) -> None:
    click.echo(f"tongdai up: {line}", err=True)


class _Adopted:
    """A Redis already serving our data dir (left running by a hub that was killed): used,
    and watched through its socket."""

    def __init__(self, server) -> None:
        self.server = server

    def poll(self) -> int | None:
        return None if self.server.running() else 0


def _start_redis(server):
    """Start the embedded Redis (it replays its append-only file) and wait until it answers."""
    if not server.start():
        return _Adopted(server)
    return server.proc


def _specs(hub, host: str, port: int, hooks_port: int, workers: int, web_workers: int
           ) -> list[tuple[str, list[str]]]:
    """The processes of the hub: the Procfile's lines, sized for one machine."""
    py = sys.executable
    cli = [py, "-m", "tongdai.core.cli"]
    # uvicorn: webhooks, API and console on their own thread pools, live streams on the
    # event loop (webhooks/asgi.py); one change-feed reader per process.
    specs = [("web", [py, "-m", "uvicorn", "tongdai.webhooks.asgi:create", "--factory",
                      "--host", host, "--port", str(port), "--workers", str(web_workers),
                      "--timeout-keep-alive", "75", "--log-level", "warning"]),
             # the platforms' webhooks in a process of their own (webhooks/asgi.py)
             ("inbound", [py, "-m", "uvicorn", "tongdai.webhooks.asgi:create_inbound",
                          "--factory", "--host", host, "--port", str(hooks_port),
                          "--timeout-keep-alive", "75", "--log-level", "warning"]),
             ("scheduler", [*cli, "scheduler"]),
             ("reactor", [*cli, "reactor"])]
    specs += [(f"worker-{i + 1}", [*cli, "worker", "--queues", "ingest"])
              for i in range(workers)]
    # Two senders: while a platform stops answering, its one call at a time holds one of
    # them (core/pipeline/channel_gate.py) and the other keeps every other reply moving.
    specs += [(f"sender-{i + 1}", [*cli, "worker", "--queues", "replies"]) for i in range(2)]
    # Profile fetches and acknowledgements: a burst of new customers never delays a reply.
    specs.append(("background", [*cli, "worker", "--queues", "background"]))
    # integrators' webhooks: a slow receiver never holds up a reply (workspace/hooks.py)
    specs.append(("hooks", [*cli, "worker", "--queues", "hooks"]))
    from tongdai.webhooks.smtp import listeners
    from tongdai.worker.imap import channels as imap_channels

    if listeners(hub):  # the mail processes the configured email channels need
        specs.append(("smtp", [*cli, "smtp"]))
    if imap_channels(hub):
        specs.append(("imap", [*cli, "imap"]))
    return specs


def _welcome(hub, base: str, hooks: str) -> None:
    from tongdai.core.hub import DEFAULT_DATA_DIR, data_dir
    from tongdai.core.workspace import users as _users

    # other commands find this hub through the same data dir (or REDIS_URL): say how
    embedded = os.environ.get("REDIS_URL", "").startswith("unix://")  # (set by up itself)
    where = ("" if not embedded or str(data_dir()) == DEFAULT_DATA_DIR
             else f"TONGDAI_DATA_DIR={data_dir()} ")
    who = ("" if _users.all_users(hub) else
           f"  (first user: {where}tongdai users add NAME --role admin)")
    click.echo(f"tongdai is up:\n  console   {base}/console{who}\n"
               f"  webhooks  {hooks}/webhooks/<channel-id>  (the platforms' own port; "
               f"{base} takes them too)\n"
               f"  API       {base}/api/v1 (OpenAPI: {base}/api/v1/openapi.json)\n"
               f"  health    {base}/healthz · metrics {base}/metrics (Prometheus; a bearer "
               "token: metrics.token or an admin's)\n"
               f"  channels  {', '.join(hub.adapters) or '(none configured)'}\nCtrl-C stops.")
