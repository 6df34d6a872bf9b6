"""redis-py 8 changed its default socket timeout to 5 s; the hub's blocking reads wait up to
15 s (the live stream's heartbeat). The hub sets its own timeouts (core/hub.py:connect)."""

from __future__ import annotations

import time

import pytest

from tongdai.core.hub import SOCKET_TIMEOUT_S
from tongdai.core.pipeline import feed


def test_a_fifteen_second_blocking_read_is_not_cut_short(hub):
    assert SOCKET_TIMEOUT_S > 15
    started = time.monotonic()
    assert feed.read_after(hub, feed.last_id(hub), block_ms=6_000) == []  # > redis-py's 5 s
    assert time.monotonic() - started >= 5.9


def test_every_blocking_reader_has_a_socket_timeout_above_its_block(hub):
    from rq import Queue, Worker

    from tongdai.webhooks import streaming
    from tongdai.worker.main import RQ_SOCKET_TIMEOUT_S

    worker = Worker([Queue("replies", connection=hub.redis)], connection=hub.redis)
    assert RQ_SOCKET_TIMEOUT_S > worker.dequeue_timeout
    assert streaming.READ_BLOCK_MS / 1000 < streaming.SOCKET_TIMEOUT_S < float("inf")


def test_a_longer_timeout_for_a_client_whose_pool_already_has_connections(hub):
    """RQ's BLPOP waits longer than the hub's socket timeout; raising a pool's timeout in
    place leaves the connections it already made on the old one, so the worker gets a client
    of its own (tongdai.worker.main.run_worker)."""
    import redis

    from tongdai.core.hub import with_socket_timeout

    short = redis.Redis(connection_pool=redis.ConnectionPool(
        connection_class=hub.redis.connection_pool.connection_class,
        **dict(hub.redis.connection_pool.connection_kwargs, socket_timeout=0.5)))
    short.ping()  # a connection made with the short timeout
    longer = with_socket_timeout(short, 5)
    assert longer.blpop(["td:test:nothing"], timeout=1) is None  # waited 1 s, no TimeoutError
    short.connection_pool.connection_kwargs["socket_timeout"] = 5  # what RQ does
    with pytest.raises(redis.TimeoutError):
        short.blpop(["td:test:nothing"], timeout=1)


@pytest.mark.parametrize("kind", ["forking", "simple"])
def test_a_worker_stops_at_once_after_reading_its_unsubscribe_reply(hub, kind):
    """rq's command thread reads for 60 s at a time and redis-py 8's stop() waits for the read:
    rq's own worker, stopped just after its thread read the unsubscribe reply, is still alive
    5 s later (up to a minute). Ours reads in 1 s steps (worker/main.py:_PromptCommands)."""
    from tongdai.worker.main import WatchingSimpleWorker, WatchingWorker

    w = (WatchingWorker if kind == "forking" else WatchingSimpleWorker)(
        ["probe"], connection=hub.redis)
    w.subscribe()
    time.sleep(0.3)
    w.pubsub.unsubscribe()
    time.sleep(0.5)  # the thread has read the reply and is reading again
    w.pubsub_thread.stop(timeout=5)
    assert not w.pubsub_thread.is_alive()
