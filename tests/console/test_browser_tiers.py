"""Escalation in the console, in a real browser: the tier badge, "Escalate" asking for a
reason, "De-escalate", and each step (and the claim) as a quiet system line in the timeline.
Skips like tests/console/test_browser.py when chromium or playwright is missing."""

from __future__ import annotations

import time

import pytest

from tests.conftest import write_config
from tests.console.conftest import TEAMS
from tests.console.test_browser import chromium, playwright_api, pytestmark, server, sign_in  # noqa: F401  (fixtures and the skip mark)
from tests.helpers import drain_all, post, tg_update
from tongdai.core.workspace import tiers


@pytest.fixture
def config_file(tmp_path, tg_fake):
    """support (tier 1) escalates to billing (tier 2)."""
    teams = TEAMS.replace('queues: [general], auto_assign: "off", capacity: 3}',
                          'queues: [general], auto_assign: "off", capacity: 3,\n'
                          '     escalates_to: [billing]}').replace(
        'queues: [billing], auto_assign: "off", capacity: 3}',
        'queues: [billing], auto_assign: "off", capacity: 3, tier: 2}')
    assert "escalates_to" in teams and "tier: 2" in teams
    return write_config(tmp_path / "tongdai.yaml", api_base=tg_fake.base_url, extra=teams)


def test_escalate_and_deescalate_from_the_console(hub, server, people):  # noqa: F811
    from tongdai.webhooks import create_app

    assert post(create_app(hub).test_client(), tg_update(
        9, 777009, 9, "Đơn #88 bị giao nhầm", date=int(time.time()),
        first_name="Lan")).status_code == 200
    drain_all(hub)
    expect = playwright_api.expect
    problems: list[str] = []
    with chromium(problems) as page:
        sign_in(page, server, "admin")
        expect(page.locator("body")).to_have_attribute("data-live", "1")
        page.locator("#conv-list li.conv").first.click()
        expect(page.locator("#conv-meta .tier")).to_have_text("Cấp 1")
        page.keyboard.press("c")
        lines = page.locator("#timeline li.msg.system .system-text")
        expect(lines).to_have_text(["admin đã nhận hội thoại"])  # in the console's language
        expect(page.locator("#conv-actions [data-action=deescalate]")).to_be_hidden()

        page.click("#conv-actions [data-action=escalate]")
        page.fill("#ask textarea[name=reason]", "giao nhầm, cần bồi hoàn")
        page.click("#ask button[type=submit]")
        expect(page.locator("#conv-meta .queue")).to_have_text("Thanh toán")  # billing's team
        expect(page.locator("#conv-meta .tier")).to_have_text("Cấp 2")
        expect(lines.last).to_have_text(
            "admin chuyển cấp từ Hỗ trợ (cấp 1) lên Thanh toán (cấp 2);"
            " admin không còn phụ trách — giao nhầm, cần bồi hoàn")  # (admin: in no team)
        expect(page.locator("#conv-meta .assignee")).to_have_text("chưa giao")
        expect(page.locator("#conv-actions [data-action=escalate]")).to_be_hidden()  # top

        page.click("#conv-actions [data-action=deescalate]")
        page.click("#ask button[type=submit]")  # the reason is optional
        expect(page.locator("#conv-meta .queue")).to_have_text("Hỗ trợ")
        expect(lines).to_have_count(3)
        # a system line is not a note
        expect(page.locator("#timeline li.msg.note")).to_have_count(0)
        # the SLA policy escalating it: named, and its reason said, in Vietnamese (#17)
        tiers.escalate(hub, None, "1", reason="SLA first_response breached", by="policy:sla")
        expect(lines).to_have_count(4)
        expect(lines.last).to_have_text("Quy định SLA chuyển cấp từ Hỗ trợ (cấp 1) lên "
                                        "Thanh toán (cấp 2) — quá hạn phản hồi đầu tiên theo SLA")
    assert problems == []
