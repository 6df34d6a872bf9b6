"""The hub's clock: milliseconds since the epoch, and stream entry ids.

Every time stored or compared across processes is taken here, so there is one place that says
where time comes from.
"""

from __future__ import annotations

import re
import time

STREAM_ID = re.compile(r"\d{1,20}-\d{1,20}")  # a Redis stream entry id


def now_ms() -> int:
    """This process's wall clock in milliseconds."""
    return time.time_ns() // 1_000_000
