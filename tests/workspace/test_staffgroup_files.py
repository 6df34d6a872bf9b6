"""Files through the Telegram staff group (#17): a photo an agent posts in a conversation's
topic (with its caption) reaches the customer; a file the hub will not keep is refused with the
reason posted under the agent's message; a customer's photo and file show in the topic as a
photo and a document once fetched. Files are fetched from the fake Bot API (getFile, then the
download) by the background job, never in ingest."""

from __future__ import annotations

import orjson
import pytest

from tests.helpers import drain_all, post, run_outbound, tg_update
from tests.test_attachments import png
from tests.workspace.test_staffgroup import (  # noqa: F401  (fixtures)
    AN,
    CUSTOMER,
    STAFF_CHAT,
    config_file,
    mirror,
    opened,
    staff,
    staff_update,
)
from tongdai.core.errors import DeliveryError
from tongdai.core.pipeline import feed
from tongdai.core.workspace import staffgroup_mirror


def _with_file(update: bytes, field: str, obj) -> bytes:
    body = orjson.loads(update)
    caption = body["message"].pop("text")
    body["message"][field] = obj
    if caption:
        body["message"]["caption"] = caption
    return orjson.dumps(body)


def test_a_photo_posted_in_the_topic_reaches_the_customer(
        client, hub, opened, tg_fake):  # noqa: F811
    _, thread = opened
    image = png(6, 4)
    fid = tg_fake.add_file(image, "photos/file_9.jpg", "AgACAgUAAxkBAAIstaffPhoto")
    photo = [{"file_id": fid, "file_unique_id": "AQADstaff", "file_size": len(image),
              "width": 6, "height": 4}]
    post(client, _with_file(staff_update(AN, 910, "Ảnh hướng dẫn nạp thẻ ạ", thread),
                            "photo", photo))
    drain_all(hub)
    assert not [c for c in tg_fake.calls if c[0] == "getFile"]  # not in ingest
    run_outbound(hub)  # the background job: getFile, download, then the reply's send
    (sent,) = [p for p in tg_fake.sent("sendPhoto") if str(p["chat_id"]) == str(CUSTOMER)]
    assert sent["photo"].data == image and sent["caption"] == "Ảnh hướng dẫn nạp thẻ ạ"
    # the same update again (Telegram redelivered it): nothing new
    post(client, _with_file(staff_update(AN, 910, "Ảnh hướng dẫn nạp thẻ ạ", thread),
                            "photo", photo))
    drain_all(hub)
    run_outbound(hub)
    assert len(tg_fake.sent("sendPhoto")) == 1


def test_a_refused_file_is_explained_in_the_topic(
        client, hub, opened, tg_fake):  # noqa: F811
    _, thread = opened
    hub.config.hub.storage.__dict__["max_blob_bytes"] = 2**20  # the hub keeps up to 1 MB
    data = b"%PDF-1.4\n" + b"0" * (2**20 + 100)
    fid = tg_fake.add_file(data, "documents/file_2.pdf")
    doc = {"file_id": fid, "file_unique_id": "AgADdoc", "file_name": "bang-gia.pdf",
           "mime_type": "application/pdf", "file_size": len(data)}
    post(client, _with_file(staff_update(AN, 920, "", thread), "document", doc))
    drain_all(hub)
    run_outbound(hub)
    mirror(hub)
    assert not [p for p in tg_fake.sent("sendDocument") if str(p["chat_id"]) == str(CUSTOMER)]
    said = tg_fake.posts(STAFF_CHAT, thread)[-1]
    assert said == "Not done: bang-gia.pdf is too big to send here: at most 1.0 MB"


def test_a_customers_photo_and_file_show_in_the_topic_as_they_are(
        client, hub, opened, tg_fake):  # noqa: F811
    """The line ("[image]") comes first, with the message; the photo itself once the
    background job has stored it — uploaded as a photo, the PDF as a document, into the
    conversation's topic, once however often the feed hands the events over — also when
    Telegram fails one upload and the batch is retried."""
    _, thread = opened
    image = png(8, 6)
    fid = tg_fake.add_file(image, "photos/file_31.jpg", "AgACAgUAAxkBAAIcustomerPhoto")
    photo = [{"file_id": fid, "file_unique_id": "AQADcust", "file_size": len(image),
              "width": 8, "height": 6}]
    post(client, _with_file(tg_update(7301, CUSTOMER, 31, "Ảnh lỗi nạp thẻ đây ạ"),
                            "photo", photo))
    pdf = b"%PDF-1.4\n% hoa don\n" + b"0" * 300
    did = tg_fake.add_file(pdf, "documents/file_32.pdf")
    doc = {"file_id": did, "file_unique_id": "AgADcustdoc", "file_name": "hoa-don-T11.pdf",
           "mime_type": "application/pdf", "file_size": len(pdf)}
    post(client, _with_file(tg_update(7302, CUSTOMER, 32, ""), "document", doc))
    drain_all(hub)
    mirror(hub)
    lines = tg_fake.posts(STAFF_CHAT, thread)
    assert lines[-2:] == ["Ảnh lỗi nạp thẻ đây ạ\n[image]", "[file: hoa-don-T11.pdf]"]
    assert not [p for p in tg_fake.sent("sendPhoto") if str(p["chat_id"]) == str(STAFF_CHAT)]
    run_outbound(hub)  # the background job fetches both
    tg_fake.fail_next("sendDocument", 500)  # Telegram fails the second upload once
    with pytest.raises(DeliveryError):  # the photo went; the batch stays pending
        mirror(hub)
    mirror(hub)  # (the retry: the document)
    # every files event handed over again, twice, as a reclaim would: nothing posted twice
    events = [feed.FeedEvent(i.decode(), orjson.loads(f[b"e"]))
              for i, f in hub.redis.xrange(hub.keys.feed())
              if orjson.loads(f[b"e"]).get("type") == "message.updated"]
    assert len(events) == 2
    staffgroup_mirror.mirror(hub, events)
    staffgroup_mirror.mirror(hub, events)
    (shown,) = [p for p in tg_fake.sent("sendPhoto") if str(p["chat_id"]) == str(STAFF_CHAT)]
    assert shown["photo"].data == image and str(shown["message_thread_id"]) == str(thread)
    (filed,) = [p for p in tg_fake.sent("sendDocument")
                if str(p["chat_id"]) == str(STAFF_CHAT)]
    assert filed["document"].data == pdf and filed["document"].filename == "hoa-don-T11.pdf"
    assert str(filed["message_thread_id"]) == str(thread)
    # nothing went to the customer
    assert not [p for m in ("sendPhoto", "sendDocument") for p in tg_fake.sent(m)
                if str(p["chat_id"]) == str(CUSTOMER)]
