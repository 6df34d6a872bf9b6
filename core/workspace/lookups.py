"""Lookups: the business's own data (orders, top-ups, account state) beside a conversation.

Each lookup in ``lookups:`` (core/config_lookups.py) is an HTTP endpoint of the business. Its
answer for one request is cached briefly in Redis (``lookup.cache``, 60 s by default),
encrypted with the hub's data keys — it is the business's data —, and kept nowhere else: no
timeline line, no log line holds it (logs name the lookup, the outcome and the HTTP status).

Nobody waits on the business's system: :func:`read` answers from the cache at once, or says
``loading`` and starts the fetch in this process's small thread pool (one fetch per answer
across processes, by a marker in Redis); the console asks again. A fetch always ends in a
state written to the cache — ``ok``, ``not_found``, ``timeout`` (the lookup's timeout),
``error`` (5xx, a refused connection, an answer that is not JSON) — and a marker that outlives
its process expires after the timeout, so "loading" never lasts. After ``breaker.failures``
failures in a row the lookup's circuit opens for ``breaker.cooldown`` (state
``circuit_open``, nothing called); then one call tries again: a success closes it, a failure
opens it again. The breaker's state is in Redis, shared by every process, on Redis's clock.

Rules (``tag_when``) run off the ingest path too: core/workspace/lookup_rules.py.
"""

from __future__ import annotations

import logging
import re
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import httpx
import jmespath
import orjson

from tongdai.core import i18n
from tongdai.core.clock import now_ms
from tongdai.core.config_lookups import Lookup
from tongdai.core.hub import Hub
from tongdai.core.models import Conversation, Direction
from tongdai.core.pipeline import store

log = logging.getLogger(__name__)
OK, NOT_FOUND, TIMEOUT, ERROR, CIRCUIT_OPEN = "ok", "not_found", "timeout", "error", "circuit_open"
LOADING, NO_INPUT = "loading", "no_input"
FAILURES = (TIMEOUT, ERROR)
MAX_BODY = 1 << 20          # an answer larger than 1 MiB is an error, not read further
TEXT_MESSAGES = 20          # the customer's latest messages searched by a text input
_PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")
_pool: ThreadPoolExecutor | None = None
_pool_lock = threading.Lock()
_running: set[Future] = set()
_client: httpx.Client | None = None


@dataclass(frozen=True)
class Request:
    """One call of a lookup, filled in: what it sends and the digest its answer is kept by."""

    lookup: str
    method: str
    url: str
    body: bytes | None
    digest: str


# -- inputs -------------------------------------------------------------------------------------
def inputs_for(hub: Hub, conv: Conversation, lookup: Lookup) -> tuple[dict[str, str], list[str]]:
    """(values found, names of the required inputs not found) for ``conv``'s customer."""
    found: dict[str, str] = {}
    customer = None
    texts: list[str] | None = None
    for name, spec in lookup.inputs.items():
        value = None
        if spec.source in ("phone", "email", "platform_id"):
            customer = customer or store.get_customer(hub, conv.customer_id)
            if spec.source == "platform_id":
                value = next((i.external_user_id for i in customer.identities
                              if i.channel_id == conv.channel_id), None)
            else:
                ids = sorted((x for x in customer.identifiers if x["kind"] == spec.source
                              and x.get("value") and (x.get("verified") or not spec.verified)),
                             key=lambda x: not x.get("verified"))
                value = ids[0]["value"] if ids else None
        elif spec.source == "attribute":
            raw = hub.redis.hget(hub.keys.conversation_attributes(conv.id), spec.name)
            value = hub.keyring.decrypt_text(raw, b"attribute") if raw else None
        else:  # text
            if texts is None:
                page = store.message_page(hub, conv.id, None, TEXT_MESSAGES)
                texts = [m.text for m in page.items if m.direction == Direction.IN and m.text]
            value = _search(spec.pattern, texts)
        if value:
            found[name] = value
    missing = [n for n, s in lookup.inputs.items() if n not in found and not s.optional]
    return found, missing


def _search(pattern: str, texts: list[str]) -> str | None:
    rx = re.compile(pattern)
    for text in texts:  # newest first
        if m := rx.search(text):
            return m.group(1) if rx.groups else m.group(0)
    return None


def request_for(hub: Hub, name: str, lookup: Lookup, values: dict[str, str]) -> Request:
    url = _PLACEHOLDER.sub(lambda m: quote(values.get(m.group(1), ""), safe=""), lookup.url)
    body = None
    if lookup.body is not None:
        body = orjson.dumps(_fill(lookup.body, values))
    seen = f"{name}\x1f{lookup.method}\x1f{url}\x1f{(body or b'').decode()}"
    return Request(name, lookup.method, url, body, hub.keyring.blind_index("lookup", seen))


def _fill(node: Any, values: dict[str, str]) -> Any:
    if isinstance(node, dict):
        return {k: _fill(v, values) for k, v in node.items()}
    if isinstance(node, list):
        return [_fill(v, values) for v in node]
    if isinstance(node, str):
        return _PLACEHOLDER.sub(lambda m: values.get(m.group(1), ""), node)
    return node


# -- the cache ----------------------------------------------------------------------------------
def cached(hub: Hub, req: Request) -> dict[str, Any] | None:
    """The cached outcome ``{state, http, data, at}`` of a request, or None."""
    raw = hub.redis.get(hub.keys.lookup(req.lookup, req.digest))
    if raw is None:
        return None
    text = hub.keyring.decrypt_text(raw, b"lookup:" + req.lookup.encode())
    return orjson.loads(text) if text else None


def _store(hub: Hub, req: Request, lookup: Lookup, outcome: dict[str, Any]) -> None:
    ttl = lookup.cache if outcome["state"] in (OK, NOT_FOUND) else min(lookup.failure_cache,
                                                                      lookup.cache)
    sealed = hub.keyring.encrypt_text(orjson.dumps(outcome).decode(),
                                      b"lookup:" + req.lookup.encode())
    pipe = hub.redis.pipeline()
    pipe.set(hub.keys.lookup(req.lookup, req.digest), sealed, px=int(ttl * 1000))
    pipe.delete(hub.keys.lookup(req.lookup, req.digest, "fetching"))
    pipe.execute()


# -- the breaker --------------------------------------------------------------------------------
def circuit(hub: Hub, name: str, lookup: Lookup, take_trial: bool = False) -> int | None:
    """None when calls may go (closed, or this caller took the one trial after the cooldown);
    else the time (ms) the circuit stays open until."""
    open_until, opened = hub.redis.hmget(hub.keys.lookup(name, "breaker"),
                                         ["open_until", "opened"])
    if not opened:
        return None
    until = int(open_until or 0)
    if now_ms() < until:
        return until
    if not take_trial:
        return None
    trial_ms = int((lookup.timeout + 2) * 1000)
    if hub.redis.set(hub.keys.lookup(name, "trial"), b"1", nx=True, px=trial_ms):
        return None
    return now_ms() + trial_ms  # another process is trying it right now


def _record(hub: Hub, name: str, lookup: Lookup, failed: bool) -> None:
    k = hub.keys.lookup(name, "breaker")
    if not failed:
        hub.redis.delete(k, hub.keys.lookup(name, "trial"))
        return
    failures = hub.redis.hincrby(k, "failures", 1)
    if failures >= lookup.breaker.failures or hub.redis.hget(k, "opened"):
        until = now_ms() + int(lookup.breaker.cooldown * 1000)
        hub.redis.hset(k, mapping={"open_until": until, "opened": 1, "failures": 0})
        hub.redis.delete(hub.keys.lookup(name, "trial"))
        log.warning("lookup %s: circuit open for %gs after failures in a row", name,
                    lookup.breaker.cooldown)
    hub.redis.expire(k, int(lookup.breaker.cooldown) + 3600)


# -- fetching -----------------------------------------------------------------------------------
class _QuietLookups(logging.Filter):
    """httpx logs each request's URL at INFO: a lookup's URL holds the customer's phone or
    order id, so nothing httpx logs while a lookup fetches (in that thread) is kept. Only the
    lookups' own calls: a filter by host would also silence an adapter's calls to the same
    host (and the adapters' own tests that their logs hide tokens)."""

    active = threading.local()

    def filter(self, record: logging.LogRecord) -> bool:
        return not getattr(self.active, "fetching", False)


_quiet = _QuietLookups()


def _http() -> httpx.Client:
    global _client
    with _pool_lock:
        if _client is None:
            logging.getLogger("httpx").addFilter(_quiet)
            _client = httpx.Client(follow_redirects=False, limits=httpx.Limits(
                max_connections=20, max_keepalive_connections=10))
        return _client


def fetch(hub: Hub, req: Request, lookup: Lookup) -> dict[str, Any]:
    """Call the endpoint (unless the circuit is open), cache and return the outcome."""
    if (until := circuit(hub, req.lookup, lookup, take_trial=True)) is not None:
        hub.redis.delete(hub.keys.lookup(req.lookup, req.digest, "fetching"))
        return {"state": CIRCUIT_OPEN, "until": until, "at": now_ms()}
    headers = {"Accept": "application/json", **lookup.headers}
    if req.body is not None:
        headers.setdefault("Content-Type", "application/json")
    timeout = httpx.Timeout(lookup.timeout, connect=min(2.0, lookup.timeout))
    outcome: dict[str, Any] = {"at": now_ms()}
    _quiet.active.fetching = True
    try:
        with _http().stream(req.method, req.url, content=req.body, headers=headers,
                            timeout=timeout) as r:
            outcome["http"] = r.status_code
            data = b""
            for chunk in r.iter_bytes():
                data += chunk
                if len(data) > MAX_BODY:
                    raise ValueError("answer larger than 1 MiB")
        if r.status_code in lookup.not_found:
            outcome["state"] = NOT_FOUND
        elif not 200 <= r.status_code < 300:
            outcome.update(state=ERROR, reason=f"HTTP {r.status_code}")
        else:
            outcome.update(state=OK, data=orjson.loads(data) if data.strip() else None)
    except httpx.TimeoutException:
        outcome.update(state=TIMEOUT, reason=f"no answer within {lookup.timeout:g}s")
    except (httpx.HTTPError, ValueError) as exc:  # refused, reset, not JSON, too large
        outcome.update(state=ERROR, reason=type(exc).__name__ if isinstance(
            exc, httpx.HTTPError) else "not a JSON answer")
    finally:
        _quiet.active.fetching = False
    _record(hub, req.lookup, lookup, outcome["state"] in FAILURES)
    _store(hub, req, lookup, outcome)
    log.info("lookup %s: %s%s", req.lookup, outcome["state"],
             f" (HTTP {outcome['http']})" if "http" in outcome else "")
    return outcome


def _pool_submit(hub: Hub, req: Request, lookup: Lookup) -> None:
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="lookup")
        fut = _pool.submit(_fetch_quietly, hub, req, lookup)
        _running.add(fut)
    fut.add_done_callback(_running.discard)


def _fetch_quietly(hub: Hub, req: Request, lookup: Lookup) -> None:
    try:
        fetch(hub, req, lookup)
    except Exception as exc:  # noqa: BLE001  (Redis away: the marker expires, the next read
        # tries again)
        log.error("lookup %s: the fetch failed (%s)", req.lookup, type(exc).__name__)


def start_fetch(hub: Hub, req: Request, lookup: Lookup) -> bool:
    """Fetch in the background unless a process is already fetching this answer."""
    mark = hub.keys.lookup(req.lookup, req.digest, "fetching")
    if not hub.redis.set(mark, b"1", nx=True, px=int((lookup.timeout + 2) * 1000)):
        return False
    _pool_submit(hub, req, lookup)
    return True


def wait_idle(timeout: float = 10.0) -> None:
    """Wait for this process's background fetches (tests, a clean shutdown)."""
    from concurrent.futures import wait

    wait(list(_running), timeout=timeout)


# -- reading, for the console and the rules -----------------------------------------------------
def outcome_for(hub: Hub, conv: Conversation, name: str, lookup: Lookup, refresh: bool = False,
                wait: bool = False) -> dict[str, Any]:
    """The lookup's outcome for ``conv`` now: cached, or ``loading`` (a fetch started), or —
    with ``wait`` (rules, off the request path) — fetched in this thread."""
    values, missing = inputs_for(hub, conv, lookup)
    if missing:
        return {"state": NO_INPUT, "missing": missing}
    req = request_for(hub, name, lookup, values)
    if not refresh and (hit := cached(hub, req)) is not None:
        return hit
    if (until := circuit(hub, name, lookup)) is not None:
        return {"state": CIRCUIT_OPEN, "until": until}
    if wait:
        return fetch(hub, req, lookup)
    if refresh:
        hub.redis.delete(hub.keys.lookup(name, req.digest))
    start_fetch(hub, req, lookup)
    return {"state": LOADING}


def rows_of(lookup: Lookup, data: Any) -> list[dict[str, Any]]:
    found = jmespath.search(lookup.rows, data)
    if found is None:
        return []
    rows = found if isinstance(found, list) else [found]
    return [r for r in rows if isinstance(r, dict)][:lookup.max_rows]


def matching_rules(lookup: Lookup, data: Any, tags: set[str]):
    """The ``tag_when`` rules the answer meets on a conversation with ``tags``."""
    for rule in lookup.tag_when:
        if rule.tags_any and not tags & set(rule.tags_any):
            continue
        value = jmespath.search(rule.field, data)
        if value is not None and str(value) in rule.values():
            yield rule


def _label(labels: dict[str, str], lang: str, default: str) -> str:
    """The label in ``lang``, else its language (``zh`` for ``zh-Hant``, in Traditional
    characters then), else English, else any."""
    if got := labels.get(lang):
        return got
    base = lang.partition("-")[0]
    if base != lang and (got := labels.get(base)):
        return i18n.traditional(got) if lang == "zh-Hant" else got
    return labels.get("en") or next(iter(labels.values()), default)


def render(name: str, lookup: Lookup, outcome: dict[str, Any], lang: str,
           tags: set[str]) -> dict[str, Any]:
    """One lookup's outcome as the console shows it, labels in ``lang``."""
    out: dict[str, Any] = {"name": name, "title": _label(lookup.title, lang, name),
                           "state": outcome["state"], "fetched_ts": outcome.get("at")}
    for k in ("reason", "missing", "until", "http"):
        if k in outcome:
            out[k] = outcome[k]
    if outcome["state"] == LOADING:
        out["retry_ms"] = 500
        out["timeout_ms"] = int((lookup.timeout + 2) * 1000)
    if outcome["state"] != OK:
        return out
    data = outcome.get("data")
    rows = rows_of(lookup, data)
    if not rows:
        out["state"] = NOT_FOUND
        return out
    out["rows"] = [{"fields": [_field(f, row, lang) for f in lookup.fields]} for row in rows]
    out["suggestions"] = [{"tag": r.tag or None, "canned": r.suggest_canned or None}
                          for r in matching_rules(lookup, data, tags)]
    return out


def _field(f, row: dict[str, Any], lang: str) -> dict[str, Any]:
    value = jmespath.search(f.path, row)
    shown = value if value is None or isinstance(value, str | int | float | bool) else (
        orjson.dumps(value).decode())
    return {"key": f.path, "label": _label(f.label, lang, f.path), "value": shown,
            "colour": f.colours.get(str(value)) if value is not None else None}


def read(hub: Hub, conv: Conversation, lang: str, refresh: bool = False) -> list[dict[str, Any]]:
    """Every lookup for the conversation, as the console shows it; never waits on a fetch."""
    out = []
    tags = set(conv.tags)
    for name, lookup in hub.config.hub.lookups.items():
        try:
            out.append(render(name, lookup, outcome_for(hub, conv, name, lookup, refresh),
                              lang, tags))
        except Exception as exc:  # noqa: BLE001  (an expression failing on the answer... its
            # message may quote the answer: only the kind is logged)
            log.error("lookup %s: could not be read (%s)", name, type(exc).__name__)
            out.append(render(name, lookup, {"state": ERROR, "reason": "unreadable"}, lang,
                              tags))
    return out
