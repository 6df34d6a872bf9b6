"""Channels added by configuration alone (``adapter: webhook``), end to end: a signed webhook
→ the conversation → an agent's reply → the platform's fake server receiving the templated
body. LINE runs on the mapping shipped in config/tongdai.example.yaml; "Bazaar Chat" is a
made-up platform defined only in tests/fakes/bazaar_api.py's YAML."""

from __future__ import annotations

import base64
import hashlib
import hmac
import uuid
from datetime import UTC, datetime
from pathlib import Path

import orjson
import pytest
import yaml
from click.testing import CliRunner

from tests.conftest import FIXTURES, write_config
from tests.fakes import bazaar_api as bz
from tests.fakes import line_api
from tests.helpers import auth, drain_all, run_outbound
from tongdai.core.clock import now_ms

EXAMPLE = Path(__file__).parent.parent / "config" / "tongdai.example.yaml"
LINE_USER = "U4af4980629b2d1c6e8f0a3b5c7d9e1f2"


def line_channel_yaml() -> str:
    """The LINE channel exactly as the example config documents it (its ${...} references
    are filled from the environment when the config loads)."""
    channels = yaml.safe_load(EXAMPLE.read_text(encoding="utf-8"))["channels"]
    (line,) = [c for c in channels if c["id"] == "line-oa"]
    text = yaml.safe_dump([line], allow_unicode=True, sort_keys=False)
    return "\n".join("  " + row for row in text.splitlines()) + "\n"


@pytest.fixture
def line():
    with line_api.FakeLINEAPI(profiles={LINE_USER: {
            "displayName": "Lan Phương", "pictureUrl": "https://profile.line-scdn.net/0h1"}}) as f:
        yield f


@pytest.fixture
def bazaar():
    with bz.FakeBazaarAPI() as f:
        yield f


@pytest.fixture
def config_file(tmp_path, monkeypatch, line, bazaar):
    monkeypatch.setenv("LINE_CHANNEL_SECRET", line_api.CHANNEL_SECRET)
    monkeypatch.setenv("LINE_CHANNEL_ACCESS_TOKEN", line_api.ACCESS_TOKEN)
    monkeypatch.setenv("LINE_API_BASE", line.base_url)
    monkeypatch.setenv("LINE_DATA_BASE", line.base_url)
    return write_config(tmp_path / "tongdai.yaml",
                        extra=line_channel_yaml() + bz.channel_yaml(bazaar.base_url))


def line_post(client, body: bytes, secret: str = line_api.CHANNEL_SECRET):
    """A webhook as the LINE Platform sends it: x-line-signature, base64 HMAC-SHA256."""
    sig = base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest()).decode()
    return client.post("/webhooks/line-oa", data=body, headers={
        "Content-Type": "application/json; charset=utf-8", "x-line-signature": sig})


def fixture(name: str) -> bytes:
    return (FIXTURES / "line" / name).read_bytes()


def only_conv(client, token, channel):
    convs = client.get("/api/v1/conversations", headers=auth(token)).json["items"]
    return next(c for c in convs if c["channel_id"] == channel)


def timeline(client, token, conv_id):
    return client.get(f"/api/v1/conversations/{conv_id}/messages?limit=50",
                      headers=auth(token)).json["items"]


def reply(client, token, conv_id, text):
    r = client.post(f"/api/v1/conversations/{conv_id}/messages", json={"text": text},
                    headers=auth(token, "new"))
    assert r.status_code == 201, r.json
    return r.json


# -- LINE -----------------------------------------------------------------------------------
def test_line_message_to_reply_through_the_documented_mapping(client, hub, admin_token, line):
    assert line_post(client, fixture("01_text_vietnamese.json")).status_code == 200
    assert line_post(client, fixture("01_text_vietnamese.json")).status_code == 200  # again
    assert drain_all(hub)["stored"] == 1
    conv = only_conv(client, admin_token, "line-oa")
    assert conv["queue"] == "billing" and "payment" in conv["tags"]  # "nạp thẻ"
    (msg,) = timeline(client, admin_token, conv["id"])
    assert msg["text"] == "Chào shop, mình muốn nạp thẻ nhưng bị lỗi"

    sent = reply(client, admin_token, conv["id"], "Dạ shop kiểm tra ngay ạ")
    run_outbound(hub)  # the reply, and the new customer's profile from LINE
    ((_path, headers, _),) = [r for r in line.requests if r[0] == "/v2/bot/message/push"]
    assert line.pushes == [{"to": LINE_USER, "messages": [
        {"type": "text", "text": "Dạ shop kiểm tra ngay ạ"}]}]
    assert headers["authorization"] == f"Bearer {line_api.ACCESS_TOKEN}"
    uuid.UUID(headers["x-line-retry-key"])  # LINE takes a UUID as its retry key
    out = next(m for m in timeline(client, admin_token, conv["id"]) if m["id"] == sent["id"])
    assert out["status"] == "sent" and out["external_id"] == "600000000000000001"
    customer = client.get(f"/api/v1/customers/{conv['customer_id']}",
                          headers=auth(admin_token)).json
    assert customer["name"] == "Lan Phương"


def test_line_photo_is_fetched_through_the_documented_files_mapping(client, hub, admin_token,
                                                                    line):
    """The example config's ``files:``: the background job GETs LINE's content API with the
    channel's token and keeps the photo; a sticker is left alone; content LINE no longer has
    is marked, not retried forever."""
    from tests.test_attachments import png

    image = png(5, 3)
    line.add_content("531029501234567890", image, "image/jpeg")
    for name in ("04_image.json", "05_sticker.json"):
        assert line_post(client, fixture(name)).status_code == 200
    drain_all(hub)
    run_outbound(hub)  # the background job (and the new customer's profile)
    conv = only_conv(client, admin_token, "line-oa")
    photo = next(m for m in timeline(client, admin_token, conv["id"])
                 if m["attachments"] and m["attachments"][0]["kind"] == "image")
    assert photo["attachments"][0]["file_id"].startswith("blob:")
    got = client.get(f"/api/v1/conversations/{conv['id']}/messages/{photo['id']}/attachments/0",
                     headers=auth(admin_token))
    assert got.status_code == 200 and got.data == image
    (fetch,) = [r for r in line.requests if r[0].endswith("/content")]
    assert fetch[0] == "/v2/bot/message/531029501234567890/content"
    assert fetch[1]["authorization"] == f"Bearer {line_api.ACCESS_TOKEN}"
    sticker = next(m for m in timeline(client, admin_token, conv["id"])
                   if m["attachments"] and m["attachments"][0]["kind"] == "sticker")
    assert not sticker["attachments"][0]["file_id"].startswith("blob:")
    # a photo whose content LINE no longer keeps (404): marked, the console says so
    body = orjson.loads(fixture("04_image.json"))
    body["events"][0]["message"]["id"] = "531029509999999999"
    body["events"][0]["webhookEventId"] = "01JEB1J5B3D5F7H9K1M3P5R7ZZ"
    assert line_post(client, orjson.dumps(body)).status_code == 200
    drain_all(hub)
    run_outbound(hub)
    gone = next(m for m in timeline(client, admin_token, conv["id"]) if m["attachments"]
                and m["attachments"][0].get("file_id") == "531029509999999999")
    assert gone["attachments"][0]["meta"]["fetch_error"] == "not_found"


def test_line_unsend_hides_the_text_and_follow_is_a_line(client, hub, admin_token):
    for name in ("02_follow.json", "01_text_vietnamese.json", "03_unsend.json"):
        assert line_post(client, fixture(name)).status_code == 200
    drain_all(hub)
    conv = only_conv(client, admin_token, "line-oa")
    texts = [m["text"] for m in timeline(client, admin_token, conv["id"])]
    assert "[the customer deleted this message]" in texts
    assert not any("nạp thẻ" in (t or "") for t in texts)


def test_line_bad_signature_is_refused_and_nothing_is_stored(client, hub):
    body = fixture("01_text_vietnamese.json")
    assert line_post(client, body, secret="not-the-channel-secret").status_code == 401
    assert client.post("/webhooks/line-oa", data=body).status_code == 401  # no header at all
    tampered = body.replace(b"Ch\xc3\xa0o", b"Hi")
    sig = base64.b64encode(hmac.new(line_api.CHANNEL_SECRET.encode(), body,
                                    hashlib.sha256).digest()).decode()
    assert client.post("/webhooks/line-oa", data=tampered,
                       headers={"x-line-signature": sig}).status_code == 401
    assert drain_all(hub) == {"stored": 0, "duplicates": 0, "updated": 0, "dead": 0}
    # LINE's "Verify" button posts an empty events list: accepted, nothing stored
    assert line_post(client, b'{"destination":"U1","events":[]}').status_code == 200
    assert drain_all(hub)["stored"] == 0


def test_line_429_then_5xx_are_retried_and_sent_once(client, hub, admin_token, line):
    line_post(client, fixture("01_text_vietnamese.json"))
    drain_all(hub)
    conv = only_conv(client, admin_token, "line-oa")
    line.fail_next(429)
    line.fail_next(500)
    sent = reply(client, admin_token, conv["id"], "Shop gửi lại ạ")
    run_outbound(hub)
    pushes = [r for r in line.requests if r[0] == "/v2/bot/message/push"]
    assert len(pushes) == 3 and len({h["x-line-retry-key"] for _, h, _ in pushes}) == 1
    assert [p["messages"][0]["text"] for p in line.pushes] == ["Shop gửi lại ạ"]
    out = next(m for m in timeline(client, admin_token, conv["id"]) if m["id"] == sent["id"])
    assert out["status"] == "sent"


# -- Bazaar Chat (made up, defined only in YAML) --------------------------------------------
def iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat().replace("+00:00", "Z")


def delivery(seq: int, kind: str = "message.created", text: str = "hello", uid=884422,
             ref: str = "msg_1", at_ms: int | None = None, **extra) -> dict:
    at = iso(at_ms if at_ms is not None else now_ms())
    author = {"uid": uid, "nick": "Minh Anh"} if uid is not None else None
    message = {"ref": ref, "content": {"text": text}, "created": at} | extra
    if kind == "message.edited":
        message["updated"] = at
    return {"event": kind, "seq": seq, "conversation": {"ref": "cv_77"}, "author": author,
            "message": message}


def bazaar_post(client, deliveries: list[dict], timestamp: str = "1764842400"):
    body = orjson.dumps({"deliveries": deliveries})
    return client.post("/webhooks/bazaar", data=body, headers=bz.sign(body, timestamp))


def test_bazaar_in_and_out_by_config_alone(client, hub, admin_token, bazaar):
    files = [{"href": "https://cdn.bazaar.example/f/1.pdf", "mime": "application/pdf",
              "bytes": 48213, "title": "hoa-don.pdf"}]
    r = bazaar_post(client, [delivery(1, text="Đơn HD-20451 giao chưa?", files=files),
                             {"event": "typing", "seq": 2, "author": {"uid": 884422}}])
    assert r.status_code == 200
    assert drain_all(hub)["stored"] == 1
    bazaar_post(client, [delivery(3, "message.edited", text="Đơn HD-20451 giao chưa ạ?")])
    assert drain_all(hub)["updated"] == 1
    conv = only_conv(client, admin_token, "bazaar")
    (msg,) = timeline(client, admin_token, conv["id"])
    assert msg["text"] == "Đơn HD-20451 giao chưa ạ?" and msg["edited_ts"]
    assert msg["attachments"][0]["name"] == "hoa-don.pdf"
    customer = client.get(f"/api/v1/customers/{conv['customer_id']}",
                          headers=auth(admin_token)).json
    assert customer["name"] == "Minh Anh"

    bazaar.busy_next(retry_in=0)  # 200 {"status": "queued_full"}: retry_when
    bazaar.fail_next(429, retry_after="0")
    bazaar.fail_next(503, retry_after="0")
    sent = reply(client, admin_token, conv["id"], "Dạ đơn đang giao ạ")
    run_outbound(hub)
    assert bazaar.calls == 4
    assert bazaar.received == [("cv_77", {"content": {"text": "Dạ đơn đang giao ạ"},
                                          "client_ref": sent["id"]})]
    out = next(m for m in timeline(client, admin_token, conv["id"]) if m["id"] == sent["id"])
    assert out["status"] == "sent" and out["external_id"] == "msg_srv_1"


def test_bazaar_permanent_failure_is_shown_with_the_platforms_words(client, hub, admin_token,
                                                                     bazaar):
    bazaar_post(client, [delivery(1)])
    drain_all(hub)
    conv = only_conv(client, admin_token, "bazaar")
    bazaar.fail_next(400)
    sent = reply(client, admin_token, conv["id"], "xin chào")
    run_outbound(hub)
    out = next(m for m in timeline(client, admin_token, conv["id"]) if m["id"] == sent["id"])
    assert out["status"] == "failed" and "upstream said 400" in out["status_reason"]
    assert bazaar.calls == 1


def test_bazaar_signature_covers_timestamp_and_body(client, hub):
    body = orjson.dumps({"deliveries": [delivery(1)]})
    headers = bz.sign(body, "1764842400")
    assert client.post("/webhooks/bazaar", data=body, headers=headers).status_code == 200
    moved = headers | {"X-Bazaar-Timestamp": "1764842999"}
    assert client.post("/webhooks/bazaar", data=body, headers=moved).status_code == 401
    wrong = bz.sign(body, "1764842400", secret="guessed")
    assert client.post("/webhooks/bazaar", data=body, headers=wrong).status_code == 401
    assert client.post("/webhooks/bazaar", data=b"not json",
                       headers=bz.sign(b"not json", "1")).status_code == 400
    assert drain_all(hub)["stored"] == 1


def test_bazaar_reply_window_from_iso_timestamps(client, hub, admin_token):
    bazaar_post(client, [delivery(1, at_ms=now_ms() - 4 * 86400_000)])  # 4 days; window 72 h
    drain_all(hub)
    conv = only_conv(client, admin_token, "bazaar")
    r = client.post(f"/api/v1/conversations/{conv['id']}/messages", json={"text": "late"},
                    headers=auth(admin_token, "new"))
    assert r.status_code == 409
    assert "Bazaar Chat allows replies for 72 h" in r.json["error"]["message"]


def test_event_the_mapping_cannot_read_is_a_dead_letter_naming_the_expression(
        client, hub, admin_token, monkeypatch, config_file):
    r = bazaar_post(client, [delivery(1, text="ổn"), delivery(2, uid=None, ref="msg_2"),
                             delivery(3, ref="msg_3", created="yesterday-ish")])
    assert r.status_code == 200
    result = drain_all(hub)
    assert result["stored"] == 1 and result["dead"] == 1  # the good one is not held back
    (dl,) = client.get("/api/v1/deadletters", headers=auth(admin_token)).json["items"]
    assert "event 2 of 3: events.customer_id 'author.uid' gave null" in dl["error"]
    assert "event 3 of 3: events.timestamp 'message.updated || message.created' gave " \
           "'yesterday-ish', not a time in ISO 8601" in dl["error"]

    from tongdai.core.cli import main

    monkeypatch.setenv("TONGDAI_CONFIG", str(config_file))
    listed = CliRunner().invoke(main, ["deadletter", "list"])
    assert listed.exit_code == 0 and "'author.uid' gave null" in listed.output
    again = CliRunner().invoke(main, ["deadletter", "replay", dl["id"]])
    assert again.exit_code == 1 and "failed again" in again.output  # still unreadable
    conv = only_conv(client, admin_token, "bazaar")
    assert [m["text"] for m in timeline(client, admin_token, conv["id"])] == ["ổn"]


def test_dead_letter_replayed_once_the_mapping_is_fixed(client, hub, admin_token, tmp_path):
    from tongdai.core.config import load_config

    bazaar_post(client, [delivery(1, text="một"), delivery(2, uid=None, ref="msg_2",
                                                           text="hai")])
    assert drain_all(hub)["dead"] == 1
    (dl,) = client.get("/api/v1/deadletters", headers=auth(admin_token)).json["items"]
    # the admin sees anonymous authors happen, and maps them to the conversation
    fixed = Path(hub.config.path).read_text(encoding="utf-8").replace(
        "customer_id: author.uid", "customer_id: author.uid || conversation.ref")
    path = tmp_path / "fixed.yaml"
    path.write_text(fixed, encoding="utf-8")
    hub.apply_config(load_config(str(path)))
    r = client.post(f"/api/v1/deadletters/{dl['id']}/replay", headers=auth(admin_token))
    assert r.status_code == 200 and r.json["replayed"] and r.json["stored"] == 1
    assert client.get("/api/v1/deadletters", headers=auth(admin_token)).json["items"] == []
    texts = sorted(m["text"] for c in client.get("/api/v1/conversations",
                                                  headers=auth(admin_token)).json["items"]
                   if c["channel_id"] == "bazaar" for m in timeline(client, admin_token, c["id"]))
    assert texts == ["hai", "một"]  # "một" stored once, not again by the replay
