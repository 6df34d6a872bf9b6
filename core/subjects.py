"""Per-identity keys: what makes erasing a customer a *crypto*-erasure.

Every channel identity (``channel|user``) gets its own random AES key the first time it writes;
its name, identifiers, reply address, contact cards and (with the switch on) message texts are
encrypted with that key, which is stored in Redis wrapped by the data keys. Erasing a customer
deletes their identities' keys: every copy of their data that does not also hold those keys is
unreadable from then on. A snapshot of Redis taken before the erasure (an old RDB or AOF, a
backup) holds them still; restoring a backup erases again every customer the newer erasure
records name (``td:erasures``, core/workspace/backup.py).

The raw event log stays under the data keys (the webhook does not parse, so it cannot know
whose event it is); ``erase`` deletes the customer's retained raw events and the log's
retention bounds what a backup can hold.
"""

from __future__ import annotations

import json
import secrets
import time

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from tongdai.core import clock
from tongdai.core.crypto import SUBJECT_PREFIX

_WRAP = b"subject-key"
# What ``keys_for(pipe=...)`` queues per new key (HSET key, HSETNX identity → key id): the
# ingest batch counts on it to match the pipeline's replies.
COMMANDS_PER_NEW_KEY = 2
# Keys are reused this long per process. An erase bumps a counter; every ingest script checks
# it against the value the worker's cache is valid for and refuses to write when it moved
# (the worker drops its cache and runs the events again): no new data under a destroyed key.
CACHE_S = 600.0


class Subjects:
    """The identity keys of one hub (Redis-backed, with a short read cache)."""

    def __init__(self, hub) -> None:
        self.hub = hub
        self._cache: dict[str, tuple[float, AESGCM | None]] = {}  # key id → key (reads)
        self._by_identity: dict[str, tuple[float, tuple[str, AESGCM]]] = {}  # writes
        self._erasures: bytes | None = None

    def valid_for(self) -> str:
        """The erasure counter this process's cached keys are valid for ("" before the first
        batch has read it: nothing is cached then)."""
        if self._erasures is None and not self._by_identity:
            return ""
        return (self._erasures or b"0").decode()

    def observe_erasures(self, value: bytes | None) -> None:
        """The erasure counter as a batch read it: moved → forget every cached key."""
        if value != self._erasures:
            if self._erasures is not None or value is not None:
                self._cache.clear()
                self._by_identity.clear()
            self._erasures = value

    def _field(self, identity: str) -> str:
        return self.hub.keyring.blind_index("subject", identity)

    def keys_for(self, identities: list[str], pipe=None) -> dict[str, tuple[str, AESGCM]]:
        """The key of each identity. Known ones come from a per-process cache (``CACHE_S``),
        the rest from one read-only round trip; an identity without a key gets a new one,
        written with ``pipe`` (the ingest batch's own pipeline: no extra round trip, no extra
        fsync) or at once. Two workers creating one identity's key at the same moment both
        keep theirs readable (every key is stored under its id); the first becomes the one."""
        now = time.monotonic()
        out: dict[str, tuple[str, AESGCM]] = {}
        ask: list[str] = []
        for identity in set(identities):
            hit = self._by_identity.get(identity) if pipe is not None else None
            # (outside an ingest batch no erasure counter is read: always ask Redis)
            if hit is not None and now - hit[0] < CACHE_S:
                out[identity] = hit[1]
            else:
                ask.append(identity)
        if not ask:
            return out
        ring, k = self.hub.keyring, self.hub.keys
        fields = [self._field(i) for i in ask]
        reply = self.hub.scripts.subject_keys(keys=[k.subject_ids(), k.subject_keys()],
                                              args=fields)
        own = pipe is None
        if own:
            pipe = self.hub.redis.pipeline(transaction=False)
        created = 0
        for n, (identity, field) in enumerate(zip(ask, fields)):
            kid, wrapped = reply[2 * n], reply[2 * n + 1]
            if kid:
                kid = kid.decode()
                cached = self._cache.get(kid)
                aead = cached[1] if cached and cached[1] else AESGCM(
                    ring.decrypt_bytes(wrapped, _WRAP))
            else:  # new: the key id starts with the identity's hash, so erase finds them all
                kid = f"{SUBJECT_PREFIX}{field[:16]}.{secrets.token_hex(3)}"
                key = secrets.token_bytes(32)
                aead = AESGCM(key)
                pipe.hset(k.subject_keys(), kid, ring.encrypt_bytes(key, _WRAP))
                pipe.hsetnx(k.subject_ids(), field, kid)
                created += 1
            self._cache[kid] = (now, aead)
            self._by_identity[identity] = (now, (kid, aead))
            out[identity] = (kid, aead)
        if own and created:
            pipe.execute()
        return out

    def key_for(self, identity: str) -> tuple[str, AESGCM]:
        """One identity's key (replies, profile jobs): always checked with Redis."""
        return self.keys_for([identity])[identity]

    def lookup(self, kid: str) -> AESGCM | None:
        """The key with this id, or None when it was erased (the keyring's decrypt hook)."""
        hit = self._cache.get(kid)
        if hit is not None and time.monotonic() - hit[0] < CACHE_S:
            return hit[1]
        w = self.hub.redis.hget(self.hub.keys.subject_keys(), kid)
        aead = AESGCM(self.hub.keyring.decrypt_bytes(w, _WRAP)) if w else None
        self._cache[kid] = (time.monotonic(), aead)
        return aead

    def prefetch(self, kids: set[str]) -> None:
        """Read the keys with these ids that are not cached, in one round trip (before
        decrypting many customers' values, e.g. an inbox search): ``lookup`` then hits."""
        now = time.monotonic()
        ask = sorted(kid for kid in kids
                     if kid not in self._cache or now - self._cache[kid][0] >= CACHE_S)
        if not ask:
            return
        for kid, w in zip(ask, self.hub.redis.hmget(self.hub.keys.subject_keys(), ask)):
            self._cache[kid] = (now, AESGCM(self.hub.keyring.decrypt_bytes(w, _WRAP))
                                if w else None)

    def erase(self, identities: list[str], customer_id: str | None = None) -> int:
        """Destroy every key these identities ever had. Returns how many there were.

        A backup taken before holds the keys still (wrapped by the data keys, which do not
        change): the erasure is written down (``td:erasures``: the customer id and the
        identities' key hashes, nothing personal) so that restoring such a backup erases
        them again (core/workspace/backup.py)."""
        r, k = self.hub.redis, self.hub.keys
        fields = [self._field(i) for i in identities]
        kids: list[bytes] = []
        for f in fields:
            kids += [kid for kid, _ in r.hscan_iter(k.subject_keys(),
                                                    match=f"{SUBJECT_PREFIX}{f[:16]}.*")]
        pipe = r.pipeline(transaction=True)
        if kids:
            pipe.hdel(k.subject_keys(), *kids)
        if fields:
            pipe.hdel(k.subject_ids(), *fields)
        pipe.incr(k.subject_erasures())  # every process's next batch forgets its cache
        if customer_id is not None:
            pipe.hset(k.erasures(), customer_id, json.dumps(
                {"at": clock.now_ms(), "subjects": sorted({f[:16] for f in fields})}))
        pipe.execute()
        for kid in kids:
            self._cache.pop(kid.decode(), None)
        for identity in identities:
            self._by_identity.pop(identity, None)
        return len(kids)

    def reset_cache(self) -> None:
        """Forget which key each identity uses (another worker's new key won a race, or
        customers were erased): the next batch asks Redis."""
        self._by_identity.clear()

    def rewrap(self) -> int:
        """Re-wrap every identity key under the active data key (``tongdai keys rotate``)."""
        r, k, ring = self.hub.redis, self.hub.keys, self.hub.keyring
        n = 0
        for kid, w in r.hscan_iter(k.subject_keys(), count=500):
            if ring.key_id_of(w) != ring.active:
                new = ring.encrypt_bytes(ring.decrypt_bytes(w, _WRAP), _WRAP)
                n += self.hub.scripts.cas_hset(keys=[k.subject_keys()], args=[kid, w, new])
        return n
