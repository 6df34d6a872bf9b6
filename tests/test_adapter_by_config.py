"""A new adapter plugs in by config alone, and the core applies its reply-window facts."""

from __future__ import annotations

import pytest

from tests.conftest import write_config
from tests.fakes import echo_adapter
from tests.helpers import auth, drain_all, run_outbound

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
    run_outbound(hub)
    assert [(m.address, m.text) for m in echo_adapter.SENT] == [("u1", "好的")]


def _post_at(client, hub, text, ts_ms, user="u1"):
    """An echo event whose platform timestamp is ``ts_ms`` (signed like the real ones)."""
    import time

    import orjson

    adapter = hub.adapter("echo-1")
    body = orjson.dumps({"id": time.time_ns(), "user": user, "ts": ts_ms, "text": text,
                         "name": "Wei"})
    return client.post("/webhooks/echo-1", data=body, headers={
        "X-Echo-Signature": adapter._sign(body), "Content-Type": "application/json"})


def test_reply_outside_the_window_is_refused_before_sending(client, hub, admin_token):
    from tongdai.core.clock import now_ms

    _post_at(client, hub, "hello", now_ms() - 2 * 86400_000)  # two days ago; echo allows 24 h
    drain_all(hub)
    (c,) = client.get("/api/v1/conversations", headers=auth(admin_token)).json["items"]
    r = client.post(f"/api/v1/conversations/{c['id']}/messages", json={"text": "late"},
                    headers={**auth(admin_token), "Idempotency-Key": "e2"})
    assert r.status_code == 409
    err = r.json["error"]
    assert err["code"] == "WindowClosed" and "24 h" in err["message"]
    assert err["reachable_channels"] == [] and "no other channel" in err["message"]
    msgs = client.get(f"/api/v1/conversations/{c['id']}/messages", headers=auth(admin_token))
    assert [m["direction"] for m in msgs.json["items"]] == ["in"]


def test_refusal_names_the_customers_reachable_channels(client, hub, admin_token):
    from tests.helpers import post, tg_update
    from tongdai.core.clock import now_ms

    _post_at(client, hub, "hello", now_ms() - 2 * 86400_000)
    post(client, tg_update(1, 555, 1, "I am on Telegram too"))
    drain_all(hub)
    convs = client.get("/api/v1/conversations", headers=auth(admin_token)).json["items"]
    echo_conv = next(c for c in convs if c["channel_id"] == "echo-1")
    tg_cust = next(c for c in convs if c["channel_id"] == "tg-test")["customer_id"]
    # an agent merges the two customers: one customer, two channels
    cust = echo_conv["customer_id"]
    r = client.post(f"/api/v1/customers/{cust}/merge", headers=auth(admin_token),
                    json={"source_customer_id": tg_cust, "why": "same person, said on the phone"})
    assert r.status_code == 200, r.json
    r = client.post(f"/api/v1/conversations/{echo_conv['id']}/messages",
                    json={"text": "x", "channel_id": "echo-1"},
                    headers={**auth(admin_token), "Idempotency-Key": "e3"})
    assert r.status_code == 409
    assert r.json["error"]["reachable_channels"] == ["tg-test"]
    assert "reachable now: tg-test" in r.json["error"]["message"]
    chans = client.get(f"/api/v1/conversations/{echo_conv['id']}/channels",
                       headers=auth(admin_token)).json["items"]
    assert [(c["channel_id"], c["reachable"]) for c in chans] == [("tg-test", True),
                                                                  ("echo-1", False)]
    # replying on the reachable channel works
    r = client.post(f"/api/v1/conversations/{echo_conv['id']}/messages",
                    json={"text": "xin chào", "channel_id": "tg-test"},
                    headers={**auth(admin_token), "Idempotency-Key": "e4"})
    assert r.status_code == 201 and r.json["channel_id"] == "tg-test"
    # and with no channel named, a reply goes where the customer can be reached now
    r = client.post(f"/api/v1/conversations/{echo_conv['id']}/messages", json={"text": "ạ"},
                    headers={**auth(admin_token), "Idempotency-Key": "e5"})
    assert r.status_code == 201 and r.json["channel_id"] == "tg-test"
