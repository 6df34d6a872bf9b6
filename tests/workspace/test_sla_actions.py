"""What an SLA warning and a breach set off (core/workspace/sla_actions.py): the priority
raised once, a line in the team's Telegram staff group topic once, outgoing webhook events —
however often the reactor sees the same feed events."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pytest

from tests.conftest import TOKEN, write_config
from tests.helpers import drain_all, post, tg_update
from tongdai.core.pipeline import feed, sla
from tongdai.core.workspace import hooks, sla_actions

VN = ZoneInfo("Asia/Ho_Chi_Minh")
STAFF_CHAT = -1001234567890
EXTRA = f"""
teams:
  - id: support
    queues: [general]
    staff_group: {{channel: tg-test, chat_id: {STAFF_CHAT}}}
  - {{id: billing, queues: [billing]}}
sla:
  first_response: 30m
  on_warning: {{notify: true}}
  on_breach: {{notify: true, raise_priority: 85}}
"""
assert TOKEN


@pytest.fixture
def config_file(tmp_path, tg_fake):
    tg_fake.make_forum(STAFF_CHAT)
    return write_config(tmp_path / "tongdai.yaml", api_base=tg_fake.base_url, extra=EXTRA)


def opened(client, hub) -> tuple[str, int]:
    at = int(dt.datetime(2025, 3, 7, 9, 0, tzinfo=VN).timestamp())
    assert post(client, tg_update(1, 4242, 1, "shop ơi đơn của em đâu", date=at)).status_code == 200
    drain_all(hub)
    cid = hub.redis.hget(hub.keys.customer("1"), "conv").decode()
    return cid, int(hub.redis.hget(hub.keys.conversation(cid), "sla_due"))


def run_reactor(hub) -> None:
    sla_actions.react(hub, feed.read_after(hub, "0-0", count=1000))


def test_breach_raises_priority_and_tells_the_staff_group_once(client, hub, tg_fake):
    cid, due = opened(client, hub)
    assert hub.redis.hget(hub.keys.conversation(cid), "priority") in (None, b"0")
    sla.report_breaches(hub, now=due - 5 * 60_000)  # the warning (80 % of 30 min)
    sla.report_breaches(hub, now=due + 1)
    for _ in range(3):  # the feed is read at least once: replays change nothing
        run_reactor(hub)
    h = hub.redis.hgetall(hub.keys.conversation(cid))
    assert h[b"priority"] == b"85" and h[b"priority_why"] == b"SLA first_response breached"
    assert hub.redis.zscore(hub.keys.queue("general"), cid) < 16 * 1e13  # moved up the queue
    (thread,) = tg_fake.topics(STAFF_CHAT)
    lines = [p for p in tg_fake.posts(STAFF_CHAT, thread) if p.startswith(("⏰", "🚨"))]
    assert lines == ["⏰ SLA: first reply due at 09:30 07/03 (policy queue)",
                     "🚨 SLA breached: first reply was due at 09:30 07/03 (policy queue)"]
    changed = [e for e in feed.read_after(hub, "0-0", count=1000)
               if e.type == "conversation.priority_changed"]
    assert len(changed) == 1


def test_webhook_events_for_warnings_and_breaches(client, hub):
    cid, due = opened(client, hub)
    sla.report_breaches(hub, now=due - 1)
    sla.report_breaches(hub, now=due + 1)
    got = [x for ev in feed.read_after(hub, "0-0", count=1000)
           for x in hooks.integrator_events(hub, ev) if x[0].startswith("sla.")]
    assert [name for name, _ in got] == ["sla.warning", "sla.breached"]
    data = got[1][1]
    assert data["conversation"]["id"] == cid and data["due_ts"] == due
    assert (data["target"], data["policy"], data["queue"], data["channel"]) == (
        "first_response", "queue", "general", "tg-test")
    assert hooks.check_events(["sla.breached"]) == ["sla.breached"]
