"""The self-service bot: answers a customer's question from the knowledge base, or leaves it
to a person at once.

A reactor on the change feed (``selfservice``), so ingest never waits on it. For each
customer's message stored (``message.created``) on a channel the ``selfservice:`` section
turns on, in a conversation no person has taken (no assignee, not resolved, not handed off):

- a press of "talk to a person" (Telegram callback, Messenger quick reply or postback, Zalo
  hidden query: the payload ``ss:agent``) or a hand-off word typed ("nhân viên", "gặp người
  thật", "人工", "agent", ...) → handed off: the conversation, already in its queue since
  ingest, is marked ``selfservice=handoff`` and the bot stays quiet in it;
- a press of "this helped" (``ss:helped:<article>``) → recorded (the deflection);
- a question whose best article's confidence reaches ``threshold`` → the article in the
  customer's language with the two buttons (native on Telegram, Messenger and Zalo; on mail a
  line saying to answer "agent"), queued by ``create_reply`` under the idempotency key
  ``kb:<conversation>:<message>`` within the platform's window rules;
- below the threshold → handed off.

Before a hand-off (asked for, or unsure), a conversation carrying a tag of a
``selfservice.intake`` script first gets the intake: the bot asks for the fields the team needs
and hands off once they are known or skipped (core/selfservice/intake.py).

Automatic mail is never answered (it is stored as ``auto_reply``, not a message). Each
customer message is acted on once (``feed.act_once`` on ``td:kb:done:<conv>:<msg>``): a
redelivered feed event neither sends nor counts twice. Counts: ``td:kb:stats``.
"""

from __future__ import annotations

import logging

from tongdai.core.errors import NotFound, WindowClosed
from tongdai.core.hub import Hub
from tongdai.core.models import AuthorKind, Direction, EventKind
from tongdai.core.pipeline import feed, store
from tongdai.core.pipeline.acknowledgements import pick
from tongdai.core.pipeline.tagging import _spell_out, _words, fold_chinese
from tongdai.core.selfservice import matching
from tongdai.core.selfservice import status as ticket_status
from tongdai.core.selfservice.articles import Article

log = logging.getLogger(__name__)
HELPED, AGENT = "ss:helped:", "ss:agent"
SEP = "\x1f"
# Typed, these mean "a person, please" (folded: without diacritics, abbreviations spelled out)
HANDOFF_WORDS = ("nhân viên", "gặp người thật", "người thật", "tư vấn viên", "gặp admin",
                 "agent", "human", "real person", "talk to a person", "operator",
                 "人工", "真人", "转人工", "人工客服", "找客服")


def _folded_words(text: str) -> str:
    return " " + " ".join(w.folded for w in _spell_out(_words(text))) + " "


def wants_person(text: str, extra: tuple[str, ...] | list[str] = ()) -> bool:
    """True when the text asks for a person (typed, any script, with or without marks)."""
    latin, han = _folded_words(text), fold_chinese(text)
    for word in (*HANDOFF_WORDS, *extra):
        w = _folded_words(word)
        if w.strip():
            if w in latin:
                return True
        elif fold_chinese(word) in han:
            return True
    return False


def count(hub: Hub, what: str, channel: str, language: str, pipe=None) -> None:
    (pipe or hub.redis).hincrby(hub.keys.kb("stats"), f"{what}{SEP}{channel}{SEP}{language}")


def stats(hub: Hub) -> dict:
    """Answered / helped / handed-off counts, in total, per channel and per language."""
    out: dict = {"total": {}, "channels": {}, "languages": {}}
    for k, v in hub.redis.hgetall(hub.keys.kb("stats")).items():
        what, channel, lang = (k.decode().split(SEP) + ["", ""])[:3]
        n = int(v)
        out["total"][what] = out["total"].get(what, 0) + n
        ch = out["channels"].setdefault(channel, {})
        ch[what] = ch.get(what, 0) + n
        lg = out["languages"].setdefault(lang or "-", {})
        lg[what] = lg.get(what, 0) + n
    return out


def compose(article: Article, language: str | None, default: str, native: bool
            ) -> tuple[str, str, list[tuple[str, str]]]:
    """(language, text, buttons) of an answer."""
    from tongdai.core.config_selfservice import BUTTONS, REPLY_HINT

    lang, v = article.variant(language or default)
    text = f"{v.title}\n\n{v.body}"
    labels = BUTTONS[pick(lang, BUTTONS, "vi")]
    if not native:
        return lang, f"{text}\n\n{REPLY_HINT[pick(lang, REPLY_HINT, 'vi')]}", []
    return lang, text, [(f"{HELPED}{article.id}", labels["helped"]), (AGENT, labels["agent"])]


def handle(hub: Hub, conv_id: str, mid: str) -> str:
    """Act on one stored message; returns what was done (for tests and logs): "", "answered",
    "helped", "handoff", "refused", "intake" (the intake asked)."""
    from tongdai.core.pipeline.outbound import create_reply

    cfg = hub.config.hub.selfservice
    pipe = hub.redis.pipeline(transaction=False)
    pipe.hget(hub.keys.messages(conv_id), mid)
    pipe.hmget(hub.keys.conversation(conv_id), ["assignee", "status", "selfservice"])
    blob, (assignee, status, mark) = pipe.execute()
    if blob is None or status is None or assignee or status == b"resolved":
        return ""
    if mark == b"handoff":
        return ""  # a person's now (an intake in progress stops too when someone is assigned)
    from tongdai.core.models import Message

    msg = Message.from_blob(mid, conv_id, blob)
    if (msg.direction != Direction.IN or msg.author_kind != AuthorKind.CUSTOMER
            or msg.kind not in (EventKind.MESSAGE.value, EventKind.POSTBACK.value)
            or not cfg.on(msg.channel_id) or msg.channel_id not in hub.adapters):
        return ""
    msg = store.reveal(hub, msg)
    if cfg.status and ticket_status.asks(msg, cfg.status_words)[0]:
        return ""  # the ticket status answers it (core/selfservice/status.py)
    lang = next((t.partition(":")[2] for t in reversed(msg.tags) if t.startswith("lang:")), "")
    pressed = msg.payload or ((msg.text or "").strip() if (msg.text or "").startswith("ss:")
                              else "")
    if mark == b"intake":
        from tongdai.core.selfservice import intake

        return intake.answer(hub, conv_id, msg, lang, pressed)
    ck = hub.keys.conversation(conv_id)
    if pressed.startswith(HELPED):
        p = hub.redis.pipeline(transaction=True)
        p.hset(ck, "selfservice", f"helped:{pressed[len(HELPED):]}")
        count(hub, "helped", msg.channel_id, lang, p)
        p.execute()
        return "helped"
    if pressed == AGENT or (msg.text and wants_person(msg.text, cfg.handoff_words)):
        return _before_handoff(hub, conv_id, msg, lang, "asked")
    if not msg.text:
        return ""
    native = hub.adapters[msg.channel_id].native_buttons
    # The business's own data first: a lookup rule's answer about this customer's order
    # ("giao dịch #123 đang chờ ngân hàng xác nhận") beats a general article.
    said = _from_lookups(hub, conv_id, lang or cfg.language, native)
    if said is not None:
        ans_lang, text, buttons, what, confidence = *said, 1.0
    else:
        m = matching.index(hub).match(msg.text)
        if m.article is None or m.confidence < cfg.threshold:
            return _before_handoff(hub, conv_id, msg, lang, "unsure")
        ans_lang, text, buttons = compose(m.article, lang, cfg.language, native)
        what, confidence = m.article.id, m.confidence
    try:
        create_reply(hub, conv_id, text, "selfservice", f"kb:{conv_id}:{mid}", "system",
                     channel_id=msg.channel_id, author_kind=AuthorKind.BOT, buttons=buttons)
    except (WindowClosed, NotFound) as exc:  # the platform's rules say no: a person answers
        log.info("bot answer in conversation %s not sent: %s", conv_id, type(exc).__name__)
        count(hub, "refused", msg.channel_id, lang)
        return _handoff(hub, conv_id, msg.channel_id, lang, "refused")
    p = hub.redis.pipeline(transaction=True)
    p.hset(ck, mapping={"selfservice": f"answered:{what}", "selfservice_confidence": confidence})
    count(hub, "answered", msg.channel_id, ans_lang, p)
    p.execute()
    return "answered"


def _from_lookups(hub: Hub, conv_id: str, lang: str, native: bool
                  ) -> tuple[str, str, list[tuple[str, str]], str] | None:
    """(language, text, buttons, what) of a lookup rule's ``answer`` that holds for this
    conversation (core/workspace/lookup_rules.py; fetched within the lookup's timeout and
    breaker), or None: no lookup has answers, none holds, or the business system failed."""
    if not any(r.answer for lk in hub.config.hub.lookups.values() for r in lk.tag_when):
        return None
    from tongdai.core.config_selfservice import BUTTONS, REPLY_HINT
    from tongdai.core.workspace import lookup_rules

    text = lookup_rules.answer(hub, conv_id, lang)
    if not text:
        return None
    lang = lang or "vi"
    what = "lookup"
    if not native:
        return lang, f"{text}\n\n{REPLY_HINT[pick(lang, REPLY_HINT, 'vi')]}", [], what
    labels = BUTTONS[pick(lang, BUTTONS, "vi")]
    return lang, text, [(f"{HELPED}{what}", labels["helped"]), (AGENT, labels["agent"])], what


def _before_handoff(hub: Hub, conv_id: str, msg, lang: str, why: str) -> str:
    """The intake when a script's tags are on the conversation, else the hand-off now."""
    from tongdai.core.selfservice import intake

    index = intake.script_for(hub, conv_id, msg.channel_id)
    if index is None:
        return _handoff(hub, conv_id, msg.channel_id, lang, why)
    return intake.start(hub, conv_id, msg, lang, index)


def _handoff(hub: Hub, conv_id: str, channel: str, lang: str, why: str) -> str:
    """Leave the conversation to a person: it is in its queue since ingest; the bot stays
    quiet in it from now on, and the feed says so (the console shows it)."""
    p = hub.redis.pipeline(transaction=True)
    p.hset(hub.keys.conversation(conv_id), mapping={"selfservice": "handoff",
                                                    "selfservice_why": why})
    count(hub, "handoff", channel, lang, p)
    feed.publish(hub, {"type": "selfservice.handoff", "conversation_id": conv_id, "why": why}, p)
    p.execute()
    return "handoff"


@feed.reactor("selfservice")
def on_feed(hub: Hub, events: list[feed.FeedEvent]) -> None:
    """Each customer message once; a failure leaves the event pending for a retry."""
    if not hub.config.hub.selfservice.enabled:
        return
    for e in events:
        if e.type != "message.created" or not e.data.get("message_id"):
            continue
        conv_id, mid = str(e.data["conversation_id"]), str(e.data["message_id"])
        feed.act_once(hub, hub.keys.kb("done", conv_id, mid), lambda c=conv_id, m=mid:
                      handle(hub, c, m), "the bot's answer", hold_ms=60_000, keep_s=7 * 86400)
