"""Opt-outs from broadcasts: a customer who answers "stop" is not messaged again.

A reactor on the change feed (``broadcast-optout``). A customer's message that is only a stop
word — "stop", "unsubscribe", "hủy" / "huy" (with or without diacritics), "hủy đăng ký",
"dừng", "退订" / "退訂" — within ``WINDOW_MS`` of a broadcast they received is recorded on the
customer (``optout`` in ``td:customer:{id}``: when, on which channel, the word) and every later
broadcast skips them (``opted_out``). They get one short confirmation in their language, as
the bot's message (within the platform's window: it just wrote). The same word with no
broadcast before it ("hủy" may mean cancel my order) is left to the agents. A customer who asks
for news again is let back in by a supervisor or admin (``opt_in``: console, API, CLI; audited).
"""

from __future__ import annotations

import logging
import re

import orjson

from tongdai.core.clock import now_ms
from tongdai.core.errors import NotFound, WindowClosed
from tongdai.core.hub import Hub
from tongdai.core.models import AuthorKind, Direction, EventKind, Message
from tongdai.core.pipeline import feed, store
from tongdai.core.pipeline.language import fold_latin
from tongdai.core.workspace import audit
from tongdai.core.workspace.broadcast_send import LAST_FIELD

log = logging.getLogger(__name__)
WINDOW_MS = 30 * 86400 * 1000
WORDS = {"stop", "unsubscribe", "huy", "huy dang ky", "dung", "dung lai", "khong nhan tin",
         "退订", "退訂", "取消订阅", "取消訂閱"}
_NOISE = re.compile(r"[\s\W_]+", re.UNICODE)
CONFIRM = {
    "vi": "Bạn đã hủy nhận tin thông báo. Chúng tôi sẽ không gửi thêm.",
    "en": "You have unsubscribed: we will not send you announcements any more.",
    "zh-Hans": "您已退订，我们不会再向您发送通知。",
    "zh-Hant": "您已退訂，我們不會再向您發送通知。",
}


def is_stop(text: str | None) -> bool:
    """Only a stop word (case, diacritics, punctuation and spacing aside)."""
    folded = " ".join(_NOISE.sub(" ", fold_latin((text or "").casefold())).split())
    return bool(folded) and len(folded) <= 30 and folded in WORDS


def opted_out(hub: Hub, customer_id: str) -> dict | None:
    """The customer's opt-out (``ts``, ``channel``, ``word``) or None."""
    raw = hub.redis.hget(hub.keys.customer(customer_id), "optout")
    return orjson.loads(raw) if raw else None


def opt_in(hub: Hub, customer_id: str, actor: str) -> dict | None:
    """Broadcasts may reach the customer again (they asked for news): the opt-out that was
    cleared, or None when there was none (calling it twice changes nothing more). Audited as
    ``customer.opted_in`` with when and where they had opted out (not the word they wrote)."""
    pipe = hub.redis.pipeline(transaction=True)
    pipe.hget(hub.keys.customer(customer_id), "optout")
    pipe.hdel(hub.keys.customer(customer_id), "optout")
    raw, _ = pipe.execute()
    if not raw:
        return None
    was = orjson.loads(raw)
    audit.record(hub, actor, "customer.opted_in", customer_id,
                 {"opted_out_ts": was.get("ts"), "channel": was.get("channel")})
    return was


def handle(hub: Hub, conv_id: str, mid: str) -> str:
    """"opted_out" when the message was a stop answer to a broadcast, else ""."""
    blob = hub.redis.hget(hub.keys.messages(conv_id), mid)
    if blob is None:
        return ""
    msg = Message.from_blob(mid, conv_id, blob)
    if (msg.direction != Direction.IN or msg.author_kind != AuthorKind.CUSTOMER
            or msg.kind != EventKind.MESSAGE.value):
        return ""
    customer = (hub.redis.hget(hub.keys.conversation(conv_id), "customer") or b"").decode()
    last, already = hub.redis.hmget(hub.keys.customer(customer), [LAST_FIELD, "optout"])
    if not customer or already or not last or msg.received_ts_ms - int(last) > WINDOW_MS:
        return ""
    text = store.reveal(hub, msg).text
    if not is_stop(text):
        return ""
    hub.redis.hset(hub.keys.customer(customer), "optout", orjson.dumps(
        {"ts": now_ms(), "channel": msg.channel_id, "word": (text or "").strip()[:30]}))
    lang = next((t[5:] for t in reversed(msg.tags) if t.startswith("lang:")), "")
    if lang not in CONFIRM:
        lang = {"zh": "zh-Hans"}.get(lang.partition("-")[0], lang.partition("-")[0])
    if lang not in CONFIRM:  # "huy" alone is too short for the detector: Vietnamese then
        lang = "zh-Hans" if any("\u4e00" <= ch <= "\u9fff" for ch in text or "") else (
            "en" if fold_latin((text or "").casefold()).strip() in ("stop", "unsubscribe")
            else "vi")
    from tongdai.core.pipeline.outbound import create_reply

    try:
        create_reply(hub, conv_id, CONFIRM[lang], "broadcast", f"optout:{conv_id}:{mid}",
                     "system", channel_id=msg.channel_id, author_kind=AuthorKind.BOT)
    except (WindowClosed, NotFound) as exc:
        log.info("opt-out confirmation in conversation %s not sent: %s", conv_id,
                 type(exc).__name__)
    return "opted_out"


@feed.reactor("broadcast-optout")
def on_feed(hub: Hub, events: list[feed.FeedEvent]) -> None:
    """Each customer message once (create_reply's idempotency key makes a redelivery
    harmless)."""
    for e in events:
        if e.type == "message.created" and e.data.get("message_id"):
            handle(hub, str(e.data["conversation_id"]), str(e.data["message_id"]))
