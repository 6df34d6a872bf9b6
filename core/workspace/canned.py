"""Canned replies: saved answers an agent picks by shortcut ("/hoantien") and sends as is.

A canned reply is global (every agent) or scoped to a team (its members). Supervisors and
admins manage them (a supervisor only global ones and their own teams'); everyone uses the
ones they see. Rendering fills a fixed set of variables in one pass over the *template*:
values (a customer's name) are never scanned again, so a name like ``{{agent.name}}`` stays
text, and nothing is ever evaluated. Unknown variables, and known ones without a value, stay
visible so the agent sees what to fill in before sending.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from typing import Any

from tongdai.core.clock import now_ms
from tongdai.core.errors import BadRequest, Conflict, NotFound
from tongdai.core.hub import Hub
from tongdai.core.identity.names import given_name
from tongdai.core.pipeline import store
from tongdai.core.workspace import access, audit, users
from tongdai.core.workspace.access import Principal

MAX_CANNED = 5000
_SHORTCUT = re.compile(r"^/[\w-]{1,40}$")  # \w: letters of any script ("/hoàntiền")
_VARIABLE = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_.]*)\s*\}\}")
VARIABLES = ("customer.name", "customer.first_name", "agent.name", "conversation.id")


@dataclass(slots=True)
class Canned:
    id: str
    shortcut: str
    title: str
    text: str
    team: str  # "" = every team
    created_by: str
    created_ts_ms: int
    updated_ts_ms: int

    def to_api(self) -> dict[str, Any]:
        return {"id": self.id, "shortcut": self.shortcut, "title": self.title,
                "text": self.text, "team": self.team or None, "created_by": self.created_by,
                "created_ts": self.created_ts_ms, "updated_ts": self.updated_ts_ms}


def _from_hash(cid: str, h: dict[bytes, bytes]) -> Canned:
    s = {k.decode(): v.decode() for k, v in h.items()}
    return Canned(cid, s["shortcut"], s.get("title", ""), s.get("text", ""), s.get("team", ""),
                  s.get("by", ""), int(s.get("created", 0)), int(s.get("updated", 0)))


def _fold(s: str) -> str:
    """Case- and accent-blind form for search: "Hoàn tiền" and "hoan tien" meet."""
    s = unicodedata.normalize("NFD", s.casefold().replace("đ", "d"))
    return "".join(c for c in s if not unicodedata.combining(c))


def check_shortcut(shortcut: str) -> str:
    s = shortcut.strip().lower()
    if not s.startswith("/"):
        s = "/" + s
    if not _SHORTCUT.match(s):
        raise BadRequest("a shortcut is '/' and 1-40 letters, digits, '_' or '-' "
                         "(e.g. /hoantien)").because("canned_shortcut")
    return s


def _shortcut_field(team: str, shortcut: str) -> str:
    return f"{team or '*'}|{shortcut}"


def visible(principal: Principal, c: Canned) -> bool:
    return principal.is_admin or not c.team or c.team in principal.teams


def _check_manage(hub: Hub, principal: Principal, team: str) -> None:
    """Supervisor+; a supervisor manages global ones and their own teams' (admins all)."""
    access.require(principal, "supervisor")
    if team and team not in {t.id for t in hub.config.hub.teams}:
        raise BadRequest(f"no team {team!r} (teams are configured in {hub.config.path})")
    if team and not principal.is_admin and team not in principal.teams:
        raise NotFound(f"no team {team!r} among yours")


def get(hub: Hub, principal: Principal, canned_id: str) -> Canned:
    """A canned reply the principal may use (NotFound otherwise)."""
    h = hub.redis.hgetall(hub.keys.canned(canned_id)) if canned_id.isdigit() else {}
    if not h:
        raise NotFound(f"no canned reply {canned_id}")
    c = _from_hash(canned_id, h)
    if not visible(principal, c):
        raise NotFound(f"no canned reply {canned_id}")
    return c


def search(hub: Hub, principal: Principal, q: str | None, cursor: str | None,
           limit: int) -> store.Page:
    """The canned replies the principal sees, oldest first, matching ``q`` (shortcut, title or
    text; case- and accent-blind). ``cursor``: the previous page's ``next_cursor``."""
    k = hub.keys
    after = int(cursor) if cursor and cursor.isdigit() else 0
    if cursor and not cursor.isdigit():
        raise BadRequest(f"cursor {cursor!r} is not one this API gave out")
    ids = [i.decode() for i in hub.redis.zrangebyscore(k.canned_index(), f"({after}", "+inf",
                                                       start=0, num=MAX_CANNED)]
    pipe = hub.redis.pipeline(transaction=False)
    for i in ids:
        pipe.hgetall(k.canned(i))
    needle = _fold(q.strip()) if q and q.strip() else ""
    out: list[Canned] = []
    for i, h in zip(ids, pipe.execute(), strict=True):
        if not h:
            continue
        c = _from_hash(i, h)
        if not visible(principal, c):
            continue
        if needle and not any(needle in _fold(v) for v in (c.shortcut, c.title, c.text)):
            continue
        out.append(c)
        if len(out) > limit:
            break
    nxt = out[limit - 1].id if len(out) > limit else None
    return store.Page(out[:limit], nxt)


def create(hub: Hub, principal: Principal, shortcut: str, text: str, title: str = "",
           team: str | None = None) -> Canned:
    team = team or ""
    _check_manage(hub, principal, team)
    shortcut = check_shortcut(shortcut)
    if not text.strip():
        raise BadRequest("a canned reply needs text").because("canned_text")
    k, now = hub.keys, now_ms()
    cid = str(hub.redis.incr(k.seq("canned")))
    c = Canned(cid, shortcut, title.strip(), text, team, principal.name, now, now)
    field = _shortcut_field(team, shortcut)

    # the shortcut and the reply together (WATCH): a crash between them would keep the
    # shortcut taken by a reply that does not exist, with no way to free it
    def write(pipe) -> None:
        if pipe.hexists(k.canned_shortcuts(), field):
            raise Conflict(f"the shortcut {shortcut} is taken"
                           + (f" in team {team}" if team else " (global)")).because(
                               "canned_taken", shortcut=shortcut)
        pipe.multi()
        pipe.hset(k.canned_shortcuts(), field, cid)
        pipe.hset(k.canned(cid), mapping={"shortcut": shortcut, "title": c.title, "text": text,
                                          "team": team, "by": principal.name, "created": now,
                                          "updated": now})
        pipe.zadd(k.canned_index(), {cid: int(cid)})
        audit.record(hub, principal.name, "canned.created", cid,
                     {"shortcut": shortcut, "team": team or None}, pipe)

    hub.redis.transaction(write, k.canned_shortcuts())
    return c


def update(hub: Hub, principal: Principal, canned_id: str, changes: dict[str, Any]) -> Canned:
    """Change shortcut, title, text or team (managing rights on the old and the new team)."""
    c = get(hub, principal, canned_id)
    _check_manage(hub, principal, c.team)
    k = hub.keys
    fields: dict[str, Any] = {}
    if changes.get("title") is not None:
        fields["title"] = c.title = changes["title"].strip()
    if changes.get("text") is not None:
        if not changes["text"].strip():
            raise BadRequest("a canned reply needs text").because("canned_text")
        fields["text"] = c.text = changes["text"]
    new_team = c.team if "team" not in changes else (changes["team"] or "")
    new_short = (check_shortcut(changes["shortcut"]) if changes.get("shortcut") is not None
                 else c.shortcut)
    if new_team != c.team:
        _check_manage(hub, principal, new_team)
    old_field, new_field = (_shortcut_field(c.team, c.shortcut),
                            _shortcut_field(new_team, new_short))
    if new_field != old_field:
        fields.update(shortcut=new_short, team=new_team)
    if not fields:
        raise BadRequest("nothing to change")
    ck = k.canned(canned_id)

    # WATCHed: a concurrent delete (or change of shortcut) must not be undone by a half
    # reply written back, nor leave a shortcut taken by nothing
    def write(pipe) -> None:
        if pipe.hmget(ck, ["shortcut", "team"]) != [c.shortcut.encode(), c.team.encode()]:
            raise Conflict(f"canned reply {canned_id} changed or was deleted meanwhile; "
                           "reload and retry")
        if new_field != old_field and pipe.hexists(k.canned_shortcuts(), new_field):
            raise Conflict(f"the shortcut {new_short} is taken"
                           + (f" in team {new_team}" if new_team else " (global)")).because(
                               "canned_taken", shortcut=new_short)
        pipe.multi()
        pipe.hset(ck, mapping=fields)
        if new_field != old_field:
            pipe.hset(k.canned_shortcuts(), new_field, canned_id)
            pipe.hdel(k.canned_shortcuts(), old_field)
        audit.record(hub, principal.name, "canned.updated", canned_id,
                     {"fields": sorted(set(fields) - {"updated"})}, pipe)

    fields["updated"] = now_ms()
    hub.redis.transaction(write, ck, k.canned_shortcuts())
    c.shortcut, c.team, c.updated_ts_ms = new_short, new_team, fields["updated"]
    return c


def delete(hub: Hub, principal: Principal, canned_id: str) -> Canned:
    c = get(hub, principal, canned_id)
    _check_manage(hub, principal, c.team)
    k = hub.keys
    pipe = hub.redis.pipeline(transaction=True)
    pipe.delete(k.canned(canned_id))
    pipe.zrem(k.canned_index(), canned_id)
    pipe.hdel(k.canned_shortcuts(), _shortcut_field(c.team, c.shortcut))
    audit.record(hub, principal.name, "canned.deleted", canned_id,
                 {"shortcut": c.shortcut, "team": c.team or None}, pipe)
    pipe.execute()
    return c


def fill(template: str, values: dict[str, str | None]) -> str:
    """``{{variable}}`` → its value, in one pass over the template only. Unknown variables and
    those without a value are left as written."""
    def one(m: re.Match) -> str:
        v = values.get(m.group(1))
        return m.group(0) if v is None else v
    return _VARIABLE.sub(one, template)


def render(hub: Hub, principal: Principal, conv_id: str, canned_id: str) -> str:
    """A canned reply's text for one conversation, variables filled in."""
    conv = access.conversation(hub, principal, conv_id)
    c = get(hub, principal, canned_id)
    customer = store.get_customer(hub, conv.customer_id)
    name = (customer.name or "").strip() or None
    user = users.find(hub, principal.name)
    # the language the customer writes in (the classifier's lang: tag), for the name's order
    lang = next((t[5:] for t in conv.tags if t.startswith("lang:")), None)
    return fill(c.text, {
        "customer.name": name,
        # the given name, where their language puts it: "Nguyễn Văn An" -> "An", "王小明" -> "小明"
        "customer.first_name": given_name(name, lang),
        "agent.name": (user.display_name if user and user.display_name else principal.name),
        "conversation.id": conv.id,
    })
