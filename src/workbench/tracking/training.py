"""Fitting and logging models: each algorithm in its own run nested under the pipeline run, with its
hyperparameters, fit time, data snapshot and the servable pyfunc model."""

from __future__ import annotations

import hashlib
import json
import time
from datetime import datetime, timezone
from typing import Any

import mlflow
import pandas as pd

from workbench.tracking.runs import KIND_TAG, SETTINGS_TAGS, configure, owner_tags

MODEL_ARTIFACT_NAME = "pos_model"


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
        mlflow.log_params({"algorithm": algorithm, **{f"hp.{k}": param_value(v) for k, v in effective.items()}})
        if snapshot:
            mlflow.log_params({k: param_value(v) for k, v in snapshot.items()})
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
        "effective_hyperparameters": {k: param_value(v) for k, v in effective.items()},
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


def param_value(value) -> str:
    """A parameter's value as MLflow stores it: text (JSON unless a string), cut to its 6,000-character limit."""
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    return text[:6000]
