"""Many open consoles at once: ``n`` Server-Sent Event streams on one asyncio loop.

Every stream reads everything it is sent (raw sockets, no HTTP library: the clients must cost
less than the server they measure); ``sample`` of them also record, for every
``message.created``, how long after the message was stored (the event's ``ts``) it arrived,
and the others count the events. Once every stream got its first event (``ready``) the file
``ready_path`` is written; after ``seconds`` more (or the file ``stop_path`` appearing) it
prints one JSON line. Loopback only, bounded by count and time.

Run as ``python -m tongdai.benchmarks.streamclients '<json options>'``.
"""

from __future__ import annotations

import asyncio
import os
import re
import sys
import time
from pathlib import Path

import orjson

TS = re.compile(rb'"type":"message\.created".*?"ts":(\d+)')


async def _one(opts: dict, measure: bool, lat: list[float], counts: list[int],
               ready: list[int]) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", opts["port"])
    writer.write((f"GET /api/v1/events/stream HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                  f"Authorization: Bearer {opts['token']}\r\nAccept: text/event-stream\r\n"
                  "\r\n").encode())
    head = await reader.readuntil(b"\r\n\r\n")
    if b" 200 " not in head.split(b"\r\n", 1)[0]:
        raise RuntimeError(f"stream answered {head[:40]!r}")
    seen_ready, tail = False, b""
    try:
        while chunk := await reader.read(65536):
            now = time.time() * 1000
            data = tail + chunk
            if not seen_ready and (b"event: ready" in data or b"event: reset" in data):
                seen_ready = True
                ready[0] += 1
            counts[0] += data.count(b"event: message.created") - tail.count(
                b"event: message.created")
            if measure:
                # whole frames only; a frame cut by the read boundary is measured next time
                cut = data.rfind(b"\n\n") + 2
                lat.extend(now - int(m.group(1)) for m in TS.finditer(data, 0, cut))
                tail = data[cut:]
            else:
                tail = data[-64:]
    finally:
        writer.close()


async def run(opts: dict) -> dict:
    lat: list[float] = []
    ready, counts = [0], [0]
    n, sample = opts["n"], min(opts["n"], opts.get("sample", 50))
    tasks = [asyncio.create_task(_one(opts, i < sample, lat, counts, ready)) for i in range(n)]
    deadline = time.monotonic() + 60
    while ready[0] < n and time.monotonic() < deadline:
        if any(t.done() for t in tasks):
            break
        await asyncio.sleep(0.05)
    Path(opts["ready_path"]).write_text(str(ready[0]))
    deadline = time.monotonic() + opts["seconds"]
    while time.monotonic() < deadline and not os.path.exists(opts["stop_path"]):
        await asyncio.sleep(0.1)
    failed = [repr(t.exception())[:200] for t in tasks
              if t.done() and not t.cancelled() and t.exception()]
    for t in tasks:
        t.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    lat.sort()
    return {"streams": n, "ready": ready[0], "sampled": sample, "events": counts[0],
            "failed": len(failed), "failures": sorted(set(failed))[:5], "latencies_ms": lat}


def main() -> None:
    out = asyncio.run(run(orjson.loads(sys.argv[1])))
    sys.stdout.write(orjson.dumps(out).decode() + "\n")


if __name__ == "__main__":
    main()
