"""The example adapter package, installed once per session the way ``pip install -e`` lays
it out: its metadata (``egg-info``, written by setuptools from the package's own pyproject)
and its code on ``sys.path``. The hub then finds it through the ``tongdai.adapters`` entry
point group, the path a third-party package takes (``core/registry.py``).

Not ``pip install``: the venv's setuptools needs ``wheel`` to build one, and a pip run into
the shared venv would outlive the tests; ``egg_info`` is what pip's editable install runs.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "tongdai-adapter-minichat"


@pytest.fixture(scope="session")
def minichat_installed(tmp_path_factory):
    """The example package, discoverable by its entry point for the rest of the session."""
    meta = tmp_path_factory.mktemp("site")
    build = tmp_path_factory.mktemp("build")
    subprocess.run([sys.executable, "-c", "from setuptools import setup; setup()", "egg_info",
                    "--egg-base", str(meta)], cwd=EXAMPLE, check=True, capture_output=True,
                   env={"PATH": "/usr/bin:/bin", "PYTHONDONTWRITEBYTECODE": "1",
                        "TMPDIR": str(build)})
    sys.path[:0] = [str(meta), str(EXAMPLE)]
    import importlib

    importlib.invalidate_caches()
    yield meta
    for p in (str(meta), str(EXAMPLE)):
        sys.path.remove(p)
