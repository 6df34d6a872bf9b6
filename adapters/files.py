"""Files between the hub and the platforms: what an adapter hands over when it fetches a
customer's file (``Adapter.fetch_file``) and what it says when it will not send an agent's
(``Adapter.file_refusal``). The core keeps the bytes (``core/pipeline/files.py``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class FetchedFile:
    """A file a customer sent, as the platform handed it over (``Adapter.fetch_file``)."""

    data: bytes
    mime: str | None = None  # what the platform said, if anything (the core sniffs too)
    name: str | None = None


@dataclass(frozen=True, slots=True)
class FileRefusal:
    """Why a platform will not take a file an agent attaches: ``code`` for the console to
    translate (``no_files``, ``too_big``, ``type_not_allowed``), ``reason`` in English."""

    code: str
    reason: str
    detail: dict[str, Any] = field(default_factory=dict)


# Attachment kinds that are files on the platform (a location, a contact or a link is not)
FILE_KINDS = frozenset({"image", "sticker", "animation", "video", "video_note", "voice",
                        "audio", "file"})
