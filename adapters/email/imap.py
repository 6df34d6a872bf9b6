"""IMAP polling for email channels: every new mail of a folder into the core's durable store.

A mail is marked processed (flagged, or moved) and the uid cursor saved only after ``deliver``
returned for it, so a crash or a failed store means a retry, never a lost mail. New mails are
found by uid above the cursor; the ``$TongdaiStored`` keyword stops re-delivery when the cursor
cannot be trusted (UIDVALIDITY changed) or a mark was interrupted.
"""

from __future__ import annotations

import contextlib
import imaplib
import logging
import ssl
import threading
import time
from collections.abc import Callable
from typing import Protocol

from imapclient import DELETED, SEEN, IMAPClient
from pydantic import SecretStr, field_validator, model_validator

from tongdai.adapters.base import ChannelSettings

log = logging.getLogger(__name__)

STORED = "$TongdaiStored"
CHUNK = 50  # uids per FETCH
IDLE_MAX_S = 25 * 60  # RFC 2177: servers may drop an IDLE after 29 min
# A mail arriving between our last look at the folder and the IDLE command is not announced
# in the IDLE (dovecot 2.3 reported one after 67 s): every IDLE ends after this long, and the
# poll that follows catches such a mail. The cost is one SELECT + SEARCH per slice.
IDLE_SLICE_S = 20.0
TIMEOUT_S = 60.0  # socket timeout: a silent server is a dead connection
BACKOFF_MAX_S = 60.0
# What a broken or refusing connection raises (imapclient's errors derive from IMAP4.error).
CONNECTION_ERRORS = (imaplib.IMAP4.error, OSError)


class ImapSettings(ChannelSettings):
    """Where the mailbox is and what "processed" means for it."""

    host: str
    port: int = 993
    tls: bool = True  # implicit TLS (993); False: plain, then STARTTLS when starttls is true
    starttls: bool = False
    user: str
    password: SecretStr
    folder: str = "INBOX"
    processed: str = "flag"  # "flag": \Seen + $TongdaiStored; "move:<folder>": moved there
    idle: bool = True
    poll_seconds: float = 60
    verify_tls: bool = True  # False only for self-signed test servers

    @field_validator("processed")
    @classmethod
    def _processed(cls, v: str) -> str:
        """Only the two documented forms, and a move needs a folder."""
        if v != "flag" and not (v.startswith("move:") and v[5:].strip()):
            raise ValueError('"flag", or "move:<folder>" (e.g. "move:Tongdai")')
        return v

    @field_validator("poll_seconds")
    @classmethod
    def _positive(cls, v: float) -> float:
        """A zero interval would poll the server in a tight loop."""
        if v <= 0:
            raise ValueError("must be above 0 seconds")
        return v

    @model_validator(mode="after")
    def _move_elsewhere(self) -> ImapSettings:
        """Moving into the polled folder itself would move the same mails on every poll."""
        if self.move_to == self.folder:
            raise ValueError(f"processed: move:<folder> must name a folder other than {self.folder}")
        return self

    @property
    def move_to(self) -> str | None:
        """The folder processed mails go to, or None when they are only flagged."""
        return self.processed[5:].strip() if self.processed.startswith("move:") else None


class UidCursor(Protocol):
    """Where a poller keeps its place: the folder's UIDVALIDITY and the last stored uid."""

    def load(self) -> tuple[int | None, int]:
        """(uidvalidity, last stored uid); (None, 0) before the first mail."""

    def save(self, uidvalidity: int, last_uid: int) -> None:
        """Remember the place durably; called after each stored mail."""


class MemoryUidCursor:
    """A UidCursor for one process (tests, tools); the hub keeps its cursor in Redis."""

    def __init__(self, uidvalidity: int | None = None, last_uid: int = 0) -> None:
        self.uidvalidity, self.last_uid = uidvalidity, last_uid

    def load(self) -> tuple[int | None, int]:
        """The saved place."""
        return self.uidvalidity, self.last_uid

    def save(self, uidvalidity: int, last_uid: int) -> None:
        """Keep the place in memory."""
        self.uidvalidity, self.last_uid = uidvalidity, last_uid


class ImapPoller:
    """One folder of one mailbox: ``poll_once`` for a single pass, ``run`` as a service."""

    def __init__(self, settings: ImapSettings, deliver: Callable[[bytes], None],
                 cursor: UidCursor, label: str = "") -> None:
        self.settings, self.deliver, self.cursor = settings, deliver, cursor
        self.label = label or settings.host  # never the user: it is often an address
        self._client: IMAPClient | None = None
        # (UIDVALIDITY, UIDNEXT) of the folder as the last poll saw it.
        self._view: tuple[int, int | None] = (0, None)

    def poll_once(self) -> int:
        """Connect if needed and store every new mail; return how many were delivered.

        ``deliver``'s exception propagates, leaving that mail and later ones for the next poll.
        On a connection error the connection is dropped, so the next call reconnects.
        """
        try:
            client = self._client or self._connect()
            self._view = self._select(client)
            uidvalidity, last = self.cursor.load()
            if uidvalidity != self._view[0]:
                if uidvalidity is not None:
                    log.warning("%s: UIDVALIDITY of %s changed; rescanning it, skipping mails "
                                "marked %s", self.label, self.settings.folder, STORED)
                last = 0
                self.cursor.save(self._view[0], 0)
            return self._store_new(client, last)
        except CONNECTION_ERRORS:
            self._drop()
            raise

    def run(self, stop: threading.Event) -> None:
        """Poll, then wait for new mail (IDLE or sleep), until ``stop`` is set.

        Errors are logged and retried after a pause doubling from 1 s to 60 s; a dropped
        connection is reopened and work resumes from the cursor.
        """
        backoff = 1.0
        try:
            while not stop.is_set():
                try:
                    self.poll_once()
                    backoff = 1.0
                    self._wait(stop)
                except Exception as e:  # noqa: BLE001 — IMAP, network or deliver: all retried
                    if isinstance(e, CONNECTION_ERRORS):
                        self._drop()
                    log.warning("%s: %s; retrying in %.0f s", self.label, self._describe(e),
                                backoff)
                    stop.wait(backoff)
                    backoff = min(backoff * 2, BACKOFF_MAX_S)
        finally:
            self.close()

    def close(self) -> None:
        """Log out (politely; a dead connection is just dropped)."""
        if self._client is not None:
            with contextlib.suppress(*CONNECTION_ERRORS):  # already broken: nothing to tell
                self._client.logout()
            self._drop()

    # -- steps ---------------------------------------------------------------------------------
    def _connect(self) -> IMAPClient:
        """Open, authenticate, and create the move target if missing."""
        s = self.settings
        context = self._tls_context() if s.tls or s.starttls else None
        client = IMAPClient(s.host, s.port, ssl=s.tls, ssl_context=context, timeout=TIMEOUT_S)
        try:
            if s.starttls and not s.tls:
                client.starttls(context)
            client.login(s.user, s.password.get_secret_value())
            if s.move_to and not client.folder_exists(s.move_to):
                client.create_folder(s.move_to)
        except BaseException:
            with contextlib.suppress(*CONNECTION_ERRORS):
                client.shutdown()
            raise
        self._client = client
        log.info("%s: connected (IDLE %s)", self.label,
                 "used" if self._idles(client) else "not used")
        return client

    def _select(self, client: IMAPClient) -> tuple[int, int | None]:
        """Open the folder afresh: (UIDVALIDITY, UIDNEXT) of the view later commands see."""
        info = client.select_folder(self.settings.folder)
        return info[b"UIDVALIDITY"], info.get(b"UIDNEXT")

    def _store_new(self, client: IMAPClient, last: int) -> int:
        """Deliver, mark and record each mail above ``last`` not yet marked, in uid order."""
        above = ["UID", f"{last + 1}:*"]
        # "N:*" always matches the highest uid, even below N: hence the filters on uid > last.
        if self.settings.move_to:
            # Delivered, but the move did not happen (an interrupted pass): just move them.
            stranded = [u for u in client.search([*above, "KEYWORD", STORED, "UNDELETED"])
                        if u > last]
            if stranded:
                self._mark(client, stranded)
        new = sorted(u for u in client.search([*above, "UNKEYWORD", STORED]) if u > last)
        delivered = 0
        for start in range(0, len(new), CHUNK):
            chunk = new[start:start + CHUNK]
            bodies = client.fetch(chunk, ["BODY.PEEK[]"])  # PEEK: \Seen only once stored
            for uid in chunk:
                if uid not in bodies:
                    continue  # expunged by someone else meanwhile
                self.deliver(bodies[uid][b"BODY[]"])
                self._mark(client, [uid])
                self.cursor.save(self._view[0], uid)
                delivered += 1
        if delivered:
            log.info("%s: stored %d new mail(s)", self.label, delivered)
        return delivered

    def _mark(self, client: IMAPClient, uids: list[int]) -> None:
        """Mark delivered mails processed; remove from the folder only these uids."""
        target = self.settings.move_to
        # The keyword travels with a moved copy too: it is what a rescan skips.
        client.add_flags(uids, [STORED] if target else [SEEN, STORED], silent=True)
        if not target:
            return
        if client.has_capability("MOVE"):
            client.move(uids, target)
            return
        client.copy(uids, target)
        client.add_flags(uids, [DELETED], silent=True)
        if client.has_capability("UIDPLUS"):
            client.uid_expunge(uids)
        # Without UIDPLUS, EXPUNGE would also remove mails others marked \Deleted: leave them.

    def _wait(self, stop: threading.Event) -> None:
        """Until new mail, ``poll_seconds`` (at most 25 min; with IDLE at most ``IDLE_SLICE_S``)
        or ``stop``, whichever first."""
        client = self._client
        deadline = time.monotonic() + min(self.settings.poll_seconds, IDLE_MAX_S)
        if client is None or not self._idles(client):
            stop.wait(max(0.0, deadline - time.monotonic()))
            return
        deadline = min(deadline, time.monotonic() + IDLE_SLICE_S)
        # A mail appended while we polled was announced (EXISTS) in the answer to a command
        # whose untagged responses imapclient drops: IDLE would not announce it again. So
        # compare a fresh view with the polled one, and go straight into IDLE when equal.
        if self._select(client) != self._view:
            return
        client.idle()
        try:
            while not stop.is_set() and time.monotonic() < deadline:
                began = time.monotonic()
                responses = client.idle_check(timeout=1)  # short: stop is noticed quickly
                if any(r[1] == b"EXISTS" or r[0] == b"BYE" for r in responses if len(r) > 1):
                    break
                # idle_check returns nothing, at once, when the server closed the socket:
                # leave IDLE, where a dead connection raises.
                if not responses and time.monotonic() - began < 0.5:
                    break
        finally:
            client.idle_done()

    # -- small answers ---------------------------------------------------------------------------
    def _idles(self, client: IMAPClient) -> bool:
        """Whether to wait with IDLE: wanted and offered."""
        return self.settings.idle and client.has_capability("IDLE")

    def _tls_context(self) -> ssl.SSLContext:
        """The system's trust store, or no verification at all for self-signed test servers."""
        context = ssl.create_default_context()
        if not self.settings.verify_tls:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        return context

    def _describe(self, error: BaseException) -> str:
        """An error for the log: type and message, the password masked should it appear."""
        text = f"{type(error).__qualname__}: {error}"
        password = self.settings.password.get_secret_value()
        return text.replace(password, "***") if password else text

    def _drop(self) -> None:
        """Forget the connection without talking to the server."""
        client, self._client = self._client, None
        if client is not None:
            with contextlib.suppress(*CONNECTION_ERRORS):  # the socket is gone already
                client.shutdown()
