"""CSAT and NPS: after a conversation is resolved, the customer is asked to rate it.

- ``conversation.resolved`` on the change feed (the ``surveys`` reactor): a 1–5 question on
  the conversation's channel with native buttons (``csat:1`` … ``csat:5``: Telegram inline
  keyboard, Messenger quick replies, Zalo buttons; on mail the question says to reply with a
  number), at most once per conversation (``td:survey:conv:<id>`` exists → never again), only
  within the platform's window (refused → skipped, counted with the reason).
- The answer is taken before ingest (an interceptor: a rating must not reopen the resolved
  conversation): a press, "5", "4/5", "5 sao", "⭐⭐⭐⭐". It is stored with the agent, team and
  channel of the conversation, counted, and published as ``csat.rated`` (what the ``kpis``
  reactor counts). Then, when ``nps`` is on and the customer was not asked in the last
  ``nps_every_days``, the 0–10 question (typed; ``nps.rated``), else a thank-you inviting a
  comment: the next message within ``comment_minutes`` is the comment (stored encrypted).
- Anything else the customer writes is a message as usual (it reopens the conversation) and
  ends the survey.

A redelivered event is recognised by its dedupe key (``last``) and changes nothing; every text
the bot sends carries an idempotency key (``csat:<conv>:<step>``).
"""

from __future__ import annotations

import logging
import re

import redis

from tongdai.core.clock import now_ms
from tongdai.core.errors import NotFound, WindowClosed
from tongdai.core.hub import Hub
from tongdai.core.models import AuthorKind, Direction, EventKind, InboundEvent, RawEvent
from tongdai.core.pipeline import feed, intercept, store
from tongdai.core.pipeline.acknowledgements import pick

log = logging.getLogger(__name__)
SEP = "\x1f"
AUTHOR = "surveys"  # not the bot's answers: the KPIs count those as the bot taking part
DIMS = ("all", "channel", "agent", "team")
ANSWER_WINDOW_MS = 7 * 86_400_000  # a rating or comment later than this is a new message
READ_ALL_UP_TO = 5000  # surveys waiting that ingest reads at once per batch
TEXTS = {
    "csat": {"vi": "Cảm ơn bạn đã liên hệ! Bạn đánh giá cuộc hỗ trợ vừa rồi thế nào, từ 1 "
                   "(rất tệ) đến 5 (rất tốt)?",
             "en": "Thanks for contacting us! How would you rate this conversation, from 1 "
                   "(very poor) to 5 (excellent)?",
             "zh-Hans": "感谢您的咨询！请为本次服务评分：1（很差）到 5（很好）。",
             "zh-Hant": "感謝您的諮詢！請為本次服務評分：1（很差）到 5（很好）。"},
    "typed": {"vi": "Trả lời bằng một số từ 1 đến 5.", "en": "Reply with a number from 1 to 5.",
              "zh-Hans": "请回复 1 到 5 的数字。", "zh-Hant": "請回覆 1 到 5 的數字。"},
    "nps": {"vi": "Cảm ơn bạn! Từ 0 đến 10, bạn sẵn sàng giới thiệu chúng tôi cho bạn bè ở "
                  "mức nào? Trả lời bằng một số.",
            "en": "Thank you! From 0 to 10, how likely are you to recommend us to a friend? "
                  "Reply with a number.",
            "zh-Hans": "谢谢！0 到 10 分，您向朋友推荐我们的可能性有多大？请回复数字。",
            "zh-Hant": "謝謝！0 到 10 分，您向朋友推薦我們的可能性有多大？請回覆數字。"},
    "comment": {"vi": "Cảm ơn bạn đã đánh giá! Nếu muốn góp ý thêm, bạn cứ nhắn ngay tại đây.",
                "en": "Thanks for your rating! If you'd like to add a comment, just write it "
                      "here.",
                "zh-Hans": "感谢您的评价！如有其他意见，请直接在这里留言。",
                "zh-Hant": "感謝您的評價！如有其他意見，請直接在這裡留言。"},
    "thanks": {"vi": "Cảm ơn góp ý của bạn!", "en": "Thank you for your feedback!",
               "zh-Hans": "感谢您的反馈！", "zh-Hant": "感謝您的回饋！"},
}
_NUMBER = re.compile(r"(\d{1,2})\s*(?:/\s*(?:5|10))?\s*(?:sao|diem|điểm|stars?|points?|分|星)?"
                     r"\s*[.!]*")


def score_of(text: str | None, lo: int, hi: int) -> int | None:
    """The score a typed answer gives ("5", "4/5", "5 sao", "⭐⭐⭐⭐", "9分"), or None."""
    t = (text or "").strip().lower()
    bare = t.replace("\ufe0f", "").replace(" ", "")
    if bare and set(bare) <= {"⭐", "★"}:
        n = len(bare)
    else:
        m = _NUMBER.fullmatch(t)
        if m is None:
            return None
        n = int(m.group(1))
    return n if lo <= n <= hi else None


def _say(what: str, lang: str) -> str:
    return TEXTS[what][pick(lang, TEXTS[what], "vi")]


def _send(hub: Hub, conv_id: str, channel: str, text: str, step: str,
          buttons: list[tuple[str, str]] | None = None) -> None:
    from tongdai.core.pipeline.outbound import create_reply

    native = getattr(hub.adapters.get(channel), "native_buttons", False)
    create_reply(hub, conv_id, text, AUTHOR, f"csat:{conv_id}:{step}", "system",
                 channel_id=channel, author_kind=AuthorKind.BOT,
                 buttons=buttons if native else None)


def ask(hub: Hub, conv_id: str) -> str:
    """After resolve: the CSAT question, once per conversation. Returns "asked", "skipped:<why>"
    or "" (off, or asked before)."""
    cfg = hub.config.hub.selfservice
    sk = hub.keys.survey("conv", conv_id)
    if hub.redis.exists(sk):
        return ""
    try:
        conv = store.get_conversation(hub, conv_id)
    except NotFound:
        return ""
    ch = conv.channel_id
    if not cfg.on(ch, "csat") or ch not in hub.adapters:
        return ""
    from tongdai.core.selfservice.status import language_of

    lang = pick(language_of(hub, conv_id) or cfg.language, TEXTS["csat"], cfg.language)
    team = next((t.id for t in hub.config.hub.teams if conv.queue in t.queues), "")
    state = {"channel": ch, "agent": conv.assignee or "", "team": team, "lang": lang,
             "customer": conv.customer_id, "at": now_ms()}
    native = getattr(hub.adapters[ch], "native_buttons", False)
    text = _say("csat", lang) + ("" if native else "\n" + _say("typed", lang))
    try:
        _send(hub, conv_id, ch, text, "ask", [(f"csat:{n}", "⭐" * n) for n in range(1, 6)])
    except (WindowClosed, NotFound) as exc:
        why = getattr(exc, "code", None) or type(exc).__name__
        why = str(why).replace(SEP, " ")
        p = hub.redis.pipeline(transaction=True)
        p.hset(sk, mapping={**state, "await": "done", "skipped": why})
        p.hincrby(hub.keys.survey("stats"), SEP.join(("skipped", "channel", ch, why)))
        p.execute()
        log.info("CSAT of conversation %s skipped: %s", conv_id, why)
        return f"skipped:{why}"
    ident = (hub.redis.hget(hub.keys.conversation(conv_id), "identity") or b"").decode()
    p = hub.redis.pipeline(transaction=True)
    p.hset(sk, mapping={**state, "await": "csat", "identity": ident})
    if ident:  # what ingest looks answers up by (one HGETALL per batch, not per event)
        p.hset(hub.keys.survey("waiting"), ident, f"{conv_id}{SEP}{state['at']}")
    p.execute()
    return "asked"


def _counts(p, hub: Hub, kind: str, st: dict[str, str], score: int) -> None:
    """Fields ``kind␟scope␟dim␟value␟metric`` of ``td:survey:stats``: scope "" (everything)
    and the conversation's team (what a supervisor reads)."""
    stats = hub.keys.survey("stats")
    for scope in ("", st.get("team", "")) if st.get("team") else ("",):
        for dim in DIMS:
            value = "" if dim == "all" else st.get(dim, "")
            if dim == "all" or value:
                base = SEP.join((kind, scope, dim, value))
                for metric, n in (("n", 1), ("sum", score), (f"s{score}", 1)):
                    p.hincrby(stats, f"{base}{SEP}{metric}", n)


def nps_due(hub: Hub, customer: str, now: int) -> bool:
    cfg = hub.config.hub.selfservice
    last = hub.redis.hget(hub.keys.survey("nps"), customer)
    return cfg.nps and (last is None or now - int(last) >= cfg.nps_every_days * 86_400_000)


def answer(hub: Hub, conv_id: str, channel: str, ev: InboundEvent, identity: str = "") -> bool:
    """The customer's event when it answers the conversation's survey (True: taken).
    ``identity`` ("channel|user" as stored): the comment is sealed with its own key, so
    erasing the customer makes it unreadable."""
    sk = hub.keys.survey("conv", conv_id)
    with hub.redis.pipeline(transaction=True) as p:
        p.watch(sk)  # two workers on one redelivered event: one counts it
        try:
            return _answer(hub, p, sk, conv_id, channel, ev, identity)
        except redis.WatchError:
            return True


def _answer(hub: Hub, p, sk: str, conv_id: str, channel: str, ev: InboundEvent,
            identity: str) -> bool:
    st = {k.decode(): v.decode() for k, v in p.hgetall(sk).items()}
    step = st.get("await", "done")
    if step == "done" or st.get("channel") != channel:
        return False
    if st.get("last") == ev.dedupe_key:
        return True  # redelivered: taken already
    if hub.redis.hget(hub.keys.conversation(conv_id), "status") != b"resolved":
        return False  # written to or reopened since: a conversation again
    cfg = hub.config.hub.selfservice
    now = now_ms()
    text = (ev.text or "").strip()
    pressed = ev.payload or (text if text.startswith("csat:") else "")
    lang = st.get("lang", cfg.language)
    put: dict[str, str | int] = {"last": ev.dedupe_key, "answered_at": now}
    nps_asked = False
    event: dict | None = None
    if step in ("csat", "nps"):
        lo, hi = (1, 5) if step == "csat" else (0, 10)
        score = (score_of(pressed[5:], 1, 5) if pressed.startswith("csat:") and step == "csat"
                 else score_of(text, lo, hi))
        if score is None:  # something else: a message as usual
            _end(hub, sk, st)
            return False
        put[step] = score
        event = {"type": f"{step}.rated", "conversation_id": conv_id, "score": score,
                 "agent": st.get("agent", ""), "team": st.get("team", ""), "channel": channel}
        if step == "csat" and nps_due(hub, st.get("customer", ""), now):
            _send(hub, conv_id, channel, _say("nps", lang), "nps")
            put["await"], nps_asked = "nps", True
        else:
            if cfg.comment_minutes:
                _send(hub, conv_id, channel, _say("comment", lang), "comment")
            put["await"] = "comment" if cfg.comment_minutes else "done"
    else:  # a comment, within comment_minutes of the invitation
        if not text or now - int(st.get("answered_at") or 0) > cfg.comment_minutes * 60_000:
            _end(hub, sk, st)
            return False
        _send(hub, conv_id, channel, _say("thanks", lang), "thanks")
        subject = hub.subjects.key_for(identity) if identity else None
        put.update(comment=hub.keyring.encrypt_text(text[:2000], b"survey", subject),
                   **{"await": "done"})
        event = {"type": "survey.comment", "conversation_id": conv_id}
    p.multi()
    p.hset(sk, mapping=put)
    if put.get("await") == "done" and st.get("identity"):
        p.hdel(hub.keys.survey("waiting"), st["identity"])
    if event and event["type"].endswith(".rated"):
        _counts(p, hub, step, st, int(event["score"]))
    if nps_asked:  # the cadence counts from the question, answered or not
        p.hset(hub.keys.survey("nps"), st.get("customer", ""), now)
    if event:
        feed.publish(hub, event, p)
    p.execute()
    if ev.ack:  # Telegram's spinner on the pressed button
        from tongdai.core.pipeline.ingest import _enqueue_platform_calls

        _enqueue_platform_calls(hub, [], [(channel, ev.ack)])
    return True


def _end(hub: Hub, sk: str, st: dict[str, str]) -> None:
    """The survey is over, unanswered: nothing more is taken as an answer."""
    p = hub.redis.pipeline(transaction=True)
    p.hset(sk, "await", "done")
    if st.get("identity"):
        p.hdel(hub.keys.survey("waiting"), st["identity"])
    p.execute()


def of_conversation(hub: Hub, conv_id: str) -> dict | None:
    """The survey of a conversation as the API shows it (None: never asked)."""
    st = {k.decode(): v.decode() for k, v in
          hub.redis.hgetall(hub.keys.survey("conv", conv_id)).items()}
    if not st:
        return None
    out: dict = {"asked_at": int(st.get("at", 0)), "skipped": st.get("skipped")}
    for k in ("csat", "nps"):
        out[k] = int(st[k]) if k in st else None
    out["comment"] = (hub.keyring.decrypt_text(st["comment"], b"survey")
                      if st.get("comment") else None)
    out["waiting_for"] = st.get("await") if st.get("await") != "done" else None
    return out


def report(hub: Hub, teams: list[str] | None = None) -> dict:
    """CSAT and NPS in total and by channel, agent and team: count, average, and the share
    satisfied (CSAT 4–5) or the NPS (% 9–10 − % 0–6). ``teams``: only those teams'
    conversations (a supervisor's view)."""
    raw: dict = {}
    skipped: dict = {}
    for k, v in hub.redis.hgetall(hub.keys.survey("stats")).items():
        parts = k.decode().split(SEP)
        if parts[0] == "skipped":
            skipped.setdefault(parts[2], {})[parts[3]] = int(v)
            continue
        if len(parts) != 5:
            continue
        kind, scope, dim, value, metric = parts
        if (scope != "") if teams is None else (scope not in teams):
            continue
        row = raw.setdefault(kind, {}).setdefault(dim, {}).setdefault(value, {})
        row[metric] = row.get(metric, 0) + int(v)
    out: dict = {}
    for kind in ("csat", "nps"):
        dims = raw.get(kind, {})
        out[kind] = {"total": _figures(kind, dims.get("all", {}).get("", {}))}
        for dim in ("channel", "agent", "team"):
            out[kind][dim] = {v: _figures(kind, r) for v, r in sorted(dims.get(dim, {}).items())}
    if teams is None:
        out["skipped"] = skipped  # per channel only
    return out


def _figures(kind: str, r: dict) -> dict:
    n = r.get("n", 0)
    s = [r.get(f"s{i}", 0) for i in range(11)]
    out = {"n": n, "average": round(r.get("sum", 0) / n, 2) if n else None}
    if kind == "csat":
        out["satisfied"] = round((s[4] + s[5]) / n, 3) if n else None
    else:
        out["nps"] = round(100 * (s[9] + s[10] - sum(s[:7])) / n) if n else None
    return out


@intercept.interceptor("surveys", order=30)
def _take_answers(hub: Hub) -> intercept.Take | None:
    """Ingest asks, once per batch: a rating or comment answering a survey is not a new
    message (it would reopen the resolved conversation). The identities a survey waits on
    are read once per batch (``td:survey:waiting``; nothing when none waits), so other
    events cost nothing; entries older than ``ANSWER_WINDOW_MS`` are dropped as they are
    read."""
    wk = hub.keys.survey("waiting")
    n = hub.redis.hlen(wk)
    if not n:
        return None
    now, stale = now_ms(), []
    # a very busy week (more than READ_ALL_UP_TO waiting): one HGET per event instead
    entries = hub.redis.hgetall(wk).items() if n <= READ_ALL_UP_TO else ()
    waiting: dict[str, str] | None = {} if n <= READ_ALL_UP_TO else None
    for k, v in entries:
        if now - int(v.decode().partition(SEP)[2] or 0) > ANSWER_WINDOW_MS:
            stale.append(k)
        elif waiting is not None:
            waiting[k.decode()] = v.decode()
    if stale:
        hub.redis.hdel(wk, *stale)

    def waiting_on(ident: str) -> str | None:
        v = waiting.get(ident) if waiting is not None else (
            (hub.redis.hget(wk, ident) or b"").decode() or None)
        if v is None:
            return None
        conv, _, at = v.partition(SEP)
        return conv if now_ms() - int(at or 0) <= ANSWER_WINDOW_MS else None

    def take(raw: RawEvent, ev: InboundEvent, channel_id: str) -> bool:
        if ev.direction != Direction.IN or ev.kind not in (EventKind.MESSAGE,
                                                            EventKind.POSTBACK):
            return False
        ident = f"{channel_id}|{store.stored_user(hub, channel_id, ev.external_user_id)}"
        conv = waiting_on(ident)
        return conv is not None and answer(hub, conv, channel_id, ev, ident)
    return take if waiting is None or waiting else None


@feed.reactor("surveys")
def on_feed(hub: Hub, events: list[feed.FeedEvent]) -> None:
    """CSAT after resolve, and ticket status questions; each acted on once."""
    from tongdai.core.selfservice import status

    cfg = hub.config.hub.selfservice
    for e in events:
        conv_id = str(e.data.get("conversation_id") or "")
        if e.type == "conversation.resolved" and cfg.csat and conv_id:
            feed.act_once(hub, hub.keys.survey("ask", conv_id), lambda c=conv_id: ask(hub, c),
                          "the CSAT question", hold_ms=60_000, keep_s=7 * 86400)
        elif e.type == "message.created" and cfg.status and e.data.get("message_id"):
            status.handle(hub, conv_id, str(e.data["message_id"]))  # acts once itself
