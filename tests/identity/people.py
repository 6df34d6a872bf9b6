"""Raw platform events of customers, written like the platforms write them (Telegram Bot API
updates, Zalo OA webhooks from tests/fixtures/zalo, mail with an MTA's Authentication-Results),
so identity tests run through the real adapters and the real ingest script."""

from __future__ import annotations

import itertools
from email.message import EmailMessage
from email.utils import make_msgid

import orjson

from tongdai.core import clock
from tongdai.core.hub import Hub
from tongdai.core.models import RawEvent
from tongdai.core.pipeline import ingest, rawlog

ZALO_OA = "388613280878808645"
MX = "mx.shop.example.vn"
_seq = itertools.count(1)


def config_extra() -> str:
    """A Zalo OA and a mailbox beside the conftest's Telegram bot (tg-test)."""
    return f"""
  - id: zalo-test
    adapter: zalo
    settings:
      oa_id: "{ZALO_OA}"
      app_id: "3608465248940903967"
      oa_secret_key: zalo-oa-secret-key-test
      app_secret: zalo-app-secret-test
      access_token: zalo-access-token-test
      refresh_token: zalo-refresh-token-test
      api_base: http://127.0.0.1:9
      oauth_base: http://127.0.0.1:9
  - id: mail
    adapter: email
    settings:
      address: support@shop.example.vn
      inbound:
        webhook:
          signing_key: mailgun-test-key
      trusted_authserv_id: {MX}
identity:
  regions: [VN, CN]
"""


def tg_text(uid: int, text: str, name: str = "Khách") -> RawEvent:
    n = next(_seq)
    return _raw("tg-test", {"update_id": n, "message": {
        "message_id": n, "date": 1_790_000_000 + n, "text": text,
        "from": {"id": uid, "is_bot": False, "first_name": name},
        "chat": {"id": uid, "type": "private"}}})


def tg_contact(uid: int, phone: str, own: bool = True, name: str = "Khách") -> RawEvent:
    """A shared contact: Telegram vouches for the number only when it is the sender's own."""
    n = next(_seq)
    return _raw("tg-test", {"update_id": n, "message": {
        "message_id": n, "date": 1_790_000_000 + n,
        "from": {"id": uid, "is_bot": False, "first_name": name},
        "chat": {"id": uid, "type": "private"},
        "contact": {"phone_number": phone, "first_name": name,
                    "user_id": uid if own else uid + 10**9}}})


def zalo_text(user: str, text: str) -> RawEvent:
    n = next(_seq)
    return _raw("zalo-test", {"app_id": "3608465248940903967", "sender": {"id": user},
                              "recipient": {"id": ZALO_OA}, "event_name": "user_send_text",
                              "message": {"text": text, "msg_id": f"zm{n}"},
                              "timestamp": str(1_790_000_000_000 + n)})


def zalo_submit(user: str, phone: str, name: str = "Khách") -> RawEvent:
    """Zalo's user_submit_info: the number the user sent through the OA's own form."""
    n = next(_seq)
    return _raw("zalo-test", {"app_id": "3608465248940903967", "sender": {"id": user},
                              "recipient": {"id": ZALO_OA}, "event_name": "user_submit_info",
                              "timestamp": str(1_790_000_000_000 + n),
                              "info": {"name": name, "phone": phone}})


def mail(sender: str, text: str, dmarc: bool, authserv: str = MX) -> RawEvent:
    """A customer's mail; our MTA's Authentication-Results says whether DMARC passed."""
    m = EmailMessage()
    m["Authentication-Results"] = (f"{authserv}; dkim={'pass' if dmarc else 'fail'} "
                                   f"header.d={sender.rpartition('@')[2]}; "
                                   f"dmarc={'pass' if dmarc else 'fail'}")
    m["Received"] = f"from customer.example by {authserv} with ESMTPS"  # our MX's hop
    m["From"] = sender
    m["To"] = "support@shop.example.vn"
    m["Subject"] = "Hỏi đơn hàng"
    m["Message-ID"] = make_msgid(domain="customer.example")
    m.set_content(text)
    return RawEvent("mail", m.as_bytes(), {}, clock.now_ms())


def _raw(channel: str, body: dict) -> RawEvent:
    return RawEvent(channel, orjson.dumps(body), {}, clock.now_ms())


def feed(hub: Hub, *raws: RawEvent) -> ingest.IngestResult:
    """Process events as an ingest worker would (each its own batch: arrival order)."""
    total = ingest.IngestResult()
    for raw in raws:
        r = ingest.process(hub, [raw])
        assert r.dead == 0, rawlog.dead_letters(hub, 5)
        total.stored += r.stored
    return total


def customer_of(hub: Hub, channel: str, user: str) -> str | None:
    """The customer an identity belongs to now."""
    from tongdai.core.pipeline import store

    if channel == "mail":  # the mailbox is the identity (tests/identity/test_population.py)
        from tongdai.core.identity.identifiers import email

        user = email(user)
    uid, _ = store.identity_of(hub, channel, user, None)
    c = hub.redis.hget(hub.keys.identity_index(channel), uid)
    return c.decode() if c else None
