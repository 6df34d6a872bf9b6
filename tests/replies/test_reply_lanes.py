"""Agents' replies have a queue of their own and never wait behind profile fetches, or
behind another channel that stops answering (issue #12: a reply waited 13 minutes behind 20k
profile fetches; a slow platform delayed an unrelated reply 85 s).

Real processes, as ``tongdai up`` runs them: two ``--queues replies`` senders and one
``--queues background`` worker.
"""

from __future__ import annotations

import time
from itertools import pairwise

from rq import Queue

from tests.replies.conftest import SLOW, open_conversation, wait_for
from tongdai.core.keys import BACKGROUND_QUEUE, REPLIES_QUEUE
from tongdai.core.models import AuthorKind
from tongdai.core.pipeline import ingest, outbound, store

PROFILES = 3000


def _reply(hub, conv: str, text: str) -> str:
    msg, _ = outbound.create_reply(hub, conv, text, "alice", f"k-{text}", "alice")
    return msg.id


def test_platform_calls_go_to_background_and_replies_to_their_own_queue(hub):
    conv = open_conversation(hub, "tg-test", 4242)
    ingest._enqueue_platform_calls(hub, [("tg-test", "4242", "1")], [("tg-test", "cb-1")])
    outbound.create_reply(hub, conv, "ack", "auto", "k-ack", "system", author_kind=AuthorKind.BOT)
    mid = _reply(hub, conv, "from an agent")
    background = Queue(BACKGROUND_QUEUE, connection=hub.redis).jobs
    assert [j.func_name for j in background] == [ingest.PROFILE_JOB, ingest.ACK_JOB,
                                                 outbound.SEND_JOB]  # the automatic reply
    assert Queue(REPLIES_QUEUE, connection=hub.redis).job_ids == [f"send-{mid}"]


def test_reply_overtakes_profile_backlog_and_a_slow_channel(hub, tg_fake, slow_fake,
                                                            processes):
    fast_conv = open_conversation(hub, "tg-test", 4242)
    slow_convs = [open_conversation(hub, SLOW, chat) for chat in (501, 502, 503)]
    # A burst of new customers: thousands of profile fetches queued before the reply.
    ingest._enqueue_platform_calls(
        hub, [("tg-test", str(10_000 + i), str(10_000 + i)) for i in range(PROFILES)], [])
    slow_fake.answer_delay = 3.0  # every call answered 3 s later (within the 10 s timeout)
    for _ in range(2):
        processes.worker("replies")
    processes.worker("background")
    processes.wait_senders({"replies": 2, "background": 1})

    slow_ids = [_reply(hub, conv, f"slow {i}") for i, conv in enumerate(slow_convs)]
    wait_for(lambda: slow_fake.calls_at(), 5)  # one slow call is running now
    time.sleep(0.3)
    asked = time.time()
    _reply(hub, fast_conv, "fast")
    arrived = wait_for(lambda: [t for t, p in tg_fake.calls_at() if p["text"] == "fast"], 10)[0]
    print(f"reply sent {arrived - asked:.3f}s after it was made")
    assert arrived - asked < 1.0, f"the reply took {arrived - asked:.2f}s"
    assert Queue(BACKGROUND_QUEUE, connection=hub.redis).count > PROFILES / 2  # overtaken

    # The slow channel got one call at a time (the others parked, holding no sender), and
    # each of its replies once.
    def all_sent():
        return all(store.get_message(hub, c, m).status.value == "sent"
                   for c, m in zip(slow_convs, slow_ids))

    wait_for(all_sent, 20, step=0.1)
    starts = sorted(t for t, _ in slow_fake.calls_at())
    assert len(starts) == 3
    assert all(b - a >= 2.9 for a, b in pairwise(starts)), starts
