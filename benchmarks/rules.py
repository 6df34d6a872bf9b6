"""The ``rules`` section of ``tongdai bench``: ingest with a realistic rule set (issue #13).

The same measurement as ``ingest_vs_rq_noop`` (benchmarks/throughput.py: one ingest worker
draining raw events ÷ one RQ worker running no-op jobs), run with two configurations that
differ only in classification, alternating:

* ``bare``  — no keyword rules, no priority rules, language detection off;
* ``rules`` — the 232 tagging rules, priority and routing rules of
  ``core/pipeline/evalsets/rules.yaml`` with the language detector on.

It also reports what classifying one message costs in this process (µs, the evaluation
set's messages: Vietnamese with and without marks, chat abbreviations, Chinese, English).
"""

from __future__ import annotations

import time

import yaml

from tongdai.benchmarks.common import Params
from tongdai.benchmarks.env import CONFIG, BenchEnv, log

TARGET = 15.0  # as ingest_vs_rq_noop's


def _config(env: BenchEnv, name: str, sections: dict) -> str:
    cfg = yaml.safe_load(CONFIG)
    for key in ("tagging", "priority", "routing"):
        cfg.pop(key, None)
    cfg.update(sections)
    path = env.dir / f"tongdai-{name}.yaml"
    path.write_text(yaml.safe_dump(cfg, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return str(path)


def _rule_set() -> tuple[dict, int]:
    from tongdai.core.pipeline.evaluation import DEFAULT_SET

    data = yaml.safe_load((DEFAULT_SET.parent / "rules.yaml").read_text("utf-8"))
    sections = {k: data[k] for k in ("tagging", "priority", "routing")}
    sections["tagging"]["detect_language"] = True
    return sections, len(sections["tagging"]["rules"])


def _classify_cost(sections: dict) -> float:
    """µs per message for the classifier alone, over the evaluation set, warm."""
    from tongdai.core.config import HubConfig
    from tongdai.core.pipeline.classify import Classifier
    from tongdai.core.pipeline.evaluation import DEFAULT_SET, load_set

    c = Classifier(HubConfig.model_validate(sections))
    texts = [m["text"] for m in load_set(DEFAULT_SET)[0]]
    for t in texts:
        c.classify(t, "tg-bench")
    reps = 20
    t0 = time.perf_counter()
    for _ in range(reps):
        for t in texts:
            c.classify(t, "tg-bench")
    return (time.perf_counter() - t0) / (reps * len(texts)) * 1e6


def bench_rules(env: BenchEnv, p: Params) -> dict:
    from tongdai.benchmarks.throughput import bench_ingest

    sections, n_rules = _rule_set()
    configs = {"bare": _config(env, "bare", {"tagging": {"detect_language": False}}),
               "rules": _config(env, "rules", sections)}
    rounds = 1 if p.ingest_n < 10_000 else 2
    runs: dict[str, list[dict]] = {"bare": [], "rules": []}
    saved = env.env["TONGDAI_CONFIG"]
    try:
        for _ in range(rounds):
            for name, path in configs.items():
                env.env["TONGDAI_CONFIG"] = path  # the ingest worker's config; this process's
                r = bench_ingest(env, p)  # hub only resets Redis and reads key names
                runs[name].append({k: r[k] for k in ("ingest_vs_rq_noop", "ingest_msgs_per_s",
                                                     "rq_noop_jobs_per_s")})
                log(f"  rules[{name}]: ratio {r['ingest_vs_rq_noop']:.1f}")
    finally:
        env.env["TONGDAI_CONFIG"] = saved
    best = {k: max(v, key=lambda r: r["ingest_vs_rq_noop"]) for k, v in runs.items()}
    us = _classify_cost(sections)
    ratio = best["rules"]["ingest_vs_rq_noop"]
    log(f"  rules: {n_rules} tagging rules + language detection: ingest_vs_rq_noop "
        f"{ratio:.1f} (target >= {TARGET:g}: {'PASS' if ratio >= TARGET else 'MISS'}), "
        f"without rules {best['bare']['ingest_vs_rq_noop']:.1f}; classify {us:.0f} us/message")
    return {
        "ingest_rules_vs_rq_noop": ratio,
        "ingest_bare_vs_rq_noop": best["bare"]["ingest_vs_rq_noop"],
        "classify_us_per_message": us,
        "_rules": {"tagging_rules": n_rules, "runs": runs, "target": f">= {TARGET:g}",
                   "rule_set": "core/pipeline/evalsets/rules.yaml",
                   "traffic": "benchmarks/corpus.py (Vietnamese and English chat)"},
    }
