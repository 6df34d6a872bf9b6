"""The adapter contract suite (``tongdai.adapters.contract``) passes on every built-in adapter,
with each platform's own failure answers, and catches the faults it is for on a broken one.

The answers are the platforms' documented error shapes (the same the fakes in tests/fakes/
serve): Telegram's ``{"ok": false, "error_code", "description", "parameters"}``, the Graph
API's ``{"error": {"code", "error_subcode"}}``, Zalo's ``{"error": <negative code>}`` in an
HTTP 200, LINE's ``{"message"}`` with 429 for its rate limit.
"""

from __future__ import annotations

import time

import pytest
import yaml

from tests.conftest import SECRET, TOKEN
from tests.fakes import line_api
from tests.fakes.echo_adapter import EchoAdapter
from tests.fakes.facebook_graph import DEFAULT_APP_SECRET, DEFAULT_TOKEN
from tests.fakes.zalo_api import ACCESS_TOKEN, APP_ID, APP_SECRET, REFRESH_TOKEN
from tongdai.adapters.contract import Answer, check_adapter
from tongdai.core.registry import resolve_adapter


def _line_settings(base: str) -> dict:
    """The LINE channel of config/tongdai.example.yaml, its references filled in."""
    from tests.test_webhook_channels_e2e import EXAMPLE

    text = EXAMPLE.read_text(encoding="utf-8")
    for name, value in (("${LINE_CHANNEL_SECRET}", line_api.CHANNEL_SECRET),
                        ("${LINE_CHANNEL_ACCESS_TOKEN}", line_api.ACCESS_TOKEN),
                        ("${LINE_API_BASE:-https://api.line.me}", base)):
        text = text.replace(name, value)
    (line,) = [c for c in yaml.safe_load(text)["channels"] if c["id"] == "line-oa"]
    return line["settings"]


def _line_sample() -> tuple[dict[str, str], bytes]:
    import base64
    import hashlib
    import hmac

    from tests.conftest import FIXTURES

    body = (FIXTURES / "line" / "01_text_vietnamese.json").read_bytes()
    sig = base64.b64encode(hmac.new(line_api.CHANNEL_SECRET.encode(), body,
                                    hashlib.sha256).digest()).decode()
    return {"X-Line-Signature": sig, "Content-Type": "application/json"}, body


BUILTINS = {
    "telegram": {
        "settings": lambda base: {"bot_token": TOKEN, "secret_token": SECRET, "api_base": base},
        "answers": {
            "ok": Answer(200, {"ok": True, "result": {"message_id": 7, "date": 1700000000,
                                                      "chat": {"id": 1, "type": "private"}}}),
            "rate_limited": Answer(429, {"ok": False, "error_code": 429, "description":
                                         "Too Many Requests: retry after 7",
                                         "parameters": {"retry_after": 7}}),
            "blocked": Answer(403, {"ok": False, "error_code": 403,
                                    "description": "Forbidden: bot was blocked by the user"}),
            "bad_token": Answer(401, {"ok": False, "error_code": 401,
                                      "description": "Unauthorized"})},
        "expect": {"rate_limited": {"retryable": True, "retry_after": 7, "code": "rate_limited"},
                "blocked": {"retryable": False, "code": "blocked"},
                "bad_token": {"retryable": False, "code": "unauthorized"}},
        "body_signed": False},  # X-Telegram-Bot-Api-Secret-Token: a shared token, no body HMAC
    "facebook": {
        "settings": lambda base: {"page_id": "104857600123456", "page_access_token": DEFAULT_TOKEN,
                               "app_secret": DEFAULT_APP_SECRET, "verify_token": "vt-42",
                               "graph_base": base},
        "answers": {
            "ok": Answer(200, {"recipient_id": "1254459154682919", "message_id": "m_1"}),
            "window": Answer(400, {"error": {"message": "(#10) This message is sent outside "
                                             "of allowed window.", "code": 10,
                                             "error_subcode": 2018278}}),
            "throttled": Answer(400, {"error": {"message": "(#613) Calls to this api have "
                                                "exceeded the rate limit.", "code": 613}}),
            "bad_token": Answer(400, {"error": {"message": "Invalid OAuth access token.",
                                                "code": 190}})},
        "expect": {"window": {"retryable": False, "code": "window_closed"},
                "throttled": {"retryable": True, "code": "rate_limited"},
                "bad_token": {"retryable": False, "code": "unauthorized"}}},
    "zalo": {
        "settings": lambda base: {"oa_id": "388613280878808645", "app_id": APP_ID,
                               "oa_secret_key": "oa-Secret_key-7781", "app_secret": APP_SECRET,
                               "access_token": ACCESS_TOKEN, "refresh_token": REFRESH_TOKEN,
                               "api_base": base, "oauth_base": base},
        "answers": {
            "ok": Answer(200, {"error": 0, "message": "Success", "data": {
                "message_id": "a1b2", "user_id": "2512523625412515"}}),
            "rate_limited": Answer(200, {"error": -32, "message": "exceed rate limit"}),
            "send_failed": Answer(200, {"error": -200, "message": "Send message failed"})},
        "expect": {"rate_limited": {"retryable": True, "retry_after": 60},
                "send_failed": {"retryable": True, "code": "server_error"}}},
    "webhook": {
        "settings": _line_settings, "sample": _line_sample(),
        "answers": {
            "ok": Answer(200, {"sentMessages": [{"id": "461230966842064897",
                                                 "quoteToken": "IStG5h1Tz7b"}]}),
            "rate_limited": Answer(429, {"message": line_api._MESSAGES[429]}),
            "refused": Answer(400, {"message": "The request body has 1 error(s)"})},
        "expect": {"rate_limited": {"retryable": True}, "refused": {"retryable": False}}},
    "email": {
        "settings": {"address": "support@example.vn",
                  "inbound": {"webhook": {"signing_key": "mg-signing-key-42"}}},
        "answers": None,
        "body_signed": False},  # Mailgun signs timestamp + token (a nonce), not the mail
}


@pytest.mark.parametrize("name", sorted(BUILTINS))
def test_every_builtin_adapter_keeps_the_contract(name):
    case = BUILTINS[name]
    report = check_adapter(resolve_adapter(name), case["settings"], case.get("sample"),
                           case["answers"], case.get("expect"),
                           body_signed=case.get("body_signed", True))
    report.raise_for_problems()
    assert any(c.startswith("verify: no headers is refused") for c in report.checked)
    if case["answers"]:
        assert any("refused connection" in c for c in report.checked), report.checked
        assert any("no answer after the request" in c for c in report.checked)


class Careless(EchoAdapter):
    """The faults the contract is for, each one a bug seen in real connectors."""

    name = "careless"

    def verify(self, headers, body):  # == on secrets, and a crash on a missing header
        if headers["X-Echo-Signature"] != self._sign(body):
            from tongdai.core.errors import SignatureError

            raise SignatureError("bad")

    def parse(self, raw):
        events = super().parse(raw)
        for e in events:  # an id made up at parse time, and seconds for milliseconds
            e.dedupe_key = f"e:{time.time_ns()}"
            e.platform_ts_ms //= 1000
        return events

    def send(self, message):
        import httpx

        resp = httpx.post(f"{self.base}/send", json={"to": message.address}, timeout=1.0)
        resp.raise_for_status()  # httpx errors escape: not DeliveryError
        raise AssertionError("unreachable in this test")

    @property
    def base(self) -> str:
        return self.settings.signing_key.partition("|")[2]

    def _sign(self, body):
        import hashlib
        import hmac

        return hmac.new(self.settings.signing_key.encode(), body, hashlib.sha256).hexdigest()


def test_the_suite_catches_a_careless_adapter():
    import orjson

    from tongdai.adapters.base import ChannelSettings

    class S(ChannelSettings):
        signing_key: str  # a secret kept in a plain str: refused values are echoed

    Careless.Settings = S  # type: ignore[assignment]
    body = orjson.dumps({"id": 1, "user": "u1", "ts": 1_700_000_000_123, "text": "hi"})
    probe = Careless("x", S(signing_key="k|http://127.0.0.1:9"))
    report = check_adapter(Careless, lambda base: {"signing_key": f"k|{base}"},
                           ({"X-Echo-Signature": probe._sign(body)}, body),
                           answers={"ok": Answer(200, {})})
    problems = "\n".join(report.problems)
    assert "no hmac.compare_digest call" in problems
    assert "no headers raises KeyError, not SignatureError" in problems
    assert "other dedupe keys" in problems
    assert "is not milliseconds" in problems
    assert "raises HTTPStatusError" in problems or "raises ConnectError" in problems
    with pytest.raises(AssertionError, match="careless breaks the adapter contract"):
        report.raise_for_problems()
