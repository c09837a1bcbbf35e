"""A benchmark record names where it was measured (`benchmarks/provenance.py`): the commit, and the
versions of the numerical libraries actually installed, which are pyproject.toml's pins."""

from __future__ import annotations

import json
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


def test_reports_name_the_machine_their_record_was_measured_on(tmp_path):
    """scale.md's and latency.md's headers read where their record was measured (its `measured_on`:
    the commit and the processor), not the machine that writes the report; a record older than
    `measured_on` still reports the cores and Python it named."""
    on = {**load_benchmark("provenance").measured_on(), "commit": "abc1234", "cpus": 96, "processor": "Test CPU (avx2)"}
    assert load_benchmark("scale").machine({"measured_on": on}) == f"96 cores, Python {on['python']}, Test CPU (avx2), at abc1234"
    assert load_benchmark("scale").machine({"machine": {"cpus": 3, "python": "3.11.0"}}) == "3 cores, Python 3.11.0"
    record = json.loads((ROOT / "benchmarks" / "results" / "latency.json").read_text())
    load_benchmark("latency").write_results({**record, "cpus": 96, "processor": "Test CPU (avx2)", "commit": "abc1234"}, tmp_path)
    header = (tmp_path / "latency.md").read_text().splitlines()[2]
    assert " at abc1234 on Test CPU (avx2) (Python " in header and ", 96 CPUs)" in header
