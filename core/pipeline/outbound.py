"""Agents' replies: create once per idempotency key, send once, follow the receipt.

``create_reply`` runs in the API request: it checks the channel's window, stores the message
as *queued* (atomically with its idempotency key) and enqueues one send job: on the
``replies`` queue for agents' replies, which nothing else uses, on ``background`` for the
hub's automatic ones. ``deliver`` is the job: it never sends a message that already went out,
holds a per-message lock released only by its owner, and never waits in place: a rate-limit
slot, a retry (``retry_after`` to the second) or a slow channel puts the send in the due set
(``send_schedule``, ``channel_gate``) and frees the sender. A send that got no answer after the
platform had the request is *uncertain*: tried once more, later, and then not again
(docs/decisions.md, "Replies first").
"""

from __future__ import annotations

import hashlib
import json
import logging
import secrets
from dataclasses import dataclass, field

import orjson
from rq import Queue

from tongdai.adapters.base import Adapter, OutboundMessage
from tongdai.core import metrics
from tongdai.core.clock import now_ms
from tongdai.core.errors import BadRequest, DeliveryError, NotFound, WindowClosed
from tongdai.core.hub import Hub
from tongdai.core.keys import SEND_LANES
from tongdai.core.models import Attachment, AuthorKind, DeliveryStatus, Direction, Message
from tongdai.core.pipeline import channel_admin, channel_gate, mail, store
from tongdai.core.pipeline.send_schedule import JOB_TTLS, SEND_JOB, Waiting, schedule

log = logging.getLogger(__name__)
IDEMPOTENCY_TTL_S = 86400
MAX_ATTEMPTS = 6
BACKOFF_S = (1, 2, 5, 15, 60, 300)
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
    # the reason for the console to translate: not_configured, disabled, blocked,
    # cannot_send, never_wrote, window_closed (with ``detail``), or "" when it is open
    reason_code: str = ""
    detail: dict = field(default_factory=dict)

    def to_api(self) -> dict:
        return {"channel_id": self.channel_id, "address": self.shown_address or self.address,
                "last_inbound_ts": self.last_inbound_ts_ms, "reachable": self.open,
                "reason": self.reason, "reason_code": self.reason_code,
                "reason_detail": self.detail}


def channel_states(hub: Hub, customer_id: str, author: AuthorKind = AuthorKind.AGENT,
                   now: int | None = None) -> list[ChannelState]:
    """Every identity of the customer with the platform's window verdict: reachable ones
    first, then by the customer's latest message on each."""
    now = now or now_ms()
    pipe = hub.redis.pipeline(transaction=False)
    pipe.hgetall(hub.keys.customer_identities(customer_id))
    pipe.hgetall(hub.keys.customer_last_inbound(customer_id))
    pipe.hgetall(hub.keys.customer(customer_id))
    pipe.hgetall(hub.keys.channels_disabled())
    return states_from(hub, *pipe.execute(), author, now)


def states_from(hub: Hub, idents: dict, last_in: dict, cust: dict, off: dict,
                author: AuthorKind, now: int, reveal: bool = True) -> list[ChannelState]:
    """``channel_states`` from the customer's identities, last inbound times and hash and the
    disabled channels as read (raw); ``reveal``: the addresses in clear too."""
    out = []
    for key, address in idents.items():
        channel, _, user = key.decode().partition("|")
        last = int(last_in[key]) if key in last_in else None
        adapter = hub.adapters.get(channel)
        detail: dict = {}
        if adapter is None:
            state_open, reason, code = False, "this channel is no longer configured", \
                "not_configured"
        elif channel.encode() in off:  # an admin disabled it (tongdai channels disable)
            state_open, reason, code = False, channel_admin.why_disabled(
                json.loads(off[channel.encode()])), "disabled"
        elif f"blocked:{channel}".encode() in cust:
            state_open, reason, code = False, "the customer blocked this channel", "blocked"
        elif (why := adapter.cannot_send()) is not None:
            state_open, reason, code = False, why, "cannot_send"
        else:
            w = adapter.window(last, now, author)
            state_open, reason, code, detail = w.open, w.reason, w.code, w.detail
        stored = address.decode()
        out.append(ChannelState(channel, user, stored, last, state_open, reason,
                                store.reveal_address(hub, stored) if reveal else "", code,
                                detail))
    out.sort(key=lambda c: (c.open, c.last_inbound_ts_ms or 0), reverse=True)
    return out


def create_reply(hub: Hub, conv_id: str, text: str | None, author_id: str, idempotency_key: str,
                 scope: str, attachments: list[Attachment] | None = None,
                 channel_id: str | None = None,
                 author_kind: AuthorKind = AuthorKind.AGENT,
                 buttons: list[tuple[str, str]] | None = None) -> tuple[Message, bool]:
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
                           reachable=[c.channel_id for c in states if c.open]).because(
            "no_identity", channel=channel_id)
    state = mine[0]
    if not state.open:
        others = [c.channel_id for c in states if c.open and c.channel_id != channel_id]
        hint = (f"; reachable now: {', '.join(others)}" if others
                else "; no other channel of this customer is reachable now")
        raise WindowClosed(f"cannot reply on {channel_id}: {state.reason}{hint}",
                           reachable=others).because(
            "channel_unreachable", channel=channel_id, why=state.reason_code,
            detail=state.detail, reachable=", ".join(others))
    now = now_ms()
    # the customer identity's own key: erasing them makes our replies unreadable too
    subject = hub.subjects.key_for(f"{channel_id}|{state.external_user_id}")
    if attachments and any(a.data is not None for a in attachments):
        attachments = _keep_uploads(hub, channel_id, attachments, subject)
    msg = Message(
        id="", conversation_id=conv_id, direction=Direction.OUT, author_kind=author_kind,
        author_id=author_id, channel_id=channel_id, platform_ts_ms=now, received_ts_ms=now,
        text=store.seal_text(hub, text, subject),
        attachments=store.seal_attachments(hub, attachments or [], subject),
        status=DeliveryStatus.QUEUED,
        address=state.address,
        # the bot's answer buttons ride in the payload: {"buttons": [[payload, title], ...]}
        payload=orjson.dumps({"buttons": buttons}).decode() if buttons else None)
    digest = hashlib.sha256(idempotency_key.encode()).hexdigest()[:32]
    code, mid = hub.scripts.create_outbound(
        keys=[hub.keys.idempotency(scope, digest), hub.keys.messages(conv_id),
              hub.keys.timeline(conv_id), hub.keys.conversation(conv_id)],
        args=[msg.to_blob(), now, now, IDEMPOTENCY_TTL_S, hub.keys.seq("message"), conv_id,
              author_id])
    mid = mid.decode()
    created = int(code) == 1
    if created:
        Queue(SEND_LANES[lane_of(author_kind)], connection=hub.redis).enqueue(
            SEND_JOB, conv_id, mid, 1, job_id=f"send-{mid}", description=f"send message {mid}",
            **JOB_TTLS)
    return store.get_message(hub, conv_id, mid), created


def _keep_uploads(hub: Hub, channel_id: str, attachments: list[Attachment],
                  subject) -> list[Attachment]:
    """Files an agent attached (bytes in hand): refused before anything is stored when the
    channel will not take them (``BadRequest`` naming the reason), else kept encrypted in the
    blob store, the message holding ``blob:<sha256>`` (a retried request stores nothing new:
    the store is content-addressed)."""
    from tongdai.core.pipeline import files

    out = []
    for a in attachments:
        if a.data is None:
            out.append(a)
            continue
        refusal = files.upload_refusal(hub, channel_id, a.kind, a.mime or "", len(a.data))
        if refusal is not None:
            raise BadRequest(f"{a.name or 'the file'} cannot go out on {channel_id}: "
                             f"{refusal.reason}").because(
                f"file_{refusal.code}", channel=channel_id, name=a.name or "",
                **refusal.detail)
        meta = {**a.meta, "sha256": hashlib.sha256(a.data).hexdigest()}
        out.append(Attachment(a.kind, None, hub.blobs.put(a.data, subject), a.name, a.mime,
                              len(a.data), meta))
    return out


def lane_of(author_kind: AuthorKind) -> str:
    """``replies`` for a person's reply, ``background`` for the hub's automatic messages: an
    agent's reply never queues behind a burst of acknowledgements."""
    return "replies" if author_kind == AuthorKind.AGENT else "background"


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


def _set(hub: Hub, conv_id: str, mid: str, **fields: object) -> None:
    """Set blob fields of a message (``s`` status, ``sr`` reason, ``e`` platform id)."""
    _patch(hub, conv_id, mid, "set", orjson.dumps(fields).decode())


def _rate_wait_ms(hub: Hub, channel_id: str, address: str) -> int:
    """Reserve the next send slot under the channel's rate limits; ms until it (0: now)."""
    limits = hub.adapter(channel_id).facts().rate_limits
    if not limits:
        return 0
    keys, intervals = [], []
    for lim in limits:
        scope = f"{channel_id}:{address}" if lim.scope == "address" else channel_id
        keys.append(hub.keys.rate(scope))
        intervals.append(int(lim.per_seconds * 1000 / lim.count))
    return int(hub.scripts.rate_slot(keys=keys, args=[now_ms(), *intervals]))


def _send(adapter: Adapter, out: OutboundMessage):
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


def deliver(hub: Hub, conv_id: str, mid: str, attempt: int = 1, flags: str = "") -> str:
    """Send one queued message (the send job; ``flags``: see ``send_schedule.Waiting``).
    Returns what happened (for the job's result and logs)."""
    lock_key, owner = hub.keys.send_lock(mid), secrets.token_hex(8)
    if not hub.redis.set(lock_key, owner, nx=True, px=LOCK_MS):
        return "another worker is sending it"
    try:
        msg = store.get_message(hub, conv_id, mid)
        if msg.direction != Direction.OUT:  # a private note or system line: never sent
            return f"not sent: a {msg.direction.value} {msg.kind}"
        if msg.status != DeliveryStatus.QUEUED:
            return f"already {msg.status.value}"
        waiting = Waiting(lane_of(msg.author_kind), conv_id, mid, attempt, flags)
        # Parked, holding no sender, while the channel has no room (it is slow, or busy).
        if not channel_gate.enter(hub, msg.channel_id, mid, waiting.lane,
                                  waiting.without_flag("r").member):
            return f"parked: no room on {msg.channel_id}"
        outcome = "none"
        try:
            outcome, result = _attempt(hub, msg, waiting)
            return result
        finally:
            channel_gate.leave(hub, msg.channel_id, mid, waiting.lane, outcome)
    finally:
        hub.scripts.release_lock(keys=[lock_key], args=[owner])


def _attempt(hub: Hub, msg: Message, waiting: Waiting) -> tuple[str, str]:
    """One call to the platform, unless the rate limits say later. Returns (the channel
    gate's outcome, what happened)."""
    conv_id, mid = msg.conversation_id, msg.id
    adapter = hub.adapter(msg.channel_id)
    if channel_admin.is_disabled(hub, msg.channel_id):  # queued before: held, not sent, not lost
        schedule(hub, waiting, now_ms() + channel_admin.HELD_RETRY_MS)
        _set(hub, conv_id, mid, sr=f"held: {msg.channel_id} is disabled; it goes out once an "
             "admin enables the channel", sw={"code": "held_disabled"})
        return "none", f"held: {msg.channel_id} is disabled"
    conv = store.get_conversation(hub, conv_id)
    address = msg.address or conv.address
    identity = _identity_of(hub, conv.customer_id, msg.channel_id, address)
    last_in = hub.redis.hget(hub.keys.customer_last_inbound(conv.customer_id), identity)
    if "r" not in waiting.flags:  # else its slot, reserved before it waited, is now
        # Rate keys name the chat; on channels whose addresses are personal data, by index.
        scope = identity.partition("|")[2] if adapter.user_ids_are_personal else address
        wait_ms = _rate_wait_ms(hub, msg.channel_id, scope)
        if wait_ms > 0:
            schedule(hub, waiting.with_flag("r"), now_ms() + wait_ms)
            metrics.send(msg.channel_id, "rate_limited")
            return "none", f"rate limited: due in {wait_ms} ms"
    try:  # an agent's upload: the adapter gets the bytes (from the blob store, decrypted)
        for a in msg.attachments:
            if (a.file_id or "").startswith("blob:"):
                a.data = hub.blobs.get(a.file_id)
    except NotFound:
        return "none", _failed(hub, msg, conv.customer_id, adapter, waiting, DeliveryError(
            "the attached file is no longer stored (erased?)", retryable=False,
            code="file_gone"))
    out = OutboundMessage(
        address=store.reveal_address(hub, address), text=msg.text,
        author_kind=msg.author_kind, idempotency_key=mid, attachments=msg.attachments,
        reply_to_external_id=msg.reply_to,
        last_inbound_ts_ms=int(last_in) if last_in else None, conversation_id=conv_id)
    if msg.payload and msg.payload.startswith('{"buttons"'):
        out.buttons = [(b[0], b[1]) for b in orjson.loads(msg.payload)["buttons"]]
    if adapter.threads_by_reference:
        ctx = mail.thread_context(hub, conv_id, msg.channel_id)
        out.subject, out.references = ctx["subject"], ctx["references"]
        out.in_reply_to, out.reply_token = ctx["in_reply_to"], ctx["reply_token"]
    try:
        receipt = _send(adapter, out)
    except DeliveryError as exc:
        return ("slow" if exc.code == "timeout" else "none"), _failed(
            hub, msg, conv.customer_id, adapter, waiting.without_flag("r"), exc)
    # After an unanswered try, the customer may see this twice: the agent is told so.
    again = ("sent on the try after one that got no answer; the customer may see it twice"
             if "u" in waiting.flags else None)
    _set(hub, conv_id, mid, s=DeliveryStatus.SENT.value, e=receipt.external_id, sr=again,
         sw={"code": "sent_after_unanswered"} if again else None)
    keys = adapter.sent_dedupe_keys(out, receipt)
    if keys:  # the platform's echo and receipts of this send find it, not a copy
        hub.redis.hset(hub.keys.dedupe(msg.channel_id),
                       mapping={k: f"{conv_id}:{mid}" for k in keys})
    metrics.send(msg.channel_id, "sent")
    channel_admin.count_send(hub, msg.channel_id, "sent")
    return "ok", "sent"


def _failed(hub: Hub, msg: Message, customer_id: str, adapter: Adapter, waiting: Waiting,
            exc: DeliveryError) -> str:
    """What a failed call leads to: one more try after an unanswered one, a scheduled retry,
    or a final status (``failed``; ``uncertain`` when a try may have arrived)."""
    conv_id, mid, attempt = msg.conversation_id, msg.id, waiting.attempt
    unanswered_before = "u" in waiting.flags
    last_try = attempt >= MAX_ATTEMPTS
    if exc.uncertain and not adapter.facts().idempotent_sends:
        if unanswered_before or last_try:
            twice = ", perhaps twice (an earlier try got no answer either)"
            why = (f"{exc}: it may have arrived{twice if unanswered_before else ''}. "
                   "Not tried again: check with the customer")
            _set(hub, conv_id, mid, s=DeliveryStatus.UNCERTAIN.value, sr=why,
                 sw={"code": "uncertain", "twice": unanswered_before, "detail": str(exc)})
            log.warning("message %s on %s: uncertain, not tried again", mid, msg.channel_id)
            metrics.send(msg.channel_id, "uncertain")
            channel_admin.count_send(hub, msg.channel_id, "uncertain")
            return "uncertain: not tried again"
        delay = hub.config.hub.replies.uncertain_retry
        schedule(hub, Waiting(waiting.lane, conv_id, mid, attempt + 1, waiting.flags + "u"),
                 now_ms() + int(delay * 1000))
        _set(hub, conv_id, mid, sr=(
            f"{exc}: it may have arrived. {adapter.name} has no idempotency key, so one more "
            f"try in {delay:g}s may send it twice; none after that"),
             sw={"code": "uncertain_retry", "delay_s": delay, "detail": str(exc)})
        log.warning("message %s on %s: no answer after sending; one more try in %gs", mid,
                    msg.channel_id, delay)
        metrics.send(msg.channel_id, "retry")
        return f"uncertain: one more try in {delay:g}s"
    if not exc.retryable or last_try:
        if exc.code == "blocked":  # later replies are refused before sending
            hub.redis.hset(hub.keys.customer(customer_id), f"blocked:{msg.channel_id}", now_ms())
        if unanswered_before:  # the earlier, unanswered try may still have arrived
            _set(hub, conv_id, mid, s=DeliveryStatus.UNCERTAIN.value,
                 sr=f"{exc}; an earlier try got no answer and may have arrived",
                 sw={"code": "failed_after_unanswered", "detail": str(exc)})
            metrics.send(msg.channel_id, "uncertain")
            channel_admin.count_send(hub, msg.channel_id, "uncertain")
            return f"uncertain: {exc}"
        _set(hub, conv_id, mid, sw={"code": "failed", "detail": str(exc)})
        _patch(hub, conv_id, mid, "status", "failed", str(exc))
        log.warning("message %s failed on %s: %s", mid, msg.channel_id, exc.code)
        metrics.send(msg.channel_id, "failed")
        channel_admin.count_send(hub, msg.channel_id, "failed")
        return f"failed: {exc}"
    delay = exc.retry_after if exc.retry_after is not None else BACKOFF_S[attempt - 1]
    schedule(hub, Waiting(waiting.lane, conv_id, mid, attempt + 1, waiting.flags),
             now_ms() + int(delay * 1000))
    # Still queued, but agents see why it has not gone out yet.
    _set(hub, conv_id, mid, sr=f"retry {attempt + 1} of {MAX_ATTEMPTS} in {delay:g}s: {exc}",
         sw={"code": "retrying", "attempt": attempt + 1, "max": MAX_ATTEMPTS, "delay_s": delay,
             "detail": str(exc)})
    log.info("message %s: retryable error (%s), retry %d in %gs", mid, exc.code, attempt + 1,
             delay)
    metrics.send(msg.channel_id, "retry")
    return f"retry {attempt + 1} in {delay:g}s"
