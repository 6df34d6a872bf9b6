"""The live stream ``GET /api/v1/events/stream``: Server-Sent Events from the change feed,
read through the Flask test client without buffering (the generator runs as we read)."""

from __future__ import annotations

import orjson
import pytest

from tests.console.conftest import log_in
from tests.helpers import drain_all, post, tg_update
from tongdai.core.pipeline import feed
from tongdai.core.workspace import tokens, users


class Stream:
    """Reads SSE frames from an unbuffered test response."""

    def __init__(self, resp) -> None:
        assert resp.status_code == 200, resp.get_data(as_text=True)
        assert resp.mimetype == "text/event-stream"
        self.resp = resp
        self.chunks = iter(resp.response)
        self.buf = ""

    def frames(self):
        while True:
            while "\n\n" not in self.buf:
                try:
                    chunk = next(self.chunks)
                except StopIteration:
                    return
                self.buf += chunk.decode() if isinstance(chunk, bytes) else chunk
            frame, self.buf = self.buf.split("\n\n", 1)
            out = {}
            for line in frame.split("\n"):
                name, _, value = line.partition(": ")
                if name in ("id", "event", "data"):
                    out[name] = value
            yield out

    def events(self):
        """Dispatched events (frames with an event name), data decoded."""
        for f in self.frames():
            if "event" in f:
                yield {"id": f["id"], "event": f["event"], "data": orjson.loads(f["data"])}

    def until(self, want) -> list[dict]:
        """Every event up to and including the first for which ``want(event)`` is true."""
        seen = []
        for e in self.events():
            seen.append(e)
            if want(e):
                return seen
        raise AssertionError(f"the stream ended before the event; got {seen}")

    def close(self) -> None:
        self.resp.close()


@pytest.fixture
def app(app):
    # Short heartbeats keep the tests quick; the bound ends a stream whose event never comes.
    app.config.update(SSE_HEARTBEAT_SECONDS=0.2, SSE_MAX_SECONDS=20)
    return app


@pytest.fixture
def webhook(app):
    """A second client for the platform side, so the agent's stream stays open."""
    platform = app.test_client()

    def send(update_id: int, chat_id: int, text: str) -> None:
        assert post(platform, tg_update(update_id, chat_id, update_id, text)).status_code == 200

    return send


def open_stream(client, last_event_id: str | None = None, query: str = "") -> Stream:
    headers = {"Last-Event-ID": last_event_id} if last_event_id else {}
    return Stream(client.get("/api/v1/events/stream" + query, headers=headers, buffered=False))


def created(e: dict) -> bool:
    return e["event"] == "message.created"


def test_a_new_message_arrives_on_the_stream(client, hub, people, webhook):
    log_in(client, "an")
    s = open_stream(client)
    ready = next(s.events())
    assert ready["event"] == "ready" and ready["data"] == {"user": "an"}
    webhook(1, 4242, "Xin chào shop")
    drain_all(hub)
    got = s.until(created)[-1]
    conv = client.get("/api/v1/conversations").json["items"][0]
    assert got["data"]["conversation_id"] == conv["id"]
    # the SSE id is the feed entry's id (what Last-Event-ID resumes from)
    assert got["id"] == [e.id for e in feed.read_after(hub, "0-0", 1000)
                         if e.type == "message.created"][-1]
    s.close()


def test_reconnecting_with_last_event_id_misses_nothing(client, hub, people, webhook):
    log_in(client, "an")
    s = open_stream(client)
    webhook(1, 4242, "tin thứ nhất")
    drain_all(hub)
    first = s.until(created)[-1]
    s.close()
    # while the agent is disconnected, two more messages come in
    webhook(2, 4242, "tin thứ hai")
    webhook(3, 4343, "tin thứ ba")
    drain_all(hub)
    for again in (open_stream(client, last_event_id=first["id"]),
                  open_stream(client, query=f"?last_event_id={first['id']}")):
        missed = []
        for e in again.events():
            if created(e):
                missed.append(e)
            if len(missed) == 2:
                break
        again.close()
        assert first["id"] not in [e["id"] for e in missed]
        texts = []
        for e in missed:
            m = client.get(f"/api/v1/conversations/{e['data']['conversation_id']}/messages"
                           ).json["items"]
            texts += [x["text"] for x in m if x["id"] == e["data"]["message_id"]]
        assert texts == ["tin thứ hai", "tin thứ ba"]


def test_an_agent_of_another_team_does_not_get_the_events(client, app, hub, people, webhook):
    log_in(client, "bich")  # billing
    other = app.test_client()
    log_in(other, "an")  # support: sees general
    theirs, mine = open_stream(other), open_stream(client)
    webhook(1, 4242, "Xin chào, đơn hàng của tôi đâu?")  # -> general (support)
    drain_all(hub)
    webhook(2, 5151, "Mình muốn nạp thẻ 100k")  # -> billing
    drain_all(hub)
    admin = tokens.create(hub, "root", "admin")
    convs = {c["queue"]: c["id"] for c in app.test_client().get(
        "/api/v1/conversations", headers={"Authorization": f"Bearer {admin}"}).json["items"]}
    got = [e for e in mine.until(created) if created(e)]
    # the general conversation's event came first in the feed; bich's stream skipped it
    assert [e["data"]["conversation_id"] for e in got] == [convs["billing"]]
    assert theirs.until(created)[-1]["data"]["conversation_id"] == convs["general"]
    mine.close()
    theirs.close()


def test_mentions_merges_presence_and_assignment_are_filtered_per_person(client, hub, people,
                                                                       webhook):
    log_in(client, "bich")  # billing
    webhook(1, 4242, "Xin chào")  # general (conversation 1, customer 1): not bich's
    drain_all(hub)
    webhook(2, 5151, "nạp thẻ không được")  # billing (customer 2)
    drain_all(hub)
    s = open_stream(client)
    conv = "1"
    feed.publish(hub, {"type": "note.created", "conversation_id": conv, "message_id": "9",
                       "author_id": "an", "mentions": ["cuong"]})
    feed.publish(hub, {"type": "note.created", "conversation_id": conv, "message_id": "10",
                       "author_id": "an", "mentions": ["bich"]})
    for customer in ("1", "2"):
        feed.publish(hub, {"type": "customer.merged", "merge_id": "m" + customer,
                           "customer_id": customer, "merged_customer_id": "9"})
    feed.publish(hub, {"type": "presence.changed", "user": "an", "status": "away"})
    feed.publish(hub, {"type": "conversation.assigned", "conversation_id": conv,
                       "assignee": "bich", "team": None, "by": "cuong"})
    got = s.until(lambda e: e["event"] == "conversation.assigned")
    assert [(e["event"], e["data"].get("message_id") or e["data"].get("merge_id"))
            for e in got[1:]] == [
        ("note.created", "10"), ("customer.merged", "m2"), ("presence.changed", None),
        ("conversation.assigned", None)]
    s.close()


def test_a_resume_point_the_feed_no_longer_holds_gets_reset(client, hub, people, webhook):
    log_in(client, "an")
    webhook(1, 4242, "một")
    drain_all(hub)
    gone = feed.last_id(hub)
    webhook(2, 4242, "hai")
    webhook(3, 4242, "ba")
    drain_all(hub)
    hub.redis.xtrim(hub.keys.feed(), maxlen=1, approximate=False)
    s = open_stream(client, last_event_id=gone)
    first = next(s.events())
    assert first["event"] == "reset" and first["id"] == feed.last_id(hub)
    s.close()
    bad = client.get("/api/v1/events/stream", headers={"Last-Event-ID": "yesterday"})
    assert bad.status_code == 400


def test_the_stream_ends_when_the_user_is_disabled(client, hub, people):
    log_in(client, "an")
    s = open_stream(client)
    assert next(s.events())["event"] == "ready"
    users.update(hub, "an", {"disabled": True})
    assert s.until(lambda e: e["event"] == "ended")[-1]["event"] == "ended"
    assert list(s.frames()) == []  # and the stream is over
