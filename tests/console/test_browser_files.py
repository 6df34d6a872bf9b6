"""Files in the console, in Chromium (#17): a customer's Telegram photo, fetched by the
background job, shows as an image in the timeline (drawn: its natural size is the PNG's);
a shared location shows its coordinates and an OpenStreetMap link; the agent attaches a PDF in
the reply box and the fake Bot API receives it by sendDocument; a program is refused with the
reason in Vietnamese, and nothing is sent."""

from __future__ import annotations

import time

import httpx
import orjson

from tests.conftest import SECRET
from tests.console.conftest import PASSWORD
from tests.console.test_browser import (  # noqa: F401  (fixtures and the skip mark)
    chromium,
    config_file,
    playwright_api,
    pytestmark,
    server,
    sign_in,
)
from tests.helpers import drain_all, run_outbound
from tests.test_attachments import PDF, png, tg_photo
from tongdai.core.workspace import users


def _post(base: str, body: bytes) -> None:
    r = httpx.post(base + "/webhooks/tg-test", content=body, headers={
        "Content-Type": "application/json", "X-Telegram-Bot-Api-Secret-Token": SECRET})
    assert r.status_code == 200


def test_photo_location_and_an_attached_file_in_the_console(
        hub, server, tg_fake, tmp_path):  # noqa: F811
    users.create(hub, users.User(name="lan", role="agent", teams=["support", "billing"]),
                 PASSWORD)
    image = png(12, 8)
    file_id = tg_fake.add_file(image, "photos/file_3.jpg", "AgACAgUAAxkBAAIconsole")
    _post(server, tg_photo(70, 777100, 1, file_id, "Ảnh hóa đơn đây shop"))
    location = {"update_id": 71, "message": {
        "message_id": 2, "date": int(time.time()),
        "from": {"id": 777100, "is_bot": False, "first_name": "Lan"},
        "chat": {"id": 777100, "type": "private", "first_name": "Lan"},
        "location": {"latitude": 10.776889, "longitude": 106.700806}}}
    _post(server, orjson.dumps(location))
    drain_all(hub)
    run_outbound(hub)  # the background job fetches the photo (getFile + download)

    (tmp_path / "Hóa đơn.pdf").write_bytes(PDF)
    (tmp_path / "setup.exe").write_bytes(b"MZ\x90\x00")
    expect = playwright_api.expect
    problems: list[str] = []
    with chromium(problems) as page:
        sign_in(page, server, "lan")
        page.wait_for_url(server + "/console")
        page.locator("#conv-list li.conv").first.click()

        img = page.locator("#timeline li.msg.in .attachment.image img")
        expect(img).to_have_count(1)
        page.wait_for_function(
            "() => { const i = document.querySelector('#timeline .attachment.image img');"
            " return i && i.complete && i.naturalWidth > 0; }")
        assert img.evaluate("i => [i.naturalWidth, i.naturalHeight]") == [12, 8]
        osm = page.locator("#timeline .attachment.location a")
        expect(osm).to_have_attribute(
            "href", "https://www.openstreetmap.org/?mlat=10.77689&mlon=106.70081"
                    "#map=17/10.77689/106.70081")
        expect(page.locator("#timeline .attachment.location")).to_contain_text(
            "10.77689, 106.70081")

        # a program is refused, in the console's language, before anything is sent
        page.set_input_files("#attach-input", str(tmp_path / "setup.exe"))
        expect(page.locator("#attach-list")).to_contain_text("setup.exe")
        page.click("#send")
        expect(page.locator("#composer-error")).to_have_text(
            "setup.exe: không gửi được loại tệp này ở đây")
        page.locator("#attach-list button").click()
        expect(page.locator("#attach-list .chip")).to_have_count(0)

        # a PDF with a few words goes out as one reply
        page.set_input_files("#attach-input", str(tmp_path / "Hóa đơn.pdf"))
        page.fill("#draft", "Dạ em gửi hóa đơn ạ")
        page.click("#send")
        out = page.locator("#timeline li.msg.out")
        expect(out).to_have_count(1)
        expect(out.locator(".attachment.file")).to_contain_text("Hóa đơn.pdf")
        expect(page.locator("#attach-list .chip")).to_have_count(0)
    run_outbound(hub)
    (doc,) = tg_fake.sent("sendDocument")
    assert doc["document"].data == PDF and doc["document"].filename == "Hóa đơn.pdf"
    assert doc["caption"] == "Dạ em gửi hóa đơn ạ"
    # the refusal's 400 is the one thing the browser reports
    assert problems == [("console error: Failed to load resource: the server responded with a "
                        "status of 400 (Bad Request)")], problems
