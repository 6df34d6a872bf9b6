"""The replies section of ``tongdai bench``: how long an agent's reply takes to reach its
platform while background work piles up and another platform stops answering in time.

``reply_latency_under_backlog_ms`` is the p95 from ``create_reply`` (what ``POST
/conversations/{id}/messages`` calls) to a fake Bot API receiving the text, with the senders
``tongdai up`` runs (two ``--queues replies``, one ``--queues background``), while 10,000
profile fetches wait on the background queue and one channel in ten replies goes to a fake
that answers every call after 15 s (the hub gives up after ``replies.platform_timeout``,
10 s). Replies are offered open-loop at a steady rate, each to a different chat (Telegram
allows one message a second per chat).
"""

from __future__ import annotations

import time

from rq import Queue, Worker

from tongdai.benchmarks.common import Params, percentile
from tongdai.benchmarks.env import BenchEnv, Child, log
from tongdai.benchmarks.fakeplatform import FakeBotAPI

FAST, SLOW = "bench-fast", "bench-slow"
CONFIG = """\
# written by `tongdai bench` for the replies section
routing:
  default_queue: general
  queues: [general]
channels:
"""
CHANNEL = """\
  - id: {id}
    adapter: telegram
    settings:
      bot_token: "123456:BENCH-token_abcdefghijklmnop"
      secret_token: "bench-secret_123"
      api_base: "{base}"
"""


def _conversations(hub, n_fast: int, n_slow: int) -> dict[str, list[str]]:
    """One conversation per chat: ``n_fast`` on the fast channel, ``n_slow`` on the slow one."""
    import orjson

    from tongdai.core import clock
    from tongdai.core.models import RawEvent
    from tongdai.core.pipeline import rawlog
    from tongdai.worker import jobs

    for i in range(n_fast + n_slow):
        chat = 700_000 + i
        body = orjson.dumps({"update_id": chat, "message": {
            "message_id": 1, "date": int(time.time()), "text": "shop ơi, đơn của em đâu?",
            "from": {"id": chat, "is_bot": False, "first_name": "Khách"},
            "chat": {"id": chat, "type": "private"}}})
        rawlog.append(hub, RawEvent(FAST if i < n_fast else SLOW, body, {}, clock.now_ms()))
    jobs.ingest_pending(hub)
    pipe = hub.redis.pipeline(transaction=False)
    total = int(hub.redis.get(hub.keys.seq("conversation")) or 0)
    for c in range(1, total + 1):
        pipe.hget(hub.keys.conversation(str(c)), "channel")
    convs: dict[str, list[str]] = {FAST: [], SLOW: []}
    for c, channel in enumerate(pipe.execute(), start=1):
        convs[channel.decode()].append(str(c))
    return convs


def _queue_profiles(hub, n: int) -> None:
    """``n`` profile fetches on the background queue, as a burst of new customers leaves."""
    from tongdai.core.keys import BACKGROUND_QUEUE
    from tongdai.core.pipeline.ingest import PROFILE_JOB

    q = Queue(BACKGROUND_QUEUE, connection=hub.redis)
    for start in range(0, n, 1000):
        q.enqueue_many([Queue.prepare_data(PROFILE_JOB, (FAST, str(800_000 + i), f"b{i}"),
                                           result_ttl=0, job_id=f"profile-b{i}")
                        for i in range(start, min(n, start + 1000))])


def _start_senders(env: BenchEnv, child_env: dict[str, str], hub) -> list[Child]:
    children = [env.python(f"sender-{i + 1}", "-m", "tongdai.core.cli", "worker", "--queues",
                           "replies", env=child_env) for i in range(2)]
    children.append(env.python("background", "-m", "tongdai.core.cli", "worker", "--queues",
                               "background", env=child_env))
    deadline = time.monotonic() + 30
    while not (hub.redis.zcard(hub.keys.senders("replies")) >= 2
               and hub.redis.zcard(hub.keys.senders("background")) >= 1
               and len(Worker.all(connection=hub.redis)) >= 3):
        for c in children:
            if c.proc.poll() is not None:
                raise RuntimeError(f"{c.name} exited: {c.tail()}")
        if time.monotonic() > deadline:
            raise RuntimeError("the senders did not start within 30s")
        time.sleep(0.05)
    return children


def bench_replies(env: BenchEnv, p: Params) -> dict:
    from tongdai.core.config import load_config
    from tongdai.core.hub import Hub
    from tongdai.core.keys import BACKGROUND_QUEUE
    from tongdai.core.pipeline import outbound, rawlog

    env.reset()
    n = int(p.rep_rate * p.rep_seconds)
    n_slow = n // p.rep_slow_every
    with FakeBotAPI() as fast, FakeBotAPI(p.rep_slow_delay) as slow:
        cfg = env.dir / "replies.yaml"
        cfg.write_text(CONFIG + CHANNEL.format(id=FAST, base=fast.base_url)
                       + CHANNEL.format(id=SLOW, base=slow.base_url), encoding="utf-8")
        hub = Hub(load_config(str(cfg)), env.redis, env.hub.keyring)
        rawlog.ensure_groups(hub)
        convs = _conversations(hub, n - n_slow, n_slow)
        _queue_profiles(hub, p.rep_profiles)
        children = _start_senders(env, {**env.env, "TONGDAI_CONFIG": str(cfg)}, hub)
        try:
            created: dict[str, float] = {}
            t0 = time.monotonic()
            fast_convs, slow_convs = iter(convs[FAST]), iter(convs[SLOW])
            for i in range(n):
                time.sleep(max(0.0, t0 + i / p.rep_rate - time.monotonic()))
                to_slow = i % p.rep_slow_every == p.rep_slow_every - 1
                text = f"{'slow' if to_slow else 'fast'} reply {i}"
                conv = next(slow_convs if to_slow else fast_convs)
                if not to_slow:
                    created[text] = time.time()
                outbound.create_reply(hub, conv, text, "bench-agent", f"bench-{i}", "bench")
            deadline = time.monotonic() + 15
            while len(set(created) & set(fast.arrivals)) < len(created):
                if time.monotonic() > deadline:
                    break
                time.sleep(0.05)
            gave_up = time.time()
            backlog = Queue(BACKGROUND_QUEUE, connection=hub.redis).count
        finally:
            env.stop(*children)
    arrivals = dict(fast.arrivals)
    lat = sorted((arrivals.get(text, gave_up) - at) * 1000 for text, at in created.items())
    missing = sum(1 for text in created if text not in arrivals)
    out = {
        "reply_latency_under_backlog_ms": percentile(lat, 0.95),
        "_replies": {
            "p50_ms": percentile(lat, 0.50), "max_ms": lat[-1], "replies_measured": len(lat),
            "not_arrived": missing, "rate_per_s": p.rep_rate, "seconds": p.rep_seconds,
            "slow_every": p.rep_slow_every, "slow_channel_replies": n_slow,
            "slow_channel_calls": slow.calls,
            "slow_answer_after_s": p.rep_slow_delay, "profiles_queued": p.rep_profiles,
            "profiles_still_queued_at_end": backlog,
            "processes": "2 x `tongdai worker --queues replies` + 1 x `--queues background`",
        },
    }
    log(f"  reply latency under backlog: p50 {out['_replies']['p50_ms']:.0f} ms, p95 "
        f"{out['reply_latency_under_backlog_ms']:.0f} ms, max {lat[-1]:.0f} ms over {len(lat)} "
        f"replies ({missing} not arrived); {backlog} of {p.rep_profiles} profile fetches "
        f"still queued; {slow.calls} calls to the slow channel")
    return out
