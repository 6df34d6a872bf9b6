"""Files both ways: customers' photos, files, stickers and voice fetched from the platform into
the blob store (a background job after ingest), and agents' uploads checked against what the
platform takes before the reply is stored.

Fetching is idempotent: an attachment whose ``file_id`` is already ``blob:<sha256>`` is left
alone (the platform's own handle moves to ``meta.platform_file_id``), so a re-run job or a
second worker changes nothing. Platform 429/5xx and network errors raise (the job is retried
by RQ); a final refusal (too big, an expired link) is written on the attachment as
``meta.fetch_error`` for the console to say.
"""

from __future__ import annotations

import hashlib
import logging

import orjson

from tongdai.adapters.base import FILE_KINDS, FileRefusal
from tongdai.core.clock import now_ms
from tongdai.core.errors import DeliveryError
from tongdai.core.hub import Hub
from tongdai.core.models import Attachment
from tongdai.core.pipeline.store import seal_attachments

log = logging.getLogger(__name__)
FETCH_JOB = "tongdai.worker.jobs.fetch_files"

# Magic numbers of what a browser may show inline: nothing else is ever served inline.
_MAGIC: tuple[tuple[bytes, int, str], ...] = (
    (b"\xff\xd8\xff", 0, "image/jpeg"),
    (b"\x89PNG\r\n\x1a\n", 0, "image/png"),
    (b"GIF87a", 0, "image/gif"),
    (b"GIF89a", 0, "image/gif"),
    (b"OggS", 0, "audio/ogg"),
    (b"ID3", 0, "audio/mpeg"),
    (b"\x1aE\xdf\xa3", 0, "video/webm"),
    (b"%PDF-", 0, "application/pdf"),
)


def sniff(data: bytes) -> str | None:
    """The type the bytes themselves say (images, audio, video a browser plays; PDF), or
    None. What the sender declared is never trusted for showing a file inline."""
    for magic, at, mime in _MAGIC:
        if data[at:at + len(magic)] == magic:
            return mime
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    if data[:4] == b"RIFF" and data[8:12] == b"WAVE":
        return "audio/wav"
    if data[4:8] == b"ftyp":  # ISO media: m4a voice notes or mp4 video
        return "audio/mp4" if data[8:11] == b"M4A" else "video/mp4"
    return None


INLINE_TYPES = frozenset({"image/jpeg", "image/png", "image/gif", "image/webp", "audio/ogg",
                          "audio/mpeg", "audio/wav", "audio/mp4", "video/mp4", "video/webm"})
# Never served as themselves, even as a download: a browser would run them.
ACTIVE_TYPES = ("text/html", "image/svg", "application/xhtml", "text/xml", "application/xml",
                "text/javascript", "application/javascript", "application/x-shockwave")


def served_type(data: bytes, declared: str | None) -> tuple[str, bool]:
    """(Content-Type, inline) for serving a stored file: inline only for media whose bytes
    say what they are; otherwise a download with the declared type, unless that type is one a
    browser would run (HTML, SVG, XML, scripts), which becomes application/octet-stream."""
    found = sniff(data)
    if found in INLINE_TYPES:
        return found, True
    mime = (declared or "").split(";")[0].strip().lower()
    if not mime or "/" not in mime or mime.startswith(ACTIVE_TYPES) or "+xml" in mime:
        return "application/octet-stream", False
    return mime, False


def fetchable(attachments: list) -> bool:
    """Whether a just-stored message has a file the hub should fetch."""
    return any(a.kind in FILE_KINDS and not (a.file_id or "").startswith("blob:")
               and (a.file_id or a.url) and not a.meta.get("fetch_error")
               for a in attachments)


def enqueue(hub: Hub, locations: list[tuple[str, str]]) -> None:
    """One background job per message with files to fetch (``(channel, "conv:msg")``); the
    job id makes a re-enqueued message one job."""
    if not locations:
        return
    from rq import Queue, Retry

    from tongdai.core.keys import BACKGROUND_QUEUE

    q = Queue(BACKGROUND_QUEUE, connection=hub.redis)
    q.enqueue_many([Queue.prepare_data(
        FETCH_JOB, (ch, *loc.split(":", 1)), result_ttl=0, failure_ttl=86400,
        job_id=f"files-{loc.replace(':', '-')}", retry=Retry(max=5, interval=[2, 10, 60, 300, 900]))
        for ch, loc in locations])


def fetch(hub: Hub, channel_id: str, conv_id: str, mid: str) -> str:
    """Fetch every file of one stored message that is not in the blob store yet, store it
    encrypted (with the sender identity's key), and point the message at it."""
    raw = hub.redis.hget(hub.keys.messages(conv_id), mid)
    if raw is None:
        return "no such message"
    stored = orjson.loads(raw)
    adapter = hub.adapters.get(channel_id)
    if adapter is None:
        return f"channel {channel_id} is no longer configured"
    subject = hub.subjects.key_for(stored["u"]) if stored.get("u") else None
    limit = hub.config.hub.storage.max_blob_bytes
    found: dict[int, dict] = {}  # attachment index -> the fields to write
    retry = None
    for n, d in enumerate(stored.get("at") or []):
        if not _to_fetch(d):
            continue
        try:
            got = adapter.fetch_file(Attachment.from_dict(d), limit)
        except DeliveryError as e:
            if e.retryable:
                retry = retry or e
            else:
                found[n] = {"meta": {**(d.get("meta") or {}), "fetch_error": e.code or "refused"}}
                log.info("file of message %s on %s not fetched: %s", mid, channel_id, e.code)
            continue
        if got is None:
            continue
        meta = {**(d.get("meta") or {}), "sha256": hashlib.sha256(got.data).hexdigest()}
        if d.get("file_id"):
            meta["platform_file_id"] = d["file_id"]
        fields = {"file_id": hub.blobs.put(got.data, subject), "size": len(got.data),
                  "mime": sniff(got.data) or got.mime or d.get("mime"), "meta": meta}
        if got.name and not d.get("name"):
            fields["name"] = _seal_name(hub, got.name, subject)
        found[n] = fields
    changed = _write(hub, conv_id, mid, found) if found else 0
    if retry is not None:
        raise retry  # the job is retried; what was fetched stays fetched
    return f"{changed} file(s) stored" if changed else "nothing to fetch"


def _to_fetch(d: dict) -> bool:
    return (d.get("kind") in FILE_KINDS and not str(d.get("file_id", "")).startswith("blob:")
            and not (d.get("meta") or {}).get("fetch_error"))


def _write(hub: Hub, conv_id: str, mid: str, found: dict[int, dict]) -> int:
    """Apply ``found`` to the stored message by compare-and-set (a reaction or edit landing
    meanwhile is kept: re-read and applied again), re-encoded here rather than by Lua's cjson,
    which rounds large numbers (sticker ids); then say so on the change feed."""
    from tongdai.core.pipeline import feed

    key = hub.keys.messages(conv_id)
    for _ in range(10):
        raw = hub.redis.hget(key, mid)
        if raw is None:
            return 0
        m = orjson.loads(raw)
        atts = m.get("at") or []
        n = 0
        for i, fields in found.items():
            if i < len(atts) and _to_fetch(atts[i]):
                atts[i].update(fields)
                n += 1
        if not n:
            return 0
        if hub.scripts.cas_hset(keys=[key], args=[mid, raw, orjson.dumps(m)]):
            pipe = hub.redis.pipeline(transaction=False)
            pipe.hset(hub.keys.conversation(conv_id), "updated", now_ms())
            feed.publish(hub, {"type": "message.updated", "conversation_id": conv_id,
                               "message_id": mid, "op": "files"}, pipe)
            pipe.execute()
            return n
    raise DeliveryError(f"message {mid} kept changing; files not recorded", retryable=True,
                        code="conflict")


def _seal_name(hub: Hub, name: str, subject) -> str:
    return seal_attachments(hub, [Attachment("file", name=name)], subject)[0].name or name


# -- agents' uploads ----------------------------------------------------------------------------
def upload_refusal(hub: Hub, channel_id: str, kind: str, mime: str,
                   size: int) -> FileRefusal | None:
    """Why an agent's file cannot go out on this channel (the hub's own size limit first,
    then the platform's rules), or None."""
    limit = hub.config.hub.storage.max_blob_bytes
    if size > limit:
        return FileRefusal("too_big", f"the hub keeps files up to {limit} bytes "
                           "(storage.max_blob_bytes)", {"max_mb": round(limit / 2**20, 1)})
    if size == 0:
        return FileRefusal("empty", "the file is empty")
    return hub.adapter(channel_id).file_refusal(kind, mime, size)
