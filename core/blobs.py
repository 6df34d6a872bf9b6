"""Files customers send (mail attachments, a mail's original source), kept on disk.

Big values do not belong in Redis: a message keeps ``file_id = "blob:<sha256>"`` and the bytes
sit in ``storage.blobs`` under that hash, encrypted with the customer-data keys (AES-GCM, like
every other piece of customer data at rest), with the sender identity's own key when there
is one (``core/subjects.py``): erasing the customer makes the file unreadable everywhere.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from tongdai.core.crypto import SUBJECT_PREFIX, Keyring, SubjectKey
from tongdai.core.errors import NotFound

PREFIX = "blob:"
_PURPOSE = b"blob"


class BlobStore:
    """Content-addressed, encrypted files under one directory."""

    def __init__(self, root: Path, keyring: Keyring) -> None:
        self.root = root
        self.keyring = keyring

    def _path(self, digest: str) -> Path:
        if len(digest) != 64 or not all(c in "0123456789abcdef" for c in digest):
            raise NotFound(f"no file {digest!r}")
        return self.root / digest[:2] / digest

    def _write(self, path: Path, data: bytes, subject: SubjectKey = None) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        with open(tmp, "wb") as f:
            f.write(self.keyring.encrypt_bytes(data, _PURPOSE, subject))
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)  # atomic: readers never see half a file

    def put(self, data: bytes, subject: SubjectKey = None) -> str:
        """Store ``data`` and return its ``blob:<id>``. With a customer identity's key the file
        is theirs alone (named by a hash of key id and content, encrypted with that key): the
        same logo sent by two customers is two files, so erasing one never touches the other."""
        h = hashlib.sha256()
        if subject is not None:
            h.update(subject[0].encode() + b"\0")
        h.update(data)
        digest = h.hexdigest()
        path = self._path(digest)
        if not path.exists():
            self._write(path, data, subject)
        return PREFIX + digest

    def get(self, blob_id: str) -> bytes:
        """The bytes of a ``blob:<sha256>`` id; NotFound when it is not here."""
        digest = blob_id.removeprefix(PREFIX)
        path = self._path(digest)
        try:
            sealed = path.read_bytes()
        except FileNotFoundError:
            raise NotFound(f"no file {blob_id!r} in {self.root}") from None
        return self.keyring.decrypt_bytes(sealed, _PURPOSE)

    def reseal(self) -> int:
        """Re-encrypt every file still under an older key (``tongdai keys rotate``)."""
        n = 0
        if not self.root.exists():
            return 0
        for path in self.root.glob("??/*"):
            if path.suffix == ".tmp" or not path.is_file():
                continue
            sealed = path.read_bytes()
            kid = self.keyring.key_id_of(sealed)
            # files under a customer's own key stay: that key is re-wrapped instead
            if kid is not None and kid != self.keyring.active and not kid.startswith(
                    SUBJECT_PREFIX):
                self._write(path, self.keyring.decrypt_bytes(sealed, _PURPOSE))
                n += 1
        return n

    def delete(self, blob_id: str) -> int:
        """Remove a file (a customer's erasure). Returns 1 when it was there."""
        try:
            self._path(blob_id.removeprefix(PREFIX)).unlink()
        except (FileNotFoundError, NotFound):
            return 0
        return 1
