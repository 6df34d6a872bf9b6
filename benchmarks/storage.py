"""Storage and parsing sections of ``tongdai bench``: Redis memory per message, reading the
newest page of a big conversation against a small one, and every adapter's ``parse()``.
"""

from __future__ import annotations

import statistics
import time
from pathlib import Path

from tongdai.benchmarks.common import Params, prefill_raw_log
from tongdai.benchmarks.corpus import Traffic
from tongdai.benchmarks.env import CHANNEL, REPO, BenchEnv, log


# -- 4. memory per message ----------------------------------------------------------------------
def bench_memory(env: BenchEnv, p: Params) -> dict:
    from tongdai.core.keys import FEED_MAXLEN
    from tongdai.core.pipeline import ingest, rawlog

    env.reset()
    hub, r = env.hub, env.redis
    convs = max(1, p.mem_n // 100)
    traffic = Traffic(seed=21, users=convs)
    bodies = traffic.bodies(p.mem_n)
    text_avg = traffic.text_bytes / p.mem_n
    body_avg = sum(map(len, bodies)) / p.mem_n

    def used() -> int:
        return int(r.info("memory")["used_memory"])

    before = used()
    prefill_raw_log(env, bodies, wake=False)
    with_raw = used()
    stored = 0
    while batches := rawlog.read(hub, "bench", 500):
        for batch in batches:
            res = ingest.process(hub, batch.events)
            rawlog.ack(hub, batch.shard, [e.id for e in batch.events])
            stored += res.stored
            if res.dead:
                raise RuntimeError(f"memory run: {res.dead} events dead-lettered")
    if stored != p.mem_n:
        raise RuntimeError(f"memory run: stored {stored} of {p.mem_n}")
    for s in range(hub.shards):
        r.execute_command("XTRIM", hub.keys.raw(s), "MAXLEN", "0")
    # The change feed is a bounded buffer (keys.FEED_MAXLEN entries), like the raw log with
    # its retention: measured on its own, not per stored message.
    with_feed = used()
    r.execute_command("XTRIM", hub.keys.feed(), "MAXLEN", "0")
    after = used()
    feed_per_event = (with_feed - after) / p.mem_n
    total = (after - before) / p.mem_n
    raw_per_event = (with_raw - before) / p.mem_n
    log(f"  memory: {total:.0f} B/message stored (text {text_avg:.0f} B), raw log "
        f"{raw_per_event:.0f} B/event (body {body_avg:.0f} B), change feed "
        f"{feed_per_event:.0f} B/event (at most {FEED_MAXLEN:,} events)")
    return {
        "redis_bytes_per_message": total - text_avg,
        "raw_log_bytes_per_event": raw_per_event,
        "feed_bytes_per_event": feed_per_event,
        "_memory": {"messages": p.mem_n, "conversations": convs,
                    "bytes_per_message_total": total, "avg_text_bytes": text_avg,
                    "avg_raw_body_bytes": body_avg},
    }


# -- 5. history read: big vs small conversation -------------------------------------------------
def _build_conversation(env: BenchEnv, conv_id: str, n: int, seed: int) -> None:
    """Write a conversation in the ingest's key layout (core/lua/ingest.lua), pipelined."""
    import random

    from tongdai.benchmarks.corpus import text
    from tongdai.core.models import AuthorKind, Direction, Message

    hub, r = env.hub, env.redis
    rng = random.Random(seed)
    now = int(time.time() * 1000)
    r.hset(hub.keys.conversation(conv_id), mapping={
        "customer": conv_id, "channel": CHANNEL, "address": conv_id, "status": "open",
        "queue": "general", "priority": 0, "created": now, "updated": now})
    ts0 = now - n * 1000
    base_mid = int(conv_id) * 1_000_000
    for i in range(0, n, 1000):
        blobs, scores = {}, {}
        for j in range(i, min(n, i + 1000)):
            mid = str(base_mid + j)
            ts = ts0 + j * 1000
            blobs[mid] = Message(
                id="", conversation_id="", direction=Direction.IN,
                author_kind=AuthorKind.CUSTOMER, channel_id=CHANNEL, platform_ts_ms=ts,
                received_ts_ms=ts + 40, text=text(rng), external_id=str(j + 1),
                tags=["lang:vi"]).to_blob()
            scores[mid] = ts
        pipe = r.pipeline(transaction=False)
        pipe.hset(hub.keys.messages(conv_id), mapping=blobs)
        pipe.zadd(hub.keys.timeline(conv_id), scores)
        pipe.execute()


def bench_history(env: BenchEnv, p: Params) -> dict:
    from tongdai.core.pipeline.store import message_page

    env.reset()
    hub = env.hub
    big, small = "9001", "9002"
    t = time.perf_counter()
    _build_conversation(env, big, p.hist_big, 1)
    _build_conversation(env, small, p.hist_small, 2)
    log(f"  built conversations of {p.hist_big} and {p.hist_small} messages in "
        f"{time.perf_counter() - t:.1f}s")
    for conv in (big, small):
        page = message_page(hub, conv, None, 50)
        if len(page.items) != 50 or page.next_cursor is None:
            raise RuntimeError(f"history: conversation {conv} gave {len(page.items)} items")
    times: dict[str, list[int]] = {big: [], small: []}
    for _ in range(max(20, p.hist_reps // 20)):  # warm-up
        message_page(hub, big, None, 50)
        message_page(hub, small, None, 50)
    clock = time.perf_counter_ns
    for i in range(p.hist_reps):
        order = (big, small) if i % 2 else (small, big)
        for conv in order:
            t0 = clock()
            message_page(hub, conv, None, 50)
            times[conv].append(clock() - t0)
    med = {k: statistics.median(v) / 1000 for k, v in times.items()}
    ratio = med[big] / med[small]
    log(f"  history: newest 50 of {p.hist_big}: {med[big]:.0f} us, of {p.hist_small}: "
        f"{med[small]:.0f} us (median of {p.hist_reps})")
    return {
        "history_read_ratio": ratio,
        "_history": {"big_messages": p.hist_big, "small_messages": p.hist_small,
                     "page": 50, "reps": p.hist_reps, "median_us_big": med[big],
                     "median_us_small": med[small],
                     "mean_ratio": statistics.fmean(times[big]) / statistics.fmean(times[small])},
    }


# -- 6. parsing ------------------------------------------------------------------------------------
# Settings for adapters the bench hub has no channel of (parse needs only a few of them).
PARSE_SETTINGS = {"email": {"address": "support@bench.example.vn", "inbound": {"smtp": {}}}}
# The declarative adapter reads a platform by its channel's mapping: it is measured on LINE's
# payloads (tests/fixtures/line) through the LINE channel config/tongdai.example.yaml ships.
DECLARATIVE = {"webhook": ("line", "line-oa")}
PARSE_ROUNDS = 3


def _example_settings(channel_id: str) -> dict | None:
    """A channel's settings from the example config, ${VAR}s given dummy values (nothing is
    sent while parsing); None outside a checkout."""
    import re

    import yaml

    path = REPO / "config" / "tongdai.example.yaml"
    if not path.is_file():
        return None
    channels = yaml.safe_load(path.read_text(encoding="utf-8")).get("channels") or []
    found = next((c for c in channels if c.get("id") == channel_id), None)
    if found is None:
        return None
    text = re.sub(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}",
                  lambda m: m.group(2) if m.group(2) is not None else "bench-secret",
                  yaml.safe_dump(found["settings"], allow_unicode=True))
    return yaml.safe_load(text)


def bench_parse(env: BenchEnv, p: Params) -> dict:
    from tongdai.core.errors import PayloadError
    from tongdai.core.models import RawEvent
    from tongdai.core.registry import BUILTIN, resolve_adapter

    out: dict[str, float] = {}
    detail: dict[str, dict] = {}
    timed: list[tuple[str, object, list, int]] = []  # (row, parse, raws, reps)
    # The adapters' test fixtures are real platform payloads kept in the checkout, not in the
    # installed package: from an installed hub, run the bench in a checkout to get this section.
    fixtures = next((d for d in (REPO / "tests" / "fixtures", Path.cwd() / "tests" / "fixtures")
                     if d.is_dir()), None)
    if fixtures is None:
        log("  parse: skipped (the adapters' fixtures live in the checkout's tests/fixtures; "
            "run `tongdai bench` from a checkout)")
        return {"_parse": {"skipped": "no tests/fixtures here (installed package)"}}
    for name in sorted(BUILTIN):
        cls = resolve_adapter(name)
        adapter = next((a for a in env.hub.adapters.values() if a.name == name), None)
        folder, row, given = name, name, PARSE_SETTINGS.get(name, {})
        if name in DECLARATIVE:  # measured through a documented channel's mapping
            folder, channel_id = DECLARATIVE[name]
            row = f"{name}:{folder}"
            adapter = None
            given = _example_settings(channel_id)
            if given is None:
                log(f"  parse: skipping {name}: no {channel_id} in config/tongdai.example.yaml")
                continue
        if adapter is None:
            try:
                adapter = cls(f"bench-{name}", cls.Settings.model_validate(given))
            except Exception as exc:  # noqa: BLE001 — its settings need values we lack
                log(f"  parse: skipping {name}: no channel settings ({exc})")
                continue
        if not (fixtures / folder).is_dir():
            log(f"  parse: no fixtures for {name}")
            continue
        files = sorted(f for f in (fixtures / folder).iterdir()
                       if f.suffix in (".json", ".eml"))
        if not files:
            log(f"  parse: no fixtures for {name}")
            continue
        now = int(time.time() * 1000)
        raws, bad = [], 0
        warm = time.perf_counter()
        for f in files:  # warm-up; fixtures meant to fail (or docs fragments) are not timed
            raw = RawEvent(adapter.channel_id, f.read_bytes(), {}, now)
            try:
                adapter.parse(raw)
                raws.append(raw)
            except PayloadError:
                bad += 1
        if not raws:
            log(f"  parse: no parseable fixtures for {name}")
            continue
        # Mail parses in milliseconds, chat events in microseconds: ~0.6 s per adapter a round.
        reps = max(1, min(p.parse_reps, int(0.6 / max(time.perf_counter() - warm, 1e-6))))
        timed.append((row, adapter.parse, raws, reps))
        detail[row] = {"fixtures": len(raws), "payload_errors": bad, "reps": reps}
    # Rounds over every adapter, the best round of each counting: a ratio between two of them
    # (the declarative adapter's to Telegram's) then survives a neighbour's burst of CPU.
    for _ in range(PARSE_ROUNDS):
        for row, parse, raws, reps in timed:
            t0 = time.perf_counter()
            for _ in range(reps):
                for raw in raws:
                    try:
                        parse(raw)
                    except PayloadError:
                        pass
            us = (time.perf_counter() - t0) / (reps * len(raws)) * 1e6
            out[row] = min(us, out.get(row, us))
    for row, _parse, raws, _reps in timed:
        log(f"  parse: {row} {out[row]:.1f} us/event over {len(raws)} fixtures "
            f"(best of {PARSE_ROUNDS} rounds)")
    res: dict = {"parse_us_per_event": out, "_parse": detail}
    declarative = next((r for r in out if r.startswith("webhook:")), None)
    if declarative and out.get("telegram"):
        res["parse_webhook_vs_telegram"] = out[declarative] / out["telegram"]
    return res
