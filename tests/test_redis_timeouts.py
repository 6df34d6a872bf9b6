"""redis-py 8 changed its default socket timeout to 5 s; the hub's blocking reads wait up to
15 s (the live stream's heartbeat). The hub sets its own timeouts (core/hub.py:connect)."""

from __future__ import annotations

import time

from tongdai.core.hub import SOCKET_TIMEOUT_S
from tongdai.core.pipeline import feed


def test_a_fifteen_second_blocking_read_is_not_cut_short(hub):
    assert SOCKET_TIMEOUT_S > 15
    started = time.monotonic()
    assert feed.read_after(hub, feed.last_id(hub), block_ms=6_000) == []  # > redis-py's 5 s
    assert time.monotonic() - started >= 5.9
