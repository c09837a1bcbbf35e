"""What one stage of a pipeline run hands the next, beside MLflow: 03_train's training record and
validation cases, 04_evaluate's champion record; in the run's own folder, written atomically."""

from __future__ import annotations

import json
from pathlib import Path

from workbench import paths
from workbench.storage import atomic_write_json, atomic_write_parquet


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
