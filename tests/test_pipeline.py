"""Signed webhook → raw log → drain → conversation and message visible in the API."""

from __future__ import annotations

import orjson

from tests.helpers import auth, drain_all, post, tg_update


def test_signed_update_becomes_message_in_api(client, hub, admin_token):
    text = "Cho mình hỏi nạp thẻ bị lỗi ạ"
    assert post(client, tg_update(1, 555, 10, text)).status_code == 200
    drain_all(hub)

    convs = client.get("/api/v1/conversations?queue=billing", headers=auth(admin_token)).json
    assert len(convs["items"]) == 1
    conv = convs["items"][0]
    assert conv["status"] == "open" and conv["channel_id"] == "tg-test"
    assert "payment" in conv["tags"] and "lang:vi" in conv["tags"]
    assert conv["priority"] == 50

    resp = client.get(f"/api/v1/conversations/{conv['id']}/messages", headers=auth(admin_token))
    assert text.encode("utf-8") in resp.data  # byte-exact UTF-8 on the wire, not \u escapes
    msgs = resp.json
    assert [m["text"] for m in msgs["items"]] == [text]
    m = msgs["items"][0]
    assert m["direction"] == "in" and m["author"]["kind"] == "customer"
    assert m["platform_ts"] == 1700000000 * 1000


def test_same_update_ten_times_is_one_message(client, hub, admin_token):
    body = tg_update(7, 556, 11, "hello, my order is late")
    for _ in range(10):
        assert post(client, body).status_code == 200
    result = drain_all(hub)
    assert result["stored"] == 1 and result["duplicates"] == 9
    convs = client.get("/api/v1/conversations", headers=auth(admin_token)).json["items"]
    assert len(convs) == 1
    msgs = client.get(f"/api/v1/conversations/{convs[0]['id']}/messages",
                      headers=auth(admin_token)).json["items"]
    assert len(msgs) == 1
    # and one customer, not ten
    assert hub.redis.get(hub.keys.seq("customer")) == b"1"


def test_bad_secret_rejected_and_nothing_stored(client, hub):
    body = tg_update(8, 557, 12, "hi")
    assert post(client, body, secret="wrong").status_code == 401
    assert post(client, body, secret=None).status_code == 401
    assert all(hub.redis.xlen(hub.keys.raw(s)) == 0 for s in range(hub.shards))


def test_malformed_body_is_400_and_nothing_stored(client, hub):
    assert post(client, b"{not json").status_code == 400
    assert post(client, b"[1,2]").status_code == 400
    assert all(hub.redis.xlen(hub.keys.raw(s)) == 0 for s in range(hub.shards))


def test_unknown_channel_is_404(client):
    assert post(client, tg_update(1, 1, 1, "x"), channel="nope").status_code == 404


def test_unparseable_event_goes_to_dead_letters_and_replays(client, hub, admin_token):
    # well-formed JSON (so the webhook accepts it) but a message without a chat
    bad = orjson.dumps({"update_id": 9, "message": {"message_id": 1, "date": 1, "text": "x"}})
    assert post(client, bad).status_code == 200
    assert drain_all(hub)["dead"] == 1
    dls = client.get("/api/v1/deadletters", headers=auth(admin_token)).json["items"]
    assert len(dls) == 1 and "PayloadError" in dls[0]["error"]
    # replaying without a fix fails again and keeps exactly one dead letter
    r = client.post(f"/api/v1/deadletters/{dls[0]['id']}/replay", headers=auth(admin_token))
    assert r.json["replayed"] is False
    assert len(client.get("/api/v1/deadletters", headers=auth(admin_token)).json["items"]) == 1


def test_edit_changes_the_message_not_a_new_one(client, hub, admin_token):
    post(client, tg_update(20, 600, 5, "gia bao nhieu"))
    edited = orjson.dumps({"update_id": 21, "edited_message": {
        "message_id": 5, "date": 1700000000, "edit_date": 1700000100, "text": "giá bao nhiêu?",
        "from": {"id": 600, "is_bot": False, "first_name": "Lan"},
        "chat": {"id": 600, "type": "private"}}})
    post(client, edited)
    drain_all(hub)
    conv = client.get("/api/v1/conversations", headers=auth(admin_token)).json["items"][0]
    msgs = client.get(f"/api/v1/conversations/{conv['id']}/messages",
                      headers=auth(admin_token)).json["items"]
    assert len(msgs) == 1
    assert msgs[0]["text"] == "giá bao nhiêu?" and msgs[0]["edited_ts"] == 1700000100000


def test_history_pages_by_cursor(client, hub, admin_token):
    for i in range(25):
        post(client, tg_update(100 + i, 700, 100 + i, f"msg {i}", date=1700000000 + i))
    drain_all(hub)
    conv = client.get("/api/v1/conversations", headers=auth(admin_token)).json["items"][0]
    seen, cursor = [], None
    while True:
        url = f"/api/v1/conversations/{conv['id']}/messages?limit=10"
        if cursor:
            url += f"&before={cursor}"
        page = client.get(url, headers=auth(admin_token)).json
        seen += [m["text"] for m in page["items"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert seen == [f"msg {i}" for i in reversed(range(25))]


def test_api_requires_a_token(client, hub):
    assert client.get("/api/v1/conversations").status_code == 401
    r = client.get("/api/v1/conversations", headers=auth("td_nope"))
    assert r.status_code == 401 and "error" in r.json


def test_fast_path_and_flask_path_answer_alike(client, hub):
    """Webhooks take a fast WSGI path; requests it passes on to Flask get the same answers."""
    body = tg_update(300, 800, 1, "xin chao")
    fast = post(client, body, secret="wrong")
    # no Content-Length (chunked upload): Flask's own route handles it
    slow = client.post("/webhooks/tg-test", input_stream=__import__("io").BytesIO(body),
                       headers={"X-Telegram-Bot-Api-Secret-Token": "wrong",
                                "Transfer-Encoding": "chunked"})
    assert fast.status_code == slow.status_code == 401
    assert fast.json["error"]["code"] == slow.json["error"]["code"] == "SignatureError"
    assert post(client, b"{").json["error"]["code"] == "PayloadError"
    assert client.get("/webhooks/tg-test").status_code == 405  # no GET handshake on Telegram


def test_webhook_survives_a_redis_connection_drop(client, hub, admin_token):
    """The fast path's own connection breaking must not lose the event or fail the request."""
    assert post(client, tg_update(400, 901, 1, "first")).status_code == 200
    hub.redis.client_kill_filter(_type="normal", skipme=True)  # drop every other connection
    assert post(client, tg_update(401, 901, 2, "second")).status_code == 200
    drain_all(hub)
    (conv,) = client.get("/api/v1/conversations", headers=auth(admin_token)).json["items"]
    msgs = client.get(f"/api/v1/conversations/{conv['id']}/messages", headers=auth(admin_token))
    assert [m["text"] for m in msgs.json["items"]] == ["second", "first"]
