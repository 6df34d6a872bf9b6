"""What `pip install .` puts on a machine: the package `tongdai` and nothing else."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PARTS = ("adapters", "core", "webhooks", "worker", "benchmarks")


def declared() -> set[str]:
    cfg = tomllib.loads((ROOT / "pyproject.toml").read_text("utf-8"))["tool"]["setuptools"]
    assert cfg["package-dir"] == {"tongdai": "."}
    return set(cfg["packages"])


def test_every_package_folder_is_declared():
    on_disk = {"tongdai"} | {
        "tongdai." + ".".join(p.parent.relative_to(ROOT).parts)
        for part in PARTS for p in (ROOT / part).rglob("__init__.py")}
    assert on_disk == declared()


def test_the_command_and_adapter_group_point_into_the_package():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text("utf-8"))["project"]
    assert project["scripts"] == {"tongdai": "tongdai.core.cli:main"}
    assert "tongdai.adapters" in project["entry-points"]


@pytest.mark.timeout(600)
def test_the_wheel_holds_only_tongdai(tmp_path):
    """Builds the wheel as `pip install .` would (an isolated build: setuptools from PyPI).
    setuptools keeps a build/ folder in the checkout and reuses it: a stale one would pass
    files the package no longer declares, so it is removed before and after."""
    shutil.rmtree(ROOT / "build", ignore_errors=True)
    out = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps",
                          "-w", str(tmp_path), str(ROOT)], check=False,
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    shutil.rmtree(ROOT / "build", ignore_errors=True)
    wheel = next(tmp_path.glob("tongdai-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    tops = {n.split("/")[0] for n in names}
    assert tops == {"tongdai", f"{wheel.name.split('-')[0]}-{wheel.name.split('-')[1]}.dist-info"}
    assert "tongdai/core/lua/ingest.lua" in names  # package data came along
    assert "tongdai/webhooks/templates/console.html" in names
    assert "tongdai/core/cli/__main__.py" in names
    # the classification sets ship (`tongdai rules eval`, `tongdai bench`); no test file does
    assert "tongdai/core/pipeline/evalsets/messages.yaml" in names
    assert not any(n.startswith("tongdai/tests/") or n.endswith((".md", "Procfile"))
                   for n in names)
