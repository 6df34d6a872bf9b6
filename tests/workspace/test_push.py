"""Web Push to agents' devices (core/workspace/push.py, pushsubs.py, webhooks/api/push.py),
against a fake push service over real HTTP (tests/fakes/push_service.py) that checks the VAPID
signature and decrypts what arrives with the browser's own keys, as a browser would."""

from __future__ import annotations

import os
import stat

import pytest

from tests.conftest import write_config
from tests.fakes.push_service import FakePushService
from tests.helpers import auth, drain_all, post, tg_update
from tests.staff import TEAMS
from tongdai.core import vapid
from tongdai.core.errors import ConfigError, DeliveryError
from tongdai.core.hub import data_dir
from tongdai.core.pipeline import feed
from tongdai.core.workspace import push

PUSH = """
notifications:
  console_url: https://hub.example.vn
  push_contact: mailto:ops@example.vn
  push_services: [http://127.0.0.1]
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


def test_a_failing_push_service_is_retried_without_pushing_twice(client, hub, people, pushsvc,
                                                                 world):
    phone, laptop = (device(client, people, pushsvc, world) for _ in range(2))
    pushsvc.script(phone, 500)
    writes(client, hub, "Alo shop ơi")
    with pytest.raises(DeliveryError):
        feed.run_pending(hub, ["webpush"])
    assert pushsvc.browser(phone).received == [] and len(pushsvc.browser(laptop).received) == 1

    feed.run_pending(hub, ["webpush"])  # the pending batch comes back
    assert [g["body"] for g in pushsvc.browser(phone).received] == ["Alo shop ơi"]
    assert len(pushsvc.browser(laptop).received) == 1

    pushsvc.script(laptop, 429)
    writes(client, hub, "Có ai không")
    with pytest.raises(DeliveryError):
        feed.run_pending(hub, ["webpush"])
    feed.run_pending(hub, ["webpush"])
    assert [len(pushsvc.browser(s).received) for s in (phone, laptop)] == [2, 2]


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
    assert "refused a push" in caplog.text and stale["endpoint"] not in caplog.text
