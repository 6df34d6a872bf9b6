"""IMAP polling against a real dovecot (tests/fakes/dovecot.py): delivery order, marking only
after the store, resume by uid and by keyword, IDLE, reconnects and shutdown."""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable, Iterator
from email import message_from_bytes
from pathlib import Path
from uuid import uuid4

import pytest
from imapclient import DELETED, SEEN
from pydantic import ValidationError

from tests.fakes.dovecot import PASSWORD, USER, Dovecot, running_dovecot
from tongdai.adapters.email.imap import ImapPoller, ImapSettings, MemoryUidCursor

STORED = b"$TongdaiStored"
SAMPLE = Path("/work/shared/corpus/email/07_quoted_printable.eml")
FALLBACK_SAMPLE = (b"From: Bob <bob@example.com>\nTo: roman@mailgunhq.com\nSubject: Hello\n"
                   b"Message-ID: <x@mail.gmail.com>\nMIME-Version: 1.0\n\nHello Bob,\n")


@pytest.fixture(scope="module")
def server() -> Iterator[Dovecot]:
    """One dovecot for the tests that neither restart it nor change its capabilities."""
    with running_dovecot() as s:
        yield s


@pytest.fixture
def folder(server: Dovecot) -> str:
    """A folder of this test's own on the shared server."""
    name = f"T{uuid4().hex[:8]}"
    c = server.client()
    c.create_folder(name)
    c.logout()
    return name


def mail() -> tuple[str, bytes]:
    """(Message-ID, raw mail): a real customer mail with a fresh Message-ID, CRLF as on the
    wire (so the bytes delivered can be compared with the bytes appended)."""
    raw = SAMPLE.read_bytes() if SAMPLE.exists() else FALLBACK_SAMPLE
    mid = f"<{uuid4().hex}@mail.gmail.com>"
    raw = re.sub(rb"(?m)^Message-ID: .*$", f"Message-ID: {mid}".encode(), raw, count=1)
    return mid, raw.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")


def put(server: Dovecot, folder: str, flags: tuple[str, ...] = ()) -> tuple[str, bytes]:
    """Append a new mail; return (Message-ID, raw)."""
    mid, raw = mail()
    server.append(raw, folder, flags)
    return mid, raw


def flags_by_id(server: Dovecot, folder: str) -> dict[str, set[bytes]]:
    """Message-ID → flags of every mail in ``folder``, seen from another connection."""
    c = server.client()
    try:
        c.select_folder(folder, readonly=True)
        data = c.fetch(c.search(["ALL"]), ["FLAGS", "BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)]"])
    finally:
        c.logout()
    return {message_id(d[b"BODY[HEADER.FIELDS (MESSAGE-ID)]"]): set(d[b"FLAGS"])
            for d in data.values()}


def message_id(raw: bytes) -> str:
    """The Message-ID header of a raw mail."""
    return message_from_bytes(raw)["Message-ID"].strip()


def settings(server: Dovecot, folder: str, **overrides: object) -> ImapSettings:
    """Settings for the plain port (overrides win)."""
    values = {"host": "127.0.0.1", "port": server.port, "tls": False, "user": USER,
              "password": PASSWORD, "folder": folder, "poll_seconds": 300, **overrides}
    return ImapSettings(**values)


class Store:
    """The core's store as the poller sees it: records, can fail, can look at the server."""

    def __init__(self, check: Callable[[str], None] | None = None) -> None:
        self.ids: list[str] = []
        self.raws: list[bytes] = []
        self.fail: set[str] = set()
        self.check = check

    def __call__(self, raw: bytes) -> None:
        mid = message_id(raw)
        if self.check:
            self.check(mid)
        if mid in self.fail:
            raise RuntimeError("raw log unavailable")
        self.ids.append(mid)
        self.raws.append(raw)


def wait_until(condition: Callable[[], bool], timeout: float = 30.0) -> None:
    """Poll ``condition`` until true; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.05)


def test_flag_mode_stores_each_new_mail_once_in_uid_order_then_flags_it(server, folder):
    mails = [put(server, folder) for _ in range(60)]  # more than one FETCH chunk
    ids = [m for m, _ in mails]

    def unmarked_while_stored(mid: str) -> None:
        assert not {SEEN, STORED} & flags_by_id(server, folder)[mid]

    store = Store(unmarked_while_stored)
    poller = ImapPoller(settings(server, folder), store, MemoryUidCursor(), label="mail")
    assert poller.poll_once() == 60
    assert poller.poll_once() == 0
    poller.close()
    assert store.ids == ids
    assert store.raws == [raw for _, raw in mails]  # byte for byte
    assert all({SEEN, STORED} <= f for f in flags_by_id(server, folder).values())


def test_move_mode_moves_each_mail_after_it_is_stored(server, folder):
    target = f"{folder}-stored"
    ids = [put(server, folder)[0] for _ in range(3)]

    def still_in_source(mid: str) -> None:
        assert mid in flags_by_id(server, folder)

    store = Store(still_in_source)
    poller = ImapPoller(settings(server, folder, processed=f"move:{target}"), store,
                        MemoryUidCursor())
    assert poller.poll_once() == 3  # the target folder did not exist: created
    poller.close()
    assert store.ids == ids
    assert flags_by_id(server, folder) == {}
    moved = flags_by_id(server, target)
    assert sorted(moved) == sorted(ids) and all(STORED in f for f in moved.values())


@pytest.mark.parametrize("capability, expunges", [("IMAP4rev1 IDLE UIDPLUS", True),
                                                   ("IMAP4rev1 IDLE", False)])
def test_move_without_the_move_extension_never_expunges_other_mails(capability, expunges):
    with running_dovecot(capability) as server:
        # Someone else's mail marked \Deleted: an EXPUNGE of the folder would remove it.
        other = put(server, "INBOX", (DELETED.decode(), STORED.decode()))[0]
        ids = [put(server, "INBOX")[0] for _ in range(2)]
        s = settings(server, "INBOX", processed="move:Stored")
        poller = ImapPoller(s, Store(), MemoryUidCursor())
        assert poller.poll_once() == 2
        assert poller.poll_once() == 0  # copied once, not again
        poller.close()
        left = flags_by_id(server, "INBOX")
        assert sorted(flags_by_id(server, "Stored")) == sorted(ids)
        assert other in left
        if expunges:
            assert set(left) == {other}
        else:
            assert all({DELETED, STORED} <= left[m] for m in ids)


def test_a_new_poller_resumes_after_the_cursor(server, folder):
    cursor = MemoryUidCursor()
    first = [put(server, folder)[0] for _ in range(2)]
    poller = ImapPoller(settings(server, folder), Store(), cursor)
    assert poller.poll_once() == 2
    poller.close()
    # Someone clears our keyword: only the cursor now keeps the last mail from a 2nd delivery
    # (and "UID 3:*" still matches uid 2, the highest: it must be filtered out).
    c = server.client()
    c.select_folder(folder)
    c.remove_flags(c.search(["ALL"]), [STORED])
    c.logout()
    store = Store()
    again = ImapPoller(settings(server, folder), store, cursor)
    assert again.poll_once() == 0
    later = put(server, folder)[0]
    assert again.poll_once() == 1
    again.close()
    assert store.ids == [later] and later not in first


def test_a_changed_uidvalidity_rescans_but_skips_mails_already_stored(server, folder):
    cursor = MemoryUidCursor()
    poller = ImapPoller(settings(server, folder), Store(), cursor)
    put(server, folder)
    put(server, folder)
    assert poller.poll_once() == 2
    poller.close()
    old_validity = cursor.load()[0]
    # A server migration: the folder is recreated (new UIDVALIDITY), its mails keep flags.
    c = server.client()
    c.select_folder(folder)
    kept = c.fetch(c.search(["ALL"]), ["FLAGS", "BODY.PEEK[]"])
    c.close_folder()
    c.delete_folder(folder)
    c.create_folder(folder)
    for d in kept.values():
        c.append(folder, d[b"BODY[]"], flags=d[b"FLAGS"])
    new_validity = c.select_folder(folder)[b"UIDVALIDITY"]
    c.logout()
    assert new_validity != old_validity
    fresh = put(server, folder)[0]
    store = Store()
    poller = ImapPoller(settings(server, folder), store, cursor)
    assert poller.poll_once() == 1
    poller.close()
    assert store.ids == [fresh]
    assert cursor.load() == (new_validity, 3)


def test_a_failed_store_leaves_that_mail_and_later_ones_for_the_next_poll(server, folder):
    ids = [put(server, folder)[0] for _ in range(3)]
    store, cursor = Store(), MemoryUidCursor()
    store.fail.add(ids[1])
    poller = ImapPoller(settings(server, folder), store, cursor)
    with pytest.raises(RuntimeError, match="raw log unavailable"):
        poller.poll_once()
    flags = flags_by_id(server, folder)
    assert store.ids == ids[:1] and {SEEN, STORED} <= flags[ids[0]]
    assert not {SEEN, STORED} & (flags[ids[1]] | flags[ids[2]])
    assert cursor.load()[1] == 1
    store.fail.clear()
    assert poller.poll_once() == 2
    poller.close()
    assert store.ids == ids


@pytest.mark.parametrize("tls, starttls, verify, works", [
    (True, False, False, True), (False, True, False, True), (True, False, True, False)])
def test_tls_implicit_and_starttls(server, folder, tls, starttls, verify, works):
    mid = put(server, folder)[0]
    store = Store()
    s = settings(server, folder, tls=tls, starttls=starttls, verify_tls=verify,
                 port=server.tls_port if tls else server.port)
    poller = ImapPoller(s, store, MemoryUidCursor())
    if works:
        assert poller.poll_once() == 1 and store.ids == [mid]
    else:  # self-signed: refused unless verification is off
        with pytest.raises(OSError, match="CERTIFICATE_VERIFY_FAILED"):
            poller.poll_once()
    poller.close()


def start(poller: ImapPoller) -> tuple[threading.Event, threading.Thread]:
    """``poller.run`` in a thread, as ``tongdai imap`` runs it."""
    stop = threading.Event()
    thread = threading.Thread(target=poller.run, args=(stop,), daemon=True)
    thread.start()
    return stop, thread


def halt(stop: threading.Event, thread: threading.Thread) -> None:
    """Set stop; run() must return within a few seconds."""
    stop.set()
    thread.join(5)
    assert not thread.is_alive()


def test_idle_delivers_new_mail_without_waiting_for_the_poll_interval(server, folder, caplog):
    caplog.set_level(logging.INFO, "tongdai.adapters.email.imap")
    store = Store()
    stop, thread = start(ImapPoller(settings(server, folder), store, MemoryUidCursor()))
    first = put(server, folder)[0]
    wait_until(lambda: store.ids == [first])  # the first poll, or IDLE
    time.sleep(0.5)  # now idling: poll_seconds is 300, so only IDLE can bring the next one
    second = put(server, folder)[0]
    wait_until(lambda: store.ids == [first, second])
    halt(stop, thread)
    assert "IDLE used" in caplog.text


def test_a_mail_arriving_just_before_idle_is_not_left_waiting(server, folder, monkeypatch):
    """Appended between the poller's last look at the folder and its IDLE command, a mail is
    not announced in that IDLE (dovecot told us after 67 s; this test failed now and then
    under load). The IDLE slice ends and the next poll takes it."""
    from tongdai.adapters.email import imap

    monkeypatch.setattr(imap, "IDLE_SLICE_S", 2.0)
    looks = {"n": 0}
    late: list[str] = []
    real_select = imap.ImapPoller._select

    def select_then_append(self, client):
        view = real_select(self, client)
        looks["n"] += 1
        if looks["n"] == 2:  # the look just before the first IDLE
            late.append(put(server, folder)[0])
        return view

    monkeypatch.setattr(imap.ImapPoller, "_select", select_then_append)
    store = Store()
    stop, thread = start(ImapPoller(settings(server, folder), store, MemoryUidCursor()))
    wait_until(lambda: bool(late) and store.ids == late, timeout=15)
    halt(stop, thread)


def test_a_mail_arriving_during_a_poll_does_not_wait_for_the_next_interval(server, folder):
    # The server announces it in the answer to one of the poll's own commands, not in IDLE.
    late: list[str] = []

    def append_while_storing(mid: str) -> None:
        if not late:
            late.append(put(server, folder)[0])

    store = Store(append_while_storing)
    first = put(server, folder)[0]
    stop, thread = start(ImapPoller(settings(server, folder), store, MemoryUidCursor()))
    wait_until(lambda: store.ids == [first, *late])
    halt(stop, thread)


@pytest.mark.parametrize("drop", ["restart", "kill_sessions"])
def test_run_reconnects_after_the_server_drops_it(drop, caplog):
    caplog.set_level(logging.DEBUG, "tongdai.adapters.email.imap")
    with running_dovecot() as server:
        store = Store()
        stop, thread = start(ImapPoller(settings(server, "INBOX"), store, MemoryUidCursor()))
        first = put(server, "INBOX")[0]
        wait_until(lambda: store.ids == [first], timeout=30)  # generous: CI machines are busy
        if drop == "restart":
            server.stop()
            time.sleep(1.5)  # down long enough for the first reconnect (after 1 s) to fail
            server.start()
        else:  # the session dies without a BYE, as in a crash
            assert server.kill_sessions() >= 1  # ours, maybe an append session winding down
        second = put(server, "INBOX")[0]
        wait_until(lambda: store.ids == [first, second], timeout=30)
        halt(stop, thread)
    # Dropped, then (restart) at least one reconnect failed while the server was down.
    assert caplog.text.count("retrying in") >= (2 if drop == "restart" else 1)
    for secret in (PASSWORD, first, "bob@example.com", "roman@mailgunhq.com"):
        assert secret not in caplog.text


@pytest.mark.parametrize("idle", [True, False])
def test_stop_ends_run_quickly(server, folder, idle):
    mid = put(server, folder)[0]  # before the start: without IDLE only the first poll sees it
    store = Store()
    poller = ImapPoller(settings(server, folder, idle=idle), store, MemoryUidCursor())
    stop, thread = start(poller)
    wait_until(lambda: store.ids == [mid])
    time.sleep(0.3)  # waiting for mail now
    began = time.monotonic()
    halt(stop, thread)
    assert time.monotonic() - began < 3


@pytest.mark.parametrize("processed", ["junk", "move:", "move: ", "move:INBOX"])
def test_processed_must_be_flag_or_a_move_to_another_folder(processed):
    with pytest.raises(ValidationError, match="move:<folder>"):
        ImapSettings(host="h", user="u", password="p", processed=processed)
