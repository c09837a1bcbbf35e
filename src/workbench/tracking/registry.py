"""The registered model: a new version under the alias ``champion`` (and ``champion-<legal entity>``),
and what the POS and the dashboard read back about it."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import Any

import mlflow
import numpy as np
import pandas as pd
from mlflow.exceptions import MlflowException

from workbench.tracking.metrics import describe_metrics, metrics_by_scenario
from workbench.tracking.runs import SETTINGS_TAGS, mlflow_client

REGISTERED_MODEL_NAME = "pos-recommender"
CHAMPION_ALIAS = "champion"
#: On a registered champion's run (04_evaluate): where the test window its metrics come from began,
#: whether the served model was refitted on everything after that scoring, and the headline metric
#: per page with its bootstrap interval and margin over the best other candidate (JSON).
TEST_WINDOW_TAG = "workbench.test_window_start"
REFIT_TAG = "workbench.refit_on_all_data"
TEST_UNCERTAINTY_TAG = "workbench.test_uncertainty"


class NoChampionError(LookupError):
    """No version of the registered model carries the alias `champion` yet."""


def register_champion(
    model_uri: str,
    *,
    name: str = REGISTERED_MODEL_NAME,
    description: str | None = None,
    tags: dict | None = None,
) -> int:
    """Register `model_uri` as a new version of `name` (created if missing), give it the alias
    `champion` and a description (default: its run's metrics per scenario); returns the version."""
    client = mlflow_client()
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
    client = mlflow_client()
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


def load_recommender(model_uri: str):
    """The fitted Recommender inside a logged PosRecommenderModel."""
    return mlflow.pyfunc.load_model(model_uri).unwrap_python_model().recommender
