"""Broadcasts (#15), who sees what and undoing an opt-out: a supervisor lists and opens only the
broadcasts made within their teams; a customer who answered "stop" and later asks for news is
let back in by a supervisor of their team or an admin (API, CLI), audited, and the next
broadcast reaches them."""

from __future__ import annotations

import time

import pytest
from click.testing import CliRunner

from tests.helpers import auth, drain_all, post, tg_update
from tongdai.core.cli import main
from tongdai.core.pipeline import feed
from tongdai.core.workspace import broadcast as bc
from tongdai.core.workspace import broadcast_send as bs
from tongdai.core.workspace import tokens
from tongdai.core.workspace.access import Principal

ADMIN = Principal("admin", "admin")


@pytest.fixture
def crew(hub, people):
    """The workspace's people, and dao: a supervisor of team billing."""
    return people | {"dao": tokens.create(hub, "dao", "supervisor", ["billing"])}


def _create(client, token: str, name: str, tag: str) -> str:
    r = client.post("/api/v1/broadcasts", headers=auth(token, "new"), json={
        "name": name, "segment": {"tag": tag}, "templates": {"*": "Xin chào"}})
    assert r.status_code == 201, r.json
    return r.json["id"]


def test_a_supervisor_sees_only_the_broadcasts_made_within_their_teams(client, crew):
    mine = _create(client, crew["dao"], "Lỗi nạp thẻ", "payment")  # billing's supervisor
    theirs = _create(client, crew["cuong"], "Giờ mở cửa Tết", "hours")  # support's
    everyone = _create(client, crew["admin"], "Khuyến mãi", "payment")  # an admin's

    def listed(who: str) -> set[str]:
        r = client.get("/api/v1/broadcasts", headers=auth(crew[who]))
        assert r.status_code == 200
        return {b["id"] for b in r.json["items"]}

    assert listed("dao") == {mine}
    assert listed("cuong") == {theirs}
    assert listed("admin") == {mine, theirs, everyone}
    for path in (f"/{mine}", f"/{mine}/report", f"/{everyone}"):  # not told they exist
        assert client.get("/api/v1/broadcasts" + path, headers=auth(crew["cuong"])
                          ).status_code == 404
    assert client.post(f"/api/v1/broadcasts/{mine}/send",
                       headers=auth(crew["cuong"])).status_code == 404
    assert client.get(f"/api/v1/broadcasts/{mine}", headers=auth(crew["dao"])).status_code == 200


def test_an_opted_out_customer_is_let_back_in_audited(hub, client, crew):
    now = int(time.time())
    post(client, tg_update(1, 7001, 1, "nạp thẻ lỗi rồi shop ơi", date=now, first_name="Lan"))
    drain_all(hub)
    cust = hub.redis.hget(hub.keys.identity_index("tg-test"), "7001").decode()
    b = bc.create(hub, ADMIN, "Lỗi nạp thẻ", {"tag": "payment"}, {"*": "Đã khắc phục."})
    bs.send(hub, b.id)
    post(client, tg_update(2, 7001, 2, "Stop!", date=now + 1, first_name="Lan"))
    drain_all(hub)
    feed.run_pending(hub, ["broadcast-optout"])
    url = f"/api/v1/customers/{cust}"
    was = client.get(url, headers=auth(crew["dao"])).json["opted_out"]
    assert was["word"] == "Stop!" and was["channel"] == "tg-test"

    # an agent may not; a supervisor of another team is not told the customer exists
    assert client.delete(url + "/optout", headers=auth(crew["bich"])).status_code == 403
    assert client.delete(url + "/optout", headers=auth(crew["cuong"])).status_code == 404
    assert client.get(url, headers=auth(crew["admin"])).json["opted_out"] == was
    r = client.delete(url + "/optout", headers=auth(crew["dao"]))
    assert r.status_code == 200 and r.json["opted_out"] is None and r.json["id"] == cust
    again = client.delete(url + "/optout", headers=auth(crew["dao"]))  # a retried click
    assert again.status_code == 200 and again.json["opted_out"] is None
    log = client.get("/api/v1/audit?action=customer.opted_in",
                     headers=auth(crew["admin"])).json["items"]
    assert [(e["actor"], e["target"]) for e in log] == [("dao", cust)]  # once
    assert log[0]["details"] == {"opted_out_ts": was["ts"], "channel": "tg-test"}
    assert "Stop" not in str(log)  # the customer's words stay out of the audit log

    # the next broadcast reaches them
    dry = bc.dry_run(hub, ADMIN, bc.create(hub, ADMIN, "", {"tag": "payment"}, {"*": "Ưu đãi"}))
    assert dry["channels"]["tg-test"] == {"would_send": 1, "would_skip": {}}

    # from the command line: opted out again, let in again, and a second run says so
    post(client, tg_update(3, 7001, 3, "hủy", date=now + 2, first_name="Lan"))
    drain_all(hub)
    feed.run_pending(hub, ["broadcast-optout"])
    assert client.get(url, headers=auth(crew["admin"])).json["opted_out"]["word"] == "hủy"
    out = CliRunner().invoke(main, ["customer", "opt-in", cust, "--by", "lead"])
    assert out.exit_code == 0 and "receives broadcasts again" in out.output
    assert "on tg-test" in out.output
    assert client.get(url, headers=auth(crew["admin"])).json["opted_out"] is None
    out = CliRunner().invoke(main, ["customer", "opt-in", cust])
    assert out.exit_code == 0 and "had not opted out" in out.output
    missing = CliRunner().invoke(main, ["customer", "opt-in", "999999"])
    assert missing.exit_code == 1 and "no customer 999999" in missing.output
