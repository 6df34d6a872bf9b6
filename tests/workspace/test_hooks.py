"""Outgoing webhooks for integrators, against a real HTTP receiver on 127.0.0.1.

Traffic is real (a Telegram update through the webhook, the ingest, the change feed, the
``hooks`` reactor); delivery runs with ``hookdelivery.deliver_due(hub, now)`` so backoff needs no
sleeping: later attempts are made by passing a later ``now``.
"""

from __future__ import annotations

import http.server
import re
import threading
from pathlib import Path

import orjson
import pytest
from rq import Queue

from tests.helpers import auth, drain_all, post, quiet_worker_class, tg_update
from tongdai.core.keys import HOOKS_QUEUE
from tongdai.core.models import ConversationStatus
from tongdai.core.pipeline import feed, store
from tongdai.core.workspace import assignment, audit, hookdelivery, hooks, users, workflow
from tongdai.core.workspace.access import Principal
from tongdai.worker import jobs

MINUTE = 60_000
HOUR = 60 * MINUTE


class Receiver:
    """An integrator's endpoint: records every request; answers what ``script`` says next
    (status, headers) or ``"slow"`` (holds the request until ``release`` is set); else 200."""

    def __init__(self) -> None:
        self.requests: list[tuple[dict[str, str], bytes]] = []
        self.script: list = []
        self.release = threading.Event()
        rec = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                rec.requests.append(({k: v for k, v in self.headers.items()}, body))
                step = rec.script.pop(0) if rec.script else (200, {})
                if step == "slow":
                    rec.release.wait(10)
                    step = (200, {})
                status, headers = step
                try:
                    self.send_response(status)
                    for k, v in headers.items():
                        self.send_header(k, v)
                    self.send_header("Content-Length", "2")
                    self.end_headers()
                    self.wfile.write(b"ok")
                except OSError:
                    pass  # the hub gave up waiting

            def log_message(self, *args) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks/tongdai"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def events(self) -> list[str]:
        return [h["X-Tongdai-Event"] for h, _ in self.requests]

    def payloads(self) -> list[dict]:
        return [orjson.loads(b) for _, b in self.requests]


@pytest.fixture
def receiver():
    r = Receiver()
    r.thread.start()
    yield r
    r.release.set()
    r.server.shutdown()
    r.server.server_close()


def subscribe(client, token: str, url: str, **fields) -> dict:
    r = client.post("/api/v1/webhooks", json={"url": url, **fields},
                    headers=auth(token, idempotency_key="new"))
    assert r.status_code == 201, r.get_json()
    return r.get_json()


def customer_writes(client, hub, text: str, update_id: int = 1, chat_id: int = 42) -> None:
    assert post(client, tg_update(update_id, chat_id, update_id, text)).status_code == 200
    drain_all(hub)
    feed.run_pending(hub, ["hooks"])


def log_of(client, token: str, sub_id: str, **query) -> list[dict]:
    r = client.get(f"/api/v1/webhooks/{sub_id}/deliveries", query_string=query,
                   headers=auth(token))
    assert r.status_code == 200, r.get_json()
    return r.get_json()["items"]


# -- signing ----------------------------------------------------------------------------------
def test_signature_verifies_with_the_shown_secret_and_not_another(client, hub, admin_token,
                                                                  receiver):
    sub = subscribe(client, admin_token, receiver.url, description="CRM")
    assert sub["secret"].startswith("whsec_") and sub["events"] == list(hooks.EVENTS)
    r = client.post(f"/api/v1/webhooks/{sub['id']}/ping", headers=auth(admin_token, "new"))
    assert r.status_code == 202 and r.get_json()["status"] == "pending"
    hookdelivery.deliver_due(hub)

    [(headers, body)] = receiver.requests
    ts, sig = headers["X-Tongdai-Timestamp"], headers["X-Tongdai-Signature"]
    assert headers["Content-Type"] == "application/json" and headers["X-Tongdai-Event"] == "ping"
    assert headers["X-Tongdai-Delivery"] == orjson.loads(body)["id"]
    assert hooks.verify(sub["secret"], ts, body, sig)
    assert not hooks.verify("whsec_someone-elses-secret", ts, body, sig)
    assert not hooks.verify(sub["secret"], ts, body + b" ", sig)
    assert not hooks.verify(sub["secret"], str(int(ts) - 3600), body, sig)  # replayed later
    # the receiver's example in the docs verifies it too
    verify_from_docs = _docs_example()
    assert verify_from_docs(sub["secret"], headers, body)
    assert not verify_from_docs("whsec_wrong", headers, body)


def _docs_example():
    text = (Path(__file__).parents[2] / "docs" / "workspace.md").read_text("utf-8")
    section = text[text.index("## Outgoing webhooks"):]
    code = re.search(r"```python\n(.*?)```", section, re.DOTALL).group(1)
    scope: dict = {}
    exec(compile(code, "docs/workspace.md", "exec"), scope)  # noqa: S102  (our own docs)
    return scope["verify"]


def test_the_secret_is_shown_once_and_never_stored_in_clear(client, hub, admin_token, receiver):
    key = "create-crm-hook"
    first = client.post("/api/v1/webhooks", json={"url": receiver.url},
                        headers=auth(admin_token, key)).get_json()
    again = client.post("/api/v1/webhooks", json={"url": receiver.url},
                        headers=auth(admin_token, key)).get_json()
    assert again == first  # a retried create: same subscription, same secret
    assert len(hooks.all_subscriptions(hub)) == 1
    shown = client.get(f"/api/v1/webhooks/{first['id']}", headers=auth(admin_token)).get_json()
    assert "secret" not in shown
    listed = client.get("/api/v1/webhooks", headers=auth(admin_token)).get_json()["items"]
    assert "secret" not in listed[0]
    for k in hub.redis.scan_iter("*"):
        dump = hub.redis.dump(k) or b""
        assert first["secret"].encode() not in dump, k


def test_rotating_the_secret_signs_with_the_new_one(client, hub, admin_token, receiver):
    sub = subscribe(client, admin_token, receiver.url)
    r = client.patch(f"/api/v1/webhooks/{sub['id']}", json={"rotate_secret": True},
                     headers=auth(admin_token))
    new = r.get_json()["secret"]
    assert r.status_code == 200 and new != sub["secret"]
    client.post(f"/api/v1/webhooks/{sub['id']}/ping", headers=auth(admin_token, "new"))
    hookdelivery.deliver_due(hub)
    [(headers, body)] = receiver.requests
    args = (headers["X-Tongdai-Timestamp"], body, headers["X-Tongdai-Signature"])
    assert hooks.verify(new, *args) and not hooks.verify(sub["secret"], *args)


def test_a_secret_under_a_retired_data_key_is_resealed_when_used(client, hub, admin_token,
                                                                 receiver, monkeypatch):
    import base64
    import os

    from tongdai.core import crypto

    sub = subscribe(client, admin_token, receiver.url)
    rotated = crypto._parse(f"knew:{base64.b64encode(os.urandom(32)).decode()},"
                            f"{os.environ['TONGDAI_DATA_KEYS']}",
                            os.environ["TONGDAI_INDEX_KEY"], "test")
    monkeypatch.setattr(hub, "keyring", rotated)
    client.post(f"/api/v1/webhooks/{sub['id']}/ping", headers=auth(admin_token, "new"))
    hookdelivery.deliver_due(hub)
    [(headers, body)] = receiver.requests
    assert hooks.verify(sub["secret"], headers["X-Tongdai-Timestamp"], body,
                        headers["X-Tongdai-Signature"])
    assert rotated.key_id_of(hub.redis.hget(hub.keys.hook(sub["id"]), "secret")) == "knew"


# -- events -----------------------------------------------------------------------------------
def test_new_telegram_conversation_sends_created_then_message_in_utf8(client, hub, admin_token,
                                                                     receiver):
    sub = subscribe(client, admin_token, receiver.url)
    text = "Chào shop, em nạp thẻ 100k mà chưa nhận được ạ 🙏"
    customer_writes(client, hub, text)
    hookdelivery.deliver_due(hub)

    assert receiver.events() == ["conversation.created", "message.created"]
    created, message = receiver.payloads()
    conv = created["data"]["conversation"]
    assert conv["channel_id"] == "tg-test" and conv["status"] == "open"
    assert message["data"]["message"]["text"] == text
    assert message["data"]["message"]["conversation_id"] == conv["id"]
    assert message["data"]["message"]["direction"] == "in"
    assert text.encode("utf-8") in receiver.requests[1][1]  # raw UTF-8, not \u escapes
    assert created["id"] != message["id"] and created["created_ts"] > 0
    assert [d["status"] for d in log_of(client, admin_token, sub["id"])] == ["delivered"] * 2

    customer_writes(client, hub, "Alo?", update_id=2)  # the same conversation goes on
    hookdelivery.deliver_due(hub)
    assert receiver.events()[2:] == ["message.created"]


def test_assigned_and_resolved_reach_only_subscribers_of_them(client, hub, admin_token,
                                                              receiver):
    subscribe(client, admin_token, receiver.url,
              events=["conversation.assigned", "conversation.resolved"])
    customer_writes(client, hub, "xin chào")
    conv_id = store.get_customer(hub, "1").current_conversation_id
    users.create(hub, users.User(name="an", role="agent", teams=["support"]), None)
    assignment.claim(hub, Principal("an", "agent", frozenset({"support"})), conv_id)
    store.set_status(hub, conv_id, ConversationStatus.RESOLVED)
    feed.run_pending(hub, ["hooks"])
    hookdelivery.deliver_due(hub)

    assert receiver.events() == ["conversation.assigned", "conversation.resolved"]
    assigned, resolved = receiver.payloads()
    data = assigned["data"]
    assert (data["assignee"], data["by"], data["previous"]) == ("an", "an", None)
    assert data["conversation"]["id"] == conv_id
    assert resolved["data"]["conversation"]["status"] == "resolved"


def test_private_notes_are_never_sent(client, hub, admin_token, receiver):
    subscribe(client, admin_token, receiver.url)
    customer_writes(client, hub, "tài khoản bị khoá")
    conv_id = store.get_customer(hub, "1").current_conversation_id
    note, _ = workflow.add_note(hub, Principal("cuong", "admin"), conv_id,
                                "khách này hay đổi ý, cẩn thận", "note-1")
    # even a message.created entry pointing at the note (it should never exist) sends nothing
    feed.publish(hub, {"type": "message.created", "conversation_id": conv_id,
                       "message_id": note.id, "customer_id": "1", "opened": 0})
    feed.run_pending(hub, ["hooks"])
    hookdelivery.deliver_due(hub)

    assert receiver.events() == ["conversation.created", "message.created"]
    assert all("cẩn thận".encode() not in body for _, body in receiver.requests)


def test_a_feed_entry_read_again_is_not_delivered_twice(client, hub, admin_token, receiver):
    sub = subscribe(client, admin_token, receiver.url)
    customer_writes(client, hub, "hello")
    hookdelivery.deliver_due(hub)
    assert len(receiver.requests) == 2

    # a crashed reactor's batch is read again (at-least-once): rewind its group
    hub.redis.xgroup_setid(hub.keys.feed(), "hooks", "0-0")
    assert feed.run_pending(hub, ["hooks"]) > 0
    hooks.react(hub, feed.read_after(hub, "0-0"))
    hookdelivery.deliver_due(hub, hooks.now_ms() + 24 * HOUR)

    assert len(receiver.requests) == 2
    assert len(log_of(client, admin_token, sub["id"])) == 2


# -- retries ----------------------------------------------------------------------------------
def test_a_500_is_retried_with_backoff_and_the_log_shows_both_attempts(client, hub, admin_token,
                                                                      receiver):
    sub = subscribe(client, admin_token, receiver.url, events=["message.created"])
    receiver.script = [(500, {})]
    customer_writes(client, hub, "có ai không")
    t0 = hooks.now_ms() + 1000  # a moment after the reactor made the delivery due
    assert list(hookdelivery.deliver_due(hub, t0).values()) == ["pending"]

    [d] = log_of(client, admin_token, sub["id"])
    assert (d["status"], d["attempts"], d["last_status_code"], d["last_error"]) == (
        "pending", 1, 500, "HTTP 500")
    first_retry = hookdelivery.RETRY_DELAYS_S[0] * 1000
    assert t0 + first_retry * 0.8 <= d["next_attempt_ts"] <= t0 + first_retry * 1.2

    assert hookdelivery.deliver_due(hub, t0 + 1000) == {}  # not due yet: nothing sent
    assert len(receiver.requests) == 1
    hookdelivery.deliver_due(hub, d["next_attempt_ts"])
    [d] = log_of(client, admin_token, sub["id"])
    assert (d["status"], d["attempts"], d["last_status_code"]) == ("delivered", 2, 200)
    assert [a["status_code"] for a in d["history"]] == [500, 200]
    assert d["next_attempt_ts"] is None
    (h1, b1), (h2, b2) = receiver.requests
    assert b1 == b2 and h1["X-Tongdai-Delivery"] == h2["X-Tongdai-Delivery"]


def test_429_retry_after_is_honoured(client, hub, admin_token, receiver):
    sub = subscribe(client, admin_token, receiver.url, events=["message.created"])
    receiver.script = [(429, {"Retry-After": "120"})]
    customer_writes(client, hub, "hi")
    t0 = hooks.now_ms() + 1000  # a moment after the reactor made the delivery due
    hookdelivery.deliver_due(hub, t0)
    [d] = log_of(client, admin_token, sub["id"])
    assert d["last_status_code"] == 429 and d["next_attempt_ts"] == t0 + 120_000
    assert hookdelivery.deliver_due(hub, t0 + 119_000) == {}
    assert hookdelivery.deliver_due(hub, t0 + 120_000) != {}
    assert log_of(client, admin_token, sub["id"])[0]["status"] == "delivered"


def test_retries_give_up_and_redeliver_starts_a_fresh_round(client, hub, admin_token, receiver):
    sub = subscribe(client, admin_token, receiver.url, events=["message.created"])
    tries = len(hookdelivery.RETRY_DELAYS_S) + 1
    receiver.script = [(503, {})] * tries
    customer_writes(client, hub, "hi")
    now = hooks.now_ms() + 1000
    for _ in range(tries + 2):
        hookdelivery.deliver_due(hub, now)
        now += 8 * HOUR
    [d] = log_of(client, admin_token, sub["id"])
    assert (d["status"], d["attempts"], d["next_attempt_ts"]) == ("failed", tries, None)
    assert len(receiver.requests) == tries

    r = client.post(f"/api/v1/webhooks/{sub['id']}/deliveries/{d['id']}/redeliver",
                    headers=auth(admin_token))
    assert r.status_code == 202 and r.get_json()["status"] == "pending"
    hookdelivery.deliver_due(hub)
    [d] = log_of(client, admin_token, sub["id"])
    assert (d["status"], d["attempts"]) == ("delivered", tries + 1)
    assert any(e["action"] == "webhook.redelivered" for e in audit.entries(hub)[0])


def test_a_slow_receiver_times_out_and_is_retried(client, hub, admin_token, receiver,
                                                  monkeypatch):
    monkeypatch.setattr(hookdelivery, "TIMEOUT_S", 0.3)
    sub = subscribe(client, admin_token, receiver.url, events=["message.created"])
    receiver.script = ["slow"]
    customer_writes(client, hub, "hi")
    hookdelivery.deliver_due(hub)
    receiver.release.set()
    [d] = log_of(client, admin_token, sub["id"])
    assert (d["status"], d["last_status_code"]) == ("pending", None)
    assert d["last_error"] == "no answer within 0.3 s"


def test_410_disables_the_subscription(client, hub, admin_token, receiver):
    sub = subscribe(client, admin_token, receiver.url, events=["message.created"])
    receiver.script = [(410, {})]
    customer_writes(client, hub, "hi")
    hookdelivery.deliver_due(hub)

    [d] = log_of(client, admin_token, sub["id"])
    assert d["status"] == "failed" and d["last_status_code"] == 410
    shown = client.get(f"/api/v1/webhooks/{sub['id']}", headers=auth(admin_token)).get_json()
    assert shown["active"] is False and "410" in shown["disabled_reason"]
    assert any(e["action"] == "webhook.disabled" for e in audit.entries(hub)[0])

    customer_writes(client, hub, "còn ai không?", update_id=2)  # nothing while disabled
    hookdelivery.deliver_due(hub, hooks.now_ms() + HOUR)
    assert len(receiver.requests) == 1
    r = client.post(f"/api/v1/webhooks/{sub['id']}/deliveries/{d['id']}/redeliver",
                    headers=auth(admin_token))
    assert r.status_code == 409

    client.patch(f"/api/v1/webhooks/{sub['id']}", json={"active": True},
                 headers=auth(admin_token))
    shown = client.get(f"/api/v1/webhooks/{sub['id']}", headers=auth(admin_token)).get_json()
    assert shown["active"] is True and shown["disabled_reason"] is None
    customer_writes(client, hub, "alo", update_id=3)
    hookdelivery.deliver_due(hub)
    assert len(receiver.requests) == 2


def test_the_scheduler_hands_due_deliveries_to_the_hooks_worker(client, hub, admin_token,
                                                                receiver):
    sub = subscribe(client, admin_token, receiver.url)
    customer_writes(client, hub, "hi")
    queue = Queue(HOOKS_QUEUE, connection=hub.redis)
    assert hooks.dispatch_due(hub) == 2
    assert hooks.dispatch_due(hub) == 0  # handed out: not again while its lease runs
    queue.empty()  # the jobs are lost (say, Redis lost RQ's keys): the lease brings them back
    assert hooks.dispatch_due(hub, hooks.now_ms() + hooks.LEASE_MS + 1) == 2
    jobs.set_hub(hub)
    # tests.helpers' burst worker: rq's own can end a minute late (its command channel)
    quiet_worker_class()([queue], connection=hub.redis).work(burst=True,
                                                               logging_level="WARNING")
    assert receiver.events() == ["conversation.created", "message.created"]
    assert {d["status"] for d in log_of(client, admin_token, sub["id"])} == {"delivered"}
    assert hooks.dispatch_due(hub, hooks.now_ms() + 24 * HOUR) == 0  # settled: never again


# -- the API ----------------------------------------------------------------------------------
def test_delivery_log_is_newest_first_with_a_cursor(client, hub, admin_token, receiver):
    sub = subscribe(client, admin_token, receiver.url)
    ids = [client.post(f"/api/v1/webhooks/{sub['id']}/ping",
                       headers=auth(admin_token, "new")).get_json()["id"] for _ in range(3)]
    r = client.get(f"/api/v1/webhooks/{sub['id']}/deliveries?limit=2", headers=auth(admin_token))
    page = r.get_json()
    rest = log_of(client, admin_token, sub["id"], limit=2, cursor=page["next_cursor"])
    assert [d["id"] for d in page["items"] + rest] == ids[::-1]
    one = client.get(f"/api/v1/webhooks/{sub['id']}/deliveries/{ids[0]}",
                     headers=auth(admin_token)).get_json()
    assert one["payload"]["type"] == "ping" and one["payload"]["id"] == ids[0]


def test_deleting_a_subscription_drops_its_log_and_pending_deliveries(client, hub, admin_token,
                                                                      receiver):
    sub = subscribe(client, admin_token, receiver.url)
    client.post(f"/api/v1/webhooks/{sub['id']}/ping", headers=auth(admin_token, "new"))
    r = client.delete(f"/api/v1/webhooks/{sub['id']}", headers=auth(admin_token))
    assert r.status_code == 200
    assert client.get(f"/api/v1/webhooks/{sub['id']}", headers=auth(admin_token)).status_code \
        == 404
    assert hookdelivery.deliver_due(hub) == {} and receiver.requests == []
    assert not [k for k in hub.redis.scan_iter(hub.keys.prefix + "hooks*")]


@pytest.mark.parametrize("url", ["ftp://example.com/hook", "file:///etc/passwd",
                                 "javascript:alert(1)", "example.com/hook",
                                 "https://user:pass@example.com/hook", "http:///nohost",
                                 "http://exa mple.com/hook", "http://example.com:99999/",
                                 "http://[::1/hook"])
def test_a_bad_url_is_refused(client, hub, admin_token, url):
    r = client.post("/api/v1/webhooks", json={"url": url}, headers=auth(admin_token, "new"))
    assert r.status_code == 400 and r.get_json()["error"]["code"] == "BadRequest"
    assert hooks.all_subscriptions(hub) == []


def test_bad_events_are_refused(client, admin_token, receiver):
    for events in (["ticket.created"], []):
        r = client.post("/api/v1/webhooks", json={"url": receiver.url, "events": events},
                        headers=auth(admin_token, "new"))
        assert r.status_code == 400


def test_only_admins_reach_the_webhook_routes(client, hub, admin_token, people, receiver):
    sub = subscribe(client, admin_token, receiver.url)
    did = client.post(f"/api/v1/webhooks/{sub['id']}/ping",
                      headers=auth(admin_token, "new")).get_json()["id"]
    base = f"/api/v1/webhooks/{sub['id']}"
    for who in ("an", "bich", "cuong"):  # agents of two teams, a supervisor
        h, new = auth(people[who]), auth(people[who], "new")
        answers = [
            client.get("/api/v1/webhooks", headers=h),
            client.post("/api/v1/webhooks", json={"url": receiver.url}, headers=new),
            client.get(base, headers=h),
            client.patch(base, json={"active": False}, headers=h),
            client.delete(base, headers=h),
            client.get(f"{base}/deliveries", headers=h),
            client.get(f"{base}/deliveries/{did}", headers=h),
            client.post(f"{base}/deliveries/{did}/redeliver", headers=h),
            client.post(f"{base}/ping", headers=new),
        ]
        assert [a.status_code for a in answers] == [403] * len(answers), who
    assert hooks.get(hub, sub["id"]).active and len(hooks.all_subscriptions(hub)) == 1
    assert client.get(base, headers=auth(people["admin"])).status_code == 200
