"""Files both ways (#17): a customer's photo fetched from the platform (Telegram getFile on the
fake Bot API) into the encrypted blob store and shown only to agents who may see the
conversation; an agent's upload sent as multipart sendDocument/sendPhoto; refusals with a
reason the console translates.

Update shape: core.telegram.org/bots/api#message (``photo`` is an array of PhotoSize, smallest
first; the bot fetches the largest by getFile, then GET /file/bot<token>/<file_path>).
"""

from __future__ import annotations

import struct
import zlib

import orjson
import pytest
from rq import Queue
from rq.job import Job

from tests.conftest import write_config
from tests.fakes.server import UploadedFile
from tests.helpers import auth, drain_all, post, run_outbound, tg_update
from tongdai.core.errors import DeliveryError
from tongdai.core.keys import BACKGROUND_QUEUE
from tongdai.core.workspace import tokens, users
from tongdai.worker import jobs


def png(width: int = 2, height: int = 2) -> bytes:
    """A real PNG (red pixels): browsers draw it, the sniffer knows it."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))
    rows = b"".join(b"\x00" + b"\xff\x00\x00" * width for _ in range(height))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2,
                                                             0, 0, 0))
            + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))


TEAMS = """
teams:
  - {id: support, queues: [general]}
  - {id: billing, queues: [billing]}
"""
PDF = b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n"


def tg_photo(update_id: int, chat_id: int, message_id: int, file_id: str,
             caption: str = "") -> bytes:
    """A private-chat photo as the Bot API delivers it: two sizes, the caption beside."""
    msg = {"message_id": message_id, "date": 1700000100,
           "from": {"id": chat_id, "is_bot": False, "first_name": "Lan"},
           "chat": {"id": chat_id, "type": "private", "first_name": "Lan"},
           "photo": [{"file_id": "AgACAgUAAxkBAAIsmall", "file_unique_id": "AQADsmall",
                      "file_size": 1202, "width": 90, "height": 67},
                     {"file_id": file_id, "file_unique_id": "AQADbig", "file_size": 40300,
                      "width": 800, "height": 600}]}
    if caption:
        msg["caption"] = caption
    return orjson.dumps({"update_id": update_id, "message": msg})


@pytest.fixture
def config_file(tmp_path, tg_fake):
    return write_config(tmp_path / "tongdai.yaml", api_base=tg_fake.base_url, extra=TEAMS)


@pytest.fixture
def people(hub) -> dict[str, str]:
    """An agent of the team that sees the general queue, and one of another team."""
    out = {}
    for name, teams in (("an", ["support"]), ("bich", ["billing"])):
        users.create(hub, users.User(name=name, role="agent", teams=teams), None)
        out[name] = tokens.create(hub, name, "agent", teams)
    return out


def _messages(client, token, conv_id):
    return client.get(f"/api/v1/conversations/{conv_id}/messages",
                      headers=auth(token)).json["items"]


def test_a_customers_photo_is_fetched_stored_encrypted_and_shown_only_to_who_may_see(
        client, hub, tg_fake, people, admin_token):
    image = png(3, 2)
    file_id = tg_fake.add_file(image, "photos/file_7.jpg", "AgACAgUAAxkBAAIbigPhoto")
    post(client, tg_photo(50, 6001, 10, file_id, "Ảnh chuyển khoản ạ"))
    drain_all(hub)
    conv = client.get("/api/v1/conversations", headers=auth(admin_token)).json["items"][0]["id"]
    (msg,) = _messages(client, admin_token, conv)
    assert msg["text"] == "Ảnh chuyển khoản ạ"
    assert msg["attachments"][0]["file_id"] == file_id  # not fetched in the request path
    job_id = f"files-{conv}-{msg['id']}"
    assert job_id in Queue(BACKGROUND_QUEUE, connection=hub.redis).job_ids
    job = Job.fetch(job_id, connection=hub.redis)  # RQ retries a failed fetch, later
    assert job.retries_left == 5 and job.retry_intervals == [2, 10, 60, 300, 900]

    # Telegram has a bad moment: the job fails to be retried, nothing half-stored
    jobs.set_hub(hub)
    tg_fake.fail_next("getFile", 502, description="Bad Gateway")
    with pytest.raises(DeliveryError) as e:
        jobs.fetch_files("tg-test", conv, msg["id"])
    assert e.value.retryable
    assert _messages(client, admin_token, conv)[0]["attachments"][0]["file_id"] == file_id

    run_outbound(hub)  # the background worker runs the queued job: getFile, then the download
    (att,) = _messages(client, admin_token, conv)[0]["attachments"]
    assert att["file_id"].startswith("blob:") and att["mime"] == "image/png"
    assert att["size"] == len(image) and att["meta"]["platform_file_id"] == file_id
    assert tg_fake.downloads() == ["photos/file_7.jpg"]
    assert [p["file_id"] for m, p in tg_fake.calls if m == "getFile"] == [file_id, file_id]

    # on disk: encrypted, never the picture itself
    digest = att["file_id"].removeprefix("blob:")
    on_disk = (hub.blobs.root / digest[:2] / digest).read_bytes()
    assert image not in on_disk and image[16:40] not in on_disk

    # a second run (a redelivered job) fetches nothing again
    assert jobs.fetch_files("tg-test", conv, msg["id"]) == "nothing to fetch"
    assert tg_fake.downloads() == ["photos/file_7.jpg"]

    url = f"/api/v1/conversations/{conv}/messages/{msg['id']}/attachments/0"
    r = client.get(url, headers=auth(people["an"]))
    assert r.status_code == 200 and r.data == image
    assert r.headers["Content-Type"] == "image/png"
    assert r.headers["Content-Disposition"].startswith("inline;")
    assert r.headers["X-Content-Type-Options"] == "nosniff"
    assert client.get(url + "?download=1", headers=auth(people["an"])).headers[
        "Content-Disposition"].startswith("attachment;")
    assert client.get(url, headers=auth(people["bich"])).status_code == 404
    assert client.get(url).status_code == 401

    # the customer is erased: the file goes with them
    from tongdai.core.workspace import privacy

    customer = hub.redis.hget(hub.keys.conversation(conv), "customer").decode()
    assert privacy.erase_customer(hub, customer, "admin")["files"] == 1
    assert not (hub.blobs.root / digest[:2] / digest).exists()
    assert client.get(url, headers=auth(admin_token)).status_code == 404


def test_a_file_too_big_for_the_bot_is_marked_not_fetched(client, hub, tg_fake, admin_token):
    body = orjson.loads(tg_update(60, 6002, 11, ""))
    del body["message"]["text"]
    body["message"]["document"] = {"file_id": "BQACAgUAAxkBAAIhuge", "file_unique_id": "AgADhuge",
                                   "file_name": "video-call.mp4", "mime_type": "video/mp4",
                                   "file_size": 31_000_000}
    post(client, orjson.dumps(body))
    drain_all(hub)
    run_outbound(hub)
    conv = client.get("/api/v1/conversations", headers=auth(admin_token)).json["items"][0]["id"]
    (att,) = _messages(client, admin_token, conv)[0]["attachments"]
    assert att["meta"]["fetch_error"] == "too_big" and not att["file_id"].startswith("blob:")
    assert not [c for c in tg_fake.calls if c[0] == "getFile"]  # its size said it all


def test_a_web_page_a_customer_sends_is_never_served_as_one(client, hub, tg_fake, admin_token):
    page = b"<html><body><script>fetch('/api/v1/users')</script></body></html>"
    fid = tg_fake.add_file(page, "documents/file_5.html")
    body = orjson.loads(tg_update(61, 6005, 12, ""))
    del body["message"]["text"]
    body["message"]["document"] = {"file_id": fid, "file_unique_id": "AgADhtml",
                                   "file_name": "hoa-don.html", "mime_type": "text/html",
                                   "file_size": len(page)}
    post(client, orjson.dumps(body))
    drain_all(hub)
    run_outbound(hub)
    conv = client.get("/api/v1/conversations", headers=auth(admin_token)).json["items"][0]["id"]
    (msg,) = _messages(client, admin_token, conv)
    r = client.get(f"/api/v1/conversations/{conv}/messages/{msg['id']}/attachments/0",
                   headers=auth(admin_token))
    assert r.data == page and r.headers["Content-Type"] == "application/octet-stream"
    assert r.headers["Content-Disposition"] == (
        "attachment; filename=\"hoa-don.html\"; filename*=UTF-8''hoa-don.html")
    assert r.headers["Content-Security-Policy"] == "default-src 'none'; sandbox"


def _upload(client, token, conv, files, key, text=None):
    data = {"file": files} | ({"text": text} if text else {})
    return client.post(f"/api/v1/conversations/{conv}/messages/upload", data=data,
                       content_type="multipart/form-data",
                       headers={**auth(token), "Idempotency-Key": key})


def test_an_agents_upload_goes_out_as_send_document_once(client, hub, tg_fake, people):
    import io

    post(client, tg_update(1, 6003, 1, "Gửi giúp em hóa đơn"))
    drain_all(hub)
    conv = client.get("/api/v1/conversations", headers=auth(people["an"])).json["items"][0]["id"]
    r = _upload(client, people["an"], conv, [(io.BytesIO(PDF), "Hóa đơn 0412.pdf")], "up-1",
                text="Dạ em gửi hóa đơn ạ")
    assert r.status_code == 201, r.json
    (att,) = r.json["attachments"]
    assert att["kind"] == "file" and att["mime"] == "application/pdf"
    assert att["name"] == "Hóa đơn 0412.pdf" and att["file_id"].startswith("blob:")
    again = _upload(client, people["an"], conv, [(io.BytesIO(PDF), "Hóa đơn 0412.pdf")], "up-1",
                    text="Dạ em gửi hóa đơn ạ")  # the browser retried
    assert again.status_code == 200 and again.json["id"] == r.json["id"]
    image = png()
    r2 = _upload(client, people["an"], conv, [(io.BytesIO(image), "chup-man-hinh.png")], "up-2")
    assert r2.status_code == 201 and r2.json["attachments"][0]["kind"] == "image"
    run_outbound(hub)

    (doc,) = tg_fake.sent("sendDocument")
    assert isinstance(doc["document"], UploadedFile)
    assert doc["document"].data == PDF and doc["document"].filename == "Hóa đơn 0412.pdf"
    assert doc["caption"] == "Dạ em gửi hóa đơn ạ" and str(doc["chat_id"]) == "6003"
    (photo,) = tg_fake.sent("sendPhoto")
    assert photo["photo"].data == image and photo["photo"].content_type == "image/png"
    out = [m for m in _messages(client, people["an"], conv) if m["direction"] == "out"]
    assert [m["status"] for m in out] == ["sent", "sent"]
    # the agent's own file opens from the timeline too
    got = client.get(f"/api/v1/conversations/{conv}/messages/{r.json['id']}/attachments/0",
                     headers=auth(people["an"]))
    assert got.data == PDF and got.headers["Content-Disposition"].startswith("attachment;")
    assert got.headers["Content-Type"] == "application/pdf"


def test_uploads_refused_with_a_reason(client, hub, tg_fake, people):
    import io

    post(client, tg_update(1, 6004, 1, "alo"))
    drain_all(hub)
    conv = client.get("/api/v1/conversations", headers=auth(people["an"])).json["items"][0]["id"]
    r = _upload(client, people["an"], conv, [(io.BytesIO(b"MZ\x90\x00"), "setup.exe")], "x1")
    assert r.status_code == 400 and r.json["error"]["reason"] == "file_type_not_allowed"
    r = _upload(client, people["an"], conv, [(io.BytesIO(b"<svg onload=alert(1)>"), "a.svg")],
                "x2")
    assert r.status_code == 400 and r.json["error"]["reason"] == "file_type_not_allowed"
    r = _upload(client, people["an"], conv, [(io.BytesIO(b""), "empty.txt")], "x3")
    assert r.status_code == 400 and r.json["error"]["reason"] == "file_empty"
    hub.config.hub.storage.__dict__["max_blob_bytes"] = 2048  # a small hub limit
    r = _upload(client, people["an"], conv, [(io.BytesIO(b"x" * 4096), "log.txt")], "x4")
    assert r.status_code == 400 and r.json["error"]["reason"] == "file_too_big"
    assert r.json["error"]["params"]["max_mb"] == 0.0
    r = _upload(client, people["bich"], conv, [(io.BytesIO(PDF), "a.pdf")], "x5")
    assert r.status_code == 404  # another team's agent does not see the conversation
    # a client that sends its text as a file part: no text, not a server error
    r = client.post(f"/api/v1/conversations/{conv}/messages/upload", data={
        "file": (io.BytesIO(b""), "nothing.txt"), "text": (io.BytesIO(b"hello"), "t.txt")},
        headers={**auth(people["an"]), "Idempotency-Key": "x6"},
        content_type="multipart/form-data")
    assert r.status_code == 400 and r.json["error"]["reason"] == "file_empty"
    run_outbound(hub)
    assert not [c for c in tg_fake.calls if c[0].startswith("send")]
    assert [m["direction"] for m in _messages(client, people["an"], conv)] == ["in"]
