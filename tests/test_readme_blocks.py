"""The README's benchmark tables are the committed results, as each benchmark writes them: nobody
types a figure in (the quality table has its own test in test_selection.py)."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BENCHMARKS = ROOT / "benchmarks"


def _benchmark(name: str):
    sys.path.insert(0, str(BENCHMARKS))  # the benchmarks import their shared readme_block helper
    try:
        spec = importlib.util.spec_from_file_location(f"{name}_benchmark", BENCHMARKS / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module
    finally:
        sys.path.remove(str(BENCHMARKS))


@pytest.mark.parametrize("name", ["latency", "pipeline", "scale", "extract_files", "shared_fit"])
def test_readme_block_is_the_committed_results(name):
    benchmark = _benchmark(name)
    record = json.loads((BENCHMARKS / "results" / f"{name}.json").read_text())
    readme = (ROOT / "README.md").read_text()
    assert readme.count(benchmark.README_BEGIN) == 1 and readme.count(benchmark.README_END) == 1
    block = readme.split(benchmark.README_BEGIN, 1)[1].split(benchmark.README_END, 1)[0]
    assert block.strip("\n") == "\n".join(benchmark.readme_block(record)).strip("\n")
