"""Channels as the console's admin area runs them (admin only): the same as
``tongdai channels list | check | disable | enable | add | remove``, and a channel's secrets
set anew.

Secrets never leave in an answer: a channel shows, per secret, whether it is set, where it
comes from (an ``${ENV}`` name, sealed in the file, or in clear in the file) and at most its
last four characters; anything a platform says back (a check, the webhook registration) has
the channel's secret values masked out. Changes to the file go through
``core/config_edit.py`` (comments kept, validated by the loader before the file is replaced)
and are applied at once by this process's config watch; the other processes apply them at
their next look (``core/config_watch.py``, within seconds).
"""

from __future__ import annotations

import copy
from typing import Any

from flask import jsonify, request
from pydantic import BaseModel, Field, SecretStr, ValidationError
from spectree import Response as Resp

from tongdai.core import config_edit
from tongdai.core.config import _ENV_REF, SEALED, _substitute
from tongdai.core.errors import BadRequest, ConfigError, DeliveryError, NotFound, TongdaiError
from tongdai.core.pipeline import channel_admin
from tongdai.core.registry import resolve_adapter
from tongdai.core.workspace import audit
from tongdai.core.workspace.access import require
from tongdai.webhooks.api import bp, hub, idempotent, principal, spec
from tongdai.webhooks.api.schemas import ERRORS, AnyObject, AnyPage, IdempotencyHeaders, Strict

TAG = "admin"
MASK = "••••"


def secret_keys(model: Any, prefix: str = "") -> list[str]:
    """The dotted keys of every secret in a settings model (``secrets.access_token``)."""
    out: list[str] = []
    for name in type(model).model_fields:
        value, key = getattr(model, name), f"{prefix}{name}"
        items = value.items() if isinstance(value, dict) else [(None, value)]
        for sub, v in items:
            k = key if sub is None else f"{key}.{sub}"
            if isinstance(v, SecretStr):
                out.append(k)
            elif isinstance(v, BaseModel):
                out += secret_keys(v, k + ".")
    return out


def _value(model: Any, key: str) -> str:
    node = model
    for part in key.split("."):
        node = node.get(part) if isinstance(node, dict) else getattr(node, part, None)
    return node.get_secret_value() if isinstance(node, SecretStr) else ""


def _hint(value: str) -> str:
    """At most the last four characters, and only of a value long enough to spare them."""
    return MASK + value[-4:] if len(value) >= 16 else MASK if value else ""


class _Scrub:
    """Masks a channel's secret values out of what a platform said."""

    def __init__(self, settings: Any) -> None:
        values = {_value(settings, k) for k in secret_keys(settings)}
        self.values = sorted((v for v in values if len(v) >= 4), key=len, reverse=True)

    def __call__(self, thing: Any) -> Any:
        if isinstance(thing, str):
            for v in self.values:
                thing = thing.replace(v, MASK)
            return thing
        if isinstance(thing, dict):
            return {k: self(v) for k, v in thing.items()}
        if isinstance(thing, list):
            return [self(v) for v in thing]
        return thing


def _ask(adapter, what: str, scrub: _Scrub):
    ask = getattr(adapter, what, None)
    if ask is None:
        return None
    try:
        return scrub(ask())
    except TongdaiError as exc:
        return scrub(f"could not ask the platform: {exc}")


def channel_view(h, channel_id: str, health, ask: bool = False) -> dict[str, Any]:
    """One channel for the admin area: health, settings with secrets masked."""
    adapter = h.adapter(channel_id)
    settings = h.config.channel_settings[channel_id][1]
    keys = secret_keys(settings)
    scrub = _Scrub(settings)
    sources = config_edit.secret_sources(channel_id, keys, h.config.path)
    secrets = [{"key": k, "set": bool(_value(settings, k)), "hint": _hint(_value(settings, k)),
                "source": sources[k]} for k in keys]
    shown = settings.model_dump(mode="json")  # pydantic writes SecretStr as "**********"
    for k in keys:  # …and a secret's own key not at all
        *parents, last = k.split(".")
        node = shown
        for p in parents:
            node = node.get(p, {}) if isinstance(node, dict) else {}
        if isinstance(node, dict):
            node.pop(last, None)
    return {"id": channel_id, "adapter": adapter.name, "disabled": health.disabled,
            "last_event_ms": health.last_event_ms, "last_hour": health.counts,
            "webhook_path": f"/webhooks/{channel_id}",
            "webhook": _ask(adapter, "registration", scrub) if ask else None,
            "token_expiry": _ask(adapter, "token_expiry", scrub),
            "cannot_send": adapter.cannot_send(), "settings": scrub(shown), "secrets": secrets}


def _applied() -> str:
    """Apply the edited file in this process now (the others look within seconds): the
    watch's outcome, ``applied`` or ``restart`` (a key only a restart applies)."""
    return hub().watch.poll(force=True)


def _refused(exc: ConfigError) -> BadRequest:
    return BadRequest(f"{exc.key}: {exc.problem}. Fix: {exc.fix}").because(
        "config_refused", key=exc.key, problem=exc.problem, fix=exc.fix)


@bp.get("/admin/channels")
@spec.validate(resp=Resp(HTTP_200=AnyPage, **ERRORS), tags=[TAG])
def admin_channels():
    """Every channel with its health (admin); ``?ask=1`` also asks each platform where it
    delivers (webhook registration)."""
    require(principal(), "admin")
    h = hub()
    ids = list(h.config.channel_settings)
    health = channel_admin.health(h, ids)
    ask = request.args.get("ask") == "1"
    return jsonify({"items": [channel_view(h, c, health[c], ask) for c in ids],
                    "next_cursor": None})


@bp.post("/admin/channels/<channel_id>/check")
@spec.validate(resp=Resp(HTTP_200=AnyObject, **ERRORS), tags=[TAG])
def admin_check_channel(channel_id: str):
    """Ask the platform whether the channel's credentials work (``tongdai channels check``)
    and where it delivers webhooks: ``{"ok", "lines", "webhook"}``; ``ok`` null when the
    platform has no call for it, ``webhook`` null when it has none for that."""
    require(principal(), "admin")
    adapter = hub().adapter(channel_id)
    scrub = _Scrub(adapter.settings)
    webhook = _ask(adapter, "registration", scrub)
    ask = getattr(adapter, "check_credentials", None)
    if ask is None:
        why = f"the {adapter.name} adapter has no platform call to check credentials with"
        return jsonify({"ok": None, "lines": [why], "webhook": webhook})
    try:
        return jsonify({"ok": True, "lines": scrub(ask()), "webhook": webhook})
    except DeliveryError as exc:
        return jsonify({"ok": False, "lines": [scrub(str(exc))], "webhook": webhook})


class DisableIn(Strict):
    why: str = Field("", max_length=300)


@bp.post("/admin/channels/<channel_id>/disable")
@spec.validate(json=DisableIn, resp=Resp(HTTP_200=AnyObject, **ERRORS), tags=[TAG])
def admin_disable_channel(channel_id: str, json: DisableIn):
    """Stop all sending on a channel at once in every process; customers' messages are still
    received and stored (``tongdai channels disable``)."""
    p = principal()
    require(p, "admin")
    done = channel_admin.disable(hub(), channel_id, p.name, json.why)
    if done:
        audit.record(hub(), p.name, "channel.disabled", channel_id, {"why": json.why})
    return jsonify({"id": channel_id, "disabled": True, "changed": bool(done)})


@bp.post("/admin/channels/<channel_id>/enable")
@spec.validate(resp=Resp(HTTP_200=AnyObject, **ERRORS), tags=[TAG])
def admin_enable_channel(channel_id: str):
    """Send on a disabled channel again; the replies it held go out now."""
    p = principal()
    require(p, "admin")
    hub().adapter(channel_id)  # 404 for a channel that is not configured
    done = channel_admin.enable(hub(), channel_id)
    if done:
        audit.record(hub(), p.name, "channel.enabled", channel_id)
    return jsonify({"id": channel_id, "disabled": False, "changed": bool(done)})


class ChannelIn(Strict):
    id: str = Field(min_length=1, max_length=63)
    adapter: str = Field(min_length=1, max_length=200)
    settings: dict[str, Any] = Field(default_factory=dict)


@bp.post("/admin/channels")
@spec.validate(json=ChannelIn, headers=IdempotencyHeaders,
               resp=Resp(HTTP_200=AnyObject, HTTP_201=AnyObject, **ERRORS), tags=[TAG])
def admin_add_channel(json: ChannelIn):
    """Add a channel to the config file (``tongdai channels add``): validated by the loader
    first — a mistake is a 400 naming the key, and the file is unchanged. Secrets are best
    given as ``${ENV}`` references; a value typed in is sealed with the data keys before the
    file is written."""
    p = principal()
    require(p, "admin")
    h = hub()

    def create():
        try:
            config_edit.add_channel(json.id, json.adapter,
                                    _sealed(h, json.adapter, json.settings), h.config.path)
        except ConfigError as exc:
            raise _refused(exc) from None
        outcome = _applied()
        audit.record(h, p.name, "channel.added", json.id, {"adapter": json.adapter})
        return {"id": json.id, "applied": outcome}, 201

    body, status = idempotent("channel", create)
    return jsonify(body), status


def _sealed(h, adapter: str, settings: dict[str, Any]) -> dict[str, Any]:
    """The settings with every secret typed in clear sealed, before the file is written: a
    value never sits in the file in clear. Settings the adapter refuses are left as given
    (the loader's check then names the mistake)."""
    errors: list[ConfigError] = []
    try:
        model = resolve_adapter(adapter).Settings.model_validate(
            _substitute(settings, "", "", errors))
    except (ConfigError, ValidationError):
        return settings
    out = copy.deepcopy(settings)
    for key in secret_keys(model):
        node: Any = out
        *parents, last = key.split(".")
        for part in parents:
            node = node.get(part) if isinstance(node, dict) else None
        raw = node.get(last) if isinstance(node, dict) else None
        if isinstance(raw, str) and raw and not _ENV_REF.fullmatch(raw) \
                and not raw.startswith(SEALED):
            node[last] = config_edit.seal(h.keyring, raw)
    return out


@bp.delete("/admin/channels/<channel_id>")
@spec.validate(resp=Resp(HTTP_200=AnyObject, **ERRORS), tags=[TAG])
def admin_remove_channel(channel_id: str):
    """Remove a channel from the config file (``tongdai channels remove``); its conversations
    stay, its webhook answers 404 from then on."""
    p = principal()
    require(p, "admin")
    h = hub()
    if channel_id not in h.config.channel_settings:
        raise NotFound(f"no channel {channel_id!r} in {h.config.path}")
    try:
        config_edit.remove_channel(channel_id, h.config.path)
    except ConfigError as exc:
        raise _refused(exc) from None
    outcome = _applied()
    audit.record(h, p.name, "channel.removed", channel_id)
    return jsonify({"id": channel_id, "applied": outcome})


def _into_token_store(h, channel_id: str, key: str) -> None:
    """A token the platform also rotates by itself (Zalo's pair, core/credentials.py): the
    stored current pair wins over the file's first one, so a token set anew replaces its half
    of the stored pair too — else the admin's new token would never be used."""
    store = getattr(h.adapter(channel_id), "token_store", None)
    if key not in ("access_token", "refresh_token") or store is None or not store.current():
        return
    fields = {key: _value(h.config.channel_settings[channel_id][1], key)}
    h.redis.hset(store.key, mapping=fields)
    if key == "access_token":  # its expiry was the old token's
        h.redis.hdel(store.key, "access_expires_at")


class SecretIn(Strict):
    value: str = Field(min_length=1, max_length=4000)


@bp.put("/admin/channels/<channel_id>/secrets/<key>")
@spec.validate(json=SecretIn, resp=Resp(HTTP_200=AnyObject, **ERRORS), tags=[TAG])
def admin_set_secret(channel_id: str, key: str, json: SecretIn):
    """Set one of a channel's secrets anew (rotate): ``${NAME}`` points it at another
    environment variable; any other value is sealed with the data keys in the config file.
    Validated first (the adapter's own checks: a token of the wrong shape is a 400 naming the
    key, nothing written); the answer shows the secret masked, never its value."""
    p = principal()
    require(p, "admin")
    h = hub()
    if channel_id not in h.config.channel_settings:
        raise NotFound(f"no channel {channel_id!r} in {h.config.path}")
    if key not in secret_keys(h.config.channel_settings[channel_id][1]):
        raise NotFound(f"channel {channel_id} has no secret {key!r}")
    try:
        config_edit.set_channel_secret(channel_id, key, json.value, h.keyring, h.config.path)
    except ConfigError as exc:
        exc.problem = exc.problem.replace(json.value, MASK)  # should a check quote it
        raise _refused(exc) from None
    outcome = _applied()
    if outcome == "applied":
        _into_token_store(h, channel_id, key)
    audit.record(h, p.name, "channel.secret_set", channel_id, {"key": key})
    view = channel_view(h, channel_id, channel_admin.health(h, [channel_id])[channel_id])
    return jsonify({"id": channel_id, "applied": outcome,
                    "secret": next(s for s in view["secrets"] if s["key"] == key)})
