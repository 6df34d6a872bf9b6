"""Notes with @mentions, canned replies, escalate and snooze, through the API.

Teams and people come from tests/workspace/conftest.py: an (agent, support), bich (agent,
billing), cuong (supervisor, support), admin. Telegram customers land in queue ``general``
(support) unless they write about a payment.
"""

from __future__ import annotations

import pytest
from rq import Queue

from tests.conftest import write_config
from tests.helpers import auth, drain_all, post, run_outbound, tg_update
from tests.workspace.conftest import TEAMS
from tongdai.core.keys import REPLIES_QUEUE
from tongdai.core.pipeline import feed, outbound
from tongdai.core.workspace import workflow

ENCRYPTED = "security:\n  encrypt_message_text: true\n"


@pytest.fixture
def encrypt_text() -> bool:
    return False  # tests parametrize it to True


@pytest.fixture
def config_file(tmp_path, tg_fake, encrypt_text):
    """The workspace teams, replies going to the fake Telegram server."""
    extra = TEAMS + (ENCRYPTED if encrypt_text else "")
    return write_config(tmp_path / "tongdai.yaml", api_base=tg_fake.base_url, extra=extra)


def customer_writes(client, hub, chat_id: int, text: str, name: str = "Lan",
                    update_id: int | None = None) -> None:
    uid = update_id or chat_id * 100 + len(text)
    post(client, tg_update(uid, chat_id, uid, text, first_name=name))
    drain_all(hub)


def conversation_of(client, token: str, chat_id_order: int = 0) -> dict:
    items = client.get("/api/v1/conversations?status=open", headers=auth(token)).json["items"]
    return sorted(items, key=lambda c: int(c["id"]))[chat_id_order]


def queue_ids(client, token: str, queue: str = "general") -> list[str]:
    r = client.get(f"/api/v1/conversations?queue={queue}", headers=auth(token))
    assert r.status_code == 200
    return [c["id"] for c in r.json["items"]]


def timeline(client, token: str, conv_id: str) -> list[dict]:
    r = client.get(f"/api/v1/conversations/{conv_id}/messages", headers=auth(token))
    assert r.status_code == 200
    return r.json["items"]


def note(client, token: str, conv_id: str, text: str, key: str = "new"):
    return client.post(f"/api/v1/conversations/{conv_id}/notes", json={"text": text},
                       headers=auth(token, key))


def events(hub, type_: str) -> list[dict]:
    return [e.data for e in feed.read_after(hub, "0-0", count=10_000) if e.type == type_]


@pytest.fixture
def conv(client, hub, people) -> dict:
    """A Telegram customer's conversation in queue general (support)."""
    customer_writes(client, hub, 4242, "Xin chào, đơn hàng của tôi đâu?", name="Trần Văn Đức")
    return conversation_of(client, people["admin"])


# -- notes ------------------------------------------------------------------------------------
def test_a_note_is_never_sent_while_a_reply_is(client, hub, people, conv, tg_fake):
    an = people["an"]
    r = note(client, an, conv["id"], "Khách hỏi lần 2 rồi, ưu tiên nhé")
    assert r.status_code == 201
    assert r.json["direction"] == "internal" and r.json["kind"] == "note"
    assert r.json["author"] == {"kind": "agent", "id": "an"}
    reply = client.post(f"/api/v1/conversations/{conv['id']}/messages",
                        json={"text": "Dạ, đơn của anh đang giao ạ"}, headers=auth(an, "new"))
    assert reply.status_code == 201
    # one send job, for the reply only
    assert Queue(REPLIES_QUEUE, connection=hub.redis).job_ids == [f"send-{reply.json['id']}"]
    run_outbound(hub)
    # even a send job made up for the note sends nothing
    assert outbound.deliver(hub, conv["id"], r.json["id"]).startswith("not sent")
    assert [m["text"] for m in tg_fake.sent("sendMessage")] == ["Dạ, đơn của anh đang giao ạ"]
    kinds = [(m["direction"], m["kind"], m["text"]) for m in timeline(client, an, conv["id"])]
    assert ("internal", "note", "Khách hỏi lần 2 rồi, ưu tiên nhé") in kinds
    # a note is not a message to or from the customer: no message.created for it
    assert [e["message_id"] for e in events(hub, "message.created")
            if e["message_id"] == r.json["id"]] == []


def test_the_platform_echo_of_a_reply_does_not_match_a_note(client, hub, people, conv):
    """Ingest matches an echo to a queued *outbound* message with the same text: a note with
    that text is never taken for it."""
    n = note(client, people["an"], conv["id"], "same words").json
    m = hub.redis.hget(hub.keys.messages(conv["id"]), n["id"])
    assert b'"d":"internal"' in m


def test_mentions_reach_the_mentioned_users_only(client, hub, people, conv):
    r = note(client, people["an"], conv["id"],
             "@cuong @bich @ghost @an xem giúp đơn này, cc @admin.")
    assert r.status_code == 201
    (ev,) = events(hub, "note.created")
    # bich (billing) cannot see a support conversation, ghost does not exist, an wrote it
    assert ev["mentions"] == ["cuong", "admin"]
    assert ev["message_id"] == r.json["id"] and ev["author_id"] == "an"
    for name, expected in [("cuong", 1), ("admin", 1), ("bich", 0), ("an", 0)]:
        got = client.get("/api/v1/mentions", headers=auth(people[name]))
        assert got.status_code == 200
        assert len(got.json["items"]) == expected, name
    (item,) = client.get("/api/v1/mentions", headers=auth(people["cuong"])).json["items"]
    assert item["conversation_id"] == conv["id"] and item["message_id"] == r.json["id"]
    assert item["text"].startswith("@cuong") and item["author_id"] == "an"
    # the note's answer says which names reached nobody, and why (the console shows it)
    assert r.json["not_mentioned"] == [{"name": "bich", "why": "cannot_see"},
                                       {"name": "ghost", "why": "unknown"}]
    # and the console's suggestions offer only those who may see it
    offered = client.get(f"/api/v1/conversations/{conv['id']}/mentionable",
                         headers=auth(people["an"])).json["items"]
    assert [u["name"] for u in offered] == ["admin", "cuong"]


def test_mentions_are_newest_first_with_a_cursor(client, hub, people, conv):
    ids = [note(client, people["an"], conv["id"], f"@cuong số {i}").json["id"] for i in range(3)]
    first = client.get("/api/v1/mentions?limit=2", headers=auth(people["cuong"])).json
    assert [i["message_id"] for i in first["items"]] == ids[::-1][:2]
    rest = client.get(f"/api/v1/mentions?limit=2&cursor={first['next_cursor']}",
                      headers=auth(people["cuong"])).json
    assert [i["message_id"] for i in rest["items"]] == ids[:1] and rest["next_cursor"] is None


def test_a_note_is_created_once_per_idempotency_key(client, hub, people, conv):
    first = note(client, people["an"], conv["id"], "@cuong một lần thôi", key="note-1")
    again = note(client, people["an"], conv["id"], "@cuong một lần thôi", key="note-1")
    assert (first.status_code, again.status_code) == (201, 200)
    assert first.json["id"] == again.json["id"]
    notes = [m for m in timeline(client, people["an"], conv["id"]) if m["kind"] == "note"]
    assert len(notes) == 1
    assert len(events(hub, "note.created")) == 1
    assert len(client.get("/api/v1/mentions", headers=auth(people["cuong"])).json["items"]) == 1
    assert note(client, people["an"], conv["id"], "lần hai", key="note-2").status_code == 201
    assert note(client, people["an"], conv["id"], "no key", key=None).status_code == 400


@pytest.mark.parametrize("encrypt_text", [True])
def test_note_text_rests_encrypted_when_message_text_is(client, hub, people, conv):
    n = note(client, people["an"], conv["id"], "Ghi chú bí mật 机密").json
    assert n["text"] == "Ghi chú bí mật 机密"
    blob = hub.redis.hget(hub.keys.messages(conv["id"]), n["id"])
    assert "bí mật".encode() not in blob and "机密".encode() not in blob


# -- canned replies ---------------------------------------------------------------------------
def make_canned(client, token, shortcut, text, team=None, key="new"):
    body = {"shortcut": shortcut, "text": text, "title": shortcut.strip("/")}
    if team:
        body["team"] = team
    return client.post("/api/v1/canned", json=body, headers=auth(token, key))


def render(client, token, conv_id, canned_id):
    return client.post(f"/api/v1/conversations/{conv_id}/canned/{canned_id}/render",
                       headers=auth(token))


def test_canned_render_fills_variables_and_leaves_unknown_ones(client, hub, people, conv):
    text = ("Chào {{customer.name}} (anh {{ customer.first_name }}), em là {{agent.name}}. "
            "Mã hội thoại {{conversation.id}}, đơn {{order.id}}. 您好！")
    c = make_canned(client, people["cuong"], "/chao", text)
    assert c.status_code == 201 and c.json["shortcut"] == "/chao" and c.json["team"] is None
    r = render(client, people["an"], conv["id"], c.json["id"])
    assert r.status_code == 200
    assert r.json["text"] == (f"Chào Trần Văn Đức (anh Đức), em là An. "  # given name last
                              f"Mã hội thoại {conv['id']}, đơn {{{{order.id}}}}. 您好！")


def test_a_customer_name_is_never_expanded_again(client, hub, people):
    customer_writes(client, hub, 777, "hello", name="{{agent.name}} {{conversation.id}}")
    conv = conversation_of(client, people["admin"])
    c = make_canned(client, people["cuong"], "/hi", "Hi {{customer.name}}!").json
    r = render(client, people["an"], conv["id"], c["id"])
    assert r.json["text"] == "Hi {{agent.name}} {{conversation.id}}!"


def test_canned_list_search_and_team_scope(client, hub, people, conv):
    make_canned(client, people["cuong"], "/hoantien", "Hoàn tiền trong 3 ngày", team="support")
    make_canned(client, people["admin"], "/napthe", "Nạp thẻ lỗi: gửi mã giao dịch",
                team="billing")
    make_canned(client, people["cuong"], "/cam-on", "Cảm ơn anh/chị")

    def shortcuts(token, q=""):
        r = client.get(f"/api/v1/canned?q={q}", headers=auth(token))
        assert r.status_code == 200
        return sorted(c["shortcut"] for c in r.json["items"])

    assert shortcuts(people["an"]) == ["/cam-on", "/hoantien"]
    assert shortcuts(people["bich"]) == ["/cam-on", "/napthe"]
    assert shortcuts(people["admin"]) == ["/cam-on", "/hoantien", "/napthe"]
    assert shortcuts(people["an"], "hoan tien") == ["/hoantien"]  # accents and case ignored
    assert shortcuts(people["an"], "/CAM") == ["/cam-on"]
    page = client.get("/api/v1/canned?limit=1", headers=auth(people["admin"])).json
    nxt = client.get(f"/api/v1/canned?limit=5&cursor={page['next_cursor']}",
                     headers=auth(people["admin"])).json
    assert len(page["items"]) == 1 and len(nxt["items"]) == 2 and nxt["next_cursor"] is None


def test_canned_admin_by_role(client, hub, people, conv):
    assert make_canned(client, people["an"], "/x", "agent's").status_code == 403
    mine = make_canned(client, people["cuong"], "/chinhsach", "Chính sách", team="support")
    assert mine.status_code == 201
    # a supervisor manages only their own teams' replies
    assert make_canned(client, people["cuong"], "/y", "y", team="billing").status_code == 404
    assert make_canned(client, people["cuong"], "/chinhsach", "again",
                       team="support").status_code == 409
    cid = mine.json["id"]
    patch = client.patch(f"/api/v1/canned/{cid}", json={"text": "Chính sách đổi trả"},
                         headers=auth(people["an"]))
    assert patch.status_code == 403
    assert client.delete(f"/api/v1/canned/{cid}", headers=auth(people["an"])).status_code == 403
    # bich (billing) does not see a support reply at all
    assert client.delete(f"/api/v1/canned/{cid}", headers=auth(people["bich"])).status_code == 404
    assert render(client, people["bich"], conv["id"], cid).status_code == 404
    ok = client.patch(f"/api/v1/canned/{cid}", json={"text": "Chính sách đổi trả",
                                                      "shortcut": "/doitra"},
                      headers=auth(people["cuong"]))
    assert ok.status_code == 200 and ok.json["shortcut"] == "/doitra"
    assert make_canned(client, people["cuong"], "/chinhsach", "free again",
                       team="support").status_code == 201
    assert client.delete(f"/api/v1/canned/{cid}",
                         headers=auth(people["cuong"])).status_code == 200
    assert client.get(f"/api/v1/canned/{cid}", headers=auth(people["admin"])).status_code == 404
    actions = [e["action"] for e in client.get("/api/v1/audit?action=canned.",
                                               headers=auth(people["admin"])).json["items"]]
    assert actions == ["canned.deleted", "canned.created", "canned.updated", "canned.created"]


def test_creating_canned_twice_with_one_key_creates_once(client, hub, people):
    a = make_canned(client, people["cuong"], "/mot", "một", key="same")
    b = make_canned(client, people["cuong"], "/mot", "một", key="same")
    assert (a.status_code, b.status_code) == (201, 201) and a.json["id"] == b.json["id"]
    assert len(client.get("/api/v1/canned", headers=auth(people["an"])).json["items"]) == 1


# -- raise priority ---------------------------------------------------------------------------
def test_raise_priority_moves_the_conversation_to_the_front(client, hub, people):
    customer_writes(client, hub, 1001, "câu hỏi thứ nhất")
    customer_writes(client, hub, 1002, "câu hỏi thứ hai")
    first, second = queue_ids(client, people["an"])
    r = client.post(f"/api/v1/conversations/{second}/raise-priority", json={"why": "khách VIP"},
                    headers=auth(people["an"]))
    assert r.status_code == 200
    assert r.json["priority"] == 90 and r.json["priority_reason"] == "raised by an"
    assert queue_ids(client, people["an"]) == [second, first]
    line = timeline(client, people["an"], second)[0]
    assert (line["direction"], line["kind"], line["text"]) == (
        "internal", "system", "an raised the priority to 90 — khách VIP")
    assert line["author"] == {"kind": "system", "id": "an"}
    (ev,) = events(hub, "conversation.priority_changed")
    assert ev["conversation_id"] == second and ev["by"] == "an" and ev["priority"] == 90
    (entry,) = client.get("/api/v1/audit?action=conversation.priority_raised",
                          headers=auth(people["admin"])).json["items"]
    assert entry["actor"] == "an" and entry["target"] == second
    assert "khách VIP" not in str(entry)  # the reason stays in the timeline
    # a higher priority is never lowered
    hub.redis.hset(hub.keys.conversation(first), "priority", 95)
    again = client.post(f"/api/v1/conversations/{first}/raise-priority", json={},
                        headers=auth(people["cuong"]))
    assert again.json["priority"] == 95


def test_another_teams_agent_gets_404(client, hub, people, conv):
    bich = people["bich"]
    cid = conv["id"]
    c = make_canned(client, people["cuong"], "/chao", "Chào {{customer.name}}").json
    assert note(client, bich, cid, "@an hello").status_code == 404
    for path, body in [("raise-priority", {"why": "x"}), ("snooze", {"until_ts": conv["created_ts"] + 86400_000})]:
        r = client.post(f"/api/v1/conversations/{cid}/{path}", json=body, headers=auth(bich))
        assert r.status_code == 404, path
    assert render(client, bich, cid, c["id"]).status_code == 404
    assert events(hub, "note.created") == [] and events(hub, "conversation.snoozed") == []


# -- snooze -----------------------------------------------------------------------------------
def snooze(client, token, conv_id, until_ts):
    return client.post(f"/api/v1/conversations/{conv_id}/snooze", json={"until_ts": until_ts},
                       headers=auth(token))


def test_snooze_leaves_the_queue_and_the_tick_brings_it_back(client, hub, people, conv):
    an, cid = people["an"], conv["id"]
    until = conv["created_ts"] + 10 * 86400_000
    r = snooze(client, an, cid, until)
    assert r.status_code == 200
    assert r.json["status"] == "pending" and r.json["snoozed_until_ts"] == until
    assert queue_ids(client, an) == []
    (ev,) = events(hub, "conversation.snoozed")
    assert ev["until_ts"] == until and ev["by"] == "an"
    assert workflow.wake_snoozed(hub, now=until - 1) == 0
    assert queue_ids(client, an) == []
    assert workflow.wake_snoozed(hub, now=until) == 1
    got = client.get(f"/api/v1/conversations/{cid}", headers=auth(an)).json
    assert got["status"] == "open" and got["snoozed_until_ts"] is None
    assert queue_ids(client, an) == [cid]
    assert [e["conversation_id"] for e in events(hub, "conversation.open")] == [cid]
    assert workflow.wake_snoozed(hub, now=until + 1) == 0  # idempotent
    assert hub.redis.zcard(hub.keys.snoozes()) == 0


def test_a_customer_message_wakes_a_snoozed_conversation(client, hub, people, conv):
    an, cid = people["an"], conv["id"]
    until = conv["created_ts"] + 86400_000
    snooze(client, an, cid, until)
    assert queue_ids(client, an) == []
    customer_writes(client, hub, 4242, "Alo, còn ai không?", name="Trần Văn Đức")
    got = client.get(f"/api/v1/conversations/{cid}", headers=auth(an)).json
    assert got["status"] == "open" and got["snoozed_until_ts"] is None
    assert queue_ids(client, an) == [cid]
    pending = client.get("/api/v1/conversations?status=pending", headers=auth(an)).json
    assert pending["items"] == []
    # the snooze's own time later wakes nothing and clears its entry
    assert workflow.wake_snoozed(hub, now=until) == 0
    assert hub.redis.zcard(hub.keys.snoozes()) == 0


def test_snooze_refuses_the_past_and_resolved_conversations(client, hub, people, conv):
    an, cid = people["an"], conv["id"]
    assert snooze(client, an, cid, 1_000).status_code == 400
    client.post(f"/api/v1/conversations/{cid}/resolve", headers=auth(an))
    assert snooze(client, an, cid, conv["created_ts"] + 86400_000).status_code == 409
    esc = client.post(f"/api/v1/conversations/{cid}/raise-priority", json={},
                      headers=auth(an))
    assert esc.status_code == 409


def test_snoozing_again_for_later_keeps_it_asleep(client, hub, people, conv):
    an, cid = people["an"], conv["id"]
    t0 = conv["created_ts"] + 3600_000
    snooze(client, an, cid, t0)
    snooze(client, an, cid, t0 + 3600_000)
    assert workflow.wake_snoozed(hub, now=t0) == 0
    assert client.get(f"/api/v1/conversations/{cid}", headers=auth(an)).json["status"] == \
        "pending"
    assert workflow.wake_snoozed(hub, now=t0 + 3600_000) == 1


def test_a_canned_create_failing_half_way_leaves_the_shortcut_free(client, hub, people,
                                                                    monkeypatch):
    from tongdai.core.workspace import canned
    from tongdai.core.workspace.access import Principal

    def crash(*a, **kw):
        raise ConnectionError("the process died here")
    monkeypatch.setattr(canned.audit, "record", crash)
    with pytest.raises(ConnectionError):
        canned.create(hub, Principal("cuong", "supervisor", frozenset({"support"})),
                      "/camon", "Cảm ơn anh/chị")
    monkeypatch.undo()
    assert make_canned(client, people["cuong"], "/camon", "Cảm ơn anh/chị").status_code == 201


def test_a_canned_change_racing_its_deletion_does_not_bring_it_back(client, hub, people,
                                                                    monkeypatch):
    from tongdai.core.workspace import canned

    cid = make_canned(client, people["cuong"], "/camon", "Cảm ơn").json["id"]
    real_get, done = canned.get, []

    def get_then_deleted(hub_, p, canned_id):
        c = real_get(hub_, p, canned_id)
        if not done:
            done.append(True)
            canned.delete(hub_, p, canned_id)  # another supervisor, meanwhile
        return c
    monkeypatch.setattr(canned, "get", get_then_deleted)
    r = client.patch(f"/api/v1/canned/{cid}", json={"shortcut": "/thanks"},
                     headers=auth(people["cuong"]))
    assert r.status_code == 409
    monkeypatch.undo()
    assert client.get(f"/api/v1/canned/{cid}", headers=auth(people["cuong"])).status_code == 404
    assert make_canned(client, people["cuong"], "/thanks", "Thanks").status_code == 201
