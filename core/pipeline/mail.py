"""What the core does for mail channels: reply tokens, threads, inbound mail into the raw log.

Mail threads across three clues, from most to least trusted: the Message-IDs a reply
references (matched through the channel's dedupe index, where every stored or sent mail's id
is), the ``reply+<token>@`` address we put in ``Reply-To``, and a ``[#<id>]`` subject tag. A
clue only counts when its conversation belongs to the sender (``core/lua/ingest.lua``).
"""

from __future__ import annotations

import hmac

from tongdai.core import clock
from tongdai.core.hub import Hub
from tongdai.core.models import Direction, Message, RawEvent
from tongdai.core.pipeline import rawlog, store

SEP = "\x1f"
THREAD_DEPTH = 50  # messages looked at for a reply's References


def reply_token(hub: Hub, conv_id: str) -> str:
    """The conversation's token for ``reply+<token>@``: its id and a keyed check, so a
    guessed token cannot file a mail under someone else's conversation."""
    return f"{conv_id}.{hub.keyring.blind_index('reply-token', conv_id)[:12]}"


def conversation_of_token(hub: Hub, token: str) -> str | None:
    """The conversation a reply token names, or None when the token is not one of ours."""
    conv_id, _, check = token.partition(".")
    if not conv_id.isdigit():
        return None
    good = reply_token(hub, conv_id).partition(".")[2]
    return conv_id if hmac.compare_digest(check.encode(), good.encode()) else None


def thread_arg(hub: Hub, thread: list[str] | None) -> str:
    """The ingest script's thread argument: "" for chat, else "mail" and checked candidates."""
    if thread is None:
        return ""
    out = ["mail"]
    for cand in thread:
        if cand.startswith("t:"):
            conv = conversation_of_token(hub, cand[2:])
            if conv is not None:
                out.append("c:" + conv)
        elif cand.startswith(("k:", "c:")) and SEP not in cand:
            out.append(cand)
    return SEP.join(out)


def thread_context(hub: Hub, conv_id: str, channel_id: str) -> dict[str, object]:
    """Subject, References and In-Reply-To for a reply on a mail channel, from the
    conversation's latest mails on that channel (ids are what we stored as external ids)."""
    ids = hub.redis.zrevrange(hub.keys.timeline(conv_id), 0, THREAD_DEPTH - 1)
    blobs = hub.redis.hmget(hub.keys.messages(conv_id), ids) if ids else []
    refs: list[str] = []
    subject = in_reply_to = None
    for mid, blob in zip(ids, blobs):  # newest first
        if not blob:
            continue
        m = store.reveal(hub, Message.from_blob(mid.decode(), conv_id, blob))
        if m.channel_id != channel_id or not m.external_id:
            continue
        refs.append(m.external_id)
        subject = subject or m.subject
        if in_reply_to is None and m.direction == Direction.IN:
            in_reply_to = m.external_id
    refs.reverse()
    return {"subject": subject, "references": refs, "in_reply_to": in_reply_to or
            (refs[-1] if refs else None), "reply_token": reply_token(hub, conv_id)}


def store_raw_mail(hub: Hub, channel_id: str, mime: bytes, source: str,
                   envelope: dict[str, str] | None = None) -> str:
    """Append a received mail to the raw log (durable when this returns)."""
    headers = {"x-tongdai-source": source, **(envelope or {})}
    return rawlog.append(hub, RawEvent(channel_id, mime, headers, clock.now_ms()))


class RedisUidCursor:
    """An IMAP folder's resume point (UIDVALIDITY, last stored UID), shared by restarts."""

    def __init__(self, hub: Hub, channel_id: str) -> None:
        self.redis = hub.redis
        self.key = hub.keys.imap_cursor(channel_id)

    def load(self) -> tuple[int | None, int]:
        h = self.redis.hmget(self.key, ["uidvalidity", "last_uid"])
        return (int(h[0]) if h[0] else None, int(h[1]) if h[1] else 0)

    def save(self, uidvalidity: int, last_uid: int) -> None:
        self.redis.hset(self.key, mapping={"uidvalidity": uidvalidity, "last_uid": last_uid})
