"""Merging and splitting customers from the console, in Debian's chromium (issue #6: "agents
merge/split from the console").

Two Telegram customers: one shared their own contact (Telegram vouches for the number), the
other typed the same number in a message (a claim anyone could make). That is a merge
*suggestion*, never a merge. A support agent opens the second conversation, sees the suggestion
with its evidence in the customer panel, merges with a reason, then splits it again; the hub's
identity graph follows each click.
"""

from __future__ import annotations

import pytest

from tests.conftest import write_config
from tests.console.conftest import PASSWORD, TEAMS
from tests.console.test_browser import chromium, playwright_api, pytestmark, server, sign_in  # noqa: F401  (fixtures and the skip mark)
from tests.identity.people import feed, tg_contact, tg_text
from tongdai.core.identity import graph as identity
from tongdai.core.pipeline import store
from tongdai.core.workspace import users


@pytest.fixture
def config_file(tmp_path):
    return write_config(tmp_path / "tongdai.yaml", extra=TEAMS)


def test_agent_merges_a_suggested_customer_and_splits_it_again(hub, server):  # noqa: F811
    users.create(hub, users.User(name="an", role="agent", teams=["support"],
                                 display_name="An"), PASSWORD)
    feed(hub, tg_contact(9101, "+84912345678", name="Trần Minh"))
    feed(hub, tg_text(9102, "số của mình là 0912 345 678 nhé", name="Minh Trần"))
    a = store.get_conversation(hub, "1").customer_id
    b = store.get_conversation(hub, "2").customer_id
    assert a != b and identity.suggestions(hub, b), "a suggestion, not a merge"
    expect = playwright_api.expect
    problems: list[str] = []
    with chromium(problems) as page:
        sign_in(page, server, "an")
        page.wait_for_url(server + "/console")

        # open the conversation of the customer who typed the number
        page.locator("#conv-list li.conv", has_text="Minh Trần").first.click()
        panel = page.locator("#customer-body")
        expect(panel.locator(".customer-name")).to_have_text("Minh Trần")
        # the evidence in the console's language, not codes and English (walkthrough 8)
        expect(panel.locator(".evidence li").first).to_contain_text(
            f"điện thoại (khách tự gõ trong tin nhắn) — trùng khớp; chỉ #{a} đã xác minh")
        panel.get_by_role("button", name="Gộp").click()
        dialog = page.locator("#ask")
        dialog.locator("input[name=why]").fill("cùng số điện thoại, khách xác nhận")
        dialog.get_by_role("button", name="Gộp").click()
        split = panel.get_by_role("button", name="Tách")
        expect(split).to_be_visible()
        merged_into = {store.get_customer(hub, a).merged_into,
                       store.get_customer(hub, b).merged_into}
        assert merged_into in ({a, None}, {b, None}) and merged_into != {None}

        # and undo it
        split.click()
        dialog.locator("textarea[name=why]").fill("hai người khác nhau")
        dialog.get_by_role("button", name="Tách").click()
        expect(panel.get_by_role("button", name="Tách")).to_have_count(0)
        assert store.get_customer(hub, a).merged_into is None
        assert store.get_customer(hub, b).merged_into is None
        (m,) = [m for m in identity.merges_of(hub, a) if m["status"] == "split"]
        assert (m["by"], m["why"], m["split"]["by"]) == (
            "an", "cùng số điện thoại, khách xác nhận", "an")
    assert problems == []
