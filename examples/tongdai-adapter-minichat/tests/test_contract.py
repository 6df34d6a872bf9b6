"""MiniChat's adapter against the hub's contract suite, with MiniChat's own answers."""

from __future__ import annotations

import pytest
from tongdai_minichat import MinichatAdapter

from tongdai.adapters.contract import Answer, check_adapter

KEY, SECRET = "mc_test_0123456789abcdef", "whsec-0123456789abcdef"


def settings(base: str) -> dict:
    return {"api_key": KEY, "signing_secret": SECRET, "api_base": base}


ANSWERS = {
    "ok": Answer(201, {"id": "msg_01", "created_at": "2026-12-04T10:00:00+07:00"}),
    "rate_limited": Answer(429, {"error": "too many messages"}, {"Retry-After": "3"}),
    "bad_key": Answer(401, {"error": "invalid api key"}),
    "visitor_gone": Answer(410, {"error": "visitor deleted"}),
    "server_error": Answer(503, {"error": "maintenance"}),
}
EXPECT = {
    "rate_limited": {"retryable": True, "retry_after": 3.0, "code": "rate_limited"},
    "bad_key": {"retryable": False, "code": "unauthorized"},
    "visitor_gone": {"retryable": False, "code": "blocked"},
    "server_error": {"retryable": True, "code": "server_error"},
}


def test_minichat_keeps_the_adapter_contract():
    report = check_adapter(MinichatAdapter, settings, answers=ANSWERS, expect=EXPECT)
    report.raise_for_problems()
    assert "send: the idempotency key reaches the platform" in report.checked


def test_a_stale_signature_is_a_replay():
    from tongdai.core.errors import SignatureError

    adapter = MinichatAdapter("w", MinichatAdapter.Settings(**settings("http://x.invalid")))
    headers, body = adapter.simulate("hi", "v1", "An")
    headers["X-MiniChat-Timestamp"] = str(int(headers["X-MiniChat-Timestamp"]) - 3600)
    with pytest.raises(SignatureError):
        adapter.verify(headers, body)
