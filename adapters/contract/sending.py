"""The contract's send checks, against the scripted platform (``fake.py``)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson
from pydantic import SecretStr, ValidationError

from tongdai.adapters.base import Adapter, ChannelSettings, OutboundMessage, Receipt
from tongdai.adapters.contract.fake import Answer, FakePlatform, closed_port
from tongdai.core.errors import DeliveryError

CHANNEL = "contract-test"
MS_2001 = 1_000_000_000_000  # a platform timestamp below this is in seconds, not ms


@dataclass(slots=True)
class Report:
    """What was checked and what broke."""

    adapter: str
    checked: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    def ok(self, what: str) -> None:
        self.checked.append(what)

    def bad(self, what: str) -> None:
        self.problems.append(what)

    def raise_for_problems(self) -> None:
        if self.problems:
            raise AssertionError(f"{self.adapter} breaks the adapter contract:\n  - "
                                 + "\n  - ".join(self.problems))


def _secrets_of(settings: ChannelSettings) -> list[str]:
    return [v.get_secret_value() for v in settings.__dict__.values()
            if isinstance(v, SecretStr) and len(v.get_secret_value()) >= 6]



def check_send(adapter: Adapter, settings: ChannelSettings, values: dict[str, Any],
                fake: FakePlatform,
                answers: Mapping[str, Answer], expect: Mapping[str, Mapping[str, Any]],
                message: OutboundMessage, report: Report) -> None:
    secrets = _secrets_of(settings)

    def attempt(what: str) -> Receipt | DeliveryError | None:
        try:
            return adapter.send(message)
        except DeliveryError as exc:
            leaked = [s for s in secrets if s in str(exc)]
            if leaked:
                report.bad(f"send ({what}): the error message carries a secret")
            return exc
        except Exception as exc:  # noqa: BLE001
            report.bad(f"send ({what}) raises {type(exc).__name__}: {exc} — only "
                       "DeliveryError (the sender would record an adapter bug)")
            return None

    if "ok" in answers:
        fake.answer = answers["ok"]
        got = attempt("ok")
        if isinstance(got, Receipt) and got.external_id and got.sent_ts_ms >= MS_2001:
            report.ok("send: success gives a Receipt with the platform's id")
            if adapter.facts().idempotent_sends:
                _check_idempotent(adapter, message, fake, report)
        elif got is not None:
            report.bad(f"send: success gives {got!r}, not a Receipt with external_id and "
                       "sent_ts_ms in ms")
    for name, want in expect.items():
        if name not in answers:
            report.bad(f"expect names {name!r}, which answers lack")
            continue
        fake.answer = answers[name]
        got = attempt(name)
        if isinstance(got, DeliveryError):
            wrong = {k: getattr(got, k, None) for k, v in want.items()
                     if getattr(got, k, None) != v}
            if wrong:
                report.bad(f"send ({name}): DeliveryError has {wrong}, expected "
                           f"{ {k: want[k] for k in wrong} }")
            else:
                report.ok(f"send ({name}): DeliveryError {dict(want)}")
        elif got is not None:
            report.bad(f"send ({name}): no DeliveryError (got {got!r})")
    fake.answer = Answer(502, b"<html><body><h1>502 Bad Gateway</h1></body></html>")
    got = attempt("an HTML 502 page")
    if isinstance(got, DeliveryError) and not got.retryable:
        report.bad("send: an HTML 502 page gives a permanent failure; it is retryable")
    elif isinstance(got, Receipt):
        report.bad("send: an HTML 502 page gives a Receipt")
    else:
        report.ok("send: a gateway's HTML error page is a retryable DeliveryError")
    fake.answer = Answer(0)
    got = attempt("no answer")
    if isinstance(got, DeliveryError) and got.retryable and got.uncertain:
        report.ok("send: no answer after the request is an uncertain, retryable DeliveryError")
    elif got is not None:
        report.bad("send: no answer after the request must be DeliveryError(retryable=True, "
                   "uncertain=True) — use tongdai.adapters.base.transport_error")
    _check_refused(adapter, settings, values, fake, attempt, report)


def _check_idempotent(adapter: Adapter, message: OutboundMessage, fake: FakePlatform,
                      report: Report) -> None:
    """``idempotent_sends`` claims the platform drops a resend with the same key: the key
    must reach it — the same key, the same request; another key, another request."""
    from dataclasses import replace

    def request() -> tuple[str, bytes, list[tuple[str, str]]]:
        _m, p, h, b = fake.requests[-1]
        return p, b, sorted((k.lower(), v) for k, v in h.items()
                            if k.lower() not in ("content-length", "host"))

    first = request()
    adapter.send(message)
    again = request()
    adapter.send(replace(message, idempotency_key=message.idempotency_key + "-other"))
    other = request()
    if first != again or first == other:
        report.bad("send: idempotent_sends is claimed but the idempotency key does not "
                   "reach the platform (same key, same request; another key, another)")
    else:
        report.ok("send: the idempotency key reaches the platform")


def _check_refused(adapter: Adapter, settings: ChannelSettings, values: dict[str, Any],
                   fake: FakePlatform,
                   attempt: Callable[[str], Any], report: Report) -> None:
    """Nothing listens: a certain (not uncertain), retryable failure."""
    text = orjson.dumps(values, default=str).decode()
    if fake.base_url not in text:
        return  # the API base is not in the settings: nothing to point elsewhere
    moved = orjson.loads(text.replace(fake.base_url, f"http://127.0.0.1:{closed_port()}"))
    try:
        other = type(adapter)(CHANNEL, type(settings).model_validate(moved))
    except ValidationError:
        return
    other.http_timeout = adapter.http_timeout
    other.token_store = adapter.token_store
    adapter_send, adapter.send = adapter.send, other.send  # type: ignore[method-assign]
    try:
        got = attempt("connection refused")
    finally:
        adapter.send = adapter_send  # type: ignore[method-assign]
        other.close()
    if isinstance(got, DeliveryError) and got.retryable and not got.uncertain:
        report.ok("send: a refused connection is a certain, retryable DeliveryError")
    elif got is not None:
        report.bad("send: a refused connection must be DeliveryError(retryable=True, "
                   "uncertain=False): nothing reached the platform")
