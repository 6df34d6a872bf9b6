"""The `tongdai` commands a user runs, as subprocesses against the test Redis."""

from __future__ import annotations

import os
import subprocess
import sys
import threading

import orjson
import pytest
from werkzeug.serving import make_server

from tests.conftest import TOKEN, write_config
from tests.helpers import drain_all, tg_update
from tongdai.core import clock
from tongdai.core.models import RawEvent
from tongdai.core.pipeline import rawlog
from tongdai.core.workspace import tokens


@pytest.fixture
def config_file(tmp_path, tg_fake):
    return write_config(tmp_path / "tongdai.yaml", api_base=tg_fake.base_url)


def cli(redis_url, config_file, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "REDIS_URL": redis_url, "TONGDAI_CONFIG": str(config_file)}
    return subprocess.run([sys.executable, "-m", "tongdai.core.cli", *args], env=env,
                          capture_output=True, text=True, timeout=60, check=False)


def test_token_create_prints_token_alone_and_stores_only_its_hash(hub, redis_url, config_file):
    out = cli(redis_url, config_file, "token", "create", "--name", "bao", "--role", "agent")
    assert out.returncode == 0
    token = out.stdout.strip()
    assert out.stdout == token + "\n" and token.startswith("td_")
    record = tokens.lookup(hub, token)
    assert (record["name"], record["role"]) == ("bao", "agent")
    dump = b"".join(hub.redis.dump(k) or b"" for k in hub.redis.scan_iter("*"))
    assert token.encode() not in dump


def test_deadletter_list_and_replay(hub, redis_url, config_file):
    bad = orjson.dumps({"update_id": 5, "message": {"message_id": 1, "date": 1, "text": "x"}})
    rawlog.append(hub, RawEvent("tg-test", bad, {}, clock.now_ms()))
    drain_all(hub)
    out = cli(redis_url, config_file, "deadletter", "list")
    assert out.returncode == 0 and "PayloadError" in out.stdout and "1 dead letter(s)" in out.stdout
    dl_id = out.stdout.split()[0]
    again = cli(redis_url, config_file, "deadletter", "replay", dl_id)
    assert again.returncode == 1 and "failed again" in again.stderr
    assert cli(redis_url, config_file, "deadletter", "replay", "0-1").returncode == 1


def test_replay_since_runs_retained_events_idempotently(hub, redis_url, config_file):
    for i in range(3):
        rawlog.append(hub, RawEvent("tg-test", tg_update(i + 1, 900, i + 1, f"m{i}"), {},
                                    clock.now_ms()))
    out = cli(redis_url, config_file, "replay", "--since", "1h")
    assert "replayed: 3 new, 0 already stored" in out.stdout, out.stderr
    out = cli(redis_url, config_file, "replay", "--since", "1h")
    assert "replayed: 0 new, 3 already stored" in out.stdout


def test_set_webhook_sends_url_and_secret(redis_url, config_file, tg_fake):
    out = cli(redis_url, config_file, "channels", "telegram", "set-webhook", "tg-test",
              "--url", "https://hub.example.vn")
    assert out.returncode == 0, out.stderr
    (params,) = [p for m, p in tg_fake.calls if m == "setWebhook"]
    assert params["url"] == "https://hub.example.vn/webhooks/tg-test"
    assert params["secret_token"] == "test-secret_123"
    assert TOKEN not in out.stdout + out.stderr


def test_simulate_posts_a_signed_update_to_a_running_hub(app, hub, redis_url, config_file):
    server = make_server("127.0.0.1", 0, app, threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        out = cli(redis_url, config_file, "simulate", "telegram", "--channel", "tg-test",
                  "--text", "Xin chào shop", "--url", f"http://127.0.0.1:{server.server_port}")
    finally:
        server.shutdown()
    assert out.returncode == 0 and out.stdout.startswith("200"), out.stderr
    assert drain_all(hub)["stored"] == 1


def test_healthz_reports_backlog_and_queues(client, hub):
    rawlog.append(hub, RawEvent("tg-test", tg_update(1, 1, 1, "x"), {}, clock.now_ms()))
    h = client.get("/healthz").json
    assert h["ok"] is True and h["raw_events"]["undelivered"] == 1
    assert h["agent_queues"] == {"general": 0, "billing": 0}
    drain_all(hub)
    h = client.get("/healthz").json
    assert h["raw_events"] == {"undelivered": 0, "pending": 0}
    assert h["agent_queues"]["general"] == 1


def test_simulate_against_a_stopped_hub_says_so_without_a_traceback(redis_url, config_file):
    from tests.conftest import free_port

    out = cli(redis_url, config_file, "simulate", "telegram", "--channel", "tg-test",
              "--text", "alo", "--url", f"http://127.0.0.1:{free_port()}")
    assert out.returncode == 1
    assert "no hub at http://127.0.0.1:" in out.stderr and "tongdai up" in out.stderr
    assert "Traceback" not in out.stderr


def test_simulate_mail_without_a_listener_says_so_without_a_traceback(tmp_path, monkeypatch):
    """In-process: the mail channel's SMTP listener is not running (#17)."""
    from click.testing import CliRunner

    from tests.conftest import free_port
    from tongdai.core.cli import main

    port = free_port()
    config = write_config(tmp_path / "mail.yaml", extra=f"""
  - id: mail-demo
    adapter: email
    settings:
      address: support@demo.example.vn
      inbound:
        smtp: {{host: 127.0.0.1, port: {port}}}
""")
    monkeypatch.setenv("TONGDAI_CONFIG", str(config))
    out = CliRunner().invoke(main, ["simulate", "email", "--channel", "mail-demo",
                                    "--text", "Đơn #55 giao chưa?"])
    assert out.exit_code == 1 and isinstance(out.exception, SystemExit)  # not a crash
    assert f"no SMTP listener at 127.0.0.1:{port}" in out.output and "tongdai up" in out.output
    assert "Traceback" not in out.output


def test_a_command_without_a_hub_says_where_it_looked_instead_of_making_one(tmp_path,
                                                                          config_file):
    """`tongdai users add` in a terminal without the hub's data dir (or REDIS_URL) used to
    add the user to a new, empty store nobody reads and say "added" (found by a new-user
    walkthrough). Now it refuses, naming the directory and how to point it at the hub."""
    empty = tmp_path / "elsewhere"
    env = {k: v for k, v in os.environ.items() if k != "REDIS_URL"}
    env |= {"TONGDAI_CONFIG": str(config_file), "TONGDAI_DATA_DIR": str(empty)}
    out = subprocess.run([sys.executable, "-m", "tongdai.core.cli", "users", "add", "dung",
                          "--role", "admin", "--password", "matkhau-123456"], env=env,
                         capture_output=True, text=True, timeout=60, check=False)
    assert out.returncode != 0 and "added" not in out.stdout
    assert f"no hub data in {empty}" in out.stderr and "TONGDAI_DATA_DIR" in out.stderr
    assert not (empty / "keys.json").exists()


def test_users_unlock_ends_a_log_in_lock(hub, redis_url, config_file):
    from tongdai.core.workspace import users

    hub.redis.set(hub.keys.login_failures("user:bich"), 9, ex=900)
    out = cli(redis_url, config_file, "users", "unlock", "bich")
    assert out.returncode == 0 and out.stdout.strip() == "bich: unlocked"
    assert hub.redis.get(hub.keys.login_failures("user:bich")) is None
    assert users.unlock(hub, "bich") == 0
