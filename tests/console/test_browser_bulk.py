"""Bulk work and hand labels in the Vietnamese console (issue #17), in Debian's chromium: agent
``an`` (team support) ticks three conversations (one box, then shift-click), resolves them in
one go while a colleague has just resolved one of them, and labels another by hand. Skips like
tests/console/test_browser.py when chromium or playwright is missing.
"""

from __future__ import annotations

import pytest

from tests.conftest import write_config
from tests.console.conftest import TEAMS
from tests.console.test_browser import chromium, playwright_api, pytestmark, server, sign_in  # noqa: F401  (fixtures and the skip mark)
from tests.identity.people import config_extra, feed, tg_text
from tongdai.core.models import ConversationStatus
from tongdai.core.pipeline import store
from tongdai.core.workspace import workflow
from tongdai.core.workspace.access import Principal


@pytest.fixture
def config_file(tmp_path):
    return write_config(tmp_path / "tongdai.yaml", extra=config_extra() + TEAMS)


def test_resolve_three_at_once_and_label_one_by_hand(hub, server, people):  # noqa: F811
    for i, text in enumerate(["Đơn #11 sao rồi shop", "Cho mình đổi size", "Đơn #13 giao chưa",
                              "Mình cần xuất hoá đơn"], start=1):
        feed(hub, tg_text(9500 + i, text, name=f"Khách {i}"))
    assert [store.get_conversation(hub, c).queue for c in "1234"] == ["general"] * 4
    expect = playwright_api.expect
    problems: list[str] = []
    with chromium(problems) as page:
        sign_in(page, server, "an")
        expect(page.locator("body")).to_have_attribute("data-live", "1")
        rows = page.locator("#conv-list li.conv")
        expect(rows).to_have_count(4)
        order = rows.evaluate_all("rs => rs.map(r => r.dataset.id)")
        first, last = order.index("1"), order.index("3")
        span = set(order[min(first, last):max(first, last) + 1])
        expect(page.locator("#bulk-actions")).to_be_hidden()

        # one box, then shift-click: the range between is picked
        page.locator("#conv-list li.conv[data-id='1'] input.pick").click()
        page.locator("#conv-list li.conv[data-id='3'] input.pick").click(modifiers=["Shift"])
        picked = page.locator("#conv-list input.pick:checked")
        expect(picked).to_have_count(len(span))
        assert set(picked.evaluate_all("bs => bs.map(b => b.dataset.id)")) == span
        expect(page.locator("#bulk-count")).to_have_text(f"Đã chọn {len(span)}")
        assert page.locator("#conv-view").is_hidden()  # ticking does not open it

        # a colleague resolves #3 meanwhile; the agent presses "Đã xử lý" for all three
        workflow.set_status(hub, Principal("cuong", "supervisor", frozenset({"support"})),
                            "3", ConversationStatus.RESOLVED)
        page.click("#bulk-actions [data-bulk=resolve]")
        expect(page.locator("#toasts .toast.error")).to_have_text(
            f"Đã xử lý: xong {len(span) - 1}/{len(span)} hội thoại. "
            "Không được: #3: Hội thoại #3 đã xử lý xong rồi.")
        expect(rows).to_have_count(4 - len(span))
        expect(page.locator("#bulk-actions")).to_be_hidden()  # #3 left the list: unpicked
        expect(page.locator("#conv-list li.conv[data-id='4']")).to_have_count(1)
        assert store.get_conversation(hub, "1").status == ConversationStatus.RESOLVED

        # a label by hand on #4, suggested as it is typed from the rules' tags
        page.locator("#conv-list li.conv[data-id='4']").click()
        expect(page.locator("#conv-labels .label-chip[data-tag^='lang:'] .chip-x")).to_have_count(0)
        page.click("#conv-labels .label-add")
        page.keyboard.type("khách quen")
        page.keyboard.press("Enter")
        chip = page.locator("#conv-labels .label-chip.hand[data-tag='khách quen']")
        expect(chip).to_have_attribute("title", "an gắn tay")
        expect(page.locator("#timeline li.msg.system .system-text").last).to_have_text(
            "an đã gắn nhãn khách quen")
        assert "khách quen" in store.get_conversation(hub, "4").tags
        expect(page.locator("#customer-body .tag", has_text="khách quen")).to_have_count(1)

        # on a phone the bar wraps inside the screen
        page.set_viewport_size({"width": 390, "height": 800})
        wide = page.evaluate("() => Math.max(...[...document.querySelectorAll("
                             "'#bulk-bar, #bulk-bar *')].map(e => e.getBoundingClientRect().right))")
        assert wide <= 390
        assert problems == []
