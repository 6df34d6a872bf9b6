"""What adapters' HTTP calls share: transport errors as retryable ``DeliveryError``s, secrets
masked in httpx's log lines, and streamed, size-capped file downloads."""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping

import httpx

from tongdai.adapters.files import FetchedFile
from tongdai.core.errors import DeliveryError

# Raised after the request was written, while waiting for the answer: the platform may have
# acted on it. Connect and pool timeouts, refused connections and write errors come before a
# complete request existed, so nothing was done (httpx's exception classes say which).
_AFTER_WRITE = (httpx.ReadTimeout, httpx.ReadError, httpx.RemoteProtocolError)


def transport_error(exc: httpx.HTTPError, what: str) -> DeliveryError:
    """A platform call that failed below HTTP, as a retryable ``DeliveryError``: ``timeout``
    or ``network``, ``uncertain`` when the request had been written (``what`` names the call;
    httpx's own text is never passed on, as it may quote a URL carrying a token)."""
    code = "timeout" if isinstance(exc, httpx.TimeoutException) else "network"
    uncertain = isinstance(exc, _AFTER_WRITE)
    detail = "no answer after the request was sent" if uncertain else code
    return DeliveryError(f"{what}: {detail} ({type(exc).__name__})", retryable=True, code=code,
                         uncertain=uncertain)


class RedactInLogs(logging.Filter):
    """Masks secrets in httpx's request log lines: platforms put tokens in URLs."""

    def __init__(self, pattern: re.Pattern[str], replacement: str) -> None:
        super().__init__()
        self.pattern, self.replacement = pattern, replacement

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(
                self.pattern.sub(self.replacement, str(a)) if isinstance(a, str | httpx.URL)
                else a for a in record.args)
        return True


def redact_http_logs(pattern: re.Pattern[str], replacement: str) -> None:
    """Install a ``RedactInLogs`` on the httpx logger, once per pattern."""
    log = logging.getLogger("httpx")
    if not any(isinstance(f, RedactInLogs) and f.pattern == pattern for f in log.filters):
        log.addFilter(RedactInLogs(pattern, replacement))


MAX_REDIRECTS = 5


def download(http: httpx.Client, url: str, max_bytes: int, what: str,
             headers: Mapping[str, str] | None = None) -> FetchedFile:
    """GET a platform's file URL, streamed and cut at ``max_bytes`` (``too_big``, final);
    429/5xx and network errors are retryable, other refusals final (an expired CDN link).
    Redirects are followed (up to ``MAX_REDIRECTS``), but ``headers`` — a platform's token —
    never go to another origin than the one they were given for."""
    sent = dict(headers or {})
    for _ in range(MAX_REDIRECTS + 1):
        if not url.startswith(("https://", "http://")):
            raise DeliveryError(f"{what}: not an http(s) address", retryable=False,
                                code="bad_request")
        try:
            with http.stream("GET", url, headers=sent, follow_redirects=False) as r:
                if r.is_redirect and r.headers.get("location"):
                    nxt = r.url.join(r.headers["location"])
                    if _origin(nxt) != _origin(r.url):
                        sent = {}
                    url = str(nxt)
                    continue
                return _take(r, max_bytes, what)
        except httpx.HTTPError as e:
            raise transport_error(e, what) from None
    raise DeliveryError(f"{what}: more than {MAX_REDIRECTS} redirects", retryable=False,
                        code="bad_request")


def _origin(u: httpx.URL) -> tuple[str, str, int | None]:
    return u.scheme, u.host, u.port


def _take(r: httpx.Response, max_bytes: int, what: str) -> FetchedFile:
    if r.status_code == 429 or r.status_code >= 500:
        raise DeliveryError(f"{what}: HTTP {r.status_code}", retryable=True,
                            code="rate_limited" if r.status_code == 429 else "server_error")
    if r.status_code != 200:
        raise DeliveryError(f"{what}: HTTP {r.status_code}", retryable=False,
                            code="not_found" if r.status_code in (403, 404, 410)
                            else "bad_request")
    declared = int(r.headers.get("content-length") or 0)
    if declared > max_bytes:
        raise _too_big(what, declared, max_bytes)
    chunks, n = [], 0
    for chunk in r.iter_bytes():
        n += len(chunk)
        if n > max_bytes:
            raise _too_big(what, n, max_bytes)
        chunks.append(chunk)
    mime = (r.headers.get("content-type") or "").split(";")[0].strip() or None
    return FetchedFile(b"".join(chunks), mime)


def _too_big(what: str, size: int, max_bytes: int) -> DeliveryError:
    return DeliveryError(f"{what}: the file is over {max_bytes} bytes ({size})",
                         retryable=False, code="too_big")
