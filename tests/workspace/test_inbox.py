"""The inbox: unread counts, filters, who sees what, search, SLA due times, pagination.

Every conversation here comes through the real webhook and ingest (Telegram updates posted to
/webhooks/tg-test, drained like a worker), and every assertion goes through /api/v1.
"""

from __future__ import annotations

import time

import orjson
import pytest

from tests.conftest import write_config
from tests.helpers import auth, drain_all, post, tg_update
from tests.workspace.conftest import TEAMS
from tongdai.core.models import AuthorKind
from tongdai.core.pipeline import feed, ingest, outbound, sla
from tongdai.core.workspace import inbox, inbox_index

SLA = """
sla:
  first_response: 2h
  next_response: 4h
  queues:
    billing: {first_response: 1h}
"""
# Platform timestamps of "a moment ago" (never ahead of the hub's clock, which would count
# from its own time instead): due times are exact from them, and hours away.
NOW_S = int(time.time()) - 600
FIRST, NEXT, BILLING_FIRST = 7_200_000, 14_400_000, 3_600_000
OLD_S = 1_700_000_000     # a message from 2023: its wait is long breached
_ids = iter(range(1000, 10**6))


@pytest.fixture
def encrypt(request) -> bool:
    """security.encrypt_message_text (test_search runs both ways)."""
    return getattr(request, "param", False)


@pytest.fixture
def config_file(tmp_path, encrypt):
    extra = TEAMS + SLA + ("security: {encrypt_message_text: true}\n" if encrypt else "")
    return write_config(tmp_path / "tongdai.yaml", extra=extra)


def say(client, uid: int, text: str, name: str = "Lan", date: int = NOW_S) -> None:
    n = next(_ids)
    assert post(client, tg_update(n, uid, n, text, date=date, first_name=name)).status_code == 200


def share_contact(client, uid: int, phone: str, name: str = "Lan") -> None:
    """The customer shares their own contact: Telegram vouches for the number."""
    n = next(_ids)
    body = orjson.dumps({"update_id": n, "message": {
        "message_id": n, "date": NOW_S, "chat": {"id": uid, "type": "private"},
        "from": {"id": uid, "is_bot": False, "first_name": name},
        "contact": {"phone_number": phone, "first_name": name, "user_id": uid}}})
    assert post(client, body).status_code == 200


def conv_of(hub, uid: int) -> str:
    cust = hub.redis.hget(hub.keys.identity_index("tg-test"), str(uid)).decode()
    return hub.redis.hget(hub.keys.customer(cust), "conv").decode()


def get_inbox(client, token: str, **params) -> dict:
    r = client.get("/api/v1/inbox", query_string=params, headers=auth(token))
    assert r.status_code == 200, r.get_json()
    return r.get_json()


def ids(page: dict) -> set[str]:
    return {i["id"] for i in page["items"]}


def item(page: dict, conv: str) -> dict:
    return next(i for i in page["items"] if i["id"] == conv)


def reply(client, token: str, conv: str, text: str = "Chào anh/chị, em xem ngay ạ"):
    r = client.post(f"/api/v1/conversations/{conv}/messages", json={"text": text},
                    headers=auth(token, "new"))
    assert r.status_code == 201, r.get_json()


def feed_events(hub, kind: str) -> list[dict]:
    return [e.data for e in feed.read_after(hub, "0-0", count=10_000) if e.type == kind]


def test_unread_counts_per_conversation_and_queue(client, hub, people):
    for n, text in enumerate(("alo shop", "cho mình hỏi", "có ai không")):
        say(client, 101, text, date=NOW_S + n)
    say(client, 102, "xin chào")
    say(client, 103, "nạp thẻ lỗi rồi")  # tagged payment: the billing queue
    drain_all(hub)
    a, b, c = conv_of(hub, 101), conv_of(hub, 102), conv_of(hub, 103)

    page = get_inbox(client, people["admin"])
    assert {i["id"]: i["unread"] for i in page["items"]} == {a: 3, b: 1, c: 1}
    assert page["counts"] == {"general": 2, "billing": 1}
    first = item(page, a)
    assert first["customer_name"] == "Lan"
    assert first["last_message"]["text"] == "có ai không"
    assert first["last_message"]["direction"] == "in"
    assert first["last_message"]["channel_id"] == "tg-test"
    # an agent of support sees the badges of their own queue only
    assert get_inbox(client, people["an"])["counts"] == {"general": 2}

    r = client.post(f"/api/v1/conversations/{a}/read", headers=auth(people["an"]))
    assert r.status_code == 200 and r.get_json() == {"conversation_id": a, "unread": 0}
    page = get_inbox(client, people["an"])
    assert item(page, a)["unread"] == 0 and page["counts"] == {"general": 1}
    assert [e["by"] for e in feed_events(hub, "conversation.read")] == ["an"]

    reply(client, people["an"], b)  # answering reads it too
    page = get_inbox(client, people["an"])
    assert item(page, b)["unread"] == 0 and page["counts"] == {"general": 0}

    say(client, 101, "còn một việc nữa")
    drain_all(hub)
    page = get_inbox(client, people["an"])
    assert item(page, a)["unread"] == 1 and page["counts"] == {"general": 1}
    # resolving clears the badge
    client.post(f"/api/v1/conversations/{a}/resolve", headers=auth(people["an"]))
    assert get_inbox(client, people["an"])["counts"] == {"general": 0}


def test_a_bot_acknowledgement_neither_reads_nor_answers(client, hub, people):
    say(client, 201, "alo")
    drain_all(hub)
    conv = conv_of(hub, 201)
    outbound.create_reply(hub, conv, "Đã nhận, mã #1", "auto-acknowledgement", "ack:test",
                          "system", author_kind=AuthorKind.BOT)
    it = item(get_inbox(client, people["admin"]), conv)
    assert it["unread"] == 1
    assert it["sla_due_ts"] == NOW_S * 1000 + FIRST
    assert it["last_message"]["direction"] == "out"


def test_filters(client, hub, people):
    say(client, 301, "alo shop", name="Mai")
    say(client, 302, "nạp thẻ không được", name="Hùng")      # billing, priority 50
    say(client, 303, "tin nhắn từ năm ngoái", name="Tú", date=OLD_S)  # breached long ago
    say(client, 304, "hỏi về đơn hàng", name="Vy")
    drain_all(hub)
    c1, c2, c3, c4 = (conv_of(hub, u) for u in (301, 302, 303, 304))
    admin = people["admin"]
    assert ids(get_inbox(client, admin)) == {c1, c2, c3, c4}
    assert ids(get_inbox(client, admin, queue="billing")) == {c2}
    assert ids(get_inbox(client, admin, tag="payment")) == {c2}
    assert ids(get_inbox(client, admin, priority_min=50)) == {c2}
    assert ids(get_inbox(client, admin, channel="tg-test")) == {c1, c2, c3, c4}
    assert ids(get_inbox(client, admin, channel="zalo-x")) == set()
    assert ids(get_inbox(client, admin, sla="due")) == {c1, c2, c3, c4}
    assert ids(get_inbox(client, admin, sla="breached")) == {c3}
    assert item(get_inbox(client, admin), c3)["sla_breached"] is True

    assert client.post(f"/api/v1/conversations/{c1}/claim",
                       headers=auth(people["an"])).status_code == 200
    assert ids(get_inbox(client, people["an"], assignee="me")) == {c1}
    assert ids(get_inbox(client, admin, assignee="an")) == {c1}
    assert ids(get_inbox(client, admin, assignee="none")) == {c2, c3, c4}

    client.post(f"/api/v1/conversations/{c4}/resolve", headers=auth(admin))
    assert ids(get_inbox(client, admin, status="resolved")) == {c4}
    assert ids(get_inbox(client, admin)) == {c1, c2, c3}
    assert ids(get_inbox(client, admin, sla="due")) == {c1, c2, c3}  # resolved: nothing owed

    for bad in ({"status": "closed"}, {"sla": "late"}, {"limit": 0}, {"priority_min": "x"},
                {"cursor": "garbage"}):
        r = client.get("/api/v1/inbox", query_string=bad, headers=auth(admin))
        assert r.status_code == 400, bad


def test_an_agent_sees_only_their_teams_conversations(client, hub, people):
    say(client, 401, "alo shop", name="Mai")
    say(client, 402, "nạp thẻ không được", name="Mai")
    drain_all(hub)
    feed.run_pending(hub, ["search"])  # the search index's reactor
    general, billing = conv_of(hub, 401), conv_of(hub, 402)
    page = get_inbox(client, people["bich"])
    assert ids(page) == {billing} and page["counts"] == {"billing": 1}
    assert ids(get_inbox(client, people["bich"], q="mai")) == {billing}
    assert ids(get_inbox(client, people["bich"], q=general)) == set()
    r = client.get("/api/v1/inbox", query_string={"queue": "general"},
                   headers=auth(people["bich"]))
    assert r.status_code == 404
    r = client.post(f"/api/v1/conversations/{general}/read", headers=auth(people["bich"]))
    assert r.status_code == 404
    assert ids(get_inbox(client, people["an"])) == {general}
    assert ids(get_inbox(client, people["cuong"])) == {general}
    assert ids(get_inbox(client, people["admin"])) == {general, billing}


@pytest.mark.parametrize("encrypt", [False, True], ids=["clear", "encrypted"], indirect=True)
def test_search(client, hub, people, encrypt):
    say(client, 501, "Cho mình hỏi về hoàn tiền đơn hàng", name="Nguyễn Văn A")
    say(client, 502, "我想充值但是失败了", name="王小明")
    say(client, 503, "alo", name="Trần Thị Bích")
    share_contact(client, 503, "+84912345678", name="Trần Thị Bích")
    say(client, 504, "ĐẶT HÀNG GIÚP EM", name="Lê Đức")
    drain_all(hub)
    feed.run_pending(hub, ["search"])  # the search index's reactor
    c1, c2, c3, c4 = (conv_of(hub, u) for u in (501, 502, 503, 504))
    if encrypt:  # what is searched is not stored in clear
        assert b"ho\xc3\xa0n" not in b"".join(hub.redis.hvals(hub.keys.messages(c1)))
    admin = people["admin"]

    assert ids(get_inbox(client, admin, q="nguyen van a")) == {c1}
    assert ids(get_inbox(client, admin, q="NGUYỄN")) == {c1}
    assert ids(get_inbox(client, admin, q="hoan tien")) == {c1}
    assert ids(get_inbox(client, admin, q="充值")) == {c2}
    assert ids(get_inbox(client, admin, q="小明")) == {c2}
    assert ids(get_inbox(client, admin, q="0912 345 678")) == {c3}
    assert ids(get_inbox(client, admin, q="+84 91 234 5678")) == {c3}
    assert ids(get_inbox(client, admin, q="0912 345 679")) == set()
    assert ids(get_inbox(client, admin, q="dat hang")) == {c4}
    assert ids(get_inbox(client, admin, q="duc")) == {c4}
    assert ids(get_inbox(client, admin, q=f"#{c2}")) == {c2}
    assert item(get_inbox(client, admin, q="hoan tien"), c1)["customer_name"] == "Nguyễn Văn A"
    # search and filters together: the billing queue holds c2 only
    assert ids(get_inbox(client, admin, q="hoan tien", queue="billing")) == set()
    assert ids(get_inbox(client, admin, q="充值", queue="billing")) == {c2}


def test_sla_due_cleared_by_an_agent_and_breach_reported_once(client, hub, people):
    say(client, 601, "alo shop")
    say(client, 602, "nạp thẻ lỗi")                 # billing: 5 minutes
    say(client, 603, "hỏi lâu rồi", date=OLD_S)
    say(client, 604, "thư từ tương lai", date=int(time.time()) + 86_400)  # a clock gone wrong
    drain_all(hub)
    general, billing, old = conv_of(hub, 601), conv_of(hub, 602), conv_of(hub, 603)
    admin = people["admin"]
    page = get_inbox(client, admin)
    assert item(page, general)["sla_due_ts"] == NOW_S * 1000 + FIRST
    assert item(page, billing)["sla_due_ts"] == NOW_S * 1000 + BILLING_FIRST
    # a message dated in the future counts from the hub's clock: no extra day to answer
    assert item(page, conv_of(hub, 604))["sla_due_ts"] <= time.time() * 1000 + FIRST
    client.post(f"/api/v1/conversations/{conv_of(hub, 604)}/resolve", headers=auth(admin))

    say(client, 601, "có ai không", date=NOW_S + 30)  # the same wait: the due time stays
    drain_all(hub)
    assert item(get_inbox(client, admin), general)["sla_due_ts"] == NOW_S * 1000 + FIRST
    assert [c for c, _ in sla.due_between(hub)] == [old, billing, general]

    reply(client, people["an"], general)
    it = item(get_inbox(client, admin), general)
    assert it["sla_due_ts"] is None and it["sla_breached"] is False
    assert ids(get_inbox(client, admin, sla="due")) == {billing, old}
    say(client, 601, "cảm ơn, còn một câu nữa", date=NOW_S + 60)  # answered before: next
    drain_all(hub)
    assert item(get_inbox(client, admin), general)["sla_due_ts"] == (NOW_S + 60) * 1000 + NEXT

    # the scheduler's tick: the old one is breached; a second run reports nothing new
    feed.load_reactors()
    tick, every = feed.TICKS["sla"]
    assert every == 15
    assert tick(hub) == 1
    assert tick(hub) == 0
    events = feed_events(hub, "conversation.sla_breached")
    assert [(e["conversation_id"], e["target"]) for e in events] == [(old, "first_response")]
    # later, both other waits breach: one event each, however often the tick runs
    later = (NOW_S + 86_400) * 1000
    assert sla.report_breaches(hub, now=later) == 2
    assert sla.report_breaches(hub, now=later) == 0
    assert len(feed_events(hub, "conversation.sla_breached")) == 3
    # an answer ends the wait; the next message starts a new one, which can breach again
    reply(client, people["bich"], billing)
    assert billing not in ids(get_inbox(client, admin, sla="due"))
    say(client, 602, "vẫn lỗi", date=NOW_S + 90)
    drain_all(hub)
    assert sla.report_breaches(hub, now=later + 86_400_000) == 1  # billing's new wait
    assert sla.report_breaches(hub, now=later + 86_400_000) == 0


def test_sla_targets_per_queue_and_off(hub):
    cfg = hub.config.hub.sla
    assert sla.targets(cfg, "general") == (7200.0, 14400.0)
    assert sla.targets(cfg, "billing") == (3600.0, 14400.0)
    assert sla.lua_targets(cfg) == "7200000\x1f14400000\x1ebilling\x1f3600000\x1f14400000"


@pytest.mark.parametrize("filters", [{}, {"queue": "general"}, {"sla": "due"},
                                     {"tag": "payment"}, {"q": "khach"}],
                         ids=["status", "queue", "sla", "tag", "search"])
def test_pages_return_every_match_exactly_once(client, hub, people, monkeypatch, filters):
    """One ingest batch: the status index holds many equal scores (one timestamp per batch);
    small index chunks force the walk across chunk and tie boundaries."""
    monkeypatch.setattr(inbox_index, "CHUNK", 3)
    for n in range(14):
        text = "nạp thẻ" if n % 3 == 0 else "hỏi đơn"
        say(client, 700 + n, f"{text} {n}", name=f"Khách {n}", date=NOW_S - n)
    drain_all(hub)
    feed.run_pending(hub, ["search"])
    convs = {conv_of(hub, 700 + n): n for n in range(14)}

    def walk(token: str) -> list[str]:
        seen, cursor = [], None
        for _ in range(50):
            params = {**filters, "limit": 2, **({"cursor": cursor} if cursor else {})}
            page = get_inbox(client, token, **params)
            assert len(page["items"]) == 2 or page["next_cursor"] is None  # never short
            seen += [i["id"] for i in page["items"]]
            cursor = page["next_cursor"]
            if cursor is None:
                return seen
        raise AssertionError("no end")

    billing = {c for c, n in convs.items() if n % 3 == 0}
    want_admin = {"queue": set(convs) - billing, "tag": billing}.get(
        next(iter(filters), ""), set(convs))
    seen = walk(people["admin"])
    assert len(seen) == len(set(seen)) and set(seen) == want_admin
    seen = walk(people["an"])  # support: general only; most index entries are filtered out
    assert len(seen) == len(set(seen)) and set(seen) == want_admin - billing


def test_ingest_passes_the_sla_targets_once_per_batch(hub):
    batch = ingest._Batch(hub)
    assert batch.sla == sla.lua_targets(hub.config.hub.sla)


def test_snoozed_conversations_of_a_queue(client, hub, people):
    """Snoozing takes a conversation out of its queue's waiting line, not out of the inbox:
    status=pending with queue= lists it."""
    say(client, 801, "alo shop", name="Mai")
    say(client, 802, "hỏi đơn", name="Vy")
    drain_all(hub)
    sleeping, awake = conv_of(hub, 801), conv_of(hub, 802)
    until = int(time.time() * 1000) + 3_600_000
    r = client.post(f"/api/v1/conversations/{sleeping}/snooze", json={"until_ts": until},
                    headers=auth(people["an"]))
    assert r.status_code == 200, r.get_json()
    admin = people["admin"]
    assert ids(get_inbox(client, admin, status="pending", queue="general")) == {sleeping}
    assert ids(get_inbox(client, admin, status="pending")) == {sleeping}
    assert ids(get_inbox(client, admin, queue="general")) == {awake}


def test_a_snooze_keeps_the_agent_the_wait_and_the_unread(client, hub, people):
    """A snooze is a reminder, not an answer (core/workflow.py): the conversation stays in
    its agent's load, still unread, and its wait keeps running and is reported."""
    from tongdai.core.workspace import assignment

    say(client, 811, "alo, có ai không", name="Mai", date=OLD_S)
    drain_all(hub)
    cid = conv_of(hub, 811)
    an = people["an"]
    assert client.post(f"/api/v1/conversations/{cid}/claim", headers=auth(an)).status_code == 200
    until = int(time.time() * 1000) + 3_600_000
    assert client.post(f"/api/v1/conversations/{cid}/snooze", json={"until_ts": until},
                       headers=auth(an)).status_code == 200
    assert assignment.load(hub, "an") == 1
    snoozed = item(get_inbox(client, an, status="pending", sla="breached"), cid)
    assert snoozed["unread"] == 1 and snoozed["sla_breached"] is True
    assert sla.report_breaches(hub) == 1


def test_a_page_loads_about_a_page_of_conversations(client, hub, people, monkeypatch):
    """Cost: a page of 5 loads 5 conversations (the filters run inside Redis on a page and
    one more), not a whole chunk."""
    for n in range(12):
        say(client, 900 + n, f"hỏi đơn {n}", name=f"Khách {n}", date=NOW_S - n)
    drain_all(hub)
    loaded: list[int] = []
    real = inbox._load
    monkeypatch.setattr(inbox, "_load", lambda h, rows: loaded.append(len(rows)) or real(h, rows))
    page = get_inbox(client, people["admin"], limit=5)
    assert len(page["items"]) == 5 and page["next_cursor"]
    assert sum(loaded) == 5
    rest = get_inbox(client, people["admin"], limit=50, cursor=page["next_cursor"])
    assert len(rest["items"]) == 7 and rest["next_cursor"] is None
