"""The ``selfservice`` section of ``tongdai bench``: the bot's answer path with 1,000 articles.

A knowledge base of 1,000 articles (the sample's 12 and 988 made from their words, so the
vocabulary and the Chinese overlap like a real shop's) is stored; Telegram questions from the
labelled set (``core/selfservice/evalsets/questions.yaml``), each from its own chat, are
ingested as a worker would. Then, for each stored message, ``bot.handle`` runs as the reactor
runs it — read the message and the conversation, match (BM25 + confidence), and for a sure
match ``create_reply`` with its buttons: stored and its send job enqueued (nothing is sent:
no sender runs). ``selfservice_answer_p95_ms`` is the p95 of that, target ≤ 50 ms; the details
give p50, max, how many were answered and handed off, and the index build time (once per
knowledge-base version per process).

Ingest does not change with the bot on: the bot is a reactor on the change feed, in its own
process (``tongdai reactor``), never in the ingest worker (``ingest_vs_rq_noop`` measures that
worker as it is).
"""

from __future__ import annotations

import random
import time

import orjson
import yaml

from tongdai.benchmarks.common import Params
from tongdai.benchmarks.env import CHANNEL, CONFIG, BenchEnv, log

TARGET_MS = 50.0
ARTICLES = 1000


def synthetic(n: int, seed: int = 7) -> list:
    """The sample's articles, then ``n - 12`` more made by mixing their titles and keywords
    with a product number: plausible near-duplicates, the hard case for ranking."""
    from tongdai.core.selfservice import articles as arts

    sample = arts.load_file(arts.SAMPLE)
    rng = random.Random(seed)
    out = list(sample)
    for i in range(n - len(sample)):
        a, b = rng.sample(sample, 2)
        variants = {}
        for lang in ("vi", "en", "zh-Hans"):
            va, vb = a.variants[lang], b.variants[lang]
            variants[lang] = {"title": f"{va.title} — {vb.title} ({i})",
                              "body": f"{va.body}\n{vb.body}",
                              "keywords": [rng.choice(va.keywords), rng.choice(vb.keywords),
                                           f"sp{i}"]}
        out.append(arts.parse({"id": f"gen-{i}", "tags": ["generated"], "variants": variants}))
    return out


def _bot_hub(env: BenchEnv):
    from tongdai.core.config import load_config
    from tongdai.core.hub import Hub

    cfg = yaml.safe_load(CONFIG)
    cfg["selfservice"] = {"enabled": True}
    path = env.dir / "tongdai-selfservice.yaml"
    path.write_text(yaml.safe_dump(cfg, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return Hub(load_config(str(path)), env.hub.redis, env.hub.keyring)


def _updates(texts: list[str]) -> list[bytes]:
    now = int(time.time())
    return [orjson.dumps({"update_id": 900_000 + i, "message": {
        "message_id": 1, "date": now, "text": t,
        "from": {"id": 8_100_000 + i, "is_bot": False, "first_name": "Lan"},
        "chat": {"id": 8_100_000 + i, "type": "private", "first_name": "Lan"}}})
        for i, t in enumerate(texts)]


def _p95(ms: list[float]) -> float:
    return sorted(ms)[max(0, int(len(ms) * 0.95) - 1)] if ms else float("nan")


def bench_selfservice(env: BenchEnv, p: Params) -> dict:
    from tongdai.core.models import RawEvent
    from tongdai.core.pipeline import rawlog
    from tongdai.core.selfservice import articles, bot, matching
    from tongdai.core.selfservice.evaluation import DEFAULT_SET, load_set
    from tongdai.worker import jobs

    env.reset()
    hub = _bot_hub(env)
    articles.save(hub, synthetic(ARTICLES))
    t0 = time.perf_counter()
    matching.index(hub)
    build_ms = (time.perf_counter() - t0) * 1000
    questions = [q["q"] for q in load_set(DEFAULT_SET)[0]]
    n = 150 if p.ingest_n < 10_000 else 400
    texts = [questions[i % len(questions)] for i in range(n)]
    for body in _updates(texts):
        rawlog.append(hub, RawEvent(channel_id=CHANNEL, received_ts_ms=int(time.time() * 1000),
                                    headers={}, body=body))
    jobs.ingest_pending(hub)
    events = [orjson.loads(f[b"e"]) for _, f in hub.redis.xrange(hub.keys.feed())]
    todo = [(str(e["conversation_id"]), str(e["message_id"])) for e in events
            if e.get("type") == "message.created"]
    times, answered, outcomes = [], [], {}
    for conv, mid in todo:
        t = time.perf_counter()
        what = bot.handle(hub, conv, mid)
        times.append((time.perf_counter() - t) * 1000)
        outcomes[what] = outcomes.get(what, 0) + 1
        if what == "answered":
            answered.append(times[-1])
    p95, answered_p95 = _p95(times), _p95(answered)
    times.sort()
    log(f"  selfservice: {len(times)} questions, {ARTICLES} articles: answer path p95 "
        f"{p95:.1f} ms (target <= {TARGET_MS:g}: {'PASS' if p95 <= TARGET_MS else 'MISS'}), "
        f"p50 {times[len(times) // 2]:.1f} ms, answered ones p95 {answered_p95:.1f} ms; index built in {build_ms:.0f} ms; {outcomes}")
    return {"selfservice_answer_p95_ms": p95,
            "_selfservice": {"articles": ARTICLES, "questions": len(times),
                             "p50_ms": times[len(times) // 2], "max_ms": times[-1],
                             "answered_p95_ms": answered_p95,
                             "outcomes": outcomes, "index_build_ms": build_ms,
                             "target": f"<= {TARGET_MS:g}"}}
