"""Key rotation: re-encrypt stored customer data under the active key, online and resumable.

``tongdai keys rotate`` walks customers, then conversations, by id. Each value still under an
older key is decrypted and re-encrypted with the active one and written back by
compare-and-set, so a concurrent update is never overwritten (it is simply read again). A
checkpoint in Redis (``Keys.key_rotation``) lets a crashed or stopped run resume where it was.

Files customers sent (``storage.blobs``) are re-encrypted last, each file replaced atomically.
The raw log and dead letters are append-only streams and are not rewritten: their entries age
out by ``ingest.raw_retention``. Keep an old key configured (decrypt-only) until then.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import orjson

from tongdai.core.crypto import SUBJECT_PREFIX
from tongdai.core.hub import Hub

CHECKPOINT_EVERY = 50


@dataclass(slots=True)
class RotationResult:
    target_key: str
    customers: int
    conversations: int
    rewritten: int
    resumed_from: tuple[str, int] | None


def _needs(hub: Hub, value: str | bytes | None) -> bool:
    """Under an older data key. Values under a customer's own key stay as they are: that key
    is re-wrapped instead (``Subjects.rewrap``)."""
    kid = hub.keyring.key_id_of(value) if value else None
    return kid not in (None, hub.keyring.active) and not kid.startswith(SUBJECT_PREFIX)


def _reseal(hub: Hub, value: str, purpose: bytes) -> str:
    return hub.keyring.encrypt_text(hub.keyring.decrypt_text(value, purpose), purpose)


def _cas(hub: Hub, key: str, field: bytes | str, old: bytes, new: str | bytes) -> bool:
    return bool(hub.scripts.cas_hset(keys=[key], args=[field, old, new]))


def _reseal_field(hub: Hub, key: str, field: str | bytes, value: bytes | None,
                  purpose: bytes) -> int:
    """Re-encrypt one sealed hash field when it is under an older key (compare-and-set)."""
    if not _needs(hub, value):
        return 0
    return int(_cas(hub, key, field, value, _reseal(hub, value.decode(), purpose)))


def _customer(hub: Hub, cid: str) -> int:
    key = hub.keys.customer(cid)
    n = _reseal_field(hub, key, "name", hub.redis.hget(key, "name"), b"name")
    ikey = hub.keys.customer_identifiers(cid)
    for field, val in hub.redis.hgetall(ikey).items():
        head, _, sealed = val.decode().rpartition("|")
        if _needs(hub, sealed):
            n += _cas(hub, ikey, field, val, f"{head}|{_reseal(hub, sealed, b'identifier')}")
    akey = hub.keys.customer_identities(cid)  # reply addresses that are personal data (mail)
    for field, addr in hub.redis.hgetall(akey).items():
        n += _reseal_field(hub, akey, field, addr, b"address")
    return n


def _message_blob(hub: Hub, blob: bytes) -> bytes | None:
    """The blob re-sealed under the active key, or None when nothing in it needs it."""
    m = orjson.loads(blob)
    changed = False
    if isinstance(m.get("x"), str) and _needs(hub, m["x"]):
        m["x"], changed = _reseal(hub, m["x"], b"text"), True
    if isinstance(m.get("ad"), str) and _needs(hub, m["ad"]):
        m["ad"], changed = _reseal(hub, m["ad"], b"address"), True
    for a in m.get("at", ()):
        enc = (a.get("meta") or {}).get("enc")
        if a.get("kind") == "contact" and enc and _needs(hub, enc):
            a["meta"]["enc"], changed = _reseal(hub, enc, b"contact"), True
    return orjson.dumps(m) if changed else None


def _conversation(hub: Hub, conv_id: str) -> int:
    ckey = hub.keys.conversation(conv_id)
    n = _reseal_field(hub, ckey, "address", hub.redis.hget(ckey, "address"), b"address")
    key = hub.keys.messages(conv_id)
    for mid, blob in hub.redis.hscan_iter(key, count=500):
        for _ in range(3):  # a concurrent patch changed it: read again
            new = _message_blob(hub, blob)
            if new is None or _cas(hub, key, mid, blob, new):
                n += new is not None
                break
            blob = hub.redis.hget(key, mid)
            if blob is None:
                break
    return n


def _blobs(hub: Hub) -> int:
    """Files on disk (mail attachments) under an older key, re-encrypted in place."""
    return hub.blobs.reseal()


def totals(hub: Hub) -> tuple[int, int]:
    seq = hub.redis.mget(hub.keys.seq("customer"), hub.keys.seq("conversation"))
    return int(seq[0] or 0), int(seq[1] or 0)


def rotate(hub: Hub, progress: Callable[[int], None] = lambda _n: None) -> RotationResult:
    """Re-encrypt everything under the active key. ``progress(n)`` after each n ids."""
    ck = hub.keys.key_rotation()
    state = {k.decode(): v.decode() for k, v in hub.redis.hgetall(ck).items()}
    target = hub.keyring.active
    resumed = None
    if state.get("target") == target and state.get("phase") in ("customers", "conversations"):
        phase, next_id = state["phase"], int(state["next"])
        resumed = (phase, next_id)
    else:
        phase, next_id = "customers", 1
        hub.redis.hset(ck, mapping={"target": target, "phase": phase, "next": 1, "rewritten": 0})
    n_cust, n_conv = totals(hub)
    done = {"rewritten": int(state.get("rewritten", 0)) if resumed else 0}

    def walk(name: str, total: int, work: Callable[[Hub, str], int], first: int) -> None:
        if first > 1:
            progress(first - 1)  # done in an earlier run
        for i in range(first, total + 1):
            done["rewritten"] += work(hub, str(i))
            progress(1)
            if i % CHECKPOINT_EVERY == 0 or i == total:
                hub.redis.hset(ck, mapping={"phase": name, "next": i + 1,
                                            "rewritten": done["rewritten"]})

    if phase == "customers":
        walk("customers", n_cust, _customer, next_id)
        hub.redis.hset(ck, mapping={"phase": "conversations", "next": 1})
        next_id = 1
    else:
        progress(n_cust)
    walk("conversations", n_conv, _conversation, next_id)
    done["rewritten"] += _blobs(hub) + hub.subjects.rewrap()
    hub.redis.hset(ck, "phase", "done")
    return RotationResult(target, n_cust, n_conv, done["rewritten"], resumed)
