"""Bulk work over a selection and labels by hand, through the API.

Teams and people from tests/workspace/conftest.py: an (agent, support → queue general), bich
(agent, billing), cuong (supervisor, support), admin. "nạp thẻ" routes to billing.
"""

from __future__ import annotations

import time

import orjson
import pytest

from tests.helpers import auth, drain_all, post, tg_update
from tongdai.core.workspace import audit, privacy

TEXTS = ["Cho mình hỏi đơn #A1", "Shop ơi đơn #A2 sao rồi", "Mình muốn đổi size áo",
         "Đơn #A4 giao chưa ạ", "Mình nạp thẻ 100k mà chưa nhận"]


@pytest.fixture
def convs(client, hub, people) -> list[str]:
    """Five conversations, one per customer: four in general, the last in billing."""
    for i, text in enumerate(TEXTS, start=1):
        post(client, tg_update(7000 + i, 7100 + i, 1, text, first_name=f"Khach{i}"))
    drain_all(hub)
    ids = sorted((c.decode() for c in hub.redis.zrange(hub.keys.conversations_by_status("open"),
                                                        0, -1)), key=int)
    # (shards ingest in parallel: ids do not follow the order of writing)
    billing = [c for c in ids if hub.redis.hget(hub.keys.conversation(c), "queue") == b"billing"]
    assert len(ids) == 5 and len(billing) == 1
    return [c for c in ids if c not in billing] + billing


def bulk(client, token, action, ids, params=None, key="new"):
    return client.post("/api/v1/conversations/bulk", headers=auth(token, key),
                       json={"ids": ids, "action": action, "params": params or {}})


def conv(client, token, cid):
    return client.get(f"/api/v1/conversations/{cid}", headers=auth(token)).json


def outcome(r) -> dict[str, str]:
    assert r.status_code == 200, r.json
    return {x["id"]: ("ok" if x["ok"] else x["reason"]) for x in r.json["results"]}


def lines(client, token, cid) -> list[dict]:
    items = client.get(f"/api/v1/conversations/{cid}/messages", headers=auth(token)).json["items"]
    return [orjson.loads(m["payload"]) for m in items if m["kind"] == "system"]


def test_bulk_resolve_refuses_some_and_a_retry_does_nothing_twice(client, hub, people, convs):
    c1, c2, c3, c4, billing = convs
    an = people["an"]
    assert client.post(f"/api/v1/conversations/{c2}/resolve", headers=auth(an)).status_code == 200

    r = bulk(client, an, "resolve", [c1, c2, billing, c3, c1], key="shift-end-1")
    assert outcome(r) == {c1: "ok", c2: "already_resolved", billing: "not_found", c3: "ok"}
    assert (r.json["done"], r.json["refused"]) == (2, 2)
    assert [x["id"] for x in r.json["results"]] == [c1, c2, billing, c3]  # in order, once each
    assert [conv(client, an, c)["status"] for c in (c1, c3, c4)] == ["resolved", "resolved", "open"]
    assert conv(client, people["admin"], billing)["status"] == "open"
    assert {"action": "resolved"} in lines(client, an, c1)

    again = bulk(client, an, "resolve", [c1, c2, billing, c3, c1], key="shift-end-1")
    assert again.json == r.json  # the first answer, not "already resolved" for c1 and c3
    resolved = audit.entries(hub, action="conversation.resolved", limit=100)[0]
    assert sorted(e["target"] for e in resolved) == sorted([c1, c2, c3])
    assert sum(p == {"action": "resolved"} for p in lines(client, an, c1)) == 1


def test_bulk_assign_and_transfer_check_each_like_the_single_routes(client, hub, people, convs):
    c1, c2, c3, _, billing = convs
    an, cuong = people["an"], people["cuong"]
    assert client.post(f"/api/v1/conversations/{c3}/claim", headers=auth(cuong)).status_code == 200

    r = bulk(client, an, "assign", [c1, c2, c3, billing], {"assignee": "an"})
    got = outcome(r)
    assert got == {c1: "ok", c2: "ok", c3: "needs_supervisor", billing: "not_found"}
    refused = next(x for x in r.json["results"] if x["id"] == c3)
    assert refused["params"] == {"id": c3, "who": "Cuong"} and refused["status"] == 403
    assert [conv(client, an, c)["assignee"] for c in (c1, c2, c3)] == ["an", "an", "cuong"]

    # the supervisor moves the selection to billing's queue, his own included
    r = bulk(client, cuong, "transfer", [c1, c3], {"team": "billing", "why": "thanh toán"})
    assert outcome(r) == {c1: "ok", c3: "ok"}
    admin = people["admin"]
    assert [(conv(client, admin, c)["queue"], conv(client, admin, c)["assignee"])
            for c in (c1, c3)] == [("billing", None), ("billing", None)]
    assert client.get(f"/api/v1/conversations/{c1}", headers=auth(an)).status_code == 404

    bad = bulk(client, cuong, "transfer", [c2], {"team": "nowhere"})
    assert bad.status_code == 400 and "params.team" in bad.json["error"]["message"]
    assert bulk(client, an, "assign", [c2], {}).status_code == 400
    assert conv(client, an, c2)["queue"] == "general"


def test_bulk_snooze_refuses_a_resolved_conversation(client, hub, people, convs):
    c1, c2 = convs[:2]
    an = people["an"]
    client.post(f"/api/v1/conversations/{c2}/resolve", headers=auth(an))
    until = int(time.time() * 1000) + 3_600_000
    r = bulk(client, an, "snooze", [c1, c2], {"until_ts": until})
    assert outcome(r) == {c1: "ok", c2: "reopen_first"}
    assert conv(client, an, c1)["snoozed_until_ts"] == until
    assert conv(client, an, c2)["status"] == "resolved"


def test_labels_by_hand_are_told_apart_audited_on_the_timeline_and_in_the_feed(
        client, hub, people, convs):
    c1, c2, _, _, billing = convs
    an, bich = people["an"], people["bich"]
    url = f"/api/v1/conversations/{c1}/labels"
    before = {x["tag"]: x["source"] for x in client.get(url, headers=auth(an)).json["items"]}
    assert before and set(before.values()) == {"rule"}  # the language detector's lang: tags

    r = client.post(url, headers=auth(an), json={"tag": "  khách  quen "})
    assert r.status_code == 200
    mine = next(x for x in r.json["items"] if x["tag"] == "khách quen")
    assert mine["source"] == "hand" and mine["by"] == "an" and mine["ts"]
    assert "khách quen" in conv(client, an, c1)["tags"]
    client.post(url, headers=auth(an), json={"tag": "khách quen"})  # again: nothing new
    assert [p for p in lines(client, an, c1) if p["action"] == "labeled"] == [
        {"action": "labeled", "tag": "khách quen", "source": "hand"}]
    (entry,) = audit.entries(hub, action="conversation.labeled")[0]
    assert (entry["actor"], entry["target"], entry["details"]["tag"]) == ("an", c1, "khách quen")
    events = [orjson.loads(f[b"e"]) for _, f in hub.redis.xrange(hub.keys.feed())]
    tagged = [e for e in events if e["type"] == "conversation.tagged"]
    assert [(e["conversation_id"], e["tag"], e["source"], e["by"]) for e in tagged] == [
        (c1, "khách quen", "hand", "an")]

    # the inbox's tag filter finds it like a rule's tag
    found = client.get("/api/v1/inbox?tag=khách quen", headers=auth(an)).json["items"]
    assert [c["id"] for c in found] == [c1]
    assert client.get("/api/v1/labels?q=KHACH", headers=auth(bich)).json["items"] == ["khách quen"]
    assert "payment" in client.get("/api/v1/labels?q=pay", headers=auth(an)).json["items"]

    lang = next(t for t in before if t.startswith("lang:"))
    refused = client.delete(f"{url}/{lang}", headers=auth(an))
    assert refused.status_code == 400 and refused.json["error"]["reason"] == "label_reserved"
    assert client.post(url, headers=auth(bich), json={"tag": "x"}).status_code == 404

    r = client.delete(f"{url}/khách quen", headers=auth(an))
    assert r.status_code == 200 and "khách quen" not in [x["tag"] for x in r.json["items"]]
    assert lines(client, an, c1)[0] == {"action": "unlabeled", "tag": "khách quen",
                                       "source": "hand"}
    assert audit.entries(hub, action="conversation.unlabeled")[0][0]["details"]["tag"] == "khách quen"
    last = orjson.loads(hub.redis.xrevrange(hub.keys.feed(), count=1)[0][1][b"e"])
    assert (last["type"], last["tag"]) == ("conversation.untagged", "khách quen")

    # a rule's tag taken off by hand says so
    admin = people["admin"]
    r = client.delete(f"/api/v1/conversations/{billing}/labels/payment", headers=auth(admin))
    assert "payment" not in [x["tag"] for x in r.json["items"]]
    assert lines(client, admin, billing)[0]["source"] == "rule"

    # in bulk, with the refusals named
    r = bulk(client, an, "label", [c1, c2, billing], {"tag": "VIP"})
    assert outcome(r) == {c1: "ok", c2: "ok", billing: "not_found"}
    assert all("VIP" in conv(client, an, c)["tags"] for c in (c1, c2))
    r = bulk(client, an, "unlabel", [c2], {"tag": "VIP"})
    assert outcome(r) == {c2: "ok"} and "VIP" not in conv(client, an, c2)["tags"]
    assert bulk(client, an, "label", [c1], {"tag": "lang:en"}).status_code == 400


def test_erasing_the_customer_forgets_their_hand_labels(client, hub, people, convs):
    c1 = convs[0]
    client.post(f"/api/v1/conversations/{c1}/labels", headers=auth(people["an"]),
                json={"tag": "khách quen"})
    assert hub.redis.exists(hub.keys.conversation_labels(c1))
    customer = hub.redis.hget(hub.keys.conversation(c1), "customer").decode()
    privacy.erase_customer(hub, customer, "admin")
    assert not hub.redis.exists(hub.keys.conversation_labels(c1))
