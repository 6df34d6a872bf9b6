"""Config life with real processes (#13): every process of `tongdai up` runs an edited config
within seconds, without a restart; an invalid edit keeps them all on the running version."""

from __future__ import annotations

import json
import time

from tests.hardening.test_supervisor import Up
from tongdai.core.config import file_version

PROCESSES = 9  # web, inbound, scheduler, reactor, an ingest worker, two senders, background, hooks


def versions(up: Up) -> dict[str, dict]:
    return {k.decode(): json.loads(v) for k, v in up.redis().hgetall("td:config:processes").items()}


def wait_until(what, seconds: float = 20.0):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if what():
            return
        time.sleep(0.1)
    raise AssertionError(f"not within {seconds} s")


def test_every_process_runs_an_edit_and_keeps_running_through_an_invalid_one(tmp_path):
    up = Up(tmp_path)
    up.env["TONGDAI_CONFIG_CHECK_S"] = "0.5"
    # short ingest jobs: Ctrl-C waits for the running one
    up.config.write_text(up.config.read_text().replace("claim_idle: 1s\n",
                                                       "claim_idle: 1s\n  loop_time_box: 2s\n"))
    with up:
        text = up.config.read_text()
        first = file_version(text.encode())
        wait_until(lambda: len(versions(up)) == PROCESSES)
        assert {r["version"] for r in versions(up).values()} == {first}

        edited = text.replace("tagging:\n  rules:\n",
                              'tagging:\n  rules:\n    - {tag: xu, any: ["nạp thẻ"]}\n')
        up.config.write_text(edited)
        second = file_version(edited.encode())
        wait_until(lambda: {r["version"] for r in versions(up).values()} == {second})
        assert up.post_update(1) == 200  # "nạp thẻ": the ingest worker runs the new rule
        r = up.redis()
        wait_until(lambda: r.smembers("td:conv:1:tags") >= {b"xu", b"payment"})
        # The ingest worker's record may be its work horse's: give the parent one look (0.5 s)
        # — a version on disk for less than one look can be missed by a process (decisions.md).
        time.sleep(1.0)

        up.config.write_text(edited.replace("tagging:\n  rules:", "tagging:\n  rulez:"))
        wait_until(lambda: all(rec["errors"] for rec in versions(up).values()))
        recs = versions(up).values()
        assert {rec["version"] for rec in recs} == {second}, [  # all still on the valid one
            (n, rec["version"], rec["generation"], rec["seen"]) for n, rec in versions(up).items()]
        assert all("tagging.rulez" in rec["errors"][0] for rec in recs)
        h = up.get("/healthz")
        assert h.status_code == 200 and "tagging.rulez" in h.json()["problems"][0]
        assert up.post_update(2) == 200  # still stored, with the rules that run
        wait_until(lambda: r.hlen("td:conv:1:messages") == 2)
