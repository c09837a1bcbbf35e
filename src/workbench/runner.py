"""The pipeline runner: the numbered stage notebooks, in order, through papermill.

Each stage is a notebook in `notebooks/NN_<stage>.ipynb`. The runner gives every notebook only the
parameters it declares (papermill's inspection of its `parameters` cell), so one YAML file can feed
all stages, and a misspelt `-p` override is an error instead of a silently ignored variable.
"""

from __future__ import annotations

import json
import re
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import papermill
import yaml
from papermill.exceptions import PapermillExecutionError

from workbench import paths

STAGE_NOTEBOOK = re.compile(r"^(\d\d)_([a-z0-9_]+)\.ipynb$")
DEFAULT_KERNEL = "pos-workbench"


class PipelineError(RuntimeError):
    """A stage failed or the run was misconfigured; the message names the stage, cell and cause."""


@dataclass
class Stage:
    number: str
    name: str
    notebook: Path

    @property
    def label(self) -> str:
        return f"{self.number}_{self.name}"


@dataclass
class PipelineConfig:
    parameters: dict = field(default_factory=dict)
    stages: list[str] | None = None
    kernel: str = DEFAULT_KERNEL


def discover_stages(notebooks_dir: Path | None = None) -> list[Stage]:
    notebooks_dir = notebooks_dir or paths.notebooks_dir()
    stages = []
    for notebook in sorted(notebooks_dir.glob("*.ipynb")):
        match = STAGE_NOTEBOOK.match(notebook.name)
        if match:
            stages.append(Stage(match.group(1), match.group(2), notebook))
    if not stages:
        raise PipelineError(f"no stage notebooks (NN_name.ipynb) found in {notebooks_dir}")
    return stages


def parse_overrides(items: list[str]) -> dict:
    """`-p name=value` pairs; values are read as YAML so `-p k=20` is an int and `-p x=[a,b]` a list."""
    overrides = {}
    for item in items or []:
        name, sep, raw = item.partition("=")
        name = name.strip()
        if not sep or not re.match(r"^[A-Za-z_][A-Za-z0-9_]*$", name):
            raise PipelineError(f"malformed parameter {item!r}: expected name=value, e.g. -p legal_entity=USRT")
        try:
            overrides[name] = yaml.safe_load(raw) if raw.strip() else ""
        except yaml.YAMLError as exc:
            raise PipelineError(f"malformed value for parameter {name!r}: {raw!r} ({exc})") from exc
    return overrides


def load_config(path: Path | None) -> PipelineConfig:
    if path is None:
        return PipelineConfig()
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except FileNotFoundError as exc:
        raise PipelineError(f"configuration file {path} does not exist") from exc
    except yaml.YAMLError as exc:
        raise PipelineError(f"configuration file {path} is not valid YAML: {exc}") from exc
    if not isinstance(raw, dict):
        raise PipelineError(f"configuration file {path} must hold a mapping (parameters:, stages:, kernel:)")
    unknown = set(raw) - {"parameters", "stages", "kernel"}
    if unknown:
        raise PipelineError(f"configuration file {path}: unknown key(s) {sorted(unknown)}; use parameters:, stages:, kernel:")
    parameters = raw.get("parameters") or {}
    if not isinstance(parameters, dict):
        raise PipelineError(f"configuration file {path}: 'parameters' must be a mapping of name: value")
    return PipelineConfig(parameters=parameters, stages=raw.get("stages"), kernel=raw.get("kernel", DEFAULT_KERNEL))


def select_stages(stages: list[Stage], wanted: list[str] | None) -> list[Stage]:
    if not wanted:
        return stages
    by_key = {}
    for stage in stages:
        for key in (stage.name, stage.label, stage.number):
            by_key[key] = stage
    missing = [w for w in wanted if w not in by_key]
    if missing:
        raise PipelineError(f"unknown stage(s) {missing}; stages are {[s.label for s in stages]}")
    chosen = {by_key[w].label: by_key[w] for w in wanted}
    return [s for s in stages if s.label in chosen]


def stage_parameters(stages: list[Stage]) -> dict[str, set[str]]:
    return {s.label: set(papermill.inspect_notebook(str(s.notebook))) for s in stages}


def run_pipeline(
    config: PipelineConfig,
    overrides: dict | None = None,
    *,
    run_dir: Path | None = None,
    progress: bool = True,
    log=print,
) -> Path:
    """Run the configured stages; returns the run folder holding every executed notebook."""
    all_stages = discover_stages()
    stages = select_stages(all_stages, config.stages)
    parameters = {**config.parameters, **(overrides or {})}
    # one configuration feeds every stage: a parameter is known if any stage declares it
    declared = stage_parameters(all_stages)
    known = set().union(*declared.values())
    unknown = sorted(set(parameters) - known)
    if unknown:
        raise PipelineError(
            f"parameter(s) {unknown} are not declared by any stage notebook "
            f"({', '.join(s.label for s in all_stages)}); known parameters: {sorted(known)}"
        )
    legal_entity = paths.check_legal_entity(str(parameters.get("legal_entity", "run")))
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    run_dir = Path(run_dir or paths.runs_dir() / f"{stamp}-{legal_entity}")
    run_dir.mkdir(parents=True, exist_ok=True)
    if any("pipeline_run_id" in declared[s.label] for s in stages) and not parameters.get("pipeline_run_id"):
        parameters["pipeline_run_id"] = _start_pipeline_run(run_dir.name, parameters)

    record = {"run_dir": str(run_dir), "started": stamp, "parameters": parameters, "stages": []}
    total = time.perf_counter()
    for position, stage in enumerate(stages, 1):
        given = {k: v for k, v in parameters.items() if k in declared[stage.label]}
        output = run_dir / stage.notebook.name
        log(f"[{position}/{len(stages)}] {stage.label} ...")
        started = time.perf_counter()
        try:
            papermill.execute_notebook(
                str(stage.notebook),
                str(output),
                parameters=given,
                kernel_name=config.kernel,
                cwd=str(stage.notebook.parent),
                progress_bar=progress,
                log_output=False,
            )
        except PapermillExecutionError as exc:
            record["stages"].append({"stage": stage.label, "status": "failed", "cell": exc.exec_count})
            _write_record(run_dir, record, "failed")
            _end_pipeline_run(parameters.get("pipeline_run_id"), "FAILED")
            raise PipelineError(
                f"stage {stage.label} failed in cell {exc.exec_count} (cell index {exc.cell_index}) "
                f"of {stage.notebook.name}: {exc.ename}: {exc.evalue}\n"
                f"executed notebook with the traceback: {output}"
            ) from None
        except Exception as exc:
            record["stages"].append({"stage": stage.label, "status": "failed"})
            _write_record(run_dir, record, "failed")
            _end_pipeline_run(parameters.get("pipeline_run_id"), "FAILED")
            raise PipelineError(f"stage {stage.label} ({stage.notebook.name}) could not run: {exc}") from exc
        seconds = time.perf_counter() - started
        record["stages"].append({"stage": stage.label, "status": "ok", "seconds": round(seconds, 2)})
        log(f"[{position}/{len(stages)}] {stage.label} done in {seconds:.1f} s -> {output}")
    _write_record(run_dir, record, "ok")
    _end_pipeline_run(parameters.get("pipeline_run_id"), "FINISHED")
    log(f"pipeline finished in {time.perf_counter() - total:.1f} s; executed notebooks in {run_dir}")
    return run_dir


def _write_record(run_dir: Path, record: dict, status: str) -> None:
    record["status"] = status
    (run_dir / "run.json").write_text(json.dumps(record, indent=2, default=str))


def _start_pipeline_run(run_name: str, parameters: dict) -> str:
    """The parent MLflow run: training and evaluation nest their runs under it."""
    from workbench import tracking

    tracking.configure()
    legal_entity = str(parameters.get("legal_entity", ""))
    return tracking.start_pipeline_run(legal_entity, run_name=f"pipeline-{run_name}")


def _end_pipeline_run(run_id: str | None, status: str) -> None:
    if run_id:
        from workbench import tracking

        tracking.end_pipeline_run(run_id, status=status)


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="workbench run", description=__doc__)
    parser.add_argument("-c", "--config", type=Path, help="YAML file with parameters:, stages:, kernel:")
    parser.add_argument("-p", "--parameter", action="append", default=[], metavar="NAME=VALUE")
    parser.add_argument("-s", "--stages", help="comma-separated stages to run (default: all), e.g. extract,cleanse")
    parser.add_argument("--run-dir", type=Path, help="where executed notebooks go (default data/runs/<stamp>-<entity>)")
    parser.add_argument("--no-progress", action="store_true", help="no cell progress bars (for cron logs)")
    args = parser.parse_args(argv)
    try:
        config = load_config(args.config)
        if args.stages:
            config.stages = [s.strip() for s in args.stages.split(",") if s.strip()]
        run_pipeline(config, parse_overrides(args.parameter), run_dir=args.run_dir, progress=not args.no_progress)
    except (PipelineError, ValueError) as exc:
        print(f"workbench run: error: {exc}", file=sys.stderr)
        return 1
    return 0
