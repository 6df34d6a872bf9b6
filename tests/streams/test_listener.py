"""One console's place in the fan-out (webhooks/streaming.py:Listener): nothing twice,
nothing skipped, and a reader that falls behind is dropped rather than buffered."""

from __future__ import annotations

from tongdai.core.pipeline.feed import FeedEvent
from tongdai.core.workspace.access import Principal
from tongdai.webhooks import streaming
from tongdai.webhooks.api.events import frame


def batch(*ids: str) -> tuple[list[FeedEvent], dict[str, str]]:
    events = [FeedEvent(i, {"type": "message.created", "conversation_id": "1"}) for i in ids]
    return events, {e.id: frame(e.id, e.type, e.data) for e in events}


def test_each_event_once_even_when_the_backlog_and_a_live_batch_overlap():
    li = streaming.Listener(Principal("an", "agent", frozenset({"billing"})), "100-0")
    events, frames = batch("100-0", "101-0", "102-0")
    li.offer(events, events, None, frames)  # the backlog: 100-0 was its Last-Event-ID
    live, live_frames = batch("102-0", "103-0")  # a live batch read meanwhile
    li.offer(live, live, "".join(live_frames.values()), live_frames)
    sent = "".join(li.queue.get_nowait() for _ in range(li.queue.qsize()))
    assert [line for line in sent.splitlines() if line.startswith("id: ")] == [
        "id: 101-0", "id: 102-0", "id: 103-0"]
    assert li.high == "103-0"


def test_invisible_events_move_the_position_without_a_frame():
    li = streaming.Listener(Principal("an", "agent", frozenset({"billing"})), "0-0")
    events, frames = batch("5-0", "6-0")
    li.offer(events, [], None, frames)
    assert li.queue.empty() and li.high == "6-0"  # the heartbeat sends "id: 6-0" later


def test_a_reader_that_falls_behind_is_dropped_not_buffered(monkeypatch):
    monkeypatch.setattr(streaming, "QUEUE_MAX", 3)
    li = streaming.Listener(Principal("admin", "admin", frozenset()), "0-0")
    for n in range(1, 6):
        events, frames = batch(f"{n}-0")
        li.offer(events, events, None, frames)
    assert li.dropped and li.queue.qsize() == 3
