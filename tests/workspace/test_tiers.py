"""Tiers and escalation: L1 → L2 → L3 and back down, by hand (API) and by policy.

The ladder: support (tier 1, queue general) escalates account questions to security and
everything else to billing (tier 2), both escalate to managers (tier 3, the top). People:
an (agent, support), bich (agent, billing), cuong (supervisor, support), admin, and here
minh (agent, managers) and lan (agent in support and billing).
"""

from __future__ import annotations

import pytest

from tests.conftest import write_config
from tests.helpers import auth, drain_all, post, tg_update
from tongdai.core.pipeline import feed
from tongdai.core.workspace import audit, presence, tiers, tokens, users

LADDER = """
teams:
  - {id: support, queues: [general], tier: 1, auto_assign: "off",
     escalates_to: [{team: security, tags_any: [account]}, billing]}
  - {id: billing, queues: [billing], tier: 2, auto_assign: "off", escalates_to: [managers]}
  - {id: security, queues: [security], tier: 2, escalates_to: [managers]}
  - {id: managers, queues: [managers], tier: 3}
"""


@pytest.fixture
def config_file(tmp_path, request):
    """The ladder; a test may pass billing's auto_assign (indirect parameter)."""
    billing = getattr(request, "param", "off")
    path = write_config(tmp_path / "tongdai.yaml", extra=LADDER.replace(
        'tier: 2, auto_assign: "off"', f'tier: 2, auto_assign: "{billing}"'))
    text = path.read_text("utf-8").replace(
        "queues: [general, billing]", "queues: [general, billing, security, managers]").replace(
        "  rules:\n    - {tags_any: [payment]",
        "  rules:\n    - {customer: {tier: [vip]}, queue: managers}\n    - {tags_any: [payment]").replace(
        '      any: ["nạp thẻ", "top up", "充值"]',
        '      any: ["nạp thẻ", "top up", "充值"]\n    - tag: account\n      any: ["mật khẩu"]')
    path.write_text(text, "utf-8")
    return path


@pytest.fixture
def staff(hub, people) -> dict[str, str]:
    for name, teams in (("minh", ["managers"]), ("lan", ["support", "billing"])):
        users.create(hub, users.User(name=name, role="agent", teams=teams), None)
        people[name] = tokens.create(hub, name, "agent", teams)
    return people


def conversation(client, hub, chat: int, text: str = "Đơn #55 giao chưa vậy shop?") -> str:
    post(client, tg_update(chat, chat, chat, text, first_name="Lan"))
    drain_all(hub)
    customer = hub.redis.hget(hub.keys.identity_index("tg-test"), str(chat)).decode()
    return hub.redis.hget(hub.keys.customer(customer), "conv").decode()


def act(client, token: str, cid: str, what: str, **body):
    return client.post(f"/api/v1/conversations/{cid}/{what}", json=body, headers=auth(token))


def events(hub, type_: str) -> list[dict]:
    return [e.data for e in feed.read_after(hub, "0-0", count=10_000) if e.type == type_]


def lines(client, token: str, cid: str) -> list[dict]:
    items = client.get(f"/api/v1/conversations/{cid}/messages", headers=auth(token)).json["items"]
    return [m for m in reversed(items) if m["kind"] == "system"]


def queued_in(hub, cid: str) -> list[str]:
    return [q for q in ("general", "billing", "security", "managers")
            if hub.redis.zscore(hub.keys.queue(q), cid) is not None]


def test_up_from_l1_to_l2_to_l3_then_refused_at_the_top(client, hub, staff):
    cid = conversation(client, hub, 8101)
    assert act(client, staff["an"], cid, "claim").status_code == 200
    r = act(client, staff["an"], cid, "escalate", reason="khách bị trừ tiền 2 lần")
    assert r.status_code == 200
    assert (r.json["queue"], r.json["assignee"], r.json["escalated"]) == ("billing", None, True)
    assert queued_in(hub, cid) == ["billing"]
    assert hub.redis.scard(hub.keys.user_load("an")) == 0  # an no longer holds it
    # an no longer sees it; billing does
    assert client.get(f"/api/v1/conversations/{cid}", headers=auth(staff["an"])).status_code \
        == 404
    assert act(client, staff["bich"], cid, "claim").status_code == 200
    assert act(client, staff["bich"], cid, "escalate", reason="cần bồi thường").json["queue"] \
        == "managers"
    top = act(client, staff["minh"], cid, "escalate", reason="lên nữa")
    assert top.status_code == 409
    assert "top of its ladder" in top.json["error"]["message"]
    assert top.json["error"]["reason"] == "top_of_ladder"  # the console says it in its language

    (up1, up2) = events(hub, "conversation.escalated")
    assert {k: up1[k] for k in ("from_queue", "to_queue", "from_tier", "to_tier", "team", "by",
                                "reason", "assignee")} == {
        "from_queue": "general", "to_queue": "billing", "from_tier": 1, "to_tier": 2,
        "team": "billing", "by": "an", "reason": "khách bị trừ tiền 2 lần", "assignee": None}
    assert (up2["to_queue"], up2["to_tier"], up2["by"]) == ("managers", 3, "bich")
    released = [e for e in events(hub, "conversation.assigned") if e["reason"] == "escalate"]
    assert [(e["previous"], e["queue"]) for e in released] == [("an", "billing"),
                                                                ("bich", "managers")]
    texts = [m["text"] for m in lines(client, staff["admin"], cid)]
    assert texts == [
        "an took the conversation",
        ("an escalated it from general (tier 1) to billing (tier 2, team billing); an no longer "
        "has it — khách bị trừ tiền 2 lần"),
        "bich took the conversation",
        ("bich escalated it from billing (tier 2) to managers (tier 3, team managers); bich no "
        "longer has it — cần bồi thường"),
    ]
    entries, _ = audit.entries(hub, action="conversation.escalated", target=cid)
    assert [e["actor"] for e in entries] == ["bich", "an"]
    assert "bồi thường" not in str(entries)  # the reason stays in the timeline


def test_the_steps_conditions_choose_and_a_person_may_name_the_team(client, hub, staff):
    account = conversation(client, hub, 8102, "Quên mật khẩu rồi, không đăng nhập được")
    assert act(client, staff["an"], account, "escalate", reason="x").json["queue"] == "security"
    other = conversation(client, hub, 8103)
    r = act(client, staff["an"], other, "escalate", reason="x", team="security")
    assert r.json["queue"] == "security"
    third = conversation(client, hub, 8104)
    r = act(client, staff["an"], third, "escalate", reason="x", team="managers")
    assert r.status_code == 400 and "security, billing" in r.json["error"]["message"]


def test_down_goes_back_where_it_came_from_then_refused_at_the_bottom(client, hub, staff):
    cid = conversation(client, hub, 8105)
    act(client, staff["an"], cid, "escalate", reason="a")
    act(client, staff["bich"], cid, "escalate", reason="b")
    r = act(client, staff["minh"], cid, "deescalate", reason="đã duyệt bồi thường")
    assert (r.status_code, r.json["queue"], r.json["escalated"]) == (200, "billing", True)
    r = act(client, staff["bich"], cid, "deescalate")
    assert (r.json["queue"], r.json["escalated"]) == ("general", False)
    assert queued_in(hub, cid) == ["general"]
    bottom = act(client, staff["an"], cid, "deescalate")
    assert bottom.status_code == 409 and "bottom of its ladder" in bottom.json["error"]["message"]
    (down1, down2) = events(hub, "conversation.deescalated")
    assert (down1["from_queue"], down1["to_queue"], down1["reason"]) == (
        "managers", "billing", "đã duyệt bồi thường")
    assert (down2["to_queue"], down2["to_tier"]) == ("general", 1)
    assert lines(client, staff["an"], cid)[-1]["text"] == (
        "bich de-escalated it from billing (tier 2) to general (tier 1, team support)")
    # routed straight to billing (a payment): down is the first team whose ladder leads there
    paid = conversation(client, hub, 8106, "nạp thẻ không được")
    assert act(client, staff["bich"], paid, "deescalate").json["queue"] == "general"


def test_the_assignee_keeps_it_when_they_work_the_next_tier(client, hub, staff):
    cid = conversation(client, hub, 8107)
    act(client, staff["lan"], cid, "claim")
    r = act(client, staff["lan"], cid, "escalate", reason="mình làm tiếp ở billing")
    assert (r.json["queue"], r.json["assignee"]) == ("billing", "lan")
    assert events(hub, "conversation.escalated")[0]["assignee"] == "lan"
    assert not [e for e in events(hub, "conversation.assigned") if e["reason"] == "escalate"]


def test_who_may_escalate(client, hub, staff):
    cid = conversation(client, hub, 8108)
    assert act(client, staff["bich"], cid, "escalate", reason="x").status_code == 404
    assert act(client, staff["an"], cid, "escalate", reason="").status_code == 400
    act(client, staff["cuong"], cid, "assign", assignee="an")
    act(client, staff["an"], cid, "assign", assignee=None)
    act(client, staff["cuong"], cid, "assign", assignee="cuong")
    assert act(client, staff["an"], cid, "escalate", reason="x").status_code == 403  # cuong's
    assert act(client, staff["cuong"], cid, "escalate", reason="x").status_code == 200
    act(client, staff["admin"], cid, "resolve")
    assert act(client, staff["bich"], cid, "escalate", reason="x").status_code == 409


def test_a_policy_escalates_or_does_nothing(client, hub, staff):
    cid = conversation(client, hub, 8109)
    conv = tiers.escalate(hub, None, cid, reason="SLA first_response breached", by="policy:sla")
    assert conv is not None and conv.queue == "billing"
    (ev,) = events(hub, "conversation.escalated")
    assert (ev["by"], ev["reason"]) == ("policy:sla", "SLA first_response breached")
    assert lines(client, staff["admin"], cid)[-1]["author"] == {"kind": "system",
                                                                "id": "policy:sla"}
    tiers.escalate(hub, None, cid, reason="again", by="policy:sla")
    assert tiers.escalate(hub, None, cid, reason="top", by="policy:sla") is None
    assert tiers.escalate(hub, None, "999999", reason="gone", by="policy:sla") is None
    act(client, staff["admin"], cid, "resolve")
    assert tiers.escalate(hub, None, cid, reason="resolved", by="policy:sla") is None


@pytest.mark.parametrize("config_file", ["least_loaded"], indirect=True)
def test_the_next_tier_hands_it_out(client, hub, staff):
    cid = conversation(client, hub, 8110)
    presence.set_status(hub, "bich", "online")
    act(client, staff["an"], cid, "escalate", reason="thanh toán")
    feed.run_pending(hub, ["assign"])
    assert client.get(f"/api/v1/conversations/{cid}",
                      headers=auth(staff["bich"])).json["assignee"] == "bich"


def test_an_sla_breach_escalates_once_when_the_policy_says_so(client, hub, staff, monkeypatch):
    """The sla reactor's call (core/workspace/sla_actions.py): up a tier, by policy:sla, once
    per breach however often the feed entry is replayed."""
    from tongdai.core.config import SlaAction
    from tongdai.core.workspace import sla_actions

    monkeypatch.setattr(hub.config.hub.sla, "on_breach", SlaAction(escalate=True, notify=False))
    cid = conversation(client, hub, 8111)
    breach = {"conversation_id": cid, "due_ts": 1_700_000_000_000, "target": "first_response"}
    sla_actions.act(hub, breach, "breach")
    sla_actions.act(hub, breach, "breach")  # replayed
    (ev,) = events(hub, "conversation.escalated")
    assert (ev["to_queue"], ev["by"], ev["reason"]) == ("billing", "policy:sla",
                                                         "SLA first_response breached")


def test_a_supervisor_sets_the_customers_tier_and_their_next_conversation_routes_on_it(
        client, hub, staff):
    cid = conversation(client, hub, 8112)
    customer = client.get(f"/api/v1/conversations/{cid}", headers=auth(staff["an"])).json[
        "customer_id"]
    url = f"/api/v1/customers/{customer}"
    assert client.patch(url, json={"tier": "vip"}, headers=auth(staff["an"])).status_code == 403
    r = client.patch(url, json={"tier": "vip"}, headers=auth(staff["cuong"]))
    assert r.status_code == 200 and r.json["tier"] == "vip"
    assert client.get(url, headers=auth(staff["an"])).json["tier"] == "vip"
    assert client.patch(url, json={"tier": "v i p"},
                        headers=auth(staff["cuong"])).status_code == 400
    (entry,) = audit.entries(hub, action="customer.updated", target=customer)[0]
    assert entry["details"] == {"tier": [None, "vip"]}
    act(client, staff["an"], cid, "resolve")
    hub.redis.hset(hub.keys.conversation(cid), "resolved_at", 1)  # long ago: a new one opens
    post(client, tg_update(81121, 8112, 81121, "Chào shop, lại là mình"))
    drain_all(hub)
    newer = hub.redis.hget(hub.keys.customer(customer), "conv").decode()
    assert newer != cid and hub.redis.hget(hub.keys.conversation(newer), "queue") == b"managers"


def test_in_the_next_queue_it_takes_its_place_by_priority_then_age(client, hub, staff):
    older = conversation(client, hub, 8113)                   # priority 0, first
    paid = conversation(client, hub, 8114, "nạp thẻ lỗi")      # billing, priority 50
    newer = conversation(client, hub, 8115)                   # priority 0, last
    for cid in (newer, older):  # escalated in the "wrong" order: age decides, not the move
        act(client, staff["an"], cid, "escalate", reason="x")
    r = client.get("/api/v1/conversations?queue=billing", headers=auth(staff["bich"]))
    assert [c["id"] for c in r.json["items"]] == [paid, older, newer]


def test_the_team_it_left_hears_it_went(client, hub, staff):
    from tongdai.core.workspace.access import Principal
    from tongdai.webhooks.api.events import visible

    cid = conversation(client, hub, 8116)
    act(client, staff["an"], cid, "escalate", reason="x")
    batch = feed.read_after(hub, "0-0", count=1000)
    seen = [e.type for e in visible(hub, Principal("an", "agent", frozenset({"support"})), batch)]
    assert "conversation.escalated" in seen
    assert "conversation.escalated" not in [e.type for e in visible(
        hub, Principal("sang", "agent", frozenset({"security"})), batch)]
