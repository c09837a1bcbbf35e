"""End to end: `workbench run` executes the stage notebooks with papermill on a small generated
retailer (and on the real Online Retail file where ../shared has it), in a scratch WORKBENCH_HOME."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import polars as pl
import pytest

from helpers import registered_model

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


def test_whole_pipeline_registers_a_servable_champion(demo_home):
    done = workbench(demo_home, "run", "--config", str(ROOT / "configs" / "demo.yml"), "--no-progress")
    assert "[4/4] 04_evaluate done" in done.stdout
    run_dir = sorted((demo_home / "data" / "runs").iterdir())[-1]
    assert {p.name for p in run_dir.glob("*.ipynb")} == {"01_extract.ipynb", "02_cleanse.ipynb", "03_train.ipynb", "04_evaluate.ipynb"}
    champion = json.loads((demo_home / "data" / "processed" / "USRT" / "champion.json").read_text())
    assert champion["legal_entity"] == "USRT" and champion["enable_pos_recommendations"] is True
    # each page's route comes with how far its validation winner led, in standard errors of the paired difference
    training = json.loads((demo_home / "data" / "processed" / "USRT" / "runs" / champion["pipeline_run_id"] / "training_runs.json").read_text())
    cases = pd.read_parquet(training["validation_cases_file"])
    assert set(cases["candidate"]) == {r["algorithm"] for r in training["runs"]}
    assert set(champion["route_choice"]) == set(champion["routes"])
    for page, lead in champion["route_choice"].items():
        assert lead["chosen"] == champion["routes"][page] == lead["leader"]
        assert lead["lead"] >= 0 and lead["standard_error"] >= 0 and lead["beyond_one_se"] == (lead["lead"] > lead["standard_error"])

    interim = demo_home / "data" / "interim" / "USRT"
    interactions = pl.read_parquet(interim / "interactions.parquet")
    catalog = set(pl.read_parquet(interim / "catalog.parquet")["product_id"])
    basket = interactions.filter(pl.col("customer_id").is_not_null()).group_by("basket_id").agg(
        pl.col("product_id"), pl.col("customer_id").first()).filter(pl.col("product_id").list.len() >= 2).row(0, named=True)
    wish_lists = pl.read_parquet(interim / "wish_lists.parquet")
    wisher = wish_lists["customer_id"][0]
    requests = pd.DataFrame({
        "scenario": ["product", "basket", "customer", "customer"],
        "customer_id": [None, basket["customer_id"], wisher, "NOT-A-CUSTOMER"],
        "product_ids": [[basket["product_id"][0]], basket["product_id"][:2],
                        wish_lists.filter(pl.col("customer_id") == wisher)["product_id"].to_list(), []],
        "k": [10, 5, 8, 4],
    })
    answer = registered_model(demo_home, "champion").predict(requests)
    for r, request in requests.iterrows():
        rows = answer[answer["request"] == r]
        assert list(rows["rank"]) == list(range(1, request["k"] + 1))
        assert set(rows["product_id"]) <= catalog
        assert rows["reason"].str.len().min() > 0
        if request["scenario"] in ("product", "basket"):
            assert not set(rows["product_id"]) & set(request["product_ids"])
    assert answer.loc[answer["request"] == 3, "reason"].str.contains("no purchase history").all()


def test_same_inputs_give_the_same_champion_metrics(demo_home):
    first = json.loads((demo_home / "data" / "processed" / "USRT" / "champion.json").read_text())
    workbench(demo_home, "run", "--config", str(ROOT / "configs" / "demo.yml"), "-s", "train,evaluate", "--no-progress")
    second = json.loads((demo_home / "data" / "processed" / "USRT" / "champion.json").read_text())
    assert second["version"] == first["version"] + 1
    assert (second["algorithm"], second["metrics"]) == (first["algorithm"], first["metrics"])


def test_a_legal_entity_with_recommendations_off_gets_none(demo_home):
    # FRRT has "POS recommendations" turned off in the demo retailer's operational database
    workbench(demo_home, "run", "--config", str(ROOT / "configs" / "demo.yml"), "-p", "legal_entity=FRRT",
              "-p", "algorithms=[best_sellers, repeat, sar]", "-p", "untuned_algorithms=[]", "--no-progress")
    answer = registered_model(demo_home, "champion-FRRT").predict(
        pd.DataFrame({"scenario": ["customer", "basket"], "customer_id": [None, None], "product_ids": [[], ["P00001"]], "k": [5, 5]}))
    assert list(answer["rank"]) == [0, 0] and answer["product_id"].isna().all()
    assert answer["reason"].str.contains("turned off for legal entity FRRT").all()
    # the other legal entity's champion is untouched
    usrt = registered_model(demo_home, "champion-USRT").predict(
        pd.DataFrame({"scenario": ["customer"], "customer_id": [None], "product_ids": [[]], "k": [3]}))
    assert list(usrt["rank"]) == [1, 2, 3]
