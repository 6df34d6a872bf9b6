"""Web Push to agents' devices: the ``webpush`` feed reactor.

The console notifies only while a tab is open; this reaches an agent whose phone is in a pocket.
On ``message.created`` of a customer's message in a conversation assigned to someone, that
assignee's devices get a push; on ``note.created``, every user the note @mentions gets one.
Only users who turned push on in a browser have subscriptions (``pushsubs``); nothing else is
looked up for the others.

A push (RFC 8030) is one POST to the subscription's endpoint: the payload encrypted to the
browser's keys (RFC 8291, ``aes128gcm`` by ``http_ece``), signed with the hub's VAPID key
(RFC 8292, ``py_vapid``; ``core/vapid.py``), ``TTL`` one hour (a push older than that is news
no more), ``Urgency: high`` (phones wake for it) and a ``Topic`` per conversation (the push
service keeps only the newest undelivered one). The push service sees the timing and size,
never the text. The payload (JSON, for the service worker ``webhooks/static/sw.js``):
``title`` (the customer's name), ``body`` (a preview), ``conversation_id``, ``url`` and
``tag`` (one conversation's notifications replace each other).

Each (user, message, device) is pushed once however often the feed hands the event over
(``feed.act_once``, markers ``td:push:sent:*``). A 404/410 says the browser dropped the
subscription: it is deleted. 429, 5xx and network errors raise a retryable DeliveryError: the
batch stays pending and comes back; what went out is not pushed again. Logs name users,
conversations and subscription ids, never endpoints, keys or text.
"""

from __future__ import annotations

import hashlib
import logging
import os

import http_ece
import httpx
import orjson
from cryptography.hazmat.primitives.asymmetric import ec
from py_vapid import Vapid02

from tongdai.core import i18n, vapid
from tongdai.core.clock import now_ms
from tongdai.core.errors import ConfigError, DeliveryError, NotFound
from tongdai.core.hub import Hub, data_dir
from tongdai.core.pipeline import feed, store
from tongdai.core.workspace import pushsubs, users

log = logging.getLogger(__name__)

TTL_S = 3600
PREVIEW = 120          # characters of text in a push
HOLD_MS = 60_000       # a sender's claim on one push (act_once)
KEEP_S = 3 * 86400     # how long "pushed" is remembered (feed redeliveries come sooner)
JWT_S = 12 * 3600      # VAPID tokens live this long (push services take up to 24 h)
TIMEOUT = httpx.Timeout(10.0, connect=5.0)


def key(hub: Hub) -> vapid.VapidKey:
    """The hub's VAPID key (environment or ``<data dir>/vapid.json``); ConfigError when
    neither is set and the data dir cannot hold the file."""
    def load() -> vapid.VapidKey:
        try:
            return vapid.load(data_dir())
        except OSError as exc:
            raise ConfigError(str(data_dir() / vapid.FILE), vapid.ENV,
                              f"no VAPID key and none can be stored ({exc.strerror})",
                              "set the environment variable (`tongdai keys generate` prints "
                              "one) or make the data dir writable") from None
    return hub.memo("push.vapid", load)


def contact(hub: Hub) -> str:
    """The VAPID ``sub``: who runs this hub, for the push services' operators."""
    n = hub.config.hub.notifications
    if n.push_contact:
        return n.push_contact
    if n.console_url.startswith("https://"):
        return n.console_url.rstrip("/")
    return "mailto:webpush@tongdai.invalid"


def _client(hub: Hub) -> httpx.Client:
    return hub.memo("push.http", lambda: httpx.Client(timeout=TIMEOUT, follow_redirects=False))


def encrypt(payload: bytes, p256dh: str, auth: str) -> bytes:
    """RFC 8291: ``payload`` for the browser holding the subscription's keys (one record)."""
    return http_ece.encrypt(payload, salt=os.urandom(16),
                            private_key=ec.generate_private_key(ec.SECP256R1()),
                            dh=vapid.b64url_decode(p256dh),
                            auth_secret=vapid.b64url_decode(auth), version="aes128gcm")


def authorization(hub: Hub, endpoint: str) -> str:
    """``vapid t=<JWT>,k=<public key>`` for the endpoint's push service."""
    u = httpx.URL(endpoint)
    claims = {"aud": f"{u.scheme}://{u.netloc.decode()}", "sub": contact(hub),
              "exp": now_ms() // 1000 + JWT_S}
    signer = Vapid02(key(hub).private_key)
    # py_vapid checks ``sub``'s form strictly; ours is checked by the config already
    signer.conf = {"no-strict": True}
    return signer.sign(claims)["Authorization"]


def send(hub: Hub, sub: pushsubs.Subscription, payload: dict, topic: str) -> None:
    """One push to one device. Gone (404/410): the subscription is deleted. Retryable
    (429, 5xx, network): DeliveryError(retryable=True). Refused otherwise: logged."""
    body = encrypt(orjson.dumps(payload), sub.p256dh, sub.auth)
    headers = {"TTL": str(TTL_S), "Urgency": "high", "Topic": topic,
               "Content-Encoding": "aes128gcm", "Content-Type": "application/octet-stream",
               "Authorization": authorization(hub, sub.endpoint)}
    try:
        r = _client(hub).post(sub.endpoint, content=body, headers=headers)
    except httpx.HTTPError as exc:
        raise DeliveryError(f"push service of {sub.user}'s device {sub.id} unreachable "
                            f"({type(exc).__name__})", retryable=True) from None
    if r.status_code in (200, 201, 202, 204):
        return
    if r.status_code in (404, 410):
        log.info("push: %s's device %s unsubscribed (%d); subscription removed", sub.user,
                 sub.id, r.status_code)
        try:
            pushsubs.remove(hub, sub.user, sub.id)
        except NotFound:
            pass
        return
    if r.status_code == 429 or r.status_code >= 500:
        raise DeliveryError(f"push service answered {r.status_code} for {sub.user}'s device "
                            f"{sub.id}", retryable=True, code=str(r.status_code))
    log.warning("push: the push service refused a push to %s's device %s (%d)", sub.user,
                sub.id, r.status_code)


def push_to(hub: Hub, user: str, ref: str, payload: dict, topic: str) -> int:
    """Push ``payload`` to each of ``user``'s devices once per ``ref``; returns pushes made."""
    done = 0
    for sub in pushsubs.listing(hub, user):
        if feed.act_once(hub, hub.keys.push_sent(f"{user}:{ref}:{sub.id}"),
                         lambda sub=sub: send(hub, sub, payload, topic),
                         f"push to {user}'s device {sub.id}", HOLD_MS, KEEP_S):
            done += 1
    return done


def _lang(hub: Hub, user: users.User) -> str:
    return user.language or hub.config.hub.console.default_language


def _preview(hub: Hub, lang: str, msg) -> str:
    text = (msg.text or "").strip()
    if not text and msg.attachments:
        text = " ".join(f"[{a.kind}]" for a in msg.attachments)
    text = text or i18n.strings(lang).get(f"kind.{msg.kind}", "")
    return text if len(text) <= PREVIEW else text[:PREVIEW - 1] + "…"


def _payload(hub: Hub, lang: str, conv_id: str, title: str, body: str) -> dict:
    base = hub.config.hub.notifications.console_url.rstrip("/")
    return {"title": title, "body": body, "conversation_id": conv_id,
            "url": f"{base}/console#{conv_id}", "tag": f"tongdai-{conv_id}", "lang": lang}


def _topic(conv_id: str) -> str:
    # RFC 8030: at most 32 characters of the base64url alphabet
    return "c" + hashlib.sha256(conv_id.encode()).hexdigest()[:24]


def _subscriber(hub: Hub, name: str | None) -> users.User | None:
    if not name or not hub.redis.exists(hub.keys.push_subscriptions(name)):
        return None
    user = users.find(hub, name)
    return None if user is None or user.disabled else user


def on_customer_message(hub: Hub, data: dict) -> None:
    conv_id, mid = str(data.get("conversation_id") or ""), str(data.get("message_id") or "")
    if not conv_id or not mid or data.get("author_id"):
        return
    try:
        conv = store.get_conversation(hub, conv_id)
        user = _subscriber(hub, conv.assignee)
        if user is None:
            return
        msg = store.get_message(hub, conv_id, mid)
        customer = store.get_customer(hub, conv.customer_id)
    except NotFound:  # erased or merged away since
        return
    lang = _lang(hub, user)
    name = customer.name or i18n.text(lang, "customer.unnamed", id=conv.customer_id)
    push_to(hub, user.name, f"{conv_id}:{mid}",
            _payload(hub, lang, conv_id, name, _preview(hub, lang, msg)), _topic(conv_id))


def on_note(hub: Hub, data: dict) -> None:
    conv_id, mid = str(data.get("conversation_id") or ""), str(data.get("message_id") or "")
    names = [n for n in data.get("mentions") or [] if isinstance(n, str)]
    if not conv_id or not mid or not names:
        return
    author = users.find(hub, str(data.get("author_id") or ""))
    who = (author.display_name or author.name) if author else str(data.get("author_id") or "")
    for name in names:
        user = _subscriber(hub, name)
        if user is None:
            continue
        try:
            note = store.get_message(hub, conv_id, mid)
        except NotFound:
            return
        lang = _lang(hub, user)
        push_to(hub, user.name, f"{conv_id}:{mid}",
                _payload(hub, lang, conv_id, i18n.text(lang, "push.mention", who=who),
                         _preview(hub, lang, note)), _topic(conv_id))


@feed.reactor("webpush")
def react(hub: Hub, events: list[feed.FeedEvent]) -> None:
    """Pushes for customers' messages to their assignee and for mentions in notes."""
    if not hub.config.hub.notifications.push:
        return
    for e in events:
        try:
            if e.type == "message.created":
                on_customer_message(hub, e.data)
            elif e.type == "note.created":
                on_note(hub, e.data)
        except DeliveryError as exc:
            if exc.retryable:
                raise  # the batch comes back; what went out is marked
            log.warning("push for feed event %s not sent: %s", e.id, exc)
        except Exception:  # one bad event must not hold back every later one
            log.exception("push for feed event %s failed; skipped", e.id)


def public_key(hub: Hub) -> str | None:
    """The key the console subscribes with; None when push is off (or has no key: said in
    the log, the console offers no push rather than failing)."""
    if not hub.config.hub.notifications.push:
        return None
    try:
        return key(hub).public_key
    except ConfigError as exc:
        log.error("web push is unavailable: %s", exc)
        return None
