"""Web Push to agents' devices (core/workspace/push.py, pushsubs.py, webhooks/api/push.py),
against a fake push service over real HTTP (tests/fakes/push_service.py) that checks the VAPID
signature and decrypts what arrives with the browser's own keys, as a browser would."""

from __future__ import annotations

import os
import stat

import orjson
import pytest

from tests.conftest import write_config
from tests.fakes.push_service import FakePushService
from tests.helpers import auth, drain_all, post, tg_update
from tests.staff import TEAMS
from tongdai.core import vapid
from tongdai.core.clock import server_ms
from tongdai.core.errors import ConfigError
from tongdai.core.hub import data_dir
from tongdai.core.pipeline import feed, store
from tongdai.core.workspace import push

PUSH = """
notifications:
  console_url: https://hub.example.vn
  push_contact: mailto:ops@example.vn
  push_services: ["http://127.0.0.1:*"]
"""


@pytest.fixture
def config_file(tmp_path):
    return write_config(tmp_path / "tongdai.yaml", extra=TEAMS + PUSH)


@pytest.fixture
def pushsvc():
    with FakePushService() as fake:
        yield fake


@pytest.fixture
def world(client, hub, people, pushsvc):
    """Lan's conversation in queue general, assigned to an; the reactor reading from now."""
    feed.ensure_group(hub, "webpush")
    writes(client, hub, "Chào shop")
    (conv,) = client.get("/api/v1/conversations?queue=general",
                         headers=auth(people["an"])).json["items"]
    r = client.post(f"/api/v1/conversations/{conv['id']}/assign", json={"assignee": "an"},
                    headers=auth(people["cuong"]))
    assert r.status_code == 200
    feed.run_pending(hub, ["webpush"])
    key = client.get("/api/v1/push/subscriptions", headers=auth(people["an"])).json["public_key"]
    return {"conv": conv["id"], "key": key}


N = iter(range(1, 10_000))


def writes(client, hub, text: str) -> None:
    n = next(N)
    post(client, tg_update(500 + n, 7001, 100 + n, text, first_name="Lan"))
    drain_all(hub)


def register(client, token: str, sub: dict, ua: str = "Chrome on Android"):
    return client.post("/api/v1/push/subscriptions", json=sub,
                       headers={**auth(token), "User-Agent": ua})


def device(client, people, pushsvc, world, who: str = "an") -> dict:
    sub = pushsvc.subscribe(world["key"])
    assert register(client, people[who], sub).status_code == 201
    return sub


def test_the_assignee_s_phone_gets_the_customer_s_message_once(client, hub, people, pushsvc,
                                                                world):
    phone = device(client, people, pushsvc, world, "an")
    colleague = device(client, people, pushsvc, world, "cuong")  # sees it, not assigned

    writes(client, hub, "Đơn hàng #A12 của mình giao chưa ạ?")
    feed.run_pending(hub, ["webpush"])

    (got,) = pushsvc.browser(phone).received
    assert got["title"] == "Lan" and got["conversation_id"] == world["conv"]
    assert got["body"] == "Đơn hàng #A12 của mình giao chưa ạ?"
    assert got["url"] == f"https://hub.example.vn/console#{world['conv']}"
    assert got["tag"] == f"tongdai-{world['conv']}"
    (h,) = pushsvc.browser(phone).headers
    assert h["TTL"] == "3600" and h["Urgency"] == "high" and len(h["Topic"]) <= 32
    assert pushsvc.browser(colleague).received == []

    # the feed hands the same message over again (a redelivery): no second push
    (ev,) = [e for e in feed.read_after(hub, "0-0", count=10_000)
             if e.type == "message.created"][-1:]
    feed.publish(hub, dict(ev.data))
    feed.run_pending(hub, ["webpush"])
    assert len(pushsvc.browser(phone).received) == 1


def test_a_mention_in_a_note_reaches_the_mentioned_user(client, hub, people, pushsvc, world):
    phone = device(client, people, pushsvc, world, "cuong")
    r = client.post(f"/api/v1/conversations/{world['conv']}/notes",
                    json={"text": "@cuong khách hỏi hoàn tiền, anh xem giúp"},
                    headers=auth(people["an"], "new"))
    assert r.status_code == 201
    feed.run_pending(hub, ["webpush"])
    (got,) = pushsvc.browser(phone).received
    assert got["conversation_id"] == world["conv"] and "An" in got["title"]
    assert got["body"].startswith("@cuong khách hỏi hoàn tiền")


def later(hub, minutes: float) -> int:
    return server_ms(hub.redis) + int(minutes * 60_000)


def test_a_failing_device_is_retried_later_without_holding_back_the_others(
        client, hub, people, pushsvc, world):
    laptop = device(client, people, pushsvc, world, "an")
    phone = device(client, people, pushsvc, world, "an")   # newest: tried first
    dead = pushsvc.subscribe(world["key"])                 # a push service that is down
    dead["endpoint"] = "http://127.0.0.1:9/push/x"         # (discard port: refused at once)
    assert register(client, people["an"], dead).status_code == 201
    colleague = device(client, people, pushsvc, world, "cuong")
    pushsvc.script(phone, *([503] * 3))
    for n in range(3):
        writes(client, hub, f"Alo shop {n}")
        client.post(f"/api/v1/conversations/{world['conv']}/notes",
                    json={"text": f"@cuong xem {n}"}, headers=auth(people["an"], f"k{n}"))
    feed.run_pending(hub, ["webpush"])  # raises nothing: the feed moves on
    assert feed.run_pending(hub, ["webpush"]) == 0
    assert len(pushsvc.browser(laptop).received) == 3
    assert len(pushsvc.browser(colleague).received) == 3
    assert pushsvc.browser(phone).received == []
    assert hub.redis.zcard(hub.keys.push("due")) == 6  # phone's 3 (503), dead's 3 (refused)

    assert push.retry_due(hub) == 0  # not due yet (backoff)
    assert push.retry_due(hub, later(hub, 1)) == 3  # the phone's service is back
    assert [g["body"] for g in pushsvc.browser(phone).received] == [
        f"Alo shop {n}" for n in range(3)]
    assert push.retry_due(hub, later(hub, 30)) == 0  # nothing twice; dead still failing
    assert len(pushsvc.browser(laptop).received) == 3
    # a push older than its hour is dropped, not sent hours late
    assert push.retry_due(hub, later(hub, 61)) == 0
    assert hub.redis.zcard(hub.keys.push("due")) == 0
    assert not hub.redis.keys(hub.keys.push("retry", "*"))


def test_an_unsubscribed_browser_is_forgotten(client, hub, people, pushsvc, world):
    phone, kept = (device(client, people, pushsvc, world) for _ in range(2))
    pushsvc.script(phone, 410)
    writes(client, hub, "Shop ơi")
    feed.run_pending(hub, ["webpush"])
    listed = client.get("/api/v1/push/subscriptions", headers=auth(people["an"])).json["items"]
    assert len(listed) == 1 and len(pushsvc.browser(kept).received) == 1
    writes(client, hub, "Shop ơi 2")
    feed.run_pending(hub, ["webpush"])
    # the gone one was not tried again: 2 pushes, then 1
    assert pushsvc.attempts == 3 and len(pushsvc.browser(kept).received) == 2


def test_each_user_sees_and_removes_only_their_own(client, hub, people, pushsvc, world):
    sub = pushsvc.subscribe(world["key"])
    r = register(client, people["an"], sub)
    assert r.status_code == 201 and r.json["service"] == pushsvc.origin
    assert register(client, people["an"], sub).json["id"] == r.json["id"]  # upsert: 200
    assert register(client, people["an"], sub).status_code == 200
    sid = r.json["id"]
    listed = client.get("/api/v1/push/subscriptions", headers=auth(people["an"])).json
    assert [s["id"] for s in listed["items"]] == [sid]
    assert listed["items"][0]["user_agent"] == "Chrome on Android"
    assert "endpoint" not in listed["items"][0]  # a capability URL: never shown
    assert client.get("/api/v1/push/subscriptions",
                      headers=auth(people["bich"])).json["items"] == []
    assert client.delete(f"/api/v1/push/subscriptions/{sid}",
                         headers=auth(people["bich"])).status_code == 404
    # at rest: sealed, the endpoint's token nowhere in Redis
    raw = hub.redis.hgetall(hub.keys.push_subscriptions("an"))
    assert all(v.startswith(b"enc:") for v in raw.values())
    token = sub["endpoint"].rsplit("/", 1)[1].encode()
    assert not any(token in (hub.redis.dump(k) or b"") for k in hub.redis.keys("*"))
    # another agent turns push on in the same browser: it is theirs now
    assert register(client, people["cuong"], sub).status_code == 201
    assert client.get("/api/v1/push/subscriptions",
                      headers=auth(people["an"])).json["items"] == []
    assert client.delete(f"/api/v1/push/subscriptions/{sid}",
                         headers=auth(people["cuong"])).json["items"] == []


def test_bad_subscriptions_are_refused_and_the_oldest_go_past_ten(client, hub, people, pushsvc,
                                                                   world):
    good = pushsvc.subscribe(world["key"])
    cases = [
        ({**good, "endpoint": "http://10.0.0.5/push/x"}, "endpoint"),  # not a push service
        ({**good, "keys": {**good["keys"], "p256dh": "AAAA"}}, "p256dh"),
        ({**good, "keys": {**good["keys"], "auth": "c2hvcnQ"}}, "auth"),
        ({"endpoint": good["endpoint"]}, "keys"),
    ]
    for body, field in cases:
        r = register(client, people["an"], body)
        assert r.status_code == 400 and field in r.json["error"]["message"], body
    subs = [device(client, people, pushsvc, world) for _ in range(11)]
    listed = client.get("/api/v1/push/subscriptions", headers=auth(people["an"])).json["items"]
    assert len(listed) == 10
    writes(client, hub, "Cho hỏi")
    feed.run_pending(hub, ["webpush"])
    assert len(pushsvc.browser(subs[-1]).received) == 1
    assert sum(len(pushsvc.browser(s).received) for s in subs) == 10


def test_the_vapid_key_is_made_once_and_shared(hub, monkeypatch):
    monkeypatch.delenv(vapid.ENV, raising=False)
    first, again = vapid.load(data_dir()), vapid.load(data_dir())
    assert first.public_key == again.public_key
    assert stat.S_IMODE(os.stat(data_dir() / vapid.FILE).st_mode) == 0o600
    monkeypatch.setenv(vapid.ENV, first.secret())
    assert vapid.load(data_dir() / "elsewhere").public_key == first.public_key
    monkeypatch.setenv(vapid.ENV, "not-a-key")
    with pytest.raises(ConfigError, match=vapid.ENV):
        vapid.load(data_dir())


def test_without_a_key_the_console_offers_no_push_and_says_why(hub, monkeypatch, tmp_path,
                                                                caplog):
    monkeypatch.delenv(vapid.ENV, raising=False)
    (tmp_path / "a-file").write_text("")
    monkeypatch.setenv("TONGDAI_DATA_DIR", str(tmp_path / "a-file" / "var"))  # cannot be made
    assert push.public_key(hub) is None
    assert vapid.ENV in caplog.text and "make the data dir writable" in caplog.text


def test_a_subscription_made_with_another_hub_s_key_is_refused_not_retried(
        client, hub, people, pushsvc, world, caplog):
    from tongdai.core.vapid import generate

    stale = pushsvc.subscribe(generate().public_key)  # e.g. before the key was changed
    assert register(client, people["an"], stale).status_code == 201
    writes(client, hub, "Shop ơi")
    feed.run_pending(hub, ["webpush"])  # no retry: a 403 will not change
    assert pushsvc.browser(stale).received == [] and pushsvc.attempts == 1
    # forgotten: the console subscribes again with the hub's key on its next load
    assert client.get("/api/v1/push/subscriptions",
                      headers=auth(people["an"])).json["items"] == []
    assert "another VAPID key" in caplog.text and stale["endpoint"] not in caplog.text
    writes(client, hub, "Shop ơi 2")
    feed.run_pending(hub, ["webpush"])
    assert pushsvc.attempts == 1


def test_only_a_customer_s_own_message_is_pushed(client, hub, people, pushsvc, world):
    phone = device(client, people, pushsvc, world, "an")
    # Bot API updates (core.telegram.org/bots/api#message, #chatmemberupdated): Lan pins a
    # message (a system line), then blocks the bot (my_chat_member, status "kicked")
    lan = {"id": 7001, "is_bot": False, "first_name": "Lan"}
    chat = {"id": 7001, "type": "private", "first_name": "Lan"}
    post(client, orjson.dumps({"update_id": 9001, "message": {
        "message_id": 9001, "date": 1700000100, "from": lan, "chat": chat,
        "pinned_message": {"message_id": 101, "date": 1700000000, "text": "x",
                           "chat": chat}}}))
    bot = {"id": 1, "is_bot": True, "first_name": "b"}
    post(client, orjson.dumps({"update_id": 9002, "my_chat_member": {
        "chat": chat, "from": lan, "date": 1700000200,
        "old_chat_member": {"user": bot, "status": "member"},
        "new_chat_member": {"user": bot, "status": "kicked", "until_date": 0}}}))
    drain_all(hub)
    feed.run_pending(hub, ["webpush"])
    assert pushsvc.browser(phone).received == []
    writes(client, hub, "Shop ơi")  # her own message still is
    feed.run_pending(hub, ["webpush"])
    assert [g["body"] for g in pushsvc.browser(phone).received] == ["Shop ơi"]


def test_a_password_change_or_disabling_stops_a_lost_phone_s_pushes(client, hub, people,
                                                                    pushsvc, world):
    device(client, people, pushsvc, world, "an")
    device(client, people, pushsvc, world, "cuong")
    r = client.patch("/api/v1/users/an", json={"password": "a new long one 2026"},
                     headers=auth(people["admin"]))
    assert r.status_code == 200, r.json
    assert hub.redis.hlen(hub.keys.push_subscriptions("an")) == 0
    assert len(hub.redis.keys(hub.keys.push("owner", "*"))) == 1  # cuong's is still there
    assert client.patch("/api/v1/users/cuong", json={"disabled": True},
                        headers=auth(people["admin"])).status_code == 200
    assert hub.redis.hlen(hub.keys.push_subscriptions("cuong")) == 0
    assert hub.redis.keys(hub.keys.push("owner", "*")) == []
    writes(client, hub, "Shop ơi")
    feed.run_pending(hub, ["webpush"])
    assert pushsvc.attempts == 0


def test_a_long_name_is_cut_so_the_push_fits(client, hub, people, pushsvc, world):
    phone = device(client, people, pushsvc, world, "an")
    # a platform's profile name (a page's own names can be this long): 4,200 characters
    cid = store.get_conversation(hub, world["conv"]).customer_id
    hub.redis.hset(hub.keys.customer(cid), "name",
                   hub.keyring.encrypt_text("Nguyễn " * 600, b"name"))
    writes(client, hub, "đ" * 500)
    feed.run_pending(hub, ["webpush"])
    (got,) = pushsvc.browser(phone).received
    assert len(got["title"]) <= push.TITLE and len(got["body"]) <= push.PREVIEW
    assert pushsvc.sizes[-1] < 4096  # what a push service takes (RFC 8030 section 7.2)


@pytest.mark.parametrize("endpoint, ok", [
    ("https://fcm.googleapis.com/fcm/send/dQw4w9WgXcQ:APA91bH", True),    # Chrome
    ("https://fcm.googleapis.com/wp/dQw4w9WgXcQ:APA91bH", True),
    ("https://updates.push.services.mozilla.com/wpush/v2/gAAAAABk", True),  # Firefox
    ("https://wns2-par02p.notify.windows.com/w/?token=BQYAAAD", True),    # Edge
    ("https://web.push.apple.com/QGuQyavXutnMH3", True),                   # Safari
    ("https://fcm.googleapis.com:443/fcm/send/x", True),
    ("https://fcm.googleapis.com.evil.example/fcm/send/x", False),
    ("https://fcm.googleapis.com@evil.example/fcm/send/x", False),
    ("https://x@fcm.googleapis.com/fcm/send/x", False),
    ("http://fcm.googleapis.com/fcm/send/x", False),
    ("https://fcm.googleapis.com:22/fcm/send/x", False),
    ("https://142.250.72.10/fcm/send/x", False),
    ("https://[::1]/fcm/send/x", False),
    ("https://notify.windows.com/w/x", False),
    ("https://a.b.evilnotify.windows.com.evil/w", False),
    ("not a url", False),
])
def test_the_default_push_services(hub, endpoint, ok):
    from tongdai.core.config_sections import NotificationsSection
    from tongdai.core.workspace.pushsubs import allowed_service

    class H:  # the shipped default list, whatever the test config says
        config = type("C", (), {"hub": type("N", (), {
            "notifications": NotificationsSection()})})()

    assert allowed_service(H(), endpoint) is ok
