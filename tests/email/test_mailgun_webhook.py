"""Mailgun-style inbound posts: only fresh, correctly signed, never-seen requests are stored,
and what is stored is the raw mail (``body-mime``), not the form around it."""

from __future__ import annotations

import time

from tests.email.conftest import SIGNING_KEY, customer_mail
from tests.helpers import drain_all
from tongdai.core.pipeline import rawlog


def _post(client, adapter, mime: bytes, **override):
    headers, body = adapter.webhook_post(mime)
    for field, value in override.items():  # rewrite one signed field in the encoded form
        start = body.index(f'name="{field}"\r\n\r\n'.encode()) + len(field) + 11
        end = body.index(b"\r\n", start)
        body = body[:start] + value.encode() + body[end:]
    return client.post("/webhooks/mail/mime", data=body, headers=headers)


def _raw_count(hub) -> int:
    return sum(hub.redis.xlen(hub.keys.raw(s)) for s in range(hub.shards))


def test_signed_post_stores_the_raw_mail_and_it_is_processed(hub, client):
    mime = customer_mail("Cho mình hỏi phí ship ra Hà Nội?").as_bytes()
    r = _post(client, hub.adapters["mail"], mime)
    assert r.status_code == 200, r.data
    (batch,) = rawlog.since(hub, 0)
    (raw,) = batch.events
    assert raw.body == mime  # the mail itself, byte for byte
    assert drain_all(hub)["stored"] == 1


def test_bad_signature_old_timestamp_and_replay_are_refused(hub, client):
    adapter = hub.adapters["mail"]
    mime = customer_mail("xin chào").as_bytes()
    assert _post(client, adapter, mime, signature="0" * 64).status_code == 401
    old = str(int(time.time()) - 300)  # re-signed, but 5 minutes old
    headers, body = adapter.webhook_post(mime)
    from tongdai.adapters.email import mailgun

    sig = mailgun.sign(SIGNING_KEY, old, "tok-old")
    r = client.post("/webhooks/mail", data={"timestamp": old, "token": "tok-old",
                                            "signature": sig, "body-mime": mime.decode()})
    assert r.status_code == 401 and "old" in r.json["error"]["message"]
    assert _raw_count(hub) == 0
    headers, body = adapter.webhook_post(mime)
    assert client.post("/webhooks/mail", data=body, headers=headers).status_code == 200
    replayed = client.post("/webhooks/mail", data=body, headers=headers)
    assert replayed.status_code == 401 and "token" in replayed.json["error"]["message"]
    assert _raw_count(hub) == 1


def test_post_without_the_raw_mail_is_a_clear_400(hub, client):
    ts, token = str(int(time.time())), "tok-parsed"
    from tongdai.adapters.email import mailgun

    r = client.post("/webhooks/mail", data={
        "timestamp": ts, "token": token, "signature": mailgun.sign(SIGNING_KEY, ts, token),
        "sender": "a@b.vn", "body-plain": "hi"})
    assert r.status_code == 400
    assert "mime" in r.json["error"]["message"]
    assert _raw_count(hub) == 0


def test_an_8bit_gb2312_mail_arrives_byte_for_byte(hub, client):
    """Mailgun posts the raw mail as a form field: 8-bit GBK bytes must not be read as UTF-8."""
    from tests.conftest import FIXTURES

    mime = (FIXTURES / "email" / "01_gb2312_chinese_plain.eml").read_bytes()
    assert any(b > 0x7F for b in mime)  # really 8-bit
    r = _post(client, hub.adapters["mail"], mime)
    assert r.status_code == 200
    (batch,) = rawlog.since(hub, 0)
    assert batch.events[0].body == mime
