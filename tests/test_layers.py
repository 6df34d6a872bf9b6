"""The package's shape: imports run one way, and nothing but ``tongdai`` is installed.

Layers (``tongdai/core/__init__.py`` says what each holds): plumbing ← identity ← pipeline ←
workspace ← the entry points (cli, webhooks, worker, benchmarks). Adapters are pure: they may
use the core's models, errors, pure identifier functions and config helpers (durations, time
zones: an adapter's settings are config), never a Redis-touching layer.
Every import counts, the ones inside functions too: a lazy import is still a dependency.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PARTS = ("adapters", "core", "webhooks", "worker", "benchmarks")
RANK = {"plumbing": 0, "identity": 1, "pipeline": 2, "workspace": 3, "entry": 4}
# What adapters may import from the core (pure modules, no Redis).
ADAPTER_MAY = {"tongdai.core.errors", "tongdai.core.models", "tongdai.core.identity.identifiers",
               "tongdai.core.config_base"}


def layer(module: str) -> str | None:
    """The layer of a ``tongdai.*`` module, None for adapters and the root."""
    parts = module.split(".")
    if len(parts) < 2 or parts[1] == "adapters":
        return None
    if parts[1] != "core":
        return "entry"
    if len(parts) == 2:
        return "plumbing"
    return {"identity": "identity", "pipeline": "pipeline", "workspace": "workspace",
            "selfservice": "workspace", "cli": "entry"}.get(parts[2], "plumbing")


def module_name(path: Path) -> str:
    rel = path.relative_to(ROOT).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(["tongdai", *parts])


def imports_of(source: str) -> list[tuple[int, str]]:
    """(line, module) of every ``tongdai`` import in a file, at any depth."""
    out = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            base = node.module
            out += [(node.lineno, f"{base}.{a.name}") if _is_module(f"{base}.{a.name}")
                    else (node.lineno, base) for a in node.names]
        elif isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names]
    return [(n, m) for n, m in out if m.split(".")[0] == "tongdai"]


def _is_module(name: str) -> bool:
    rel = Path(*name.split(".")[1:])
    return (ROOT / rel).with_suffix(".py").exists() or (ROOT / rel / "__init__.py").exists()


def violations(files: list[Path], sources: dict[Path, str] | None = None) -> list[str]:
    """Every import against the layers; ``sources`` stands in for files' text (tests)."""
    found = []
    for path in files:
        me = module_name(path)
        mine = layer(me)
        text = (sources or {}).get(path) or path.read_text("utf-8")
        for line, target in imports_of(text):
            theirs = layer(target)
            where = f"{path.relative_to(ROOT)}:{line} imports {target}"
            if mine is None and me.startswith("tongdai.adapters") and theirs is not None \
                    and target not in ADAPTER_MAY:
                found.append(f"{where}: adapters are pure (may use {sorted(ADAPTER_MAY)})")
            elif mine is not None and theirs is not None and RANK[theirs] > RANK[mine]:
                found.append(f"{where}: {mine} must not import {theirs} (offer a hook instead)")
    return found


def package_files() -> list[Path]:
    return [p for part in PARTS for p in (ROOT / part).rglob("*.py")]


def test_imports_run_one_way():
    assert violations(package_files()) == []


def test_the_check_catches_a_pipeline_module_importing_the_workspace():
    bad = ROOT / "core" / "pipeline" / "_layer_probe.py"  # not written: its text is given
    found = violations([bad], {bad: "def f():\n    from tongdai.core.workspace import users\n"})
    assert found == [("core/pipeline/_layer_probe.py:2 imports tongdai.core.workspace.users: "
                      "pipeline must not import workspace (offer a hook instead)")]


def test_the_check_catches_an_adapter_touching_the_store():
    bad = ROOT / "adapters" / "_layer_probe.py"
    found = violations([bad], {bad: "from tongdai.core.pipeline.store import get_message\n"})
    assert len(found) == 1 and "adapters are pure" in found[0]


@pytest.mark.parametrize("part", ["identity", "pipeline", "workspace", "cli"])
def test_each_domain_says_what_it_holds(part):
    doc = ast.get_docstring(ast.parse((ROOT / "core" / part / "__init__.py").read_text("utf-8")))
    assert doc and len(doc) > 80


def test_no_module_over_400_lines():
    long = {str(p.relative_to(ROOT)): n for p in package_files()
            if (n := len(p.read_text("utf-8").splitlines())) > 400}
    assert long == {}


def module_level_imports(path: Path) -> set[str]:
    """The ``tongdai`` modules a file imports when it is loaded (not inside functions, not
    under ``if TYPE_CHECKING``)."""
    out = set()
    for node in ast.parse(path.read_text("utf-8")).body:
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            continue
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out |= {f"{node.module}.{a.name}" if _is_module(f"{node.module}.{a.name}")
                    else node.module for a in node.names}
        elif isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
    return {m for m in out if m.startswith("tongdai.")}


def find_cycles(graph: dict[str, set[str]]) -> set[str]:
    cycles = set()

    def walk(node: str, path: list[str]) -> None:
        for nxt in graph.get(node, ()):
            if nxt in path:
                cyc = path[path.index(nxt):]
                cycles.add(" → ".join([*cyc, nxt]))
            elif len(path) < 12:
                walk(nxt, [*path, nxt])
    for start in graph:
        walk(start, [start])
    return cycles


def test_no_circular_imports_between_modules():
    # A package's __init__ importing its own modules (to register them, or a blueprint's
    # routes) is how packages load, not a cycle between modules: those edges are left out.
    graph = {(me := module_name(p)): {m for m in module_level_imports(p)
                                      if not (p.name == "__init__.py" and m.startswith(me + "."))}
             for p in package_files()}
    assert sorted(find_cycles(graph)) == []


def test_the_cycle_check_finds_the_two_the_old_core_had():
    old = {"core.hub": {"core.credentials"}, "core.credentials": {"core.hub"},
           "core.feed": {"core.rawlog"}, "core.rawlog": {"core.feed"}}
    assert {c.split(" → ")[0] for c in find_cycles(old)} == set(old)
