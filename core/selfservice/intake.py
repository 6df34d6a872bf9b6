"""Intake before hand-off: the bot asks for what the team needs before a person takes over.

When the bot would hand a conversation to a person (the customer asked for one, or no article
is sure enough) and the conversation carries one of a script's ``tags`` (``selfservice.intake``
in the config; e.g. ``payment``: a failed top-up) on one of its channels, it first asks for the
script's fields — order id, phone, amount, time, a screenshot — in the customer's language:

- answers come in any order, several in one message ("đơn #123456, sdt 0912345678, nạp 100k
  lúc 9h"): an order id by the field's pattern, a phone in Vietnamese or Chinese formats
  (E.164, core/identity/identifiers.py), an amount ("100k", "100.000đ", "1,5tr", "100元",
  "¥100"), a time or date ("lúc 9h", "9:30", "hôm qua", "20/11", "昨天下午3点"), an image
  attachment for a screenshot, free text for a ``text`` field when nothing else was in it;
- the bot then asks only for what is still missing; when every required field is known it
  thanks the customer and hands off (``selfservice=handoff``, ``selfservice_why=intake``);
- "bỏ qua" / "skip" / "跳过" (or the skip button), or asking for a person again, hands off at
  once with what is known (``intake_state=skipped``);
- a person who takes the conversation (claim, assign) stops it: the bot acts only where no one
  is assigned; so does an agent's reply without taking it (``agent_reply`` after ``intake_at``).

Answers are conversation attributes (``td:conv:{id}:attrs``, each value sealed with
``encrypt_text(value, b"attribute")``): what lookups' ``source: attribute`` inputs read and what
the agent sees at the top of the conversation (``intake`` in GET /api/v1/conversations/{id}).
The state is on the conversation hash: ``intake`` (the script's index), ``intake_state``
(asking | complete | skipped | taken), ``intake_at``, ``intake_lang``, ``intake_misses`` (messages in a row nothing was recognised in).
Sent like the bot's answers: through ``create_reply`` within the platform's window, under the
idempotency key ``in:<conv>:<message>``, once per message (the bot's ``act_once``).
"""

from __future__ import annotations

import re

from tongdai.core.clock import now_ms
from tongdai.core.config_selfservice import IntakeField, IntakeScript
from tongdai.core.errors import NotFound, WindowClosed
from tongdai.core.hub import Hub
from tongdai.core.identity import identifiers
from tongdai.core.models import AuthorKind, Message
from tongdai.core.pipeline.acknowledgements import pick

SKIP = "ss:skip"
SKIP_WORDS = ("bỏ qua", "skip", "跳过", "跳過", "不用了")
MAX_MISSES = 3  # messages in a row with nothing recognised: a person takes it from there
TEXTS = {
    "ask": {"vi": "Để nhân viên xử lý nhanh, bạn vui lòng cho biết:",
            "en": "So that our team can help you quickly, please tell us:",
            "zh-Hans": "为了尽快为您处理，请提供：", "zh-Hant": "為了盡快為您處理，請提供："},
    "more": {"vi": "Cảm ơn bạn! Bạn cho biết thêm:", "en": "Thank you! Please also tell us:",
             "zh-Hans": "谢谢！还需要：", "zh-Hant": "謝謝！還需要："},
    "optional": {"vi": " (nếu có)", "en": " (if you have it)", "zh-Hans": "（如有）",
                 "zh-Hant": "（如有）"},
    "hint": {"vi": "Bạn có thể trả lời tất cả trong một tin nhắn, hoặc \"bỏ qua\".",
             "en": "You can answer everything in one message, or reply \"skip\".",
             "zh-Hans": "可以在一条消息里全部回复，或回复“跳过”。",
             "zh-Hant": "可以在一則訊息裡全部回覆，或回覆「跳過」。"},
    "done": {"vi": "Cảm ơn bạn! Nhân viên hỗ trợ sẽ tiếp nhận và trả lời bạn sớm.",
             "en": "Thank you! A member of our team will take it from here shortly.",
             "zh-Hans": "谢谢！客服人员会尽快为您处理。", "zh-Hant": "謝謝！客服人員會盡快為您處理。"},
    "skip": {"vi": "Bỏ qua", "en": "Skip", "zh-Hans": "跳过", "zh-Hant": "跳過"},
}

_LATIN_UNITS = {"k": ("VND", 1000), "nghìn": ("VND", 1000), "nghin": ("VND", 1000),
                "ngàn": ("VND", 1000), "ngan": ("VND", 1000), "tr": ("VND", 1_000_000),
                "triệu": ("VND", 1_000_000), "trieu": ("VND", 1_000_000), "đ": ("VND", 1),
                "d": ("VND", 1), "vnd": ("VND", 1), "vnđ": ("VND", 1), "đồng": ("VND", 1),
                "dong": ("VND", 1), "rmb": ("CNY", 1), "cny": ("CNY", 1), "usd": ("USD", 1)}
_CJK_UNITS = {"元": ("CNY", 1), "块": ("CNY", 1), "塊": ("CNY", 1), "万": ("CNY", 10_000),
              "萬": ("CNY", 10_000)}
_NUM = r"(\d{1,3}(?:[.,]\d{3})+|\d+(?:[.,]\d{1,2})?)"
_AMOUNT = re.compile(
    rf"(?<![0-9A-Za-zÀ-ỹ#.,]){_NUM}\s*(?:({'|'.join(sorted(_LATIN_UNITS, key=len, reverse=True))})(?!\w)"
    rf"|({'|'.join(_CJK_UNITS)}))|([¥$])\s*{_NUM}", re.IGNORECASE)
_DATETIME = re.compile(
    r"(?<!\d)(?:\d{1,2}:\d{2}(?:\s*[ap]m)?|\d{1,2}\s*(?:h|giờ|gio)(?:\s*\d{2})?(?!\w)"
    r"|\d{1,2}\s*[ap]m(?!\w)|\d{1,2}[/-]\d{1,2}(?:[/-]\d{2,4})?(?!\d)"
    r"|(?:上午|下午|晚上|早上|中午)?\d{1,2}\s*[点點](?:\s*\d{1,2}\s*分?|半)?"
    r"|\d{1,2}\s*月\s*\d{1,2}\s*[日号號])"
    r"|hôm qua|hôm nay|sáng nay|chiều nay|tối qua|tối nay|đêm qua|hom qua|hom nay"
    r"|yesterday|today|this morning|昨天|今天|昨晚|今早|前天", re.IGNORECASE)


def _say(what: str, lang: str) -> str:
    return TEXTS[what][pick(lang, TEXTS[what], "vi")]


def _prompt(f: IntakeField, lang: str, default: str) -> str:
    """The prompt in the customer's language; else English for a customer who does not write
    Vietnamese, else the default language, else the first given."""
    got = pick(lang, f.prompt, "")
    if not got and lang and lang != "vi" and "en" in f.prompt:
        got = "en"
    return f.prompt.get(got) or f.prompt.get(default) or next(iter(f.prompt.values()))


def script_for(hub: Hub, conv_id: str, channel: str) -> int | None:
    """The index of the first intake script for this conversation's tags and channel."""
    scripts = hub.config.hub.selfservice.intake
    if not scripts:
        return None
    tags = {t.decode() for t in hub.redis.smembers(hub.keys.conversation_tags(conv_id))}
    return next((i for i, s in enumerate(scripts) if tags & set(s.tags)
                 and (not s.channels or channel in s.channels)), None)


def _amount(m: re.Match) -> str:
    num, unit = (m.group(5), m.group(4)) if m.group(4) else (m.group(1),
                                                             m.group(2) or m.group(3))
    unit = unit.lower()
    cur, mult = {"¥": ("CNY", 1), "$": ("USD", 1)}.get(unit) or _LATIN_UNITS.get(unit) \
        or _CJK_UNITS[unit]
    if re.fullmatch(r"\d{1,3}(?:[.,]\d{3})+", num):  # 100.000 / 100,000: thousands
        value = float(re.sub(r"[.,]", "", num))
    else:
        value = float(num.replace(",", "."))
    value *= mult
    return f"{value:,.0f} {cur}" if value == int(value) else f"{value:,.2f} {cur}"


def extract(fields: list[IntakeField], msg: Message, missing: set[str],
            regions: tuple[str, ...]) -> dict[str, str]:
    """The fields this message answers: name → value (normalised: E.164 phones, amounts as
    "100,000 VND", the id of the message carrying the screenshot)."""
    text = msg.text or ""
    out: dict[str, str] = {}

    def take(span: tuple[int, int]) -> None:
        nonlocal text
        text = text[:span[0]] + " " * (span[1] - span[0]) + text[span[1]:]

    for f in fields:  # the order ids first: their pattern is the most specific
        if f.kind == "order_id" and text:
            m = re.search(f.pattern, text, re.IGNORECASE)
            if m:
                g = 1 if m.re.groups else 0
                out[f.name] = m.group(g)
                take(m.span(g if m.group(g) is not None else 0))
    rank = {"phone": 0, "amount": 1, "datetime": 2}  # phones before amounts and times
    for f in sorted(fields, key=lambda f: rank.get(f.kind, 3)):
        if f.kind == "phone" and text:
            found = identifiers.find_phones(text, regions)
            if found:
                out[f.name] = found[0][2]
                take(found[0][:2])
        elif f.kind == "amount" and text:
            m = _AMOUNT.search(text)
            if m:
                out[f.name] = _amount(m)
                take(m.span())
        elif f.kind == "datetime" and text:
            parts = list(_DATETIME.finditer(text))
            if parts:
                out[f.name] = " ".join(p.group(0).strip() for p in parts)
                for p in parts:
                    take(p.span())
        elif f.kind == "image" and any(a.kind == "image" or (a.mime or "").startswith("image/")
                                       for a in msg.attachments):
            out[f.name] = f"message:{msg.id}"
    if not out and (msg.text or "").strip():  # nothing structured: a free-text answer
        f = next((f for f in fields if f.kind == "text" and f.name in missing), None)
        if f is not None:
            out[f.name] = msg.text.strip()[:1000]
    return out


def _known(hub: Hub, conv_id: str) -> set[str]:
    return {k.decode() for k in hub.redis.hkeys(hub.keys.conversation_attributes(conv_id))}


def _missing(script: IntakeScript, known: set[str]) -> list[IntakeField]:
    return [f for f in script.fields if f.name not in known]


def _store(hub: Hub, conv_id: str, got: dict[str, str], pipe) -> None:
    if got:
        pipe.hset(hub.keys.conversation_attributes(conv_id), mapping={
            k: hub.keyring.encrypt_text(v, b"attribute") for k, v in got.items()})


def _question(hub: Hub, lang: str, missing: list[IntakeField], first: bool) -> str:
    default = hub.config.hub.selfservice.language
    lines = [_say("ask" if first else "more", lang)]
    lines += [f"• {_prompt(f, lang, default)}{'' if f.required else _say('optional', lang)}"
              for f in missing]
    return "\n".join(lines + ["", _say("hint", lang)])


def _send(hub: Hub, conv_id: str, msg: Message, text: str, skip_button: bool) -> bool:
    """Queue the bot's text; False when the platform's rules refuse it (window closed)."""
    from tongdai.core.pipeline.outbound import create_reply

    native = getattr(hub.adapters.get(msg.channel_id), "native_buttons", False)
    buttons = [(SKIP, _say("skip", _lang_of(msg)))] if skip_button and native else None
    try:
        create_reply(hub, conv_id, text, "selfservice", f"in:{conv_id}:{msg.id}", "system",
                     channel_id=msg.channel_id, author_kind=AuthorKind.BOT, buttons=buttons)
    except (WindowClosed, NotFound):
        return False
    return True


def _lang_of(msg: Message) -> str:
    return next((t.partition(":")[2] for t in reversed(msg.tags) if t.startswith("lang:")), "")


def start(hub: Hub, conv_id: str, msg: Message, lang: str, index: int) -> str:
    """Begin the intake with the message that would have handed off (it may already answer
    some fields): "intake" (asked), else the hand-off's result."""
    script = hub.config.hub.selfservice.intake[index]
    regions = _regions(hub)
    known = _known(hub, conv_id)
    got = extract(script.fields, msg, {f.name for f in _missing(script, known)}, regions)
    missing = _missing(script, known | set(got))
    p = hub.redis.pipeline(transaction=True)
    _store(hub, conv_id, got, p)
    p.hset(hub.keys.conversation(conv_id), mapping={
        "intake": index, "intake_misses": 0, "intake_at": now_ms(),
        "intake_lang": pick(lang, TEXTS["ask"], hub.config.hub.selfservice.language)})
    p.execute()
    if not any(f.required for f in missing):  # the question said it all
        return _finish(hub, conv_id, msg, lang, "complete", "intake")
    from tongdai.core.selfservice.bot import count

    if not _send(hub, conv_id, msg, _question(hub, lang, missing, True), True):
        count(hub, "refused", msg.channel_id, lang)  # as an answer refused: a person answers
        return _finish(hub, conv_id, msg, lang, "refused", "refused", say=False)
    hub.redis.hset(hub.keys.conversation(conv_id), mapping={"selfservice": "intake",
                                                            "intake_state": "asking"})
    count(hub, "intake", msg.channel_id, lang)
    return "intake"


def answer(hub: Hub, conv_id: str, msg: Message, lang: str, pressed: str) -> str:
    """A customer's message while the intake asks: "intake" (asked again), "handoff"."""
    from tongdai.core.selfservice.bot import AGENT, _folded_words, wants_person

    cfg = hub.config.hub.selfservice
    ck = hub.keys.conversation(conv_id)
    raw, said, began, replied = hub.redis.hmget(
        ck, ["intake", "intake_lang", "intake_at", "agent_reply"])
    if replied and int(replied) >= int(began or 0):  # a person answered without taking it
        hub.redis.hset(ck, "intake_state", "taken")
        return ""
    index = int(raw) if raw is not None else -1
    lang = said.decode() if said else lang  # short answers ("0912…") say no language
    if not 0 <= index < len(cfg.intake):  # the script left the config meanwhile
        return _finish(hub, conv_id, msg, lang, "skipped", "intake_skipped", say=False)
    if pressed == SKIP or pressed == AGENT or _skips(msg.text, _folded_words) or (
            msg.text and wants_person(msg.text, cfg.handoff_words)):
        return _finish(hub, conv_id, msg, lang, "skipped", "intake_skipped")
    script = cfg.intake[index]
    known = _known(hub, conv_id)
    got = extract(script.fields, msg, {f.name for f in _missing(script, known)},
                  _regions(hub))
    missing = _missing(script, known | set(got))
    p = hub.redis.pipeline(transaction=True)
    _store(hub, conv_id, got, p)
    if got:
        p.hset(ck, "intake_misses", 0)
    else:
        p.hincrby(ck, "intake_misses", 1)
    misses = p.execute()[-1]
    if not any(f.required for f in missing):
        return _finish(hub, conv_id, msg, lang, "complete", "intake")
    if not got and int(misses) >= MAX_MISSES:
        return _finish(hub, conv_id, msg, lang, "skipped", "intake_stuck")
    if not _send(hub, conv_id, msg, _question(hub, lang, missing, False), True):
        return _finish(hub, conv_id, msg, lang, "skipped", "refused", say=False)
    return "intake"


def _skips(text: str | None, folded) -> bool:
    """A short message saying "skip" ("bỏ qua", "bo qua", "skip", "跳过", "跳過")."""
    from tongdai.core.pipeline.tagging import fold_chinese

    if not text or len(text) > 80:
        return False
    latin, han = folded(text), fold_chinese(text)
    for s in SKIP_WORDS:
        w = folded(s)
        if (w.strip() and w in latin) or (not w.strip() and fold_chinese(s) in han):
            return True
    return False


def _finish(hub: Hub, conv_id: str, msg: Message, lang: str, state: str, why: str,
            say: bool = True) -> str:
    from tongdai.core.selfservice.bot import _handoff

    if say:
        _send(hub, conv_id, msg, _say("done", lang), False)  # refused: a person answers anyway
    hub.redis.hset(hub.keys.conversation(conv_id), "intake_state",
                   "skipped" if state == "refused" else state)
    return _handoff(hub, conv_id, msg.channel_id, lang, why)


def _regions(hub: Hub) -> tuple[str, ...]:
    return tuple(dict.fromkeys([*hub.config.hub.identity.regions, "VN", "CN"]))


def of_conversation(hub: Hub, conv_id: str) -> dict | None:
    """What the intake collected, for the agent: {fields: [{name, kind, required, value}],
    complete, skipped, state (asking | complete | skipped | taken)}; None when no intake ran in this conversation."""
    h = hub.redis.hmget(hub.keys.conversation(conv_id), ["intake", "intake_state", "assignee"])
    if h[0] is None:
        return None
    attrs = {k.decode(): hub.keyring.decrypt_text(v, b"attribute") for k, v in
             hub.redis.hgetall(hub.keys.conversation_attributes(conv_id)).items()}
    scripts = hub.config.hub.selfservice.intake
    index = int(h[0])
    script = scripts[index] if 0 <= index < len(scripts) else None
    fields = [{"name": f.name, "kind": f.kind, "required": f.required,
               "value": attrs.pop(f.name, None)} for f in (script.fields if script else [])]
    fields += [{"name": k, "kind": "text", "required": False, "value": v}
               for k, v in sorted(attrs.items())]
    state = (h[1] or b"asking").decode()
    if state == "asking" and h[2]:
        state = "taken"  # a person took the conversation mid-intake: the bot stopped
    return {"fields": fields, "complete": state == "complete", "skipped": state == "skipped",
            "state": state}
