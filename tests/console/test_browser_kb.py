"""The knowledge-base page in Debian's chromium (docs/selfservice.md, "Editing articles"): a
supervisor writes an article in Vietnamese (a bad id is refused in Vietnamese first), "try it"
finds it for the question typed without diacritics, the title is edited; an agent reads the
same page with nothing to edit, and on a phone (390 px) nothing runs off the side.

The sample knowledge base (core/selfservice/sample_kb.yaml) is loaded, so the new article has
to win against twelve others. Skips like tests/console/test_browser.py when chromium or
playwright is missing.
"""

from __future__ import annotations

import pytest

from tests.conftest import write_config
from tests.console.conftest import TEAMS
from tests.console.test_browser import chromium, playwright_api, pytestmark, server, sign_in  # noqa: F401  (fixtures and the skip mark)
from tongdai.core.selfservice import articles
from tongdai.core.workspace import users


@pytest.fixture
def config_file(tmp_path):
    return write_config(tmp_path / "tongdai.yaml", extra=TEAMS)


def log_in(page, server: str, name: str) -> None:  # noqa: F811
    sign_in(page, server, name)
    page.wait_for_url("**/console")


def test_a_supervisor_writes_an_article_the_bot_finds_and_an_agent_reads_it(
        hub, server, people):  # noqa: F811
    articles.save(hub, articles.load_file(articles.SAMPLE))
    expect = playwright_api.expect
    problems: list[str] = []
    with chromium(problems) as page:
        log_in(page, server, "cuong")  # supervisor
        page.click("#kb-link")
        expect(page.locator("body")).to_have_attribute("data-ready", "1")
        expect(page.locator("#kb-list .kb-item")).to_have_count(12)
        page.fill("#kb-search", "quen mat khau")  # no diacritics: "Quên mật khẩu"
        expect(page.locator("#kb-list .kb-item")).to_have_count(1)
        page.fill("#kb-search", "忘記密碼")  # typed in Traditional; the article is Simplified
        expect(page.locator("#kb-list .kb-item-title")).to_have_text(["Quên mật khẩu"])
        page.fill("#kb-search", "")

        page.click("#kb-new")
        vi = page.locator('.kb-variant[data-lang="vi"]')
        vi.locator(".kb-title").fill("Xuất hoá đơn VAT cho công ty")
        expect(page.locator("#kb-id")).to_have_value("xuat-hoa-don-vat-cho-cong-ty")
        vi.locator(".kb-body").fill("Dạ anh/chị gửi tên công ty, mã số thuế và email nhận "
                                    "hoá đơn, shop xuất trong 3 ngày làm việc ạ.")
        vi.locator(".kb-keywords").fill("hoá đơn đỏ, xuất hoá đơn, mã số thuế")
        page.fill("#kb-tags", "billing")
        page.fill("#kb-id", "Hoá đơn")  # the API refuses it; the console says why
        page.click("#kb-save")
        expect(page.locator("#kb-error")).to_contain_text("Mã bài “Hoá đơn” không dùng được")
        page.fill("#kb-id", "vat-invoice")
        en = page.locator('.kb-variant[data-lang="en"]')
        en.locator("summary").click()
        en.locator(".kb-title").fill("VAT invoice")  # and no body: refused, said in Vietnamese
        page.click("#kb-save")
        expect(page.locator("#kb-error")).to_have_text("Kiểm tra lại: Nội dung (Tiếng Anh).")
        en.locator(".kb-title").fill("")
        page.click("#kb-save")
        expect(page.locator("#kb-list .kb-item")).to_have_count(13)
        assert articles.get(hub, "vat-invoice").variants["vi"].keywords == (
            "hoá đơn đỏ", "xuất hoá đơn", "mã số thuế")

        page.fill("#kb-try-text", "lam sao xuat hoa don do cho cong ty vay shop")
        page.click("#kb-try")
        verdict = page.locator("#kb-try-verdict")
        expect(verdict).to_contain_text("Bot trả lời bằng bài “Xuất hoá đơn VAT cho công ty” "
                                        "(vat-invoice)")
        expect(verdict).to_contain_text("ngưỡng 30 %")

        page.locator('.kb-item[data-id="vat-invoice"]').click()
        expect(page.locator("#kb-id")).not_to_be_editable()  # an id is fixed once created
        vi.locator(".kb-title").fill("Xuất hoá đơn đỏ (VAT)")
        page.click("#kb-save")
        expect(page.locator('.kb-item[data-id="vat-invoice"]')).to_contain_text(
            "Xuất hoá đơn đỏ (VAT)")
        assert articles.get(hub, "vat-invoice").variants["vi"].title == "Xuất hoá đơn đỏ (VAT)"
        expect(page.locator("#kb-stats")).to_contain_text("Bot chưa trả lời câu nào.")
        # a 1024 px tablet in English (its texts the longest): nothing scrolls sideways
        users.update(hub, "cuong", {"language": "en"})
        page.set_viewport_size({"width": 1024, "height": 768})
        page.reload()
        expect(page.locator("#kb-stats")).to_contain_text("The bot has not answered anything")
        assert page.evaluate("document.scrollingElement.scrollWidth") <= 1024

        # an agent: the same article, nothing to change (a Chinese console: titles in
        # Simplified Chinese where the article has them)
        users.update(hub, "an", {"language": "zh"})
        page.context.clear_cookies()
        log_in(page, server, "an")
        page.click("#kb-link")
        expect(page.locator("#kb-readonly")).to_have_text("只读：文章由主管和管理员编辑。")
        expect(page.locator('.kb-item[data-id="forgot-password"]')).to_contain_text("忘记密码")
        page.fill("#kb-search", "hoa don do")
        page.locator('.kb-item[data-id="vat-invoice"]').click()
        expect(vi.locator(".kb-title")).to_have_value("Xuất hoá đơn đỏ (VAT)")
        expect(vi.locator(".kb-title")).not_to_be_editable()
        expect(page.locator("#kb-save, #kb-delete, #kb-new, #kb-stats")).to_have_count(0)
        page.set_viewport_size({"width": 390, "height": 844})
        assert page.evaluate("document.documentElement.scrollWidth") <= 390
    # the two refused saves (the bad id, the English title without a body) are all that failed
    assert problems == 2 * [("console error: Failed to load resource: the server responded "
                             "with a status of 400 (Bad Request)")]
