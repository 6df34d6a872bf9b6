"""Shared test steps: post a Telegram update, drain the raw log like a worker would."""

from __future__ import annotations

import orjson

from tests.conftest import SECRET
from tongdai.core.hub import Hub
from tongdai.worker import jobs


def tg_update(update_id: int, chat_id: int, message_id: int, text: str, date: int = 1700000000,
              first_name: str = "Lan") -> bytes:
    return orjson.dumps({
        "update_id": update_id,
        "message": {"message_id": message_id, "date": date, "text": text,
                    "from": {"id": chat_id, "is_bot": False, "first_name": first_name},
                    "chat": {"id": chat_id, "type": "private", "first_name": first_name}}})


def post(client, body: bytes, channel: str = "tg-test", secret: str | None = SECRET):
    headers = {"Content-Type": "application/json"}
    if secret is not None:
        headers["X-Telegram-Bot-Api-Secret-Token"] = secret
    return client.post(f"/webhooks/{channel}", data=body, headers=headers)


def drain_all(hub: Hub) -> dict:
    """Process every waiting raw event, as an ingest loop would, without blocking."""
    r = jobs.ingest_pending(hub)
    return {"stored": r.stored, "duplicates": r.duplicates, "updated": r.updated, "dead": r.dead}


def run_outbound(hub: Hub, wait_s: float = 10.0) -> None:
    """The senders: a real RQ worker, in this process, until the replies and background
    queues are empty and no waiting send (retry, rate-limit slot) is due within ``wait_s``;
    the waiting ones are promoted at their time, as a sender's promoter thread would."""
    import time

    from rq import Queue

    from tongdai.core.clock import now_ms
    from tongdai.core.pipeline import send_schedule
    from tongdai.worker.main import QUEUES

    jobs.set_hub(hub)
    queues = [Queue(name, connection=hub.redis) for name in QUEUES["outbound"]]
    while True:
        quiet_worker_class()(queues, connection=hub.redis).work(burst=True,
                                                                 logging_level="WARNING")
        due = send_schedule.next_due_ms(hub)
        if due is None or due - now_ms() > wait_s * 1000:
            return
        time.sleep(max(0.0, (due - now_ms()) / 1000))
        send_schedule.promote_due(hub)


def quiet_worker_class():
    from rq import SimpleWorker

    class QuietWorker(SimpleWorker):
        """A burst worker without the command channel: redis-py 8.2's PubSubWorkerThread.stop()
        waits for its get_message(timeout=60), which rq's teardown can catch right after the
        thread read the unsubscribe reply — a burst then ends a minute late. Tests send no
        worker commands."""

        def subscribe(self) -> None:
            self.pubsub_thread = None

        def unsubscribe(self) -> None:
            pass

    return QuietWorker


def auth(token: str, idempotency_key: str | None = None) -> dict:
    """Bearer headers; with ``idempotency_key`` ("new" = a fresh one) for creates."""
    headers = {"Authorization": f"Bearer {token}"}
    if idempotency_key:
        import uuid

        headers["Idempotency-Key"] = (uuid.uuid4().hex if idempotency_key == "new"
                                      else idempotency_key)
    return headers


def fb_and_zalo_channels(graph, zalo) -> str:
    """Config lines for a Messenger page (``fb-test``) and a Zalo OA (``zalo-test``) on the fake
    Graph and Zalo servers (the ``graph`` and ``zalo`` fixtures of tests/conftest.py), to add
    to ``write_config``'s channels."""
    from tests.fakes import facebook_graph as fbg
    from tests.fakes import zalo_api as zapi

    return f"""  - id: fb-test
    adapter: facebook
    settings:
      page_id: "1122334455"
      page_access_token: "{fbg.DEFAULT_TOKEN}"
      app_secret: "{fbg.DEFAULT_APP_SECRET}"
      verify_token: "verify-me"
      graph_base: "{graph.base_url}"
  - id: zalo-test
    adapter: zalo
    settings:
      oa_id: "388613280878808645"
      app_id: "{zapi.APP_ID}"
      oa_secret_key: "oa-secret-for-tests"
      app_secret: "{zapi.APP_SECRET}"
      access_token: "{zapi.ACCESS_TOKEN}"
      refresh_token: "{zapi.REFRESH_TOKEN}"
      api_base: "{zalo.base_url}"
      oauth_base: "{zalo.base_url}"
"""
