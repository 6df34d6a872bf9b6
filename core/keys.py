"""Every Redis key the hub uses, built here and only here.

All keys start with a deployment prefix (``redis.prefix`` in the config, default ``td:``) so
several hubs can share one Redis. ``docs/redis-schema.md`` documents each key and
``tests/test_keys.py`` pins their formats: a rename is one diff there, and a migration is visible.

The Lua scripts in ``core/lua/`` need keys whose ids they discover themselves (the customer of
an identity, the conversation of a customer). They do not spell key formats: ``lua_templates``
hands them the formats from this module, substituted into the script text when it is loaded.
"""

from __future__ import annotations

import re

# RQ queue names (RQ keeps its own keys under ``rq:``).
INGEST_QUEUE = "tongdai-ingest"
# Agents' replies only: a reply never waits behind background work (#12: once 13 min behind 20k)
REPLIES_QUEUE = "tongdai-replies"
# Platform calls nobody waits on: profile fetches, pressed buttons' answers, acknowledgements
BACKGROUND_QUEUE = "tongdai-background"
# Replies and profile fetches before #12; background workers still drain it (an upgrade's jobs)
LEGACY_OUTBOUND_QUEUE = "tongdai-outbound"
HOOKS_QUEUE = "tongdai-hooks"  # outgoing webhooks: a slow receiver never delays replies
# A send that must wait (retry, rate-limit slot, slow channel) is a member of the due set,
# ``{lane}:{conv}:{msg}:{attempt}:{flags}``; the lane names the queue it goes back to.
SEND_LANES = {"replies": REPLIES_QUEUE, "background": BACKGROUND_QUEUE}
RAW_GROUP = "ingest"  # consumer group of the raw streams
# The change feed keeps about this many events (XADD MAXLEN ~): clients catch up, reactors read
FEED_MAXLEN = 100_000

_ID = re.compile(r"^[A-Za-z0-9_.:\-]+$")


class Keys:
    """Key builder for one prefix."""

    def __init__(self, prefix: str = "td:") -> None:
        self.prefix = prefix

    def _k(self, *parts: object) -> str:
        return self.prefix + ":".join(str(p) for p in parts)

    # -- raw event log (streams, one per shard) and the ingest loops' slots -------------------
    def raw(self, shard: int) -> str:
        return self._k("raw", shard)

    def ingest_slot(self, slot: int) -> str:
        return self._k("ingest", "slot", slot)

    def deadletter(self) -> str:
        return self._k("deadletter")

    # -- counters ------------------------------------------------------------------------------
    def seq(self, name: str) -> str:
        return self._k("seq", name)

    def stats(self) -> str:
        return self._k("stats")

    # -- customers and identities --------------------------------------------------------------
    def identity_index(self, channel_id: str) -> str:
        return self._k("identity", channel_id)

    def customer(self, customer_id: str) -> str:
        return self._k("customer", customer_id)

    def customer_identities(self, customer_id: str) -> str:
        return self._k("customer", customer_id, "identities")

    def customer_identifiers(self, customer_id: str) -> str:
        return self._k("customer", customer_id, "identifiers")

    def customer_conversations(self, customer_id: str) -> str:
        return self._k("customer", customer_id, "convs")

    def customer_last_inbound(self, customer_id: str) -> str:
        return self._k("customer", customer_id, "last_in")

    # -- mail: a Mailgun-style webhook's one-time tokens, an IMAP folder's resume point ---------
    def webhook_nonce(self, channel_id: str, nonce: str) -> str:
        return self._k("nonce", channel_id, nonce)

    def imap_cursor(self, channel_id: str) -> str:
        return self._k("imap", channel_id)

    # -- the identity graph: who holds an identifier, merges, suggestions, link codes ---------
    def identifier_holders(self, kind: str, index: str) -> str:
        return self._k("identifier", kind, index)

    def merge(self, merge_id: str) -> str:
        return self._k("merge", merge_id)

    def customer_merges(self, customer_id: str) -> str:
        return self._k("customer", customer_id, "merges")

    def suggestion(self, pair: str) -> str:
        return self._k("suggestion", pair)

    def suggestions(self) -> str:
        return self._k("suggestions")

    def customer_suggestions(self, customer_id: str) -> str:
        return self._k("customer", customer_id, "suggestions")

    def link_code(self, code_hash: str) -> str:
        return self._k("linkcode", code_hash)

    def link_code_quota(self, scope: str) -> str:
        return self._k("linkcode", "quota", scope)

    # -- per-identity keys (crypto-erasure) ----------------------------------------------------
    def subject_ids(self) -> str:
        return self._k("subjects")

    def subject_keys(self) -> str:
        return self._k("subject_keys")

    def subject_erasures(self) -> str:
        return self._k("subject_erasures")

    def erasures(self) -> str:
        """Erased customer → what was destroyed (ids and key hashes only): what a restore of
        an older backup erases again."""
        return self._k("erasures")

    # -- backups ---------------------------------------------------------------------------------
    def backup_last(self) -> str:
        return self._k("backup", "last")

    def backup_claim(self) -> str:
        return self._k("backup", "running")

    # -- lookups (core/workspace/lookups.py): lookup(name, digest) an answer (encrypted, TTL),
    # (name, digest, "fetching") while fetched, (name, "breaker") hash, (name, "trial")
    def lookup(self, name: str, *parts: str) -> str:
        return self._k("lookup", name, *parts)

    def conversation_attributes(self, conv_id: str) -> str:
        return self._k("conv", conv_id, "attrs")  # what the intake collected (sealed values)

    # -- channel credentials that rotate (Zalo OAuth) ---------------------------------------------
    def credentials(self, channel_id: str) -> str:
        return self._k("creds", channel_id)

    def credentials_lock(self, channel_id: str) -> str:
        return self._k("creds", channel_id, "lock")

    # -- conversations and messages ----------------------------------------------------------
    def conversation(self, conv_id: str) -> str:
        return self._k("conv", conv_id)

    def conversation_tags(self, conv_id: str) -> str:
        return self._k("conv", conv_id, "tags")

    def conversation_labels(self, conv_id: str) -> str:
        """The tags an agent added by hand (hash tag → who, when): rules' tags are not here."""
        return self._k("conv", conv_id, "labels")

    def labels_used(self) -> str:
        """Every tag added by hand, scored by when last added (the console's suggestions)."""
        return self._k("labels")

    def timeline(self, conv_id: str) -> str:
        return self._k("conv", conv_id, "timeline")

    def messages(self, conv_id: str) -> str:
        return self._k("conv", conv_id, "messages")

    def dedupe(self, channel_id: str) -> str:
        return self._k("dedupe", channel_id)

    def queue(self, name: str) -> str:
        return self._k("queue", name)

    def conversations_by_status(self, status: str) -> str:
        return self._k("convs", status)

    def acknowledgements_due(self) -> str:
        return self._k("ack", "due")

    def feed(self) -> str:
        return self._k("feed")

    def key_rotation(self) -> str:
        return self._k("keys", "rotation")

    def config_processes(self) -> str:
        # process name → the config version it runs, its last reload error (config_watch.py)
        return self._k("config", "processes")

    def config_said(self, host: str, version: str) -> str:
        # set by the first process of a host to log that a config version is wrong
        return self._k("config", "said", host, version)

    # -- agents' API --------------------------------------------------------------------------
    def tokens(self) -> str:
        return self._k("tokens")

    # -- people: users (agents, supervisors, admins), console sessions, log-in failures, audit --
    def user(self, name: str) -> str:
        return self._k("user", name)

    def users(self) -> str:
        return self._k("users")

    def user_by_telegram(self) -> str:
        return self._k("users", "telegram")

    def user_by_email(self) -> str:
        return self._k("users", "email")

    def session(self, digest: str) -> str:
        return self._k("session", digest)

    def user_sessions(self, name: str) -> str:
        return self._k("user", name, "sessions")

    def login_failures(self, scope: str) -> str:
        return self._k("login", "fail", scope)

    def audit(self) -> str:
        return self._k("audit")

    # -- inbox: unread counts and SLA due times (core/workspace/inbox.py, core/sla.py) -----
    def unread(self) -> str:
        return self._k("unread")

    def sla_due(self) -> str:
        return self._k("sla", "due")

    def sla_warn(self) -> str:
        """Conversation → when its running wait reaches the warning share (core/pipeline/sla)."""
        return self._k("sla", "warn")

    def sla_resolve(self) -> str:
        """Conversation → when its running resolution clock is due (pipeline/sla_resolution)."""
        return self._k("sla", "resolve")

    def sla_action(self, conv_id: str, what: str) -> str:
        """Marker of an SLA action taken once (core/workspace/sla_actions.py)."""
        return self._k("sla", "act", conv_id, what)

    def sla_stats(self, hour: int | str) -> str:
        """Waits met / breached in one UTC hour (epoch ms // 3,600,000), per channel, queue and
        target: "channel\x1fqueue\x1ftarget\x1fmet|breached" → count."""
        return self._k("sla", "stats", str(hour))

    def kpi(self, *parts: object) -> str:  # h:{hour}:{dim}, d:{YYYYMMDD}:{dim}, conv:{id}
        return self._k("kpi", *parts)  # KPI counters and clocks (core/workspace/kpis.py)

    def idempotency(self, scope: str, key: str) -> str:
        return self._k("idem", scope, key)

    def send_lock(self, message_id: str) -> str:
        return self._k("send", message_id, "lock")

    # -- sends that wait, channels that stop answering (pipeline/send_schedule, channel_gate)
    def sends_due(self) -> str:
        return self._k("send", "due")

    def sends_in_flight(self, channel_id: str) -> str:
        return self._k("send", "inflight", channel_id)

    def sends_parked(self, channel_id: str) -> str:
        return self._k("send", "parked", channel_id)

    def channel_slow(self, channel_id: str) -> str:
        return self._k("send", "slow", channel_id)

    def channels_disabled(self) -> str:
        """Hash: channel → JSON {at, by, why}: channels an admin disabled (nothing is sent)."""
        return self._k("channels", "disabled")

    def channel_last_event(self) -> str:
        """Hash: channel → ms when ingest last read a raw event of it."""
        return self._k("channels", "last")

    def channel_counts(self, bucket: int | str) -> str:
        """Hash per 10 minutes (ms // 600,000): "events|errors|sent|send-failed:<ch>" → n."""
        return self._k("channels", "counts", str(bucket))

    def senders(self, lane: str) -> str:
        return self._k("send", "senders", lane)

    def rate(self, scope: str) -> str:
        return self._k("rate", scope)

    # -- conversation workflow (core/workflow.py, core/canned.py): mentions, snoozes, canned --
    def mentions(self, name: str) -> str:
        return self._k("user", name, "mentions")

    def snoozes(self) -> str:
        return self._k("snoozes")

    def canned(self, canned_id: str) -> str:
        return self._k("canned", canned_id)

    def canned_index(self) -> str:
        return self._k("canned")

    def canned_shortcuts(self) -> str:
        return self._k("canned", "shortcuts")

    # -- assignment and presence (core/workspace/assignment.py, autoassign.py, presence.py) ---
    def user_load(self, name: str) -> str:
        return self._k("user", name, "load")

    def presence(self) -> str:
        return self._k("presence")

    def presence_seen(self) -> str:
        return self._k("presence", "seen")

    def team_pointer(self, team_id: str) -> str:
        return self._k("team", team_id, "rr")

    # -- agents' mail (core/agentmail.py): each mail to an agent sent once --------------------
    def agent_mail_sent(self, marker: str) -> str:
        return self._k("agentmail", "sent", marker)

    def agent_mail_reply(self, ref: str) -> str:
        return self._k("agentmail", "reply", ref)

    # -- Web Push to agents' devices (core/workspace/pushsubs.py, push.py) --------------------
    def push_subscriptions(self, name: str) -> str:
        return self._k("user", name, "push")

    def push(self, part: str, *ids: str) -> str:  # owner, sent, retry, due: redis-schema "push:"
        return self._k("push", part, *ids)

    # -- outgoing webhooks for integrators (core/workspace/hooks.py, hookdelivery.py) ---------
    def hooks(self) -> str:
        return self._k("hooks")

    def hook(self, sub_id: str) -> str:
        return self._k("hooks", "sub", sub_id)

    def hook_log(self, sub_id: str) -> str:
        return self._k("hooks", "log", sub_id)

    def hook_delivery(self, delivery_id: str) -> str:
        return self._k("hooks", "delivery", delivery_id)

    def hook_seen(self, delivery_id: str) -> str:
        return self._k("hooks", "seen", delivery_id)

    def hook_lock(self, delivery_id: str) -> str:
        return self._k("hooks", "lock", delivery_id)

    def hooks_due(self) -> str:
        return self._k("hooks", "due")

    # -- the Telegram staff group (core/staffgroup.py): one forum topic per conversation ------
    def staff_topics(self, conv_id: str) -> str:
        return self._k("sg", "conv", conv_id)

    def staff_topic(self, chat_id: str, thread_id: str) -> str:
        return self._k("sg", "topic", chat_id, thread_id)

    def staff_topic_claim(self, chat_id: str, conv_id: str) -> str:
        return self._k("sg", "claim", chat_id, conv_id)

    def staff_posted(self, chat_id: str, item: str) -> str:
        return self._k("sg", "posted", chat_id, item)

    def staff_echoes(self, conv_id: str) -> str:
        return self._k("sg", "echo", conv_id)

    def staff_update(self, chat_id: str, message_id: str) -> str:
        return self._k("sg", "done", chat_id, message_id)

    def staff_pause(self, chat_id: str) -> str:
        return self._k("sg", "pause", chat_id)

    def kb(self, part: str, *ids: str) -> str:  # self-service: docs/redis-schema.md "kb:"
        return self._k("kb", part, *ids)

    def survey(self, part: str, *ids: str) -> str:  # CSAT/NPS: docs/redis-schema.md "survey:"
        return self._k("survey", part, *ids)

    def spike(self, part: str, *ids: object) -> str:  # spike alerts: docs/redis-schema.md "spike:"
        return self._k("spike", part, *ids)

    def broadcast(self, part: str, *ids: object) -> str:  # broadcasts: redis-schema.md "bc:"
        return self._k("bc", part, *ids)


def check_id(value: str, what: str) -> str:
    """Ids that become part of keys: letters, digits and ``_ . : -`` only."""
    if not _ID.match(value):
        raise ValueError(f"{what} {value!r} may contain only letters, digits and _ . : -")
    return value
