"""Where the workbench keeps its stages, so notebooks, tests and the CLI agree without configuration."""

from __future__ import annotations

import os
import re
from pathlib import Path

_LEGAL_ENTITY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_RUN_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,127}$")


def code_root() -> Path:
    """The checkout holding this package, its notebooks and configs."""
    here = Path(__file__).resolve()
    for parent in here.parents:
        if (parent / "pyproject.toml").exists() and (parent / "notebooks").is_dir():
            return parent
    return Path.cwd().resolve()


def project_root() -> Path:
    """Where data/ and mlruns/ live: the checkout, unless `WORKBENCH_HOME` points elsewhere (tests
    and benchmarks point it at a scratch folder; the notebooks still come from the checkout)."""
    if env := os.environ.get("WORKBENCH_HOME"):
        return Path(env).resolve()
    return code_root()


def notebooks_dir() -> Path:
    return code_root() / "notebooks"


def data_dir() -> Path:
    return project_root() / "data"


def check_legal_entity(legal_entity: str) -> str:
    """Legal entity ids become folder names: refuse anything that is not a plain identifier."""
    if not isinstance(legal_entity, str) or not _LEGAL_ENTITY.match(legal_entity):
        raise ValueError(
            f"legal_entity {legal_entity!r} is not a valid legal entity id "
            "(letters, digits, '_', '-', '.'; at most 64 characters)"
        )
    return legal_entity


def operational_dir() -> Path:
    return data_dir() / "operational"


def demo_database() -> Path:
    return operational_dir() / "demo_retailer.sqlite"


def raw_dir(legal_entity: str) -> Path:
    """The entity store of one legal entity (extraction output)."""
    return data_dir() / "raw" / check_legal_entity(legal_entity)


def interim_dir(legal_entity: str) -> Path:
    """Cleansed data of one legal entity."""
    return data_dir() / "interim" / check_legal_entity(legal_entity)


def processed_dir(legal_entity: str) -> Path:
    """Evaluation splits and other model-ready data of one legal entity."""
    return data_dir() / "processed" / check_legal_entity(legal_entity)


def handover_dir(legal_entity: str, pipeline_run_id: str) -> Path:
    """What the stages of one pipeline run hand to each other (training_runs.json,
    validation_cases.parquet, champion.json): scoped to the run, so two runs of a legal entity never
    read each other's records."""
    if not isinstance(pipeline_run_id, str) or not _RUN_ID.match(pipeline_run_id):
        raise ValueError(f"pipeline_run_id {pipeline_run_id!r} is not a valid run id (letters, digits, '_', '-')")
    return processed_dir(legal_entity) / "runs" / pipeline_run_id


def locks_dir() -> Path:
    return data_dir() / "locks"


def runs_dir() -> Path:
    """Executed notebooks of each pipeline run, one timestamped folder per run."""
    return data_dir() / "runs"


def mlruns_dir() -> Path:
    return project_root() / "mlruns"


def tracking_uri() -> str:
    """MLflow tracking and registry: an SQLite store under mlruns/, so a fresh clone needs no setup."""
    if env := os.environ.get("MLFLOW_TRACKING_URI"):
        return env
    return f"sqlite:///{mlruns_dir() / 'mlflow.db'}"


def artifact_location() -> str:
    return (mlruns_dir() / "artifacts").as_uri()


def resolve(path: str | os.PathLike) -> Path:
    """A path parameter: absolute as given, else relative to the checkout (notebooks run with
    notebooks/ as their working directory; the YAML files are written from the checkout)."""
    path = Path(path).expanduser()
    return path if path.is_absolute() else (code_root() / path).resolve()
