"""The experiment and its runs: where MLflow tracks, the parent run of a pipeline, who owns a run,
and the runs a killed pipeline left RUNNING."""

from __future__ import annotations

import json
import os
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import mlflow
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from workbench import paths

EXPERIMENT_NAME = "pos-recommendations"
KIND_TAG = "workbench.kind"
#: the tags a model's run carries: what the registered model serves, and for whom
SETTINGS_TAGS = {
    "legal_entity": "legal_entity",
    "algorithm": "workbench.algorithm",
    "trained_at": "workbench.trained_at",
    "enable_pos_recommendations": "workbench.enable_pos_recommendations",
}
#: Who started a run (the `workbench run` process, or the notebook's kernel when a notebook runs on
#: its own): a run still RUNNING whose owner is gone was killed, and the next start says so.
OWNER_TAGS = {"pid": "workbench.owner_pid", "host": "workbench.owner_host", "pid_start": "workbench.owner_pid_start"}
#: `workbench run` puts its own identity here (JSON) for the notebook kernels it starts.
OWNER_ENV = "WORKBENCH_RUN_OWNER"


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


def mlflow_client() -> MlflowClient:
    configure()
    return MlflowClient()


def experiment_id() -> str:
    return mlflow_client().get_experiment_by_name(EXPERIMENT_NAME).experiment_id


def owner_tags() -> dict[str, str]:
    """The owner of runs started now: the `workbench run` that started this kernel, else this process."""
    from workbench.locks import this_process

    owner = json.loads(os.environ[OWNER_ENV]) if os.environ.get(OWNER_ENV) else this_process()
    return {tag: str(owner[key]) for key, tag in OWNER_TAGS.items() if owner.get(key) is not None}


def start_pipeline_run(legal_entity: str, run_name: str | None = None, tags: dict | None = None) -> str:
    """Create the parent run of a pipeline (when `workbench run` did not pass one); returns its id.
    The run stays open: nested runs attach to it by id, `end_pipeline_run` closes it."""
    client = mlflow_client()
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    run = client.create_run(
        experiment_id(),
        run_name=run_name or f"pipeline-{stamp}-{legal_entity}",
        tags={KIND_TAG: "pipeline", "legal_entity": str(legal_entity), **owner_tags(), **(tags or {})},
    )
    return run.info.run_id


def end_pipeline_run(run_id: str, status: str = "FINISHED") -> None:
    mlflow_client().set_terminated(run_id, status=status)


def settle_orphaned_runs(legal_entity: str) -> list[dict[str, Any]]:
    """Mark KILLED the runs of `legal_entity` still RUNNING whose owning process is gone (a run
    killed mid-stage never ends its runs); returns what was marked (run id, name, kind, owner,
    run folder). Runs whose owner lives, or cannot be checked (another host, no owner tags, unless
    nested under a run found dead), stay."""
    from workbench.locks import owner_alive

    client = mlflow_client()
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
