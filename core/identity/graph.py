"""One customer across channels: merge only on proof, suggest the rest, undo any merge.

What counts as proof: an identifier the *platform* vouches for on both sides (a Telegram
contact whose ``user_id`` is the sender, Zalo's ``user_submit_info``, a mail whose DMARC passed
at our trusted MTA) — or a link code issued to one customer and sent back from another
channel. The merge itself runs in Lua (``core/lua/merge_fn.lua``), atomic with storing the
message that proved it, so two workers seeing the same new person at once make one customer.
Anything short of proof (a number typed into a message, a match verified on one side only, a
conflict) becomes a suggestion an agent decides on. Every merge is recorded and can be split.
"""

from __future__ import annotations

import re
import secrets
from typing import Any

import orjson

from tongdai.core.clock import now_ms
from tongdai.core.errors import BadRequest, Forbidden, NotFound
from tongdai.core.hub import Hub
from tongdai.core.identity import identifiers
from tongdai.core.models import InboundEvent

CODE_ALPHABET = "ABCDEFGHJKMNPQRSTUVWXYZ23456789"  # no 0/O, 1/I/L: read aloud, typed on phones
CODE_RE = re.compile(r"(?i)(?<![A-Z0-9])TD-([A-Z0-9]{6})(?![A-Z0-9])")
CODES_PER_HOUR = 5


Claim = tuple[str, str, str, bool, str]  # kind, canonical value, value shown, verified, source


def own_addresses(hub: Hub) -> frozenset[str]:
    """The hub's own mail addresses (every email channel's address and aliases), in canonical
    form: typed into a message they say nothing about the customer."""
    return hub.memo("own_addresses", lambda: frozenset(
        identifiers.email(a) or a for ad in hub.adapters.values() if ad.name == "email"
        for a in (ad.settings.address, *ad.settings.aliases)))


def claims_of(hub: Hub, ev: InboundEvent) -> tuple[list[Claim], str]:
    """The identifiers an event carries — the platform's, then any typed into the text — and
    the hash of a link code in it, or "". Matching uses the canonical value (E.164, Gmail
    without dots); agents see the phone in E.164 and the address as the customer wrote it."""
    cfg = hub.config.hub.identity
    regions = tuple(cfg.regions)
    out: list[Claim] = []
    if ev.identifier is not None:
        i = ev.identifier
        canonical = identifiers.normalise(i.kind, i.value, regions)
        shown = canonical if i.kind == "phone" else i.value.strip().lower()
        out.append((i.kind, canonical, shown, i.verified, i.source))
    if cfg.typed_claims and ev.text:
        ours = own_addresses(hub)
        for kind, value in identifiers.typed_claims(ev.text, regions):
            if value in ours:  # "mail support@ our shop": says nothing about the customer
                continue
            if all((kind, value) != (c[0], c[1]) for c in out):
                out.append((kind, value, value, False, "typed"))
    code = CODE_RE.search(ev.text or "") if ev.text and "-" in ev.text else None
    return out, code_hash(hub, code.group(1)) if code else ""


def code_hash(hub: Hub, code: str) -> str:
    return hub.keyring.blind_index("link-code", code.upper())


def issue_link_code(hub: Hub, customer_id: str) -> dict[str, Any]:
    """A one-time code for the customer to send from another channel (``TD-XXXXXX``)."""
    if b"erased" in _customer(hub, customer_id):
        raise BadRequest(f"customer {customer_id} was erased")
    quota = hub.keys.link_code_quota(f"issue:{customer_id}")
    issued = hub.redis.incr(quota)
    if issued == 1:
        hub.redis.expire(quota, 3600)
    if issued > CODES_PER_HOUR:
        raise Forbidden(f"{CODES_PER_HOUR} link codes for this customer in the last hour: "
                        "wait, or link the channels by a merge")
    code = "".join(secrets.choice(CODE_ALPHABET) for _ in range(6))
    ttl = int(hub.config.hub.identity.link_code_ttl)
    hub.redis.set(hub.keys.link_code(code_hash(hub, code)), customer_id, ex=ttl)
    return {"code": f"TD-{code}", "customer_id": customer_id, "expires_in": ttl,
            "how": "the customer sends this code from their other channel; it works once"}


def _customer(hub: Hub, customer_id: str) -> dict[bytes, bytes]:
    h = hub.redis.hgetall(hub.keys.customer(customer_id))
    if not h:
        raise NotFound(f"no customer {customer_id}")
    return h


def merge(hub: Hub, target: str, source: str, actor: str, why: str) -> dict[str, Any]:
    """An agent's merge of ``source`` into ``target`` (reversible with :func:`split`)."""
    if not why.strip():
        raise BadRequest("say why these are one person (it goes into the audit log)")
    ok, detail = hub.scripts.merge(args=[target, source, why, actor, now_ms()])
    if not int(ok):
        raise BadRequest(detail.decode())
    return get_merge(hub, detail.decode())


def split(hub: Hub, merge_id: str, actor: str, why: str) -> dict[str, Any]:
    """Undo a merge: both customers back as they were (plus what they did since)."""
    if not why.strip():
        raise BadRequest("say why these are two people (it goes into the audit log)")
    ok, detail = hub.scripts.split(args=[merge_id, actor, why, now_ms()])
    if not int(ok):
        raise (NotFound if detail.decode().startswith("no merge") else BadRequest)(
            detail.decode())
    return get_merge(hub, merge_id)


def get_merge(hub: Hub, merge_id: str) -> dict[str, Any]:
    """A merge record: who, when, why, and exactly what moved."""
    h = {k.decode(): v.decode() for k, v in hub.redis.hgetall(hub.keys.merge(merge_id)).items()}
    if not h:
        raise NotFound(f"no merge {merge_id}")
    parts = lambda v: [p for p in v.split("\x1e") if p]
    return {
        "id": merge_id, "target_customer_id": h["target"], "source_customer_id": h["source"],
        "status": h["status"], "why": h["why"], "by": h["by"], "at": int(h["at"]),
        "identities": parts(h.get("identities", "")),
        "identifier_kinds": [p.split(":", 1)[0] for p in parts(h.get("identifiers", ""))],
        "conversations": parts(h.get("conversations", "")),
        "split": ({"by": h["split_by"], "why": h["split_why"], "at": int(h["split_at"])}
                  if h["status"] == "split" else None),
    }


def merges_of(hub: Hub, customer_id: str) -> list[dict[str, Any]]:
    """The customer's merges and splits, newest first (the audit trail)."""
    ids = hub.redis.zrevrange(hub.keys.customer_merges(customer_id), 0, 199)
    return [get_merge(hub, i.decode()) for i in ids]


def suggestions(hub: Hub, customer_id: str | None = None, limit: int = 50) -> list[dict]:
    """Open merge suggestions with their evidence (a customer's, or everyone's newest)."""
    if customer_id is not None:
        others = hub.redis.smembers(hub.keys.customer_suggestions(customer_id))
        pairs = [_pair(customer_id, o.decode()) for o in others]
    else:
        pairs = [p.decode() for p in hub.redis.zrevrange(hub.keys.suggestions(), 0, limit - 1)]
    out = []
    for pair in pairs[:limit]:
        h = {k.decode(): v.decode() for k, v in hub.redis.hgetall(hub.keys.suggestion(pair)).items()}
        if h.get("status") != "open":
            continue
        evidence = [_reasoned(orjson.loads(v)) for k, v in sorted(h.items())
                    if k.startswith("ev:")]
        out.append({"id": pair, "customer_ids": [h["a"], h["b"]], "evidence": evidence,
                    "created": int(h["created"]), "updated": int(h["updated"])})
    return out


# what evidence stored before it carried a reason said, in English (ingest.lua, merge_fn.lua)
_OLD_NOTES = ((re.compile(r"verified by both"), "verified_both"),
              (re.compile(r"matches, but not verified by both"), "unverified"),
              (re.compile(r"an agent kept these customers apart"), "kept_apart"),
              (re.compile(r"each has an account of their own on (.+)"), "own_account"),
              (re.compile(r"each has a different verified (.+)"), "different_verified"))


def _reasoned(ev: dict[str, Any]) -> dict[str, Any]:
    """Evidence with its ``reason`` code (and ``detail``: the channel or kind it names), also
    for evidence stored with the English ``note`` only, so a console words it in its language."""
    if "reason" in ev or not isinstance(ev.get("note"), str):
        return ev
    for pattern, reason in _OLD_NOTES:
        m = pattern.fullmatch(ev["note"])
        if m:
            return {**ev, "reason": reason, **({"detail": m.group(1)} if m.groups() else {})}
    return ev


def dismiss(hub: Hub, pair: str, actor: str) -> None:
    """An agent says: not the same person. The same evidence never merges them afterwards."""
    key = hub.keys.suggestion(pair)
    if not hub.redis.exists(key):
        raise NotFound(f"no suggestion {pair}")
    a, _, b = pair.partition(":")
    pipe = hub.redis.pipeline(transaction=True)
    pipe.hset(key, mapping={"status": "dismissed", "dismissed_by": actor, "updated": now_ms()})
    pipe.zrem(hub.keys.suggestions(), pair)
    pipe.srem(hub.keys.customer_suggestions(a), b)
    pipe.srem(hub.keys.customer_suggestions(b), a)
    pipe.execute()


def _pair(a: str, b: str) -> str:
    return f"{a}:{b}" if int(a) < int(b) else f"{b}:{a}"
