"""Loading ``config/tongdai.yaml``: environment references, validation, clear errors.

Every mistake is reported at start-up as a :class:`ConfigError` naming the file, the key (a
dotted path such as ``channels[tg-main].settings.bot_token``) and the fix.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from tongdai.core.errors import ConfigError, TongdaiError

DEFAULT_PATH = "config/tongdai.yaml"
_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, None: 1}
_CHANNEL_ID = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")


def parse_duration(value: Any) -> float:
    """``30s``, ``2h``, ``7d``, ``250ms`` or a number of seconds → seconds."""
    if isinstance(value, int | float):
        return float(value)
    m = _DURATION.match(str(value))
    if not m:
        raise ValueError(f"{value!r} is not a duration; write it like 30s, 15m, 2h or 7d")
    return float(m.group(1)) * _UNITS[m.group(2)]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class RedisSection(_Section):
    prefix: str = "td:"
    # fsync policy of the embedded server's append-only file: always | everysec
    appendfsync: str = "always"

    @field_validator("appendfsync")
    @classmethod
    def _fsync(cls, v: str) -> str:
        if v not in ("always", "everysec"):
            raise ValueError("must be 'always' or 'everysec'")
        return v


class IngestSection(_Section):
    shards: int = Field(4, ge=1, le=256)
    consumers: int = Field(2, ge=1, le=256)  # ingest loops at once, one per ingest worker
    batch_size: int = Field(500, ge=1, le=10000)
    raw_retention: float = 3 * 86400
    claim_idle: float = 15.0  # a batch unacknowledged this long belonged to a dead worker
    loop_time_box: float = 10.0  # seconds one ingest job runs before a fresh job takes over

    _durations = field_validator("raw_retention", "claim_idle", "loop_time_box", mode="before")(
        classmethod(lambda cls, v: parse_duration(v))
    )


class ConversationsSection(_Section):
    reopen_window: float = 7 * 86400

    _durations = field_validator("reopen_window", mode="before")(
        classmethod(lambda cls, v: parse_duration(v))
    )


class TagRule(_Section):
    tag: str
    any: list[str] = Field(min_length=1)


class TaggingSection(_Section):
    detect_language: bool = True
    rules: list[TagRule] = []


class RouteRule(_Section):
    queue: str
    priority: int = Field(0, ge=0, le=99)
    tags_any: list[str] = []
    languages: list[str] = []
    channels: list[str] = []


class RoutingSection(_Section):
    default_queue: str = "general"
    queues: list[str] = ["general"]
    rules: list[RouteRule] = []
    # An escalated conversation's priority is raised to at least this (core/workflow.py).
    escalation_priority: int = Field(90, ge=0, le=99)


class SecuritySection(_Section):
    # Encrypt message text at rest too (names, phones, emails and the raw log always are).
    # Costs: Lua can no longer match a platform's echo to a queued reply by its text.
    encrypt_message_text: bool = False


class IdentitySection(_Section):
    # Regions whose national phone formats customers type (tried in order): "0912 345 678"
    # is +84912345678 with VN first. Numbers written with "+" need none.
    regions: list[str] = ["VN"]
    # Phone numbers and addresses typed into messages become (unverified) identifier claims:
    # evidence for merge suggestions, never a merge by themselves.
    typed_claims: bool = True
    link_code_ttl: float = 600.0  # a link code lives this long (and is single use)

    _durations = field_validator("link_code_ttl", mode="before")(
        classmethod(lambda cls, v: parse_duration(v))
    )

    @field_validator("regions")
    @classmethod
    def _regions(cls, v: list[str]) -> list[str]:
        import phonenumbers

        bad = [r for r in v if r.upper() not in phonenumbers.SUPPORTED_REGIONS]
        if bad:
            raise ValueError(f"unknown region(s) {bad}: use ISO 3166 codes such as VN, CN, TW")
        return [r.upper() for r in v]


class StorageSection(_Section):
    # Files customers send by mail (attachments, the original .eml), encrypted, named by hash.
    # Relative paths are under the data directory (TONGDAI_DATA_DIR, default ./var). Several
    # hosts need a shared path (NFS, a mounted volume).
    blobs: str = "blobs"
    max_blob_bytes: int = Field(25 * 1024 * 1024, ge=1024)


class StaffGroup(_Section):
    # A Telegram supergroup with topics where the team answers customers (docs/workspace.md).
    channel: str            # a telegram channel instance whose bot is an admin of the group
    chat_id: int            # the supergroup's id (-100...)


class TeamSection(_Section):
    id: str
    name: str = ""
    queues: list[str] = []          # conversations of these queues belong to the team
    # Auto-assignment: off, round_robin or least_loaded; only to online agents with room.
    auto_assign: str = "off"
    capacity: int = Field(5, ge=1, le=1000)  # open conversations per agent (default)
    # An agent going offline hands their open conversations back to the queue.
    release_on_offline: bool = True
    staff_group: StaffGroup | None = None

    @field_validator("auto_assign")
    @classmethod
    def _mode(cls, v: str) -> str:
        if v not in ("off", "round_robin", "least_loaded"):
            raise ValueError("auto_assign must be off, round_robin or least_loaded")
        return v


class ConsoleSection(_Section):
    session_ttl: float = 12 * 3600.0   # a console session ends after this long without use
    login_attempts: int = Field(5, ge=1)  # failed log-ins per user (and per address) ...
    lockout: float = 900.0             # ... within this time lock further tries for it
    default_language: str = "vi"      # vi or en; each agent can choose
    away_after: float = 600.0          # no activity this long: online -> away
    offline_after: float = 1800.0      # ... and this long: offline (assignments released)
    # Mark console cookies Secure even when the request reached us over plain HTTP (a proxy
    # terminates TLS in front); they are Secure anyway on HTTPS requests.
    secure_cookies: bool = False

    _durations = field_validator("session_ttl", "lockout", "away_after", "offline_after",
                                 mode="before")(classmethod(lambda cls, v: parse_duration(v)))

    @field_validator("default_language")
    @classmethod
    def _lang(cls, v: str) -> str:
        if v not in ("vi", "en"):
            raise ValueError("default_language must be vi or en")
        return v


class SlaTargets(_Section):
    first_response: float | None = None   # customer's first message -> first agent reply
    next_response: float | None = None    # each later customer message -> the next reply

    _durations = field_validator("first_response", "next_response", mode="before")(
        classmethod(lambda cls, v: None if v is None else parse_duration(v)))


class SlaSection(SlaTargets):
    # Defaults for every queue; `queues:` overrides them per queue.
    first_response: float | None = 900.0
    next_response: float | None = 3600.0
    queues: dict[str, SlaTargets] = {}


class NotificationsSection(_Section):
    # Agents' mail (core/agentmail.py): assignment notifications, replies by mail, digests.
    email: bool = True                 # mail agents (those with an email) when assigned
    email_channel: str | None = None   # the email channel that sends them; None: the first
    console_url: str = ""              # links in mails, e.g. https://hub.example.vn
    recent_messages: int = Field(5, ge=1, le=50)  # the customer's latest messages shown
    digest_hour: int | None = Field(None, ge=0, le=23)  # daily digest at this hour; None: off
    timezone: str = "Asia/Ho_Chi_Minh"  # of digest_hour and the times shown in mails

    @field_validator("timezone")
    @classmethod
    def _tz(cls, v: str) -> str:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(v)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"{v!r} is not a time zone; write it like Asia/Ho_Chi_Minh") from None
        return v


class ChannelSection(_Section):
    id: str
    adapter: str
    settings: dict[str, Any] = {}


class HubConfig(_Section):
    redis: RedisSection = RedisSection()
    ingest: IngestSection = IngestSection()
    conversations: ConversationsSection = ConversationsSection()
    tagging: TaggingSection = TaggingSection()
    routing: RoutingSection = RoutingSection()
    security: SecuritySection = SecuritySection()
    storage: StorageSection = StorageSection()
    identity: IdentitySection = IdentitySection()
    teams: list[TeamSection] = []
    console: ConsoleSection = ConsoleSection()
    sla: SlaSection = SlaSection()
    notifications: NotificationsSection = NotificationsSection()
    channels: list[ChannelSection] = []


class ConfigInvalid(TongdaiError):
    """Several configuration mistakes, each a :class:`ConfigError`."""

    def __init__(self, errors: list[ConfigError]) -> None:
        self.errors = errors
        super().__init__("\n".join(str(e) for e in errors))


class LoadedConfig:
    """The validated configuration plus where it came from."""

    def __init__(self, path: str, hub: HubConfig, channel_settings: dict[str, Any]) -> None:
        self.path = path
        self.hub = hub
        # channel id -> (adapter class, validated settings model)
        self.channel_settings = channel_settings


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


def _fix_for(err: dict[str, Any]) -> str:
    kind = err.get("type", "")
    if kind == "missing":
        return "add this key"
    if kind == "extra_forbidden":
        return "remove this key or check its spelling against config/tongdai.example.yaml"
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
    try:
        data = yaml.safe_load(p.read_text("utf-8")) or {}
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
    mailer = hub.notifications.email_channel
    if mailer is not None and getattr(channel_settings.get(mailer, (None,))[0], "name",
                                      "") != "email":
        errors.append(ConfigError(path, "notifications.email_channel",
                                  f"{mailer!r} is not an email channel",
                                  "name an email channel instance from channels"))
    if errors:
        raise ConfigInvalid(errors)
    return LoadedConfig(path, hub, channel_settings)
