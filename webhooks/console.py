"""The agents' web console: log-in, log-out and the one-page app at ``/console``.

Plain HTML, one CSS file and a few vanilla JS modules from ``webhooks/static`` (no build step,
nothing from a CDN; the Content-Security-Policy allows scripts from this origin only). The page
talks to ``/api/v1`` with the session cookie and the session's CSRF token in ``X-CSRF-Token``.

Log-in is a form post: argon2 and lock-out live in ``tongdai.core.workspace.users``; the form carries a
double-submit token (a random value in a short-lived cookie and in a hidden field) so another
site cannot log a browser in to an account of its choosing.
"""

from __future__ import annotations

import hmac
import secrets
from typing import Any

from flask import Blueprint, Response, current_app, redirect, render_template, request

from tongdai.core import i18n
from tongdai.core.errors import Unauthorized
from tongdai.core.hub import Hub
from tongdai.core.workspace import access, audit, push, users
from tongdai.webhooks.api import CSRF_HEADER, SESSION_COOKIE, principal_from_session

bp = Blueprint("console", __name__)

LOGIN_CSRF_COOKIE = "td_login_csrf"
LOGIN_CSRF_TTL_S = 1800
CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; connect-src 'self'; "
       "img-src 'self' https: data:; object-src 'none'; base-uri 'none'; "
       "form-action 'self'; frame-ancestors 'none'")


def _hub() -> Hub:
    return current_app.extensions["tongdai"]


def strings(lang: str) -> dict[str, str]:
    """The console's strings in ``lang`` (static/i18n/<lang>.json, shared with the page)."""
    return i18n.strings(lang)


def _language(preferred: str = "") -> str:
    """The page's language: the one asked for (?lang=, the user's setting), else the
    browser's (Accept-Language), else console.default_language."""
    return i18n.choose(preferred, accept=request.headers.get("Accept-Language", ""),
                       default=_hub().config.hub.console.default_language)


def _same(a: str, b: str) -> bool:
    """Constant-time comparison (bytes: compare_digest refuses non-ASCII str)."""
    return hmac.compare_digest(a.encode(), b.encode())


def _secure() -> bool:
    return request.is_secure or _hub().config.hub.console.secure_cookies


@bp.after_request
def _headers(resp: Response) -> Response:
    """Console pages: no inline or foreign scripts, no framing, never cached."""
    if resp.mimetype == "text/html":
        resp.headers["Content-Security-Policy"] = CSP
        resp.headers["X-Frame-Options"] = "DENY"
        resp.headers["Referrer-Policy"] = "same-origin"
        resp.headers["X-Content-Type-Options"] = "nosniff"
        resp.headers["Cache-Control"] = "no-store"
    return resp


def _signed_in():
    """(principal, csrf token) of the request's console session, or None."""
    cookie = request.cookies.get(SESSION_COOKIE)
    return principal_from_session(_hub(), cookie) if cookie else None


@bp.get("/")
def home():
    return redirect("/console" if _signed_in() else "/login", 303)


def _login_page(status: int = 200, error: str = "", name: str = "") -> Response:
    """The log-in form with a fresh double-submit token (cookie + hidden field)."""
    lang = _language(request.args.get("lang", ""))
    token = secrets.token_urlsafe(24)
    resp = Response(render_template("login.html", t=strings(lang), lang=lang, csrf=token,
                                    error=error, name=name, languages=i18n.languages()),
                    status, mimetype="text/html")
    resp.set_cookie(LOGIN_CSRF_COOKIE, token, max_age=LOGIN_CSRF_TTL_S, path="/login",
                    httponly=True, samesite="Lax", secure=_secure())
    return resp


@bp.get("/login")
def login_form():
    if _signed_in():
        return redirect("/console", 303)
    return _login_page()


@bp.post("/login")
def login():
    """Check the double-submit token, then the password (lock-out after repeated failures)."""
    t = strings(_language(request.args.get("lang", "")))
    cookie = request.cookies.get(LOGIN_CSRF_COOKIE, "")
    field = request.form.get("csrf", "")
    if not cookie or not field or not _same(cookie, field):
        return _login_page(400, t["login.expired"])
    name = request.form.get("name", "").strip().lower()
    h = _hub()
    try:
        user = users.authenticate(h, name, request.form.get("password", ""),
                                  request.remote_addr or "")
    except users.LockedOut as exc:
        minutes = str(-(-int(exc.retry_after) // 60))  # whole minutes, rounded up
        resp = _login_page(429, t["login.locked"].replace("{n}", minutes), name)
        resp.headers["Retry-After"] = str(exc.retry_after)
        return resp
    except Unauthorized:
        return _login_page(401, t["login.wrong"], name)
    if request.cookies.get(SESSION_COOKIE):  # a new log-in replaces the old session
        users.end_session(h, request.cookies[SESSION_COOKIE])
    token, _ = users.start_session(h, user.name)
    audit.record(h, user.name, "user.login", user.name, {"via": "console"})
    resp = redirect("/console", 303)
    resp.set_cookie(SESSION_COOKIE, token, path="/", httponly=True, samesite="Lax",
                    secure=_secure())
    resp.delete_cookie(LOGIN_CSRF_COOKIE, path="/login")
    return resp


@bp.post("/logout")
def logout():
    """End the session (the form or script sends its CSRF token) and clear the cookie."""
    cookie = request.cookies.get(SESSION_COOKIE, "")
    found = _signed_in()
    if found is not None:
        p, csrf = found
        sent = request.form.get("csrf") or request.headers.get(CSRF_HEADER, "")
        if not _same(sent, csrf):
            lang = _language(p.language)
            return Response(render_template("message.html", t=strings(lang), lang=lang,
                                            text=strings(lang)["logout.refused"]), 403,
                            mimetype="text/html")
        users.end_session(_hub(), cookie)
        audit.record(_hub(), p.name, "user.logout", p.name, {"via": "console"})
    resp = redirect("/login", 303)
    resp.delete_cookie(SESSION_COOKIE, path="/", httponly=True, samesite="Lax",
                       secure=_secure())
    return resp


def _boot(p: access.Principal, csrf: str) -> dict[str, Any]:
    """What the page needs before its first API call (embedded as JSON, not as a script)."""
    h = _hub()
    user = users.find(h, p.name)
    lang = _language(user.language if user else p.language)
    cfg = h.config.hub
    visible = access.visible_queues(h, p)
    queues = sorted(visible if visible is not None else
                    set(cfg.routing.queues) | {q for t in cfg.teams for q in t.queues})
    return {
        "csrf": csrf, "language": lang, "strings": strings(lang),
        "languages": i18n.languages(),
        "me": {"name": p.name, "role": p.role, "teams": sorted(p.teams),
               "display_name": (user.display_name if user else "") or p.name},
        "queues": queues,
        "teams": [{"id": t.id, "name": t.name or t.id, "queues": t.queues, "tier": t.tier,
                   "escalates_to": [x.team for x in t.escalates_to]} for t in cfg.teams],
        "channels": [c.id for c in cfg.channels],
        # Web Push: the key this browser subscribes with (None: push is off on this hub)
        "push_key": push.public_key(h),
    }


@bp.get("/console")
def console():
    found = _signed_in()
    if found is None:
        resp = redirect("/login", 303)
        if request.cookies.get(SESSION_COOKIE):
            resp.delete_cookie(SESSION_COOKIE, path="/")
        return resp
    p, csrf = found
    boot = _boot(p, csrf)
    return Response(render_template("console.html", t=boot["strings"], lang=boot["language"],
                                    csrf=csrf, boot=boot, me=boot["me"]), mimetype="text/html")


@bp.get("/console/sw.js")
def service_worker():
    """The console's service worker (static/sw.js): shows Web Push notifications and opens
    their conversation. Served here, not under /static, so it may control /console
    (``Service-Worker-Allowed``); revalidated each time, so a new version reaches browsers."""
    resp = current_app.send_static_file("sw.js")
    resp.mimetype = "text/javascript"
    resp.headers["Service-Worker-Allowed"] = "/console"
    resp.headers["Cache-Control"] = "no-cache"
    resp.headers["X-Content-Type-Options"] = "nosniff"
    return resp


def _page(template: str, allowed=None, forbidden: str = "", **extra: Any):
    """A console page for whoever is signed in (else the log-in page); ``allowed(p)`` false →
    403 with the ``forbidden`` string, in the agent's language. ``extra`` goes into the
    page's boot data."""
    found = _signed_in()
    if found is None:
        return redirect("/login", 303)
    p, csrf = found
    boot = _boot(p, csrf)
    t = boot["strings"]
    if allowed is not None and not allowed(p):
        return Response(render_template("message.html", t=t, lang=boot["language"],
                                        text=t[forbidden]), 403, mimetype="text/html")
    boot.update({k: v(p) if callable(v) else v for k, v in extra.items()})
    return Response(render_template(template, t=t, lang=boot["language"], csrf=csrf,
                                    boot=boot, me=boot["me"]), mimetype="text/html")


def _supervisors(p: access.Principal) -> bool:
    return p.at_least("supervisor")


@bp.get("/console/dashboard")
def dashboard():
    """The supervisors' KPI dashboard (charts over GET /api/v1/reports/kpis)."""
    return _page("dashboard.html", _supervisors, "dash.forbidden",
                 timezone=lambda _p: _hub().config.hub.notifications.timezone)


@bp.get("/console/kb")
def knowledge_base():
    """The bot's knowledge base (over /api/v1/kb): everyone signed in reads and tries a
    question; supervisors and admins edit and see the bot's counts."""
    return _page("kb.html", can_edit=_supervisors)


@bp.get("/console/broadcasts")
def broadcasts():
    """Proactive broadcasts (over /api/v1/broadcasts) for supervisors and admins: the list,
    a new one's form — prefilled by ``?tag=&since=&until=&channels=&conversations=`` (a spike
    alert's link) — with its dry-run counts, then its progress and report; 403 for agents."""
    return _page("broadcasts.html", _supervisors, "bc.forbidden")


@bp.get("/console/admin")
def admin_area():
    """The admins' settings (channels, teams and members, users and roles, canned replies,
    routing and SLA) over /api/v1/admin/*, /users, /teams and /canned; 403 for the others."""
    return _page("admin.html", lambda p: p.is_admin, "admin.forbidden", roles=list(users.ROLES))
