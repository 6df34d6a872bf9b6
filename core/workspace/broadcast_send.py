"""Sending a broadcast: resumable, nobody twice; progress and the report.

The first ``send`` freezes the recipients (``td:bc:{id}:list``, one MULTI with the total), so a
resumed run works through the same customers. Each customer's state sits in
``td:bc:{id}:rcpt`` (customer → JSON): ``pending`` is written before the message is created,
then ``queued`` (with the message), ``skipped`` (with the reason) or ``failed``. The message is
an ordinary reply made by ``outbound.create_reply`` with the idempotency key
``bc:<broadcast>:<customer>``: a run that died between creating it and recording it finds the
same message again on resume instead of making a second one, and the send itself goes through
the senders like every reply — the channel's rate limits, retries, the window checked again at
the call. It lands in the customer's conversation, so their answer lands there too.

One run at a time per broadcast (``td:bc:{id}:lock``, renewed while it runs; a killed run's
lock lapses after ``LOCK_MS``). ``report`` reads each queued message's delivery status: sent,
still queued, failed (why) or uncertain.
"""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Callable
from typing import Any

import orjson

from tongdai.core.clock import now_ms
from tongdai.core.errors import Conflict, NotFound, WindowClosed
from tongdai.core.hub import Hub
from tongdai.core.models import AuthorKind, Message
from tongdai.core.pipeline import feed, outbound
from tongdai.core.workspace import audit
from tongdai.core.workspace.broadcast import _load, as_principal, recipients
from tongdai.core.workspace.broadcast_plan import plan

log = logging.getLogger(__name__)
LOCK_MS = 60_000
SCOPE = "broadcast"
# A pending entry older than this has outlived create_reply's idempotency key: resending could
# make a second message, so it is reported uncertain instead.
PENDING_LIMIT_MS = (outbound.IDEMPOTENCY_TTL_S - 3600) * 1000
# When the customer last got a broadcast (their "stop" counts as an opt-out for this long).
LAST_FIELD = "bc_last"
# Messages are made no faster than the channel sends them: while its rate-limit slots are
# reserved more than this far ahead, the run waits (the CLI) or stops until the next tick (the
# scheduler), so an agent's reply on that channel never queues behind the whole broadcast.
HEADROOM_MS = 1000
TICK_BOX_S = 0.8  # the scheduler's tick works on broadcasts this long at most


class _Paused(Exception):
    """The channel's slots are reserved far enough ahead: go on at the next tick."""


def idempotency_key(bid: str, customer_id: str) -> str:
    return f"bc:{bid}:{customer_id}"


def freeze(hub: Hub, bid: str) -> list[tuple[str, str]]:
    """The recipients, resolved once and kept: a resumed run sends to the same customers."""
    k = hub.keys.broadcast(bid, "list")
    if not hub.redis.exists(k):
        pairs = recipients(hub, as_principal(hub, bid), _load(hub, bid)[0].segment)
        pipe = hub.redis.pipeline(transaction=True)
        pipe.delete(k)
        if pairs:
            pipe.rpush(k, *[f"{c}:{v}" for c, v in pairs])
        pipe.hset(hub.keys.broadcast(bid), mapping={"total": len(pairs)})
        pipe.execute()
    return [tuple(e.decode().split(":", 1)) for e in hub.redis.lrange(k, 0, -1)]  # type: ignore


def _record(hub: Hub, bid: str, customer_id: str, state: dict[str, Any]) -> None:
    hub.redis.hset(hub.keys.broadcast(bid, "rcpt"), customer_id, orjson.dumps(state))


def _ahead_ms(hub: Hub, channel: str, now: int) -> int:
    """How far ahead the channel's send slots are reserved (ms; <= 0: free now)."""
    adapter = hub.adapters.get(channel)
    if adapter is None or not any(lim.scope == "channel" for lim in adapter.facts().rate_limits):
        return 0
    free = hub.redis.get(hub.keys.rate(channel))
    return int(free) - now if free else 0


def send(hub: Hub, bid: str, progress: Callable[[int, int], None] | None = None,
         wait: bool = True, time_box_s: float | None = None) -> dict:
    """Send (or resume sending) broadcast ``bid``; ``progress(done, total)`` after each
    customer. ``wait``: sleep while the channel is busy (the CLI), else stop there and leave
    the rest to the next tick; ``time_box_s``: stop after so long (the tick). Returns the
    counts of this run and the broadcast's state."""
    b, _ = _load(hub, bid)
    if b.state == "done":
        return {"state": "done", "sent_now": 0}
    lock, owner = hub.keys.broadcast(bid, "lock"), secrets.token_hex(8)
    if not hub.redis.set(lock, owner, nx=True, px=LOCK_MS):
        raise Conflict(f"broadcast {bid} is being sent by another process; its progress is "
                       f"in `tongdai broadcast status {bid}`").because("bc_running")
    try:
        now = now_ms()
        hub.redis.hset(hub.keys.broadcast(bid), mapping={"state": "sending"})
        hub.redis.hsetnx(hub.keys.broadcast(bid), "started", now)
        pairs = freeze(hub, bid)
        done = {k.decode(): orjson.loads(v) for k, v in
                hub.redis.hgetall(hub.keys.broadcast(bid, "rcpt")).items()}
        finished = sum(1 for s in done.values() if s["s"] != "pending")
        made = 0
        deadline = time.monotonic() + time_box_s if time_box_s is not None else None
        if progress:
            progress(finished, len(pairs))
        for customer_id, conv_id in pairs:
            state = done.get(customer_id)
            if state is not None and state["s"] != "pending":
                continue
            if deadline is not None and time.monotonic() >= deadline:
                return {"state": "sending", "sent_now": made, "total": len(pairs)}
            hub.redis.pexpire(lock, LOCK_MS)
            try:
                made += _one(hub, b, customer_id, conv_id, state, wait)
            except _Paused:
                return {"state": "sending", "sent_now": made, "total": len(pairs)}
            finished += 1
            if progress:
                progress(finished, len(pairs))
        hub.redis.hset(hub.keys.broadcast(bid), mapping={"state": "done",
                                                         "finished": now_ms()})
        audit.record(hub, b.created_by, "broadcast.sent", bid, {"messages": made})
        return {"state": "done", "sent_now": made, "total": len(pairs)}
    except BaseException:
        hub.redis.hset(hub.keys.broadcast(bid), "state", "stopped")
        raise
    finally:
        hub.scripts.release_lock(keys=[lock], args=[owner])


def _one(hub: Hub, b, customer_id: str, conv_id: str, before: dict | None,
         wait: bool = True) -> int:
    """One customer: skipped (why), or their message made and queued. 1 when a message was
    made or found (idempotent), else 0."""
    now = now_ms()
    if before is not None and now - before.get("t", now) > PENDING_LIMIT_MS:
        _record(hub, b.id, customer_id, {"s": "failed", "r": "uncertain", "t": now,
                                         "ch": before.get("ch", "")})
        return 0
    p = plan(hub, b, customer_id, conv_id, now)
    if p.skip:
        _record(hub, b.id, customer_id, {"s": "skipped", "r": p.skip, "d": p.detail,
                                         "ch": p.channel, "t": now})
        return 0
    ahead = _ahead_ms(hub, p.channel, now)
    if ahead > HEADROOM_MS:
        if not wait:
            raise _Paused
        time.sleep((ahead - HEADROOM_MS) / 1000)
    t0 = before["t"] if before else now
    _record(hub, b.id, customer_id, {"s": "pending", "ch": p.channel, "c": conv_id, "t": t0})
    try:
        msg, _created = outbound.create_reply(
            hub, conv_id, p.text, f"broadcast:{b.id}", idempotency_key(b.id, customer_id),
            SCOPE, channel_id=p.channel, author_kind=AuthorKind.BOT)
    except WindowClosed as exc:  # closed between the plan and now
        _record(hub, b.id, customer_id, {"s": "skipped",
                                         "r": exc.params.get("why") or "window_closed",
                                         "d": str(exc), "ch": p.channel, "t": now})
        return 0
    except NotFound as exc:
        _record(hub, b.id, customer_id, {"s": "skipped", "r": "not_found", "d": str(exc),
                                         "ch": p.channel, "t": now})
        return 0
    hub.redis.hset(hub.keys.customer(customer_id), LAST_FIELD, now)
    _record(hub, b.id, customer_id, {"s": "queued", "ch": p.channel, "c": conv_id,
                                     "m": msg.id, "t": t0})
    return 1


def start(hub: Hub, bid: str) -> None:
    """Have the scheduler send it (the API's and console's way; the CLI sends in place): the
    ``broadcasts`` tick goes on with every broadcast in state ``sending``. Starting a stopped
    one again resumes it."""
    b, _ = _load(hub, bid)
    if b.state == "done":
        raise Conflict(f"broadcast {bid} was sent").because("bc_done")
    if hub.redis.exists(hub.keys.broadcast(bid, "lock")):
        raise Conflict(f"broadcast {bid} is being sent").because("bc_running")
    hub.redis.hset(hub.keys.broadcast(bid), "state", "sending")


@feed.tick("broadcasts", 1.0)
def tick(hub: Hub) -> int:
    """Go on with the broadcasts being sent (``TICK_BOX_S`` at most, paced by their
    channels); a run elsewhere (the CLI, another scheduler) holds the lock and is left alone.
    Returns the messages made."""
    ids = [i.decode() for i in hub.redis.zrevrange(hub.keys.broadcast("index"), 0, 199)]
    pipe = hub.redis.pipeline(transaction=False)
    for bid in ids:
        pipe.hget(hub.keys.broadcast(bid), "state")
        pipe.exists(hub.keys.broadcast(bid, "lock"))
    found = pipe.execute()
    deadline, made = time.monotonic() + TICK_BOX_S, 0
    for n, bid in enumerate(ids):
        if found[2 * n] != b"sending" or found[2 * n + 1]:
            continue
        left = deadline - time.monotonic()
        if left <= 0:
            break
        try:
            made += send(hub, bid, wait=False, time_box_s=left).get("sent_now", 0)
        except Conflict:
            continue
        except Exception:  # marked stopped (Resume in the console); the others go on
            log.exception("broadcast %s stopped", bid)
    return made


def progress(hub: Hub, bid: str) -> dict[str, Any]:
    """How far a send is: recipients frozen (``total``), handled, queued, skipped, and
    whether a run holds it now (``running``)."""
    k = hub.keys.broadcast(bid, "rcpt")
    counts = {"queued": 0, "skipped": 0, "failed": 0, "pending": 0}
    for v in hub.redis.hvals(k):
        s = orjson.loads(v)["s"]
        counts[s] = counts.get(s, 0) + 1
    total = hub.redis.hget(hub.keys.broadcast(bid), "total")
    handled = counts["queued"] + counts["skipped"] + counts["failed"]
    return {"total": int(total) if total is not None else None, "handled": handled,
            "running": bool(hub.redis.exists(hub.keys.broadcast(bid, "lock"))), **counts}


def report(hub: Hub, bid: str, limit: int = 200) -> dict[str, Any]:
    """Sent / still queued / failed (why) / skipped (why), in total and per channel, each
    message's delivery status read now; and the first ``limit`` customers not reached."""
    rows = {k.decode(): orjson.loads(v) for k, v in
            hub.redis.hgetall(hub.keys.broadcast(bid, "rcpt")).items()}
    queued = [(c, r) for c, r in rows.items() if r["s"] == "queued"]
    pipe = hub.redis.pipeline(transaction=False)
    for _c, r in queued:
        pipe.hget(hub.keys.messages(r["c"]), r["m"])
    status: dict[str, tuple[str, str]] = {}
    for (c, r), blob in zip(queued, pipe.execute(), strict=True):
        if blob is None:
            status[c] = ("failed", "message_gone")
            continue
        m = Message.from_blob(r["m"], r["c"], blob)
        status[c] = (m.status.value, m.status_reason or "")
    totals = {"sent": 0, "queued": 0, "failed": 0, "uncertain": 0, "skipped": 0}
    channels: dict[str, dict[str, Any]] = {}
    reasons: dict[str, dict[str, int]] = {"skipped": {}, "failed": {}}
    not_reached = []
    for c, r in sorted(rows.items(), key=lambda x: int(x[0]) if x[0].isdigit() else 0):
        if r["s"] == "queued":
            outcome, why = status[c]
            outcome = {"delivered": "sent", "read": "sent", "delayed": "queued"}.get(outcome, outcome)
        elif r["s"] == "pending":
            outcome, why = "queued", "not recorded yet"
        else:
            outcome, why = r["s"], r.get("r", "")
        outcome = outcome if outcome in totals else "failed"
        totals[outcome] += 1
        ch = channels.setdefault(r.get("ch") or "-", {k: 0 for k in totals})
        ch[outcome] += 1
        if outcome in ("skipped", "failed", "uncertain"):
            bucket = reasons["skipped" if outcome == "skipped" else "failed"]
            code = why if outcome == "skipped" else (why.split(":")[0][:80] or outcome)
            bucket[code] = bucket.get(code, 0) + 1
            if len(not_reached) < limit:
                not_reached.append({"customer_id": c, "channel": r.get("ch"),
                                    "outcome": outcome, "reason": why,
                                    "detail": r.get("d", "")})
    return {"totals": totals, "channels": channels, "reasons": reasons,
            "not_reached": not_reached}
