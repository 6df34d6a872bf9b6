"""Web Push from the console (issue #17), in Debian's chromium: an agent on a 390 px phone
screen turns on "on this device" in the bell menu; the page registers the service worker
(/console/sw.js), subscribes and registers the subscription with the API; the hub then pushes
a customer's message to it; turning it off deletes it.

Headless chromium cannot reach a real push service, so ``PushManager.prototype.subscribe`` is
stubbed (an init script) to answer a subscription whose endpoint is the fake push service
(tests/fakes/push_service.py) and whose keys the fake holds — so the push that follows is
checked end to end: VAPID-signed by the hub, decrypted with the browser's keys.
"""

from __future__ import annotations

import httpx
import orjson
import pytest

from tests.conftest import write_config
from tests.console.conftest import TEAMS
from tests.console.test_browser import chromium, playwright_api, pytestmark, server, sign_in  # noqa: F401  (fixtures and the skip mark)
from tests.fakes.push_service import FakePushService
from tests.helpers import drain_all, tg_update
from tests.staff import create_people
from tongdai.core.pipeline import feed
from tongdai.core.workspace import push, tokens

# The browser's PushManager, answering the fake push service's subscription; records calls.
# The key a subscription was made with is kept in sessionStorage, as a browser keeps it
# across page loads (a test changes it to play a subscription made under an older hub key).
STUB = """
(() => {
  if (location.protocol === 'about:') return;
  const json = %s;
  window.__push = [];
  const make = (key) => ({ endpoint: json.endpoint, expirationTime: null,
    options: { applicationServerKey: Uint8Array.from(key).buffer }, toJSON: () => json,
    unsubscribe: async () => {
      window.__push.push('unsubscribe'); current = null;
      sessionStorage.removeItem('__push_key'); return true;
    } });
  const saved = sessionStorage.getItem('__push_key');
  let current = saved ? make(JSON.parse(saved)) : null;
  PushManager.prototype.subscribe = async function (options) {
    const key = Array.from(new Uint8Array(options.applicationServerKey));
    window.__push.push('subscribe:' + key.length);
    sessionStorage.setItem('__push_key', JSON.stringify(key));
    current = make(key);
    return current;
  };
  PushManager.prototype.getSubscription = async function () { return current; };
})();
"""


@pytest.fixture
def config_file(tmp_path):
    return write_config(tmp_path / "tongdai.yaml", extra=TEAMS + """
notifications:
  push_services: ["http://127.0.0.1:*"]
""")


def test_an_agent_turns_push_on_and_off_on_their_phone(hub, server):  # noqa: F811
    create_people(hub)
    token = tokens.create(hub, "an", "agent", ["support"])
    mine = {"Authorization": f"Bearer {token}"}
    sw = httpx.get(server + "/console/sw.js")
    assert sw.status_code == 200 and sw.headers["content-type"].startswith("text/javascript")
    assert sw.headers["service-worker-allowed"] == "/console"
    feed.ensure_group(hub, "webpush")
    expect = playwright_api.expect
    problems: list[str] = []
    with FakePushService() as pushsvc, chromium(problems) as page:
        subscription = pushsvc.subscribe(push.public_key(hub))
        page.set_viewport_size({"width": 390, "height": 844})
        page.context.grant_permissions(["notifications"], origin=server)
        page.add_init_script(STUB % orjson.dumps(subscription).decode())
        sign_in(page, server, "an")
        expect(page.locator("body")).to_have_attribute("data-live", "1")

        page.click("#notify-btn")
        page.check("#push-on")
        expect(page.locator("#push-on")).to_have_attribute("data-state", "on")
        assert page.evaluate("window.__push") == ["subscribe:65"]  # the hub's P-256 key
        active = page.evaluate("navigator.serviceWorker.getRegistration('/console')"
                               ".then((r) => r && r.active && r.active.scriptURL)")
        assert active == server + "/console/sw.js"
        (listed,) = httpx.get(server + "/api/v1/push/subscriptions", headers=mine).json()["items"]
        assert listed["service"] == pushsvc.origin

        # a push comes while this console is in front of the agent: shown, silently (Safari
        # cancels a subscription whose pushes show nothing)
        (worker,) = page.context.service_workers
        shown = worker.evaluate(
            "showPush({title: 'Lan', body: 'Alo', tag: 'tongdai-1', conversation_id: '1'})"
            ".then(() => self.registration.getNotifications())"
            ".then((ns) => ns.map((n) => [n.title, n.tag, n.silent]))")
        assert shown == [["Lan", "tongdai-1", True]]

        # the hub's key changed since this browser subscribed (a restore on a new host): the
        # next console load replaces the subscription instead of registering the stale one
        page.evaluate("sessionStorage.setItem('__push_key', JSON.stringify(Array(65).fill(4)))")
        page.reload()
        expect(page.locator("body")).to_have_attribute("data-live", "1")
        for _ in range(100):  # (the page's CSP forbids wait_for_function's eval)
            if len(page.evaluate("window.__push")) == 2 and len(
                    httpx.get(server + "/api/v1/push/subscriptions",
                              headers=mine).json()["items"]) == 1:
                break
            page.wait_for_timeout(50)
        assert page.evaluate("window.__push") == ["unsubscribe", "subscribe:65"]
        (again,) = httpx.get(server + "/api/v1/push/subscriptions", headers=mine).json()["items"]
        assert again["id"] == listed["id"]  # the same endpoint here: the same subscription

        # a customer writes; the conversation is an's: the hub pushes to this browser
        r = httpx.post(server + "/webhooks/tg-test", content=tg_update(1, 880001, 1, "Alo shop"),
                       headers={"Content-Type": "application/json",
                                "X-Telegram-Bot-Api-Secret-Token": "test-secret_123"})
        assert r.status_code == 200
        drain_all(hub)
        feed.run_pending(hub, ["webpush"])  # nobody's yet: no push
        conv = httpx.get(server + "/api/v1/conversations?queue=general",
                         headers=mine).json()["items"][0]["id"]
        assert httpx.post(f"{server}/api/v1/conversations/{conv}/claim",
                          headers=mine).status_code == 200
        httpx.post(server + "/webhooks/tg-test", content=tg_update(2, 880001, 2, "Có ai không ạ"),
                   headers={"Content-Type": "application/json",
                            "X-Telegram-Bot-Api-Secret-Token": "test-secret_123"})
        drain_all(hub)
        feed.run_pending(hub, ["webpush"])
        (got,) = pushsvc.browser(subscription).received
        assert got["conversation_id"] == conv and got["body"] == "Có ai không ạ"

        # off: unsubscribed in the browser, deleted at the hub
        page.click("#notify-btn")
        expect(page.locator("#push-on")).to_be_checked()
        page.uncheck("#push-on")
        expect(page.locator("#push-on")).to_have_attribute("data-state", "off")
        assert page.evaluate("window.__push") == ["unsubscribe", "subscribe:65", "unsubscribe"]
        assert httpx.get(server + "/api/v1/push/subscriptions",
                         headers=mine).json()["items"] == []

        # a notification's link opens its conversation (/console#id, in a new tab)
        page.goto("about:blank")
        page.goto(f"{server}/console#{conv}")
        expect(page.locator("#conv-meta .conv-id")).to_have_text(f"#{conv}")

        # logging out of a shared phone stops its pushes too
        page.click("#notify-btn")
        page.check("#push-on")
        expect(page.locator("#push-on")).to_have_attribute("data-state", "on")
        assert len(httpx.get(server + "/api/v1/push/subscriptions",
                             headers=mine).json()["items"]) == 1
        page.click("#logout")
        page.wait_for_url(server + "/login")
        assert httpx.get(server + "/api/v1/push/subscriptions",
                         headers=mine).json()["items"] == []
    assert problems == []
