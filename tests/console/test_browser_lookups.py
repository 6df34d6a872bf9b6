"""The business's data in the customer panel, in a real browser: the shop's orders for the
customer's phone with their payment status coloured, a second system that fails said plainly
(never a spinner that stays), and ↻ fetching again once it is back. Skips like
tests/console/test_browser.py when chromium or playwright is missing."""

from __future__ import annotations

import time

import pytest

from tests.conftest import write_config
from tests.console.conftest import TEAMS
from tests.console.test_browser import chromium, playwright_api, pytestmark, server, sign_in  # noqa: F401  (fixtures and the skip mark)
from tests.fakes.shop_api import API_KEY, FakeShopAPI
from tests.helpers import drain_all, post, tg_update

LOOKUPS = """
lookups:
  orders:
    title: {vi: "Đơn hàng", en: "Orders"}
    url: "SHOP_BASE/v1/orders?phone={phone}"
    headers: {Authorization: "Bearer ${SHOP_API_KEY}"}
    timeout: 2s
    inputs: {phone: {source: phone}}
    rows: orders
    fields:
      - {path: id, label: {vi: "Mã đơn", en: "Order"}}
      - path: "payments[0].status"
        label: {vi: "Thanh toán", en: "Payment"}
        colours: {success: green, pending_bank: amber}
  account:
    title: {vi: "Tài khoản", en: "Account"}
    url: "WALLET_BASE/v1/orders?phone={phone}"
    headers: {Authorization: "Bearer ${SHOP_API_KEY}"}
    timeout: 2s
    inputs: {phone: {source: phone}}
    rows: "orders[0]"
    fields:
      - {path: channel, label: {vi: "Kênh nạp", en: "Channel"}}
"""


@pytest.fixture
def shops(monkeypatch):
    monkeypatch.setenv("SHOP_API_KEY", API_KEY)
    with FakeShopAPI() as shop, FakeShopAPI() as wallet:
        wallet.mode = "fail"
        yield shop, wallet


@pytest.fixture
def config_file(tmp_path, tg_fake, shops):
    extra = LOOKUPS.replace("SHOP_BASE", shops[0].base_url).replace("WALLET_BASE",
                                                                 shops[1].base_url)
    return write_config(tmp_path / "tongdai.yaml", api_base=tg_fake.base_url,
                        extra=TEAMS + extra)


def test_the_panel_shows_the_shops_answer_and_a_failing_system(hub, server, people,  # noqa: F811
                                                               shops):
    from tongdai.webhooks import create_app

    assert post(create_app(hub).test_client(), tg_update(
        21, 777021, 21, "nạp thẻ 100k chưa nhận được xu, sđt 0912 345 678",
        date=int(time.time()))).status_code == 200
    drain_all(hub)
    expect = playwright_api.expect
    problems: list[str] = []
    with chromium(problems) as page:
        sign_in(page, server, "admin")
        page.locator("#conv-list li.conv").first.click()
        orders = page.locator(".lookup[data-lookup=orders]")
        expect(orders.locator("h4")).to_contain_text("Đơn hàng")
        expect(orders.locator(".lookup-row")).to_have_count(2)
        expect(orders.locator(".lookup-row").first.locator("dt")).to_have_text(
            ["Mã đơn", "Thanh toán"])  # the console's language
        expect(orders.locator(".status-amber")).to_have_text("pending_bank")
        expect(orders.locator(".status-green")).to_have_text("success")
        account = page.locator(".lookup[data-lookup=account]")
        expect(account.locator(".lookup-state")).to_have_text(
            "Hệ thống của shop bị lỗi (HTTP 503). Bấm ↻ để thử lại.")

        shops[1].mode = "ok"  # the wallet is back: ↻ fetches again
        page.click(".lookup-refresh")
        expect(account.locator("dd")).to_have_text("momo")
        expect(page.locator(".lookup[data-state=loading]")).to_have_count(0)

        # admin chose no language: an English browser gets an English console, labels too
        page.route("**/console", lambda route: route.continue_(headers={
            **route.request.headers, "accept-language": "en-GB,en;q=0.9"}))
        page.reload()
        expect(page.locator("html")).to_have_attribute("lang", "en")
        page.locator("#conv-list li.conv").first.click()
        expect(orders.locator(".lookup-row").first.locator("dt")).to_have_text(
            ["Order", "Payment"])
    assert problems == []
