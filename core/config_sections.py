"""The sections of ``config/tongdai.yaml`` as pydantic models, and ``parse_duration``.

Every section forbids unknown keys, so a misspelt one is reported (by ``core/config.py``, which
loads and validates the file) instead of silently ignored. Durations are written like ``30s``,
``15m``, ``2h`` or ``7d``.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field, IPvAnyNetwork, field_validator

from tongdai.core import i18n
from tongdai.core.config_acks import AcknowledgementsSection
from tongdai.core.config_backup import BackupSection
from tongdai.core.config_base import _Section, _tz, parse_duration
from tongdai.core.config_lookups import Lookup
from tongdai.core.config_selfservice import SelfServiceSection
from tongdai.core.config_sla import CalendarSection, SlaSection
from tongdai.core.config_spikes import SpikesSection


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


class RepliesSection(_Section):
    """Sending replies: how long a platform may take, and what a send without an answer does."""

    # A platform call (send, profile, button answer) answered later than this is given up on
    # (the HTTP read timeout; connecting gets at most 5 s of it).
    platform_timeout: float = 10.0
    # A send whose request reached the platform but got no answer may have arrived: it is
    # tried once more, this much later, and never again (the agent sees why).
    uncertain_retry: float = 60.0
    # A call still running after this makes its channel suspect: then only one call at a time
    # goes to that channel (the others wait, parked, holding no sender) until one succeeds.
    slow_after: float = 1.0
    # How long a parked send waits before it may become that one call itself.
    park: float = 30.0

    _durations = field_validator(
        "platform_timeout", "uncertain_retry", "slow_after", "park", mode="before"
    )(classmethod(lambda cls, v: parse_duration(v)))


class TagRule(_Section):
    tag: str
    any: list[str] = Field(min_length=1)
    none: list[str] = []  # keywords that stop the rule (core/pipeline/tagging.py)


_LANGUAGES = ("vi", "zh", "en", "th", "id", "ms", "ja", "ko", "km", "lo", "tl", "fr")


class TaggingSection(_Section):
    detect_language: bool = True
    # The languages messages are told apart among (ISO 639-1); the detector knows no others.
    languages: list[str] = ["vi", "zh", "en"]
    # lingua's low-accuracy mode: ~10 MB of models instead of ~70 MB per process, and on
    # short chat it is as accurate, with our Vietnamese word lists (docs/decisions.md).
    language_accuracy: str = "low"
    rules: list[TagRule] = []

    @field_validator("languages")
    @classmethod
    def _languages(cls, v: list[str]) -> list[str]:
        bad = [x for x in v if x not in _LANGUAGES]
        if bad or not v:
            raise ValueError(f"unknown language(s) {bad or v}: use some of {list(_LANGUAGES)}")
        return v

    @field_validator("language_accuracy")
    @classmethod
    def _accuracy(cls, v: str) -> str:
        if v not in ("low", "high"):
            raise ValueError("must be 'low' or 'high'")
        return v


class Repeated(_Section):
    messages: int = Field(ge=2)  # this many customer messages since an agent last replied ...
    within: float  # ... within this long (this message included)

    _durations = field_validator("within", mode="before")(
        classmethod(lambda cls, v: parse_duration(v)))


class PriorityRule(_Section):
    # Conditions, all of which must hold; a list holds when any of its items does.
    name: str
    level: int = Field(ge=0, le=99)
    tags_any: list[str] = []
    languages: list[str] = []
    channels: list[str] = []
    customer_tier: list[str] = []  # the customer's ``tier`` (td:customer:{id}), e.g. vip
    repeated: Repeated | None = None


class PrioritySection(_Section):
    # Each matching rule offers its level; a conversation takes the highest (ties: the first
    # rule listed) and keeps which rule and what matched as its priority reason.
    rules: list[PriorityRule] = []


# Customer attributes routing may test (fields of td:customer:{id}); ``tier`` is the one
# priority rules read too (PATCH /api/v1/customers/{id}).
CUSTOMER_ATTRIBUTES = ("tier",)


class RouteConditions(_Section):
    # All must hold; a list holds when any of its items does (core/pipeline/routing.py).
    tags_any: list[str] = []
    languages: list[str] = []
    channels: list[str] = []
    priority_min: int | None = Field(None, ge=0, le=99)  # the priority, all rules applied
    customer: dict[str, list[str]] = {}  # the customer's attributes, e.g. {tier: [vip]}

    @field_validator("customer")
    @classmethod
    def _attributes(cls, v: dict[str, list[str]]) -> dict[str, list[str]]:
        for name, values in v.items():
            if name not in CUSTOMER_ATTRIBUTES:
                raise ValueError(f"unknown customer attribute {name!r}: use "
                                 f"{', '.join(CUSTOMER_ATTRIBUTES)}")
            if not values or any(not x or any(ord(c) < 32 for c in x) for x in values):
                raise ValueError(f"customer.{name} needs a list of values, e.g. [vip]")
        return v

    @property
    def conditional(self) -> bool:
        """Judged on what only the store knows (the customer, the final priority)."""
        return self.priority_min is not None or bool(self.customer)


class RouteRule(RouteConditions):
    queue: str
    priority: int = Field(0, ge=0, le=99)


class EscalationStep(RouteConditions):
    team: str  # escalating goes to this team's first queue when the conditions hold


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
    # Outgoing webhooks go to public addresses only; list here the networks of receivers on
    # your own network (e.g. 10.20.0.0/16, 127.0.0.1/32). Link-local and metadata addresses
    # (169.254.0.0/16, fe80::/10, ...) stay refused whatever is listed.
    webhook_allowed_networks: list[IPvAnyNetwork] = []


class MetricsSection(_Section):
    # GET /metrics (Prometheus) answers a bearer token: this one (give it to Prometheus:
    # ``authorization: {credentials: ...}``), or an admin's API token. Empty: admins' only.
    token: str = ""

    @field_validator("token")
    @classmethod
    def _long(cls, v: str) -> str:
        if v and len(v) < 24:
            raise ValueError("a metrics token needs at least 24 characters (make one with: "
                             "python3 -c 'import secrets; print(secrets.token_urlsafe(32))')")
        return v


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
    # Tiers (core/workspace/tiers.py): 1 first line, 2 specialists, 3 managers... Escalating
    # moves a conversation to the first step of ``escalates_to`` whose conditions hold (a
    # team of a higher tier; a bare team id is a step without conditions; the last step must
    # have none).
    tier: int = Field(1, ge=1, le=9)
    escalates_to: list[EscalationStep] = []

    @field_validator("escalates_to", mode="before")
    @classmethod
    def _steps(cls, v: Any) -> Any:
        return [{"team": x} if isinstance(x, str) else x for x in v] if isinstance(v, list) else v

    @field_validator("auto_assign")
    @classmethod
    def _mode(cls, v: str) -> str:
        if v not in ("off", "round_robin", "least_loaded"):
            raise ValueError("auto_assign must be off, round_robin or least_loaded")
        return v


class ConsoleSection(_Section):
    session_ttl: float = 12 * 3600.0   # a console session ends after this long without use
    login_attempts: int = Field(5, ge=1)  # failed log-ins per user name ...
    # ... and per client address (an office behind one NAT address: one person's typos must
    # not lock the team out; a guesser trying many names is still stopped) ...
    login_attempts_per_address: int = Field(30, ge=1)
    lockout: float = 900.0             # ... within this time lock further tries for it
    default_language: str = "vi"      # vi, en, zh (a file in webhooks/static/i18n); each agent can choose
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
        if v not in i18n.languages():
            raise ValueError(f"default_language must be one of {', '.join(i18n.languages())} "
                             "(the files in webhooks/static/i18n)")
        return v


class NotificationsSection(_Section):
    # Agents' mail (core/agentmail.py): assignment notifications, replies by mail, digests.
    email: bool = True                 # mail agents (those with an email) when assigned
    email_channel: str | None = None   # the email channel that sends them; None: the first
    console_url: str = ""              # links in mails, e.g. https://hub.example.vn
    recent_messages: int = Field(5, ge=1, le=50)  # the customer's latest messages shown
    digest_hour: int | None = Field(None, ge=0, le=23)  # daily digest at this hour; None: off
    timezone: str = "Asia/Ho_Chi_Minh"  # of digest_hour and the times shown in mails
    # Web Push to agents' phones and browsers with the console closed (core/workspace/push.py)
    push: bool = True
    # Who runs this hub, for push services (VAPID "sub"): mailto:admin@your.domain or an
    # https URL. "": console_url when it is https, else mailto:webpush@tongdai.invalid
    push_contact: str = ""
    # The push services subscriptions may point at (origins; "*." matches subdomains): the
    # browsers' own. An endpoint elsewhere is refused (the hub would POST wherever it says).
    push_services: list[str] = [
        "https://fcm.googleapis.com",                 # Chrome, Android, Opera, Samsung
        "https://updates.push.services.mozilla.com",  # Firefox
        "https://*.notify.windows.com",               # Edge
        "https://web.push.apple.com",                 # Safari, iOS home-screen apps
    ]

    _zone = field_validator("timezone")(classmethod(lambda cls, v: _tz(v)))

    @field_validator("push_contact")
    @classmethod
    def _contact(cls, v: str) -> str:
        if v and not (v.startswith("mailto:") and "@" in v or v.startswith("https://")):
            raise ValueError("push_contact is a mailto: address or an https:// URL")
        return v

    @field_validator("push_services")
    @classmethod
    def _services(cls, v: list[str]) -> list[str]:
        for origin in v:
            scheme, sep, host = origin.partition("://")
            if not sep or scheme not in ("https", "http") or not host or "/" in host:
                raise ValueError(f"push_services: {origin!r} is not an origin like "
                                 "https://fcm.googleapis.com")
        return [o.rstrip("/").lower() for o in v]


class ChannelSection(_Section):
    id: str
    adapter: str
    settings: dict[str, Any] = {}


class HubConfig(_Section):
    redis: RedisSection = RedisSection()
    ingest: IngestSection = IngestSection()
    conversations: ConversationsSection = ConversationsSection()
    replies: RepliesSection = RepliesSection()
    tagging: TaggingSection = TaggingSection()
    priority: PrioritySection = PrioritySection()
    routing: RoutingSection = RoutingSection()
    security: SecuritySection = SecuritySection()
    metrics: MetricsSection = MetricsSection()
    storage: StorageSection = StorageSection()
    identity: IdentitySection = IdentitySection()
    teams: list[TeamSection] = []
    console: ConsoleSection = ConsoleSection()
    sla: SlaSection = SlaSection()
    calendars: dict[str, CalendarSection] = {}
    acknowledgements: AcknowledgementsSection = AcknowledgementsSection()
    selfservice: SelfServiceSection = SelfServiceSection()
    notifications: NotificationsSection = NotificationsSection()
    backup: BackupSection = BackupSection()
    spikes: SpikesSection = SpikesSection()  # spike alerts (core/config_spikes.py)
    lookups: dict[str, Lookup] = {}  # the business's data (core/config_lookups.py)
    channels: list[ChannelSection] = []

