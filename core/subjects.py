"""Per-identity keys: what makes erasing a customer a *crypto*-erasure.

Every channel identity (``channel|user``) gets its own random AES key the first time it writes;
its name, identifiers, reply address, contact cards and (with the switch on) message texts are
encrypted with that key, which is stored in Redis wrapped by the data keys. Erasing a customer
deletes their identities' keys: every copy of their data — in Redis, in an old AOF or RDB, in a
backup — is unreadable from then on, with no need to find it.

The raw event log stays under the data keys (the webhook does not parse, so it cannot know
whose event it is); ``erase`` deletes the customer's retained raw events and the log's
retention bounds what a backup can hold.
"""

from __future__ import annotations

import secrets
import time

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from core.crypto import SUBJECT_PREFIX

_WRAP = b"subject-key"
CACHE_S = 30.0  # a key read for decryption is reused this long (an erase reaches all in 30 s)


class Subjects:
    """The identity keys of one hub (Redis-backed, with a short read cache)."""

    def __init__(self, hub) -> None:
        self.hub = hub
        self._cache: dict[str, tuple[float, AESGCM | None]] = {}

    def _field(self, identity: str) -> str:
        return self.hub.keyring.blind_index("subject", identity)

    def keys_for(self, identities: list[str]) -> dict[str, tuple[str, AESGCM]]:
        """The key of each identity, created for those that have none: two round trips for a
        whole batch. A key created by two workers at once: the first one written wins."""
        r, k, ring = self.hub.redis, self.hub.keys, self.hub.keyring
        wanted = sorted(set(identities))
        if not wanted:
            return {}
        fields = [self._field(i) for i in wanted]
        kids = r.hmget(k.subject_ids(), fields)
        missing = [(i, f) for i, f, kid in zip(wanted, fields, kids) if kid is None]
        if missing:
            pipe = r.pipeline(transaction=False)
            for _, f in missing:
                kid = SUBJECT_PREFIX + secrets.token_hex(8)
                pipe.hsetnx(k.subject_keys(), kid, ring.encrypt_bytes(
                    secrets.token_bytes(32), _WRAP))
                pipe.hsetnx(k.subject_ids(), f, kid)
            pipe.execute()
            kids = r.hmget(k.subject_ids(), fields)
        now = time.monotonic()
        need = [kid.decode() for kid in kids
                if now - self._cache.get(kid.decode(), (-CACHE_S, None))[0] >= CACHE_S]
        if need:  # unwrap each key once per CACHE_S, not once per event
            for kid, w in zip(need, r.hmget(k.subject_keys(), need)):
                self._cache[kid] = (now, AESGCM(ring.decrypt_bytes(w, _WRAP)) if w else None)
        out = {}
        for identity, kid in zip(wanted, kids):
            aead = self._cache[kid.decode()][1]
            if aead is None:  # erased a moment ago by another process: a fresh key
                self._cache.pop(kid.decode(), None)
                r.hdel(k.subject_ids(), self._field(identity))
                return self.keys_for(identities)
            out[identity] = (kid.decode(), aead)
        return out

    def key_for(self, identity: str) -> tuple[str, AESGCM]:
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

    def erase(self, identities: list[str]) -> int:
        """Destroy these identities' keys. Returns how many existed."""
        r, k = self.hub.redis, self.hub.keys
        fields = [self._field(i) for i in identities]
        if not fields:
            return 0
        kids = [kid for kid in r.hmget(k.subject_ids(), fields) if kid]
        pipe = r.pipeline(transaction=True)
        if kids:
            pipe.hdel(k.subject_keys(), *kids)
        pipe.hdel(k.subject_ids(), *fields)
        pipe.execute()
        for kid in kids:
            self._cache.pop(kid.decode(), None)
        return len(kids)

    def rewrap(self) -> int:
        """Re-wrap every identity key under the active data key (``tongdai keys rotate``)."""
        r, k, ring = self.hub.redis, self.hub.keys, self.hub.keyring
        n = 0
        for kid, w in r.hscan_iter(k.subject_keys(), count=500):
            if ring.key_id_of(w) != ring.active:
                new = ring.encrypt_bytes(ring.decrypt_bytes(w, _WRAP), _WRAP)
                n += self.hub.scripts.cas_hset(keys=[k.subject_keys()], args=[kid, w, new])
        return n
