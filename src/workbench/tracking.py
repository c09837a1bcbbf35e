"""MLflow tracking and registry for the workbench: one experiment, one registered model.

Runs of the experiment ``pos-recommendations`` carry the tag ``workbench.kind``:

* ``pipeline``: the parent run of one `workbench run` (created by the runner or by 03_train);
* ``algorithm``: one trained algorithm (nested under the pipeline run; 04_evaluate adds its
  metrics, named ``<scenario>.<metric>_at_<k>``, e.g. ``customer.ndcg_at_10``);
* ``champion-refit``: the chosen algorithm refitted on all data, the registered champion.

The registered model ``pos-recommender`` has its serving version under the alias ``champion``.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pandas as pd
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from workbench import paths
from workbench.storage import atomic_write_json, atomic_write_parquet

EXPERIMENT_NAME = "pos-recommendations"
REGISTERED_MODEL_NAME = "pos-recommender"
CHAMPION_ALIAS = "champion"
MODEL_ARTIFACT_NAME = "pos_model"
KIND_TAG = "workbench.kind"
SETTINGS_TAGS = {
    "legal_entity": "legal_entity",
    "algorithm": "workbench.algorithm",
    "trained_at": "workbench.trained_at",
    "enable_pos_recommendations": "workbench.enable_pos_recommendations",
}
METRICS = ("precision", "recall", "ndcg", "map", "hr", "coverage", "novelty")
#: On a registered champion's run (04_evaluate): where the test window its metrics come from began,
#: whether the served model was refitted on everything after that scoring, and the headline metric
#: per page with its bootstrap interval and margin over the best other candidate (JSON).
TEST_WINDOW_TAG = "workbench.test_window_start"
REFIT_TAG = "workbench.refit_on_all_data"
TEST_UNCERTAINTY_TAG = "workbench.test_uncertainty"
SCENARIO_ORDER = ("customer", "customer_new_items", "basket", "product")


#: Who started a run (the `workbench run` process, or the notebook's kernel when a notebook runs on
#: its own): a run still RUNNING whose owner is gone was killed, and the next start says so.
OWNER_TAGS = {"pid": "workbench.owner_pid", "host": "workbench.owner_host", "pid_start": "workbench.owner_pid_start"}
#: `workbench run` puts its own identity here (JSON) for the notebook kernels it starts.
OWNER_ENV = "WORKBENCH_RUN_OWNER"


class NoChampionError(LookupError):
    """No version of the registered model carries the alias `champion` yet."""


# -- configuration ---------------------------------------------------------------------------------
def configure() -> str:
    """Point MLflow tracking and registry at the workbench store and make sure the experiment
    exists (artifacts under mlruns/artifacts). Idempotent; returns the tracking URI."""
    uri = paths.tracking_uri()
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    if uri.startswith("sqlite:///"):
        Path(uri[len("sqlite:///") :]).parent.mkdir(parents=True, exist_ok=True)
    client = MlflowClient(uri, uri)
    experiment = client.get_experiment_by_name(EXPERIMENT_NAME)
    if experiment is None:
        try:
            client.create_experiment(EXPERIMENT_NAME, artifact_location=paths.artifact_location())
        except MlflowException:
            # another process created it in between
            if client.get_experiment_by_name(EXPERIMENT_NAME) is None:
                raise
    elif experiment.lifecycle_stage == "deleted":
        client.restore_experiment(experiment.experiment_id)
    mlflow.set_experiment(EXPERIMENT_NAME)
    return uri


def _client() -> MlflowClient:
    configure()
    return MlflowClient()


def experiment_id() -> str:
    return _client().get_experiment_by_name(EXPERIMENT_NAME).experiment_id


def owner_tags() -> dict[str, str]:
    """The owner of runs started now: the `workbench run` that started this kernel, else this process."""
    from workbench.locks import this_process

    owner = json.loads(os.environ[OWNER_ENV]) if os.environ.get(OWNER_ENV) else this_process()
    return {tag: str(owner[key]) for key, tag in OWNER_TAGS.items() if owner.get(key) is not None}


def start_pipeline_run(legal_entity: str, run_name: str | None = None, tags: dict | None = None) -> str:
    """Create the parent run of a pipeline (when `workbench run` did not pass one); returns its id.
    The run stays open: nested runs attach to it by id, `end_pipeline_run` closes it."""
    client = _client()
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    run = client.create_run(
        experiment_id(),
        run_name=run_name or f"pipeline-{stamp}-{legal_entity}",
        tags={KIND_TAG: "pipeline", "legal_entity": str(legal_entity), **owner_tags(), **(tags or {})},
    )
    return run.info.run_id


def end_pipeline_run(run_id: str, status: str = "FINISHED") -> None:
    _client().set_terminated(run_id, status=status)


def settle_orphaned_runs(legal_entity: str) -> list[dict[str, Any]]:
    """Mark KILLED the runs of `legal_entity` still RUNNING whose owning process is gone (a run
    killed mid-stage never ends its runs); returns what was marked (run id, name, kind, owner,
    run folder). Runs whose owner lives, or cannot be checked (another host, no owner tags, unless
    nested under a run found dead), stay."""
    from workbench.locks import owner_alive

    client = _client()
    running = client.search_runs(
        [experiment_id()],
        filter_string=f"attributes.status = 'RUNNING' and tags.legal_entity = '{legal_entity}'",
        max_results=1000,
    )
    settled: list[dict[str, Any]] = []
    now = datetime.now(timezone.utc).isoformat(timespec="seconds")
    dead: set[str] = set()
    changed = True
    while changed:  # a run without owner tags nested under a dead run died with it (tuning runs, trials)
        changed = False
        for run in running:
            tags = run.data.tags
            if run.info.run_id in dead:
                continue
            owner = {key: tags.get(tag) for key, tag in OWNER_TAGS.items()}
            alive = owner_alive(owner)
            if alive is False or (alive is None and not owner["pid"] and tags.get("mlflow.parentRunId") in dead):
                dead.add(run.info.run_id)
                changed = True
                client.set_tag(run.info.run_id, "workbench.killed_detected_at", now)
                client.set_terminated(run.info.run_id, status="KILLED")
                settled.append({
                    "run_id": run.info.run_id, "run_name": run.info.run_name, "kind": tags.get(KIND_TAG),
                    "owner_pid": owner["pid"], "owner_host": owner["host"], "run_dir": tags.get("workbench.run_dir"),
                    "status": "KILLED",
                })
    return settled


# -- logging models --------------------------------------------------------------------------------
def log_recommender(model, settings: dict, *, name: str = MODEL_ARTIFACT_NAME) -> str:
    """Log a fitted recommender as a `PosRecommenderModel` pyfunc into the active run (one is
    started when none is active) and tag the run with its settings; returns the model URI."""
    from workbench.pos_model import log_pos_model, normalize_settings

    configure()
    settings = normalize_settings(settings, model)
    started = mlflow.active_run() is None
    run = mlflow.start_run(run_name=f"{settings['algorithm']}") if started else mlflow.active_run()
    try:
        mlflow.set_tags({tag: str(settings[key]) for key, tag in SETTINGS_TAGS.items()})
        info = log_pos_model(model, settings, name=name)
    finally:
        if started:
            mlflow.end_run()
    return info.model_uri if info.model_uri else f"runs:/{run.info.run_id}/{name}"


def file_sha256(path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def data_snapshot(interactions, *, path=None, split_time=None, prefix: str = "data") -> dict[str, Any]:
    """Identifiers of the data a model saw: file hash, rows, customers, products, baskets, dates."""
    import polars as pl

    frame = pl.from_pandas(interactions) if isinstance(interactions, pd.DataFrame) else interactions
    snapshot = {
        f"{prefix}.rows": frame.height,
        f"{prefix}.baskets": frame["basket_id"].n_unique() if frame.height else 0,
        f"{prefix}.products": frame["product_id"].n_unique() if frame.height else 0,
        f"{prefix}.customers": frame["customer_id"].drop_nulls().n_unique() if frame.height else 0,
        f"{prefix}.first_time": str(frame["time"].min()) if frame.height else "",
        f"{prefix}.last_time": str(frame["time"].max()) if frame.height else "",
    }
    if path is not None:
        snapshot[f"{prefix}.file"] = str(path)
        snapshot[f"{prefix}.sha256"] = file_sha256(path)
    if split_time is not None:
        snapshot[f"{prefix}.split_time"] = str(pd.Timestamp(split_time))
    return snapshot


def train_and_log(
    algorithm: str,
    params: dict,
    data,
    *,
    settings: dict,
    parent_run_id: str | None,
    snapshot: dict | None = None,
    kind: str = "algorithm",
    run_name: str | None = None,
    extra_tags: dict | None = None,
    model_factory=None,
    fitted: tuple | None = None,
) -> dict[str, Any]:
    """Fit `algorithm` on `data` (a TrainingData) in a run nested under `parent_run_id`; log its
    hyperparameters, fit time, data snapshot and the pyfunc model. Returns run_id, model_uri,
    fit_seconds and the fitted model. `fitted`: (model, seconds) of a fit already made with
    `params` on `data` (a shared pass, `train_all`), logged as it is."""
    from workbench.models import make_model

    configure()
    factory = model_factory or make_model
    tags = {KIND_TAG: kind, "legal_entity": str(settings.get("legal_entity", "")), **owner_tags(), **(extra_tags or {})}
    with mlflow.start_run(run_name=run_name or algorithm, parent_run_id=parent_run_id, tags=tags) as run:
        model = fitted[0] if fitted else factory(algorithm, **params)
        # the effective hyperparameters: the given ones and the algorithm's defaults
        effective = {**(getattr(model, "params", None) or {}), **params}
        mlflow.log_params({"algorithm": algorithm, **{f"hp.{k}": _param_value(v) for k, v in effective.items()}})
        if snapshot:
            mlflow.log_params({k: _param_value(v) for k, v in snapshot.items()})
        if fitted:
            fit_seconds = fitted[1]
        else:
            started = time.perf_counter()
            model.fit(data)
            fit_seconds = time.perf_counter() - started
        mlflow.log_metric("fit_seconds", fit_seconds)
        model_settings = {**settings, "algorithm": algorithm}
        model_settings.setdefault("trained_at", datetime.now(timezone.utc).isoformat(timespec="seconds"))
        model_uri = log_recommender(model, model_settings, name=MODEL_ARTIFACT_NAME)
    return {
        "algorithm": algorithm,
        "run_id": run.info.run_id,
        "model_uri": model_uri,
        "fit_seconds": fit_seconds,
        "hyperparameters": params,
        "effective_hyperparameters": {k: _param_value(v) for k, v in effective.items()},
        "model": model,
    }


def train_all(algorithms, params: dict[str, dict], data, *, progress=None, **logged) -> list[dict[str, Any]]:
    """`train_and_log` of each algorithm with its `params` (`logged`: its keyword arguments), in
    order; a champion and a blend alone that share a fit (`models.champion.shared_passes`) are fitted
    in one pass when the first of them comes, and each run logs that pass's time and names its
    partner (tag `fit_shared_with`). `progress`: a tqdm-like bar, advanced per algorithm."""
    from workbench.models import make_model
    from workbench.models.champion.model import fit_shared_pass, shared_passes

    factory = logged.get("model_factory") or make_model
    unfitted = {a: factory(a, **params[a]) for a in algorithms}
    partner, shared, results = shared_passes(unfitted), {}, []
    extra_tags = logged.pop("extra_tags", None) or {}
    for algorithm in algorithms:
        if progress is not None:
            progress.set_postfix_str(algorithm)
        if algorithm in partner and algorithm not in shared:
            started = time.perf_counter()
            fit_shared_pass(unfitted, algorithm, partner[algorithm], data)
            shared[algorithm] = shared[partner[algorithm]] = time.perf_counter() - started
        fitted = (unfitted[algorithm], shared[algorithm]) if algorithm in shared else None
        tags = {**extra_tags, **({"fit_shared_with": partner[algorithm]} if fitted else {})}
        result = train_and_log(algorithm, params[algorithm], data, fitted=fitted, extra_tags=tags or None, **logged)
        results.append({**result, "fit_shared_with": partner[algorithm] if fitted else None})
        if progress is not None:
            progress.update(1)
    return results


def _param_value(value) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    return text[:6000]


# -- evaluation metrics ------------------------------------------------------------------------------
def metric_key(scenario: str, metric: str, k: int = 10) -> str:
    return f"{scenario}.n_cases" if metric == "n_cases" else f"{scenario}.{metric}_at_{k}"


def evaluation_metrics(results: pd.DataFrame, k: int = 10) -> dict[str, float]:
    """`protocol.evaluate`'s table as MLflow metrics: {"customer.ndcg_at_10": ..., "basket.n_cases": ...}."""
    metrics = {}
    for row in results.to_dict("records"):
        for metric in ("n_cases", *METRICS):
            if metric in row and row[metric] is not None and pd.notna(row[metric]):
                metrics[metric_key(row["scenario"], metric, k)] = float(row[metric])
    return metrics


def log_evaluation(run_id: str, results: pd.DataFrame, k: int = 10) -> dict[str, float]:
    """Add the evaluation metrics to an existing (possibly finished) run."""
    from mlflow.entities import Metric

    metrics = evaluation_metrics(results, k)
    now = int(time.time() * 1000)
    _client().log_batch(run_id, metrics=[Metric(key, value, now, 0) for key, value in metrics.items()])
    return metrics


def metrics_by_scenario(run_metrics: dict[str, float]) -> dict[str, dict[str, float]]:
    """{"customer.ndcg_at_10": 0.3, ...} -> {"customer": {"ndcg": 0.3, ...}, ...} (k dropped)."""
    out: dict[str, dict[str, float]] = {}
    for key, value in run_metrics.items():
        scenario, dot, metric = key.partition(".")
        if not dot:
            continue
        name = metric.rsplit("_at_", 1)[0] if "_at_" in metric else metric
        out.setdefault(scenario, {})[name] = value
    return {s: out[s] for s in sorted(out, key=lambda s: (SCENARIO_ORDER.index(s) if s in SCENARIO_ORDER else 99, s))}


def describe_metrics(metrics: dict[str, dict[str, float]], k: int = 10) -> str:
    """A model version's description: one line per scenario."""
    lines = []
    for scenario, values in metrics.items():
        shown = ", ".join(
            f"{m.upper() if m in ('ndcg', 'map', 'hr') else m}@{k} {values[m]:.3f}"
            for m in ("ndcg", "hr", "map", "precision", "recall", "coverage")
            if m in values
        )
        cases = f" ({int(values['n_cases']):,} cases)" if "n_cases" in values else ""
        lines.append(f"- {scenario}{cases}: {shown}")
    return "\n".join(lines)


# -- the registry ------------------------------------------------------------------------------------
def register_champion(
    model_uri: str,
    *,
    name: str = REGISTERED_MODEL_NAME,
    description: str | None = None,
    tags: dict | None = None,
) -> int:
    """Register `model_uri` as a new version of `name` (created if missing), give it the alias
    `champion` and a description (default: its run's metrics per scenario); returns the version."""
    client = _client()
    try:
        client.get_registered_model(name)
    except MlflowException:
        try:
            client.create_registered_model(
                name,
                description="POS recommendations (product details, transaction, customer details); "
                "the version with alias `champion` is served to the POS.",
            )
        except MlflowException:
            client.get_registered_model(name)  # created concurrently: fine; anything else re-raises
    version = mlflow.register_model(model_uri, name, tags={k: str(v) for k, v in (tags or {}).items()})
    run = client.get_run(version.run_id) if version.run_id else None
    settings = _run_settings(run) if run is not None else {}
    if description is None and run is not None:
        description = (
            f"{settings.get('algorithm', '?')} for legal entity {settings.get('legal_entity', '?')}, "
            f"trained {settings.get('trained_at', '?')}\n" + describe_metrics(metrics_by_scenario(run.data.metrics))
        )
    if description:
        client.update_model_version(name, version.version, description=description)
    client.set_registered_model_alias(name, CHAMPION_ALIAS, version.version)
    if settings.get("legal_entity"):
        # several legal entities share the registry: each keeps its own champion as well
        client.set_registered_model_alias(name, legal_entity_alias(settings["legal_entity"]), version.version)
    return int(version.version)


def legal_entity_alias(legal_entity: str) -> str:
    """`champion-<legal entity>`: the champion of one legal entity (aliases allow no '.')."""
    return f"{CHAMPION_ALIAS}-{str(legal_entity).replace('.', '_')}"


def _champion_version(name: str):
    client = _client()
    try:
        return client, client.get_model_version_by_alias(name, CHAMPION_ALIAS)
    except MlflowException as exc:
        raise NoChampionError(
            f"No model registered as {name}@{CHAMPION_ALIAS} yet: run `make demo` (or `workbench run`) first"
        ) from exc


def load_champion(name: str = REGISTERED_MODEL_NAME):
    """The served model, `mlflow.pyfunc.load_model("models:/<name>@champion")`."""
    _champion_version(name)
    return mlflow.pyfunc.load_model(f"models:/{name}@{CHAMPION_ALIAS}")


def _run_settings(run) -> dict[str, Any]:
    tags = run.data.tags
    settings = {key: tags[tag] for key, tag in SETTINGS_TAGS.items() if tag in tags}
    if "enable_pos_recommendations" in settings:
        settings["enable_pos_recommendations"] = settings["enable_pos_recommendations"].lower() == "true"
    return settings


def champion_figure_tags(test_window_start, refit_on_all_data: bool, uncertainty: list[dict]) -> dict[str, str]:
    """The tags a champion's run carries so that its test figures say where they come from: the test
    window's start, whether the served model was refitted on all data after that scoring, and
    `evaluation.headline_uncertainty`'s rows (JSON, floats to 4 places: four pages stay far inside
    MLflow's limit on a tag's length). `champion_info` reads them back."""
    return {TEST_WINDOW_TAG: str(pd.Timestamp(test_window_start)), REFIT_TAG: str(bool(refit_on_all_data)),
            TEST_UNCERTAINTY_TAG: _uncertainty_tag(uncertainty)}


def _uncertainty_tag(rows: list[dict]) -> str:
    def plain(value):
        if isinstance(value, (bool, np.bool_)):
            return bool(value)
        if isinstance(value, (int, float, np.integer, np.floating)):
            return round(float(value), 4) if np.isfinite(value) else None
        return None if value is None else str(value)

    return json.dumps([{str(k): plain(v) for k, v in row.items()} for row in rows])


def _uncertainty_rows(text: str | None) -> list[dict]:
    try:
        rows = json.loads(text) if text else []
    except ValueError:
        return []
    return [row for row in rows if isinstance(row, dict)] if isinstance(rows, list) else []


def champion_info(name: str = REGISTERED_MODEL_NAME) -> dict[str, Any]:
    """What the dashboard shows about the served model: version, run_id, trained_at, algorithm,
    legal_entity, enable_pos_recommendations, metrics {scenario: {metric: value}}, hyperparameters,
    description, registered_at and model_uri; for a champion registered by 04_evaluate also where
    the test window of its metrics began (`test_window_start`), whether it was refitted on all data
    since (`refit_on_all_data`), and `test_uncertainty` (its rows: each page's headline metric,
    bootstrap interval and margin over the best other candidate on validation)."""
    client, version = _champion_version(name)
    info: dict[str, Any] = {
        "name": name,
        "version": int(version.version),
        "model_uri": f"models:/{name}@{CHAMPION_ALIAS}",
        "run_id": version.run_id,
        "description": version.description or "",
        "registered_at": datetime.fromtimestamp(version.creation_timestamp / 1000, timezone.utc).isoformat(timespec="seconds"),
        "algorithm": None,
        "legal_entity": None,
        "trained_at": None,
        "enable_pos_recommendations": None,
        "metrics": {},
        "hyperparameters": {},
        "evaluated_run_id": None,
        "pipeline_run_id": None,
        "test_window_start": None,
        "refit_on_all_data": None,
        "test_uncertainty": [],
    }
    if version.run_id:
        run = client.get_run(version.run_id)
        info.update(_run_settings(run))
        info["metrics"] = metrics_by_scenario(run.data.metrics)
        info["hyperparameters"] = {k[3:]: v for k, v in run.data.params.items() if k.startswith("hp.")}
        info["evaluated_run_id"] = run.data.tags.get("workbench.evaluated_run_id", version.run_id)
        info["pipeline_run_id"] = run.data.tags.get("mlflow.parentRunId")
        info["test_window_start"] = run.data.tags.get(TEST_WINDOW_TAG)
        if REFIT_TAG in run.data.tags:
            info["refit_on_all_data"] = run.data.tags[REFIT_TAG].lower() == "true"
        info["test_uncertainty"] = _uncertainty_rows(run.data.tags.get(TEST_UNCERTAINTY_TAG))
        if "fit_seconds" in run.data.metrics:
            info["fit_seconds"] = run.data.metrics["fit_seconds"]
    return info


# -- comparisons ------------------------------------------------------------------------------------
def _children(client: MlflowClient, parent_run_id: str, kind: str = "algorithm") -> list:
    return client.search_runs(
        [experiment_id()],
        filter_string=f"tags.mlflow.parentRunId = '{parent_run_id}' and tags.`{KIND_TAG}` = '{kind}'",
        max_results=500,
    )


def comparison_table(runs) -> pd.DataFrame:
    rows = []
    for run in runs:
        by_scenario = metrics_by_scenario(run.data.metrics)
        algorithm = run.data.tags.get(SETTINGS_TAGS["algorithm"]) or run.data.params.get("algorithm") or run.info.run_name
        for scenario, values in by_scenario.items():
            rows.append(
                {
                    "algorithm": algorithm,
                    "scenario": scenario,
                    **{m: values.get(m) for m in ("n_cases", *METRICS)},
                    "fit_seconds": run.data.metrics.get("fit_seconds"),
                    "run_id": run.info.run_id,
                }
            )
    columns = ["algorithm", "scenario", "n_cases", *METRICS, "fit_seconds", "run_id"]
    frame = pd.DataFrame(rows, columns=columns)
    if not frame.empty:
        order = {s: i for i, s in enumerate(SCENARIO_ORDER)}
        frame = frame.sort_values(["algorithm", "scenario"], key=lambda c: c.map(order).fillna(99) if c.name == "scenario" else c)
        frame["n_cases"] = frame["n_cases"].astype("Int64")
    return frame.reset_index(drop=True)


def last_pipeline_comparison(pipeline_run_id: str | None = None, legal_entity: str | None = None) -> pd.DataFrame:
    """Metrics of every algorithm run of the most recent evaluated pipeline run (or of the one
    given): one row per (algorithm, scenario) with n_cases, precision, recall, ndcg, map, hr,
    coverage, novelty (at k = 10 unless the run said otherwise), fit_seconds and run_id.
    `attrs["pipeline_run_id"]` says which pipeline run it is; empty frame when there is none."""
    client = _client()
    if pipeline_run_id is None:
        filter_string = f"tags.`{KIND_TAG}` = 'pipeline'"
        if legal_entity:
            filter_string += f" and tags.legal_entity = '{legal_entity}'"
        pipelines = client.search_runs([experiment_id()], filter_string=filter_string, order_by=["attributes.start_time DESC"], max_results=50)
        candidates = [p.info.run_id for p in pipelines]
    else:
        candidates = [pipeline_run_id]
    for candidate in candidates:
        runs = [r for r in _children(client, candidate) if any("." in key for key in r.data.metrics)]
        if runs:
            frame = comparison_table(runs)
            frame.attrs["pipeline_run_id"] = candidate
            return frame
    frame = comparison_table([])
    frame.attrs["pipeline_run_id"] = None
    return frame


def write_training_runs(legal_entity: str, record: dict) -> Path:
    """data/processed/<le>/runs/<pipeline run id>/training_runs.json: what 03_train made, for the
    04_evaluate of the same pipeline run (written atomically)."""
    path = paths.handover_dir(legal_entity, record["pipeline_run_id"]) / "training_runs.json"
    return atomic_write_json(path, record)


def write_validation_cases(legal_entity: str, pipeline_run_id: str, frame) -> Path:
    """Beside training_runs.json: each candidate's headline metric per validation case
    (`selection.headline_cases_frame`), which 04_evaluate weighs a lead against (written atomically)."""
    return atomic_write_parquet(frame, paths.handover_dir(legal_entity, pipeline_run_id) / "validation_cases.parquet")


def read_training_runs(legal_entity: str, pipeline_run_id: str | None = None) -> dict:
    """The training record of `pipeline_run_id`; without one (a notebook run on its own), the most
    recent record of the legal entity. A missing record is an error naming the run."""
    runs = paths.processed_dir(legal_entity) / "runs"
    if pipeline_run_id:
        path = paths.handover_dir(legal_entity, pipeline_run_id) / "training_runs.json"
        if not path.exists():
            latest = _latest_training_record(runs)
            hint = f"; the latest training of {legal_entity} is pipeline run {latest.parent.name}" if latest else ""
            raise FileNotFoundError(
                f"pipeline run {pipeline_run_id} of legal entity {legal_entity} has no training record ({path}): "
                f"run 03_train in the same `workbench run` (e.g. -s train,evaluate), or evaluate an earlier "
                f"training with -p pipeline_run_id=<its pipeline run id>{hint}"
            )
    else:
        path = _latest_training_record(runs)
        if path is None:
            raise FileNotFoundError(f"no training record under {runs}: run 03_train for legal entity {legal_entity} first")
    return json.loads(path.read_text())


def _latest_training_record(runs: Path) -> Path | None:
    records = [(json.loads(p.read_text()).get("created_at", ""), p) for p in runs.glob("*/training_runs.json")]
    return max(records)[1] if records else None


def write_champion_record(legal_entity: str, record: dict) -> Path:
    """04_evaluate's record: in its pipeline run's folder, and as data/processed/<le>/champion.json
    (the legal entity's latest champion); both written atomically."""
    atomic_write_json(paths.handover_dir(legal_entity, record["pipeline_run_id"]) / "champion.json", record)
    return atomic_write_json(paths.processed_dir(legal_entity) / "champion.json", record)


def load_recommender(model_uri: str):
    """The fitted Recommender inside a logged PosRecommenderModel."""
    return mlflow.pyfunc.load_model(model_uri).unwrap_python_model().recommender
