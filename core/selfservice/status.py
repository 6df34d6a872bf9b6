"""Ticket status: a customer asks where their conversation stands and the bot says.

Asked by ``/status`` (Telegram's command, ``/status 123`` for an older ticket), a button whose
payload is ``ss:status``, or words: "tình trạng", "trạng thái", "ticket", "status", "进度",
"進度" (folded like the hand-off words; ``status_words`` adds more). On mail the ticket number
is the conversation the reply threads into (its ``[#id]`` subject tag), already checked to be
the sender's by ingest.

The answer, in the customer's language: the state (waiting / being handled / pending /
resolved), the assigned agent's display name or the place in the queue, and when to expect an
answer from the SLA due time (``sla_due``), phrased as the acknowledgements phrase it
("trong khoảng 30 phút", "by 08:30 tomorrow", "在周一08:30前"). Only about the customer's own
conversations: a number that is not theirs is refused, and nothing about it is said.

Sent like the bot's answers: within the platform's window (refused: counted and nothing
sent), never to automatic mail (not a message), once per message (``td:survey:status:…``
marker and the idempotency key ``st:<conv>:<message>``).
"""

from __future__ import annotations

import logging
import re
from zoneinfo import ZoneInfo

from tongdai.core.clock import now_ms
from tongdai.core.errors import NotFound, WindowClosed
from tongdai.core.hub import Hub
from tongdai.core.models import AuthorKind, Direction, EventKind, Message
from tongdai.core.pipeline import feed, sla, store
from tongdai.core.pipeline.acknowledgement_phrases import expected_phrase
from tongdai.core.pipeline.acknowledgements import pick
from tongdai.core.pipeline.tagging import fold_chinese

log = logging.getLogger(__name__)
PRESS = "ss:status"
AUTHOR = "status"
STATUS_WORDS = ("tình trạng", "trạng thái", "ticket", "status", "kiểm tra đơn",
                "进度", "进展", "处理到哪")
_COMMAND = re.compile(r"/status(?:@\w+)?(?:\s+#?(\d{1,12}))?\s*", re.IGNORECASE)
_NUMBER = re.compile(r"#(\d{1,12})\b")

TEXTS = {
    "vi": {"open": "Yêu cầu #{id} đang chờ nhân viên hỗ trợ, bạn đang ở vị trí {pos} trong "
                   "hàng đợi.",
           "assigned": "Yêu cầu #{id} đang được {agent} xử lý.",
           "pending": "Yêu cầu #{id} đang tạm chờ (chúng tôi sẽ liên hệ lại).",
           "resolved": "Yêu cầu #{id} đã được giải quyết.",
           "expected": " Bạn sẽ nhận được phản hồi {expected}.",
           "not_yours": "Mã #{asked} không phải yêu cầu của bạn nên chúng tôi không thể cho "
                        "biết. "},
    "en": {"open": "Ticket #{id} is waiting for an agent; you are number {pos} in the queue.",
           "assigned": "Ticket #{id} is being handled by {agent}.",
           "pending": "Ticket #{id} is on hold (we will get back to you).",
           "resolved": "Ticket #{id} has been resolved.",
           "expected": " Expect an answer {expected}.",
           "not_yours": "#{asked} is not one of your tickets, so we cannot tell you about "
                        "it. "},
    "zh-Hans": {"open": "工单 #{id} 正在等待客服处理，您在队列中排第 {pos} 位。",
                "assigned": "工单 #{id} 正由 {agent} 处理。",
                "pending": "工单 #{id} 暂时挂起（我们会再联系您）。",
                "resolved": "工单 #{id} 已解决。",
                "expected": "预计{expected}回复您。",
                "not_yours": "#{asked} 不是您的工单，无法告知。"},
    "zh-Hant": {"open": "工單 #{id} 正在等待客服處理，您在隊列中排第 {pos} 位。",
                "assigned": "工單 #{id} 正由 {agent} 處理。",
                "pending": "工單 #{id} 暫時掛起（我們會再聯絡您）。",
                "resolved": "工單 #{id} 已解決。",
                "expected": "預計{expected}回覆您。",
                "not_yours": "#{asked} 不是您的工單，無法告知。"},
}


def asks(msg: Message, extra: tuple[str, ...] | list[str] = ()) -> tuple[bool, str | None]:
    """(a status question?, the ticket number it names, if any)."""
    from tongdai.core.selfservice.bot import _folded_words

    if msg.payload == PRESS:
        return True, None
    text = (msg.text or "").strip()
    m = _COMMAND.fullmatch(text)
    if m:
        return True, m.group(1)
    if not text or len(text) > 200:  # a long message is a question for a person
        return False, None
    latin, han = _folded_words(text), fold_chinese(text)
    for word in (*STATUS_WORDS, *extra):
        w = _folded_words(word)
        if (w.strip() and w in latin) or (not w.strip() and fold_chinese(word) in han):
            n = _NUMBER.search(text)
            return True, n.group(1) if n else None
    return False, None


def describe(hub: Hub, conv_id: str, lang: str, at_ms: int) -> str:
    """Where the conversation stands, said to its customer."""
    t = TEXTS[lang]
    h = {k.decode(): v.decode() for k, v in hub.redis.hgetall(hub.keys.conversation(conv_id))
         .items()}
    state, who = h.get("status", "open"), h.get("assignee", "")
    if state in ("resolved", "pending"):
        return t[state].format(id=conv_id)
    if who:
        name = hub.redis.hget(hub.keys.user(who), "display_name")
        said = t["assigned"].format(id=conv_id, agent=(name or who.encode()).decode())
    else:
        rank = hub.redis.zrank(hub.keys.queue(h.get("queue", "")), conv_id)
        said = t["open"].format(id=conv_id, pos=(rank or 0) + 1)
    due = int(h["sla_due"]) if h.get("sla_due") else None
    if due is None:
        return said
    cal = sla.plan(hub).policy(h.get("channel", ""), int(h.get("priority") or 0),
                               h.get("queue", ""))[1]
    zone = ZoneInfo(hub.config.hub.notifications.timezone) if cal.always else cal.tz
    return said + t["expected"].format(
        expected=expected_phrase(lang, at_ms, due, cal.is_open(at_ms), zone))


def handle(hub: Hub, conv_id: str, mid: str) -> str:
    """Answer one stored message if it asks for the status: "answered", "refused" (window
    closed) or "" (not a status question, not a customer's message, off)."""
    cfg = hub.config.hub.selfservice
    blob = hub.redis.hget(hub.keys.messages(conv_id), mid)
    if blob is None:
        return ""
    msg = Message.from_blob(mid, conv_id, blob)
    if (msg.direction != Direction.IN or msg.author_kind != AuthorKind.CUSTOMER
            or msg.kind not in (EventKind.MESSAGE.value, EventKind.POSTBACK.value)
            or not cfg.on(msg.channel_id, "status") or msg.channel_id not in hub.adapters):
        return ""
    msg = store.reveal(hub, msg)
    asked, number = asks(msg, cfg.status_words)
    if not asked:
        return ""
    out: list[str] = []
    feed.act_once(hub, hub.keys.survey("status", conv_id, mid),
                  lambda: out.append(_answer(hub, conv_id, msg, number)),
                  "the ticket status", hold_ms=60_000, keep_s=7 * 86400)
    return out[0] if out else ""


def language_of(hub: Hub, conv_id: str, msg: Message | None = None) -> str:
    """The message's language, unless it is the bare command or a press ("/status" says
    nothing of it); else the latest of the customer's recent messages that has one ("" when
    none does)."""
    if msg is not None and not _COMMAND.fullmatch((msg.text or "").strip()) and not msg.payload:
        tag = next((t[5:] for t in reversed(msg.tags) if t.startswith("lang:")), "")
        if tag:
            return tag
    ids = hub.redis.zrevrange(hub.keys.timeline(conv_id), 0, 9)
    for blob, mid in zip(hub.redis.hmget(hub.keys.messages(conv_id), ids) if ids else [], ids):
        if blob is None or (msg is not None and mid.decode() == msg.id):
            continue
        m = Message.from_blob(mid.decode(), conv_id, blob)
        if m.direction == Direction.IN and not m.payload and not _COMMAND.fullmatch(
                (store.reveal(hub, m).text or "").strip()):
            tag = next((t[5:] for t in reversed(m.tags) if t.startswith("lang:")), "")
            if tag:
                return tag
    return ""


def _answer(hub: Hub, conv_id: str, msg: Message, number: str | None) -> str:
    from tongdai.core.pipeline.outbound import create_reply

    cfg = hub.config.hub.selfservice
    lang = pick(language_of(hub, conv_id, msg), TEXTS, cfg.language)
    customer = (hub.redis.hget(hub.keys.conversation(conv_id), "customer") or b"").decode()
    about, prefix = conv_id, ""
    if not number and hub.redis.zcard(hub.keys.timeline(conv_id)) <= 1:
        # the question opened a new conversation (the last one was resolved a while ago):
        # they mean the one before
        recent = hub.redis.zrevrange(hub.keys.customer_conversations(customer), 0, 1)
        about = next((c.decode() for c in recent if c.decode() != conv_id), conv_id)
    if number and number != conv_id:
        if hub.redis.zscore(hub.keys.customer_conversations(customer), number) is not None:
            about = number
        else:  # someone else's, or none: not a word about it
            prefix = TEXTS[lang]["not_yours"].format(asked=number)
    text = prefix + describe(hub, about, lang, now_ms())
    try:
        create_reply(hub, conv_id, text, AUTHOR, f"st:{conv_id}:{msg.id}", "system",
                     channel_id=msg.channel_id, author_kind=AuthorKind.BOT)
    except (WindowClosed, NotFound) as exc:
        log.info("status answer in conversation %s not sent: %s", conv_id, type(exc).__name__)
        hub.redis.hincrby(hub.keys.survey("stats"), f"skipped\x1fchannel\x1f{msg.channel_id}"
                          "\x1fstatus")
        return "refused"
    return "answered"
