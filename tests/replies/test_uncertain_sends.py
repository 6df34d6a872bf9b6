"""A send that got no answer after the platform had the request is uncertain: tried once
more, later, never blindly again, and the agent sees it (issue #12: a platform answering
after the client's timeout got every retry, 2 copies marked sent or 6 marked failed)."""

from __future__ import annotations

import time

import httpx
import pytest
from rq import Queue

from tests.helpers import run_outbound
from tests.replies.conftest import open_conversation, wait_for
from tongdai.adapters.base import OutboundMessage
from tongdai.adapters.facebook import FacebookAdapter
from tongdai.adapters.telegram import TelegramAdapter
from tongdai.adapters.zalo import ZaloAdapter
from tongdai.core.errors import DeliveryError
from tongdai.core.keys import REPLIES_QUEUE
from tongdai.core.models import AuthorKind
from tongdai.core.pipeline import outbound, store


@pytest.fixture
def replies_yaml() -> str:
    return "replies:\n  platform_timeout: 1s\n  uncertain_retry: 2s\n"


def _adapters(transport: httpx.MockTransport):
    http = httpx.Client(transport=transport)
    tg = TelegramAdapter("tg", TelegramAdapter.Settings(
        bot_token="123456:AAHfakeTokenForTestsOnly-abcdefghijk", secret_token="s3cret-token"),
        http=http)
    fb = FacebookAdapter("fb", FacebookAdapter.Settings(
        page_id="1122334455", page_access_token="EAAbenchPageToken0123456789",
        app_secret="0123456789abcdef0123456789abcdef", verify_token="v"), http=http)
    zalo = ZaloAdapter("zalo", ZaloAdapter.Settings(
        oa_id="388613280878808645", app_id="3608465248940903967", oa_secret_key="oa-secret",
        app_secret="app-secret", access_token="access-token", refresh_token="refresh-token"),
        http=http)
    return {"telegram": (tg, "555"), "facebook": (fb, "2468013579"), "zalo": (zalo, "8642")}


@pytest.mark.parametrize("platform", ["telegram", "facebook", "zalo"])
@pytest.mark.parametrize(("exc", "uncertain"), [
    (httpx.ReadTimeout, True),  # the request was written: the platform may have sent it
    (httpx.ReadError, True),
    (httpx.RemoteProtocolError, True),
    (httpx.ConnectTimeout, False),  # nothing was written
    (httpx.PoolTimeout, False),
    (httpx.ConnectError, False),
    (httpx.WriteTimeout, False),  # an incomplete request is never acted on
])
def test_adapters_tell_unanswered_from_unsent(platform, exc, uncertain):
    def fail(request: httpx.Request) -> httpx.Response:
        raise exc("boom", request=request)

    adapter, address = _adapters(httpx.MockTransport(fail))[platform]
    out = OutboundMessage(address=address, text="xin chào", author_kind=AuthorKind.AGENT,
                          idempotency_key="7", last_inbound_ts_ms=int(time.time() * 1000))
    with pytest.raises(DeliveryError) as err:
        adapter.send(out)
    assert err.value.uncertain is uncertain and err.value.retryable
    assert err.value.code == ("timeout" if issubclass(exc, httpx.TimeoutException) else "network")
    assert "boom" not in str(err.value)  # httpx's text may quote a URL with a token


def test_platform_answering_after_the_timeout_gets_two_copies_and_the_agent_is_told(
        hub, tg_fake, processes):
    """Telegram has no idempotency key: one more try, 2 s later (``uncertain_retry``), then
    none; the message ends ``uncertain`` with the reason, not ``sent`` nor ``failed``."""
    conv = open_conversation(hub, "tg-test", 4242)
    tg_fake.answer_delay = 1.6  # it sends, then answers after the 1 s timeout
    processes.worker("replies")
    processes.wait_senders({"replies": 1})
    msg, _ = outbound.create_reply(hub, conv, "đơn đã giao", "alice", "k1", "alice")
    wait_for(lambda: tg_fake.calls_at(), 5)
    pending = wait_for(lambda: (m := store.get_message(hub, conv, msg.id)).status_reason and m, 5)
    assert pending.status.value == "queued" and "may have arrived" in pending.status_reason
    final = wait_for(lambda: (m := store.get_message(hub, conv, msg.id)).status.value
                     == "uncertain" and m, 15, step=0.1)
    time.sleep(3)  # nothing more comes
    calls = [t for t, _ in tg_fake.calls_at()]
    assert len(calls) == 2, f"{len(calls)} copies sent"
    assert calls[1] - calls[0] >= 2.0
    assert "may have arrived" in final.status_reason and "Not tried again" in final.status_reason


def test_unanswered_then_answered_is_sent_with_a_warning(hub, tg_fake):
    conv = open_conversation(hub, "tg-test", 4242)
    tg_fake.answer_delay = 1.5
    msg, _ = outbound.create_reply(hub, conv, "một lần thôi", "alice", "k2", "alice")
    Queue(REPLIES_QUEUE, connection=hub.redis).empty()  # its job, run here instead:
    first = outbound.deliver(hub, conv, msg.id)
    assert first == "uncertain: one more try in 2s"
    tg_fake.answer_delay = 0.0  # the platform answers in time again
    run_outbound(hub)
    sent = store.get_message(hub, conv, msg.id)
    assert sent.status.value == "sent" and "may see it twice" in sent.status_reason
    assert len(tg_fake.calls_at()) == 2


def test_connect_timeout_is_retried_as_usual(hub, tg_fake):
    """Nothing reached the platform: the normal retries, not the one-more-try rule."""
    conv = open_conversation(hub, "tg-test", 4242)
    msg, _ = outbound.create_reply(hub, conv, "hello", "alice", "k3", "alice")
    adapter = hub.adapter("tg-test")
    calls = []

    def refuse(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        raise httpx.ConnectTimeout("no route", request=request)

    adapter._http = httpx.Client(transport=httpx.MockTransport(refuse))
    assert outbound.deliver(hub, conv, msg.id) == "retry 2 in 1s"
    [member] = hub.redis.zrange(hub.keys.sends_due(), 0, -1)
    assert member.decode() == f"replies:{conv}:{msg.id}:2:"  # no "u": nothing was sent
    assert store.get_message(hub, conv, msg.id).status.value == "queued"
    assert len(calls) == 1
