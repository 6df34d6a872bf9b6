"""What another team's customers leave visible: live events after a team change, merge
suggestions."""

from __future__ import annotations

import pytest

from tests.console.conftest import log_in
from tests.console.test_events import open_stream
from tests.helpers import auth
from tests.identity.people import customer_of, tg_contact, tg_text
from tests.identity.people import feed as ingest
from tongdai.core.pipeline import feed
from tongdai.core.workspace import users


@pytest.fixture
def app(app):
    app.config.update(SSE_HEARTBEAT_SECONDS=0.2, SSE_MAX_SECONDS=20)
    return app


def two_conversations(hub) -> dict[str, str]:
    """queue -> conversation: one in general (support), one in billing."""
    ingest(hub, tg_text(4242, "Xin chào, đơn hàng của tôi đâu?"),
           tg_text(5151, "Mình muốn nạp thẻ 100k"))
    return {q: hub.redis.zrange(hub.keys.queue(q), 0, -1)[0].decode()
            for q in ("general", "billing")}


def test_an_open_stream_follows_a_team_change(client, hub, people):
    convs = two_conversations(hub)
    log_in(client, "an")  # support: sees general
    s = open_stream(client)
    assert next(s.events())["event"] == "ready"
    users.update(hub, "an", {"teams": ["billing"]})  # moved to billing, tab still open
    next(f for f in s.frames() if "event" not in f)  # a heartbeat: credentials looked at again
    for q in ("general", "billing"):
        feed.publish(hub, {"type": "message.created", "conversation_id": convs[q],
                           "message_id": "1", "customer_id": "1", "opened": 0, "ts": 1})
    first = next(e for e in s.events() if e["event"] == "message.created")
    assert first["data"]["conversation_id"] == convs["billing"]  # general's was skipped
    s.close()


def test_merge_suggestions_stay_within_the_teams_of_the_caller(client, hub, people):
    ingest(hub, tg_contact(601, "84912345678", name="Lan"))  # general: support's customer
    # someone in billing's queue types Lan's number: a suggestion pairing the two
    ingest(hub, tg_text(602, "nạp thẻ giúp mình, số 0912 345 678"))
    lan, other = customer_of(hub, "tg-test", "601"), customer_of(hub, "tg-test", "602")
    assert lan != other and hub.redis.zcard(hub.keys.queue("billing")) == 1

    def pairs(token: str, path: str) -> list[set[str]]:
        r = client.get(path, headers=auth(token))
        assert r.status_code == 200, r.get_json()
        return [set(s["customer_ids"]) for s in r.get_json()["items"]]

    assert pairs(people["admin"], "/api/v1/suggestions") == [{lan, other}]
    assert pairs(people["admin"], f"/api/v1/customers/{lan}/suggestions") == [{lan, other}]
    # cuong (support) sees Lan, not billing's customer: no pair naming them
    assert pairs(people["cuong"], "/api/v1/suggestions") == []
    assert pairs(people["cuong"], f"/api/v1/customers/{lan}/suggestions") == []
    assert pairs(people["an"], f"/api/v1/customers/{lan}/suggestions") == []


def test_a_merge_of_a_customer_you_cannot_see_is_not_named(client, hub, people):
    ingest(hub, tg_text(801, "Chào shop"), tg_text(802, "Mình là Lan, nick mới"))  # general
    target, source = customer_of(hub, "tg-test", "801"), customer_of(hub, "tg-test", "802")
    r = client.post(f"/api/v1/customers/{target}/merge", headers=auth(people["admin"]),
                    json={"source_customer_id": source, "why": "the same person"})
    merge_id = r.get_json()["id"]
    assert client.get(f"/api/v1/merges/{merge_id}", headers=auth(people["an"])).status_code == 200
    for r in (client.get(f"/api/v1/merges/{merge_id}", headers=auth(people["bich"])),
              client.post(f"/api/v1/merges/{merge_id}/split", json={"why": "x"},
                          headers=auth(people["bich"]))):
        assert r.status_code == 404
        assert r.get_json()["error"]["message"] == f"no merge {merge_id}"  # not the customer
