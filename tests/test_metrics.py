"""``/metrics`` and ``/healthz`` as an operator reads them: real webhooks through the app, a
real ingest and send, figures from a forked work horse, who may scrape, and what "degraded"
means. Counters are process-wide (the test process shares them): tests compare before/after."""

from __future__ import annotations

import glob
import os

import orjson
import pytest
from prometheus_client.parser import text_string_to_metric_families
from rq import Queue, SimpleWorker, Worker

from tests.conftest import SECRET, write_config
from tests.helpers import auth, drain_all, post, tg_update
from tongdai.core import metrics
from tongdai.core.config_watch import ConfigWatch
from tongdai.core.keys import REPLIES_QUEUE
from tongdai.core.pipeline import feed, sla
from tongdai.core.workspace import tokens
from tongdai.worker import jobs
from tongdai.worker.main import WatchingWorker

METRICS_TOKEN = "prom-0123456789abcdefghijklmnop"


@pytest.fixture
def config_file(tmp_path, tg_fake):
    return write_config(tmp_path / "tongdai.yaml", api_base=tg_fake.base_url,
                        extra=f"metrics:\n  token: {METRICS_TOKEN}\n")


def scrape(client) -> dict[tuple[str, tuple], float]:
    r = client.get("/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"})
    assert r.status_code == 200, r.data
    assert r.content_type.startswith("text/plain")
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for fam in text_string_to_metric_families(r.get_data(as_text=True))
            for s in fam.samples}


def value(m: dict, name: str, **labels) -> float:
    return m.get((name, tuple(sorted(labels.items()))), 0.0)


class _Quiet:
    """Without RQ's command channel: its thread may sleep 60 s before a burst ends."""

    def subscribe(self) -> None:
        pass

    def unsubscribe(self) -> None:
        pass


class _Worker(_Quiet, WatchingWorker):
    pass


class _Sender(_Quiet, SimpleWorker):
    pass


def test_webhooks_ingest_dead_letters_queues_and_sends_as_charted(client, hub, admin_token,
                                                                 tg_fake):
    jobs.set_hub(hub)
    before = scrape(client)
    for i in range(3):
        assert post(client, tg_update(100 + i, 5000 + i, 1, f"Shop ơi đơn #{i} giao chưa?")
                    ).status_code == 200
    assert post(client, tg_update(200, 6000, 1, "x"), secret="wrong").status_code == 401
    assert post(client, b"[1,2]").status_code == 400
    # well-formed (accepted) but without a chat: a dead letter once ingested
    no_chat = orjson.dumps({"update_id": 9, "message": {"message_id": 1, "date": 1, "text": "x"}})
    assert post(client, no_chat).status_code == 200
    assert drain_all(hub) == {"stored": 3, "duplicates": 0, "updated": 0, "dead": 1}

    m = scrape(client)
    accepted = "tongdai_webhooks_accepted_total"
    rejected = "tongdai_webhooks_rejected_total"
    assert value(m, accepted, channel="tg-test") - value(before, accepted, channel="tg-test") == 4
    assert value(m, rejected, channel="tg-test", reason="signature") - value(
        before, rejected, channel="tg-test", reason="signature") == 1
    assert value(m, rejected, channel="tg-test", reason="malformed") - value(
        before, rejected, channel="tg-test", reason="malformed") == 1
    stored = "tongdai_messages_stored_total"
    assert value(m, stored, channel="tg-test") - value(before, stored, channel="tg-test") == 3
    assert value(m, "tongdai_dead_letters") == 1
    assert value(m, "tongdai_dead_letters_written_total", channel="tg-test") - value(
        before, "tongdai_dead_letters_written_total", channel="tg-test") == 1
    assert value(m, "tongdai_agent_queue_depth", queue="general") == 3
    assert value(m, "tongdai_ingest_lag_seconds") == 0  # everything ingested

    # an agent's reply: one job waiting in the replies queue until a sender runs
    conv = client.get("/api/v1/conversations", headers=auth(admin_token)).json["items"][0]["id"]
    assert client.post(f"/api/v1/conversations/{conv}/messages", json={"text": "Dạ có ạ"},
                       headers=auth(admin_token, "new")).status_code == 201
    m = scrape(client)
    assert value(m, "tongdai_job_queue_depth", queue=REPLIES_QUEUE) == 1
    assert value(m, "tongdai_job_queue_oldest_seconds", queue=REPLIES_QUEUE) >= 0
    _Sender([Queue(REPLIES_QUEUE, connection=hub.redis)], connection=hub.redis).work(
        burst=True, logging_level="WARNING")
    after = scrape(client)
    assert value(after, "tongdai_job_queue_depth", queue=REPLIES_QUEUE) == 0
    sends = "tongdai_sends_total"
    assert value(after, sends, channel="tg-test", outcome="sent") - value(
        before, sends, channel="tg-test", outcome="sent") == 1

    # SLA: nobody answered the other two in time (15 min by default); the tick reports them
    sla.report_breaches(hub, now=10**13)
    m = scrape(client)
    assert value(m, "tongdai_sla_breaches_total", channel="tg-test") == 2


def test_counters_of_a_forked_work_horse_are_scraped_and_its_file_folded(client, hub,
                                                                        admin_token):
    """A forking RQ worker (what `tongdai worker` runs) sends a reply in its work horse: the
    horse's count reaches the scrape, and its file is folded into the archive when it ends."""
    post(client, tg_update(1, 4242, 1, "Xin chào"))
    drain_all(hub)
    conv = client.get("/api/v1/conversations", headers=auth(admin_token)).json["items"][0]["id"]
    before = scrape(client)
    client.post(f"/api/v1/conversations/{conv}/messages", json={"text": "Dạ"},
                headers=auth(admin_token, "new"))
    jobs.set_hub(hub)
    worker = _Worker([Queue(REPLIES_QUEUE, connection=hub.redis)], connection=hub.redis)
    assert worker.work(burst=True, logging_level="WARNING")
    horse = worker._last_horse
    assert horse and horse != os.getpid()
    assert not glob.glob(str(metrics.directory() / f"*_{horse}.db"))  # folded already
    m = scrape(client)
    sends = "tongdai_sends_total"
    assert value(m, sends, channel="tg-test", outcome="sent") - value(
        before, sends, channel="tg-test", outcome="sent") == 1
    again = scrape(client)  # folded once: nothing lost or counted twice on a re-scrape
    assert {k: v for k, v in again.items() if k[0].endswith("_total")} == {
        k: v for k, v in m.items() if k[0].endswith("_total")}


def test_a_dead_process_left_behind_is_folded_at_the_scrape(client, hub):
    """A process killed without its parent's clean-up (a crashed web worker): the next
    scrape folds its counters into the archive and drops its live gauge."""
    before = scrape(client)
    pid = os.fork()
    if pid == 0:  # the child counts, opens a live stream, and dies
        try:
            metrics.webhook("tg-test", 200)
            metrics.stream_opened()
        finally:
            os._exit(0)
    os.waitpid(pid, 0)
    assert glob.glob(str(metrics.directory() / f"*_{pid}.db"))
    m = scrape(client)
    assert not glob.glob(str(metrics.directory() / f"*_{pid}.db"))
    accepted = "tongdai_webhooks_accepted_total"
    assert value(m, accepted, channel="tg-test") - value(before, accepted, channel="tg-test") == 1
    assert value(m, "tongdai_sse_clients") == value(before, "tongdai_sse_clients")


def test_metrics_need_the_metrics_token_or_an_admin(client, hub, admin_token):
    assert client.get("/metrics").status_code == 401
    assert client.get("/metrics", headers={"Authorization": "Bearer nope"}).status_code == 401
    agent = tokens.create(hub, "an", "agent")
    assert client.get("/metrics", headers=auth(agent)).status_code == 403
    assert client.get("/metrics", headers=auth(admin_token)).status_code == 200
    assert client.get("/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"}
                      ).status_code == 200


def test_healthz_degraded_without_workers_and_reactor_lag(client, hub):
    post(client, tg_update(1, 4242, 1, "Xin chào"))
    h = client.get("/healthz")
    assert h.status_code == 200  # events are stored: not a reason to take it out of a pool
    h = h.json
    assert h["status"] == "degraded" and h["ok"] is True
    assert any("tongdai-replies" in d and "--queues replies" in d for d in h["degraded"])
    assert any("`tongdai reactor`" in d for d in h["degraded"])
    assert h["queues"]["tongdai-ingest"]["workers"] == 0
    assert h["raw_events"]["undelivered"] == 1 and h["ingest_lag_s"] >= 0

    drain_all(hub)  # the message lands on the change feed; no reactor has read it yet
    h = client.get("/healthz").json
    behind = {name: r["behind"] + r["pending"] for name, r in h["reactors"].items()}
    assert behind and all(n >= 1 for n in behind.values()), h["reactors"]
    assert h["ingest_lag_s"] == 0 and h["raw_events"] == {"undelivered": 0, "pending": 0}

    # reactors catch up; a worker for every queue, a reactor and a scheduler come alive
    feed.run_pending(hub)
    w = Worker([Queue(n, connection=hub.redis) for n in
                ("tongdai-ingest", "tongdai-replies", "tongdai-background", "tongdai-hooks")],
               connection=hub.redis)
    w.register_birth()
    for role in ("reactor", "scheduler"):
        ConfigWatch(hub).start(role)
    try:
        h = client.get("/healthz").json
        assert h["status"] == "ok", h["degraded"]
        assert all(r["behind"] == 0 and r["lag_s"] == 0 for r in h["reactors"].values())
        assert h["queues"]["tongdai-replies"] == {"depth": 0, "oldest_job_age_s": 0.0,
                                                  "failed": 0, "workers": 1}
        assert h["processes"]["reactor"] == 1
        assert value(scrape(client), "tongdai_processes", role="scheduler") == 1
    finally:
        w.register_death()


def test_bad_secret_is_counted_on_the_asgi_fast_path_too(hub):
    """The web server answers webhooks on its event loop (webhooks/asgi.py): the same
    counts as the Flask path."""
    import asyncio

    from tongdai.webhooks.asgi import Webhooks

    fast = Webhooks(hub, os.environ["REDIS_URL"])
    sent: list[dict] = []

    async def send(msg):
        sent.append(msg)

    def scope(secret):
        return {"type": "http", "method": "POST", "path": "/webhooks/tg-test",
                "headers": [(b"x-telegram-bot-api-secret-token", secret.encode()),
                            (b"content-type", b"application/json")]}

    before = metrics.WEBHOOKS_REJECTED.labels("tg-test", "signature")._value.get()
    ok = metrics.WEBHOOKS_ACCEPTED.labels("tg-test")._value.get()
    asyncio.run(fast(scope("wrong"), tg_update(1, 1, 1, "x"), send))
    asyncio.run(fast(scope(SECRET), tg_update(2, 1, 2, "x"), send))
    assert [m["status"] for m in sent if "status" in m] == [401, 200]
    assert metrics.WEBHOOKS_REJECTED.labels("tg-test", "signature")._value.get() == before + 1
    assert metrics.WEBHOOKS_ACCEPTED.labels("tg-test")._value.get() == ok + 1


def test_the_sample_dashboard_charts_only_metrics_the_hub_serves(client, hub):
    """docs/grafana-tongdai.json: a renamed metric would leave an empty panel."""
    import json
    import re
    from pathlib import Path

    dashboard = json.loads((Path(__file__).parents[1] / "docs" / "grafana-tongdai.json")
                           .read_text("utf-8"))
    charted = {name for p in dashboard["panels"] for t in p.get("targets", ())
               for name in re.findall(r"\btongdai_[a-z_]+", t["expr"])}
    text = client.get("/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"}
                      ).get_data(as_text=True)
    families = list(text_string_to_metric_families(text))  # Redis-read: always there
    families += [m for c in (metrics.WEBHOOKS_ACCEPTED, metrics.WEBHOOKS_REJECTED,
                             metrics.MESSAGES_STORED, metrics.DEAD_LETTERS, metrics.SENDS,
                             metrics.sse_clients()) for m in c.describe()]  # once counted
    served = {f.name + ("_total" if f.type == "counter" else "") for f in families}
    assert len(charted) >= 20 and charted <= served, charted - served


def test_open_live_streams_are_counted_while_open(client, admin_token):
    """The Flask stream (WSGI servers; uvicorn's is webhooks/streaming.py)."""
    before = value(scrape(client), "tongdai_sse_clients")
    stream = client.get("/api/v1/events/stream", headers=auth(admin_token), buffered=False)
    assert "retry:" in next(stream.response).decode()
    assert value(scrape(client), "tongdai_sse_clients") == before + 1
    stream.close()
    assert value(scrape(client), "tongdai_sse_clients") == before
