"""A benchmark record names where it was measured (`benchmarks/provenance.py`): the commit, and the
versions of the numerical libraries actually installed, which are pyproject.toml's pins."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

from helpers import load_benchmark

ROOT = Path(__file__).resolve().parents[1]


def test_measured_on_names_the_commit_and_the_pinned_libraries():
    provenance = load_benchmark("provenance")
    PACKAGES, found = provenance.PACKAGES, provenance.measured_on()
    head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True)
    if head.returncode == 0:  # a source tree without git records no commit
        assert found["commit"].split("+")[0] == head.stdout.strip()
    pins = dict(d.split("==") for d in tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"])
    pins = {name.split("[")[0]: pinned for name, pinned in pins.items()}
    assert set(PACKAGES) <= set(pins)
    assert found["packages"] == {p: pins[p] for p in PACKAGES}
    assert found["cpus"] >= 1 and found["processor"] and found["python"] == ".".join(map(str, sys.version_info[:3]))
