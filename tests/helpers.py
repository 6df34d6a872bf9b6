"""Shared test steps: post a Telegram update, drain the raw log like a worker would."""

from __future__ import annotations

import orjson

from core import rawlog
from core.hub import Hub
from tests.conftest import SECRET
from worker import jobs


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
    """Run the drain job on every shard until nothing is left (what RQ workers do)."""
    jobs.set_hub(hub)
    totals = {"stored": 0, "duplicates": 0, "updated": 0, "dead": 0}
    for _ in range(10):
        busy = False
        for s in range(hub.shards):
            r = jobs.drain(s)
            for k in totals:
                totals[k] += r[k]
            busy |= any(r.values())
        if not busy:
            break
    # the webhook enqueued RQ jobs too; they are not needed once drained here
    hub.redis.delete("rq:queue:" + rawlog.INGEST_QUEUE)
    return totals


def auth(token: str) -> dict:
    return {"Authorization": f"Bearer {token}"}
