"""Files both ways on Messenger and Zalo (#17): a customer's image fetched from the platform's
CDN URL into the blob store; an agent's upload sent as Messenger's upload-and-send
(multipart ``filedata``) and as Zalo's upload image/file then a message by attachment_id or
token; Zalo's refusal of a type it does not take, said before anything is stored.

Payloads: Messenger ``messages`` webhook with ``attachments[].payload.url`` (Meta Webhooks
reference, messages); Zalo ``user_send_image`` with ``message.attachments[].payload.url``
(Zalo OA webhook events, "user_send_image").
"""

from __future__ import annotations

import io

from tests.fakes import zalo_api as zapi
from tests.fakes.server import UploadedFile
from tests.helpers import auth, drain_all, run_outbound
from tests.test_attachments import PDF, png
from tests.test_channels_e2e import (
    OA_ID,
    PAGE_ID,
    PSID,
    ZUSER,
    config_file,  # noqa: F401  (the fixture: both channels)
    fb_post,
    zalo_post,
)
from tongdai.core.clock import now_ms


def _conv(client, token, channel):
    items = client.get("/api/v1/conversations", headers=auth(token)).json["items"]
    return next(c["id"] for c in items if c["channel_id"] == channel)


def _msgs(client, token, conv):
    return client.get(f"/api/v1/conversations/{conv}/messages", headers=auth(token)).json["items"]


def _upload(client, token, conv, name, data, key):
    return client.post(f"/api/v1/conversations/{conv}/messages/upload",
                       data={"file": [(io.BytesIO(data), name)]},
                       content_type="multipart/form-data",
                       headers={**auth(token), "Idempotency-Key": key})


def test_messenger_image_in_and_file_out(client, hub, admin_token, graph):
    image = png(4, 4)
    url = graph.add_cdn_file("lan-receipt.png", image, "image/png")
    sticker = graph.add_cdn_file("thumbs-up.png", png(1, 1), "image/png")
    ts = now_ms()
    fb_post(client, [{"sender": {"id": PSID}, "recipient": {"id": PAGE_ID}, "timestamp": ts,
                      "message": {"mid": "m_img_1", "attachments": [
                          {"type": "image", "payload": {"url": url}},
                          {"type": "image", "payload": {"url": sticker,
                                                        "sticker_id": 369239263222822}}]}}])
    drain_all(hub)
    run_outbound(hub)  # the background job downloads them from the CDN
    conv = _conv(client, admin_token, "fb-test")
    att, st = _msgs(client, admin_token, conv)[0]["attachments"]
    assert att["file_id"].startswith("blob:") and att["mime"] == "image/png"
    assert st["kind"] == "sticker" and st["file_id"].startswith("blob:")
    assert st["meta"]["sticker_id"] == "369239263222822"  # a 15-digit id kept exactly
    # ... also after a script rewrites the stored message (a reaction): Lua's JSON would
    # print a number that long as 3.6923926322282e+14
    first = _msgs(client, admin_token, conv)[0]["id"]
    hub.scripts.patch_message(args=["", f"{conv}:{first}", "", now_ms(), "react", PSID, "👍"])
    st = _msgs(client, admin_token, conv)[0]["attachments"][1]
    assert st["meta"]["sticker_id"] == "369239263222822"
    assert graph.cdn_downloads == ["lan-receipt.png", "thumbs-up.png"]
    got = client.get(f"/api/v1/conversations/{conv}/messages/"
                     f"{_msgs(client, admin_token, conv)[0]['id']}/attachments/0",
                     headers=auth(admin_token))
    assert got.data == image and got.headers["Content-Type"] == "image/png"

    r = _upload(client, admin_token, conv, "Báo giá.pdf", PDF, "fb-up-1")
    assert r.status_code == 201, r.json
    run_outbound(hub)
    (sent,) = [b for b in graph.sent() if "filedata" in b]
    assert isinstance(sent["filedata"], UploadedFile) and sent["filedata"].data == PDF
    assert sent["filedata"].filename == "Báo giá.pdf"
    assert sent["message"]["attachment"]["type"] == "file"
    assert sent["recipient"] == {"id": PSID} and sent["messaging_type"] == "RESPONSE"
    out = [m for m in _msgs(client, admin_token, conv) if m["direction"] == "out"]
    assert [m["status"] for m in out] == ["sent"]


def test_zalo_image_in_uploads_out_and_a_refused_type(client, hub, admin_token, zalo):
    image = png(5, 3)
    url = zalo.add_cdn_file("z-photo.jpg", image, "image/jpeg")
    ts = now_ms()
    zalo_post(client, {"app_id": zapi.APP_ID, "event_name": "user_send_image",
                       "timestamp": str(ts), "sender": {"id": ZUSER}, "recipient": {"id": OA_ID},
                       "message": {"msg_id": "z_img_1", "text": "", "attachments": [
                           {"type": "image", "payload": {"thumbnail": url, "url": url}}]}})
    drain_all(hub)
    run_outbound(hub)
    conv = _conv(client, admin_token, "zalo-test")
    (att,) = _msgs(client, admin_token, conv)[0]["attachments"]
    assert att["file_id"].startswith("blob:") and att["mime"] == "image/png"  # the bytes say
    assert zalo.cdn_downloads == ["z-photo.jpg"]

    zip_file = b"PK\x03\x04" + b"\x00" * 60
    r = _upload(client, admin_token, conv, "don-hang.zip", zip_file, "z-up-0")
    assert r.status_code == 400
    assert r.json["error"]["reason"] == "file_type_not_allowed"
    assert r.json["error"]["params"]["platform"] == "zalo"
    big = png(1, 1) + b"\x00" * (2**20 + 10)  # a PNG over Zalo's 1 MB for images
    r = _upload(client, admin_token, conv, "big.png", big, "z-up-00")
    assert r.status_code == 400 and r.json["error"]["reason"] == "file_too_big"
    assert r.json["error"]["params"]["max_mb"] == 1

    assert _upload(client, admin_token, conv, "anh.png", png(), "z-up-1").status_code == 201
    assert _upload(client, admin_token, conv, "hop-dong.pdf", PDF, "z-up-2").status_code == 201
    run_outbound(hub)
    assert [(p.rsplit("/", 1)[-1], f.data) for p, f, _ in zalo.uploads] == [
        ("image", png()), ("file", PDF)]
    (img_id, tok) = [h for _, _, h in zalo.uploads]
    sent = [s["message"]["attachment"] for s in zalo.sent()]
    assert sent[0]["payload"]["elements"] == [{"media_type": "image", "attachment_id": img_id}]
    assert sent[1] == {"type": "file", "payload": {"token": tok}}
    out = [m for m in _msgs(client, admin_token, conv) if m["direction"] == "out"]
    assert [m["status"] for m in out] == ["sent", "sent"]


def test_a_stale_cdn_link_is_marked_not_retried(client, hub, admin_token, graph):
    ts = now_ms()
    url = graph.base_url.removesuffix("/v25.0") + "/cdn/gone.jpg"  # expired signature: 403
    fb_post(client, [{"sender": {"id": PSID}, "recipient": {"id": PAGE_ID}, "timestamp": ts,
                      "message": {"mid": "m_img_2", "attachments": [
                          {"type": "audio", "payload": {"url": url}}]}}])
    drain_all(hub)
    run_outbound(hub)
    conv = _conv(client, admin_token, "fb-test")
    (att,) = _msgs(client, admin_token, conv)[0]["attachments"]
    assert att["kind"] == "audio" and att["meta"]["fetch_error"] == "not_found"
    assert graph.cdn_downloads == ["gone.jpg"]  # once: a refusal is final


def test_a_mail_reply_carries_the_file_as_a_mime_attachment():
    from email import message_from_bytes, policy

    from tongdai.adapters.base import OutboundMessage
    from tongdai.adapters.email import sending
    from tongdai.adapters.email.settings import EmailSettings
    from tongdai.core.models import Attachment, AuthorKind

    settings = EmailSettings(address="support@shop.example.vn",
                             inbound={"smtp": {"host": "127.0.0.1", "port": 2525}},
                             outbound={"smtp": {"host": "127.0.0.1", "port": 25}})
    out = OutboundMessage("lan@example.vn", "Dạ em gửi hóa đơn ạ", AuthorKind.AGENT, "42",
                          attachments=[Attachment("file", name="Hóa đơn.pdf",
                                                  mime="application/pdf", data=PDF)])
    mail = message_from_bytes(sending.build(settings, out).as_bytes(), policy=policy.default)
    (part,) = list(mail.iter_attachments())
    assert part.get_filename() == "Hóa đơn.pdf" and part.get_content() == PDF
    assert part.get_content_type() == "application/pdf"
    assert mail.get_body(("plain",)).get_content().strip() == "Dạ em gửi hóa đơn ạ"
