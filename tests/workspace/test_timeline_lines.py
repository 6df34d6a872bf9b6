"""Every claim, assignment, transfer, release, resolve and reopen is a line on the timeline.

Lines are internal (never sent), kind ``system``, authored by the actor, written in the same
script or MULTI as the change; the inbox preview and the "repeated messages" priority rule
look past them. (Escalation's lines: tests/workspace/test_tiers.py.)
"""

from __future__ import annotations

import orjson
import pytest

from tests.conftest import write_config
from tests.helpers import auth, drain_all, post, tg_update
from tests.workspace.conftest import TEAMS
from tongdai.core.crypto import TEXT_PREFIX
from tongdai.core.pipeline import feed


def conversation(client, hub, chat: int, text: str = "Cho mình hỏi đơn #55") -> str:
    post(client, tg_update(chat, chat, chat, text, first_name="Lan"))
    drain_all(hub)
    customer = hub.redis.hget(hub.keys.identity_index("tg-test"), str(chat)).decode()
    return hub.redis.hget(hub.keys.customer(customer), "conv").decode()


def lines(client, token: str, cid: str) -> list[tuple[str, str, dict]]:
    """(author, text, payload) of the system lines, oldest first."""
    items = client.get(f"/api/v1/conversations/{cid}/messages",
                       headers=auth(token)).json["items"]
    return [(m["author"]["id"], m["text"], orjson.loads(m["payload"])) for m in reversed(items)
            if (m["direction"], m["kind"], m["author"]["kind"]) == ("internal", "system",
                                                                     "system")]


def test_claim_transfer_release_resolve_reopen_each_write_a_line(client, hub, people):
    an, cuong, bich, admin = (people[n] for n in ("an", "cuong", "bich", "admin"))
    cid = conversation(client, hub, 7101)
    c = f"/api/v1/conversations/{cid}"
    assert client.post(f"{c}/claim", headers=auth(an)).status_code == 200
    assert client.post(f"{c}/assign", json={"assignee": "bich", "team": "billing",
                                            "why": "hỏi về thanh toán"},
                       headers=auth(cuong)).status_code == 200
    assert client.post(f"{c}/assign", json={"assignee": None},
                       headers=auth(bich)).status_code == 200
    assert client.post(f"{c}/resolve", headers=auth(admin)).status_code == 200
    assert client.post(f"{c}/reopen", headers=auth(admin)).status_code == 200
    got = lines(client, admin, cid)
    assert [(who, text) for who, text, _ in got] == [
        ("an", "an took the conversation"),
        ("cuong", ("cuong transferred it from an to bich to team billing (queue billing)"
                   " — hỏi về thanh toán")),
        ("bich", "bich handed it back to the queue"),
        ("admin", "admin resolved the conversation"),
        ("admin", "admin reopened the conversation"),
    ]
    assert got[1][2] == {"action": "assigned", "reason": "assign", "assignee": "bich",
                         "previous": "an", "queue": "billing", "team": "billing"}
    assert [p["action"] for _, _, p in got[3:]] == ["resolved", "reopened"]
    # lines are not messages of the conversation with the customer
    created = [e.data["message_id"] for e in feed.read_after(hub, "0-0", count=1000)
               if e.type == "message.created"]
    assert len(created) == 1
    # a change that changes nothing writes nothing
    assert client.post(f"{c}/reopen", headers=auth(admin)).status_code == 200
    assert client.post(f"/api/v1/conversations/{cid}/claim", headers=auth(bich)).status_code \
        == 200
    assert client.post(f"/api/v1/conversations/{cid}/claim", headers=auth(bich)).status_code \
        == 200
    assert len(lines(client, admin, cid)) == 6


def test_a_refused_claim_writes_no_line(client, hub, people):
    cid = conversation(client, hub, 7102)
    client.post(f"/api/v1/conversations/{cid}/claim", headers=auth(people["an"]))
    r = client.post(f"/api/v1/conversations/{cid}/claim", headers=auth(people["cuong"]))
    assert r.status_code == 409
    assert [t for _, t, _ in lines(client, people["admin"], cid)] == ["an took the conversation"]


def test_the_inbox_preview_is_the_customers_message_not_a_line(client, hub, people):
    cid = conversation(client, hub, 7103, "Shop ơi đơn #77 giao chưa?")
    client.post(f"/api/v1/conversations/{cid}/claim", headers=auth(people["an"]))
    (item,) = client.get("/api/v1/inbox", headers=auth(people["an"])).json["items"]
    assert item["last_message"]["text"] == "Shop ơi đơn #77 giao chưa?"


@pytest.fixture
def config_file(tmp_path):
    """The workspace teams, a "chasing" rule (3 messages in 10 minutes), text encrypted."""
    return write_config(tmp_path / "tongdai.yaml", extra=TEAMS + """
priority:
  rules:
    - {name: chasing, repeated: {messages: 3, within: 10m}, level: 40}
security:
  encrypt_message_text: true
""")


def test_lines_and_notes_are_not_repeats_of_the_customer(client, hub, people):
    cid = conversation(client, hub, 7104, "alo shop")
    client.post(f"/api/v1/conversations/{cid}/claim", headers=auth(people["an"]))
    client.post(f"/api/v1/conversations/{cid}/notes", json={"text": "để mình xem"},
                headers=auth(people["an"], "n1"))
    post(client, tg_update(71041, 7104, 71041, "shop ơi", first_name="Lan"))
    drain_all(hub)
    conv = client.get(f"/api/v1/conversations/{cid}", headers=auth(people["an"])).json
    assert conv["priority"] == 0  # two messages of the customer's, not four
    post(client, tg_update(71042, 7104, 71042, "có ai không", first_name="Lan"))
    drain_all(hub)
    conv = client.get(f"/api/v1/conversations/{cid}", headers=auth(people["an"])).json
    assert (conv["priority"], conv["priority_reason"]) == (40, "chasing: 3 messages within 10m")


def test_a_lines_text_rests_encrypted_and_reads_in_clear(client, hub, people):
    cid = conversation(client, hub, 7105)
    client.post(f"/api/v1/conversations/{cid}/assign", json={"assignee": "an", "why": "VIP"},
                headers=auth(people["cuong"]))
    (blob,) = [b for b in hub.redis.hvals(hub.keys.messages(cid))
               if orjson.loads(b)["d"] == "internal"]
    d = orjson.loads(blob)
    assert d["x"].startswith(TEXT_PREFIX) and d["c"] == "tg-test"
    assert [t for _, t, _ in lines(client, people["an"], cid)] == [
        "cuong assigned it to an — VIP"]
