"""The resolution target: started by the customer's first message, paused while the team waits
on the customer, resumed with what was left, reported once when passed, counted once when the
conversation is resolved — and a replayed feed changes nothing."""

from __future__ import annotations

import pytest

from tests.conftest import write_config
from tests.helpers import auth, drain_all, post, tg_update
from tests.workspace.conftest import TEAMS
from tongdai.core.models import ConversationStatus
from tongdai.core.pipeline import feed, outbound, sla, sla_resolution, store

POLICY = """
sla:
  policies:
    - {name: social, adapters: [telegram], first_response: 15m, next_response: 30m,
       resolution: 4h}
"""
H4 = 4 * 3600_000
_n = iter(range(100, 10**6))


@pytest.fixture
def config_file(tmp_path):
    return write_config(tmp_path / "tongdai.yaml", extra=TEAMS + POLICY)


def say(client, hub, uid: int, text: str) -> None:
    n = next(_n)
    assert post(client, tg_update(n, uid, n, text)).status_code == 200
    drain_all(hub)


def react(hub) -> list[feed.FeedEvent]:
    """The reactor over the whole feed (it has seen some of it before: a replay)."""
    events = feed.read_after(hub, "0-0", count=10_000)
    sla_resolution.react(hub, events)
    return events


def last(events, kind: str) -> feed.FeedEvent:
    return [e for e in events if e.type == kind][-1]


def clock(hub, cid: str) -> dict[str, int]:
    h = hub.redis.hmget(hub.keys.conversation(cid), ["res_due", "res_left"])
    return {k: int(v) for k, v in zip(("due", "left"), h) if v is not None}


def test_paused_while_waiting_on_the_customer_and_resumed_with_what_was_left(client, hub,
                                                                            admin_token):
    say(client, hub, 51, "đơn hàng em chưa tới")
    cid = hub.redis.hget(hub.keys.customer("1"), "conv").decode()
    ev = react(hub)
    start = last(ev, "message.created").data["ts"]
    assert clock(hub, cid) == {"due": start + H4}
    outbound.create_reply(hub, cid, "dạ shop kiểm tra ạ", "alice", "r1", "alice")
    ev = react(hub)
    replied = last(ev, "message.created").data["ts"]
    assert clock(hub, cid) == {"left": start + H4 - replied}  # paused: nothing runs
    assert hub.redis.zscore(hub.keys.sla_resolve(), cid) is None
    say(client, hub, 51, "vâng ạ")
    ev = react(hub)
    back = last(ev, "message.created").data["ts"]
    assert clock(hub, cid) == {"due": back + start + H4 - replied}
    for _ in range(2):
        react(hub)  # replays
    assert clock(hub, cid) == {"due": back + start + H4 - replied}
    r = client.get("/api/v1/inbox", headers=auth(admin_token))
    (it,) = [i for i in r.get_json()["items"] if i["id"] == cid]
    assert it["resolution_due_ts"] == back + start + H4 - replied

    due = clock(hub, cid)["due"]
    assert sla_resolution.report_breaches(hub, now=due - 1) == 0
    assert sla_resolution.report_breaches(hub, now=due + 1) == 1
    assert sla_resolution.report_breaches(hub, now=due + 2) == 0
    (breach,) = [e.data for e in feed.read_after(hub, "0-0", count=10_000)
                 if e.type == "conversation.sla_breached"]
    assert (breach["target"], breach["policy"], breach["due_ts"]) == ("resolution", "social", due)
    store.set_status(hub, cid, ConversationStatus.RESOLVED)
    react(hub)
    now = hub.redis.time()[0] * 1000
    stats = sla.compliance(hub, min(start, due) - 3600_000, max(now, due) + 3600_000)
    assert stats[("tg-test", "general", "resolution")] == {"met": 0, "breached": 1}
    assert clock(hub, cid) == {}


def test_resolved_in_time_counts_as_met_once(client, hub):
    say(client, hub, 52, "hello")
    cid = hub.redis.hget(hub.keys.customer("1"), "conv").decode()
    react(hub)
    store.set_status(hub, cid, ConversationStatus.RESOLVED)
    for _ in range(3):
        react(hub)
    now = hub.redis.time()[0] * 1000
    stats = sla.compliance(hub, now - 3600_000, now + 3600_000)
    assert stats[("tg-test", "general", "resolution")] == {"met": 1, "breached": 0}
    assert hub.redis.zcard(hub.keys.sla_resolve()) == 0
