"""The change feed's reactors under crashes and redelivery (core/feed.py run_once)."""

from __future__ import annotations

import pytest

from tongdai.core.pipeline import feed


def _pending(hub, group: str) -> int:
    return hub.redis.xpending(hub.keys.feed(), group)["pending"]


def _left_by_a_dead_consumer(hub, group: str, n: int) -> list[str]:
    """``n`` events a consumer of ``group`` read and never acknowledged (it died)."""
    feed.ensure_group(hub, group)
    for i in range(n):
        feed.publish(hub, {"type": "test.event", "n": i})
    res = hub.redis.xreadgroup(group, "dead", {hub.keys.feed(): ">"}, count=100)
    return [eid.decode() for eid, _ in res[0][1]]


def test_entries_trimmed_while_pending_are_skipped_not_fatal(hub):
    """The feed is capped: a reactor that fell behind can find pending entries gone. On
    Redis 6.2 XAUTOCLAIM answers those as nil entries; the live ones are still handled and
    the gone ones leave the pending list."""
    ids = _left_by_a_dead_consumer(hub, "t", 3)
    hub.redis.xdel(hub.keys.feed(), ids[1])  # what MAXLEN trimming does to an old entry
    seen: list[int] = []
    n = feed.run_once(hub, "t", lambda h, evs: seen.extend(e.data["n"] for e in evs),
                      "alive", claim_idle_ms=0)
    assert (n, seen) == (2, [0, 2])
    assert _pending(hub, "t") == 0


def test_one_bad_event_does_not_hold_back_its_batch(hub):
    """A handler that fails on one event: the others of its batch are handled and
    acknowledged; only the bad one stays pending, to be retried."""
    _left_by_a_dead_consumer(hub, "t", 4)
    seen: list[int] = []

    def handler(h, evs):
        if any(e.data["n"] == 2 for e in evs):
            raise RuntimeError("cannot handle event 2")
        seen.extend(e.data["n"] for e in evs)

    with pytest.raises(RuntimeError):
        feed.run_once(hub, "t", handler, "alive", claim_idle_ms=0)
    assert seen == [0, 1, 3]
    assert _pending(hub, "t") == 1
    with pytest.raises(RuntimeError):  # retried alone, the others are not handled again
        feed.run_once(hub, "t", handler, "alive", claim_idle_ms=0)
    assert seen == [0, 1, 3]


def test_an_outage_is_not_retried_event_by_event(hub):
    """Every event fails (the relay is down): the round stops after a few tries instead of
    waiting for a timeout per event; everything stays pending for the next round."""
    _left_by_a_dead_consumer(hub, "t", 10)
    tries: list[int] = []

    def down(h, evs):
        tries.append(len(evs))
        raise ConnectionError("relay unreachable")

    with pytest.raises(ConnectionError):
        feed.run_once(hub, "t", down, "alive", claim_idle_ms=0)
    assert tries == [10] + [1] * feed.FAILURES_IN_A_ROW
    assert _pending(hub, "t") == 10


def test_periodic_tasks_run_when_due_and_a_failing_one_does_not_stop_the_others(hub,
                                                                               monkeypatch):
    import threading

    from tongdai.core.pipeline import feed
    from tongdai.worker.main import run_ticks

    calls: list[str] = []
    stop = threading.Event()

    def boom(h):
        calls.append("boom")
        raise RuntimeError("a task that fails")

    def count(h):
        calls.append("count")
        if calls.count("count") == 3:
            stop.set()

    monkeypatch.setattr(feed, "TICKS", {"boom": (boom, 0.0), "count": (count, 0.0)})
    t = threading.Thread(target=run_ticks, args=(hub, stop, 0.01))
    t.start()
    t.join(10)
    assert not t.is_alive()
    assert calls.count("count") == 3 and calls.count("boom") == 3
