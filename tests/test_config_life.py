"""Config life (#13): an edited config applies without a restart; an invalid edit, or one only
a restart can apply, keeps the running version and says why (log, /healthz, config status)."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import threading
import time

import pytest

from tests.conftest import SECRET, TOKEN
from tests.helpers import auth, drain_all, post, tg_update
from tongdai.core import config_watch
from tongdai.core.pipeline import classify, sla
from tongdai.worker import jobs

REFUND_RULE = """    - tag: refund
      any: ["hoàn tiền", "refund"]
"""
REFUND_ROUTE = "    - {tags_any: [refund], queue: refunds, priority: 60}\n"


def config_text(shards: int = 2, extra_rule: str = "", extra_route: str = "",
                secret: str = SECRET, tagging_key: str = "rules") -> str:
    return f"""
ingest:
  shards: {shards}
  batch_size: 200
  claim_idle: 1s
  loop_time_box: 3s
tagging:
  {tagging_key}:
    - tag: payment
      any: ["nạp thẻ", "top up"]
{extra_rule}routing:
  default_queue: general
  queues: [general, billing, refunds]
  rules:
    - {{tags_any: [payment], queue: billing, priority: 50}}
{extra_route}channels:
  - id: tg-test
    adapter: telegram
    settings:
      bot_token: "{TOKEN}"
      secret_token: "{secret}"
      api_base: "http://127.0.0.1:9"
"""


@pytest.fixture
def config_file(tmp_path):
    path = tmp_path / "tongdai.yaml"
    path.write_text(config_text(), encoding="utf-8")
    return path


@pytest.fixture
def watched(hub):
    hub.watch.check_s = 0  # look at every safe point (production: every 2 s)
    return hub


def edit(path, text: str) -> None:
    path.write_text(text, encoding="utf-8")


def queue_of(client, token: str, queue: str) -> list[dict]:
    return client.get(f"/api/v1/conversations?queue={queue}", headers=auth(token)).json["items"]


def wait_for(what, seconds: float = 5.0):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if (got := what()):
            return got
        time.sleep(0.02)
    raise AssertionError(f"not within {seconds} s")


def test_a_running_ingest_loop_tags_with_a_rule_added_after_it_started(
        watched, client, admin_token, config_file):
    jobs.set_hub(watched)
    loop = threading.Thread(target=jobs.ingest_loop)  # the real loop, for loop_time_box (3 s)
    loop.start()
    try:
        assert post(client, tg_update(1, 501, 1, "Em muốn hoàn tiền ạ")).status_code == 200
        (before,) = wait_for(lambda: queue_of(client, admin_token, "general"))
        assert "refund" not in before["tags"]

        edit(config_file, config_text(extra_rule=REFUND_RULE, extra_route=REFUND_ROUTE))
        assert post(client, tg_update(2, 502, 1, "Em muốn hoàn tiền ạ")).status_code == 200
        (after,) = wait_for(lambda: queue_of(client, admin_token, "refunds"))
        assert "refund" in after["tags"] and after["priority"] == 60  # new tagger and router
        assert watched.generation == 2
    finally:
        loop.join(10)
    assert not loop.is_alive()


def test_what_is_built_from_the_config_is_rebuilt_and_the_rest_kept(watched, config_file):
    tagger, plan, adapter = classify.classifier(watched), sla.plan(watched), watched.adapter("tg-test")
    edit(config_file, config_text(extra_rule=REFUND_RULE))
    assert watched.watch.poll() == "applied"
    assert classify.classifier(watched) is not tagger and sla.plan(watched) is not plan
    assert watched.adapter("tg-test") is adapter  # same settings: same adapter, connections kept
    assert classify.classifier(watched) is classify.classifier(watched)  # built once again

    edit(config_file, config_text(extra_rule=REFUND_RULE, secret="rotated-secret_9"))
    assert watched.watch.poll() == "applied"
    assert watched.adapter("tg-test") is not adapter
    assert watched.adapter("tg-test").settings.secret_token.get_secret_value() == "rotated-secret_9"


def test_the_web_process_takes_a_rotated_webhook_secret(watched, client, config_file):
    edit(config_file, config_text(secret="rotated-secret_9"))
    assert client.get("/healthz").status_code == 200  # (a request looks, throttled)
    assert post(client, tg_update(1, 501, 1, "hi")).status_code == 401
    assert post(client, tg_update(2, 501, 2, "hi"), secret="rotated-secret_9").status_code == 200


def test_an_invalid_edit_keeps_the_old_rules_and_says_file_key_and_fix(
        watched, client, admin_token, config_file, caplog, redis_url):
    watched.watch.start("test")
    running = watched.config.version
    edit(config_file, config_text(tagging_key="rulez", extra_rule=REFUND_RULE))
    with caplog.at_level(logging.ERROR, logger="tongdai.core.config_watch"):
        for _ in range(3):
            h = client.get("/healthz")
    assert h.status_code == 200 and h.json["ok"] is True  # still serving
    (problem,) = h.json["problems"]
    assert f"{config_file}: tagging.rulez" in problem and "Fix: did you mean rules?" in problem
    assert h.json["config"]["version"] == running != h.json["config"]["file_version"]
    (logged,) = [r for r in caplog.records if r.levelno == logging.ERROR]  # once, not per look
    assert "tagging.rulez" in logged.getMessage() and TOKEN not in logged.getMessage()

    assert post(client, tg_update(1, 501, 1, "nạp thẻ không được")).status_code == 200
    drain_all(watched)
    (conv,) = queue_of(client, admin_token, "billing")  # the old rules still route
    assert "payment" in conv["tags"]

    out = cli_status(redis_url, config_file)
    assert out.returncode == 1
    assert "tagging.rulez" in out.stdout and "Fix: did you mean rules?" in out.stdout
    assert f"test@{os.uname().nodename}:{os.getpid()}" in out.stdout

    edit(config_file, config_text())  # fixed (back to what runs): the problem goes
    assert client.get("/healthz").json["problems"] == []
    assert cli_status(redis_url, config_file).returncode == 0


def cli_status(redis_url, config_file, *args: str) -> subprocess.CompletedProcess:
    """`tongdai config status` (or the `config` command given) in a process of its own."""
    env = {**os.environ, "REDIS_URL": redis_url, "TONGDAI_CONFIG": str(config_file)}
    return subprocess.run([sys.executable, "-m", "tongdai.core.cli", "config",
                           *(args or ("status",))],
                          env=env, capture_output=True, text=True, timeout=60, check=False)


def test_a_key_only_a_restart_applies_is_reported_and_nothing_of_the_edit_applied(
        watched, client, config_file, redis_url):
    watched.watch.start("test")
    before = watched.config
    edit(config_file, config_text(shards=4, extra_rule=REFUND_RULE))
    assert watched.watch.poll() == "restart"
    assert watched.config is before and watched.shards == 2  # the rule waits too
    (problem,) = client.get("/healthz").json["problems"]
    assert "ingest.shards" in problem and "restart" in problem

    diff = cli_status(redis_url, config_file, "check", "--diff")
    assert diff.returncode == 0, diff.stderr
    assert "ingest.shards  (needs a restart" in diff.stdout
    assert "tagging.rules\n" in diff.stdout  # applies live, but waits with the rest
    status = cli_status(redis_url, config_file)
    assert status.returncode == 1 and "not applied: waits for a restart" in status.stdout
    assert f"{config_file}: ingest.shards: only a restart" in status.stdout


def test_an_email_channels_listener_needs_a_restart(watched, config_file):
    mail = """  - id: mail
    adapter: email
    settings:
      address: support@example.vn
      inbound: {smtp: {host: 127.0.0.1, port: 2599}}
"""
    edit(config_file, config_text() + mail)
    assert watched.watch.poll() == "restart"
    assert watched.watch.pending == ["channels[mail].settings.inbound"]


def test_an_rq_worker_looks_before_each_job(watched, config_file):
    from rq import Queue

    from tongdai.worker.main import WatchingSimpleWorker

    jobs.set_hub(watched)
    q = Queue("config-life-test", connection=watched.redis)
    q.enqueue("os.getpid")
    edit(config_file, config_text(extra_rule=REFUND_RULE))
    WatchingSimpleWorker([q], connection=watched.redis).work(burst=True,
                                                             logging_level="WARNING")
    assert watched.generation == 2


def test_the_watch_thread_of_a_web_process_applies_an_edit(watched, config_file):
    stop = threading.Event()
    watched.watch.in_background(stop)
    try:
        edit(config_file, config_text(extra_rule=REFUND_RULE))
        wait_for(lambda: watched.generation == 2)
    finally:
        stop.set()


def test_a_check_between_batches_costs_little(watched):
    watched.watch.check_s = 2.0
    watched.watch.poll(force=True)
    n = 20_000
    t = time.perf_counter()
    for _ in range(n):
        watched.watch.poll()  # not due: a clock read
    assert (time.perf_counter() - t) / n < 20e-6
    t = time.perf_counter()
    for _ in range(200):
        watched.watch.poll(force=True)  # due, file unchanged: a stat
    assert (time.perf_counter() - t) / 200 < 1e-3


def test_stale_process_records_are_dropped(watched):
    watched.watch.start("test")
    key = watched.keys.config_processes()
    watched.redis.hset(key, "gone@elsewhere:1", '{"seen": 0, "version": "x"}')
    assert list(config_watch.processes(watched.redis, key)) == [watched.watch.name]
    assert watched.redis.hlen(key) == 1
    watched.watch.forget()
    assert watched.redis.hlen(key) == 0



def test_sla_targets_and_calendars_apply_live_and_a_bad_calendar_is_refused(watched, config_file):
    def with_sla(first: str, hours: str) -> str:
        return config_text() + f"""sla:
  first_response: {first}
  policies:
    - {{name: office, calendar: office, first_response: {first}}}
calendars:
  office: {{timezone: Asia/Ho_Chi_Minh, hours: {{mon-fri: "{hours}"}}, holidays: [VN]}}
"""
    edit(config_file, with_sla("15m", "08:00-17:00"))
    assert watched.watch.poll() == "applied"
    plan = sla.plan(watched)
    edit(config_file, with_sla("5m", "09:00-18:00"))
    assert watched.watch.poll() == "applied"
    assert watched.config.hub.sla.first_response == 300 and sla.plan(watched) is not plan
    assert watched.config.hub.calendars["office"].hours == {"mon-fri": "09:00-18:00"}

    edit(config_file, with_sla("5m", "25:00-18:00"))
    assert watched.watch.poll() == "invalid"
    assert watched.watch.errors[0].key.startswith("calendars.office")
    assert watched.config.hub.calendars["office"].hours == {"mon-fri": "09:00-18:00"}


def test_a_file_that_is_not_utf8_is_an_invalid_edit(watched, config_file):
    config_file.write_bytes(b"tagging:\n  rules: \xff\xfe\n")
    assert watched.watch.poll() == "invalid"
    assert watched.watch.errors[0].key == "(file)" and watched.generation == 1
