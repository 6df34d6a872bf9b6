"""The adapter contract, checked: run it against your adapter class before you ship it.

::

    from tongdai.adapters.contract import Answer, check_adapter

    report = check_adapter(
        MyAdapter,
        settings=lambda base: {"api_key": "k" * 32, "signing_key": "s3cret", "api_base": base},
        sample=my_adapter_signed_request,   # (headers, body) a platform really sends, signed
        answers={"ok": Answer(200, {"id": "m-1"}),
                 "rate_limited": Answer(429, {"error": "slow down"}, {"Retry-After": "7"}),
                 "refused": Answer(403, {"error": "blocked"})},
        expect={"rate_limited": dict(retryable=True, retry_after=7.0),
                "refused": dict(retryable=False)})
    report.raise_for_problems()   # AssertionError listing every broken rule

What it checks (docs/adding-a-channel.md says why each matters):

- settings: unknown keys refused; a missing required key named; a refused secret not echoed;
- verify: the sample passes; a tampered body, a stripped or non-ASCII signature are refused
  with ``SignatureError``; ``hmac.compare_digest`` (or ``constant_time_equal``) decides;
- parse: pure (no socket is opened: no Redis, no platform call); a list of events with
  dedupe keys, users and millisecond timestamps; the same body gives the same keys; garbage
  gives ``PayloadError`` or nothing, never another exception;
- facts: a ``ChannelFacts`` with sane windows and rate limits;
- send, against a small HTTP server this module starts and scripts with your platform's
  answers: success gives a ``Receipt``; each failure the ``DeliveryError`` you expect; a
  refused connection a certain, retryable one; no answer after the request an *uncertain*
  one; an HTML error page a retryable one; no error message carries a secret.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

import httpx
from pydantic import SecretStr, ValidationError

from tongdai.adapters.base import Adapter, ChannelFacts, ChannelSettings, OutboundMessage
from tongdai.adapters.contract.fake import Answer, CountCompares, FakePlatform, NoSockets
from tongdai.adapters.contract.sending import CHANNEL, MS_2001, Report, check_send
from tongdai.core.errors import PayloadError, SignatureError
from tongdai.core.models import AuthorKind, InboundEvent, RawEvent

__all__ = ["Answer", "Report", "check_adapter"]

GARBAGE = (b"", b"not json at all", b"{}", b"[]", b'{"object": 12}', b"\xff\xfe\x00")
USER = "1254459154682919"  # digits: every platform's user ids take it


def _tampered(body: bytes) -> bytes:
    """The body with one character changed (a digit, else a letter, else a byte appended)."""
    for i in range(len(body) - 1, -1, -1):
        c = body[i:i + 1]
        if c.isdigit():
            return body[:i] + (b"7" if c != b"7" else b"3") + body[i + 1:]
    for i in range(len(body) - 1, -1, -1):
        c = body[i:i + 1]
        if c.isalpha():
            return body[:i] + (b"x" if c != b"x" else b"y") + body[i + 1:]
    return body + b" "


def check_adapter(
    cls: type[Adapter],
    settings: Mapping[str, Any] | Callable[[str], Mapping[str, Any]],
    sample: tuple[Mapping[str, str], bytes] | None = None,
    answers: Mapping[str, Answer] | None = None,
    expect: Mapping[str, Mapping[str, Any]] | None = None,
    message: OutboundMessage | None = None,
    unsigned: bool = False,
    body_signed: bool = True,
) -> Report:
    """Check ``cls`` against the contract; return a :class:`Report` (``raise_for_problems``).

    ``settings``: a channel's settings, or a function of the fake platform's base URL giving
    them (point your API base at it). ``sample``: a correctly signed request as your platform
    sends it; without it ``cls.simulate`` makes one. ``answers``: your platform's answers by
    case name, ``ok`` being a successful send; ``expect``: for each failing case, the
    ``DeliveryError`` attributes it must carry (``retryable``, ``code``, ``retry_after``,
    ``uncertain``). Without ``answers`` the send checks are skipped (a platform not over
    HTTP: test its ``send`` yourself). ``unsigned``: the platform signs nothing (a private
    network): the signature checks are skipped, and the report says so. ``body_signed``
    False: the platform's signature does not cover the body (Mailgun signs a timestamp and a
    one-time token): the tampered-body check is skipped, and the report says so.
    """
    report = Report(getattr(cls, "name", cls.__name__))
    fake = FakePlatform()
    try:
        values = dict(settings(fake.base_url) if callable(settings) else settings)
        parsed = _check_settings(cls, values, report)
        if parsed is None:
            return report
        adapter = cls(CHANNEL, parsed)
        adapter.http_timeout = httpx.Timeout(1.0, connect=1.0)
        if sample is None:
            sample = adapter.simulate("Xin chào, shop ơi 你好", USER, "Lan")
        if unsigned:
            report.ok("verify: skipped (unsigned platform)")
        else:
            _check_verify(adapter, sample, report, body_signed)
        events = _check_parse(adapter, sample, report)
        _check_facts(adapter, report)
        if answers is not None:
            if message is None:
                first = events[0] if events else None
                address = (first.address or first.external_user_id) if first else USER
                message = OutboundMessage(address, "Dạ shop đã nhận ạ", AuthorKind.AGENT,
                                          "contract-msg-1",
                                          last_inbound_ts_ms=int(time.time() * 1000))
            check_send(adapter, parsed, values, fake, answers, expect or {}, message, report)
        adapter.close()
        return report
    finally:
        fake.stop()


def _check_settings(cls: type[Adapter], values: dict[str, Any],
                    report: Report) -> ChannelSettings | None:
    Settings = getattr(cls, "Settings", None)
    if not (isinstance(Settings, type) and issubclass(Settings, ChannelSettings)):
        report.bad("Settings must subclass tongdai.adapters.base.ChannelSettings")
        return None
    try:
        parsed = Settings.model_validate(values)
    except ValidationError as exc:
        report.bad(f"the settings given do not validate: {exc}")
        return None
    try:
        Settings.model_validate({**values, "no_such_key_xyz": 1})
        report.bad("settings: an unknown key is accepted silently (a typo would go unseen)")
    except ValidationError as exc:
        if "no_such_key_xyz" in str(exc):
            report.ok("settings: an unknown key is refused, by name")
        else:
            report.bad("settings: an unknown key's error does not name it")
    required = [n for n, f in Settings.model_fields.items() if f.is_required()]
    for name in required:
        try:
            Settings.model_validate({k: v for k, v in values.items() if k != name})
            report.bad(f"settings: {name} is required but its absence is accepted")
        except ValidationError as exc:
            if name not in str(exc):
                report.bad(f"settings: a missing {name} gives an error that does not name it")
    report.ok(f"settings: each missing required key is named ({', '.join(required) or 'none'})")
    for name, f in Settings.model_fields.items():
        if f.annotation is SecretStr or (isinstance(values.get(name), str)
                                         and isinstance(getattr(parsed, name), SecretStr)):
            bad = "leaked secret value: spaces and all ½"
            try:
                Settings.model_validate({**values, name: bad})
            except ValidationError as exc:
                if "leaked secret value" in str(exc):
                    report.bad(f"settings: a refused {name} is echoed in the error (set "
                               "model_config hide_input_in_errors=True)")
    return parsed


def _check_verify(adapter: Adapter, sample: tuple[Mapping[str, str], bytes],
                  report: Report, body_signed: bool) -> None:
    import sys

    headers, body = dict(sample[0]), sample[1]
    module = sys.modules.get(type(adapter).__module__)
    mods = [m for m in (module,) if m is not None]
    with NoSockets() as sockets, CountCompares(mods) as compares:
        try:
            adapter.verify(headers, body)
            report.ok("verify: the signed sample passes")
        except SignatureError as exc:
            report.bad(f"verify: the correctly signed sample is refused ({exc})")
        if compares.calls == 0:
            report.bad("verify: no hmac.compare_digest call (use constant_time_equal)")
        else:
            report.ok("verify: decided by hmac.compare_digest")
        cases = {"no headers": ({}, body)}
        if body_signed:
            cases["a tampered body"] = (headers, _tampered(body))
        else:
            report.ok("verify: the body is not signed by this platform (stated): not tampered")
        signed = [k for k in headers if k.lower() not in ("content-type", "content-length")]
        for k in signed:
            cases[f"a non-ASCII {k}"] = ({**headers, k: "sai-chữ-ký-é"}, body)
            cases[f"{k} with a wrong value of the same length"] = (
                {**headers, k: _flip_last(headers[k])}, body)
        for what, (h, b) in cases.items():
            try:
                adapter.verify(h, b)
                report.bad(f"verify: {what} is accepted")
            except SignatureError:
                report.ok(f"verify: {what} is refused")
            except Exception as exc:  # noqa: BLE001  (the point: any other error is a bug)
                report.bad(f"verify: {what} raises {type(exc).__name__}, not SignatureError "
                           "(→ a 500 instead of a 401)")
    if sockets.tried:
        report.bad(f"verify opened a connection ({sockets.tried[0]}): it must be pure")


def _flip_last(value: str) -> str:
    if not value:
        return "x"
    last = value[-1]
    return value[:-1] + ("0" if last != "0" else "1")


def _check_parse(adapter: Adapter, sample: tuple[Mapping[str, str], bytes],
                 report: Report) -> list[InboundEvent]:
    headers = dict(sample[0])
    body = adapter.stored_body(headers, sample[1])  # what the raw log keeps, as in the hub
    now = int(time.time() * 1000)
    events: list[InboundEvent] = []
    with NoSockets() as sockets:
        try:
            events = adapter.parse(RawEvent(CHANNEL, body, headers, now, "1-0"))
            again = adapter.parse(RawEvent(CHANNEL, body, headers, now + 5000, "2-0"))
        except Exception as exc:  # noqa: BLE001
            report.bad(f"parse: the sample raises {type(exc).__name__}: {exc}")
            return []
        if not isinstance(events, list):
            report.bad(f"parse returns {type(events).__name__}, not a list")
            return []
        if not events:
            report.bad("parse: the sample gives no event (give a sample with a message)")
        for e in events:
            if not isinstance(e, InboundEvent):
                report.bad(f"parse: {type(e).__name__} is not an InboundEvent")
                return []
            if not e.dedupe_key or not e.external_user_id:
                report.bad("parse: an event without dedupe_key or external_user_id")
            if not isinstance(e.platform_ts_ms, int) or e.platform_ts_ms < MS_2001:
                report.bad(f"parse: platform_ts_ms {e.platform_ts_ms!r} is not milliseconds")
        keys = [e.dedupe_key for e in events]
        if len(set(keys)) != len(keys):
            report.bad(f"parse: two events of one body share a dedupe key {keys}")
        if [e.dedupe_key for e in again] != keys:
            report.bad("parse: the same body parsed twice gives other dedupe keys (a "
                       "redelivery would be stored twice)")
        else:
            report.ok("parse: a list of events; the same body, the same dedupe keys")
        for junk in GARBAGE:
            try:
                adapter.parse(RawEvent(CHANNEL, junk, headers, now, "3-0"))
            except PayloadError:
                pass
            except Exception as exc:  # noqa: BLE001
                report.bad(f"parse: {junk[:20]!r} raises {type(exc).__name__}, not "
                           "PayloadError (the dead letter would read as a parser bug)")
        report.ok("parse: malformed bodies give PayloadError or nothing")
    if sockets.tried:
        report.bad(f"parse opened a connection ({sockets.tried[0]}): it must be pure")
    return events


def _check_facts(adapter: Adapter, report: Report) -> None:
    f = adapter.facts()
    if not isinstance(f, ChannelFacts):
        report.bad(f"facts() returns {type(f).__name__}, not ChannelFacts")
        return
    if f.reply_window_s is not None and f.reply_window_s <= 0:
        report.bad("facts: reply_window_s must be positive or None (no window)")
    for lim in f.rate_limits:
        if lim.scope not in ("address", "channel") or lim.count <= 0 or lim.per_seconds <= 0:
            report.bad(f"facts: rate limit {lim} (scope address|channel, positive numbers)")
    adapter.window(None, int(time.time() * 1000), AuthorKind.AGENT)
    report.ok("facts: windows and rate limits are sane")


