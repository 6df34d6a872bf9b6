"""Teams, agents, assignment: atomic claims, transfers, capacity, presence, auto-assignment.

Conversations come in through the real path (a Telegram update posted to the webhook, the raw
log drained like a worker does); the auto-assigner runs as its reactor would
(``feed.run_pending(hub, ["assign"])``); presence timing runs the scheduler's tick with a chosen
"now" instead of waiting.
"""

from __future__ import annotations

import itertools
import threading

import orjson
import pytest

from tests.conftest import write_config
from tests.helpers import auth, drain_all, post, tg_update
from tests.workspace.conftest import TEAMS
from tongdai.core.pipeline import feed
from tongdai.core.workspace import assignment, audit, presence, tokens, users

_ids = itertools.count(1000)


@pytest.fixture
def config_file(tmp_path, request):
    """The workspace teams, or the ``teams:`` section a test passes (indirect parameter)."""
    return write_config(tmp_path / "tongdai.yaml", extra=getattr(request, "param", TEAMS))


def auto_teams(mode: str) -> str:
    return f"""
console: {{away_after: 10m, offline_after: 30m}}
teams:
  - {{id: support, queues: [general], auto_assign: "{mode}", capacity: 3}}
  - {{id: billing, queues: [billing], auto_assign: "off", capacity: 3,
      release_on_offline: false}}
"""


def auto(mode: str):
    """Run a test with support's auto-assignment in ``mode`` (billing's stays off)."""
    return pytest.mark.parametrize("config_file", [auto_teams(mode)], indirect=True, ids=[mode])


@pytest.fixture
def crew(hub, people) -> dict[str, str]:
    """The workspace people plus two more support agents (dung, em): name -> token."""
    for name in ("dung", "em"):
        users.create(hub, users.User(name=name, role="agent", teams=["support"],
                                     display_name=name.title()), None)  # API only: fast
        people[name] = tokens.create(hub, name, "agent", ["support"])
    return people


def new_conversation(client, hub, text: str = "xin chào, tôi cần giúp") -> str:
    """A new customer writes on Telegram; returns their conversation's id."""
    n = next(_ids)
    assert post(client, tg_update(n, n, 1, text, first_name=f"Khách {n}")).status_code == 200
    drain_all(hub)
    customer = hub.redis.hget(hub.keys.identity_index("tg-test"), str(n)).decode()
    return hub.redis.hget(hub.keys.customer(customer), "conv").decode()


def conv(hub, cid: str) -> dict:
    h = hub.redis.hgetall(hub.keys.conversation(cid))
    return {k.decode(): v.decode() for k, v in h.items()}


def events(hub, type_: str) -> list[dict]:
    return [e.data for e in feed.read_after(hub, "0-0", count=10_000) if e.type == type_]


def claim(client, token, cid):
    return client.post(f"/api/v1/conversations/{cid}/claim", headers=auth(token))


def assign(client, token, cid, **body):
    return client.post(f"/api/v1/conversations/{cid}/assign", json=body, headers=auth(token))


def set_presence(client, token, status):
    r = client.put("/api/v1/presence", json={"status": status}, headers=auth(token))
    assert r.status_code == 200, r.get_json()
    return r.get_json()


# -- claims ----------------------------------------------------------------------------------
def test_two_agents_taking_one_conversation_at_once_one_wins(app, hub, crew):
    """Five support people hammer "take" on the same conversations at once, each on their own
    connection: every time exactly one gets it, the others are told who has it."""
    client = app.test_client()
    takers = ["an", "cuong", "dung", "em", "admin"]
    names = {"an": "An", "cuong": "Cuong", "dung": "Dung", "em": "Em", "admin": "Admin"}
    for _ in range(3):  # (3: nobody reaches their capacity, so every refusal is "taken")
        cid = new_conversation(client, hub)
        gate = threading.Barrier(len(takers))
        answers: dict[str, tuple[int, dict]] = {}

        def take(name: str, cid: str = cid, gate: threading.Barrier = gate,
                 answers: dict = answers) -> None:
            c = app.test_client()
            gate.wait()
            r = claim(c, crew[name], cid)
            answers[name] = (r.status_code, r.get_json())

        threads = [threading.Thread(target=take, args=(n,)) for n in takers]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        winners = [n for n, (status, _) in answers.items() if status == 200]
        assert len(winners) == 1, answers
        winner = winners[0]
        for n, (status, body) in answers.items():
            if n != winner:
                assert status == 409
                assert body["error"]["message"] == f"already taken by {names[winner]}"
        assert conv(hub, cid)["assignee"] == winner
        assert [e["assignee"] for e in events(hub, "conversation.assigned")
                if e["conversation_id"] == cid] == [winner]
    # each winner's load counts exactly what they won
    total = sum(assignment.load(hub, n) for n in takers)
    assert total == 3


def test_claim_writes_the_feed_event_and_the_audit_entry(client, hub, crew):
    cid = new_conversation(client, hub)
    r = claim(client, crew["an"], cid)
    assert r.status_code == 200 and r.get_json()["assignee"] == "an"
    ev = events(hub, "conversation.assigned")[-1]
    assert {k: ev[k] for k in ("conversation_id", "assignee", "team", "by")} == {
        "conversation_id": cid, "assignee": "an", "team": "support", "by": "an"}
    entries, _ = audit.entries(hub, action="conversation.assigned", target=cid)
    assert entries[0]["actor"] == "an" and entries[0]["details"]["assignee"] == "an"
    # taking it again is harmless: no second event
    assert claim(client, crew["an"], cid).status_code == 200
    assert len(events(hub, "conversation.assigned")) == 1


def test_claim_and_assign_need_to_see_the_conversation(client, hub, crew):
    """bich (billing) does not see a support conversation: 404, as if it did not exist."""
    cid = new_conversation(client, hub)
    assert claim(client, crew["bich"], cid).status_code == 404
    assert assign(client, crew["bich"], cid, assignee="bich").status_code == 404
    assert claim(client, crew["an"], "999999").status_code == 404


def test_only_users_take_conversations(client, hub, crew, admin_token):
    """An integration's token (not a user) cannot hold conversations."""
    cid = new_conversation(client, hub)
    r = claim(client, admin_token, cid)
    assert r.status_code == 403
    assert "only users" in r.get_json()["error"]["message"]


def test_permissions_per_role(client, hub, crew):
    cid = new_conversation(client, hub)
    # an agent takes an unassigned conversation of their team and hands it back
    assert claim(client, crew["an"], cid).status_code == 200
    r = assign(client, crew["an"], cid, assignee=None, why="cannot help")
    assert r.status_code == 200 and r.get_json()["assignee"] is None
    assert events(hub, "conversation.assigned")[-1]["assignee"] is None
    assert claim(client, crew["an"], cid).status_code == 200
    # another agent can neither take it over nor release it
    for body in ({"assignee": "dung"}, {"assignee": None}, {"team": "billing"}):
        r = assign(client, crew["dung"], cid, **body)
        assert r.status_code == 403, body
        assert "needs a supervisor" in r.get_json()["error"]["message"]
    assert conv(hub, cid)["assignee"] == "an"
    # the agent who has it passes it to a colleague
    assert assign(client, crew["an"], cid, assignee="dung").get_json()["assignee"] == "dung"
    # the team's supervisor takes over; an admin moves it on
    r = assign(client, crew["cuong"], cid, assignee="cuong", why="VIP customer")
    assert r.status_code == 200 and r.get_json()["assignee"] == "cuong"
    assert assign(client, crew["admin"], cid, assignee="em").get_json()["assignee"] == "em"
    entries, _ = audit.entries(hub, action="conversation.assigned", target=cid)
    assert [e["actor"] for e in entries][:3] == ["admin", "cuong", "an"]
    assert entries[1]["details"]["why"] == "VIP customer"
    # the assignee must work the conversation's queue
    r = assign(client, crew["admin"], cid, assignee="bich")
    assert r.status_code == 400 and "no team working queue general" in r.text
    assert assign(client, crew["admin"], cid, assignee="nobody").status_code == 400
    assert assign(client, crew["admin"], cid, team="nowhere").status_code == 400
    # a claim on someone else's conversation names who has it, whatever the role
    r = claim(client, crew["cuong"], cid)
    assert r.status_code == 409 and r.get_json()["error"]["message"] == "already taken by Em"


def test_a_billing_supervisor_cannot_touch_support_work(client, hub, crew):
    users.create(hub, users.User(name="hoa", role="supervisor", teams=["billing"]), None)
    hoa = tokens.create(hub, "hoa", "supervisor", ["billing"])
    cid = new_conversation(client, hub)
    assert claim(client, crew["an"], cid).status_code == 200
    assert assign(client, hoa, cid, assignee="hoa").status_code == 404


def test_capacity_stops_claims_but_not_a_supervisor(client, hub, crew):
    """Support's capacity is 3: an's fourth claim is refused with a clear reason; the
    supervisor can still give it to her; resolving one makes room again."""
    cids = [new_conversation(client, hub) for _ in range(5)]
    for cid in cids[:3]:
        assert claim(client, crew["an"], cid).status_code == 200
    r = claim(client, crew["an"], cids[3])
    assert r.status_code == 409
    assert "capacity (3 open conversations of 3)" in r.get_json()["error"]["message"]
    assert "assignee" not in conv(hub, cids[3])
    # a colleague cannot push work onto her either
    r = assign(client, crew["dung"], cids[4], assignee="an")
    assert r.status_code == 409 and "at capacity" in r.get_json()["error"]["message"]
    # the supervisor decides otherwise
    assert assign(client, crew["cuong"], cids[3], assignee="an").status_code == 200
    assert assignment.load(hub, "an") == 4
    # resolving two brings her under capacity: she can take one more
    for cid in cids[:2]:
        r = client.post(f"/api/v1/conversations/{cid}/resolve", headers=auth(crew["an"]))
        assert r.status_code == 200
    assert assignment.load(hub, "an") == 2
    assert claim(client, crew["an"], cids[4]).status_code == 200
    teams = client.get("/api/v1/teams", headers=auth(crew["an"])).get_json()["items"]
    an = next(m for m in teams[0]["members"] if m["name"] == "an")
    assert (an["load"], an["capacity"]) == (3, 3)


def test_a_resolved_conversation_is_not_claimed(client, hub, crew):
    cid = new_conversation(client, hub)
    client.post(f"/api/v1/conversations/{cid}/resolve", headers=auth(crew["an"]))
    r = claim(client, crew["an"], cid)
    assert r.status_code == 409 and "reopen it first" in r.get_json()["error"]["message"]


def test_transfer_to_a_team_moves_the_queue_and_who_sees_it(client, hub, crew):
    cid = new_conversation(client, hub)
    assert claim(client, crew["an"], cid).status_code == 200
    before = hub.redis.zscore(hub.keys.queue("general"), cid)
    r = assign(client, crew["an"], cid, assignee=None, team="billing", why="a payment question")
    assert r.status_code == 200
    assert (r.get_json()["queue"], r.get_json()["assignee"]) == ("billing", None)
    assert hub.redis.zscore(hub.keys.queue("general"), cid) is None
    assert hub.redis.zscore(hub.keys.queue("billing"), cid) == before  # same order formula
    assert assignment.load(hub, "an") == 0
    # the billing agent now sees it and can take it; the support agent no longer sees it
    assert client.get(f"/api/v1/conversations/{cid}", headers=auth(crew["bich"])).status_code \
        == 200
    assert client.get(f"/api/v1/conversations/{cid}", headers=auth(crew["an"])).status_code \
        == 404
    assert claim(client, crew["bich"], cid).status_code == 200
    ev = events(hub, "conversation.assigned")
    assert (ev[-2]["team"], ev[-2]["queue"], ev[-2]["by"]) == ("billing", "billing", "an")


def test_transfer_to_a_team_and_one_of_its_agents(client, hub, crew):
    cid = new_conversation(client, hub)
    r = assign(client, crew["cuong"], cid, assignee="bich", team="billing")
    assert r.status_code == 200
    assert (r.get_json()["queue"], r.get_json()["assignee"]) == ("billing", "bich")
    assert assignment.load(hub, "bich") == 1


# -- presence --------------------------------------------------------------------------------
def test_activity_and_the_toggle_set_presence(client, hub, crew):
    assert presence.get(hub, "an").status == "offline"  # never seen
    assert client.get("/api/v1/conversations", headers=auth(crew["an"])).status_code == 200
    assert presence.get(hub, "an").status == "online"
    assert events(hub, "presence.changed") == [
        {"type": "presence.changed", "user": "an", "status": "online",
         "ts": events(hub, "presence.changed")[0]["ts"]}]
    # away by her own choice: activity does not undo it
    out = set_presence(client, crew["an"], "away")
    assert (out["status"], out["manual"]) == ("away", True)
    t = presence.now_ms() + 60_000
    assert presence.touch(hub, "an", now=t) is False
    assert presence.get(hub, "an").status == "away"
    # everyone signed in sees everyone's presence
    items = client.get("/api/v1/presence", headers=auth(crew["bich"])).get_json()["items"]
    assert {i["user"]: i["status"] for i in items}["an"] == "away"
    assert client.put("/api/v1/presence", json={"status": "busy"},
                      headers=auth(crew["an"])).status_code == 400


def test_a_console_session_counts_as_activity_cheaply(client, hub, crew):
    """A console user is online from their first request; a console polling every few seconds
    costs one presence write per user per half minute, not one per request."""
    calls = []
    script = hub.scripts.presence
    hub.scripts.presence = lambda **kw: calls.append(kw["args"][1]) or script(**kw)
    cookie, _ = users.start_session(hub, "an")
    client.set_cookie("td_session", cookie)
    for _ in range(5):
        assert client.get("/api/v1/presence").status_code == 200
    assert presence.get(hub, "an").status == "online"
    assert calls == ["touch"]


def test_presence_times_out_away_then_offline(client, hub, crew):
    t0 = presence.now_ms()
    presence.touch(hub, "an", now=t0)
    assert assignment.presence_tick(hub, now=t0 + 9 * 60_000) == []
    assert assignment.presence_tick(hub, now=t0 + 10 * 60_000 + 1) == [("an", "away")]
    assert assignment.presence_tick(hub, now=t0 + 11 * 60_000) == []  # once
    assert assignment.presence_tick(hub, now=t0 + 30 * 60_000 + 1) == [("an", "offline")]
    # activity after a timeout brings her back (it was not her choice)
    assert presence.touch(hub, "an", now=t0 + 31 * 60_000) is True
    assert presence.get(hub, "an").status == "online"
    assert [e["status"] for e in events(hub, "presence.changed")] == [
        "online", "away", "offline", "online"]


def test_going_offline_hands_conversations_back(client, hub, crew):
    a, b = new_conversation(client, hub), new_conversation(client, hub)
    set_presence(client, crew["an"], "online")
    for cid in (a, b):
        assert claim(client, crew["an"], cid).status_code == 200
    set_presence(client, crew["an"], "offline")
    assert "assignee" not in conv(hub, a) and "assignee" not in conv(hub, b)
    assert assignment.load(hub, "an") == 0
    released = [e for e in events(hub, "conversation.assigned") if e["assignee"] is None]
    assert {e["conversation_id"] for e in released} == {a, b}
    assert all(e["by"] == "an" and e["reason"] == "offline" for e in released)
    entries, _ = audit.entries(hub, action="conversation.assigned", target=a)
    assert entries[0]["details"]["assignee"] is None


@auto("off")
def test_timed_offline_releases_only_where_the_team_says_so(client, hub, crew):
    """billing keeps its conversations when its agent goes offline (release_on_offline:
    false); support's go back to the queue."""
    support = new_conversation(client, hub)
    billing = new_conversation(client, hub, "tôi muốn nạp thẻ")
    assert conv(hub, billing)["queue"] == "billing"
    assert claim(client, crew["an"], support).status_code == 200
    assert claim(client, crew["bich"], billing).status_code == 200
    t0 = presence.now_ms()
    for name in ("an", "bich"):
        presence.touch(hub, name, now=t0)
    changes = assignment.presence_tick(hub, now=t0 + 30 * 60_000 + 1)
    assert sorted(changes) == [("an", "offline"), ("bich", "offline")]
    assert "assignee" not in conv(hub, support)
    assert conv(hub, billing)["assignee"] == "bich"
    ev = [e for e in events(hub, "conversation.assigned") if e["assignee"] is None]
    assert [(e["conversation_id"], e["by"]) for e in ev] == [(support, "system")]


# -- auto-assignment -------------------------------------------------------------------------
@auto("round_robin")
def test_round_robin_across_online_agents(client, hub, crew):
    for name in ("an", "dung", "em"):
        set_presence(client, crew[name], "online")
    # cuong (support) is offline: skipped
    cids = [new_conversation(client, hub) for _ in range(6)]
    feed.run_pending(hub, ["assign"])
    assert [conv(hub, c).get("assignee") for c in cids] == ["an", "dung", "em"] * 2
    assert all(e["by"] == "system" and e["team"] == "support"
               for e in events(hub, "conversation.assigned"))
    # the billing queue is not auto-assigned
    billing = new_conversation(client, hub, "nạp thẻ không được")
    feed.run_pending(hub, ["assign"])
    assert "assignee" not in conv(hub, billing)


@auto("least_loaded")
def test_least_loaded_within_capacity(client, hub, crew):
    for name in ("an", "dung", "em"):
        set_presence(client, crew[name], "online")
    mine = [new_conversation(client, hub) for _ in range(3)]
    for cid, name in zip(mine, ("an", "an", "em"), strict=True):
        assert claim(client, crew[name], cid).status_code == 200
    feed.run_pending(hub, ["assign"])  # (the claimed ones stay as they are)
    # loads an 2, dung 0, em 1; ties go by name
    cids = [new_conversation(client, hub) for _ in range(7)]
    feed.run_pending(hub, ["assign"])
    got = [conv(hub, c).get("assignee") for c in cids]
    assert got == ["dung", "dung", "em", "an", "dung", "em", None]  # everyone is at 3
    assert {n: assignment.load(hub, n) for n in ("an", "dung", "em")} == {
        "an": 3, "dung": 3, "em": 3}
    # the waiting one goes to whoever gets room first
    r = client.post(f"/api/v1/conversations/{cids[2]}/resolve", headers=auth(crew["em"]))
    assert r.status_code == 200
    feed.run_pending(hub, ["assign"])
    assert conv(hub, cids[6])["assignee"] == "em"


@auto("round_robin")
def test_nobody_online_then_someone_comes_online(client, hub, crew):
    set_presence(client, crew["dung"], "away")  # away is not online
    cids = [new_conversation(client, hub) for _ in range(2)]
    feed.run_pending(hub, ["assign"])
    assert all("assignee" not in conv(hub, c) for c in cids)
    # the first request of the day brings an online; the waiting ones go to her
    client.get("/api/v1/presence", headers=auth(crew["an"]))
    feed.run_pending(hub, ["assign"])
    assert [conv(hub, c).get("assignee") for c in cids] == ["an", "an"]


@auto("round_robin")
def test_redelivered_events_do_not_assign_twice(client, hub, crew):
    for name in ("an", "dung"):
        set_presence(client, crew[name], "online")
    cids = [new_conversation(client, hub) for _ in range(3)]
    raced = new_conversation(client, hub)
    assert claim(client, crew["em"], raced).status_code == 200  # a manual claim got there first
    feed.run_pending(hub, ["assign"])
    before = {c: conv(hub, c).get("assignee") for c in cids + [raced]}
    assert before[raced] == "em"
    assigned = len(events(hub, "conversation.assigned"))
    pointer = hub.redis.get(hub.keys.team_pointer("support"))
    # the reactor crashed before acknowledging: everything is delivered again
    hub.redis.xgroup_setid(hub.keys.feed(), "assign", "0")
    assert feed.run_pending(hub, ["assign"]) > 0
    assert {c: conv(hub, c).get("assignee") for c in before} == before
    assert len(events(hub, "conversation.assigned")) == assigned
    assert hub.redis.get(hub.keys.team_pointer("support")) == pointer
    assert sum(assignment.load(hub, n) for n in ("an", "dung", "em")) == 4


@auto("round_robin")
def test_released_conversations_go_to_someone_else(client, hub, crew):
    """An agent going offline: their conversations go to the online colleagues; one handed
    back by hand does not come straight back to the same agent."""
    for name in ("an", "dung"):
        set_presence(client, crew[name], "online")
    cid = new_conversation(client, hub)
    feed.run_pending(hub, ["assign"])
    assert conv(hub, cid)["assignee"] == "an"
    set_presence(client, crew["an"], "offline")
    feed.run_pending(hub, ["assign"])
    assert conv(hub, cid)["assignee"] == "dung"
    set_presence(client, crew["an"], "online")
    assert assign(client, crew["dung"], cid, assignee=None).status_code == 200
    feed.run_pending(hub, ["assign"])
    assert conv(hub, cid)["assignee"] == "an"


@auto("least_loaded")
def test_the_assign_tick_drops_ghost_load_and_hands_out_waiting_work(client, hub, crew):
    """Safety net: an erased customer's conversation stops counting against its agent, and
    waiting conversations go out even if the reactor missed its moment."""
    from tongdai.core.workspace import privacy

    set_presence(client, crew["an"], "online")
    cids = [new_conversation(client, hub) for _ in range(3)]
    for cid in cids:
        assert claim(client, crew["an"], cid).status_code == 200
    waiting = new_conversation(client, hub)
    privacy.erase_customer(hub, conv(hub, cids[0])["customer"], actor="admin")
    assert assignment.load(hub, "an") == 2  # erasing frees her load at once
    hub.redis.sadd(hub.keys.user_load("an"), "999999")  # a ghost (a conversation long gone)
    assert assignment.load(hub, "an") == 3  # a ghost still counts...
    assert assignment.assign_tick(hub) == 1  # ...until the tick; then she has room again
    assert assignment.load(hub, "an") == 3
    assert conv(hub, waiting)["assignee"] == "an"


def test_reopened_conversation_counts_again_and_leaves_an_offline_agent(client, hub, crew):
    """A customer writing again reopens the conversation with its agent (back in their
    load); if that agent is offline it goes back to the queue."""
    n = next(_ids)
    post(client, tg_update(n, n, 1, "xin chào"))
    drain_all(hub)
    customer = hub.redis.hget(hub.keys.identity_index("tg-test"), str(n)).decode()
    cid = hub.redis.hget(hub.keys.customer(customer), "conv").decode()
    assert claim(client, crew["an"], cid).status_code == 200
    client.post(f"/api/v1/conversations/{cid}/resolve", headers=auth(crew["an"]))
    assert assignment.load(hub, "an") == 0
    set_presence(client, crew["an"], "offline")  # her shift ends
    post(client, tg_update(n + 100_000, n, 2, "lại là tôi", date=1700000100))
    drain_all(hub)
    assert (conv(hub, cid)["status"], conv(hub, cid)["assignee"]) == ("open", "an")
    assert assignment.load(hub, "an") == 1
    feed.run_pending(hub, ["assign"])
    assert "assignee" not in conv(hub, cid)
    assert assignment.load(hub, "an") == 0


def test_teams_list_members_presence_and_load(client, hub, crew):
    set_presence(client, crew["an"], "online")
    cid = new_conversation(client, hub)
    claim(client, crew["an"], cid)
    mine = client.get("/api/v1/teams", headers=auth(crew["an"])).get_json()["items"]
    assert [t["id"] for t in mine] == ["support"]
    members = {m["name"]: m for m in mine[0]["members"]}
    assert set(members) == {"an", "cuong", "dung", "em"}
    assert (members["an"]["status"], members["an"]["load"]) == ("online", 1)
    assert members["dung"]["status"] == "offline"
    everything = client.get("/api/v1/teams", headers=auth(crew["admin"])).get_json()["items"]
    assert [t["id"] for t in everything] == ["support", "billing"]


def test_feed_events_are_json_with_the_agreed_fields(client, hub, crew):
    cid = new_conversation(client, hub)
    claim(client, crew["an"], cid)
    raw = hub.redis.xrevrange(hub.keys.feed(), count=1)[0][1][b"e"]
    ev = orjson.loads(raw)
    assert ev["type"] == "conversation.assigned"
    assert {"conversation_id", "assignee", "team", "by", "ts"} <= set(ev)


# -- status changes racing assignment changes ------------------------------------------------
def _meanwhile(monkeypatch, action):
    """Run ``action`` once, right after ``store.set_status`` has read the conversation."""
    from tongdai.core.pipeline import store

    real, done = store.get_conversation, []

    def read_then_race(hub_, cid):
        conv_ = real(hub_, cid)
        if not done:
            done.append(True)
            action()
        return conv_
    monkeypatch.setattr(store, "get_conversation", read_then_race)


def test_a_resolve_racing_a_transfer_leaves_no_queue_entry_behind(client, hub, crew,
                                                                    monkeypatch):
    from tongdai.core.models import ConversationStatus
    from tongdai.core.pipeline import store

    cid = new_conversation(client, hub)
    _meanwhile(monkeypatch, lambda: assert_ok(
        assign(client, crew["cuong"], cid, assignee=None, team="billing")))
    store.set_status(hub, cid, ConversationStatus.RESOLVED)
    assert (conv(hub, cid)["status"], conv(hub, cid)["queue"]) == ("resolved", "billing")
    assert hub.redis.zscore(hub.keys.queue("billing"), cid) is None  # not waiting anywhere
    assert hub.redis.zscore(hub.keys.queue("general"), cid) is None


def test_two_resolves_at_once_report_it_once(client, hub, crew, monkeypatch):
    from tongdai.core.models import ConversationStatus
    from tongdai.core.pipeline import store

    cid = new_conversation(client, hub)
    assert claim(client, crew["an"], cid).status_code == 200
    _meanwhile(monkeypatch, lambda: store.set_status(hub, cid, ConversationStatus.RESOLVED))
    store.set_status(hub, cid, ConversationStatus.RESOLVED)
    assert [e["conversation_id"] for e in events(hub, "conversation.resolved")] == [cid]
    assert assignment.load(hub, "an") == 0


def assert_ok(r) -> None:
    assert r.status_code == 200, r.get_json()


def test_a_crash_between_going_offline_and_the_release_is_made_good(client, hub, crew):
    """The presence change is written, then the process dies before handing the
    conversations back: the assign reactor does it from the feed event, unless the agent is
    back online by then."""
    a, b = new_conversation(client, hub), new_conversation(client, hub)
    set_presence(client, crew["an"], "online")
    set_presence(client, crew["dung"], "online")
    assert claim(client, crew["an"], a).status_code == 200
    assert claim(client, crew["dung"], b).status_code == 200
    feed.run_pending(hub, ["assign"])
    presence.set_status(hub, "an", "offline")  # ...and no release_all: the crash
    presence.set_status(hub, "dung", "offline")
    presence.set_status(hub, "dung", "online")  # dung is back before the reactor runs
    assert conv(hub, a)["assignee"] == "an"
    feed.run_pending(hub, ["assign"])
    assert "assignee" not in conv(hub, a) and assignment.load(hub, "an") == 0
    assert conv(hub, b)["assignee"] == "dung"


@auto("round_robin")
def test_a_snoozed_conversation_woken_by_the_customer_is_handed_out(client, hub, crew):
    """Woken by the customer's message as by the snooze tick: an auto-assigning team's
    online agent gets it at once (not at the next safety-net tick)."""
    cid = new_conversation(client, hub)  # nobody online: it waits
    feed.run_pending(hub, ["assign"])
    until = presence.now_ms() + 3_600_000
    r = client.post(f"/api/v1/conversations/{cid}/snooze", json={"until_ts": until},
                    headers=auth(crew["cuong"]))
    assert r.status_code == 200, r.get_json()
    set_presence(client, crew["an"], "online")
    feed.run_pending(hub, ["assign"])
    assert "assignee" not in conv(hub, cid)  # asleep: not handed out
    customer = conv(hub, cid)["customer"]
    uid = next(u for u, c in hub.redis.hgetall(hub.keys.identity_index("tg-test")).items()
               if c.decode() == customer).decode()
    n = next(_ids)
    assert post(client, tg_update(n, int(uid), 2, "còn ai không?")).status_code == 200
    drain_all(hub)
    assert conv(hub, cid)["status"] == "open"
    feed.run_pending(hub, ["assign"])
    assert conv(hub, cid)["assignee"] == "an"
