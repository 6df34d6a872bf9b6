"""Loading ``config/tongdai.yaml``: environment references, validation, clear errors.

Every mistake is reported at start-up as a :class:`ConfigError` naming the file, the key (a
dotted path such as ``channels[tg-main].settings.bot_token``) and the fix.
"""

from __future__ import annotations

import difflib
import functools
import hashlib
import os
import re
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from tongdai.core.config_acks import check as check_acks
from tongdai.core.config_lookups import check_names as check_lookup_names
from tongdai.core.config_routing import check as check_routing
from tongdai.core.config_sections import (
    ChannelSection,
    ConsoleSection,
    ConversationsSection,
    HubConfig,
    IdentitySection,
    IngestSection,
    NotificationsSection,
    PriorityRule,
    PrioritySection,
    RedisSection,
    RouteRule,
    RoutingSection,
    SecuritySection,
    StaffGroup,
    StorageSection,
    TaggingSection,
    TagRule,
    TeamSection,
    parse_duration,
)
from tongdai.core.config_selfservice import check as check_selfservice
from tongdai.core.config_sla import CalendarSection, SlaAction, SlaPolicy, SlaSection, SlaTargets
from tongdai.core.config_spikes import check as check_spikes
from tongdai.core.errors import ConfigError, TongdaiError

# The sections' models live in core/config_sections.py; callers import them from here too.
__all__ = [
    "DEFAULT_PATH",
    "CalendarSection",
    "ChannelSection",
    "ConfigInvalid",
    "ConsoleSection",
    "ConversationsSection",
    "HubConfig",
    "IdentitySection",
    "IngestSection",
    "LoadedConfig",
    "NotificationsSection",
    "PriorityRule",
    "PrioritySection",
    "RedisSection",
    "RouteRule",
    "RoutingSection",
    "SecuritySection",
    "SlaAction",
    "SlaPolicy",
    "SlaSection",
    "SlaTargets",
    "StaffGroup",
    "StorageSection",
    "TagRule",
    "TaggingSection",
    "TeamSection",
    "config_path",
    "errors_from_validation",
    "file_version",
    "load_config",
    "parse_duration",
]

DEFAULT_PATH = "config/tongdai.yaml"
_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")
# "enc:...": a secret sealed with the data keys (``config_edit.seal``), opened at load
SEALED = "enc:"
SEALED_PURPOSE = b"config-secret"
_CHANNEL_ID = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")


class ConfigInvalid(TongdaiError):
    """Several configuration mistakes, each a :class:`ConfigError`."""

    def __init__(self, errors: list[ConfigError]) -> None:
        self.errors = errors
        super().__init__("\n".join(str(e) for e in errors))


class LoadedConfig:
    """The validated configuration plus where it came from."""

    def __init__(self, path: str, hub: HubConfig, channel_settings: dict[str, Any],
                 version: str = "") -> None:
        self.path = path
        self.hub = hub
        # channel id -> (adapter class, validated settings model)
        self.channel_settings = channel_settings
        # the file's content hash (``file_version``): which edit a running process runs
        self.version = version


def file_version(content: bytes) -> str:
    """A short content hash of a config file: equal files, equal versions (on every host)."""
    return hashlib.sha256(content).hexdigest()[:12]


def config_path() -> str:
    return os.environ.get("TONGDAI_CONFIG", DEFAULT_PATH)


def _substitute(node: Any, path: str, file: str, errors: list[ConfigError]) -> Any:
    """Replace ``${VAR}`` / ``${VAR:-default}`` in every string, remembering where each is."""
    if isinstance(node, dict):
        return {k: _substitute(v, f"{path}.{k}" if path else str(k), file, errors)
                for k, v in node.items()}
    if isinstance(node, list):
        return [_substitute(v, f"{path}[{i}]", file, errors) for i, v in enumerate(node)]
    if not isinstance(node, str):
        return node
    if node.startswith(SEALED):
        return _unseal(node, path, file, errors)

    def repl(m: re.Match[str]) -> str:
        name, default = m.group(1), m.group(2)
        value = os.environ.get(name)
        if value is None or value == "":
            if default is not None:
                return default
            errors.append(ConfigError(
                file, path, f"environment variable {name} is not set",
                f"export {name}=... before starting (secrets belong in the environment)"))
            return ""
        return value

    return _ENV_REF.sub(repl, node)


def _unseal(value: str, path: str, file: str, errors: list[ConfigError]) -> str:
    """A secret an admin rotated from the console, kept in the file sealed with the data keys
    (core/crypto.py): every process of the hub has them, a copy of the file alone is useless."""
    from tongdai.core.crypto import load_keyring
    from tongdai.core.hub import data_dir

    try:
        text = load_keyring(data_dir()).decrypt_text(value, SEALED_PURPOSE)
    except (ConfigError, ValueError, IndexError):
        text = None
    if text is None:
        errors.append(ConfigError(file, path, "this sealed secret does not open with this "
                                  "process's data keys", "give the process the hub's "
                                  "TONGDAI_DATA_KEYS, or set the secret again (console admin "
                                  "area, or an ${ENV} reference)"))
        return ""
    return text


def _key_path(loc: tuple[Any, ...], channels: list[dict[str, Any]] | None = None) -> str:
    """A pydantic error location as a dotted key, naming channels by id."""
    out = ""
    items = list(loc)
    i = 0
    while i < len(items):
        part = items[i]
        if part == "channels" and i + 1 < len(items) and isinstance(items[i + 1], int):
            idx = items[i + 1]
            cid = (channels or [{}] * (idx + 1))[idx].get("id", idx) if channels else idx
            out += f"channels[{cid}]"
            i += 2
            continue
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
        i += 1
    return out or "(top level)"


@functools.cache
def _key_names() -> tuple[str, ...]:
    """Every key name of the configuration's sections (for "did you mean ...")."""
    import typing

    from pydantic import BaseModel

    seen: set[type] = set()
    names: set[str] = set()

    def walk(tp: Any) -> None:
        for arg in typing.get_args(tp):
            walk(arg)
        if isinstance(tp, type) and issubclass(tp, BaseModel) and tp not in seen:
            seen.add(tp)
            for name, f in tp.model_fields.items():
                names.add(f.alias or name)
                walk(f.annotation)

    walk(HubConfig)
    return tuple(sorted(names))


def _fix_for(err: dict[str, Any]) -> str:
    kind = err.get("type", "")
    if (err.get("ctx") or {}).get("fix"):  # a validator that knows the fix says it
        return err["ctx"]["fix"]
    if kind == "missing":
        return "add this key"
    if kind == "extra_forbidden":
        loc = err.get("loc") or ()
        near = difflib.get_close_matches(str(loc[-1]), _key_names(), n=1, cutoff=0.75) \
            if loc else []
        return (f"did you mean {near[0]}? Or remove this key" if near else
                "remove this key or check its spelling against config/tongdai.example.yaml")
    if "int" in kind or "float" in kind:
        return "write a number"
    if kind.startswith("string"):
        return "write a text value"
    return "see the documented example in config/tongdai.example.yaml"


def errors_from_validation(
    exc: ValidationError, file: str, prefix: str = "", channels: list[dict[str, Any]] | None = None
) -> list[ConfigError]:
    out = []
    for e in exc.errors():
        key = _key_path(tuple(e["loc"]), channels)
        if sub := (e.get("ctx") or {}).get("key"):  # a whole-model check naming its key
            key = f"{key}.{sub}" if key != "(top level)" else sub
        if prefix:
            key = f"{prefix}.{key}" if key != "(top level)" else prefix
        msg = e["msg"].removeprefix("Value error, ")
        out.append(ConfigError(file, key, msg, _fix_for(e)))
    return out


def load_config(path: str | None = None) -> LoadedConfig:
    """Read, substitute and validate the whole configuration, adapters' settings included."""
    from tongdai.core.registry import resolve_adapter  # the registry imports adapters lazily

    path = path or config_path()
    p = Path(path)
    if not p.exists():
        raise ConfigInvalid([ConfigError(
            path, "(file)", "the configuration file does not exist",
            "create it from config/tongdai.example.yaml or set TONGDAI_CONFIG to its path")])
    content = p.read_bytes()
    try:
        data = yaml.safe_load(content.decode("utf-8")) or {}
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "(unknown place)"
        raise ConfigInvalid([ConfigError(path, where, f"not valid YAML ({exc.problem if hasattr(exc, 'problem') else exc})",
                                         "fix the YAML syntax at that place")]) from None
    if not isinstance(data, dict):
        raise ConfigInvalid([ConfigError(path, "(top level)", "must be a mapping of sections",
                                         "start from config/tongdai.example.yaml")])
    errors: list[ConfigError] = []
    data = _substitute(data, "", path, errors)
    raw_channels = data.get("channels") if isinstance(data.get("channels"), list) else []
    if errors:  # unset variables: report them alone, not the empty values they leave
        for e in errors:
            m = re.match(r"channels\[(\d+)\](.*)", e.key)
            if m and int(m.group(1)) < len(raw_channels):
                cid = (raw_channels[int(m.group(1))] or {}).get("id", m.group(1))
                e.key = f"channels[{cid}]{m.group(2)}"
                e.args = (f"{e.file}: {e.key}: {e.problem}. Fix: {e.fix}",)
        raise ConfigInvalid(errors)
    try:
        hub = HubConfig.model_validate(data)
    except ValidationError as exc:
        errors += errors_from_validation(exc, path, channels=raw_channels)
        raise ConfigInvalid(errors) from None

    seen: set[str] = set()
    channel_settings: dict[str, Any] = {}
    for ch in hub.channels:
        where = f"channels[{ch.id}]"
        if not _CHANNEL_ID.match(ch.id):
            errors.append(ConfigError(path, f"{where}.id", "a channel id must be 1-63 lower-case "
                                      "letters, digits, - or _", "rename the channel"))
            continue
        if ch.id in seen:
            errors.append(ConfigError(path, f"{where}.id", "this id is used twice",
                                      "give every channel instance its own id"))
            continue
        seen.add(ch.id)
        try:
            cls = resolve_adapter(ch.adapter)
        except ConfigError as exc:
            errors.append(ConfigError(path, f"{where}.adapter", exc.problem, exc.fix))
            continue
        try:
            channel_settings[ch.id] = (cls, cls.Settings.model_validate(ch.settings))
        except ValidationError as exc:
            errors += errors_from_validation(exc, path, prefix=f"{where}.settings")

    queues = set(hub.routing.queues)
    if hub.routing.default_queue not in queues:
        errors.append(ConfigError(path, "routing.default_queue",
                                  f"queue {hub.routing.default_queue!r} is not in routing.queues",
                                  "add it to routing.queues"))
    for i, rule in enumerate(hub.routing.rules):
        if rule.queue not in queues:
            errors.append(ConfigError(path, f"routing.rules[{i}].queue",
                                      f"queue {rule.queue!r} is not in routing.queues",
                                      "add it to routing.queues or fix the name"))
    team_ids: set[str] = set()
    for team in hub.teams:
        where = f"teams[{team.id}]"
        if not _CHANNEL_ID.match(team.id) or team.id in team_ids:
            errors.append(ConfigError(path, f"{where}.id", "a team id must be unique, 1-63 "
                                      "lower-case letters, digits, - or _", "rename the team"))
        team_ids.add(team.id)
        for q in team.queues:
            if q not in queues:
                errors.append(ConfigError(path, f"{where}.queues", f"queue {q!r} is not in "
                                          "routing.queues", "add it to routing.queues or fix "
                                          "the name"))
        sg = team.staff_group
        if sg is not None and channel_settings.get(sg.channel, (None,))[0] is None:
            errors.append(ConfigError(path, f"{where}.staff_group.channel",
                                      f"no channel {sg.channel!r}", "name a telegram channel "
                                      "instance from channels"))
        elif sg is not None and getattr(channel_settings[sg.channel][0], "name", "") != "telegram":
            errors.append(ConfigError(path, f"{where}.staff_group.channel",
                                      f"channel {sg.channel!r} is not a telegram channel",
                                      "a staff group needs a telegram bot channel"))
    for q in hub.sla.queues:
        if q not in queues:
            errors.append(ConfigError(path, f"sla.queues.{q}", f"queue {q!r} is not in "
                                      "routing.queues", "fix the queue name"))
    for i, pol in enumerate(hub.sla.policies):
        where = f"sla.policies[{i}]"
        if pol.calendar != "24/7" and pol.calendar not in hub.calendars:
            errors.append(ConfigError(path, f"{where}.calendar", f"no calendar {pol.calendar!r}",
                                      "name one under calendars:, or write 24/7"))
        for c in pol.channels:
            if c not in channel_settings:
                errors.append(ConfigError(path, f"{where}.channels", f"no channel {c!r}",
                                          "name a channel instance from channels"))
    errors += check_acks(hub.acknowledgements, set(channel_settings), set(hub.calendars), path)
    errors += check_selfservice(hub.selfservice, set(channel_settings), path)
    errors += check_spikes(hub.spikes, team_ids, {t.id for t in hub.teams if t.staff_group}, path)
    mailer = hub.notifications.email_channel
    if mailer is not None and getattr(channel_settings.get(mailer, (None,))[0], "name",
                                      "") != "email":
        errors.append(ConfigError(path, "notifications.email_channel",
                                  f"{mailer!r} is not an email channel",
                                  "name an email channel instance from channels"))
    errors += check_routing(hub, path)  # rules and the tier ladder (core/config_routing.py)
    errors += [ConfigError(path, k, p, f) for k, p, f in check_lookup_names(hub.lookups)]
    if errors:
        raise ConfigInvalid(errors)
    return LoadedConfig(path, hub, channel_settings, file_version(content))
