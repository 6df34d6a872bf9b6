"""One error hierarchy for the whole hub.

Every error carries what a person needs to fix it; the HTTP edge maps them to status codes
(``http_status``) and the CLI prints ``str(error)``.
"""

from __future__ import annotations

from typing import ClassVar


class TongdaiError(Exception):
    """Base of every error the hub raises on purpose."""

    http_status = 500
    # which case this is, for a client to say in its own language (the console's i18n:
    # "error.<reason>" with ``params``); "" when the message is all there is
    reason = ""
    params: ClassVar[dict] = {}

    def because(self, reason: str, **params: object) -> TongdaiError:
        """Name the case (``raise Conflict("already taken by An").because("already_taken",
        by="An")``): the message stays for logs, the CLI and clients without a translation."""
        self.reason, self.params = reason, params
        return self

    def to_json(self) -> dict:
        """The body every HTTP error answer carries: ``{"error": {"code", "message"}}``, plus
        ``reason`` and ``params`` when the case is named."""
        body: dict = {"code": type(self).__name__, "message": str(self)}
        if self.reason:
            body.update(reason=self.reason, params=self.params)
        return {"error": body}


class ConfigError(TongdaiError):
    """A mistake in the configuration, found at start-up.

    The message names the file, the key (as a dotted path) and the fix.
    """

    def __init__(self, file: str, key: str, problem: str, fix: str) -> None:
        self.file, self.key, self.problem, self.fix = file, key, problem, fix
        super().__init__(f"{file}: {key}: {problem}. Fix: {fix}")


class SignatureError(TongdaiError):
    """An inbound request failed the platform's authenticity check; nothing is stored."""

    http_status = 401


class PayloadError(TongdaiError):
    """An inbound body that cannot be understood (malformed JSON, missing required parts)."""

    http_status = 400


class NotFound(TongdaiError):
    http_status = 404


class Unauthorized(TongdaiError):
    http_status = 401


class Forbidden(TongdaiError):
    http_status = 403


class Conflict(TongdaiError):
    http_status = 409


class BadRequest(TongdaiError):
    http_status = 400


class DestinationRefused(BadRequest):
    """An outgoing webhook's URL leads where the hub must not send requests: an address that
    is not public, a metadata service, or a host name that does not resolve. The message names
    the host and the address."""


class DeliveryError(TongdaiError):
    """An outbound send failed.

    ``retryable`` says whether trying again later can succeed; ``retry_after`` (seconds) is the
    platform's own hint when it gave one (Telegram 429 ``parameters.retry_after``).
    ``uncertain`` says the request reached the platform but no answer came back (a read
    timeout, a connection dropped while waiting): the platform may have sent it, so resending
    may make a duplicate. Errors raised before the request was written (connect and pool
    timeouts, refused connections) are certain: nothing was sent.
    """

    def __init__(
        self,
        message: str,
        *,
        retryable: bool,
        retry_after: float | None = None,
        code: str | None = None,
        uncertain: bool = False,
    ) -> None:
        self.retryable = retryable
        self.retry_after = retry_after
        self.code = code
        self.uncertain = uncertain
        super().__init__(message)


class WindowClosed(DeliveryError):
    """The platform's reply window for this customer is closed; refused before calling it."""

    http_status = 409

    def __init__(self, message: str, reachable: list[str] | None = None) -> None:
        super().__init__(message, retryable=False, code="window_closed")
        self.reachable = reachable or []

    def to_json(self) -> dict:
        body = super().to_json()
        body["error"]["reachable_channels"] = self.reachable
        return body


class StoreUnavailable(TongdaiError):
    """Redis cannot take writes right now (down, restarting, loading, or its disk is full).
    Webhooks answer 503 with Retry-After so the platform delivers again later."""

    http_status = 503
    retry_after_s = 5

    @classmethod
    def from_redis(cls, exc: Exception) -> StoreUnavailable | None:
        """The error to answer for a Redis failure, or None when it is not about availability
        (a script bug, a wrong type: those stay 500s that someone must look at)."""
        import redis

        if isinstance(exc, (redis.ConnectionError, redis.TimeoutError)):
            return cls("the hub's store is unreachable; try again shortly")
        text = str(exc)
        for prefix, why in (("MISCONF", "cannot write to its disk (full?)"),
                            ("OOM", "is out of memory"), ("LOADING", "is loading its data"),
                            ("READONLY", "is a read-only replica"),
                            ("NOREPLICAS", "has too few replicas")):
            if isinstance(exc, redis.ResponseError) and text.startswith(prefix):
                return cls(f"the hub's store {why}; try again shortly")
        return None
