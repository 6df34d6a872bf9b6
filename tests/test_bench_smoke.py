"""`tongdai bench --quick --json` runs end to end and reports every figure.

It asserts that the benchmark works, never how fast anything is: speed is judged by the
ratios `tongdai bench` prints, not by tests.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tongdai.core.registry import BUILTIN

KEYS = ("webhook_vs_flask", "ingest_vs_rq_noop", "latency_p50_ms", "latency_p99_ms",
        "redis_bytes_per_message", "history_read_ratio", "parse_us_per_event",
        "webhook_p99_with_500_streams_ms", "stream_fanout_p95_ms",
        "reply_latency_under_backlog_ms")
CHECKOUT = Path(__file__).resolve().parents[1]


def test_bench_quick_reports_every_figure():
    """Run from the checkout, as an operator would (the parse section reads its fixtures);
    the installed package may be a wheel, not this checkout."""
    env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "TONGDAI_CONFIG")}
    out = subprocess.run([sys.executable, "-m", "tongdai.core.cli", "bench", "--quick", "--json"],
                         capture_output=True, text=True, timeout=300, env=env, cwd=CHECKOUT,
                         check=False)
    assert out.returncode == 0, out.stderr[-3000:]
    result = json.loads(out.stdout)
    assert result["errors"] == {}
    for key in KEYS:
        assert result[key] is not None and result[key] != {}, key
    assert result["parse_us_per_event"].keys() == BUILTIN.keys()  # a line per adapter
    assert set(result["verdicts"]) >= set(KEYS) - {"parse_us_per_event"}
