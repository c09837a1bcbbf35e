"""MLflow tracking and registry (real SQLite store in a tmp WORKBENCH_HOME), and the train / evaluate
notebooks run end to end through papermill on a tiny hand-made interim dataset."""

import json
from pathlib import Path

import mlflow
import pandas as pd
import pytest

from helpers import tiny_interactions

from workbench import paths, tracking
from workbench.dashboard import render
from workbench.evaluation import HEADLINE, protocol
import numpy as np

from workbench.models import Request, TrainingData, make_model

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("WORKBENCH_HOME", str(tmp_path))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    tracking.configure()  # MLflow's tracking URI is process-global: point it at this test's store
    return tmp_path


def _train_pipeline(algorithms, legal_entity="LE1"):
    """What 03_train + 04_evaluate do, in a few lines: nested runs under a pipeline run, with metrics."""
    interactions = tiny_interactions()
    split = protocol.last_days_start(interactions, 30)
    train, test = protocol.temporal_split(interactions, split)
    data = TrainingData.from_interactions(train)
    cases = protocol.build_cases(train, test, seed=0, max_baskets=100)
    pipeline = tracking.start_pipeline_run(legal_entity)
    runs = {}
    for algorithm in algorithms:
        result = tracking.train_and_log(
            algorithm, {}, data, settings={"legal_entity": legal_entity}, parent_run_id=pipeline,
            snapshot=tracking.data_snapshot(train, split_time=split),
        )
        tracking.log_evaluation(result["run_id"], protocol.evaluate(result["model"], cases, k=10), k=10)
        runs[algorithm] = result
    return pipeline, runs


def test_configure_is_idempotent_and_uses_the_workbench_store(home):
    uri = tracking.configure()
    assert uri == f"sqlite:///{home / 'mlruns' / 'mlflow.db'}"
    assert tracking.configure() == uri
    assert mlflow.get_tracking_uri() == uri and mlflow.get_registry_uri() == uri
    experiment = mlflow.get_experiment_by_name(tracking.EXPERIMENT_NAME)
    assert experiment.artifact_location == paths.artifact_location()


def test_training_fits_a_champion_and_its_blend_in_one_pass_and_logs_both(home):
    """03_train's loop: the champion and a blend of its settings share one fit (one set of signals),
    each logged in its own run with that pass's time and its partner named; any other algorithm,
    or a blend of other settings, is fitted on its own."""
    from mlflow.tracking import MlflowClient

    data = TrainingData.from_interactions(tiny_interactions())
    fast = {"validation_days": 20, "max_tuning_cases": 150, "ranker_iterations": 10, "product_ranker_iterations": 10}
    params = {"repeat": {}, "blend": dict(fast), "champion": dict(fast)}
    pipeline = tracking.start_pipeline_run("LE1")
    results = {r["algorithm"]: r for r in tracking.train_all(list(params), params, data, settings={"legal_entity": "LE1"}, parent_run_id=pipeline)}
    assert list(results) == ["repeat", "blend", "champion"]
    blend, champion = results["blend"], results["champion"]
    assert (blend["fit_shared_with"], champion["fit_shared_with"], results["repeat"]["fit_shared_with"]) == ("champion", "blend", None)
    assert blend["fit_seconds"] == champion["fit_seconds"] > 0
    assert blend["model"].state.basket_similarity is champion["model"].state.basket_similarity
    client = MlflowClient()
    assert client.get_run(blend["run_id"]).data.tags["fit_shared_with"] == "champion"
    assert "fit_shared_with" not in client.get_run(results["repeat"]["run_id"]).data.tags
    assert client.get_run(champion["run_id"]).data.metrics["fit_seconds"] == pytest.approx(champion["fit_seconds"])
    # the logged blend is the blend fitted alone (to float32 rounding: numpy's sums may take another
    # order in another fit's memory)
    requests = [Request("customer", "C001"), Request("basket", None, ("P001", "P002")), Request("product", None, ("P003",))]
    alone = make_model("blend", **fast).fit(data)
    logged = mlflow.pyfunc.load_model(blend["model_uri"]).unwrap_python_model().recommender
    assert logged.weights == alone.weights and not logged.rankers
    np.testing.assert_allclose(logged.score(requests), alone.score(requests), rtol=1e-6, atol=1e-6)
    # other settings: two fits
    params["blend"] = {**fast, "basket_lambda": 7.0}
    results = {r["algorithm"]: r for r in tracking.train_all(["blend", "champion"], params, data, settings={"legal_entity": "LE1"}, parent_run_id=pipeline)}
    assert results["blend"]["fit_shared_with"] is None
    assert results["blend"]["model"].state.basket_similarity is not results["champion"]["model"].state.basket_similarity


def test_no_champion_yet_is_a_clear_error(home):
    message = r"No model registered as pos-recommender@champion yet: run `make demo` \(or `workbench run`\) first"
    with pytest.raises(tracking.NoChampionError, match=message):
        tracking.load_champion()
    with pytest.raises(tracking.NoChampionError, match=message):
        tracking.champion_info()


def test_register_load_by_alias_and_champion_info(home):
    pipeline, runs = _train_pipeline(["best_sellers", "repeat"])
    assert tracking.register_champion(runs["best_sellers"]["model_uri"]) == 1
    version = tracking.register_champion(runs["repeat"]["model_uri"], tags={"pipeline_run_id": pipeline})
    assert version == 2

    info = tracking.champion_info()
    assert info["version"] == 2
    assert info["run_id"] == runs["repeat"]["run_id"]
    assert info["algorithm"] == "repeat"
    assert info["legal_entity"] == "LE1"
    assert info["enable_pos_recommendations"] is True
    assert info["pipeline_run_id"] == pipeline
    assert pd.Timestamp(info["trained_at"])
    assert set(info["metrics"]) == {"customer", "customer_new_items", "basket", "product"}
    assert 0 <= info["metrics"]["customer"]["ndcg"] <= 1
    assert info["metrics"]["basket"]["n_cases"] > 0
    # the default description lists the metrics per scenario
    assert "customer" in info["description"] and "NDCG@10" in info["description"]

    client = mlflow.MlflowClient()
    assert int(client.get_model_version_by_alias("pos-recommender", "champion").version) == 2
    assert client.get_model_version("pos-recommender", "2").tags["pipeline_run_id"] == pipeline

    served = tracking.load_champion()
    answer = served.predict(pd.DataFrame({"scenario": ["customer"], "customer_id": ["C001"], "product_ids": [[]], "k": [3]}))
    assert answer["rank"].tolist() == [1, 2, 3]
    assert "regularly" in answer["reason"].iloc[0] or "before" in answer["reason"].iloc[0]


def test_last_pipeline_comparison_is_the_latest_evaluated_pipeline(home):
    _train_pipeline(["best_sellers"])
    latest, runs = _train_pipeline(["best_sellers", "repeat", "sar"])
    tracking.start_pipeline_run("LE1")  # a newer pipeline still training: nothing evaluated yet
    comparison = tracking.last_pipeline_comparison()
    assert comparison.attrs["pipeline_run_id"] == latest
    assert sorted(comparison["algorithm"].unique()) == ["best_sellers", "repeat", "sar"]
    assert len(comparison) == 3 * 4
    assert {"algorithm", "scenario", "n_cases", "precision", "recall", "ndcg", "map", "hr", "coverage", "novelty",
            "fit_seconds", "run_id"} <= set(comparison.columns)
    assert comparison[["ndcg", "hr"]].notna().all().all()
    sar = comparison[(comparison["algorithm"] == "sar") & (comparison["scenario"] == "product")].iloc[0]
    assert sar["run_id"] == runs["sar"]["run_id"]


def test_empty_store_gives_an_empty_comparison(home):
    comparison = tracking.last_pipeline_comparison()
    assert comparison.empty and "algorithm" in comparison.columns


def test_the_training_record_is_scoped_to_its_pipeline_run(home):
    """Run A never evaluates run B's models: each run reads only its own training record."""
    first = {"pipeline_run_id": "runA", "created_at": "2026-01-01T00:00:00+00:00", "runs": [{"algorithm": "sar"}]}
    second = {"pipeline_run_id": "runB", "created_at": "2026-01-02T00:00:00+00:00", "runs": [{"algorithm": "ease"}]}
    tracking.write_training_runs("LE1", first)
    tracking.write_training_runs("LE1", second)
    assert tracking.read_training_runs("LE1", "runA")["runs"] == first["runs"]
    assert tracking.read_training_runs("LE1", "runB")["runs"] == second["runs"]
    assert tracking.read_training_runs("LE1")["pipeline_run_id"] == "runB"  # a notebook on its own: the latest
    with pytest.raises(FileNotFoundError, match=r"pipeline run runC of legal entity LE1 has no training record.*latest.*runB"):
        tracking.read_training_runs("LE1", "runC")
    with pytest.raises(ValueError, match="not a valid run id"):
        tracking.read_training_runs("LE1", "../runA")
    assert not list((home / "data" / "processed" / "LE1" / "runs").rglob("*.tmp"))


def test_runs_left_running_by_a_dead_process_are_marked_killed(home):
    import subprocess
    import sys

    # a real process starts a pipeline run and a nested run, then dies without ending them
    script = (
        "from workbench import tracking; import mlflow\n"
        "p = tracking.start_pipeline_run('LE9')\n"
        "tracking.configure(); mlflow.start_run(run_name='sar', parent_run_id=p, tags={'legal_entity': 'LE9', **tracking.owner_tags()})\n"
        # a run made without owner tags (as the tuning runs are) under the dead pipeline run: it died with it
        "mlflow.MlflowClient().create_run(tracking.experiment_id(), run_name='sar-tuning', tags={'legal_entity': 'LE9', 'mlflow.parentRunId': p})\n"
        "print(p, flush=True)\n"
        "import os, signal; os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == -9, done.stderr
    pipeline = done.stdout.split()[0]
    alive = tracking.start_pipeline_run("LE9")  # owned by this (live) process: left alone
    other = tracking.start_pipeline_run("LE8")  # another legal entity: left alone
    client = mlflow.MlflowClient()
    unowned = client.create_run(tracking.experiment_id(), tags={"legal_entity": "LE9"}).info.run_id  # owner unknown: left alone
    settled = tracking.settle_orphaned_runs("LE9")
    assert len(settled) == 3 and pipeline in {s["run_id"] for s in settled}
    assert {s["run_name"] for s in settled} >= {"sar", "sar-tuning"}
    for s in settled:
        assert client.get_run(s["run_id"]).info.status == "KILLED"
        assert s["owner_pid"] != str(__import__("os").getpid())
    assert {client.get_run(r).info.status for r in (alive, other, unowned)} == {"RUNNING"}
    assert tracking.settle_orphaned_runs("LE9") == []


# -- the notebooks, end to end ---------------------------------------------------------------------------
def _write_interim(home: Path, legal_entity: str) -> None:
    folder = home / "data" / "interim" / legal_entity
    folder.mkdir(parents=True)
    tiny_interactions().to_parquet(folder / "interactions.parquet", index=False)
    wish_lists = pd.DataFrame(
        {"customer_id": ["C001", "C002"], "product_id": ["P010", "P011"],
         "added_at": pd.to_datetime(["2024-02-01", "2024-02-02"]).astype("datetime64[us]")}
    )
    wish_lists.to_parquet(folder / "wish_lists.parquet", index=False)


def _last_json_output(notebook: Path) -> dict:
    import nbformat

    cells = [c for c in nbformat.read(notebook, as_version=4).cells if c.cell_type == "code"]
    outputs = [o for o in cells[-1].outputs if "data" in o and "application/json" in o["data"]]
    return outputs[-1]["data"]["application/json"]


@pytest.mark.e2e
def test_train_and_evaluate_notebooks_register_a_loadable_champion(home, tmp_path):
    import nbformat
    import papermill

    _write_interim(home, "TINY")
    for name in ("03_train", "04_evaluate"):
        cells = nbformat.read(NOTEBOOKS / f"{name}.ipynb", as_version=4).cells
        assert "parameters" in cells[0].metadata.get("tags", []), f"{name}: first cell must be tagged parameters"
        assert all(not c.get("outputs") for c in cells if c.cell_type == "code"), f"{name} is committed with outputs"

    run = {"cwd": str(NOTEBOOKS), "kernel_name": "python3", "progress_bar": False}
    papermill.execute_notebook(
        str(NOTEBOOKS / "03_train.ipynb"), str(tmp_path / "03.ipynb"),
        parameters={"legal_entity": "TINY", "algorithms": ["best_sellers", "repeat", "sar"], "sar_half_life_days": 60}, **run,
    )
    trained = _last_json_output(tmp_path / "03.ipynb")
    # the hand-over is scoped to the pipeline run; the notebook run on its own closed the run it made
    record = json.loads((home / "data" / "processed" / "TINY" / "runs" / trained["pipeline_run_id"] / "training_runs.json").read_text())
    assert mlflow.MlflowClient().get_run(trained["pipeline_run_id"]).info.status == "FINISHED"
    assert set(trained["runs"]) == {"best_sellers", "repeat", "sar"}
    assert {r["run_id"] for r in record["runs"]} == set(trained["runs"].values())
    assert record["split_time"] == "2024-04-01 00:00:00"
    client = mlflow.MlflowClient()
    sar_run = client.get_run(trained["runs"]["sar"])
    assert sar_run.data.tags["mlflow.parentRunId"] == trained["pipeline_run_id"]
    assert sar_run.data.params["hp.half_life_days"] == "60"
    assert len(sar_run.data.params["data.sha256"]) == 64 and int(sar_run.data.params["data.rows"]) > 0
    assert sar_run.data.metrics["fit_seconds"] >= 0

    papermill.execute_notebook(
        str(NOTEBOOKS / "04_evaluate.ipynb"), str(tmp_path / "04.ipynb"),
        parameters={"legal_entity": "TINY", "max_baskets": 200, "champion_rule": "metric:product.hr"}, **run,
    )
    chosen = _last_json_output(tmp_path / "04.ipynb")
    info = tracking.champion_info()
    assert info["version"] == chosen["version"] == 1
    assert info["algorithm"] == chosen["algorithm"]
    assert info["legal_entity"] == "TINY"
    assert info["pipeline_run_id"] == trained["pipeline_run_id"]
    assert client.get_run(info["run_id"]).data.tags[tracking.KIND_TAG] == "champion-refit"
    # chosen on the validation windows, never on the test window; the test figures are the chosen run's, scored once
    validation = {a: client.get_run(r).data.metrics["validation_product_hr_at_10"] for a, r in trained["runs"].items()}
    assert validation[info["algorithm"]] == max(validation.values())
    assert info["metrics"]["product"]["hr"] == client.get_run(trained["runs"][info["algorithm"]]).data.metrics["product.hr_at_10"]
    # what the dashboard says of those figures: the test window they come from, the refit, and how sure
    assert pd.Timestamp(info["test_window_start"]) == pd.Timestamp(record["split_time"])
    assert info["refit_on_all_data"] is True
    sure = {row["scenario"]: row for row in info["test_uncertainty"]}
    assert set(sure) == set(HEADLINE)
    for page, metric in HEADLINE.items():
        row = sure[page]
        assert row["served by"] == info["algorithm"]
        assert row["test"] == pytest.approx(info["metrics"][page][metric], abs=1e-4)
        assert row["95% low"] <= row["test"] <= row["95% high"]
        assert row["baseline (best other on validation)"] in {"best_sellers", "repeat", "sar"} - {info["algorithm"]}
        assert row["ratio low"] <= row["ratio"] <= row["ratio high"] and isinstance(row["significant"], bool)
    header = render.model_header(info, "pos-recommender")
    assert f"from <b>{pd.Timestamp(record['split_time']):%Y-%m-%d}</b>" in header and "refitted on every sale" in header
    assert all(f"<tr data-scenario='{page}'>" in header.split("champion-uncertainty")[1] for page in HEADLINE)
    comparison = tracking.last_pipeline_comparison()
    assert sorted(comparison["algorithm"].unique()) == ["best_sellers", "repeat", "sar"]
    assert json.loads((home / "data" / "processed" / "TINY" / "champion.json").read_text())["version"] == 1
    scoped = home / "data" / "processed" / "TINY" / "runs" / trained["pipeline_run_id"] / "champion.json"
    assert json.loads(scoped.read_text())["version"] == 1

    answer = tracking.load_champion().predict(
        pd.DataFrame({"scenario": ["basket"], "customer_id": ["C001"], "product_ids": [["P002", "P003"]], "k": [5]})
    )
    assert len(answer) == 5 and not set(answer["product_id"]) & {"P002", "P003"}
