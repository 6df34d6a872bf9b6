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


def run_outbound(hub: Hub) -> None:
    """The sender: a real RQ worker, in this process, until the outbound queue is empty."""
    from rq import Queue, SimpleWorker

    from tongdai.core.keys import OUTBOUND_QUEUE

    jobs.set_hub(hub)
    SimpleWorker([Queue(OUTBOUND_QUEUE, connection=hub.redis)], connection=hub.redis).work(
        burst=True, logging_level="WARNING")


def auth(token: str, idempotency_key: str | None = None) -> dict:
    """Bearer headers; with ``idempotency_key`` ("new" = a fresh one) for creates."""
    headers = {"Authorization": f"Bearer {token}"}
    if idempotency_key:
        import uuid

        headers["Idempotency-Key"] = (uuid.uuid4().hex if idempotency_key == "new"
                                      else idempotency_key)
    return headers
