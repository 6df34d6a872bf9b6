"""Agents' replies: create once per idempotency key, send once, follow the receipt.

``create_reply`` runs in the API request: it checks the channel's window, stores the message
as *queued* (atomically with its idempotency key) and enqueues one send job. ``deliver`` is the
job: it never sends a message that already went out, holds a per-message lock released only by
its owner, waits for the platform's rate limits, and retries what the platform says is
retryable (honouring ``retry_after``).
"""

from __future__ import annotations

import hashlib
import logging
import secrets
import time
from dataclasses import dataclass
from datetime import timedelta

import orjson
from rq import Queue

from tongdai.adapters.base import OutboundMessage
from tongdai.core.clock import now_ms
from tongdai.core.errors import DeliveryError, WindowClosed
from tongdai.core.hub import Hub
from tongdai.core.keys import OUTBOUND_QUEUE
from tongdai.core.models import Attachment, AuthorKind, DeliveryStatus, Direction, Message
from tongdai.core.pipeline import mail, store

log = logging.getLogger(__name__)
SEND_JOB = "tongdai.worker.jobs.send"
IDEMPOTENCY_TTL_S = 86400
MAX_ATTEMPTS = 6
BACKOFF_S = (1, 2, 5, 15, 60, 300)
MAX_INLINE_WAIT_S = 5.0  # longer waits go back to the queue instead of holding a worker
LOCK_MS = 120_000


@dataclass(slots=True)
class ChannelState:
    """Whether a customer can be reached on one of their channel identities now."""

    channel_id: str
    external_user_id: str
    address: str  # as stored (encrypted on channels whose addresses are personal data)
    last_inbound_ts_ms: int | None
    open: bool
    reason: str
    shown_address: str = ""

    def to_api(self) -> dict:
        return {"channel_id": self.channel_id, "address": self.shown_address or self.address,
                "last_inbound_ts": self.last_inbound_ts_ms, "reachable": self.open,
                "reason": self.reason}


def channel_states(hub: Hub, customer_id: str, author: AuthorKind = AuthorKind.AGENT,
                   now: int | None = None) -> list[ChannelState]:
    """Every identity of the customer with the platform's window verdict: reachable ones
    first, then by the customer's latest message on each."""
    now = now or now_ms()
    pipe = hub.redis.pipeline(transaction=False)
    pipe.hgetall(hub.keys.customer_identities(customer_id))
    pipe.hgetall(hub.keys.customer_last_inbound(customer_id))
    pipe.hgetall(hub.keys.customer(customer_id))
    idents, last_in, cust = pipe.execute()
    out = []
    for key, address in idents.items():
        channel, _, user = key.decode().partition("|")
        last = int(last_in[key]) if key in last_in else None
        adapter = hub.adapters.get(channel)
        if adapter is None:
            state_open, reason = False, "this channel is no longer configured"
        elif f"blocked:{channel}".encode() in cust:
            state_open, reason = False, "the customer blocked this channel"
        else:
            w = adapter.window(last, now, author)
            state_open, reason = w.open, w.reason
        stored = address.decode()
        out.append(ChannelState(channel, user, stored, last, state_open, reason,
                                store.reveal_address(hub, stored)))
    out.sort(key=lambda c: (c.open, c.last_inbound_ts_ms or 0), reverse=True)
    return out


def create_reply(hub: Hub, conv_id: str, text: str | None, author_id: str, idempotency_key: str,
                 scope: str, attachments: list[Attachment] | None = None,
                 channel_id: str | None = None,
                 author_kind: AuthorKind = AuthorKind.AGENT) -> tuple[Message, bool]:
    """Store an agent's reply and enqueue its send. Returns (message, created).

    Without ``channel_id`` the reply goes out on the conversation's channel while its window
    is open, else on the customer's most recently used reachable channel. Refused before
    anything is stored or sent when the chosen channel's window is closed or the customer
    blocked it; the error names the customer's channels that are reachable now.
    """
    conv = store.get_conversation(hub, conv_id)
    states = channel_states(hub, conv.customer_id, author_kind)
    if channel_id is None:
        # The channel they last wrote on while it is open, else the most recent reachable one.
        channel_id = conv.channel_id
        if not any(c.channel_id == channel_id and c.open for c in states):
            channel_id = next((c.channel_id for c in states if c.open), channel_id)
    hub.adapter(channel_id)  # NotFound for an unknown channel
    # On that channel, the account that opened this conversation when it can be reached (a
    # merged customer may have two mailboxes or two Zalo accounts): the reply joins the thread.
    opener = (hub.redis.hget(hub.keys.conversation(conv_id), "identity") or b"").decode()
    mine = sorted((c for c in states if c.channel_id == channel_id),
                  key=lambda c: (not c.open, f"{c.channel_id}|{c.external_user_id}" != opener))
    if not mine:
        raise WindowClosed(f"the customer has no identity on {channel_id}",
                           reachable=[c.channel_id for c in states if c.open])
    state = mine[0]
    if not state.open:
        others = [c.channel_id for c in states if c.open and c.channel_id != channel_id]
        hint = (f"; reachable now: {', '.join(others)}" if others
                else "; no other channel of this customer is reachable now")
        raise WindowClosed(f"cannot reply on {channel_id}: {state.reason}{hint}",
                           reachable=others)
    now = now_ms()
    # the customer identity's own key: erasing them makes our replies unreadable too
    subject = hub.subjects.key_for(f"{channel_id}|{state.external_user_id}")
    msg = Message(
        id="", conversation_id=conv_id, direction=Direction.OUT, author_kind=author_kind,
        author_id=author_id, channel_id=channel_id, platform_ts_ms=now, received_ts_ms=now,
        text=store.seal_text(hub, text, subject),
        attachments=store.seal_attachments(hub, attachments or [], subject),
        status=DeliveryStatus.QUEUED,
        address=state.address)
    digest = hashlib.sha256(idempotency_key.encode()).hexdigest()[:32]
    code, mid = hub.scripts.create_outbound(
        keys=[hub.keys.idempotency(scope, digest), hub.keys.messages(conv_id),
              hub.keys.timeline(conv_id), hub.keys.conversation(conv_id)],
        args=[msg.to_blob(), now, now, IDEMPOTENCY_TTL_S, hub.keys.seq("message"), conv_id,
              author_id])
    mid = mid.decode()
    created = int(code) == 1
    if created:
        Queue(OUTBOUND_QUEUE, connection=hub.redis).enqueue(
            SEND_JOB, conv_id, mid, 1, job_id=f"send-{mid}", result_ttl=3600,
            failure_ttl=7 * 86400, description=f"send message {mid}")
    return store.get_message(hub, conv_id, mid), created


def _identity_of(hub: Hub, customer_id: str, channel_id: str, address: str) -> str:
    """The ``channel|user`` identity a reply address belongs to."""
    wanted = store.reveal_address(hub, address)
    for key, addr in hub.redis.hgetall(hub.keys.customer_identities(customer_id)).items():
        k = key.decode()
        if k.startswith(channel_id + "|") and store.reveal_address(hub, addr.decode()) == wanted:
            return k
    return f"{channel_id}|{address}"


def _patch(hub: Hub, conv_id: str, mid: str, op: str, value: str, extra: str = "") -> None:
    hub.scripts.patch_message(args=["", f"{conv_id}:{mid}", "", now_ms(), op, value, extra])


def _rate_wait_ms(hub: Hub, channel_id: str, address: str) -> int:
    limits = hub.adapter(channel_id).facts().rate_limits
    if not limits:
        return 0
    keys, intervals = [], []
    for lim in limits:
        scope = f"{channel_id}:{address}" if lim.scope == "address" else channel_id
        keys.append(hub.keys.rate(scope))
        intervals.append(int(lim.per_seconds * 1000 / lim.count))
    return int(hub.scripts.rate_slot(keys=keys, args=[now_ms(), *intervals]))


def _retry_later(hub: Hub, conv_id: str, mid: str, attempt: int, delay_s: float) -> None:
    Queue(OUTBOUND_QUEUE, connection=hub.redis).enqueue_in(
        timedelta(seconds=delay_s), SEND_JOB, conv_id, mid, attempt,
        job_id=f"send-{mid}-{attempt}", result_ttl=3600, failure_ttl=7 * 86400)


def _send(adapter, out: OutboundMessage):
    """``adapter.send``; an exception that is not a DeliveryError (an adapter bug, a message
    the platform library cannot express) fails the message with a reason an agent sees,
    instead of leaving it queued forever."""
    try:
        return adapter.send(out)
    except DeliveryError:
        raise
    except Exception as exc:
        log.exception("the %s adapter failed to send message %s", adapter.name,
                      out.idempotency_key)
        raise DeliveryError(f"the {adapter.name} adapter could not send it "
                            f"({type(exc).__name__}); see the sender's log",
                            retryable=False, code="adapter_error") from None


def deliver(hub: Hub, conv_id: str, mid: str, attempt: int = 1) -> str:
    """Send one queued message. Returns what happened (for the job's result and logs)."""
    lock_key, owner = hub.keys.send_lock(mid), secrets.token_hex(8)
    if not hub.redis.set(lock_key, owner, nx=True, px=LOCK_MS):
        return "another worker is sending it"
    try:
        while True:
            msg = store.get_message(hub, conv_id, mid)
            if msg.direction != Direction.OUT:  # a private note or system line: never sent
                return f"not sent: a {msg.direction.value} {msg.kind}"
            if msg.status != DeliveryStatus.QUEUED:
                return f"already {msg.status.value}"
            adapter = hub.adapter(msg.channel_id)
            conv = store.get_conversation(hub, conv_id)
            address = msg.address or conv.address
            identity = _identity_of(hub, conv.customer_id, msg.channel_id, address)
            last_in = hub.redis.hget(hub.keys.customer_last_inbound(conv.customer_id), identity)
            # Rate keys name the chat; on channels whose addresses are personal data, by index.
            rate_scope = (identity.partition("|")[2] if adapter.user_ids_are_personal
                          else address)
            wait_ms = _rate_wait_ms(hub, msg.channel_id, rate_scope)
            if wait_ms > MAX_INLINE_WAIT_S * 1000:
                _retry_later(hub, conv_id, mid, attempt, wait_ms / 1000)
                return "rate limited: rescheduled"
            if wait_ms > 0:
                time.sleep(wait_ms / 1000)
            out = OutboundMessage(
                address=store.reveal_address(hub, address), text=msg.text,
                author_kind=msg.author_kind, idempotency_key=mid, attachments=msg.attachments,
                reply_to_external_id=msg.reply_to,
                last_inbound_ts_ms=int(last_in) if last_in else None, conversation_id=conv_id)
            if adapter.threads_by_reference:
                ctx = mail.thread_context(hub, conv_id, msg.channel_id)
                out.subject, out.references = ctx["subject"], ctx["references"]
                out.in_reply_to, out.reply_token = ctx["in_reply_to"], ctx["reply_token"]
            try:
                receipt = _send(adapter, out)
            except DeliveryError as exc:
                if not exc.retryable or attempt >= MAX_ATTEMPTS:
                    _patch(hub, conv_id, mid, "status", "failed", str(exc))
                    if exc.code == "blocked":  # later replies are refused before sending
                        hub.redis.hset(hub.keys.customer(conv.customer_id),
                                       f"blocked:{msg.channel_id}", now_ms())
                    log.warning("message %s failed on %s: %s", mid, msg.channel_id, exc.code)
                    return f"failed: {exc}"
                delay = exc.retry_after if exc.retry_after is not None else BACKOFF_S[attempt - 1]
                attempt += 1
                # Still queued, but agents see why it has not gone out yet.
                _patch(hub, conv_id, mid, "set", orjson.dumps(
                    {"sr": f"retry {attempt} of {MAX_ATTEMPTS} in {delay:g}s: {exc}"}).decode())
                log.info("message %s: retryable error (%s), retry %d in %.1fs", mid, exc.code,
                         attempt, delay)
                if delay > MAX_INLINE_WAIT_S:
                    _retry_later(hub, conv_id, mid, attempt, delay)
                    return f"retry {attempt} in {delay}s"
                time.sleep(delay)
                continue
            _patch(hub, conv_id, mid, "set", orjson.dumps(
                {"s": DeliveryStatus.SENT.value, "e": receipt.external_id, "sr": None}).decode())
            keys = adapter.sent_dedupe_keys(out, receipt)
            if keys:  # the platform's echo and receipts of this send find it, not a copy
                hub.redis.hset(hub.keys.dedupe(msg.channel_id),
                               mapping={k: f"{conv_id}:{mid}" for k in keys})
            return "sent"
    finally:
        hub.scripts.release_lock(keys=[lock_key], args=[owner])
