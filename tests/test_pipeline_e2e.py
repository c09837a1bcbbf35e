"""End to end: `workbench run` executes the stage notebooks with papermill on a small generated
retailer (and on the real Online Retail file where ../shared has it), in a scratch WORKBENCH_HOME."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest

ROOT = Path(__file__).resolve().parents[1]
ONLINE_RETAIL = ROOT.parent / "shared" / "data" / "online_retail" / "online_retail.csv.gz"
WORKBENCH = str(Path(sys.executable).parent / "workbench")

pytestmark = pytest.mark.e2e


def workbench(home: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    env = {**os.environ, "WORKBENCH_HOME": str(home)}
    env.pop("MLFLOW_TRACKING_URI", None)
    done = subprocess.run([WORKBENCH, *args], env=env, capture_output=True, text=True, timeout=900)
    if check and done.returncode:
        raise AssertionError(f"workbench {' '.join(args)} exited {done.returncode}:\n{done.stdout[-3000:]}\n{done.stderr[-5000:]}")
    return done


def reconciles(report: pl.DataFrame) -> dict[str, tuple[int, int, int]]:
    """table -> (rows in, rows kept, rows quarantined), from the cleansing report."""
    out = {}
    for table in report["table"].unique().to_list():
        rows = dict(report.filter(pl.col("table") == table).select("rule", "rows").iter_rows())
        out[table] = (rows["rows_in"], rows["rows_kept"], sum(v for k, v in rows.items() if k not in ("rows_in", "rows_kept")))
    return out


@pytest.fixture(scope="module")
def demo_home(tmp_path_factory) -> Path:
    home = tmp_path_factory.mktemp("workbench_home")
    workbench(home, "demo-data", "--scale", "0.3", "--seed", "7")
    return home


def test_extract_and_cleanse_through_the_runner(demo_home):
    done = workbench(demo_home, "run", "--config", str(ROOT / "configs" / "demo.yml"), "-s", "extract,cleanse", "--no-progress")
    run_dirs = sorted((demo_home / "data" / "runs").iterdir())
    executed = {p.name for p in run_dirs[-1].glob("*.ipynb")}
    assert executed == {"01_extract.ipynb", "02_cleanse.ipynb"}
    assert json.loads((run_dirs[-1] / "run.json").read_text())["status"] == "ok"
    assert "[2/2] 02_cleanse done" in done.stdout

    interim = demo_home / "data" / "interim" / "USRT"
    report = pl.read_parquet(interim / "cleansing_report.parquet")
    for table, (rows_in, kept, quarantined) in reconciles(report).items():
        assert rows_in == kept + quarantined, (table, rows_in, kept, quarantined)
    lines_in = reconciles(report)["sales_lines"][0]
    raw_lines = pl.read_parquet(demo_home / "data" / "raw" / "USRT" / "sales_lines" / "*.parquet").height
    assert lines_in == raw_lines
    quarantine = pl.read_parquet(interim / "quarantine" / "sales_lines.parquet")
    # the generator's dirt is there and is caught, each kind under its own rule
    assert quarantine["rule"].n_unique() >= 4, quarantine["rule"].value_counts()
    assert quarantine["reason"].null_count() == 0


def test_a_failing_stage_names_the_notebook_and_the_cell(demo_home):
    done = workbench(demo_home, "run", "-s", "cleanse", "-p", "legal_entity=USRT", "-p", "min_item_support=-3",
                     "--no-progress", check=False)
    assert done.returncode != 0
    assert "stage 02_cleanse failed in cell" in done.stderr
    assert "min_item_support" in done.stderr


def test_unknown_legal_entity_is_a_clear_error(demo_home):
    done = workbench(demo_home, "run", "-s", "extract", "-p", "legal_entity=NOPE", "--no-progress", check=False)
    assert done.returncode != 0
    assert "NOPE" in done.stderr and "USRT" in done.stderr


@pytest.mark.real_data
@pytest.mark.skipif(not ONLINE_RETAIL.exists(), reason="../shared/data/online_retail is absent")
def test_online_retail_through_the_runner(tmp_path):
    workbench(tmp_path, "run", "--config", str(ROOT / "configs" / "online_retail.yml"), "-s", "extract,cleanse",
              "-p", f"source={ONLINE_RETAIL}", "--no-progress")
    interim = tmp_path / "data" / "interim" / "online_retail"
    counts = reconciles(pl.read_parquet(interim / "cleansing_report.parquet"))
    rows_in, kept, quarantined = counts["sales_lines"]
    assert rows_in == 541_909 and rows_in == kept + quarantined
    quarantine = pl.read_parquet(interim / "quarantine" / "sales_lines.parquet")
    cancelled = quarantine.filter(pl.col("rule") == "cancellation")
    # 9,288 cancellation lines (invoices "C...") and 3 bad-debt adjustments ("A..."), per the file's README
    assert cancelled.filter(pl.col("transaction_type") == "cancellation").height == 9_288
    assert cancelled.filter(pl.col("transaction_type") == "adjustment").height == 3
    baskets = pl.read_parquet(interim / "baskets.parquet")
    assert 19_000 < baskets.height <= 19_959
