"""The agent API, ``/api/v1``: what the console, the staff group and integrators use.

Every route is authorised: a bearer token (``tongdai token create``) or a console session cookie
(with the ``X-CSRF-Token`` header on every change). The OpenAPI 3.1 document at
``/api/v1/openapi.json`` is generated from the route decorators and pydantic models here
(spectree), so it cannot drift from the code. Errors are ``{"error": {"code", "message"}}``;
lists are ``{"items", "next_cursor"}``; creates take an ``Idempotency-Key`` header.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable
from typing import Any

import orjson
from flask import Blueprint, current_app, g, request
from spectree import SecurityScheme, SpecTree
from spectree.models import InType, SecureType, SecuritySchemeData

from tongdai.core.errors import BadRequest, Conflict, Forbidden, Unauthorized
from tongdai.core.hub import Hub
from tongdai.core.workspace import presence, tokens, users
from tongdai.core.workspace.access import Principal

SESSION_COOKIE = "td_session"
CSRF_HEADER = "X-CSRF-Token"
MAX_LIMIT = 200
PUBLIC = {"/api/v1/openapi.json"}
IDEMPOTENCY_TTL_S = 24 * 3600
IDEMPOTENCY_HELP = ("send an Idempotency-Key header (any unique string per create), so a retried "
                    "request never creates twice")
PENDING_TTL_S = 60


def _validation_error(req, resp, req_validation_error, instance, model_adapter=None) -> None:
    """spectree's hook: a request that fails its model gets our JSON error, naming the field."""
    if req_validation_error is None:
        return
    problems, fields = [], []
    for e in req_validation_error.errors():
        where = ".".join(str(p) for p in e.get("loc", ())) or "body"
        fields.append(where)
        if where == "Idempotency-Key" and e.get("type") != "string_too_long":
            problems.append(IDEMPOTENCY_HELP)  # missing or blank: say why it is needed
            continue
        problems.append(f"{where}: {e.get('msg')}")
    # named for the console ("error.invalid_fields"), which says the fields in its language
    raise BadRequest("; ".join(problems) or "invalid request").because(
        "invalid_fields", fields=fields)


spec = SpecTree(
    # spectree serves it at /api/v1/openapi/openapi.json (its routes under ``path`` are left
    # out of the document); /api/v1/openapi.json below is the documented address. "strict":
    # only decorated routes (the API), not the webhooks or console pages.
    "flask", title="tongdai agent API", version="v1", path="api/v1/openapi",
    filename="openapi.json", mode="strict",
    annotations=True, validation_error_status=400, before=_validation_error,
    page_templates={},  # only the JSON document; no pages that load scripts from CDNs
    security_schemes=[
        SecurityScheme(name="bearer", data=SecuritySchemeData(type=SecureType.HTTP,
                                                              scheme="bearer")),
        SecurityScheme(name="session", data=SecuritySchemeData(
            type=SecureType.API_KEY, field_in=InType.COOKIE, name=SESSION_COOKIE)),
    ],
    security=[{"bearer": []}, {"session": []}],
)

bp = Blueprint("api", __name__, url_prefix="/api/v1")


def hub() -> Hub:
    return current_app.extensions["tongdai"]


def principal() -> Principal:
    return g.principal


def principal_from_token(hub_: Hub, token: str) -> Principal | None:
    record = tokens.lookup(hub_, token)
    if record is None:
        return None
    return Principal(record["name"], record.get("role", "agent"),
                     frozenset(record.get("teams", ())), via="token")


def principal_from_session(hub_: Hub, cookie: str) -> tuple[Principal, str] | None:
    """(principal, csrf token) of a live console session of an enabled user."""
    s = users.session(hub_, cookie)
    if s is None:
        return None
    user = users.find(hub_, s.user)
    if user is None or user.disabled:
        return None
    return Principal(user.name, user.role, frozenset(user.teams), via="session",
                     language=user.language), s.csrf


# Endpoints taking multipart/form-data (files); every other one takes JSON only.
UPLOADS = frozenset({"api.post_message_with_files"})


@bp.before_request
def _authenticate() -> None:
    if request.path in PUBLIC:
        return
    # (file uploads are the one exception: sessions need the CSRF header whatever the body)
    if request.mimetype in ("multipart/form-data", "application/x-www-form-urlencoded") and not (
            request.mimetype == "multipart/form-data" and request.endpoint in UPLOADS):
        raise BadRequest("the API takes JSON bodies (Content-Type: application/json)")
    h = hub()
    header = request.headers.get("Authorization", "")
    if header:
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Unauthorized("send 'Authorization: Bearer <token>' "
                               "(create one: tongdai token create)")
        p = principal_from_token(h, token.strip())
        if p is None:
            raise Unauthorized("unknown or revoked token")
        g.principal = p
        _activity(h, p)
        return
    cookie = request.cookies.get(SESSION_COOKIE)
    if not cookie:
        raise Unauthorized("log in to the console, or send 'Authorization: Bearer <token>'")
    found = principal_from_session(h, cookie)
    if found is None:
        raise Unauthorized("your session has ended; log in again")
    p, csrf = found
    if request.method not in ("GET", "HEAD", "OPTIONS") and not hmac.compare_digest(
            request.headers.get(CSRF_HEADER, "").encode(), csrf.encode()):
        raise Forbidden(f"missing or wrong {CSRF_HEADER} header (cross-site request refused)")
    g.principal = p
    _activity(h, p)


def _activity(h: Hub, p: Principal) -> None:
    """A request the user made keeps them online (throttled, core/presence.py); the live
    stream and the console's unattended reloads (``X-Tongdai-Background``) do not."""
    if request.endpoint == "api.event_stream" or request.headers.get("X-Tongdai-Background"):
        return
    presence.touch(h, p.name)


@bp.get("/openapi.json")
def openapi_document():
    """The OpenAPI 3.1 document of this API, generated from the code (public: no data)."""
    return current_app.json.response(spec.spec)


def limit_arg() -> int:
    try:
        limit = int(request.args.get("limit", 50))
    except ValueError:
        raise BadRequest("limit must be a number") from None
    if not 1 <= limit <= MAX_LIMIT:
        raise BadRequest(f"limit must be between 1 and {MAX_LIMIT}")
    return limit


def idempotency_key() -> str:
    """The ``Idempotency-Key`` header every create needs: a retried request does not create
    twice (the first answer is given again)."""
    key = request.headers.get("Idempotency-Key", "").strip()
    if not key:
        raise BadRequest(IDEMPOTENCY_HELP)
    if len(key) > 200:
        raise BadRequest("Idempotency-Key is at most 200 characters")
    return key


def idempotent(name: str, create: Callable[[], tuple[Any, int]]) -> tuple[Any, int]:
    """Run ``create`` once per (principal, ``name``, Idempotency-Key) for 24 h: a retry gets
    the first answer again; a retry while the first is still running gets 409. The "running"
    mark lasts ``PENDING_TTL_S``: a process that died mid-create blocks its key that long, not
    a day (a create that had finished but not been recorded may then run again)."""
    h = hub()
    digest = hashlib.sha256(idempotency_key().encode()).hexdigest()[:32]
    k = h.keys.idempotency(f"api:{principal().name}:{name}", digest)
    if not h.redis.set(k, b"pending", nx=True, ex=PENDING_TTL_S):
        stored = h.redis.get(k)
        if stored is None or stored == b"pending":
            raise Conflict("a request with this Idempotency-Key is still running; retry later")
        saved = orjson.loads(stored)
        return saved["body"], saved["status"]
    try:
        body, status = create()
    except BaseException:
        h.redis.delete(k)
        raise
    h.redis.set(k, orjson.dumps({"status": status, "body": body}), ex=IDEMPOTENCY_TTL_S)
    return body, status


def json_body() -> dict[str, Any]:
    data = request.get_json(silent=True)
    if not isinstance(data, dict):
        raise BadRequest("the body must be a JSON object")
    return data


from tongdai.webhooks.api import (  # noqa: F401  (routes)
    admin,
    assignment,
    broadcasts,
    channels,
    conversations,
    customers,
    events,
    hooks,
    inbox,
    kb,
    labels,
    lookups,
    push,
    reports,
    spikes,
    workflow,
)
