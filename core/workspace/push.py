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

Only a customer's own message is pushed (direction in, author customer, kind message or
postback): not a page's echo, a system line, a follow or an automatic reply. The title is cut
to ``TITLE`` characters, so the encrypted body stays under the 4,096 bytes push services take.

Each (user, message, device) is pushed once however often the feed hands the event over
(``feed.act_once``, markers ``td:push:sent:*``). Every device of every user in a batch is
tried: one that fails (429, 5xx, network) is kept in ``td:push:retry:*`` / ``td:push:due`` and
tried again by the scheduler's ``push-retry`` tick with backoff until the push is ``TTL_S`` old
(Redis time), then dropped; the reactor never raises for it, so one broken device never holds
back another or the feed. A round (one batch, one tick) starts sends for at most ``ROUND_S``
and tries a push service it could not reach only once; the rest wait for the next tick. A
404/410 says the browser dropped the subscription, a 403 that it was made with another VAPID
key: either deletes it. Logs name users, conversations and subscription ids, never endpoints,
keys or text.
"""

from __future__ import annotations

import hashlib
import logging
import random
import time

import httpx
import orjson
import redis
from py_vapid import Vapid02

from tongdai.core import i18n, vapid
from tongdai.core.clock import now_ms, server_ms
from tongdai.core.errors import ConfigError, DeliveryError, NotFound
from tongdai.core.hub import Hub, data_dir
from tongdai.core.models import AuthorKind, Direction, EventKind, Message
from tongdai.core.pipeline import feed, store
from tongdai.core.workspace import pushsubs, users
from tongdai.core.workspace.hookdelivery import retry_after_s

log = logging.getLogger(__name__)

TTL_S = 3600
PREVIEW = 120          # characters of text in a push
HOLD_MS = 60_000       # a sender's claim on one push (act_once)
KEEP_S = 3 * 86400     # how long "pushed" is remembered (feed redeliveries come sooner)
JWT_S = 12 * 3600      # VAPID tokens live this long (push services take up to 24 h)
TIMEOUT = httpx.Timeout(5.0, connect=3.0)  # push services answer in well under a second
TITLE = 100            # characters of a title (a customer's name, a mentioner's)
RETRY_DELAYS_S = (15, 60, 180, 600, 1200)  # after try 1, 2, ...; the last repeats until TTL
JITTER = 0.2           # ± this share of a delay: one outage's retries spread out
ROUND_S = 10.0         # sends started in one reactor batch or retry tick; the rest wait
RETRY_BATCH = 200      # retries taken per tick
LEASE_MS = 60_000      # a taken retry comes back after this unless settled
_RETRY = b"push-retry"


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


def authorization(hub: Hub, endpoint: str) -> str:
    """``vapid t=<JWT>,k=<public key>`` for the endpoint's push service."""
    u = httpx.URL(endpoint)
    claims = {"aud": f"{u.scheme}://{u.netloc.decode()}", "sub": contact(hub),
              "exp": now_ms() // 1000 + JWT_S}
    signer = Vapid02(key(hub).private_key)
    # py_vapid checks ``sub``'s form strictly; ours is checked by the config already
    signer.conf = {"no-strict": True}
    return signer.sign(claims)["Authorization"]


def send(hub: Hub, sub: pushsubs.Subscription, payload: dict, topic: str,
         ttl_s: int = TTL_S) -> None:
    """One push to one device. Gone (404/410) or refused for its key (403): the subscription
    is deleted. Retryable (429, 5xx, network): DeliveryError(retryable=True; code
    ``unreachable`` for network errors). Refused otherwise: logged."""
    body = vapid.encrypt(orjson.dumps(payload), sub.p256dh, sub.auth)
    headers = {"TTL": str(max(1, ttl_s)), "Urgency": "high", "Topic": topic,
               "Content-Encoding": "aes128gcm", "Content-Type": "application/octet-stream",
               "Authorization": authorization(hub, sub.endpoint)}
    try:
        r = _client(hub).post(sub.endpoint, content=body, headers=headers)
    except httpx.HTTPError as exc:
        raise DeliveryError(f"push service of {sub.user}'s device {sub.id} unreachable "
                            f"({type(exc).__name__})", retryable=True,
                            code="unreachable") from None
    if r.status_code in (200, 201, 202, 204):
        return
    if r.status_code in (403, 404, 410):
        # 404/410: the browser dropped it. 403: made with another VAPID key (the hub's key
        # changed) — it will never be taken; the console subscribes again on its next load
        if r.status_code == 403:
            log.warning("push: %s's device %s was subscribed with another VAPID key (403); "
                        "subscription removed, the console subscribes again (every process "
                        "must have the same %s)", sub.user, sub.id, vapid.ENV)
        else:
            log.info("push: %s's device %s unsubscribed (%d); subscription removed", sub.user,
                     sub.id, r.status_code)
        try:
            pushsubs.remove(hub, sub.user, sub.id)
        except NotFound:
            pass
        return
    if r.status_code == 429 or r.status_code >= 500:
        raise DeliveryError(f"push service answered {r.status_code} for {sub.user}'s device "
                            f"{sub.id}", retryable=True, code=str(r.status_code),
                            retry_after=retry_after_s(r.headers.get("Retry-After")))
    log.warning("push: the push service refused a push to %s's device %s (%d)", sub.user,
                sub.id, r.status_code)


# -- one round of sends: every device tried, failures kept for later ---------------------------
class Round:
    """Sends made together (one reactor batch, one retry tick): at most ``ROUND_S`` spent on
    them (the rest wait in the retry set, due at once), and a push service that could not be
    reached is not tried again in the same round (each try may wait for a timeout)."""

    def __init__(self, hub: Hub, now: int | None = None) -> None:
        self.hub = hub
        self.now = server_ms(hub.redis) if now is None else now
        self.deadline = time.monotonic() + ROUND_S
        self.down: set[str] = set()
        self.sent = 0

    def attempt(self, sub: pushsubs.Subscription, marker: str, payload: dict, topic: str,
                created_ms: int, attempts: int = 0) -> None:
        """Push to one device once per ``marker`` (user:conv:message:device); a failure that
        may pass is kept in the retry set."""
        hub = self.hub
        if time.monotonic() > self.deadline or sub.service in self.down:
            _keep(hub, marker, sub, payload, topic, created_ms, attempts, self.now)
            return
        ttl_s = TTL_S - (self.now - created_ms) // 1000
        try:
            if feed.act_once(hub, hub.keys.push("sent", marker),
                             lambda: send(hub, sub, payload, topic, ttl_s),
                             f"push to {sub.user}'s device {sub.id}", HOLD_MS, KEEP_S):
                self.sent += 1
        except DeliveryError as exc:
            if exc.code == "unreachable":
                self.down.add(sub.service)
            if exc.retryable:
                wait = exc.retry_after if exc.code != "busy" else HOLD_MS / 1000
                _keep(hub, marker, sub, payload, topic, created_ms, attempts + 1,
                      self.now, wait)
                log.info("push: %s; tried again later", exc)
                return
            log.warning("push to %s's device %s not sent: %s", sub.user, sub.id, exc)
        if attempts:
            _forget(hub, marker)


def _delay_s(attempts: int, retry_after: float | None) -> float:
    base = RETRY_DELAYS_S[min(attempts, len(RETRY_DELAYS_S)) - 1] if attempts else 0
    base = base * random.uniform(1 - JITTER, 1 + JITTER)
    return max(base, min(retry_after or 0, TTL_S))


def _keep(hub: Hub, marker: str, sub: pushsubs.Subscription, payload: dict, topic: str,
          created_ms: int, attempts: int, now: int, retry_after: float | None = None) -> None:
    """Keep a push for a later try (``td:push:retry:<marker>``, due in ``td:push:due``); it
    expires with its TTL: a push that late is news no more."""
    left_s = TTL_S - (now - created_ms) // 1000
    if left_s <= 0:
        log.info("push to %s's device %s dropped: older than %d s", sub.user, sub.id, TTL_S)
        _forget(hub, marker)
        return
    sealed = hub.keyring.encrypt_text(orjson.dumps({
        "u": sub.user, "s": sub.id, "p": payload, "t": topic, "c": created_ms,
        "n": attempts}).decode(), _RETRY)
    pipe = hub.redis.pipeline(transaction=True)
    pipe.set(hub.keys.push("retry", marker), sealed, ex=left_s + 60)
    pipe.zadd(hub.keys.push("due"), {marker: now + int(_delay_s(attempts, retry_after) * 1000)})
    pipe.execute()


def _forget(hub: Hub, marker: str) -> None:
    pipe = hub.redis.pipeline(transaction=True)
    pipe.delete(hub.keys.push("retry", marker))
    pipe.zrem(hub.keys.push("due"), marker)
    pipe.execute()


@feed.tick("push-retry", 5.0)
def retry_due(hub: Hub, now: int | None = None) -> int:
    """Try again the pushes whose retry is due (the scheduler, every 5 s); returns pushes
    made. One older than its TTL (Redis time) is dropped, as is one whose device is gone."""
    rnd = Round(hub, now)
    k = hub.keys.push("due")
    markers = [m.decode() for m in hub.redis.zrangebyscore(k, "-inf", rnd.now, start=0,
                                                            num=RETRY_BATCH)]
    if not markers:
        return 0
    # leased: another scheduler leaves them alone meanwhile (act_once keeps them single anyway)
    hub.redis.zadd(k, {m: rnd.now + LEASE_MS for m in markers}, xx=True)
    pipe = hub.redis.pipeline(transaction=False)
    for m in markers:
        pipe.get(hub.keys.push("retry", m))
    found = [(m, _open_retry(hub, sealed)) for m, sealed in zip(markers, pipe.execute(),
                                                                  strict=True)]
    # oldest first: one conversation's pushes replace each other (tag, Topic), newest last
    found.sort(key=lambda mr: int(mr[1]["c"]) if mr[1] else 0)
    for marker, rec in found:
        sub = pushsubs.get(hub, rec["u"], rec["s"]) if rec else None
        if rec is None or sub is None or not hub.config.hub.notifications.push:
            _forget(hub, marker)
        elif rnd.now - int(rec["c"]) >= TTL_S * 1000:
            log.info("push to %s's device %s dropped after %d tries: older than %d s",
                     rec["u"], rec["s"], rec["n"], TTL_S)
            _forget(hub, marker)
        else:
            rnd.attempt(sub, marker, rec["p"], rec["t"], int(rec["c"]), max(1, int(rec["n"])))
    return rnd.sent


def _open_retry(hub: Hub, sealed: bytes | None) -> dict | None:
    if not sealed:
        return None
    try:
        return orjson.loads(hub.keyring.decrypt_text(sealed, _RETRY) or "null")
    except (ValueError, orjson.JSONDecodeError):
        return None


def push_to(hub: Hub, rnd: Round, user: str, ref: str, payload: dict, topic: str,
            created_ms: int) -> None:
    """Push ``payload`` to each of ``user``'s devices once per ``ref``; every device is tried,
    a failed one kept for a later try."""
    for sub in pushsubs.listing(hub, user):
        rnd.attempt(sub, f"{user}:{ref}:{sub.id}", payload, topic, created_ms)


def _lang(hub: Hub, user: users.User) -> str:
    return user.language or hub.config.hub.console.default_language


def _preview(hub: Hub, lang: str, msg) -> str:
    text = (msg.text or "").strip()
    if not text and msg.attachments:
        text = " ".join(f"[{a.kind}]" for a in msg.attachments)
    text = text or i18n.strings(lang).get(f"kind.{msg.kind}", "")
    return _cut(text, PREVIEW)


def _cut(text: str, n: int) -> str:
    return text if len(text) <= n else text[:n - 1] + "…"


def _payload(hub: Hub, lang: str, conv_id: str, title: str, body: str) -> dict:
    base = hub.config.hub.notifications.console_url.rstrip("/")
    # a push's encrypted body must stay under 4,096 bytes (RFC 8030): the title is cut too
    return {"title": _cut(title, TITLE), "body": body, "conversation_id": conv_id,
            "url": f"{base}/console#{conv_id}", "tag": f"tongdai-{conv_id}", "lang": lang}


def _topic(conv_id: str) -> str:
    # RFC 8030: at most 32 characters of the base64url alphabet
    return "c" + hashlib.sha256(conv_id.encode()).hexdigest()[:24]


def _subscriber(hub: Hub, name: str | None) -> users.User | None:
    if not name or not hub.redis.exists(hub.keys.push_subscriptions(name)):
        return None
    user = users.find(hub, name)
    return None if user is None or user.disabled else user


def _pushable(msg: Message) -> bool:
    """A customer's own message: not a page's echo, a system line (pinned, blocked the bot),
    a follow, an unsupported event or an automatic reply (the same test as the bot's)."""
    return (msg.direction == Direction.IN and msg.author_kind == AuthorKind.CUSTOMER
            and msg.kind in (EventKind.MESSAGE.value, EventKind.POSTBACK.value))


def on_customer_message(hub: Hub, rnd: Round, data: dict, created_ms: int) -> None:
    conv_id, mid = str(data.get("conversation_id") or ""), str(data.get("message_id") or "")
    if not conv_id or not mid or data.get("author_id"):
        return
    try:
        conv = store.get_conversation(hub, conv_id)
        user = _subscriber(hub, conv.assignee)
        if user is None:
            return
        msg = store.get_message(hub, conv_id, mid)
        if not _pushable(msg):
            return
        customer = store.get_customer(hub, conv.customer_id)
    except NotFound:  # erased or merged away since
        return
    lang = _lang(hub, user)
    name = customer.name or i18n.text(lang, "customer.unnamed", id=conv.customer_id)
    push_to(hub, rnd, user.name, f"{conv_id}:{mid}",
            _payload(hub, lang, conv_id, name, _preview(hub, lang, msg)), _topic(conv_id),
            created_ms)


def on_note(hub: Hub, rnd: Round, data: dict, created_ms: int) -> None:
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
        push_to(hub, rnd, user.name, f"{conv_id}:{mid}",
                _payload(hub, lang, conv_id, i18n.text(lang, "push.mention", who=who),
                         _preview(hub, lang, note)), _topic(conv_id), created_ms)


@feed.reactor("webpush")
def react(hub: Hub, events: list[feed.FeedEvent]) -> None:
    """Pushes for customers' messages to their assignee and for mentions in notes. A device
    whose push fails is tried again later (``retry_due``); it never holds back the others or
    the feed."""
    if not hub.config.hub.notifications.push:
        return
    rnd = Round(hub)
    for e in events:
        created_ms = int(e.data.get("ts") or rnd.now)
        if rnd.now - created_ms >= TTL_S * 1000:
            continue  # the reactor was away: a push that late is news no more
        try:
            if e.type == "message.created":
                on_customer_message(hub, rnd, e.data, created_ms)
            elif e.type == "note.created":
                on_note(hub, rnd, e.data, created_ms)
        except redis.RedisError:
            raise  # the batch comes back; what went out is marked
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
