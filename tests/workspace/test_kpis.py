"""Support KPIs counted from the change feed (core/workspace/kpis.py) and reported by
``GET /api/v1/reports/kpis``: the arithmetic on a constructed timeline across a weekend and
lunch on the office calendar, a replayed feed counting nothing twice, CSV export, and CSAT /
NPS / bot deflection said "no data yet" until their events come.

The conversation and its messages are real (a Telegram webhook, an agent's reply); the feed
events about them are built with chosen instants, as the feed would carry them on that day.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
from zoneinfo import ZoneInfo

import pytest

from tests.conftest import write_config
from tests.helpers import auth, drain_all, post, tg_update
from tests.workspace.conftest import TEAMS
from tongdai.core.models import AuthorKind
from tongdai.core.pipeline import feed, outbound
from tongdai.core.workspace import kpis

VN = ZoneInfo("Asia/Ho_Chi_Minh")
POLICY = """
calendars:
  office:
    timezone: Asia/Ho_Chi_Minh
    hours: {mon-fri: "08:00-12:00, 13:30-17:30", sat: "08:00-12:00"}
sla:
  policies:
    - {name: social, channels: [tg-test], calendar: office, first_response: 30m,
       next_response: 1h, resolution: 8h}
"""


@pytest.fixture
def config_file(tmp_path):
    return write_config(tmp_path / "tongdai.yaml", extra=TEAMS + POLICY)


def at(*a: int) -> int:
    return int(dt.datetime(*a, tzinfo=VN).timestamp() * 1000)


class Timeline:
    """Feed events about one real conversation, at chosen instants, in feed order."""

    def __init__(self, conv_id: str) -> None:
        self.conv, self.events, self.n = conv_id, [], 0

    def add(self, type_: str, ts: int, **data) -> feed.FeedEvent:
        self.n += 1
        ev = feed.FeedEvent(f"{ts}-{self.n}", {"type": type_, "conversation_id": self.conv,
                                               "ts": ts, **data})
        self.events.append(ev)
        return ev


def conversation(client, hub, uid: int = 61, first: str = "nạp thẻ bị lỗi rồi shop ơi"
                 ) -> tuple[str, list[str]]:
    """A real conversation on Telegram: two customer messages (ids returned). "nạp thẻ" is
    tagged payment and routed to queue billing (team billing); other words to general."""
    for n, text in ((1, first), (2, "shop kiểm tra giúp em với")):
        assert post(client, tg_update(uid * 10 + n, uid, n, text)).status_code == 200
    drain_all(hub)
    events = [e for e in feed.read_after(hub, "0-0", count=1000) if e.type == "message.created"]
    cid = events[-1].data["conversation_id"]
    return cid, [e.data["message_id"] for e in events if e.data["conversation_id"] == cid]


def replied(hub, cid: str, text: str, key: str) -> str:
    msg, _ = outbound.create_reply(hub, cid, text, "an", key, "an")
    return msg.id


def kpi(client, token, **q) -> dict:
    r = client.get("/api/v1/reports/kpis", query_string=q, headers=auth(token))
    assert r.status_code == 200, r.get_data(as_text=True)
    return r.get_json()


def office_week(client, hub) -> tuple[str, Timeline]:
    """Saturday 8 March 2025, 11:50: the customer writes; an is assigned at 11:55 and answers
    on Monday 08:20; the customer writes again at 09:00, an answers at 12:10 (lunch); resolved
    at 14:00, rated 4, reopened at 15:00."""
    cid, (m1, m2) = conversation(client, hub)
    r1, r2 = replied(hub, cid, "Dạ shop kiểm tra ạ", "r1"), replied(hub, cid, "Đã xong ạ", "r2")
    t = Timeline(cid)
    t.add("message.created", at(2025, 3, 8, 11, 50), message_id=m1, opened=1)
    t.add("conversation.assigned", at(2025, 3, 8, 11, 55), assignee="an")
    t.add("message.created", at(2025, 3, 10, 8, 20), message_id=r1, author_id="an")
    t.add("message.created", at(2025, 3, 10, 9, 0), message_id=m2, opened=0)
    t.add("message.created", at(2025, 3, 10, 12, 10), message_id=r2, author_id="an")
    t.add("conversation.resolved", at(2025, 3, 10, 14, 0))
    t.add("csat.rated", at(2025, 3, 10, 14, 5), score=4)
    t.add("conversation.open", at(2025, 3, 10, 15, 0))
    return cid, t


def test_kpis_of_a_timeline_in_business_hours(client, hub, people):
    _, t = office_week(client, hub)
    kpis.react(hub, t.events)
    rep = kpi(client, people["admin"], **{"from": "2025-03-08", "to": "2025-03-11"},
              by="agent")
    tot = rep["total"]["totals"]
    # first response: Sat 11:50-12:00 and Mon 08:00-08:20 (Sunday closed) = 30 min
    assert tot["first_response_avg_s"] == 1800
    # next response: Mon 09:00-12:00; 12:00-12:10 is lunch = 3 h
    assert tot["next_response_avg_s"] == 3 * 3600
    # resolution: Sat 11:50-12:00, Mon 08:00-12:00, 13:30-14:00 = 4 h 40 min
    assert tot["resolution_avg_s"] == 4 * 3600 + 40 * 60
    # handle time from the assignment (Sat 11:55): 5 min + 4 h 30 min
    assert tot["handle_time_avg_s"] == 4 * 3600 + 35 * 60
    assert (tot["conversations"], tot["messages_in"], tot["replies"]) == (1, 2, 2)
    assert (tot["resolved"], tot["reopened"], tot["reopen_rate"]) == (1, 1, 1.0)
    assert (tot["csat_count"], tot["csat_avg"], tot["csat_satisfied"]) == (1, 4.0, 1.0)
    assert tot["nps"] is None and tot["deflection_rate"] is None
    assert rep["available"] == {"sla": False, "csat": True, "nps": False, "deflection": False}
    # per day in Hồ Chí Minh City: Saturday the opening, Monday the rest
    assert rep["buckets"] == [at(2025, 3, 8), at(2025, 3, 9), at(2025, 3, 10)]
    assert rep["total"]["series"]["conversations"] == [1, 0, 0]
    assert rep["total"]["series"]["first_response_avg_s"] == [None, None, 1800]
    (an,) = rep["groups"]
    assert (an["key"], an["totals"]["replies"], an["totals"]["assigned"]) == ("an", 2, 1)
    # the histogram: 30 min falls in (15 min, 30 min], 3 h in (2 h, 4 h]
    h = rep["histogram"]
    assert h["first_response"][h["edges_s"].index(1800)] == 1
    assert h["next_response"][h["edges_s"].index(14400)] == 1
    assert sum(h["first_response"]) == sum(h["next_response"]) == 1
    # percentiles are the bin's upper edge: 90 % answered within 30 min, then within 4 h
    assert (tot["first_response_p50_s"], tot["first_response_p90_s"]) == (1800, 1800)
    assert tot["next_response_p90_s"] == 14400


def test_a_replayed_feed_counts_nothing_twice(client, hub, people):
    _, t = office_week(client, hub)
    kpis.react(hub, t.events[:4])
    kpis.react(hub, t.events[:6])  # a redelivered batch, overlapping
    kpis.react(hub, t.events)
    kpis.react(hub, t.events[2:5])
    once = kpi(client, people["admin"], **{"from": "2025-03-08", "to": "2025-03-11"},
               by="channel")
    assert once["total"]["totals"]["replies"] == 2
    assert once["total"]["totals"]["first_response_avg_s"] == 1800
    assert once["groups"][0]["key"] == "tg-test"
    assert once["groups"][0]["totals"]["messages_in"] == 2
    hour = kpi(client, people["admin"], **{"from": "2025-03-10", "to": "2025-03-11"},
               interval="hour")
    assert hour["total"]["series"]["replies"][8] == 1 and hour["total"]["series"]["replies"][12] == 1


def test_the_real_feed_through_the_reactor_and_a_supervisors_view(client, hub, people):
    billing, _ = conversation(client, hub, 61)
    general, _ = conversation(client, hub, 62, first="đơn hàng của em giao chưa ạ")
    replied(hub, billing, "Dạ shop kiểm tra ạ", "r1")
    replied(hub, general, "Dạ đơn đang giao ạ", "r2")
    replied(hub, general, "Shipper gọi anh/chị trong hôm nay ạ", "r3")
    events = feed.read_after(hub, "0-0", count=1000)
    for _ in range(3):  # delivered three times: counted once
        kpis.react(hub, events)
    admin = kpi(client, people["admin"], by="team")
    assert (admin["total"]["totals"]["conversations"], admin["total"]["totals"]["replies"]) == (
        2, 3)
    assert {g["key"]: g["totals"]["replies"] for g in admin["groups"]} == {"support": 2,
                                                                           "billing": 1}
    # cuong supervises support: the billing conversation is in no figure he sees
    rep = kpi(client, people["cuong"], by="channel")
    tot = rep["total"]["totals"]
    assert (tot["conversations"], tot["messages_in"], tot["replies"]) == (1, 2, 2)
    assert tot["first_response_avg_s"] is not None and tot["next_response_avg_s"] is None
    assert [(g["key"], g["totals"]["replies"]) for g in rep["groups"]] == [("tg-test", 2)]
    assert [g["key"] for g in kpi(client, people["cuong"], by="team")["groups"]] == ["support"]
    # an agent is not shown reports
    r = client.get("/api/v1/reports/kpis", headers=auth(people["an"]))
    assert r.status_code == 403


def test_csat_nps_and_deflection_say_no_data_until_their_events_come(client, hub, people):
    cid, _ = conversation(client, hub)
    now = hub.redis.time()[0] * 1000
    rep = kpi(client, people["admin"])
    assert rep["available"] == {"sla": False, "csat": False, "nps": False, "deflection": False}
    assert rep["total"]["totals"]["csat_avg"] is None
    # an automatic acknowledgement is not the bot taking part; the bot's answer is
    ack, _ = outbound.create_reply(hub, cid, "Shop đã nhận tin ạ", "auto-acknowledgement", "a1",
                                   "system", author_kind=AuthorKind.BOT)
    kpis.react(hub, [e for e in feed.read_after(hub, "0-0", count=1000)
                     if e.data.get("message_id") == ack.id])
    assert kpi(client, people["admin"])["available"]["deflection"] is False
    t = Timeline(cid)
    t.add("selfservice.answered", now)
    t.add("selfservice.handoff", now + 1, why="asked")
    t.add("selfservice.handoff", now + 2, why="asked")  # once per conversation
    t.add("nps.rated", now + 3, score=10)
    t.add("nps.rated", now + 4, score=3)
    t.add("csat.rated", now + 5, score=9)  # not a CSAT score: ignored
    kpis.react(hub, t.events)
    tot = kpi(client, people["admin"])["total"]["totals"]
    assert (tot["bot_conversations"], tot["bot_handoffs"], tot["deflection_rate"]) == (1, 1, 0.0)
    assert (tot["nps_count"], tot["nps"]) == (2, 0.0)
    assert tot["csat_count"] == 0


def test_csv_export_of_every_table(client, hub, people):
    _, t = office_week(client, hub)
    kpis.react(hub, t.events)
    q = {"from": "2025-03-08", "to": "2025-03-11", "by": "channel", "format": "csv"}
    r = client.get("/api/v1/reports/kpis", query_string=q, headers=auth(people["admin"]))
    assert r.status_code == 200 and r.mimetype == "text/csv"
    assert "attachment" in r.headers["Content-Disposition"]
    rows = list(csv.DictReader(io.StringIO(r.get_data(as_text=True))))
    assert [(x["bucket_start"][:10], x["channel"], x["replies"]) for x in rows] == [
        ("2025-03-08", "tg-test", "0"), ("2025-03-09", "tg-test", "0"),
        ("2025-03-10", "tg-test", "2")]
    assert rows[2]["first_response_avg_s"] == "1800.0" and rows[1]["csat_avg"] == ""
    r = client.get("/api/v1/reports/kpis", query_string={**q, "table": "totals"},
                   headers=auth(people["admin"]))
    (row,) = csv.DictReader(io.StringIO(r.get_data(as_text=True)))
    assert (row["channel"], row["resolution_avg_s"], row["reopen_rate"]) == (
        "tg-test", "16800.0", "1.0")
    r = client.get("/api/v1/reports/kpis", query_string={**q, "table": "histogram"},
                   headers=auth(people["admin"]))
    hist = list(csv.DictReader(io.StringIO(r.get_data(as_text=True))))
    assert len(hist) == len(kpis.EDGES_S) + 1
    assert [x["first_responses"] for x in hist if x["to_s"] == "1800"] == ["1"]


def test_bad_ranges_are_refused_with_the_reason(client, hub, people):
    bad = client.get("/api/v1/reports/kpis", query_string={"from": "2025-03-10",
                                                           "to": "2025-03-01"},
                     headers=auth(people["admin"]))
    assert bad.status_code == 400 and "after" in bad.get_json()["error"]["message"]
    long = client.get("/api/v1/reports/kpis", query_string={
        "from": "2025-01-01", "to": "2025-06-01", "interval": "hour"},
        headers=auth(people["admin"]))
    assert long.status_code == 400 and "62 days" in long.get_json()["error"]["message"]


def test_percentiles_are_the_upper_edge_of_their_bin():
    from tongdai.core.workspace.kpi_report import percentile

    c = {"frt_n": 10, "frt_h0": 5, "frt_h3": 4, "frt_h12": 1}  # ≤30 s, (2, 5] min, > a day
    assert percentile(c, "frt", 0.5) == 30
    assert percentile(c, "frt", 0.9) == 300
    assert percentile(c, "frt", 0.95) == 86400  # past the last edge: "more than a day"
    assert percentile({}, "frt", 0.5) is None


def test_dates_at_the_calendars_ends_are_a_bad_request(client, hub, people):
    r = client.get("/api/v1/reports/kpis", query_string={"to": "0001-01-02"},
                   headers=auth(people["admin"]))  # the default start would be before year 1
    assert r.status_code == 400 and "between years" in r.get_json()["error"]["message"]


def test_the_dashboard_page_is_for_supervisors_and_admins(app, client, hub, people):
    from tests.console.conftest import log_in

    log_in(client, "an")
    page = client.get("/console")
    assert "/console/dashboard" not in page.get_data(as_text=True)  # no link for an agent
    refused = client.get("/console/dashboard")
    assert refused.status_code == 403
    assert "giám sát và quản trị" in refused.get_data(as_text=True)
    supervisor = app.test_client()  # another browser
    log_in(supervisor, "cuong")
    assert 'href="/console/dashboard"' in supervisor.get("/console").get_data(as_text=True)
    ok = supervisor.get("/console/dashboard")
    assert ok.status_code == 200 and "uPlot.iife.min.js" in ok.get_data(as_text=True)
    assert "script-src 'self'" in ok.headers["Content-Security-Policy"]
