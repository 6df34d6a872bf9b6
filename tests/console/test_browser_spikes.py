"""Spike alerts in the console, in Debian's chromium: a supervisor signs in and sees the alert
raised earlier as a banner (in Vietnamese) with the link to a broadcast to those customers; a
new alert arrives live on the stream; a dismissed one stays dismissed after a reload. Skips
like tests/console/test_browser.py when chromium or playwright is missing.
"""

from __future__ import annotations

from tests.console.test_browser import chromium, playwright_api, pytestmark, server, sign_in  # noqa: F401  (fixtures and the skip mark)
from tongdai.core.workspace import spikes


def raise_one(hub, dim: str, value: str, count: int) -> None:
    """An alert as the reactor raises it (the detector itself: tests/workspace/test_spikes.py)."""
    end = spikes.current_bucket(hub)
    base = spikes.baseline_of("seasonal", [2, 3, 3, 4, 3])
    check = spikes.Check(dim, value, end, count, base, base.threshold(hub.config.hub.spikes), True)
    assert spikes.raise_alert(hub, check) is not None


def test_a_supervisor_sees_spikes_live_and_opens_the_broadcast(hub, server, people):  # noqa: F811
    raise_one(hub, "tag", "payment", 40)
    expect = playwright_api.expect
    problems: list[str] = []
    with chromium(problems) as page:
        sign_in(page, server, "cuong")
        expect(page.locator("body")).to_have_attribute("data-live", "1")
        banner = page.locator("#spikes .spike")
        expect(banner).to_have_count(1)
        expect(banner).to_contain_text("Tăng đột biến: nhãn payment")
        expect(banner).to_contain_text("40 khách trong 15 phút (thường 3)")
        expect(banner.locator("svg[data-icon=trend]")).to_have_count(1)  # not an emoji
        expect(banner).not_to_contain_text("Kênh")  # a tag alert naming no channel
        link = banner.locator("a.spike-broadcast")
        expect(link).to_have_text("Gửi thông báo cho họ")
        assert link.get_attribute("href").startswith("/console/broadcasts?tag=payment&since=")

        raise_one(hub, "channel", "tg-test", 55)  # live, on the stream
        expect(banner).to_have_count(2)
        expect(banner.first).to_contain_text("Tăng đột biến: kênh tg-test")

        banner.first.locator("button").click()  # dismissed: gone, and after a reload
        expect(banner).to_have_count(1)
        page.reload()
        expect(page.locator("body")).to_have_attribute("data-live", "1")
        expect(banner).to_have_count(1)
        expect(banner).to_contain_text("nhãn payment")
        assert not problems, problems
