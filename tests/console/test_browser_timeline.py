"""A shift on any screen (issue #17), in Debian's chromium: one customer's timeline across
Telegram and mail, the console at 1440, 1024 and 390 px, dark mode, browser notifications.

Lan writes on Telegram, links her mailbox with a link code and writes by mail: the hub holds
three conversations of hers (tests/workspace/test_customer_timeline.py); billing's agent sees
the two of them in billing. Screenshots of each width go to tests/console/artifacts.
"""

from __future__ import annotations

import pytest

from tests.conftest import write_config
from tests.console.conftest import PASSWORD, TEAMS
from tests.console.test_browser import (  # noqa: F401  (fixtures and the skip mark)
    ARTIFACTS,
    chromium,
    playwright_api,
    pytestmark,
    server,
    sign_in,
)
from tests.helpers import drain_all
from tests.identity.people import config_extra, feed
from tests.workspace.test_customer_timeline import linked_customer, tg_text
from tongdai.core.pipeline import store
from tongdai.core.workspace import users

# window.Notification as a page sees it, recording what the console does with it: the
# permission asked (by a click) and each notification made
FAKE_NOTIFICATION = """
window.__notes = [];
window.__asked = 0;
class FakeNotification {
  constructor(title, options) {
    window.__notes.push({ title, body: (options || {}).body || '' });
    document.documentElement.dataset.notes = String(window.__notes.length);
  }
  close() {}
}
FakeNotification.permission = 'default';
FakeNotification.requestPermission = async () => {
  window.__asked += 1;
  FakeNotification.permission = 'granted';
  return 'granted';
};
window.Notification = FakeNotification;
"""
FITS = "document.scrollingElement.scrollWidth <= window.innerWidth"
# what sticks out on the right, to say so when FITS fails
WIDE = ("[...document.querySelectorAll('body *')].filter((e) => e.getBoundingClientRect().right"
        " > innerWidth + 1).map((e) => `${e.tagName}#${e.id}.${e.className}@${e.parentElement.className}:${Math.round(e.getBoundingClientRect().left)}-${Math.round(e.getBoundingClientRect().right)}`).slice(0, 8)")
BACKGROUND = "getComputedStyle(document.body).backgroundColor"


@pytest.fixture
def config_file(tmp_path):
    return write_config(tmp_path / "tongdai.yaml", extra=config_extra() + TEAMS)


def test_customer_timeline_narrow_screens_dark_mode_and_notifications(hub, server):  # noqa: F811
    users.create(hub, users.User(name="bich", role="agent", teams=["billing"],
                                 display_name="Bích"), PASSWORD)
    cust = linked_customer(hub)
    mine = [c.decode() for c in hub.redis.zrevrange(hub.keys.customer_conversations(cust), 0, -1)
            if store.get_conversation(hub, c.decode()).queue == "billing"]
    newest, older = mine  # the mail thread (3), and the one Telegram and mail joined (2)
    expect = playwright_api.expect
    problems: list[str] = []
    ARTIFACTS.mkdir(exist_ok=True)
    with chromium(problems) as page:
        page.set_viewport_size({"width": 1440, "height": 900})
        page.emulate_media(color_scheme="light", reduced_motion="reduce")  # no slide
        page.add_init_script(FAKE_NOTIFICATION)
        sign_in(page, server, "bich")
        expect(page.locator("body")).to_have_attribute("data-live", "1")

        # one conversation, then all the customer's channels, merged in time order
        page.locator(f"#conv-list li.conv[data-id='{newest}']").click()
        timeline = page.locator("#timeline li.msg")
        expect(timeline).to_have_count(1)
        page.click("#scope-all")
        expect(page.locator("#scope-all")).to_have_attribute("aria-pressed", "true")
        expect(timeline).to_have_count(3)
        expect(timeline.locator(".badge.channel")).to_have_text(["mail", "tg-test", "mail"])
        texts = timeline.locator(".msg-text").all_text_contents()
        assert [" ".join(x.split()[:3]) for x in texts] == [
            "Mã liên kết", "Shop kiểm tra", "Mình gửi thêm"], texts
        # the first conversation (queue general) is not billing's to see
        expect(page.locator("#timeline")).not_to_contain_text("Chào shop")
        # messages of the other conversation say which, and open it
        expect(timeline.locator(".msg-conv")).to_have_text([f"#{older}", f"#{older}"])
        page.screenshot(path=str(ARTIFACTS / "timeline-1440.png"))

        # notifications: asked by the click, then one for the customer's next message on
        # a conversation of hers (claimed) while another is open
        page.click("#notify-btn")
        page.check("#notify-on")
        expect(page.locator("#notify-on")).to_be_checked()
        assert page.evaluate("window.__asked") == 1
        page.click("#notify-btn")
        page.click("#conv-actions [data-action=claim]")
        expect(page.locator("#conv-meta .assignee")).to_have_text("@bich")
        timeline.locator(".msg-conv").first.click()
        expect(page.locator("#conv-meta .conv-id")).to_have_text(f"#{older}")
        feed(hub, tg_text(5501, "Mình chuyển khoản lúc 9h30 rồi", ago_s=0))
        drain_all(hub)
        (conv_now,) = {c for c in mine if hub.redis.zcard(hub.keys.timeline(c)) == 3}
        assert conv_now == newest, "the message joined the claimed conversation"
        expect(page.locator("html")).to_have_attribute("data-notes", "1")
        (note,) = page.evaluate("window.__notes")
        assert note["title"] == "Tin nhắn mới từ Lan", note
        assert "Mình chuyển khoản lúc 9h30 rồi" in note["body"]
        # ... and the open "all channels" timeline shows it live, from the other conversation
        expect(timeline.filter(has_text="Mình chuyển khoản lúc 9h30 rồi")
               .locator(".msg-conv")).to_have_text(f"#{newest}")

        # 1024 px: the customer panel is a drawer the header's button opens
        page.set_viewport_size({"width": 1024, "height": 768})
        panel = page.locator("#customer-panel")
        expect(panel).to_be_hidden()
        page.click("#panel-btn")
        expect(panel).to_be_visible()
        expect(panel.locator(".customer-name")).to_have_text("Lan")
        box = panel.bounding_box()
        assert box["x"] >= 1024 - 345 and box["x"] + box["width"] <= 1024, box
        assert page.evaluate(FITS), page.evaluate(WIDE)
        page.screenshot(path=str(ARTIFACTS / "drawer-1024.png"))
        page.click("#panel-close")
        expect(panel).to_be_hidden()

        # 390 px: list -> conversation -> customer panel, one view at a time, and back
        page.set_viewport_size({"width": 390, "height": 844})
        inbox, conversation = page.locator("section.inbox"), page.locator("section.conversation")
        expect(conversation).to_be_visible()
        expect(inbox).to_be_hidden()
        assert page.evaluate(FITS), page.evaluate(WIDE)
        page.click("#back-list")
        expect(inbox).to_be_visible()
        expect(conversation).to_be_hidden()
        assert page.evaluate(FITS), page.evaluate(WIDE)
        page.screenshot(path=str(ARTIFACTS / "list-390.png"))
        page.locator(f"#conv-list li.conv[data-id='{newest}']").click()
        expect(conversation).to_be_visible()
        expect(inbox).to_be_hidden()
        expect(page.locator("#conv-meta .conv-id")).to_have_text(f"#{newest}")
        assert page.evaluate(FITS), page.evaluate(WIDE)
        page.screenshot(path=str(ARTIFACTS / "conversation-390.png"))
        # the header's selects show their whole value ("Trực tuyến", "Tiếng Việt"), arrow aside
        cut = page.evaluate("""[...document.querySelectorAll('.topbar select')].filter((s) => {
            const c = document.createElement('canvas').getContext('2d');
            c.font = getComputedStyle(s).font;
            return c.measureText(s.selectedOptions[0].text).width > s.clientWidth - 28;
          }).map((s) => s.selectedOptions[0].text)""")
        assert cut == [], f"cut in the header: {cut}"
        # a toast stays above the composer: its Send button is never under one
        page.evaluate("import('/static/ui.js').then((m) => m.toast('Đã chọn 2 tệp'))")
        expect(page.locator("#toasts .toast")).to_have_count(1)
        toasts, composer = page.locator("#toasts").bounding_box(), page.locator(".composer").bounding_box()
        assert toasts["y"] + toasts["height"] <= composer["y"], (toasts, composer)
        page.click("#panel-btn")
        expect(panel).to_be_visible()
        assert panel.bounding_box()["width"] == 390
        assert page.evaluate(FITS), page.evaluate(WIDE)
        page.screenshot(path=str(ARTIFACTS / "customer-390.png"))
        page.click("#panel-close")
        expect(panel).to_be_hidden()
        expect(conversation).to_be_visible()
        page.go_back()  # the phone's own back button: to the list
        expect(inbox).to_be_visible()
        expect(conversation).to_be_hidden()

        # dark mode: the system's, then the agent's choice, kept across a reload
        assert page.evaluate(BACKGROUND) == "rgb(245, 246, 248)"
        page.emulate_media(color_scheme="dark")
        assert page.evaluate(BACKGROUND) == "rgb(15, 20, 25)"
        page.click("#theme-btn")  # to light, though the system is dark
        assert page.evaluate(BACKGROUND) == "rgb(245, 246, 248)"
        page.reload()
        expect(page.locator("body")).to_have_attribute("data-live", "1")
        assert page.evaluate(BACKGROUND) == "rgb(245, 246, 248)"
        page.click("#theme-btn")
        assert page.evaluate(BACKGROUND) == "rgb(15, 20, 25)"
        page.screenshot(path=str(ARTIFACTS / "list-390-dark.png"))
        page.set_viewport_size({"width": 1440, "height": 900})
        page.locator(f"#conv-list li.conv[data-id='{newest}']").click()
        expect(timeline).to_have_count(5)  # "all channels" remembered: 4 messages, the claim
        page.screenshot(path=str(ARTIFACTS / "timeline-1440-dark.png"))
    assert problems == []
