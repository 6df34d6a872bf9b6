"""Bulk work: one action over many conversations (the console's selection, an integrator's
batch), each done by the same function as the single-conversation route, with its checks.

An id the caller may not act on is refused alone, with the reason code the single route gives
(``needs_supervisor``, ``not_your_queue``, ``reopen_first``, ``already_taken`` ...; ``not_found``
for one they cannot see, ``already_resolved`` for a resolve with nothing to do); the others go
ahead. The whole request is refused (400) only when the action or its parameters are wrong for
every id alike.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from tongdai.core.errors import BadRequest, Conflict, TongdaiError
from tongdai.core.hub import Hub
from tongdai.core.models import ConversationStatus
from tongdai.core.workspace import access, assignment, labels, workflow
from tongdai.core.workspace.access import Principal

MAX_IDS = 100
ACTIONS = ("assign", "transfer", "resolve", "snooze", "label", "unlabel")
# a refusal without a named case: its kind, by HTTP status
_KIND = {400: "invalid", 403: "forbidden", 404: "not_found", 409: "conflict"}


def _resolve(hub: Hub, p: Principal, conv_id: str, _params: dict[str, Any]) -> None:
    if access.conversation(hub, p, conv_id).status == ConversationStatus.RESOLVED:
        raise Conflict(f"conversation {conv_id} is already resolved").because(
            "already_resolved", id=conv_id)
    workflow.set_status(hub, p, conv_id, ConversationStatus.RESOLVED, via="bulk")


def _label(hub: Hub, p: Principal, conv_id: str, params: dict[str, Any]) -> None:
    labels.add(hub, p, conv_id, params["tag"])


def _unlabel(hub: Hub, p: Principal, conv_id: str, params: dict[str, Any]) -> None:
    labels.remove(hub, p, conv_id, params["tag"])


_DO: dict[str, Callable[[Hub, Principal, str, dict[str, Any]], object]] = {
    "assign": lambda h, p, c, a: assignment.assign(h, p, c, a.get("assignee"), None,
                                                   a.get("why", "")),
    "transfer": lambda h, p, c, a: assignment.assign(h, p, c, None, a["team"], a.get("why", "")),
    "resolve": _resolve,
    "snooze": lambda h, p, c, a: workflow.snooze(h, p, c, int(a["until_ts"])),
    "label": _label,
    "unlabel": _unlabel,
}


def check(hub: Hub, action: str, ids: list[str], params: dict[str, Any]) -> list[str]:
    """The ids once each, in order; BadRequest for what would fail every id alike."""
    if action not in _DO:
        raise BadRequest(f"action must be one of {', '.join(ACTIONS)}")
    ids = list(dict.fromkeys(i.strip() for i in ids if i and i.strip()))
    if not ids:
        raise BadRequest("ids: give at least one conversation id")
    if len(ids) > MAX_IDS:
        raise BadRequest(f"ids: at most {MAX_IDS} conversations per request")
    if action == "assign" and "assignee" not in params:
        raise BadRequest('params.assignee: a user name, or null to hand them back to the queue')
    if action == "transfer":
        team = params.get("team")
        if not team or assignment.find_team(hub, team) is None:
            known = ", ".join(t.id for t in hub.config.hub.teams) or "none configured"
            raise BadRequest(f"params.team: one of the teams ({known})")
    if action == "snooze" and not isinstance(params.get("until_ts"), int):
        raise BadRequest("params.until_ts: milliseconds since the epoch")
    if action in ("label", "unlabel"):
        params["tag"] = labels.clean(params.get("tag") or "")
    return ids


def refusal(e: TongdaiError) -> dict[str, Any]:
    """A refused id's entry: the case named (``reason``, ``params``) and the server's words."""
    return {"ok": False, "status": e.http_status,
            "reason": e.reason or _KIND.get(e.http_status, "error"),
            "params": dict(e.params) if e.reason else {}, "message": str(e)}


def apply(hub: Hub, principal: Principal, action: str, ids: list[str],
          params: dict[str, Any]) -> list[dict[str, Any]]:
    """Do ``action`` to each conversation; one entry per id, in order:
    ``{"id", "ok": true}`` or ``{"id", "ok": false, "status", "reason", "params", "message"}``."""
    params = dict(params)
    ids = check(hub, action, ids, params)
    out = []
    for conv_id in ids:
        try:
            _DO[action](hub, principal, conv_id, params)
        except TongdaiError as e:
            out.append({"id": conv_id, **refusal(e)})
        else:
            out.append({"id": conv_id, "ok": True})
    return out
