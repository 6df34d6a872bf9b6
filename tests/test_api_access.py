"""Every /api/v1 route, called by every role: who gets through, who is refused, and how.

Roles: nobody (no credentials), a bad token, ``an`` (agent, team support → queue general),
``bich`` (agent, team billing), ``cuong`` (supervisor, support), ``admin``. The conversation
used lives in queue ``general``: ``an`` and ``cuong`` see it, ``bich`` must not (404, not 403:
its existence is not told). The table below must name every route the app has, so a new route
without a decided policy fails this test.
"""

from __future__ import annotations

import time
import uuid

import pytest

from tests.conftest import write_config
from tests.helpers import drain_all, post, tg_update
from tongdai.core.workspace import tokens, users

TEAMS = """
teams:
  - {id: support, queues: [general]}
  - {id: billing, queues: [billing]}
"""
ROLES = {"an": ("agent", ["support"]), "bich": ("agent", ["billing"]),
         "cuong": ("supervisor", ["support"]), "admin": ("admin", [])}

BROADCAST = {"segment": {"tag": "payment"}, "templates": {"*": "Xin chào {{customer.name}}"}}
# policy: public | any (signed in) | conv (sees the conversation) | supervisor | admin
# path values: {conv}, {customer}, {canned}, {x} (an id that does not exist)
ROUTES: dict[tuple[str, str], tuple[str, dict | None]] = {
    ("GET", "/api/v1/openapi.json"): ("public", None),
    ("GET", "/api/v1/users"): ("any", None),
    ("GET", "/api/v1/users/me"): ("any", None),
    ("POST", "/api/v1/users"): ("admin", {"name": "newbie", "role": "agent"}),
    ("PATCH", "/api/v1/users/<name>"): ("admin", {"display_name": "Khoa"}),  # others' record
    ("POST", "/api/v1/tokens"): ("admin", {"name": "bot", "role": "agent"}),
    ("DELETE", "/api/v1/tokens/<name>"): ("admin", None),
    ("GET", "/api/v1/audit"): ("admin", None),
    ("GET", "/api/v1/admin/overview"): ("admin", None),
    ("GET", "/api/v1/admin/channels"): ("admin", None),
    ("POST", "/api/v1/admin/channels"): ("admin", {"id": "tg-two", "adapter": "telegram"}),
    ("DELETE", "/api/v1/admin/channels/<channel_id>"): ("admin", None),
    ("POST", "/api/v1/admin/channels/<channel_id>/check"): ("admin", None),
    ("POST", "/api/v1/admin/channels/<channel_id>/disable"): ("admin", {"why": "test"}),
    ("POST", "/api/v1/admin/channels/<channel_id>/enable"): ("admin", None),
    ("PUT", "/api/v1/admin/channels/<channel_id>/secrets/<key>"): ("admin", {"value": "x"}),
    ("GET", "/api/v1/deadletters"): ("admin", None),
    ("POST", "/api/v1/deadletters/<dl_id>/replay"): ("admin", None),
    ("GET", "/api/v1/conversations"): ("any", None),
    ("GET", "/api/v1/inbox"): ("any", None),
    ("GET", "/api/v1/reports/sla"): ("supervisor", None),
    ("GET", "/api/v1/reports/kpis"): ("supervisor", None),
    ("GET", "/api/v1/reports/csat"): ("supervisor", None),
    ("GET", "/api/v1/spikes"): ("supervisor", None),
    ("GET", "/api/v1/spikes/now"): ("supervisor", None),
    ("GET", "/api/v1/mentions"): ("any", None),
    ("GET", "/api/v1/presence"): ("any", None),
    ("PUT", "/api/v1/presence"): ("any", {"status": "online"}),
    ("GET", "/api/v1/teams"): ("any", None),
    ("GET", "/api/v1/events/stream"): ("any", None),
    ("GET", "/api/v1/conversations/<conv_id>"): ("conv", None),
    ("GET", "/api/v1/conversations/<conv_id>/channels"): ("conv", None),
    ("GET", "/api/v1/conversations/<conv_id>/lookups"): ("conv", None),
    ("GET", "/api/v1/conversations/<conv_id>/mentionable"): ("conv", None),
    ("GET", "/api/v1/conversations/<conv_id>/messages"): ("conv", None),
    ("POST", "/api/v1/conversations/<conv_id>/messages"): ("conv", {"text": "Dạ vâng ạ"}),
    ("GET", "/api/v1/conversations/<conv_id>/messages/<msg_id>/attachments/<int:n>"):
        ("conv", None),
    ("POST", "/api/v1/conversations/<conv_id>/messages/upload"): ("conv", {"text": "ảnh"}),
    ("POST", "/api/v1/conversations/<conv_id>/notes"): ("conv", {"text": "ghi chú"}),
    ("POST", "/api/v1/conversations/<conv_id>/read"): ("conv", None),
    ("POST", "/api/v1/conversations/<conv_id>/claim"): ("conv", None),
    ("POST", "/api/v1/conversations/<conv_id>/assign"): ("conv", {"assignee": None}),
    ("POST", "/api/v1/conversations/<conv_id>/raise-priority"): ("conv", {"why": "khách VIP"}),
    # (no tiers configured here: 409 for those who may, 404 for the others)
    ("POST", "/api/v1/conversations/<conv_id>/escalate"): ("conv", {"reason": "khách VIP"}),
    ("POST", "/api/v1/conversations/<conv_id>/deescalate"): ("conv", {"reason": ""}),
    ("POST", "/api/v1/conversations/<conv_id>/snooze"): ("conv", {"until_ts": 0}),
    ("POST", "/api/v1/conversations/<conv_id>/resolve"): ("conv", None),
    # per-id refusals inside a 200: bich's answer says not_found for the conversation
    ("POST", "/api/v1/conversations/bulk"): ("any", {"ids": ["{conv}"], "action": "resolve"}),
    ("GET", "/api/v1/conversations/<conv_id>/labels"): ("conv", None),
    ("POST", "/api/v1/conversations/<conv_id>/labels"): ("conv", {"tag": "khách quen"}),
    ("DELETE", "/api/v1/conversations/<conv_id>/labels/<path:tag>"): ("conv", None),
    ("GET", "/api/v1/labels"): ("any", None),
    ("POST", "/api/v1/conversations/<conv_id>/reopen"): ("conv", None),
    ("POST", "/api/v1/conversations/<conv_id>/canned/<canned_id>/render"): ("conv", None),
    ("GET", "/api/v1/customers/<customer_id>"): ("conv", None),
    ("GET", "/api/v1/customers/<customer_id>/suggestions"): ("conv", None),
    ("GET", "/api/v1/customers/<customer_id>/merges"): ("conv", None),
    ("GET", "/api/v1/customers/<customer_id>/timeline"): ("conv", None),
    ("POST", "/api/v1/customers/<customer_id>/link-code"): ("conv", None),
    ("POST", "/api/v1/customers/<customer_id>/merge"):
        ("conv", {"source_customer_id": "{customer}", "why": "test"}),
    ("PATCH", "/api/v1/customers/<customer_id>"): ("supervisor", {"tier": "vip"}),
    ("DELETE", "/api/v1/customers/<customer_id>/optout"): ("supervisor", None),
    ("GET", "/api/v1/customers/<customer_id>/export"): ("admin", None),
    ("DELETE", "/api/v1/customers/<customer_id>"): ("admin", None),
    ("GET", "/api/v1/merges/<merge_id>"): ("any", None),
    ("POST", "/api/v1/merges/<merge_id>/split"): ("any", {"why": "test"}),
    ("GET", "/api/v1/suggestions"): ("supervisor", None),
    ("POST", "/api/v1/suggestions/<pair>/dismiss"): ("any", None),
    ("GET", "/api/v1/canned"): ("any", None),
    ("POST", "/api/v1/canned"): ("supervisor", {"shortcut": "/chao", "text": "Chào {{customer.name}}"}),
    ("GET", "/api/v1/canned/<canned_id>"): ("any", None),
    ("PATCH", "/api/v1/canned/<canned_id>"): ("supervisor", {"title": "Chào hỏi"}),
    ("DELETE", "/api/v1/canned/<canned_id>"): ("supervisor", None),
    ("GET", "/api/v1/webhooks"): ("admin", None),
    ("POST", "/api/v1/webhooks"): ("admin", {"url": "http://127.0.0.1:9/hook"}),
    ("GET", "/api/v1/webhooks/<sub_id>"): ("admin", None),
    ("PATCH", "/api/v1/webhooks/<sub_id>"): ("admin", {"description": "x"}),
    ("DELETE", "/api/v1/webhooks/<sub_id>"): ("admin", None),
    ("GET", "/api/v1/webhooks/<sub_id>/deliveries"): ("admin", None),
    ("GET", "/api/v1/webhooks/<sub_id>/deliveries/<delivery_id>"): ("admin", None),
    ("POST", "/api/v1/webhooks/<sub_id>/deliveries/<delivery_id>/redeliver"): ("admin", None),
    ("POST", "/api/v1/webhooks/<sub_id>/ping"): ("admin", None),
    ("GET", "/api/v1/kb/articles"): ("any", None),
    ("GET", "/api/v1/kb/articles/<article_id>"): ("any", None),
    ("PUT", "/api/v1/kb/articles/<article_id>"):
        ("supervisor", {"variants": {"vi": {"title": "Giờ mở cửa", "body": "8:00–21:00"}}}),
    ("DELETE", "/api/v1/kb/articles/<article_id>"): ("supervisor", None),
    ("POST", "/api/v1/kb/match"): ("any", {"text": "quên mật khẩu"}),
    ("GET", "/api/v1/kb/stats"): ("supervisor", None),
    # each user's own browsers only (tests/workspace/test_push.py: nobody reaches another's)
    ("GET", "/api/v1/push/subscriptions"): ("any", None),
    ("POST", "/api/v1/push/subscriptions"): ("any", {
        "endpoint": "https://fcm.googleapis.com/fcm/send/dQw4w9WgXcQ:APA91bTest",
        # the user agent's keys of RFC 8291's example (section 5)
        "keys": {"p256dh": "BCVxsr7N_eNgVRqvHtD0zTZsEc6-VV-JvLexhqUzORcxaOzi6-AYWXvTBHm4bjyPj"
                           "s7Vd8pZGH6SRpkNtoIAiw4", "auth": "BTBZMqHH6r4Tts7J_aSIgg"}}),
    ("DELETE", "/api/v1/push/subscriptions/<sub_id>"): ("any", None),
    ("GET", "/api/v1/broadcasts"): ("supervisor", None),
    ("POST", "/api/v1/broadcasts"): ("supervisor", BROADCAST),
    ("POST", "/api/v1/broadcasts/dry-run"): ("supervisor", BROADCAST),
    ("GET", "/api/v1/broadcasts/<broadcast_id>"): ("supervisor", None),
    ("POST", "/api/v1/broadcasts/<broadcast_id>/dry-run"): ("supervisor", None),
    ("POST", "/api/v1/broadcasts/<broadcast_id>/send"): ("supervisor", None),
    ("GET", "/api/v1/broadcasts/<broadcast_id>/report"): ("supervisor", None),
}


@pytest.fixture
def config_file(tmp_path):
    return write_config(tmp_path / "tongdai.yaml", extra=TEAMS)


@pytest.fixture
def world(hub, client):
    post(client, tg_update(1, 6001, 1, "Cho mình hỏi đơn hàng #A12"))
    drain_all(hub)
    (conv,) = [c.decode() for c in hub.redis.zrange(hub.keys.queue("general"), 0, -1)]
    customer = hub.redis.hget(hub.keys.conversation(conv), "customer").decode()
    users.create(hub, users.User(name="dung", role="agent", teams=["support"]), None)
    toks = {}
    for name, (role, teams) in ROLES.items():
        users.create(hub, users.User(name=name, role=role, teams=teams), None)
        toks[name] = tokens.create(hub, name, role, teams)
    from tongdai.core.workspace import canned
    from tongdai.core.workspace.access import Principal

    c = canned.create(hub, Principal("admin", "admin"), "/xin-chao", "Xin chào {{customer.name}}")
    return {"conv": conv, "customer": customer, "canned": c.id, "tokens": toks}


def _url(rule: str, w: dict) -> str:
    values = {"conv_id": w["conv"], "customer_id": w["customer"], "canned_id": w["canned"],
              "msg_id": "999999", "int:n": "0", "name": "dung", "dl_id": "1-1", "merge_id": "999",
              "pair": "1:2", "sub_id": "x404", "delivery_id": "x404",
              "article_id": "opening-hours", "broadcast_id": "999", "path:tag": "khách quen", "channel_id": "tg-test",
              "key": "bot_token"}
    for k, v in values.items():
        rule = rule.replace(f"<{k}>", v)
    return rule


def _call(client, method: str, url: str, body, token: str | None):
    headers = {"Idempotency-Key": uuid.uuid4().hex}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    kwargs = {"headers": headers, "buffered": False}
    if body is not None:
        kwargs["json"] = body
    r = client.open(url, method=method, **kwargs)
    status = r.status_code
    r.close()
    return status


def test_the_table_names_every_route(app):
    rules = {(m, str(r)) for r in app.url_map.iter_rules() if str(r).startswith("/api/v1/")
             and not str(r).startswith("/api/v1/openapi/")
             for m in r.methods - {"HEAD", "OPTIONS"}}
    assert rules - set(ROUTES) == set(), "decide who may call these routes (add them above)"
    assert set(ROUTES) - rules == set(), "routes in the table the app no longer has"


@pytest.mark.parametrize(("method", "rule"), sorted(ROUTES), ids=lambda v: str(v))
def test_every_role_on(method, rule, client, world):
    policy, body = ROUTES[(method, rule)]
    url = _url(rule, world)
    if isinstance(body, dict):
        body = {k: (_url(v, world).replace("{customer}", world["customer"])
                    if isinstance(v, str) else v) for k, v in body.items()}
        if "until_ts" in body:
            body["until_ts"] = int(time.time() * 1000) + 3_600_000
        if "ids" in body:
            body["ids"] = [world["conv"] if i == "{conv}" else i for i in body["ids"]]
    toks = world["tokens"]

    anon = _call(client, method, url, body, None)
    bad = _call(client, method, url, body, "td_not-a-real-token")
    if policy == "public":
        assert anon == 200
        return
    assert anon == 401 and bad == 401

    allowed = {"any": {"an", "bich", "cuong", "admin"}, "conv": {"an", "cuong", "admin"},
               "supervisor": {"cuong", "admin"}, "admin": {"admin"}}[policy]
    # the refused first (an admin's DELETE would leave nothing for the others to try)
    for who in sorted(ROLES, key=lambda n: (n in allowed, n == "admin")):
        status = _call(client, method, url, body, toks[who])
        if who in allowed:
            assert status not in (401, 403), f"{who} refused ({status}) on {method} {rule}"
            if policy == "conv" and "attachments" not in rule:
                assert status != 404, f"{who} cannot see the conversation on {method} {rule}"
        elif policy == "conv":
            assert status == 404, f"{who} of another team got {status} on {method} {rule}"
        else:
            assert status == 403, f"{who} got {status} on {method} {rule} (wants 403)"
