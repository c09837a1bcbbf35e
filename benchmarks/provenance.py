"""Where a benchmark's figures were measured: the code, the machine and the numerical libraries.

Figures that rest on floating point (a re-ranker's splits, a weight search's ties) can move between
machines or library builds while the code stays the same: the pins of pyproject.toml fix the
versions, not the processor a wheel's kernels dispatch on. A record that names its environment lets
a reader tell such a move from a change of code (`measured_on`, in each dataset of quality.json).
"""

from __future__ import annotations

import os
import platform
import subprocess
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# the libraries whose arithmetic the models' figures rest on
PACKAGES = ("numpy", "scipy", "scikit-learn", "lightgbm", "implicit", "polars", "pandas", "optuna")


# the vector instructions numpy's and scikit-learn's kernels choose between at run time
VECTOR_FLAGS = ("sse4_2", "avx", "avx2", "fma", "avx512f")


def processor() -> str:
    """The processor's model name and which of VECTOR_FLAGS it has (Linux's /proc/cpuinfo), else
    what `platform` knows: a virtual machine's model name can be as bare as "AMD EPYC"."""
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        lines = []
    name = next((line.split(":", 1)[1].strip() for line in lines if line.startswith("model name")), None)
    flags = next((line.split(":", 1)[1].split() for line in lines if line.startswith("flags")), [])
    if name is None:
        return platform.processor() or platform.machine()
    return f"{name} ({' '.join(f for f in VECTOR_FLAGS if f in flags) or 'none of ' + ', '.join(VECTOR_FLAGS)})"


def commit() -> str | None:
    """The checkout's commit, with "+changes" where tracked files differ from it; None outside git."""
    try:
        def git(*args):
            return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=True).stdout.strip()
        head = git("rev-parse", "--short", "HEAD")
        return head + ("+changes" if git("status", "--porcelain", "--untracked-files=no") else "")
    except (OSError, subprocess.CalledProcessError):
        return None


def measured_on() -> dict:
    def installed(package):
        try:
            return version(package)
        except PackageNotFoundError:
            return None

    return {"commit": commit(), "machine": platform.platform(), "processor": processor(), "cpus": os.cpu_count(),
            "python": platform.python_version(), "packages": {p: installed(p) for p in PACKAGES}}


def described(on: dict) -> str:
    """A record's `measured_on` as its report's header names it: "at <commit> (<cores> cores,
    <processor>, Python <version>)"."""
    return f"at {on['commit']} ({on['cpus']} cores, {on['processor']}, Python {on['python']})"
