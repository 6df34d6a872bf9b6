"""The admin area in Debian's chromium (#16): an admin opens it from the console, disables
and re-enables the Telegram channel (the hub's record follows), sees its bot token only as
••••last 4, adds a canned reply and creates an agent in a team (a short password first,
refused in Vietnamese). Skips like
tests/console/test_browser.py when chromium or playwright is missing.
"""

from __future__ import annotations

from tests.conftest import TOKEN
from tests.console.test_browser import (  # noqa: F401  (fixtures and the skip mark)
    ARTIFACTS,
    chromium,
    playwright_api,
    pytestmark,
    server,
    sign_in,
)
from tongdai.core.pipeline import channel_admin
from tongdai.core.workspace import canned, users


def test_an_admin_runs_channels_canned_replies_and_users(hub, server, people):  # noqa: F811
    expect = playwright_api.expect
    problems: list[str] = []
    with chromium(problems) as page:
        sign_in(page, server, "admin")
        page.click("#admin-link")
        expect(page.locator("body")).to_have_attribute("data-ready", "1")
        row = page.locator('tr.ch-row[data-id="tg-test"]')
        expect(row.locator(".ch-state")).to_have_text("Đang bật")

        # the bot token: masked, never in the page
        expect(row.locator('.ch-secret[data-key="bot_token"] .ch-mask')).to_have_text(
            "••••" + TOKEN[-4:])
        assert TOKEN not in page.content()

        # disable with a reason, then enable again
        row.locator(".ch-toggle").click()
        page.fill('#ask input[name="why"]', "đổi bot")
        page.click("#ask button[type=submit]")
        expect(row.locator(".ch-state")).to_have_text("Đã tắt")
        expect(row).to_contain_text("đổi bot")
        assert channel_admin.health(hub, ["tg-test"])["tg-test"].disabled["why"] == "đổi bot"
        row.locator(".ch-toggle").click()
        expect(row.locator(".ch-state")).to_have_text("Đang bật")
        assert channel_admin.health(hub, ["tg-test"])["tg-test"].disabled is None

        # a canned reply for the billing team
        form = page.locator("#canned-form")
        form.locator('input[name="shortcut"]').fill("/hoantien")
        form.locator('select[name="team"]').select_option("billing")
        form.locator('textarea[name="text"]').fill("Dạ {{customer.first_name}} ơi, shop "
                                                   "hoàn tiền trong 3 ngày ạ.")
        page.click("#canned-save")
        expect(page.locator("#canned .canned-row")).to_contain_text("/hoantien")
        expect(page.locator("#canned .canned-row")).to_contain_text("Thanh toán")

        # a new agent in team support, who can log in
        page.click("#admin-users summary")
        uf = page.locator("#user-form")
        uf.locator('input[name="name"]').fill("lan")
        uf.locator('input[name="display_name"]').fill("Lan Nguyễn")
        uf.locator('input[name="teams"][value="support"]').check()
        uf.locator('input[name="password"]').fill("ngan")  # refused, said in Vietnamese
        uf.locator("button[type=submit]").click()
        expect(uf.locator(".error")).to_have_text("Mật khẩu cần ít nhất 10 ký tự.")
        uf.locator('input[name="password"]').fill("a-long-password-1")
        uf.locator("button[type=submit]").click()
        expect(page.locator('#users tr.user-row[data-name="lan"]')).to_contain_text(
            "Lan Nguyễn")
        expect(page.locator('#teams .admin-team[data-id="support"]')).to_contain_text(
            "Lan Nguyễn")
        # the assignment mode in words, not the config's code ("phân công off")
        expect(page.locator('#teams .admin-team[data-id="support"]')).to_contain_text(
            "phân công tắt")
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "console-admin.png"), full_page=True)
        # a phone: each channel, user and canned reply is a card, its state and buttons in
        # reach without scrolling sideways
        page.set_viewport_size({"width": 390, "height": 844})
        for sel in (".ch-state", ".ch-remove", ".user-password", ".canned-delete"):
            box = page.locator(sel).first.bounding_box()
            assert box["x"] + box["width"] <= 390, f"{sel} ends at {box['x'] + box['width']} px"
        page.screenshot(path=str(ARTIFACTS / "console-admin-390.png"), full_page=True)
        # the one refusal (the short password), nothing else
        assert problems == [("console error: Failed to load resource: the server responded "
                             "with a status of 400 (Bad Request)")]
    assert users.get(hub, "lan").teams == ["support"] and users.get(hub, "lan").role == "agent"
    from tongdai.core.workspace.access import Principal

    (c,) = canned.search(hub, Principal("admin", "admin"), "/hoantien", None, 10).items
    assert c.team == "billing"
