"""A new adapter plugs in by config alone, and the core applies its reply-window facts."""

from __future__ import annotations

import pytest
from rq import Queue, SimpleWorker

from core.keys import OUTBOUND_QUEUE
from tests.conftest import write_config
from tests.fakes import echo_adapter
from tests.helpers import auth, drain_all
from worker import jobs

ECHO = """
  - id: echo-1
    adapter: tests.fakes.echo_adapter:EchoAdapter
    settings:
      signing_key: k3y
"""


@pytest.fixture
def config_file(tmp_path):
    return write_config(tmp_path / "tongdai.yaml", extra=ECHO)


def _post(client, hub, text, user="u1"):
    headers, body = hub.adapter("echo-1").simulate(text, user, "Wei")
    return client.post("/webhooks/echo-1", data=body, headers=headers)


def test_module_path_adapter_receives_and_sends(client, hub, admin_token):
    assert _post(client, hub, "我想充值").status_code == 200
    bad_headers, body = hub.adapter("echo-1").simulate("x", "u1", "Wei")
    bad_headers["X-Echo-Signature"] = "0" * 64
    assert client.post("/webhooks/echo-1", data=body, headers=bad_headers).status_code == 401
    drain_all(hub)
    conv = client.get("/api/v1/conversations?queue=billing", headers=auth(admin_token)).json
    (c,) = conv["items"]
    assert c["channel_id"] == "echo-1" and {"payment", "lang:zh"} <= set(c["tags"])
    customer = client.get(f"/api/v1/customers/{c['customer_id']}", headers=auth(admin_token)).json
    assert customer["name"] == "Wei"
    assert customer["identities"] == [{"channel_id": "echo-1", "external_user_id": "u1",
                                       "address": "u1"}]

    echo_adapter.SENT.clear()
    r = client.post(f"/api/v1/conversations/{c['id']}/messages", json={"text": "好的"},
                    headers={**auth(admin_token), "Idempotency-Key": "e1"})
    assert r.status_code == 201
    jobs.set_hub(hub)
    SimpleWorker([Queue(OUTBOUND_QUEUE, connection=hub.redis)], connection=hub.redis).work(
        burst=True, logging_level="WARNING")
    assert [(m.address, m.text) for m in echo_adapter.SENT] == [("u1", "好的")]


def test_reply_outside_the_window_is_refused_before_sending(client, hub, admin_token):
    _post(client, hub, "hello")
    drain_all(hub)
    (c,) = client.get("/api/v1/conversations", headers=auth(admin_token)).json["items"]
    # the customer's last message is two days old; the echo platform allows 24 h
    hub.redis.hset(hub.keys.conversation(c["id"]), "last_in", c["last_inbound_ts"] - 2 * 86400_000)
    r = client.post(f"/api/v1/conversations/{c['id']}/messages", json={"text": "late"},
                    headers={**auth(admin_token), "Idempotency-Key": "e2"})
    assert r.status_code == 409
    assert r.json["error"]["code"] == "WindowClosed" and "24 h" in r.json["error"]["message"]
    msgs = client.get(f"/api/v1/conversations/{c['id']}/messages", headers=auth(admin_token))
    assert [m["direction"] for m in msgs.json["items"]] == ["in"]
