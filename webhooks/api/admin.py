"""Administration: users, API tokens, the audit log, dead letters."""

from __future__ import annotations

from flask import jsonify, request
from pydantic import Field
from spectree import Response as Resp

from tongdai.core.errors import BadRequest, NotFound
from tongdai.core.pipeline import ingest, rawlog
from tongdai.core.workspace import audit, tokens, users
from tongdai.core.workspace.access import require
from tongdai.webhooks.api import bp, hub, idempotent, limit_arg, principal, spec
from tongdai.webhooks.api.schemas import (
    ERRORS,
    AnyObject,
    AnyPage,
    IdempotencyHeaders,
    ListQuery,
    Model,
    Strict,
)

TAG = "admin"


class UserOut(Model):
    name: str
    role: str
    display_name: str
    teams: list[str]
    capacity: int | None
    telegram_user_id: int | None
    email: str | None
    language: str
    disabled: bool


class UserPage(Model):
    items: list[UserOut]
    next_cursor: str | None


class UserIn(Strict):
    name: str = Field(min_length=1, max_length=63)
    role: str = "agent"
    password: str | None = Field(None, max_length=1000)
    display_name: str = Field("", max_length=200)
    teams: list[str] = Field(default_factory=list)
    capacity: int | None = Field(None, ge=1, le=1000)
    telegram_user_id: int | None = None
    email: str | None = Field(None, max_length=320)
    language: str = ""


class UserPatch(Strict):
    role: str | None = None
    display_name: str | None = Field(None, max_length=200)
    teams: list[str] | None = None
    capacity: int | None = Field(None, ge=1, le=1000)
    telegram_user_id: int | None = None
    email: str | None = Field(None, max_length=320)
    language: str | None = None
    disabled: bool | None = None
    password: str | None = Field(None, max_length=1000)


@bp.get("/users")
@spec.validate(resp=Resp(HTTP_200=UserPage, **ERRORS), tags=[TAG])
def list_users():
    """Every user (any signed-in user: assignment pickers and @mentions need the names).
    ``email`` and ``telegram_user_id`` are shown to admins and to the user themself only."""
    p = principal()
    items = []
    for u in users.all_users(hub()):
        item = u.to_api()
        if not p.is_admin and u.name != p.name:
            item["email"] = item["telegram_user_id"] = None  # colleagues' contact details
        items.append(item)
    return jsonify({"items": items, "next_cursor": None})


@bp.get("/users/me")
@spec.validate(resp=Resp(HTTP_200=AnyObject, **ERRORS), tags=[TAG])
def me():
    """Who is calling: name, role, teams (and the user record for console users)."""
    p = principal()
    body = {"name": p.name, "role": p.role, "teams": sorted(p.teams), "via": p.via}
    u = users.find(hub(), p.name)
    if u is not None:
        body["user"] = u.to_api()
    return jsonify(body)


@bp.post("/users")
@spec.validate(json=UserIn, headers=IdempotencyHeaders,
               resp=Resp(HTTP_200=UserOut, HTTP_201=UserOut, **ERRORS), tags=[TAG])
def create_user(json: UserIn):
    """Add a user (admin). Without ``password`` the user cannot log in to the console."""
    p = principal()
    require(p, "admin")

    def create():
        u = users.create(hub(), users.User(
            name=json.name, role=json.role, display_name=json.display_name, teams=json.teams,
            capacity=json.capacity, telegram_user_id=json.telegram_user_id, email=json.email,
            language=json.language), json.password)
        audit.record(hub(), p.name, "user.created", u.name, {"role": u.role, "teams": u.teams})
        return u.to_api(), 201

    body, status = idempotent("user", create)
    return jsonify(body), status


@bp.patch("/users/<name>")
@spec.validate(json=UserPatch, resp=Resp(HTTP_200=UserOut, **ERRORS), tags=[TAG])
def update_user(name: str, json: UserPatch):
    """Change a user (admin), or your own display name and language; your own password only
    from your console session (a token named like you is not you)."""
    p = principal()
    changes = json.model_dump(exclude_unset=True)
    password = changes.pop("password", None)
    if (p.name != name or set(changes) - {"display_name", "language"}
            or (password is not None and p.via != "session")):
        require(p, "admin")
    if not changes and password is None:
        raise BadRequest("nothing to change")
    u = users.update(hub(), name, changes) if changes else users.get(hub(), name)
    if password is not None:
        users.set_password(hub(), name, password)
    audit.record(hub(), p.name, "user.updated", name,
                 {"fields": sorted(changes) + (["password"] if password else [])})
    return jsonify(u.to_api())


class TokenIn(Strict):
    name: str = Field(min_length=1, max_length=63)
    role: str = "agent"
    teams: list[str] = Field(default_factory=list)


@bp.post("/tokens")
@spec.validate(json=TokenIn, headers=IdempotencyHeaders,
               resp=Resp(HTTP_201=AnyObject, HTTP_200=AnyObject, **ERRORS),
               tags=[TAG])
def create_token(json: TokenIn):
    """A new API token (admin) with a role and teams; shown once, only its hash is kept."""
    p = principal()
    require(p, "admin")

    def create():
        try:
            token = tokens.create(hub(), json.name, json.role, json.teams)
        except ValueError as exc:
            raise BadRequest(str(exc)) from None
        audit.record(hub(), p.name, "token.created", json.name, {"role": json.role})
        # kept for Idempotency-Key replays: encrypted (only the token's hash is kept otherwise)
        return {"name": json.name, "role": json.role, "teams": json.teams,
                "token": tokens.seal_shown(hub(), token)}, 201

    body, status = idempotent("token", create)
    return jsonify({**body, "token": tokens.reveal_shown(hub(), body["token"])}), status


@bp.delete("/tokens/<name>")
@spec.validate(resp=Resp(HTTP_200=AnyObject, **ERRORS), tags=[TAG])
def revoke_tokens(name: str):
    """Revoke every API token named ``name`` (admin): they stop working at once."""
    p = principal()
    require(p, "admin")
    n = tokens.revoke(hub(), name)
    if not n:
        raise NotFound(f"no token named {name!r}")
    audit.record(hub(), p.name, "token.revoked", name, {"count": n})
    return jsonify({"name": name, "revoked": n})


class AuditQuery(ListQuery):
    actor: str | None = None
    action: str | None = None
    target: str | None = None


@bp.get("/audit")
@spec.validate(query=AuditQuery, resp=Resp(HTTP_200=AnyPage, **ERRORS), tags=[TAG])
def audit_log():
    """Who did what, newest first (admin): ``?actor=&action=&target=`` (``action`` ending in
    ``.`` matches a prefix, e.g. ``conversation.``)."""
    require(principal(), "admin")
    a = request.args
    items, nxt = audit.entries(hub(), a.get("cursor"), limit_arg(), a.get("actor"),
                               a.get("action"), a.get("target"))
    return jsonify({"items": items, "next_cursor": nxt})


@bp.get("/deadletters")
@spec.validate(query=ListQuery, resp=Resp(HTTP_200=AnyPage, **ERRORS), tags=[TAG])
def list_dead_letters():
    """Events that could not be processed, with the error (admin)."""
    require(principal(), "admin")
    items = [{"id": i, "channel_id": raw.channel_id, "raw_id": raw.id, "error": err,
              "received_ts": raw.received_ts_ms, "dead_ts": at}
             for i, raw, err, at in rawlog.dead_letters(hub(), limit_arg())]
    return jsonify({"items": items, "next_cursor": None})


@bp.post("/deadletters/<dl_id>/replay")
@spec.validate(resp=Resp(HTTP_200=AnyObject, **ERRORS), tags=[TAG])
def replay_dead_letter(dl_id: str):
    """Run a dead letter through the pipeline again (after a fix); removed when it succeeds."""
    p = principal()
    require(p, "admin")
    result = ingest.replay_dead_letter(hub(), dl_id)
    if result is None:
        raise NotFound(f"no dead letter {dl_id}")
    audit.record(hub(), p.name, "deadletter.replayed", dl_id)
    return jsonify({"replayed": result.dead == 0, "stored": result.stored,
                    "duplicates": result.duplicates})


@bp.get("/admin/overview")
@spec.validate(resp=Resp(HTTP_200=AnyObject, **ERRORS), tags=[TAG])
def admin_overview():
    """Routing and SLA as configured (admin, read-only: they are edited in the config file,
    which every process reloads by itself), and which config version runs and why a newer
    file is not applied, if it is not."""
    require(principal(), "admin")
    h = hub()
    cfg = h.config.hub
    return jsonify({
        "config": {"path": h.config.path, "version": h.config.version,
                   "problems": h.watch.problems()},
        "routing": cfg.routing.model_dump(mode="json"),
        "sla": cfg.sla.model_dump(mode="json"),
        "teams": [{"id": t.id, "name": t.name or t.id, "queues": t.queues, "tier": t.tier,
                   "auto_assign": t.auto_assign, "capacity": t.capacity} for t in cfg.teams],
    })
