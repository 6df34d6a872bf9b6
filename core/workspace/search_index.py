"""The search index: SQLite FTS5 with the trigram tokenizer, one file per node.

What it holds (``<data dir>/search.sqlite3``, mode 0600): for each message, its text and mail
subject *folded* — lower case, no diacritics, Chinese in Simplified (OpenCC ``tw2sp``) — with
search helpers appended (Chinese as words of one and two characters, numbers written
together, phones in E.164); for each customer, their name and identifiers folded the same
way. Texts are encrypted at rest in Redis; this file is plaintext-derived, so it lives beside
Redis's own files, is never part of a backup (``tongdai search reindex`` rebuilds it), and
loses a customer's rows when they are erased (``forget``; secure_delete zeroes the pages).

Rows: ``msg`` (FTS5, rowid = the message's time in ms × 1024 + a hash of its id: newest
first is rowid order, and a date range is a rowid range) with ``msg_meta`` (rowid →
conversation, message id); ``cust`` (FTS5, rowid = customer id); ``conv_channel`` (every
channel each conversation has had: a search with a channel checks only those in Redis —
ingest sets a conversation's channel only with a message it stores, so once the reactor has
read that message the table holds the channel; a superset that narrows, never decides). Every
write is an upsert: the change feed delivers at least once.

Matching: a query is folded like the text and matched as a substring (trigrams); a query of
one or two characters matches a whole word (Latin) or word of the helpers (Chinese).
"""

from __future__ import annotations

import functools
import os
import re
import sqlite3
import threading
import zlib
from collections.abc import Iterable, Iterator
from pathlib import Path

from tongdai.core.identity import identifiers
from tongdai.core.pipeline.language import HAN
from tongdai.core.pipeline.tagging import fold, fold_chinese

FILE = "search.sqlite3"
SCHEMA = """
CREATE VIRTUAL TABLE IF NOT EXISTS msg USING fts5(body, tokenize='trigram');
CREATE TABLE IF NOT EXISTS msg_meta(id INTEGER PRIMARY KEY, conv TEXT NOT NULL,
                                    mid TEXT NOT NULL, UNIQUE(conv, mid));
CREATE INDEX IF NOT EXISTS msg_meta_conv ON msg_meta(conv, id);
CREATE VIRTUAL TABLE IF NOT EXISTS cust USING fts5(body, tokenize='trigram');
CREATE TABLE IF NOT EXISTS state(k TEXT PRIMARY KEY, v TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS conv_channel(conv TEXT NOT NULL, channel TEXT NOT NULL,
                                        PRIMARY KEY(conv, channel)) WITHOUT ROWID;
"""
CHANNELS = "channels"  # state: conv_channel is complete (built with it, or filled since)
MARK = 64  # a walk with a channel returns one in MARK of the rows it skips (``messages``)
_WORD = re.compile(r"\w+")
_HAN_RUN = re.compile(HAN.pattern + "+")
_DIGIT = re.compile(r"\d")
_DIGITS8 = re.compile(r"\d(?:\D{0,2}\d){7}")  # eight digits, a separator or two apart
_PHONE = re.compile(r"\+?\d[\d .\-()]{6,20}\d")


def _han(text: str) -> bool:
    return _HAN_RUN.search(text) is not None


@functools.lru_cache(maxsize=1 << 17)
def _fold_word(word: str) -> str:
    return fold(word)


def _fold(text: str) -> str:
    """``fold`` a word at a time (cached: a hub's words repeat), ASCII without a look-up."""
    if text.isascii():
        return text.lower()
    return " ".join(_fold_word(w) for w in text.split())


def fold_text(text: str) -> str:
    """Lower case, no diacritics, Simplified Chinese, words only: ``"Nạp THẺ #12"`` → ``"nap
    the 12"``."""
    t = _fold(text)
    if _han(t):
        t = fold_chinese(t)
    return " ".join(_WORD.findall(t))


def body(text: str, regions: tuple[str, ...]) -> str:
    """What the index holds for a text: the folded words between spaces, then the helpers."""
    folded = fold_text(text)
    extra: list[str] = []
    for run in _HAN_RUN.findall(folded):  # 退款 is two characters: below a trigram
        extra += [run[i:i + 2] for i in range(len(run) - 1)] + list(run)
    for word in (w for w in text.split() if _DIGIT.search(w)):  # DH-123/45 → dh12345
        compact = "".join(_WORD.findall(_fold(word))).replace("_", "")
        if compact and compact not in folded:
            extra.append(compact)
    for m in _PHONE.findall(text) if _DIGITS8.search(text) else ():
        if (e164 := identifiers.phone(m, regions)) is not None:
            extra.append(e164[1:])
    return f" {folded} " + (" ".join(dict.fromkeys(extra)) + " " if extra else "")


def match(q: str, regions: tuple[str, ...]) -> str | None:
    """The FTS5 query for what an agent typed (None: nothing to look for)."""
    folded = fold_text(q)
    if not folded:
        return None
    alts = [folded if len(folded) >= 3 else f" {folded} "]
    compact = "".join(_WORD.findall(_fold(q))).replace("_", "")
    if any(c.isdigit() for c in compact) and len(compact) >= 3 and compact != folded:
        alts.append(compact)
    if _PHONE.fullmatch(q.strip()) and (e164 := identifiers.phone(q.strip(), regions)):
        alts.append(e164[1:])
    return " OR ".join('"' + a.replace('"', " ") + '"' for a in dict.fromkeys(alts))


def rowid(ts_ms: int, conv: str, mid: str) -> int:
    return max(int(ts_ms), 0) * 1024 + (zlib.crc32(f"{conv}|{mid}".encode()) & 1023)


TOP = 2**62  # above every rowid


def below(until_ms: int | None) -> int:
    """The first rowid after ``until_ms`` (a message's time, inclusive): TOP without one."""
    return TOP if until_ms is None else (until_ms + 1) * 1024


class SearchIndex:
    """One connection to the index file (per thread: sqlite3 connections stay in theirs)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        if not path.exists():
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600))
        self.db = sqlite3.connect(path, timeout=30, isolation_level=None)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.execute("PRAGMA secure_delete=ON")  # an erased customer's pages are zeroed
        self.db.executescript(SCHEMA)
        self.inode = os.stat(path).st_ino

    # -- writing -------------------------------------------------------------------------------
    def put_messages(self, rows: list[tuple[str, str, int, str]],
                     channels: Iterable[tuple[str, str]] = ()) -> None:
        """Upsert (conversation, message id, time ms, body) rows, and record (conversation,
        channel) pairs (``put_channels``), in one transaction."""
        pairs = list(dict.fromkeys(channels))
        if not rows and not pairs:
            return
        db = self.db
        db.execute("BEGIN IMMEDIATE")
        try:
            db.executemany("INSERT OR IGNORE INTO conv_channel(conv, channel) VALUES (?,?)",
                           pairs)
            for conv, mid, ts, text in rows:
                old = db.execute("SELECT id FROM msg_meta WHERE conv=? AND mid=?",
                                 (conv, mid)).fetchone()
                if old is not None:
                    db.execute("DELETE FROM msg WHERE rowid=?", old)
                    db.execute("DELETE FROM msg_meta WHERE id=?", old)
                rid = rowid(ts, conv, mid)
                while db.execute("SELECT 1 FROM msg_meta WHERE id=?", (rid,)).fetchone():
                    rid += 1  # two messages of one millisecond and one hash: the next free
                db.execute("INSERT INTO msg_meta(id, conv, mid) VALUES (?,?,?)", (rid, conv, mid))
                db.execute("INSERT INTO msg(rowid, body) VALUES (?,?)", (rid, text))
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise

    def load_messages(self, rows: list[tuple[str, str, int, str]]) -> None:
        """Bulk load into an index that holds none of these messages yet (a benchmark's data
        set): no look-up of earlier versions."""
        db = self.db
        ids = [(rowid(ts, conv, mid), conv, mid, text) for conv, mid, ts, text in rows]
        db.execute("BEGIN IMMEDIATE")
        try:
            db.executemany("INSERT INTO msg_meta(id, conv, mid) VALUES (?,?,?)",
                           [r[:3] for r in ids])
            db.executemany("INSERT INTO msg(rowid, body) VALUES (?,?)",
                           [(r[0], r[3]) for r in ids])
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise

    def put_channels(self, pairs: Iterable[tuple[str, str]]) -> None:
        """Record (conversation, channel) pairs: channels the conversations have had."""
        self.put_messages([], pairs)

    def put_customers(self, rows: list[tuple[int, str]]) -> None:
        """Upsert (customer id, body) rows."""
        if not rows:
            return
        db = self.db
        db.execute("BEGIN IMMEDIATE")
        try:
            for cid, text in rows:
                db.execute("DELETE FROM cust WHERE rowid=?", (cid,))
                if text.strip():
                    db.execute("INSERT INTO cust(rowid, body) VALUES (?,?)", (cid, text))
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise

    def forget(self, conversations: list[str], customers: list[int],
               rewrite: bool = False) -> int:
        """Remove the conversations' messages and the customers' rows (erasure); returns
        messages removed. Their content goes at once (secure_delete zeroes the pages, the WAL
        is truncated); ``rewrite`` also rewrites the postings (``optimize``: no trigram of the
        text stays in an older segment) — the whole index, seconds at a million messages, so
        the search reactor does it, not the request that erases."""
        db = self.db
        db.execute("BEGIN IMMEDIATE")
        n = 0
        try:
            for conv in conversations:
                ids = db.execute("SELECT id FROM msg_meta WHERE conv=?", (conv,)).fetchall()
                db.executemany("DELETE FROM msg WHERE rowid=?", ids)
                db.execute("DELETE FROM msg_meta WHERE conv=?", (conv,))
                db.execute("DELETE FROM conv_channel WHERE conv=?", (conv,))
                n += len(ids)
            db.executemany("DELETE FROM cust WHERE rowid=?", [(c,) for c in customers])
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        if rewrite:
            db.execute("INSERT INTO msg(msg) VALUES('optimize')")
            db.execute("INSERT INTO cust(cust) VALUES('optimize')")
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # the old pages leave the WAL too
        return n

    def clear(self) -> None:
        """Empty the index (a rebuild starts here)."""
        self.db.executescript("BEGIN IMMEDIATE; DROP TABLE msg; DROP TABLE msg_meta; "
                              "DROP TABLE cust; DROP TABLE conv_channel; DELETE FROM state; "
                              "COMMIT;")
        self.db.executescript(SCHEMA)
        self.db.execute("VACUUM")

    def get_state(self, k: str) -> str | None:
        row = self.db.execute("SELECT v FROM state WHERE k=?", (k,)).fetchone()
        return row[0] if row else None

    def set_state(self, k: str, v: str) -> None:
        self.db.execute("INSERT OR REPLACE INTO state(k, v) VALUES (?,?)", (k, v))

    # -- reading -------------------------------------------------------------------------------
    def customers(self, query: str, limit: int = 50) -> list[int]:
        """Customer ids whose name or identifiers match, by id (newest customers first)."""
        rows = self.db.execute("SELECT rowid FROM cust WHERE cust MATCH ? ORDER BY rowid DESC "
                               "LIMIT ?", (query, limit)).fetchall()
        return [r[0] for r in rows]

    def messages(self, query: str, before: int | None, since_ms: int | None,
                 until_ms: int | None, first: int = 100, chunk: int = 200,
                 channel: str | None = None) -> Iterator[list[tuple[int, str, bool]]]:
        """(rowid, conversation, may pass) of matching messages, newest first, in chunks:
        ``first`` rows (about a page: most searches end there), then ``chunk`` at a time.
        With ``channel`` (and a complete ``conv_channel``), SQLite keeps only the rows of
        conversations that have had that channel, plus *marks* (may pass False): one in
        ``MARK`` of the rows it walked past (a rowid's low bits are a hash: an even sample),
        so the caller knows how far the walk went and where it is, without the rows."""
        hi = min(before if before is not None else TOP, below(until_ms))
        lo = since_ms * 1024 if since_ms is not None else -1
        if channel and self.get_state(CHANNELS) is not None:
            had = ("EXISTS(SELECT 1 FROM conv_channel c WHERE c.conv = m.conv "
                   "AND c.channel = :channel)")
            sql = (f"SELECT msg.rowid, m.conv, {had} FROM msg "
                   "JOIN msg_meta m ON m.id = msg.rowid "
                   "WHERE msg MATCH :q AND msg.rowid < :hi AND msg.rowid >= :lo "
                   f"AND ({had} OR msg.rowid % {MARK} = 0) ORDER BY msg.rowid DESC")
        else:
            sql = ("SELECT msg.rowid, m.conv, 1 FROM msg JOIN msg_meta m ON m.id = msg.rowid "
                   "WHERE msg MATCH :q AND msg.rowid < :hi AND msg.rowid >= :lo "
                   "ORDER BY msg.rowid DESC")
        # One statement, read a chunk at a time: FTS5 walks rowid DESC natively, and starting
        # it again below the last row costs more than the rows (measured: 3,600 rows in 8
        # restarts took twice as long as in one walk; docs/decisions.md, search)
        cur = self.db.execute(sql, {"q": query, "hi": hi, "lo": lo, "channel": channel})
        try:
            n = first
            while True:
                rows = cur.fetchmany(n)
                if rows:
                    yield [(r, c, bool(ok)) for r, c, ok in rows]
                if len(rows) < n:
                    return
                n = chunk
        finally:
            cur.close()

    def newer_match(self, query: str, conv: str, than: int, until_ms: int | None = None
                    ) -> bool:
        """Whether the conversation has a matching message at rowid ``than`` (the cursor: a
        row walked on an earlier page) or after it, up to ``until`` (rows past it were never
        walked)."""
        ids = self.db.execute("SELECT id FROM msg_meta WHERE conv=? AND id >= ? AND id < ?",
                              (conv, than, below(until_ms))).fetchall()
        return any(self.db.execute("SELECT 1 FROM msg WHERE msg MATCH ? AND rowid=?",
                                   (query, i)).fetchone() for (i,) in ids)

    def count(self) -> tuple[int, int]:
        """(messages, customers) indexed."""
        m = self.db.execute("SELECT count(*) FROM msg_meta").fetchone()[0]
        c = self.db.execute("SELECT count(*) FROM cust").fetchone()[0]
        return m, c


_local = threading.local()


def path() -> Path:
    from tongdai.core.hub import data_dir

    return data_dir().resolve() / FILE


def open_index() -> SearchIndex:
    """This thread's connection to this node's index (reopened when the file was replaced)."""
    p = path()
    conns: dict[Path, SearchIndex] = _local.__dict__.setdefault("indexes", {})
    cur = conns.get(p)
    if cur is not None:
        try:
            if os.stat(p).st_ino == cur.inode:
                return cur
        except FileNotFoundError:
            pass
        cur.db.close()
    conns[p] = SearchIndex(p)
    return conns[p]
