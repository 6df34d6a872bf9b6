"""Files customers send (mail attachments, a mail's original source), kept on disk.

Big values do not belong in Redis: a message keeps ``file_id = "blob:<sha256>"`` and the bytes
sit in ``storage.blobs`` under that hash, encrypted with the customer-data keys (AES-GCM, like
every other piece of customer data at rest). The same file sent twice is stored once.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from core.crypto import Keyring
from core.errors import NotFound

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

    def _write(self, path: Path, data: bytes) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        with open(tmp, "wb") as f:
            f.write(self.keyring.encrypt_bytes(data, _PURPOSE))
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)  # atomic: readers never see half a file

    def put(self, data: bytes) -> str:
        """Store ``data`` (once per content) and return its ``blob:<sha256>`` id."""
        digest = hashlib.sha256(data).hexdigest()
        path = self._path(digest)
        if not path.exists():
            self._write(path, data)
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
            if kid is not None and kid != self.keyring.active:
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
