"""Evaluation metrics on runs (named ``<scenario>.<metric>_at_<k>``) and read back: per scenario, and
as the comparison of one pipeline run's algorithms."""

from __future__ import annotations

import time

import pandas as pd
from mlflow.tracking import MlflowClient

from workbench.tracking.runs import KIND_TAG, SETTINGS_TAGS, experiment_id, mlflow_client

METRICS = ("precision", "recall", "ndcg", "map", "hr", "coverage", "novelty")
SCENARIO_ORDER = ("customer", "customer_new_items", "basket", "product")


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
    mlflow_client().log_batch(run_id, metrics=[Metric(key, value, now, 0) for key, value in metrics.items()])
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
    client = mlflow_client()
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
