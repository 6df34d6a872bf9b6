"""Messenger and Zalo end to end: signed webhook → pipeline → API → reply → the platform's
fake server, with echoes, receipts, windows and token rotation as the platforms behave."""

from __future__ import annotations

import hashlib
import hmac

import orjson
import pytest

from tests.conftest import write_config
from tests.fakes import facebook_graph as fbg
from tests.fakes import zalo_api as zapi
from tests.helpers import auth, drain_all, fb_and_zalo_channels, run_outbound
from tongdai.core.clock import now_ms
from tongdai.core.credentials import RedisTokenStore

PAGE_ID = "1122334455"  # the page and OA of tests/helpers.py's fb_and_zalo_channels
PSID = "7012345678"
OA_ID = "388613280878808645"
OA_SECRET = "oa-secret-for-tests"
ZUSER = "246845883529197922"


@pytest.fixture
def graph():
    with fbg.FakeGraphAPI(profiles={PSID: {"first_name": "Lan", "last_name": "Nguyễn",
                                          "profile_pic": "https://cdn.example/lan.jpg"}}) as f:
        yield f


@pytest.fixture
def config_file(tmp_path, graph, zalo):
    """tests/helpers.py's Messenger page and Zalo OA, and a second page on the same app."""
    return write_config(tmp_path / "tongdai.yaml", extra=fb_and_zalo_channels(graph, zalo) + f"""\
  - id: fb-second
    adapter: facebook
    settings:
      page_id: "9988776655"
      page_access_token: "{fbg.DEFAULT_TOKEN}"
      app_secret: "{fbg.DEFAULT_APP_SECRET}"
      verify_token: "verify-me"
      graph_base: "{graph.base_url}"
""")


# -- Messenger ------------------------------------------------------------------------------
def fb_post(client, items: list[dict], secret: str = fbg.DEFAULT_APP_SECRET):
    """A page webhook as Meta sends it: signed over the raw bytes."""
    body = orjson.dumps({"object": "page", "entry": [
        {"id": PAGE_ID, "time": items[0]["timestamp"], "messaging": items}]})
    sig = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return client.post("/webhooks/fb-test", data=body, headers={
        "Content-Type": "application/json", "X-Hub-Signature-256": f"sha256={sig}"})


def fb_msg(mid: str, text: str, ts: int) -> dict:
    return {"sender": {"id": PSID}, "recipient": {"id": PAGE_ID}, "timestamp": ts,
            "message": {"mid": mid, "text": text}}


def fb_echo(mid: str, text: str, ts: int) -> dict:
    return {"sender": {"id": PAGE_ID}, "recipient": {"id": PSID}, "timestamp": ts,
            "message": {"mid": mid, "text": text, "is_echo": True, "app_id": 1517776481860111}}


def only_conv(client, token, channel):
    convs = client.get("/api/v1/conversations", headers=auth(token)).json["items"]
    return next(c for c in convs if c["channel_id"] == channel)


def timeline(client, token, conv_id):
    return client.get(f"/api/v1/conversations/{conv_id}/messages?limit=50",
                      headers=auth(token)).json["items"]


def test_messenger_handshake(client):
    ok = client.get("/webhooks/fb-test?hub.mode=subscribe&hub.verify_token=verify-me"
                    "&hub.challenge=1158201444")
    assert ok.status_code == 200 and ok.data == b"1158201444"
    bad = client.get("/webhooks/fb-test?hub.mode=subscribe&hub.verify_token=nope"
                     "&hub.challenge=1")
    assert bad.status_code == 403


def test_messenger_in_reply_echo_and_read(client, hub, admin_token, graph):
    text = "Cho mình hỏi áo này còn size M không ạ?"
    assert fb_post(client, [fb_msg("m_in1", text, now_ms() - 60_000)]).status_code == 200
    assert fb_post(client, [fb_msg("m_x", "x", now_ms())], secret="wrong").status_code in (401, 403)
    drain_all(hub)
    conv = only_conv(client, admin_token, "fb-test")
    assert [m["text"] for m in timeline(client, admin_token, conv["id"])] == [text]

    run_outbound(hub)  # the profile job: name and picture fetched off the request path
    cust = client.get(f"/api/v1/customers/{conv['customer_id']}", headers=auth(admin_token)).json
    assert cust["name"] == "Lan Nguyễn" and cust["picture"] == "https://cdn.example/lan.jpg"

    r = client.post(f"/api/v1/conversations/{conv['id']}/messages", json={"text": "Dạ còn ạ"},
                    headers={**auth(admin_token), "Idempotency-Key": "fb1"})
    assert r.status_code == 201
    run_outbound(hub)
    (sent,) = graph.sent()
    assert sent["messaging_type"] == "RESPONSE" and sent["message"]["text"] == "Dạ còn ạ"
    ours = next(m for m in timeline(client, admin_token, conv["id"]) if m["direction"] == "out")
    assert ours["status"] == "sent"

    # Meta echoes our own send (matched, not stored twice) and one a colleague typed in
    # Meta's inbox (stored as outbound history), then the customer reads up to now.
    fb_post(client, [fb_echo(ours["external_id"], "Dạ còn ạ", now_ms()),
                     fb_echo("m_inbox", "Shop gửi thêm ảnh nhé", now_ms())])
    fb_post(client, [{"sender": {"id": PSID}, "recipient": {"id": PAGE_ID},
                      "timestamp": now_ms() + 1000, "read": {"watermark": now_ms() + 500}}])
    drain_all(hub)
    msgs = timeline(client, admin_token, conv["id"])
    outs = [m for m in msgs if m["direction"] == "out"]
    assert sorted(m["text"] for m in outs) == ["Dạ còn ạ", "Shop gửi thêm ảnh nhé"]
    assert next(m for m in outs if m["id"] == ours["id"])["status"] == "read"


def test_messenger_human_agent_tag_then_window_closed(client, hub, admin_token, graph):
    fb_post(client, [fb_msg("m_old", "hello?", now_ms() - 3 * 86400_000)])
    drain_all(hub)
    conv = only_conv(client, admin_token, "fb-test")
    r = client.post(f"/api/v1/conversations/{conv['id']}/messages", json={"text": "sorry!"},
                    headers={**auth(admin_token), "Idempotency-Key": "fb2"})
    assert r.status_code == 201
    run_outbound(hub)
    (sent,) = graph.sent()
    assert (sent["messaging_type"], sent.get("tag")) == ("MESSAGE_TAG", "HUMAN_AGENT")

    hub.redis.hset(hub.keys.customer_last_inbound(conv["customer_id"]), f"fb-test|{PSID}",
                   now_ms() - 8 * 86400_000)  # as if the customer last wrote 8 days ago
    r = client.post(f"/api/v1/conversations/{conv['id']}/messages", json={"text": "late"},
                    headers={**auth(admin_token), "Idempotency-Key": "fb3"})
    assert r.status_code == 409 and r.json["error"]["code"] == "WindowClosed"
    assert len(graph.sent()) == 1


# -- Zalo -----------------------------------------------------------------------------------
def zalo_post(client, event: dict, key: str = OA_SECRET):
    body = orjson.dumps(event)
    mac = hashlib.sha256(f"{zapi.APP_ID}{body.decode()}{event['timestamp']}{key}".encode())
    return client.post("/webhooks/zalo-test", data=body, headers={
        "Content-Type": "application/json", "X-ZEvent-Signature": f"mac={mac.hexdigest()}"})


def zalo_text(msg_id: str, text: str, ts: int) -> dict:
    return {"app_id": zapi.APP_ID, "event_name": "user_send_text", "timestamp": str(ts),
            "sender": {"id": ZUSER}, "recipient": {"id": OA_ID}, "user_id_by_app": "5521",
            "message": {"msg_id": msg_id, "text": text}}


def test_zalo_in_reply_rotation_seen_and_verified_phone(client, hub, admin_token, zalo):
    text = "Shop ơi nạp thẻ cào 100k bị lỗi rồi"
    assert zalo_post(client, zalo_text("z1", text, now_ms())).status_code == 200
    assert zalo_post(client, zalo_text("z2", "x", now_ms()), key="wrong").status_code in (401, 403)
    drain_all(hub)
    conv = only_conv(client, admin_token, "zalo-test")
    assert [m["text"] for m in timeline(client, admin_token, conv["id"])] == [text]
    assert "payment" in conv["tags"] and conv["queue"] == "billing"

    zalo.expire_access_token()  # the 25 h access token ran out: -216 inside HTTP 200
    r = client.post(f"/api/v1/conversations/{conv['id']}/messages",
                    json={"text": "Dạ 100k giá 98k ạ"},
                    headers={**auth(admin_token), "Idempotency-Key": "z1"})
    assert r.status_code == 201
    run_outbound(hub)
    assert [s["message"]["text"] for s in zalo.sent()] == ["Dạ 100k giá 98k ạ"]
    assert zalo.refreshes == 1 and zalo.burnt_refresh_uses == 0
    stored = RedisTokenStore(hub, "zalo-test").current()
    assert stored["access_token"] == zalo.access_token  # persisted for every worker
    ours = next(m for m in timeline(client, admin_token, conv["id"]) if m["direction"] == "out")
    assert ours["status"] == "sent"

    zalo_post(client, {"app_id": zapi.APP_ID, "event_name": "user_seen_message",
                       "timestamp": str(now_ms()), "sender": {"id": OA_ID},
                       "recipient": {"id": ZUSER},
                       "message": {"msg_ids": [ours["external_id"]]}})
    zalo_post(client, {"app_id": zapi.APP_ID, "event_name": "user_submit_info",
                       "timestamp": str(now_ms()), "sender": {"id": ZUSER},
                       "recipient": {"id": OA_ID},
                       "info": {"name": "Lan", "phone": "84912345678"}})
    drain_all(hub)
    ours = next(m for m in timeline(client, admin_token, conv["id"]) if m["id"] == ours["id"])
    assert ours["status"] == "read"
    cust = client.get(f"/api/v1/customers/{conv['customer_id']}", headers=auth(admin_token)).json
    assert {"kind": "phone", "value": "+84912345678", "verified": True,
            "source": "zalo_user_submit_info"} in cust["identifiers"]


def test_zalo_window_closed_after_48h_without_calling_zalo(client, hub, admin_token, zalo):
    zalo_post(client, zalo_text("z9", "alo", now_ms() - 49 * 3600_000))
    drain_all(hub)
    conv = only_conv(client, admin_token, "zalo-test")
    r = client.post(f"/api/v1/conversations/{conv['id']}/messages", json={"text": "x"},
                    headers={**auth(admin_token), "Idempotency-Key": "z9"})
    assert r.status_code == 409 and "48 h" in r.json["error"]["message"]
    run_outbound(hub)
    assert zalo.sent() == []


def test_messenger_events_out_of_order_sort_by_platform_time(client, hub, admin_token):
    t = now_ms() - 10_000
    fb_post(client, [fb_msg("m_b", "thứ hai", t + 2000)])  # Meta delivered the later one first
    fb_post(client, [fb_msg("m_a", "thứ nhất", t + 1000)])
    drain_all(hub)
    conv = only_conv(client, admin_token, "fb-test")
    assert [m["text"] for m in timeline(client, admin_token, conv["id"])] == ["thứ hai",
                                                                              "thứ nhất"]


def _cli(redis_url, config_file, *args):
    import os
    import subprocess
    import sys

    env = {**os.environ, "REDIS_URL": redis_url, "TONGDAI_CONFIG": str(config_file)}
    return subprocess.run([sys.executable, "-m", "tongdai.core.cli", *args], env=env, text=True,
                          capture_output=True, timeout=60, check=False)


@pytest.mark.parametrize("platform,channel", [("facebook", "fb-test"), ("zalo", "zalo-test")])
def test_simulate_posts_signed_events(app, hub, redis_url, config_file, admin_token, platform,
                                      channel):
    import threading

    from werkzeug.serving import make_server

    server = make_server("127.0.0.1", 0, app, threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        out = _cli(redis_url, config_file, "simulate", platform, "--channel", channel,
                   "--text", "Xin chào từ mô phỏng", "--user-id", "555000111",
                   "--url", f"http://127.0.0.1:{server.server_port}")
    finally:
        server.shutdown()
    assert out.returncode == 0 and out.stdout.startswith("200"), out.stderr
    assert drain_all(hub)["stored"] == 1


def test_zalo_authorize_stores_the_first_pair(hub, redis_url, config_file, zalo):
    code = zalo.issue_code()
    out = _cli(redis_url, config_file, "channels", "zalo", "authorize", "zalo-test",
               "--code", code)
    assert out.returncode == 0, out.stderr
    stored = RedisTokenStore(hub, "zalo-test").current()
    assert stored["access_token"] == zalo.access_token
    assert zalo.access_token not in out.stdout + out.stderr  # never printed
    again = _cli(redis_url, config_file, "channels", "zalo", "authorize", "zalo-test",
                 "--code", code)  # codes are single-use
    assert again.returncode == 1 and "Error" in again.stderr


def test_one_app_several_pages_each_event_under_its_pages_channel(client, hub, admin_token):
    """Meta posts every Page of an app to the one callback URL; each entry names its Page."""
    t = now_ms()
    body = orjson.dumps({"object": "page", "entry": [
        {"id": PAGE_ID, "time": t, "messaging": [fb_msg("m_p1", "cho trang một", t)]},
        {"id": "9988776655", "time": t, "messaging": [
            {"sender": {"id": "8000001"}, "recipient": {"id": "9988776655"}, "timestamp": t,
             "message": {"mid": "m_p2", "text": "cho trang hai"}}]},
        {"id": "5555555555", "time": t, "messaging": [
            {"sender": {"id": "8000002"}, "recipient": {"id": "5555555555"}, "timestamp": t,
             "message": {"mid": "m_p3", "text": "a Page we have no channel for"}}]}]})
    sig = hmac.new(fbg.DEFAULT_APP_SECRET.encode(), body, hashlib.sha256).hexdigest()
    r = client.post("/webhooks/fb-test", data=body, headers={
        "Content-Type": "application/json", "X-Hub-Signature-256": f"sha256={sig}"})
    assert r.status_code == 200
    result = drain_all(hub)
    assert result["stored"] == 2 and result["dead"] == 1
    first, second = only_conv(client, admin_token, "fb-test"), only_conv(client, admin_token,
                                                                         "fb-second")
    assert [m["text"] for m in timeline(client, admin_token, second["id"])] == ["cho trang hai"]
    assert [m["text"] for m in timeline(client, admin_token, first["id"])] == ["cho trang một"]
    (dl,) = client.get("/api/v1/deadletters", headers=auth(admin_token)).json["items"]
    assert "'5555555555'" in dl["error"] and "add one with that id" in dl["error"]
