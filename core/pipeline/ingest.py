"""The ingest pipeline: raw events → parsed → tagged → routed → stored, a batch at a time.

Parsing and tagging run in Python; every event's state change runs as one Lua script
(``core/lua/ingest.lua`` or ``patch_message.lua``), all of a batch's scripts sent in one
pipeline. Each script is atomic and idempotent, so a worker killed anywhere in a batch leaves
nothing half-done, and the batch's redelivery stores nothing twice.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import redis

from tongdai.adapters.base import Adapter
from tongdai.core import clock, metrics
from tongdai.core.crypto import SubjectKey
from tongdai.core.errors import PayloadError
from tongdai.core.hub import Hub
from tongdai.core.identity import graph as identity
from tongdai.core.models import (
    NOTICE_KINDS,
    TIMELINE_KINDS,
    AuthorKind,
    DeliveryStatus,
    Direction,
    EventKind,
    InboundEvent,
    Message,
    RawEvent,
)
from tongdai.core.pipeline import (
    acknowledgements,
    channel_admin,
    files,
    intercept,
    mail,
    rawlog,
    sla,
    store,
)
from tongdai.core.pipeline.acknowledgements import acknowledge, acknowledge_due  # noqa: F401
from tongdai.core.pipeline.classify import classifier
from tongdai.core.subjects import COMMANDS_PER_NEW_KEY

log = logging.getLogger(__name__)
# acknowledge_due (imported above): the scheduler's sweep calls it as ingest.acknowledge_due
SEP = "\x1f"
RS = "\x1e"

_NOTICE_TEXT = {
    EventKind.FOLLOW: "The customer (re)started the conversation with the bot",
    EventKind.UNFOLLOW: "The customer blocked the bot or left: replies on this channel will fail",
}


@dataclass(slots=True)
class IngestResult:
    stored: int = 0
    duplicates: int = 0
    updated: int = 0
    skipped: int = 0
    dead: int = 0
    locations: list[str] = field(default_factory=list)  # "conv:msg" of stored messages
    # (channel, external user, customer) of new customers the platform gave no name for
    profiles: list[tuple[str, str, str]] = field(default_factory=list)
    # (channel, token) of stored events the platform wants acknowledged
    acks: list[tuple[str, str]] = field(default_factory=list)
    # (channel, conversation) whose automatic acknowledgement the batch made due
    opened: list[tuple[str, str]] = field(default_factory=list)
    # (channel, "conv:msg") of stored messages with files to fetch from the platform
    files: list[tuple[str, str]] = field(default_factory=list)


def _blob(hub: Hub, ev: InboundEvent, channel_id: str, raw: RawEvent, tags: list[str],
          subject: SubjectKey, identity: str) -> bytes:
    notice = ev.kind in NOTICE_KINDS
    text = ev.text
    if ev.kind in _NOTICE_TEXT:  # the same words for every platform, for agents
        text = _NOTICE_TEXT[ev.kind]
    elif notice and not text:
        text = ev.platform_type
    if ev.kind == EventKind.UNSUPPORTED and not text:
        text = f"[{ev.platform_type or 'unknown event'}: not supported yet, kept in the raw log]"
    out = ev.direction == Direction.OUT
    return Message(
        id="", conversation_id="",
        direction=ev.direction,
        author_kind=AuthorKind.SYSTEM if notice else (AuthorKind.AGENT if out else AuthorKind.CUSTOMER),
        channel_id=channel_id,
        platform_ts_ms=ev.platform_ts_ms,
        received_ts_ms=raw.received_ts_ms,
        kind=ev.kind.value,
        text=store.seal_text(hub, text, subject),
        external_id=ev.external_message_id,
        attachments=store.seal_attachments(hub, store.keep_files(hub, ev.attachments, subject),
                                     subject),
        status=DeliveryStatus.SENT if out else DeliveryStatus.RECEIVED,
        tags=tags,
        reply_to=ev.reply_to,
        payload=ev.payload,
        edited_ts_ms=ev.platform_ts_ms if ev.kind == EventKind.EDIT else None,
        subject=store.seal_text(hub, ev.subject, subject, b"subject"),
        identity=None if out else identity,
    ).to_blob()


class _Batch:
    """Builds one pipeline for a batch and remembers what each reply belongs to."""

    def __init__(self, hub: Hub) -> None:
        self.hub = hub
        self.pipe = hub.redis.pipeline(transaction=False)
        self.ops: list[tuple[str, RawEvent, InboundEvent, str]] = []
        self.now = clock.now_ms()
        self.reopen_ms = int(hub.config.hub.conversations.reopen_window * 1000)
        self.subjects: dict[str, tuple] = {}  # identity → its own key (core/subjects.py)
        self.users: dict[tuple[str, str], str] = {}  # (channel, sender) → user id as stored
        self.erasures = hub.subjects.valid_for()
        self.sla = sla.lua_targets(hub.config.hub.sla)  # the script's SLA targets (core/sla.py)
        self.sla_plan = sla.plan(hub)
        self.sla_share = str(hub.config.hub.sla.warning_at)
        self.acks = acknowledgements.plan(hub)

    def user(self, ev: InboundEvent, ch: str) -> str:
        """The sender's user id as stored (a blind index where ids are addresses), worked
        out once per sender and batch."""
        key = (ch, ev.external_user_id)
        if key not in self.users:
            self.users[key] = store.stored_user(self.hub, ch, ev.external_user_id)
        return self.users[key]

    def sender(self, ev: InboundEvent, ch: str) -> str:
        """The sender's identity, "channel|user": what its own key and messages name."""
        return f"{ch}|{self.user(ev, ch)}"

    def subject(self, ev: InboundEvent, ch: str) -> SubjectKey:
        return self.subjects.get(self.sender(ev, ch))

    def prepare(self, items: list[tuple[RawEvent, InboundEvent, str]]) -> None:
        """Fetch (or create) the keys of every sender in the batch: two round trips."""
        hub = self.hub
        before = len(self.pipe)
        self.subjects = hub.subjects.keys_for([
            self.sender(ev, ch) for _, ev, ch in items
            if ev.kind in TIMELINE_KINDS or ev.kind in NOTICE_KINDS or ev.kind == EventKind.EDIT],
            pipe=self.pipe)
        # new keys ride in this batch's pipeline: HSET key, HSETNX identity → key (replies
        # checked in ``process``: a lost HSETNX means another worker's key won)
        for _ in range((len(self.pipe) - before) // COMMANDS_PER_NEW_KEY):
            self.ops.append(("key", None, None, ""))
            self.ops.append(("key-id", None, None, ""))

    def add_timeline(self, raw: RawEvent, ev: InboundEvent, ch: str,
                     dedupe_key: str | None = None) -> None:
        hub = self.hub
        inbound = ev.direction == Direction.IN and ev.kind in TIMELINE_KINDS
        # a mail's subject is often the only statement of the problem: its keywords count
        c = classifier(hub).classify(ev.text if inbound else None, ch,
                                     ev.subject if inbound else None)  # core/pipeline/classify
        tags = c.tags
        mode = "notice" if ev.kind in NOTICE_KINDS else "timeline"
        k = hub.keyring
        subject = self.subject(ev, ch)
        claims, link = identity.claims_of(hub, ev) if inbound else ([], "")
        ident = RS.join(SEP.join((kind, k.blind_index(kind, value), "1" if verified else "0",
                                  source, k.encrypt_text(shown, b"identifier", subject)))
                        for kind, value, shown, verified, source in claims)
        name = ev.profile.get("name", "")
        user, address = store.identity_of(hub, ch, ev.external_user_id, ev.address, subject,
                                          stored=self.user(ev, ch))
        hub.scripts.ingest(args=[
            ch, dedupe_key or ev.dedupe_key, user, address,
            k.encrypt_text(name, b"name", subject) if name else "",
            ev.platform_ts_ms, self.now, _blob(hub, ev, ch, raw, tags, subject, self.sender(ev, ch)), mode,
            c.queue,
            c.priority,
            SEP.join(tags), self.reopen_ms, ev.direction.value, ident, ev.kind.value,
            mail.thread_arg(hub, ev.thread), link, self.erasures,
            self.acks.lua_arg(ch, c.language) if inbound else "", self.sla, c.reason, c.pending,
            self.sla_plan.lua_arg(ch, min(ev.platform_ts_ms, self.now)) if inbound else "",
            self.sla_share, c.routes,
        ], client=self.pipe)
        self.ops.append(("ingest", raw, ev, ch))
        if ev.kind == EventKind.UNSUPPORTED:
            self.pipe.hincrby(hub.keys.stats(), f"unsupported:{ch}:{ev.platform_type}")
            self.ops.append(("stat", raw, ev, ch))

    def add_patch(self, raw: RawEvent, ev: InboundEvent, ch: str, target: str, op: str,
                  value: str, extra: str) -> None:
        self.hub.scripts.patch_message(
            args=[ch, target, ev.dedupe_key, self.now, op, value, extra], client=self.pipe)
        self.ops.append((op, raw, ev, ch))

    def add(self, raw: RawEvent, ev: InboundEvent, ch: str) -> None:
        """Queue one event's script, filed under channel ``ch``."""
        if ev.kind in TIMELINE_KINDS or ev.kind in NOTICE_KINDS:
            self.add_timeline(raw, ev, ch)
        elif ev.kind == EventKind.EDIT:
            self.add_patch(raw, ev, ch, ev.target_ids[0], "edit",
                           store.seal_text(self.hub, ev.text, self.subject(ev, ch)) or "",
                           str(ev.platform_ts_ms))
        elif ev.kind == EventKind.REACTION:
            for t in ev.target_ids:
                self.add_patch(raw, ev, ch, t, "react", ev.external_user_id, ev.reaction or "")
        elif ev.kind in (EventKind.DELIVERY, EventKind.READ):
            status = "read" if ev.kind == EventKind.READ else (ev.delivery_status or "delivered")
            for t in ev.target_ids:
                self.add_patch(raw, ev, ch, t, "status", status, ev.status_reason or "")
            if ev.watermark_ms is not None:
                self.hub.scripts.watermark(args=[
                    ch, ev.external_user_id, ev.watermark_ms, status, ev.dedupe_key, self.now],
                    client=self.pipe)
                self.ops.append(("watermark", raw, ev, ch))


def _parse(adapter: Adapter | None, raw: RawEvent) -> tuple[list[InboundEvent], str | None]:
    if adapter is None:
        return [], f"channel {raw.channel_id!r} is not in the configuration (removed?)"
    try:
        return adapter.parse(raw), None
    except PayloadError as exc:
        return [], f"PayloadError: {exc}"
    except Exception as exc:  # a parser bug must not block the batch; keep the event
        log.exception("parser of channel %s failed on raw event %s", raw.channel_id, raw.id)
        return [], f"{type(exc).__name__}: {exc}"


def _intercepted(takers: list[tuple[str, intercept.Take]], raw: RawEvent, ev: InboundEvent,
                 ch: str, dead: dict[int, tuple[RawEvent, str]]) -> bool:
    """Offer ``ev`` to the interceptors; True when one took it (or failed: kept for replay —
    replies and commands act once, so the replay is safe)."""
    for name, take in takers:
        try:
            if take(raw, ev, ch):
                return True
        except Exception as exc:
            log.exception("%s: raw event %s failed", name, raw.id)
            dead[id(raw)] = (raw, f"{name}: {type(exc).__name__}")
            return True
    return False


def process(hub: Hub, raws: list[RawEvent]) -> IngestResult:
    """Process a batch of raw events. Safe to call again with the same events."""
    result = IngestResult()
    batch = _Batch(hub)
    dead: dict[int, tuple[RawEvent, str]] = {}
    items: list[tuple[RawEvent, InboundEvent, str]] = []
    takers = intercept.for_batch(hub)  # agents' replies (staff group, mail): not customers'
    for raw in raws:
        events, error = _parse(hub.adapters.get(raw.channel_id), raw)
        if error:
            dead[id(raw)] = (raw, error)
        elif not events:  # nothing the hub can mean (an empty update): dropped, but counted
            batch.pipe.hincrby(hub.keys.stats(), f"ignored:{raw.channel_id}")
            batch.ops.append(("stat", raw, None, raw.channel_id))
        for ev in events:
            ch = hub.channel_for(raw.channel_id, ev.account_id)
            if ch is None:  # kept until an admin adds the channel, then replayed
                problem = (f"no channel is configured for {ev.account_id!r} on "
                           f"{hub.adapters[raw.channel_id].name}: add one with that id, "
                           "then replay this dead letter")
                dead[id(raw)] = (raw, problem)
                continue
            if takers and _intercepted(takers, raw, ev, ch, dead):
                continue
            if ev.unmatched and not ev.target_ids and ev.kind not in NOTICE_KINDS:
                dead[id(raw)] = (raw, ev.unmatched)  # a report naming nothing: kept visible
                continue
            items.append((raw, ev, ch))
    batch.prepare(items)
    for raw, ev, ch in items:
        batch.add(raw, ev, ch)
    for _ in range(channel_admin.count_events(batch.pipe, hub, raws)):  # tongdai channels list
        batch.ops.append(("count", None, None, ""))
    if batch.ops:  # rides along: have customers been erased since our keys were cached?
        batch.pipe.get(hub.keys.subject_erasures())
        batch.ops.append(("erasures", None, None, ""))
    replies = batch.pipe.execute(raise_on_error=False) if batch.ops else []

    pairs = list(zip(batch.ops, replies))
    stale = {id(raw): raw for (op, raw, _e, _c), reply in pairs
             if op == "ingest" and not isinstance(reply, redis.ResponseError)
             and int(reply[0]) == 4}
    if stale:  # customers were erased since our keys were cached: again, with fresh keys
        hub.subjects.reset_cache()
        hub.subjects.observe_erasures(None)
        again = process(hub, list(stale.values()))
        for f in ("stored", "duplicates", "updated", "skipped", "dead"):
            setattr(result, f, getattr(result, f) + getattr(again, f))
        for f in ("locations", "profiles", "acks", "opened", "files"):
            getattr(result, f).extend(getattr(again, f))
        pairs = [(o, rp) for o, rp in pairs if id(o[1]) not in stale]

    fallback = _Batch(hub)
    fallback.subjects, fallback.users = batch.subjects, batch.users
    stored: dict[str, int] = {}  # per channel, for /metrics
    for (op, raw, ev, ch), reply in pairs:
        if op == "key-id" and reply == 0:  # another worker created this identity's key first
            hub.subjects.reset_cache()
        if op == "erasures":
            hub.subjects.observe_erasures(reply)
            continue
        if op in ("key", "key-id", "count"):
            continue
        if isinstance(reply, redis.ResponseError):
            log.error("storing an event of raw %s failed: %s", raw.id, reply)
            dead.setdefault(id(raw), (raw, f"store failed: {reply}"))
            continue
        if op == "stat":
            continue
        code = int(reply[0])
        if ev.unmatched and (code == 2 or (code == 3 and op == "status")):  # never dropped
            dead[id(raw)] = (raw, ev.unmatched)
        if code == 0:
            result.duplicates += 1
        elif code == 1 and op == "ingest":
            result.stored += 1
            stored[ch] = stored.get(ch, 0) + 1
            result.locations.append(reply[1].decode())
            if ev.attachments and files.fetchable(ev.attachments):
                result.files.append((ch, reply[1].decode()))
            # a nameless new customer: ask the platform (never where user ids are addresses:
            # the job's arguments would carry them in clear)
            if (len(reply) > 4 and int(reply[4]) == 1
                    and not hub.adapters[ch].user_ids_are_personal):
                result.profiles.append((ch, ev.external_user_id, reply[2].decode()))
            if ev.ack:  # only once stored: a redelivered duplicate is not answered twice
                result.acks.append((ch, ev.ack))
            if len(reply) > 6 and int(reply[6]) == 1:  # due, written with the message
                result.opened.append((ch, reply[1].decode().partition(":")[0]))
        elif code == 1:
            result.updated += 1
        elif code == 2:
            result.skipped += 1
        elif code == 3 and op == "edit":
            # The original never reached us (or not yet): keep the edited text as the message,
            # under the original's dedupe key so a late original counts as a duplicate.
            fallback.add_timeline(raw, ev, ch, dedupe_key=ev.target_ids[0])
        else:
            result.skipped += 1  # a reaction or receipt for a message we never stored
    if fallback.ops:
        for (op, _raw, _ev, ch), reply in zip(fallback.ops,
                                              fallback.pipe.execute(raise_on_error=False)):
            if op == "ingest" and not isinstance(reply, redis.ResponseError) and int(reply[0]) == 1:
                result.stored += 1
                stored[ch] = stored.get(ch, 0) + 1
                result.locations.append(reply[1].decode())
                if _ev.attachments and files.fetchable(_ev.attachments):
                    result.files.append((ch, reply[1].decode()))

    dead_by_channel: dict[str, int] = {}
    for raw, _error in dead.values():
        dead_by_channel[raw.channel_id] = dead_by_channel.get(raw.channel_id, 0) + 1
    if dead:
        pipe = hub.redis.pipeline(transaction=False)
        for raw, error in dead.values():
            rawlog.dead_letter(pipe, hub, raw, error)
        channel_admin.count_errors(pipe, hub, dead_by_channel)
        pipe.execute()
        result.dead = len(dead)
    metrics.ingested(stored, dead_by_channel)  # a few writes to this process's own file
    if result.profiles or result.acks:
        _enqueue_platform_calls(hub, result.profiles, result.acks)
    files.enqueue(hub, result.files)
    for ch, conv in result.opened:
        acknowledge(hub, ch, conv)
    return result


PROFILE_JOB = "tongdai.worker.jobs.fetch_profile"
ACK_JOB = "tongdai.worker.jobs.acknowledge"


def _enqueue_platform_calls(hub: Hub, profiles: list[tuple[str, str, str]],
                            acks: list[tuple[str, str]]) -> None:
    """Profiles and acknowledgements: platform calls, on the background queue, not here."""
    from rq import Queue, Retry

    from tongdai.core.keys import BACKGROUND_QUEUE

    q = Queue(BACKGROUND_QUEUE, connection=hub.redis)
    jobs = [Queue.prepare_data(PROFILE_JOB, (ch, user, cust), result_ttl=0, failure_ttl=86400,
                               job_id=f"profile-{cust}-{ch}") for ch, user, cust in profiles]
    jobs += [Queue.prepare_data(ACK_JOB, (ch, token), result_ttl=0, failure_ttl=86400,
                                retry=Retry(max=2, interval=[1, 5])) for ch, token in acks]
    q.enqueue_many(jobs)


def replay_dead_letter(hub: Hub, dl_id: str) -> IngestResult | None:
    """Run a dead letter through the pipeline again. The old entry goes either way: when it
    fails again, ``process`` has written a fresh one carrying the new error."""
    found = rawlog.dead_letter_get(hub, dl_id)
    if found is None:
        return None
    result = process(hub, [found[0]])
    rawlog.dead_letter_delete(hub, dl_id)
    return result
