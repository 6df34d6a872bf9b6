"""The KPI dashboard in Debian's chromium: an admin opens it from the console and every chart
has data — volume by channel, response-time distribution, SLA compliance, CSAT trend, top
tags, agents' load (people only: a reply sent with an API token is in the table, marked API) —
in Vietnamese; on a phone (390 px) nothing runs off the side.

Two Telegram customers wrote today (one about a failed top-up: tag payment), agents answered
on time for the SLA policy, one conversation was resolved and rated; the ``kpis`` reactor
read the feed. Skips like tests/console/test_browser.py when chromium or playwright is missing.
"""

from __future__ import annotations

import pytest

from tests.conftest import write_config
from tests.console.conftest import TEAMS
from tests.console.test_browser import chromium, playwright_api, pytestmark, server, sign_in  # noqa: F401  (fixtures and the skip mark)
from tests.helpers import drain_all, post, tg_update
from tongdai.core.models import ConversationStatus
from tongdai.core.pipeline import feed, outbound, store
from tongdai.core.workspace import assignment, kpis
from tongdai.core.workspace.access import Principal

POLICY = """
sla:
  policies:
    - {name: social, channels: [tg-test], first_response: 30m, next_response: 1h}
"""
ADMIN = Principal("admin", "admin", frozenset())
CHARTS = ("chart-volume", "chart-response", "chart-sla", "chart-csat", "chart-tags",
          "chart-agents")


@pytest.fixture
def config_file(tmp_path):
    return write_config(tmp_path / "tongdai.yaml", extra=TEAMS + POLICY)


def a_day_of_work(client, hub) -> None:
    now = hub.redis.time()[0]
    for uid, text in ((71, "nạp thẻ bị lỗi rồi shop ơi"), (72, "đơn hàng của em giao chưa ạ")):
        assert post(client, tg_update(uid, uid, 1, text, date=now)).status_code == 200
    drain_all(hub)
    convs = sorted({e.data["conversation_id"] for e in feed.read_after(hub, "0-0", count=100)
                    if e.type == "message.created"})
    agent_of = {"billing": "bich", "general": "an"}  # (the two may be ingested in any order)
    for cid in convs:
        agent = agent_of[store.get_conversation(hub, cid).queue]
        assignment.assign(hub, ADMIN, cid, agent)
        outbound.create_reply(hub, cid, "Dạ shop kiểm tra ngay ạ", agent, f"r{cid}", agent)
    # a reply sent with an API token (its name is no console user's), as README's curl does
    outbound.create_reply(hub, convs[0], "Đơn của bạn đang giao", "ci-bot", "r-api", "ci-bot")
    store.set_status(hub, convs[1], ConversationStatus.RESOLVED)
    feed.publish(hub, {"type": "csat.rated", "conversation_id": convs[1], "score": 5})
    kpis.react(hub, feed.read_after(hub, "0-0", count=1000))


def test_the_dashboard_draws_every_chart_with_data(client, hub, server, people):  # noqa: F811
    a_day_of_work(client, hub)
    expect = playwright_api.expect
    problems: list[str] = []
    with chromium(problems) as page:
        sign_in(page, server, "admin")
        page.click("#dash-link")
        expect(page.locator("body")).to_have_attribute("data-ready", "1")
        expect(page.locator("#chart-volume h2")).to_have_text("Số hội thoại mới theo kênh")
        lengths = page.evaluate("""() => Object.fromEntries(Object.entries(window.tdCharts)
            .map(([k, u]) => [k, u.data.map((s, i) => (i ? s.filter((v) => v).length : s.length))]))""")
        assert sorted(lengths) == sorted(CHARTS)
        for name, (xs, *series) in lengths.items():  # x values, and a series with data
            assert xs > 0 and max(series) > 0, (name, xs, series)
        expect(page.locator(".dash-chart canvas")).to_have_count(len(CHARTS))
        volume = page.evaluate("window.tdCharts['chart-volume'].data[1]")
        assert sum(volume) == 2  # two conversations on tg-test, today
        expect(page.locator("#chart-tags .u-legend")).to_contain_text("Hội thoại mới")
        expect(page.locator("#dash-cards")).to_contain_text("100.0 %")  # SLA met
        expect(page.locator("#dash-rows tr")).to_have_count(2)  # header + tg-test
        expect(page.locator("#dash-rows")).to_contain_text("tg-test")
        assert "format=csv" in page.get_attribute("#csv-totals", "href")
        # bars of counts stand on 0; the agents' chart has people only, the API token's reply
        # is in the table, marked
        assert page.evaluate("window.tdCharts['chart-tags'].scales.y.min") == 0
        assert page.evaluate("""(() => { const u = window.tdCharts['chart-tags'];
            return u.scales.y.range(u, 1, 3, 'y')[0]; })()""") == 0  # tags of 1 and 3
        assert page.evaluate("window.tdCharts['chart-agents'].data[0].length") == 2  # an, bich
        page.select_option("#dash-by", "agent")
        expect(page.locator("#dash-rows")).to_contain_text("ci-bot (API)")
        # a phone: one column, nothing wider than the screen
        page.set_viewport_size({"width": 390, "height": 844})
        page.wait_for_function("""() => Object.values(window.tdCharts)
            .every((u) => u.width <= 390)""")
        assert page.evaluate("document.documentElement.scrollWidth") <= 390
    assert problems == []
