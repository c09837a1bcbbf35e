"""The pipeline runner: the numbered stage notebooks, in order, through papermill.

Each stage is a notebook in `notebooks/NN_<stage>.ipynb`. The runner gives every notebook only the
parameters it declares (papermill's inspection of its `parameters` cell), so one YAML file can feed
all stages, and a misspelt `-p` override is an error instead of a silently ignored variable.
"""

from __future__ import annotations

import ast
import json
import os
import re
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import papermill
import yaml
from papermill.exceptions import PapermillExecutionError

from workbench import locks, paths, secrets
from workbench.locks import LegalEntityLock, LockHeld, this_process
from workbench.parameters import Declared, ParameterError, Raw, coerce, load_yaml_parameters
from workbench.storage import atomic_write_json

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
    """`-p name=value` pairs, kept as written (`Raw`): the declaring notebook types them
    (`workbench.parameters`), so `-p end=2025-07-01` stays a string and `-p k=20` becomes an int."""
    overrides = {}
    for item in items or []:
        name, sep, raw = item.partition("=")
        name = name.strip()
        if not sep or not re.match(r"^[A-Za-z_][A-Za-z0-9_]*$", name):
            raise PipelineError(f"malformed parameter {item!r}: expected name=value, e.g. -p legal_entity=USRT")
        try:
            overrides[name] = Raw.from_cli(raw)
        except yaml.YAMLError as exc:
            raise PipelineError(f"malformed value for parameter {name!r}: {raw!r} ({exc})") from exc
    return overrides


def load_config(path: Path | None) -> PipelineConfig:
    if path is None:
        return PipelineConfig()
    path = Path(path)
    try:
        raw = load_yaml_parameters(path.read_text(), str(path)) or {}
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
    kernel = raw.get("kernel", DEFAULT_KERNEL)
    if not isinstance(kernel, str) or not kernel.strip():
        raise PipelineError(f"configuration file {path}: 'kernel' must be a kernel name, e.g. {DEFAULT_KERNEL}")
    return PipelineConfig(parameters=parameters, stages=stage_list(raw.get("stages"), f"configuration file {path}"), kernel=kernel)


def stage_list(value, where: str = "stages") -> list[str] | None:
    """`stages:` as a list, or one string naming one stage or several separated by commas
    (`extract` is one stage, never the stages e, x, t, ...)."""
    if value is None:
        return None
    if isinstance(value, str):
        value = value.split(",")
    if not isinstance(value, list) or not all(isinstance(v, (str, int)) for v in value):
        raise PipelineError(f"{where}: 'stages' must be a list of stage names, e.g. [extract, cleanse], got {value!r}")
    stages = [str(v).strip() for v in value if str(v).strip()]
    return stages or None


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


def stage_parameters(stages: list[Stage]) -> dict[str, dict[str, dict]]:
    """{stage label: {parameter: papermill's inspection (default, declared type, help)}}."""
    return {s.label: papermill.inspect_notebook(str(s.notebook)) for s in stages}


def typed_parameters(parameters: dict, declared: dict[str, dict[str, dict]]) -> dict:
    """Every given parameter as the type its notebooks declare (`workbench.parameters`); a value
    that fits no declaration is an error naming the parameter, the value and the expected type."""
    typed = {}
    for name, value in parameters.items():
        for label, specs in declared.items():
            if name in specs:
                try:
                    result = coerce(name, value, Declared.from_inspection(specs[name]))
                except ParameterError as exc:
                    raise PipelineError(f"{exc} in {label}") from None
                typed.setdefault(name, result)
    return typed


def default_legal_entity(declared: dict[str, dict[str, dict]]) -> str:
    """The legal entity the notebooks run for when none is given: their own default."""
    for specs in declared.values():
        if "legal_entity" in specs:
            return str(ast.literal_eval(specs["legal_entity"]["default"]))
    return "run"


def run_pipeline(
    config: PipelineConfig,
    overrides: dict | None = None,
    *,
    run_dir: Path | None = None,
    progress: bool = True,
    log=print,
) -> Path:
    """Run the configured stages; returns the run folder holding every executed notebook.

    One run per legal entity at a time (`workbench.locks`); a run that finds its predecessor died
    marks that run's MLflow runs KILLED and says so in both run folders' run.json."""
    all_stages = discover_stages()
    stages = select_stages(all_stages, stage_list(config.stages))
    given = {**config.parameters, **(overrides or {})}
    # one configuration feeds every stage: a parameter is known if any stage declares it
    declared = stage_parameters(all_stages)
    known = set().union(*(set(specs) for specs in declared.values()))
    unknown = sorted(set(given) - known)
    if unknown:
        raise PipelineError(
            f"parameter(s) {unknown} are not declared by any stage notebook "
            f"({', '.join(s.label for s in all_stages)}); known parameters: {sorted(known)}"
        )
    parameters = typed_parameters(given, declared)
    injected = _secret_free(parameters)
    legal_entity = paths.check_legal_entity(str(parameters.get("legal_entity") or default_legal_entity(declared)))
    run_dir = Path(run_dir) if run_dir else _new_run_dir(legal_entity)
    uses_mlflow = any("pipeline_run_id" in declared[s.label] for s in stages)

    with LegalEntityLock(legal_entity, run_dir=str(run_dir)) as lock:
        run_dir.mkdir(parents=True, exist_ok=True)
        record = {
            "run_dir": str(run_dir),
            "legal_entity": legal_entity,
            "started": datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ"),
            "owner": this_process(),
            "parameters": secrets.redact(parameters),
            "stages": [],
        }
        _write_record(run_dir, record, "running")
        owned_run_id = None
        try:
            record["previous_run"] = _settle_previous_run(legal_entity, lock, run_dir, uses_mlflow, log)
            if uses_mlflow and not parameters.get("pipeline_run_id"):
                owned_run_id = _start_pipeline_run(run_dir, legal_entity, parameters)
                parameters["pipeline_run_id"] = injected["pipeline_run_id"] = owned_run_id
            record["pipeline_run_id"] = parameters.get("pipeline_run_id")
            lock.update(pipeline_run_id=record["pipeline_run_id"])
            _write_record(run_dir, record, "running")
        except BaseException:
            _finish(run_dir, record, "failed", owned_run_id, "FAILED")
            raise
        with _environment({tracking_owner_env(): json.dumps(record["owner"]), **injected.pop("__env__", {})}):
            _run_stages(stages, declared, injected, config, run_dir, record, owned_run_id, progress, log)
    return run_dir


def _run_stages(stages, declared, parameters, config, run_dir, record, owned_run_id, progress, log) -> None:
    total = time.perf_counter()
    _register_translator(config.kernel)
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
            _finish(run_dir, record, "failed", owned_run_id, "FAILED")
            raise PipelineError(secrets.redact(
                f"stage {stage.label} failed in cell {exc.exec_count} (cell index {exc.cell_index}) "
                f"of {stage.notebook.name}: {exc.ename}: {exc.evalue}\n"
                f"executed notebook with the traceback: {output}"
            )) from None
        except BaseException as exc:
            interrupted = isinstance(exc, KeyboardInterrupt)
            record["stages"].append({"stage": stage.label, "status": "interrupted" if interrupted else "failed"})
            _finish(run_dir, record, "interrupted" if interrupted else "failed", owned_run_id, "KILLED" if interrupted else "FAILED")
            if interrupted or not isinstance(exc, Exception):
                raise
            raise PipelineError(secrets.redact(f"stage {stage.label} ({stage.notebook.name}) could not run: {exc}")) from exc
        seconds = time.perf_counter() - started
        record["stages"].append({"stage": stage.label, "status": "ok", "seconds": round(seconds, 2)})
        _write_record(run_dir, record, "running")
        log(f"[{position}/{len(stages)}] {stage.label} done in {seconds:.1f} s -> {output}")
    _finish(run_dir, record, "ok", owned_run_id, "FINISHED")
    log(f"pipeline finished in {time.perf_counter() - total:.1f} s; executed notebooks in {run_dir}")


def _new_run_dir(legal_entity: str) -> Path:
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    candidate = paths.runs_dir() / f"{stamp}-{legal_entity}"
    n = 1
    while candidate.exists():  # two runs in the same second: never share a folder
        n += 1
        candidate = paths.runs_dir() / f"{stamp}-{legal_entity}-{n}"
    return candidate


def _finish(run_dir: Path, record: dict, status: str, owned_run_id: str | None, mlflow_status: str) -> None:
    record["finished"] = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    _write_record(run_dir, record, status)
    if owned_run_id:
        from workbench import tracking

        tracking.end_pipeline_run(owned_run_id, status=mlflow_status)


def _write_record(run_dir: Path, record: dict, status: str) -> None:
    record["status"] = status
    atomic_write_json(run_dir / "run.json", record)


def _settle_previous_run(legal_entity: str, lock: LegalEntityLock, run_dir: Path, uses_mlflow: bool, log) -> dict | None:
    """What a run that died before this one left: its lock record, its run folder marked killed,
    its MLflow runs (and any other run of the legal entity whose owner is gone) marked KILLED."""
    settled = None
    if lock.stale is not None:
        settled = {"lock_record": lock.stale, "detected_by": str(run_dir)}
        log(f"warning: the previous run of {legal_entity} ({locks.describe(lock.stale)}) did not finish "
            f"(its process is gone); taking over its lock {lock.path}")
        _mark_killed(lock.stale.get("run_dir"), run_dir)
    if (uses_mlflow or lock.stale is not None) and _tracking_store_exists():
        from workbench import tracking

        killed = tracking.settle_orphaned_runs(legal_entity)
        for run in killed:
            log(f"warning: MLflow run {run['run_name']} ({run['run_id']}, {run['kind']}) of {legal_entity} was left "
                f"RUNNING by pid {run['owner_pid']} on {run['owner_host']}, which is gone: marked KILLED")
            _mark_killed(run.get("run_dir"), run_dir, mlflow_run=run)
        if killed:
            settled = {**(settled or {"detected_by": str(run_dir)}), "mlflow_runs_killed": killed}
    return settled


def _mark_killed(dead_run_dir: str | None, detected_by: Path, mlflow_run: dict | None = None) -> None:
    """The dead run's own run.json says it was killed (and by whom it was found)."""
    if not dead_run_dir or Path(dead_run_dir) == detected_by:
        return
    path = Path(dead_run_dir) / "run.json"
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError):
        return
    if record.get("status") == "running":
        record["status"] = "killed"
        record["killed_detected_at"] = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
        record["killed_detected_by"] = str(detected_by)
    if mlflow_run:
        record.setdefault("mlflow_runs_killed", []).append(mlflow_run["run_id"])
    atomic_write_json(path, record)


def _tracking_store_exists() -> bool:
    uri = paths.tracking_uri()
    return not uri.startswith("sqlite:///") or Path(uri[len("sqlite:///") :]).exists()


def tracking_owner_env() -> str:
    from workbench.tracking import OWNER_ENV

    return OWNER_ENV


# -- secrets: never in the injected parameters cell ---------------------------------------------------
class EnvValue(str):
    """A parameter the notebook reads from an environment variable (the text is the reference)."""

    def __new__(cls, variable: str):
        obj = super().__new__(cls, f"${{ENV:{variable}}}")
        obj.variable = variable
        return obj


def _secret_free(parameters: dict) -> dict:
    """The parameters to inject: `${ENV:NAME}` references and URLs with a password become reads of
    an environment variable in the notebook's kernel; `__env__` holds the variables to set."""
    injected, env = {}, {}
    for name, value in parameters.items():
        variable = secrets.env_reference(value)
        if variable is not None:
            try:
                secrets.resolve(value, f"parameter {name!r}")
            except secrets.SecretError as exc:
                raise PipelineError(str(exc)) from None
            injected[name] = EnvValue(variable)
        elif secrets.has_password(value):
            variable = f"WORKBENCH_PARAMETER_{name.upper()}"
            env[variable] = value
            injected[name] = EnvValue(variable)
        else:
            injected[name] = value
    injected["__env__"] = env
    return injected


def _register_translator(kernel: str) -> None:
    from papermill.translators import PythonTranslator, papermill_translators

    class EnvAwareTranslator(PythonTranslator):
        @classmethod
        def translate_str(cls, val):
            if isinstance(val, EnvValue):
                return f"__import__('os').environ[{val.variable!r}]"
            return super().translate_str(val)

    for name in (kernel, "python"):
        papermill_translators.register(name, EnvAwareTranslator)


@contextmanager
def _environment(variables: dict[str, str]):
    """Set variables for the kernels started inside the block (they inherit this environment)."""
    before = {k: os.environ.get(k) for k in variables}
    os.environ.update(variables)
    try:
        yield
    finally:
        for k, v in before.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _start_pipeline_run(run_dir: Path, legal_entity: str, parameters: dict) -> str:
    """The parent MLflow run: training and evaluation nest their runs under it. Its parameters are
    the run's (passwords hidden), its tags say which process owns it and where its notebooks are."""
    from workbench import tracking

    tracking.configure()
    run_id = tracking.start_pipeline_run(legal_entity, run_name=f"pipeline-{run_dir.name}",
                                         tags={"workbench.run_dir": str(run_dir)})
    shown = {k: v if isinstance(v, str) else json.dumps(v, default=str) for k, v in secrets.redact(parameters).items()}
    tracking.mlflow_client().log_batch(run_id, params=[_param(k, v) for k, v in shown.items()])
    return run_id


def _param(key: str, value: str):
    from mlflow.entities import Param

    return Param(key, value[:6000])


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="workbench run", description=__doc__)
    parser.add_argument("-c", "--config", type=Path, help="YAML file with parameters:, stages:, kernel:")
    parser.add_argument("-p", "--parameter", action="append", default=[], metavar="NAME=VALUE",
                        help="a notebook parameter, typed as its notebook declares it; ${ENV:NAME} reads a variable")
    parser.add_argument("-s", "--stages", help="comma-separated stages to run (default: all), e.g. extract,cleanse")
    parser.add_argument("--run-dir", type=Path, help="where executed notebooks go (default data/runs/<stamp>-<entity>)")
    parser.add_argument("--no-progress", action="store_true", help="no cell progress bars (for cron logs)")
    args = parser.parse_args(argv)
    try:
        config = load_config(args.config)
        if args.stages:
            config.stages = stage_list(args.stages, "-s/--stages")
        run_pipeline(config, parse_overrides(args.parameter), run_dir=args.run_dir, progress=not args.no_progress)
    except (PipelineError, LockHeld, ValueError) as exc:
        print(f"workbench run: error: {exc}", file=sys.stderr)
        return 1
    return 0
