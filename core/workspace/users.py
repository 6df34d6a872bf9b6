"""Users of the hub: agents, supervisors and admins, their teams, passwords and sessions.

A user is ``td:user:{name}`` (a hash). Passwords are argon2id hashes (argon2-cffi's defaults:
RFC 9106's second recommended setting); a console session is a random token whose SHA-256 is the
key of a Redis hash that expires after ``console.session_ttl`` without use, so log-out and
"end every session of this user" are a DEL. Repeated failed log-ins lock the user name, and
many more the client address, for ``console.lockout`` (``tongdai users unlock`` ends a lock).
"""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import asdict, dataclass, field
from typing import Any

import redis
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from tongdai.core import i18n
from tongdai.core.clock import now_ms
from tongdai.core.errors import BadRequest, Conflict, NotFound, TongdaiError, Unauthorized
from tongdai.core.hub import Hub

ROLES = ("agent", "supervisor", "admin")
_NAME = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,62}$")
_hasher = PasswordHasher()
# A hash to verify against when the user does not exist, so both answers take as long.
_DUMMY = _hasher.hash("tongdai-no-such-user")
MIN_PASSWORD = 10


class LockedOut(TongdaiError):
    """Too many failed log-ins: refused without looking at the password."""

    http_status = 429

    def __init__(self, retry_after: int) -> None:
        self.retry_after = retry_after
        super().__init__(f"too many failed log-ins; try again in {retry_after} s")


@dataclass
class User:
    name: str                       # log-in name, lower case (also the author id of replies)
    role: str                       # agent | supervisor | admin
    display_name: str = ""
    teams: list[str] = field(default_factory=list)
    capacity: int | None = None     # open conversations at once; None: the team's capacity
    telegram_user_id: int | None = None  # links the user's messages in a staff group
    email: str | None = None        # where assignment notifications go; their replies count
    language: str = ""              # console language (vi / en / zh…); "" = console.default_language
    disabled: bool = False

    def to_api(self) -> dict[str, Any]:
        d = asdict(self)
        d["display_name"] = self.display_name or self.name
        return d


def check_name(name: str) -> str:
    if not _NAME.fullmatch(name or ""):  # fullmatch: "an\n" is not a second "an"
        raise BadRequest("a user name is 1-63 lower-case letters, digits, '.', '_' or "
                         "'-'").because("user_name")
    return name


def check_role(role: str) -> str:
    if role not in ROLES:
        raise BadRequest(f"role must be one of {', '.join(ROLES)}")
    return role


def check_teams(hub: Hub, teams: list[str]) -> list[str]:
    known = {t.id for t in hub.config.hub.teams}
    bad = [t for t in teams if t not in known]
    if bad:
        raise BadRequest(f"unknown team(s) {', '.join(bad)}: teams are configured in "
                         f"{hub.config.path} (teams:)")
    return sorted(set(teams))


def _check_password(password: str) -> None:
    if len(password or "") < MIN_PASSWORD:
        raise BadRequest(f"a password needs at least {MIN_PASSWORD} characters").because(
            "password_short", n=MIN_PASSWORD)


def _from_hash(name: str, h: dict[bytes, bytes]) -> User:
    s = {k.decode(): v.decode() for k, v in h.items()}
    return User(name=name, role=s.get("role", "agent"), display_name=s.get("display_name", ""),
                teams=[t for t in s.get("teams", "").split(",") if t],
                capacity=int(s["capacity"]) if s.get("capacity") else None,
                telegram_user_id=int(s["telegram"]) if s.get("telegram") else None,
                email=s.get("email") or None, language=s.get("language", ""),
                disabled=s.get("disabled") == "1")


def _fields(u: User) -> dict[str, str]:
    return {"role": u.role, "display_name": u.display_name, "teams": ",".join(u.teams),
            "capacity": "" if u.capacity is None else str(u.capacity),
            "telegram": "" if u.telegram_user_id is None else str(u.telegram_user_id),
            "email": (u.email or "").lower(), "language": u.language,
            "disabled": "1" if u.disabled else "0"}


def create(hub: Hub, user: User, password: str | None) -> User:
    """A new user; ``password`` None makes an API-only user (no console log-in)."""
    check_name(user.name)
    check_role(user.role)
    user.teams = check_teams(hub, user.teams)
    check_language(user.language)
    if password is not None:
        _check_password(password)
    _check_telegram_free(hub, user)
    k = hub.keys
    fields = _fields(user)
    if password is not None:
        fields["password"] = _hasher.hash(password)
    if not hub.redis.sadd(k.users(), user.name):
        raise Conflict(f"user {user.name!r} exists").because("user_exists", name=user.name)
    pipe = hub.redis.pipeline(transaction=True)
    pipe.hset(k.user(user.name), mapping=fields)
    _index(pipe, hub, user, None)
    pipe.execute()
    return user


def check_language(lang: str) -> None:
    """"" (the console's default) or a language the console has (a file in i18n/)."""
    if lang and lang not in i18n.languages():
        raise BadRequest(f"language must be one of {', '.join(i18n.languages())} (or empty "
                         "for the console's default)")


def _check_telegram_free(hub: Hub, user: User) -> None:
    """A Telegram account links one user: the staff group acts as whoever it is linked to."""
    if user.telegram_user_id is None:
        return
    holder = hub.redis.hget(hub.keys.user_by_telegram(), str(user.telegram_user_id))
    if holder is not None and holder.decode() != user.name:
        raise Conflict(f"Telegram user {user.telegram_user_id} is linked to {holder.decode()!r} "
                       "already; unlink it there first")


def _index(pipe, hub: Hub, new: User, old: User | None) -> None:
    k = hub.keys
    if old and old.telegram_user_id and old.telegram_user_id != new.telegram_user_id:
        pipe.hdel(k.user_by_telegram(), str(old.telegram_user_id))
    if old and old.email and old.email != new.email:
        pipe.hdel(k.user_by_email(), old.email.lower())
    if new.telegram_user_id:
        pipe.hset(k.user_by_telegram(), str(new.telegram_user_id), new.name)
    if new.email:
        pipe.hset(k.user_by_email(), new.email.lower(), new.name)


def get(hub: Hub, name: str) -> User:
    h = hub.redis.hgetall(hub.keys.user(name)) if _NAME.fullmatch(name or "") else {}
    if not h:
        raise NotFound(f"no user {name!r}")
    return _from_hash(name, h)


def find(hub: Hub, name: str) -> User | None:
    try:
        return get(hub, name)
    except NotFound:
        return None


def all_users(hub: Hub) -> list[User]:
    names = sorted(n.decode() for n in hub.redis.smembers(hub.keys.users()))
    pipe = hub.redis.pipeline(transaction=False)
    for n in names:
        pipe.hgetall(hub.keys.user(n))
    return [_from_hash(n, h) for n, h in zip(names, pipe.execute(), strict=True) if h]


def by_telegram(hub: Hub, telegram_user_id: int) -> User | None:
    name = hub.redis.hget(hub.keys.user_by_telegram(), str(telegram_user_id))
    return find(hub, name.decode()) if name else None


def by_email(hub: Hub, address: str) -> User | None:
    name = hub.redis.hget(hub.keys.user_by_email(), address.lower())
    return find(hub, name.decode()) if name else None


UPDATABLE = ("role", "display_name", "teams", "capacity", "telegram_user_id", "email",
             "language", "disabled")
NULLABLE = ("capacity", "telegram_user_id", "email")


def _is_active_admin(u: User) -> bool:
    return u.role == "admin" and not u.disabled


def update(hub: Hub, name: str, changes: dict[str, Any]) -> User:
    """Change some of a user's fields (``UPDATABLE``); disabling ends their sessions. The last
    enabled admin cannot be disabled or demoted (nobody could manage users any more)."""
    old = get(hub, name)
    new = User(**asdict(old))
    for key, value in changes.items():
        if key not in UPDATABLE:
            raise BadRequest(f"cannot change {key!r}; changeable: {', '.join(UPDATABLE)}")
        if value is None and key not in NULLABLE:
            raise BadRequest(f"{key} cannot be null")
        setattr(new, key, value)
    check_role(new.role)
    new.teams = check_teams(hub, list(new.teams))
    check_language(new.language)
    _check_telegram_free(hub, new)
    if _is_active_admin(old) and not _is_active_admin(new) and not any(
            _is_active_admin(u) for u in all_users(hub) if u.name != name):
        raise Conflict(f"{name} is the last enabled admin: make someone else admin "
                       "first").because("last_admin", name=name)
    pipe = hub.redis.pipeline(transaction=True)
    pipe.hset(hub.keys.user(name), mapping=_fields(new))
    _index(pipe, hub, new, old)
    pipe.execute()
    if new.disabled and not old.disabled:
        end_sessions(hub, name)
    return new


def set_password(hub: Hub, name: str, password: str) -> None:
    get(hub, name)
    _check_password(password)
    hub.redis.hset(hub.keys.user(name), "password", _hasher.hash(password))
    end_sessions(hub, name)


# -- log-in ---------------------------------------------------------------------------------
def _reserve(hub: Hub, scopes: list[tuple[str, int]]) -> int:
    """Count this attempt against every (scope, limit) *before* the password is checked, in
    one transaction: parallel guesses cannot all pass a check made before any of them failed.
    Returns how long to wait when a scope is over its limit (0: go on)."""
    cfg = hub.config.hub.console
    pipe = hub.redis.pipeline(transaction=True)
    for s, _ in scopes:  # the window starts at the first attempt (Redis 6.2: no EXPIRE NX)
        pipe.set(hub.keys.login_failures(s), 0, ex=int(cfg.lockout), nx=True)
        pipe.incr(hub.keys.login_failures(s))
        pipe.ttl(hub.keys.login_failures(s))
    res = pipe.execute()
    waits = [max(int(ttl), 1) for (_, limit), n, ttl
             in zip(scopes, res[1::3], res[2::3], strict=True) if int(n) > limit]
    return max(waits, default=0)


def _user_scope(name: str | None) -> str:
    return f"user:{(name or '').lower()[:64]}"


def unlock(hub: Hub, name: str, address: str | None = None) -> int:
    """End a log-in lock early (``tongdai users unlock``): the user name's, and an address's
    when given. Returns how many locks there were."""
    keys = [hub.keys.login_failures(_user_scope(name))]
    if address:
        keys.append(hub.keys.login_failures(f"addr:{address}"))
    return int(hub.redis.delete(*keys))


def _refund(hub: Hub, scope: str) -> None:
    """Take back a successful attempt's count (only failures lock), unless the window has
    ended meanwhile (a DECR then would make a key without expiry) or another attempt raced."""
    key = hub.keys.login_failures(scope)
    with hub.redis.pipeline(transaction=True) as pipe:
        try:
            pipe.watch(key)
            if int(pipe.get(key) or 0) > 0:
                pipe.multi()
                pipe.decr(key)
                pipe.execute()
        except redis.WatchError:
            pass  # counted: stricter, never looser


def authenticate(hub: Hub, name: str, password: str, client: str) -> User:
    """The user whose name and password these are, or Unauthorized (same answer and time for
    an unknown user and a wrong password). After ``console.login_attempts`` failures within
    ``console.lockout`` the name is locked, after ``console.login_attempts_per_address`` the
    client address (many people behind one office address): LockedOut."""
    cfg = hub.config.hub.console
    scopes = [_user_scope(name), f"addr:{client}"]
    wait = _reserve(hub, [(scopes[0], cfg.login_attempts),
                          (scopes[1], cfg.login_attempts_per_address)])
    if wait:
        raise LockedOut(wait)
    stored = (hub.redis.hget(hub.keys.user(name), "password") if _NAME.fullmatch(name or "")
              else None)
    ok = False
    try:
        ok = _hasher.verify(stored.decode() if stored else _DUMMY, password or "") and bool(stored)
    except (VerificationError, InvalidHashError):
        ok = False
    if ok:
        user = get(hub, name)
        if not user.disabled:
            hub.redis.delete(hub.keys.login_failures(scopes[0]))
            _refund(hub, scopes[1])
            if _hasher.check_needs_rehash(stored.decode()):
                hub.redis.hset(hub.keys.user(name), "password", _hasher.hash(password))
            return user
    raise Unauthorized("wrong user name or password")  # the attempt stays counted


# -- console sessions ------------------------------------------------------------------------
@dataclass
class Session:
    user: str
    csrf: str
    created_ms: int


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def start_session(hub: Hub, name: str) -> tuple[str, Session]:
    """A new session for ``name``: (cookie token, session). Only the token's hash is stored."""
    token = secrets.token_urlsafe(32)
    s = Session(name, secrets.token_urlsafe(24), now_ms())
    ttl = int(hub.config.hub.console.session_ttl)
    d = _digest(token)
    pipe = hub.redis.pipeline(transaction=True)
    pipe.hset(hub.keys.session(d), mapping={"user": s.user, "csrf": s.csrf,
                                            "created": s.created_ms})
    pipe.expire(hub.keys.session(d), ttl)
    pipe.sadd(hub.keys.user_sessions(name), d)
    pipe.execute()
    return token, s


def session(hub: Hub, token: str) -> Session | None:
    """The live session of a cookie token (its lifetime starts again), or None."""
    if not token or len(token) > 200:
        return None
    key = hub.keys.session(_digest(token))
    pipe = hub.redis.pipeline(transaction=False)
    pipe.hgetall(key)
    pipe.expire(key, int(hub.config.hub.console.session_ttl))  # no-op when it has ended
    h, _ = pipe.execute()
    if not h:
        return None
    return Session(h[b"user"].decode(), h[b"csrf"].decode(), int(h[b"created"]))


def end_session(hub: Hub, token: str) -> None:
    d = _digest(token)
    user = hub.redis.hget(hub.keys.session(d), "user")
    hub.redis.delete(hub.keys.session(d))
    if user:
        hub.redis.srem(hub.keys.user_sessions(user.decode()), d)


def end_sessions(hub: Hub, name: str) -> int:
    """End every console session of a user (disabled, password changed), and stop the pushes
    to their devices: a stolen phone gets no more customers' previews."""
    from tongdai.core.workspace import pushsubs

    k = hub.keys.user_sessions(name)
    digests = [d.decode() for d in hub.redis.smembers(k)]
    if digests:
        hub.redis.delete(*[hub.keys.session(d) for d in digests])
    hub.redis.delete(k)
    pushsubs.remove_all(hub, name)
    return len(digests)
