"""The ``tongdai`` command."""

from __future__ import annotations

import contextlib
import logging
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator

import click
import httpx

from core.config import ConfigInvalid, load_config, parse_duration
from core.errors import TongdaiError

log = logging.getLogger("tongdai")


def setup_logging(level: int = logging.INFO) -> None:
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # httpx logs every request URL at INFO, and Telegram's URLs carry the bot token.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    logging.getLogger("httpcore").setLevel(logging.WARNING)


def _config_or_exit(path: str | None = None):
    try:
        return load_config(path)
    except ConfigInvalid as exc:
        click.echo("Configuration errors:", err=True)
        for e in exc.errors:
            click.echo(f"  {e}", err=True)
        sys.exit(2)


def _configured_adapter(channel_id: str, platform: str):
    """The adapter of a configured channel of ``platform`` (no Redis), or a usage error."""
    cfg = _config_or_exit()
    if channel_id not in cfg.channel_settings:
        raise click.UsageError(f"no channel {channel_id!r} in {cfg.path}")
    cls, settings = cfg.channel_settings[channel_id]
    return _of_platform(cls(channel_id, settings), platform)


def _of_platform(adapter, platform: str):
    if adapter.name != platform:
        raise click.UsageError(
            f"channel {adapter.channel_id!r} is a {adapter.name} channel, not {platform}")
    return adapter


@contextlib.contextmanager
def _hub() -> Iterator:
    """A Hub on REDIS_URL, the running embedded server, or one started just for this command."""
    from core.crypto import load_keyring
    from core.errors import ConfigError
    from core.hub import Hub, data_dir, redis_url
    from core.redis_server import EmbeddedRedis

    config = _config_or_exit()
    url = redis_url()
    embedded = url is None or url.startswith("unix://")
    server = None
    if url is None:
        server = EmbeddedRedis(data_dir(), config.hub.redis.appendfsync)
        server.start()
        url = server.url
    import redis

    try:  # a local, embedded set-up gets its key file; elsewhere keys must be provided
        keyring = load_keyring(data_dir(), create=embedded)
    except ConfigError as exc:
        if server is not None:
            server.stop()
        raise click.ClickException(str(exc)) from None
    hub = Hub(config, redis.Redis.from_url(url), keyring)
    try:
        yield hub
    finally:
        if server is not None:
            server.stop()


@click.group()
def main() -> None:
    """tongdai — omnichannel customer-support hub."""
    setup_logging()


# -- running ---------------------------------------------------------------------------------
@main.command()
@click.option("--port", default=8000, show_default=True)
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--workers", default=2, show_default=True,
              help="ingest worker processes (plus one sender for replies)")
@click.option("--web-workers", default=2, show_default=True, help="gunicorn processes")
@click.option("--data-dir", default=None, help="embedded Redis data (default ./var)")
def up(port: int, host: str, workers: int, web_workers: int, data_dir: str | None) -> None:
    """Run everything: (embedded) Redis, web server, workers, scheduler. Ctrl-C stops it."""
    from core import rawlog, tokens
    from core.hub import Hub
    from core.redis_server import EmbeddedRedis

    if data_dir:
        os.environ["TONGDAI_DATA_DIR"] = data_dir
    config = _config_or_exit()
    server = None
    if not os.environ.get("REDIS_URL"):
        from core.hub import data_dir as dd

        server = EmbeddedRedis(dd(), config.hub.redis.appendfsync)
        server.start()
        os.environ["REDIS_URL"] = server.url
        click.echo(f"embedded Redis: {server.data_dir} (append-only file, fsync "
                   f"{config.hub.redis.appendfsync})")
    from core.crypto import load_keyring
    from core.hub import data_dir as _dd

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
                      "-w", str(web_workers), "-b", f"{host}:{port}", "webhooks.wsgi:app"]),
             ("scheduler", [py, "-m", "core.cli", "scheduler"]),
             ("reactor", [py, "-m", "core.cli", "reactor"])]
    specs += [(f"worker-{i + 1}", [py, "-m", "core.cli", "worker", "--queues", "ingest"])
              for i in range(workers)]
    specs.append(("sender", [py, "-m", "core.cli", "worker", "--queues", "outbound"]))
    # integrators' webhooks: a slow receiver never holds up a reply (core/hooks.py)
    specs.append(("hooks", [py, "-m", "core.cli", "worker", "--queues", "hooks"]))
    from webhooks.smtp import listeners
    from worker.imap import channels as imap_channels

    if listeners(hub):  # the mail processes the configured email channels need
        specs.append(("smtp", [py, "-m", "core.cli", "smtp"]))
    if imap_channels(hub):
        specs.append(("imap", [py, "-m", "core.cli", "imap"]))
    if workers < config.hub.ingest.consumers:
        click.echo(f"note: ingest.consumers is {config.hub.ingest.consumers} but only {workers} "
                   "ingest worker(s) run; the extra loops wait for a free worker", err=True)
    procs = {name: subprocess.Popen(cmd) for name, cmd in specs}
    base = f"http://{host}:{port}"
    from core import users as _users

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


@main.command()
@click.option("--queues", default="ingest", show_default=True,
              help="ingest, outbound, hooks (outgoing webhooks), comma-separated")
@click.option("--burst", is_flag=True, help="exit when the queues are empty")
def worker(queues: str, burst: bool) -> None:
    """An RQ worker. Needs REDIS_URL or a running `tongdai up`."""
    from core.hub import Hub
    from worker.main import QUEUES, run_worker

    names = tuple(q.strip() for q in queues.split(",") if q.strip())
    unknown = [q for q in names if q not in QUEUES]
    if unknown or not names:
        raise click.UsageError(f"--queues takes {', '.join(QUEUES)}; got {queues!r}")
    run_worker(Hub.from_env(), queues=names, burst=burst)


@main.command()
def smtp() -> None:
    """Receive mail for the email channels that have inbound.smtp (aiosmtpd listener)."""
    from webhooks import smtp as listener

    setup_logging()
    with _hub() as hub:
        listener.serve(hub)


@main.command()
def imap() -> None:
    """Fetch mail for the email channels that have inbound.imap (one process is enough)."""
    from worker import imap as pollers

    setup_logging()
    with _hub() as hub:
        pollers.serve(hub)


@main.command()
def reactor() -> None:
    """Runs the change feed's reactors: auto-assignment, outgoing webhooks, the Telegram staff
    group, agents' mail (run one or more)."""
    from core.hub import Hub
    from worker.reactors import run_reactors

    run_reactors(Hub.from_env())


@main.command()
def scheduler() -> None:
    """Keeps ingest loops running and trims the raw log (run one or more; idempotent)."""
    from core.hub import Hub
    from worker.main import run_scheduler

    run_scheduler(Hub.from_env())


# -- configuration ---------------------------------------------------------------------------
@main.group()
def config() -> None:
    """Configuration."""


@config.command("check")
@click.option("--file", "path", default=None, help="default: $TONGDAI_CONFIG or config/tongdai.yaml")
def config_check(path: str | None) -> None:
    """Validate the configuration, every channel's settings included."""
    cfg = _config_or_exit(path)
    click.echo(f"{cfg.path}: OK — {len(cfg.channel_settings)} channel(s): "
               f"{', '.join(cfg.channel_settings) or 'none'}")


# -- tokens ------------------------------------------------------------------------------------
@main.group()
def customer() -> None:
    """Customers' data requests."""


@customer.command("export")
@click.argument("customer_id")
@click.option("--out", "out_path", default="-", show_default=True, help="file, or - for stdout")
def customer_export(customer_id: str, out_path: str) -> None:
    """Write everything held about a customer as JSON (decrypted): profile, identities,
    identifiers, channels, every conversation and message."""
    import orjson

    from core.privacy import export_customer

    with _hub() as hub:
        try:
            data = orjson.dumps(export_customer(hub, customer_id), option=orjson.OPT_INDENT_2)
        except TongdaiError as exc:
            raise click.ClickException(str(exc)) from None
    if out_path == "-":
        click.echo(data.decode())
    else:
        with open(out_path, "wb") as f:
            f.write(data)
        click.echo(f"wrote {out_path}", err=True)


@customer.command("erase")
@click.argument("customer_id")
@click.option("--yes", is_flag=True, help="do not ask for confirmation")
@click.option("--by", "actor", default=lambda: os.environ.get("USER", "admin"),
              help="who asked for it (recorded)")
def customer_erase(customer_id: str, yes: bool, actor: str) -> None:
    """Erase a customer (a deletion request): personal data, conversations, files and retained
    raw events go; anonymous counts stay. Export first if you must keep a copy."""
    from core.privacy import erase_customer

    if not yes:
        click.confirm(f"Erase customer {customer_id} and all their conversations for good?",
                      abort=True)
    with _hub() as hub:
        try:
            result = erase_customer(hub, customer_id, actor)
        except TongdaiError as exc:
            raise click.ClickException(str(exc)) from None
    click.echo(" ".join(f"{k}={v}" for k, v in result.items()))


@customer.command("merge")
@click.argument("target_id")
@click.argument("source_id")
@click.option("--why", required=True, help="why they are one person (audit log)")
@click.option("--by", "actor", default=lambda: os.environ.get("USER", "admin"))
def customer_merge(target_id: str, source_id: str, why: str, actor: str) -> None:
    """Merge customer SOURCE_ID into TARGET_ID (undo with `tongdai customer split`)."""
    from core import identity

    with _hub() as hub:
        try:
            m = identity.merge(hub, target_id, source_id, actor, why)
        except TongdaiError as exc:
            raise click.ClickException(str(exc)) from None
    click.echo(f"merge {m['id']}: customer {source_id} is now part of {target_id}")


@customer.command("split")
@click.argument("merge_id")
@click.option("--why", required=True, help="why they are two people (audit log)")
@click.option("--by", "actor", default=lambda: os.environ.get("USER", "admin"))
def customer_split(merge_id: str, why: str, actor: str) -> None:
    """Undo merge MERGE_ID: both customers back with their identities and conversations."""
    from core import identity

    with _hub() as hub:
        try:
            m = identity.split(hub, merge_id, actor, why)
        except TongdaiError as exc:
            raise click.ClickException(str(exc)) from None
    click.echo(f"merge {merge_id} split: customer {m['source_customer_id']} restored")


@main.group()
def keys() -> None:
    """Encryption keys for customer data."""


@keys.command("generate")
def keys_generate() -> None:
    """Print a fresh key set as environment lines (keep them secret, back them up)."""
    from core.crypto import generate

    for name, value in generate().items():
        click.echo(f"{name}={value}")


@keys.command("rotate")
def keys_rotate() -> None:
    """Re-encrypt stored customer data under the active key (the first of TONGDAI_DATA_KEYS).

    Runs online, shows progress, and resumes where it stopped after a crash or Ctrl-C.
    """
    from core import rotation

    with _hub() as hub:
        n_cust, n_conv = rotation.totals(hub)
        with click.progressbar(length=n_cust + n_conv,
                               label=f"re-encrypting under key {hub.keyring.active}") as bar:
            result = rotation.rotate(hub, bar.update)
        where = f" (resumed at {result.resumed_from[0]} {result.resumed_from[1]})" \
            if result.resumed_from else ""
        click.echo(f"done{where}: {result.customers} customers, {result.conversations} "
                   f"conversations, {result.rewritten} values re-encrypted. Raw-log entries "
                   "under older keys age out with ingest.raw_retention: keep those keys "
                   "configured until then.")


@main.group()
def token() -> None:
    """API tokens."""


@token.command("create")
@click.option("--name", required=True)
@click.option("--role", type=click.Choice(["agent", "supervisor", "admin"]), default="agent",
              show_default=True)
@click.option("--team", "teams", multiple=True, help="a team it may see (repeat); admins see all")
def token_create(name: str, role: str, teams: tuple[str, ...]) -> None:
    """Print a new bearer token (alone on stdout); only its hash is stored."""
    from core import tokens

    with _hub() as hub:
        try:
            click.echo(tokens.create(hub, name, role, teams))
        except ValueError as exc:
            raise click.ClickException(str(exc)) from None


@token.command("revoke")
@click.argument("name")
def token_revoke(name: str) -> None:
    """Revoke every API token named NAME (they stop working at once)."""
    from core import audit, tokens

    with _hub() as hub:
        n = tokens.revoke(hub, name)
        if n:
            audit.record(hub, os.environ.get("USER", "cli"), "token.revoked", name, {"count": n})
        click.echo(f"revoked {n} token(s) named {name}")


@main.group()
def users() -> None:
    """Agents, supervisors and admins who log in to the console."""


@users.command("add")
@click.argument("name")
@click.option("--role", type=click.Choice(["agent", "supervisor", "admin"]), default="agent",
              show_default=True)
@click.option("--team", "teams", multiple=True, help="a team of teams: in the config (repeat)")
@click.option("--display-name", default="", help="shown to colleagues (default: NAME)")
@click.option("--email", default=None, help="assignment notifications; replies from it count")
@click.option("--telegram-id", type=int, default=None, help="their Telegram user id (staff group)")
@click.option("--capacity", type=int, default=None, help="open conversations at once")
@click.password_option(prompt="Password", help="prompted for when not given")
def users_add(name: str, role: str, teams: tuple[str, ...], display_name: str, email: str | None,
              telegram_id: int | None, capacity: int | None, password: str) -> None:
    """Add a user (the first admin: tongdai users add NAME --role admin)."""
    from core import audit
    from core import users as u
    from core.errors import TongdaiError

    with _hub() as hub:
        try:
            u.create(hub, u.User(name=name, role=role, display_name=display_name,
                                 teams=list(teams), email=email, telegram_user_id=telegram_id,
                                 capacity=capacity), password)
        except TongdaiError as exc:
            raise click.ClickException(str(exc)) from None
        audit.record(hub, os.environ.get("USER", "cli"), "user.created", name, {"role": role})
        click.echo(f"user {name} ({role}) added")


@users.command("list")
def users_list() -> None:
    """Every user with role, teams and whether they can log in."""
    from core import users as u

    with _hub() as hub:
        for user in u.all_users(hub):
            state = "disabled" if user.disabled else "active"
            click.echo(f"{user.name}\t{user.role}\t{','.join(user.teams) or '-'}\t{state}")


@users.command("passwd")
@click.argument("name")
@click.password_option(prompt="New password")
def users_passwd(name: str, password: str) -> None:
    """Set a user's password (ends their console sessions)."""
    from core import audit
    from core import users as u
    from core.errors import TongdaiError

    with _hub() as hub:
        try:
            u.set_password(hub, name, password)
        except TongdaiError as exc:
            raise click.ClickException(str(exc)) from None
        audit.record(hub, os.environ.get("USER", "cli"), "user.password", name)
        click.echo(f"password of {name} changed; their sessions ended")


# -- trying it out ------------------------------------------------------------------------------
@main.command()
@click.argument("platform")
@click.option("--channel", "channel_id", required=True)
@click.option("--text", required=True)
@click.option("--user-id", default="700000001", show_default=True)
@click.option("--name", default="Khách Demo", show_default=True)
@click.option("--from", "sender", default="khach.demo@example.vn", show_default=True,
              help="email: the customer's address")
@click.option("--subject", default="Hỗ trợ đơn hàng", show_default=True, help="email: subject")
@click.option("--url", default="http://127.0.0.1:8000", show_default=True, help="the running hub")
def simulate(platform: str, channel_id: str, text: str, user_id: str, name: str, sender: str,
             subject: str, url: str) -> None:
    """Send a correctly signed inbound event to a running hub, as the platform would.

    Email goes to the channel's SMTP listener when it has one, else to its webhook.
    """
    adapter = _configured_adapter(channel_id, platform)
    if platform == "email" and adapter.settings.inbound.smtp is not None:
        import smtplib

        listen = adapter.settings.inbound.smtp
        mime = adapter.compose(sender, name, subject, text)
        with smtplib.SMTP(listen.host, listen.port, timeout=30) as conn:
            conn.sendmail(sender, [adapter.settings.address], mime)
        click.echo(f"250 mail from {sender} handed to {listen.host}:{listen.port}")
        return
    if platform == "email":
        headers, body = adapter.webhook_post(adapter.compose(sender, name, subject, text))
    else:
        headers, body = adapter.simulate(text, user_id, name)
    resp = httpx.post(f"{url.rstrip('/')}/webhooks/{channel_id}", content=body, headers=headers)
    click.echo(f"{resp.status_code} {resp.text.strip()}")
    if resp.status_code != 200:
        sys.exit(1)


# -- operations ---------------------------------------------------------------------------------
@main.group()
def deadletter() -> None:
    """Events that could not be processed."""


@deadletter.command("list")
@click.option("--limit", default=100, show_default=True)
def deadletter_list(limit: int) -> None:
    """Show dead letters with their errors."""
    from core import rawlog

    with _hub() as hub:
        items = rawlog.dead_letters(hub, limit)
        for dl_id, raw, error, _at in items:
            click.echo(f"{dl_id}  channel={raw.channel_id}  raw={raw.id}  {len(raw.body)} bytes\n"
                       f"    {error}")
        click.echo(f"{len(items)} dead letter(s)")


@deadletter.command("replay")
@click.argument("dl_id")
def deadletter_replay(dl_id: str) -> None:
    """Run a dead letter through the pipeline again (after fixing its cause)."""
    from core import ingest

    with _hub() as hub:
        result = ingest.replay_dead_letter(hub, dl_id)
        if result is None:
            raise click.ClickException(f"no dead letter {dl_id}")
        if result.dead:
            raise click.ClickException("it failed again; see `tongdai deadletter list`")
        click.echo(f"replayed: {result.stored} stored, {result.duplicates} already there")


@main.command()
@click.option("--since", "since", required=True, help="e.g. 30m, 2h, 3d")
def replay(since: str) -> None:
    """Run retained raw events again, idempotently (nothing is stored twice)."""
    from core import ingest, rawlog

    seconds = parse_duration(since)
    with _hub() as hub:
        totals = ingest.IngestResult()
        for batch in rawlog.since(hub, rawlog.now_ms() - int(seconds * 1000)):
            r = ingest.process(hub, batch.events)
            totals.stored += r.stored
            totals.duplicates += r.duplicates
            totals.dead += r.dead
        click.echo(f"replayed: {totals.stored} new, {totals.duplicates} already stored, "
                   f"{totals.dead} dead-lettered")


@main.group()
def channels() -> None:
    """Platform-specific channel operations."""


@channels.group("telegram")
def channels_telegram() -> None:
    """Telegram channels."""


@channels_telegram.command("set-webhook")
@click.argument("channel_id")
@click.option("--url", required=True, help="public base URL of the hub, or the full webhook URL")
def telegram_set_webhook(channel_id: str, url: str) -> None:
    """Point the bot at this hub (setWebhook with the channel's secret token)."""
    adapter = _configured_adapter(channel_id, "telegram")
    if not re.search(r"/webhooks/[^/]+$", url):
        url = f"{url.rstrip('/')}/webhooks/{channel_id}"
    try:
        result = adapter.set_webhook(url)
    except TongdaiError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"webhook set to {url}: {result}")


@channels.group("zalo")
def channels_zalo() -> None:
    """Zalo OA channels."""


@channels_zalo.command("authorize")
@click.argument("channel_id")
@click.option("--code", required=True, help="the authorization code Zalo's OAuth page returned")
def zalo_authorize(channel_id: str, code: str) -> None:
    """Exchange an OAuth code for the OA's first token pair, stored for every worker."""
    with _hub() as hub:
        adapter = _of_platform(hub.adapter(channel_id), "zalo")  # tokens go to Redis
        try:
            adapter.exchange_code(code)
        except TongdaiError as exc:
            raise click.ClickException(str(exc)) from None
        click.echo(f"{channel_id}: authorized; the token pair is stored and rotates by itself")


@main.group()
def agentmail() -> None:
    """Agents' mail: assignment notifications, replies by mail, digests."""


@agentmail.command("digest")
@click.option("--day", default=None, help="YYYY-MM-DD (default: today); each agent gets one a day")
def agentmail_digest(day: str | None) -> None:
    """Mail every agent with an address their conversations waiting for a reply, now."""
    from core import agentmail as mails

    with _hub() as hub:
        click.echo(f"{mails.send_digests(hub, day)} digest(s) sent")


@main.command()
@click.option("--json", "as_json", is_flag=True, help="one JSON object on stdout")
@click.option("--quick", is_flag=True, help="smaller runs (a smoke test of the benchmark)")
def bench(as_json: bool, quick: bool) -> None:
    """Measure speed as ratios against baselines run here, now (see benchmarks/)."""
    from benchmarks.run import main as run_bench

    run_bench(as_json=as_json, quick=quick)


if __name__ == "__main__":
    main()
