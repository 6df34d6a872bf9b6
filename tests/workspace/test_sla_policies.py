"""SLA policies on business-hours calendars: due times across lunch, weekends, Tết and time
zones; the policy chosen by channel and priority; warning then breach, each reported once even
with two schedulers; compliance counted once per wait and read from the API.

Messages come through the real webhook and ingest (Telegram updates dated in the past, so every
instant is exact); the ticks run with an explicit ``now``.
"""

from __future__ import annotations

import datetime as dt
import threading
from zoneinfo import ZoneInfo

import pytest

from tests.conftest import write_config
from tests.helpers import auth, drain_all, post, tg_update
from tongdai.core.config import ConfigInvalid, load_config
from tongdai.core.config_sla import CalendarSection
from tongdai.core.pipeline import outbound, sla
from tongdai.core.pipeline.calendars import Calendar

VN, CN = ZoneInfo("Asia/Ho_Chi_Minh"), ZoneInfo("Asia/Shanghai")
# support (tier 1) escalates to billing (tier 2), billing to managers (tier 3)
TIERED = """
teams:
  - {id: support, queues: [general], auto_assign: "off", escalates_to: [billing]}
  - {id: billing, queues: [billing], auto_assign: "off", tier: 2, escalates_to: [managers]}
  - {id: managers, queues: [managers], auto_assign: "off", tier: 3}
"""
POLICIES = """
calendars:
  office:
    timezone: Asia/Ho_Chi_Minh
    hours: {mon-fri: "08:00-12:00, 13:30-17:30", sat: "08:00-12:00"}
    holidays: [VN]
    closed_dates: ["2025-03-14"]
sla:
  warning_at: 0.8
  policies:
    - {name: urgent, adapters: [telegram], priority_min: 50, first_response: 5m,
       next_response: 10m}
    - {name: social, channels: [tg-test], calendar: office, first_response: 30m,
       next_response: 1h}
"""


def ms(tz: ZoneInfo, *a: int) -> int:
    return int(dt.datetime(*a, tzinfo=tz).timestamp() * 1000)


def local(tz: ZoneInfo, t: int) -> str:
    return dt.datetime.fromtimestamp(t / 1000, tz).strftime("%a %Y-%m-%d %H:%M")


@pytest.fixture
def config_file(tmp_path):
    path = write_config(tmp_path / "tongdai.yaml", extra=TIERED + POLICIES)
    text = path.read_text("utf-8").replace("[general, billing]", "[general, billing, managers]")
    path.write_text(text, "utf-8")
    return path


# -- calendar arithmetic ---------------------------------------------------------------------
def office(**kw) -> Calendar:
    cfg = {"hours": {"mon-fri": "08:00-12:00, 13:30-17:30", "sat": "08:00-12:00"},
           "holidays": ["VN"]} | kw
    return Calendar("office", CalendarSection(**cfg))


def test_working_time_skips_lunch_nights_and_sundays():
    c = office()
    assert local(VN, c.add(ms(VN, 2025, 3, 5, 11, 50), 30 * 60)) == "Wed 2025-03-05 13:50"
    assert local(VN, c.add(ms(VN, 2025, 3, 5, 17, 20), 30 * 60)) == "Thu 2025-03-06 08:20"
    # Saturday morning only, then Monday
    assert local(VN, c.add(ms(VN, 2025, 3, 8, 11, 0), 2 * 3600)) == "Mon 2025-03-10 09:00"
    # a message at night starts counting at opening time
    assert local(VN, c.add(ms(VN, 2025, 3, 5, 22, 0), 15 * 60)) == "Thu 2025-03-06 08:15"
    assert c.working_ms(ms(VN, 2025, 3, 8, 11, 0), ms(VN, 2025, 3, 10, 9, 0)) == 2 * 3600_000
    assert not c.is_open(ms(VN, 2025, 3, 9, 10, 0))  # Sunday
    assert local(VN, c.next_open(ms(VN, 2025, 3, 9, 10, 0))) == "Mon 2025-03-10 08:00"


def test_tet_and_national_days_are_closed():
    c = office()
    # Tết 2025 (the holidays package: Mon 27 Jan - Sat 1 Feb): a message late on the Saturday
    # morning before is answered on Monday 3 February, not during the holiday
    assert local(VN, c.add(ms(VN, 2025, 1, 25, 11, 30), 3600)) == "Mon 2025-02-03 08:30"
    # 30/4, 1/5 and the day off given for 2/5 are holidays: Tuesday evening -> Saturday
    assert local(VN, c.add(ms(VN, 2025, 4, 29, 17, 20), 20 * 60)) == "Sat 2025-05-03 08:10"
    # the team's own dates: closed, or open on a Sunday (workday hours)
    closed = office(closed_dates=["2025-03-05"])
    assert local(VN, closed.add(ms(VN, 2025, 3, 5, 9, 0), 60)) == "Thu 2025-03-06 08:01"
    extra = office(open_dates=["2025-03-09"])
    assert local(VN, extra.add(ms(VN, 2025, 3, 9, 10, 0), 60)) == "Sun 2025-03-09 10:01"


def test_spring_festival_and_time_zones():
    cn = Calendar("cn", CalendarSection(timezone="Asia/Shanghai", hours={"mon-fri": "09:00-18:00"},
                                        holidays=["CN"]))
    # Spring Festival 2025: 28 Jan - 4 Feb closed; the eve's afternoon message waits for the 5th
    assert local(CN, cn.add(ms(CN, 2025, 1, 27, 17, 0), 2 * 3600)) == "Wed 2025-02-05 10:00"
    # ... and Saturday 8 February is a make-up working day (调休)
    assert local(CN, cn.add(ms(CN, 2025, 2, 7, 17, 0), 2 * 3600)) == "Sat 2025-02-08 10:00"
    vn = office()
    # the same instant: 09:30 in Shanghai is 08:30 in Hồ Chí Minh City; both open
    t = ms(CN, 2025, 3, 5, 9, 30)
    assert cn.add(t, 600) == vn.add(t, 600) == t + 600_000
    # 08:30 in Shanghai is 07:30 here: closed in Vietnam until 08:00
    early = ms(CN, 2025, 3, 5, 8, 30)
    assert local(VN, vn.add(early, 600)) == "Wed 2025-03-05 08:10"
    assert local(CN, cn.add(early, 600)) == "Wed 2025-03-05 09:10"
    always = Calendar("24/7", None)
    assert always.add(early, 600) == early + 600_000 and always.is_open(early)


def test_calendar_mistakes_name_the_key_and_the_fix(tmp_path):
    bad = POLICIES.replace('sat: "08:00-12:00"', 'sat: "8h-12h"').replace(
        "calendar: office", "calendar: ofice")
    path = write_config(tmp_path / "bad.yaml", extra=bad)
    with pytest.raises(ConfigInvalid) as e:
        load_config(str(path))
    text = str(e.value)
    assert "calendars.office" in text and "write it like 08:00-17:30" in text
    path = write_config(tmp_path / "bad2.yaml", extra=POLICIES.replace("calendar: office",
                                                                      "calendar: ofice"))
    with pytest.raises(ConfigInvalid) as e:
        load_config(str(path))
    assert "sla.policies[1].calendar" in str(e.value) and "name one under calendars" in str(
        e.value)
    path = write_config(tmp_path / "bad3.yaml", extra=POLICIES.replace("holidays: [VN]",
                                                                      "holidays: [Vietnam]"))
    with pytest.raises(ConfigInvalid) as e:
        load_config(str(path))
    assert "ISO code like VN" in str(e.value)


# -- the policies through ingest -------------------------------------------------------------
_ids = iter(range(5000, 10**6))


def say(client, uid: int, text: str, at_ms: int) -> None:
    n = next(_ids)
    assert post(client, tg_update(n, uid, n, text, date=at_ms // 1000)).status_code == 200


def conv(hub, uid: int) -> dict[str, str]:
    cust = hub.redis.hget(hub.keys.identity_index("tg-test"), str(uid)).decode()
    cid = hub.redis.hget(hub.keys.customer(cust), "conv").decode()
    h = {k.decode(): v.decode() for k, v in hub.redis.hgetall(hub.keys.conversation(cid)).items()}
    return {"id": cid, **h}


def events(hub, kind: str) -> list[dict]:
    from tongdai.core.pipeline import feed

    return [e.data for e in feed.read_after(hub, "0", count=10_000) if e.type == kind]


def test_policy_by_channel_and_priority_on_the_office_calendar(client, hub):
    # Friday 17:10: 30 working minutes -> 20 on Friday, 10 on Saturday; the warning at 80 %
    say(client, 71, "cho em hỏi đơn hàng", ms(VN, 2025, 3, 7, 17, 10))
    # a payment message gets priority 50: the urgent policy, round the clock, 5 min
    say(client, 72, "nạp thẻ không vào", ms(VN, 2025, 3, 7, 17, 0))
    drain_all(hub)
    plain, urgent = conv(hub, 71), conv(hub, 72)
    assert plain["sla_policy"] == "social" and plain["sla_target"] == "first_response"
    assert local(VN, int(plain["sla_due"])) == "Sat 2025-03-08 08:10"
    assert local(VN, int(plain["sla_warn"])) == "Sat 2025-03-08 08:04"
    assert urgent["sla_policy"] == "urgent"
    assert int(urgent["sla_due"]) == ms(VN, 2025, 3, 7, 17, 5)
    assert int(urgent["sla_warn"]) == ms(VN, 2025, 3, 7, 17, 4)
    assert sla.plan(hub).policy("tg-test", 0, "general")[0] == "social"
    assert sla.plan(hub).policy("other", 0, "general")[0] == "queue"


def test_warning_then_breach_once_each_with_two_schedulers(client, hub, admin_token):
    say(client, 81, "alo shop oi", ms(VN, 2025, 3, 7, 17, 0))
    drain_all(hub)
    c = conv(hub, 81)
    warn, due = int(c["sla_warn"]), int(c["sla_due"])
    assert sla.report_breaches(hub, now=warn - 1) == 0
    assert events(hub, "conversation.sla_warning") == []

    def two_schedulers(now: int) -> None:
        ts = [threading.Thread(target=sla.report_breaches, args=(hub,), kwargs={"now": now})
              for _ in range(2)]
        for t in ts:
            t.start()
        for t in ts:
            t.join()

    for _ in range(3):
        two_schedulers(warn)
    got = events(hub, "conversation.sla_warning")
    assert len(got) == 1 and got[0]["conversation_id"] == c["id"]
    assert got[0]["policy"] == "social" and got[0]["target"] == "first_response"
    assert events(hub, "conversation.sla_breached") == []
    for _ in range(3):
        two_schedulers(due + 1)
    assert len(events(hub, "conversation.sla_breached")) == 1
    assert len(events(hub, "conversation.sla_warning")) == 1
    # the inbox shows it late
    r = client.get("/api/v1/inbox", query_string={"sla": "breached"}, headers=auth(admin_token))
    assert [i["id"] for i in r.get_json()["items"]] == [c["id"]]


def test_warning_breach_then_escalation_exactly_once_with_two_schedulers_and_two_reactors(
        client, hub, monkeypatch):
    """The whole chain as it runs in production: two schedulers find the steps, two ``sla``
    reactors (core/workspace/sla_actions.py) read the same feed, each several times."""
    from tongdai.core.config import SlaAction
    from tongdai.core.errors import DeliveryError
    from tongdai.core.pipeline import feed
    from tongdai.core.workspace import sla_actions

    monkeypatch.setattr(hub.config.hub.sla, "on_warning", SlaAction(raise_priority=60))
    monkeypatch.setattr(hub.config.hub.sla, "on_breach", SlaAction(escalate=True))
    say(client, 83, "shop oi tra loi em voi", ms(VN, 2025, 3, 7, 17, 0))
    drain_all(hub)
    c = conv(hub, 83)

    def twice(target, *args, **kw) -> None:
        ts = [threading.Thread(target=target, args=args, kwargs=kw) for _ in range(2)]
        for t in ts:
            t.start()
        for t in ts:
            t.join()

    def reactor() -> None:
        try:
            sla_actions.react(hub, feed.read_after(hub, "0", count=10_000))
        except DeliveryError as exc:  # the other one is escalating it: the batch is retried
            assert exc.retryable

    def two_reactors() -> None:
        twice(reactor)

    for now in (int(c["sla_warn"]), int(c["sla_due"]) + 1):
        for _ in range(2):
            twice(sla.report_breaches, hub, now=now)
            two_reactors()
        if now == int(c["sla_warn"]):  # warned: priority up, still in its tier
            assert (conv(hub, 83)["priority"], conv(hub, 83)["queue"]) == ("60", "general")
    assert len(events(hub, "conversation.sla_warning")) == 1
    assert len(events(hub, "conversation.sla_breached")) == 1
    (up,) = events(hub, "conversation.escalated")
    assert (up["to_queue"], up["by"], up["reason"]) == ("billing", "policy:sla",
                                                        "SLA first_response breached")
    assert conv(hub, 83)["queue"] == "billing"
    assert len(events(hub, "conversation.priority_changed")) == 1


def test_a_breach_found_late_skips_its_warning(client, hub):
    say(client, 82, "alo", ms(VN, 2025, 3, 7, 17, 0))
    drain_all(hub)
    c = conv(hub, 82)
    assert sla.report_breaches(hub, now=int(c["sla_due"]) + 3600_000) == 1
    assert sla.report_breaches(hub, now=int(c["sla_due"]) + 7200_000) == 0
    assert events(hub, "conversation.sla_warning") == []
    assert not hub.redis.zscore(hub.keys.sla_warn(), c["id"])


def test_compliance_counts_each_wait_once_and_the_api_reports_it(client, hub, admin_token):
    start = ms(VN, 2025, 3, 7, 17, 0)
    for uid in (91, 92, 93):
        say(client, uid, "cho em hỏi", start)
    drain_all(hub)
    late = conv(hub, 92)
    assert sla.report_breaches(hub) == 3  # (dated 2025: long breached, counted this hour)
    # an answer after the breach report adds nothing: the wait was counted when it was reported
    outbound.create_reply(hub, late["id"], "dạ", "alice", "k-late", "alice")
    now = hub.redis.time()[0] * 1000
    stats = sla.compliance(hub, now - 3600_000, now + 3600_000)
    assert stats == {("tg-test", "general", "first_response"): {"met": 0, "breached": 3}}
    # a wait answered in time counts as met, once, when the reply is written; the reply is
    # stamped with the hub's clock, so the wait here is due in the future
    say(client, 94, "hello", ms(VN, 2025, 3, 7, 17, 0))
    drain_all(hub)
    c = conv(hub, 94)
    hub.redis.hset(hub.keys.conversation(c["id"]), "sla_due", 2**42)
    outbound.create_reply(hub, c["id"], "dạ", "alice", "k-met", "alice")
    outbound.create_reply(hub, c["id"], "dạ", "alice", "k-met", "alice")  # the same, again
    today = dt.datetime.fromtimestamp(now / 1000, VN).date()
    r = client.get("/api/v1/reports/sla", headers=auth(admin_token), query_string={
        "from": (today - dt.timedelta(days=1)).isoformat(),
        "to": (today + dt.timedelta(days=1)).isoformat()})
    assert r.status_code == 200, r.get_json()
    rows = {(x["channel"], x["queue"], x["target"]): x for x in r.get_json()["items"]}
    row = rows[("tg-test", "general", "first_response")]
    assert (row["met"], row["breached"]) == (1, 3)
    assert row["compliance"] == 0.25 and row["team"] == "support"
    assert client.get("/api/v1/reports/sla").status_code == 401
