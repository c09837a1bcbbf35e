"""Runs never corrupt each other, stage outputs appear whole or not at all, and secrets stay secret.

The kill tests are real: `workbench run` runs in its own session and is SIGKILLed (with its
notebook kernel) at the moment a stage writes its output. The kill comes from `sitecustomize.py`
in a folder put on PYTHONPATH: it wraps the third-party writers (polars' `write_parquet`,
`pathlib.Path.write_text`) so the write whose path matches WORKBENCH_TEST_KILL_AT leaves a torn
file, as a crash would, and the processes die. Nothing of the workbench is mocked. Afterwards the
stage's outputs must be the previous complete set, and the next run must succeed (and settle what
the dead run left: its lock, its run.json, its MLflow runs).
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import mlflow
import polars as pl
import pytest

from helpers import home_store
from workbench import locks, secrets

ROOT = Path(__file__).resolve().parents[1]
WORKBENCH = str(Path(sys.executable).parent / "workbench")
CONFIG = str(ROOT / "configs" / "demo.yml")
FAST = ["-p", "algorithms=[best_sellers, sar]", "-p", "untuned_algorithms=[]", "-p", "tune=false", "-p", "max_baskets=200", "--no-progress"]

pytestmark = pytest.mark.e2e

KILLER = textwrap.dedent(
    '''
    """Test hook (tests/test_integrity.py): die like a crash at the write named by WORKBENCH_TEST_KILL_AT."""
    import fnmatch, os, pathlib, signal

    _PATTERN = os.environ.get("WORKBENCH_TEST_KILL_AT")

    def _die(path):
        with open(path, "wb") as torn:  # a torn file, as a crash mid-write leaves it
            torn.write(b"PAR1")
        parent = os.environ.get("JPY_PARENT_PID")  # in a notebook kernel: the `workbench run` process
        if parent:
            os.kill(int(parent), signal.SIGKILL)
        os.killpg(os.getpgid(0), signal.SIGKILL)

    def _hook(cls, name):
        original = getattr(cls, name)

        def wrapped(self, *args, **kwargs):
            target = self if isinstance(self, pathlib.PurePath) else (args[0] if args else kwargs.get("file"))
            if isinstance(target, (str, os.PathLike)) and fnmatch.fnmatch(os.fspath(target), _PATTERN):
                _die(target)
            return original(self, *args, **kwargs)

        setattr(cls, name, wrapped)

    if _PATTERN:
        _hook(pathlib.Path, "write_text")
        try:
            import polars
            _hook(polars.DataFrame, "write_parquet")
            _hook(polars.LazyFrame, "sink_parquet")  # large outputs are streamed to disk
        except ImportError:
            pass
    '''
)


def env_for(home: Path, **extra) -> dict:
    env = {**os.environ, "WORKBENCH_HOME": str(home), **extra}
    env.pop("MLFLOW_TRACKING_URI", None)
    return env


def workbench(home: Path, *args: str, check: bool = True, env: dict | None = None) -> subprocess.CompletedProcess:
    done = subprocess.run([WORKBENCH, *args], env=env or env_for(home), capture_output=True, text=True, timeout=600)
    if check and done.returncode:
        raise AssertionError(f"workbench {' '.join(args)} exited {done.returncode}:\n{done.stdout[-3000:]}\n{done.stderr[-5000:]}")
    return done


def killed_run(home: Path, hook_dir: Path, pattern: str, *args: str) -> subprocess.CompletedProcess:
    """`workbench run ARGS`, SIGKILLed (runner and kernel) at the first write matching `pattern`."""
    env = env_for(home, WORKBENCH_TEST_KILL_AT=pattern,
                  PYTHONPATH=os.pathsep.join(filter(None, [str(hook_dir), os.environ.get("PYTHONPATH")])))
    done = subprocess.run([WORKBENCH, "run", *args], env=env, capture_output=True, text=True, timeout=600,
                          start_new_session=True)
    assert done.returncode == -signal.SIGKILL, f"not killed (exit {done.returncode}):\n{done.stdout[-2000:]}\n{done.stderr[-3000:]}"
    return done


def snapshot(folder: Path) -> dict[str, str]:
    """relative path -> sha256 of every file a reader sees through `folder` (hidden names excluded)."""
    folder = folder.resolve()
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file() and not any(part.startswith(".") for part in p.relative_to(folder).parts)
    }


def run_dirs(home: Path) -> list[Path]:
    return sorted((home / "data" / "runs").glob("*-USRT*"), key=lambda p: p.stat().st_mtime_ns)


@pytest.fixture(scope="module")
def home(tmp_path_factory) -> Path:
    """A demo retailer with one complete pipeline run: every stage has a previous complete output."""
    home = tmp_path_factory.mktemp("integrity")
    workbench(home, "demo-data", "--scale", "0.3", "--seed", "7")
    workbench(home, "run", "-c", CONFIG, *FAST)
    return home


@pytest.fixture(scope="module")
def hook_dir(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("kill_hook")
    (folder / "sitecustomize.py").write_text(KILLER)
    return folder


# -- one run per legal entity --------------------------------------------------------------------------
def test_a_second_run_of_the_legal_entity_is_refused_naming_the_holder(home, monkeypatch):
    monkeypatch.setenv("WORKBENCH_HOME", str(home))
    before = set(run_dirs(home))
    with locks.LegalEntityLock("USRT", run_dir="/srv/runs/nightly") as held:
        done = workbench(home, "run", "-c", CONFIG, "-s", "extract", "--no-progress", check=False)
        with locks.LegalEntityLock("FRRT"):  # another legal entity is not held up
            pass
    assert done.returncode == 1
    assert f"legal entity USRT is already being run by pid {os.getpid()} on {held.record['host']}" in done.stderr
    assert "/srv/runs/nightly" in done.stderr
    assert set(run_dirs(home)) == before  # the refused run left nothing behind
    assert (home / "data" / "locks" / "USRT.lock").read_text() == ""  # released cleanly: no stale record


def test_a_lock_left_by_a_killed_holder_is_taken_over(home, monkeypatch):
    monkeypatch.setenv("WORKBENCH_HOME", str(home))
    script = ("from workbench import locks; import os, signal\n"
              "locks.LegalEntityLock('LOCKTEST', run_dir='dead-run').acquire()\n"
              "os.kill(os.getpid(), signal.SIGKILL)\n")
    done = subprocess.run([sys.executable, "-c", script], env=env_for(home), capture_output=True, timeout=60)
    assert done.returncode == -signal.SIGKILL
    with locks.LegalEntityLock("LOCKTEST") as lock:  # the kernel released the OS lock with the process
        assert lock.stale is not None and lock.stale["run_dir"] == "dead-run"
        assert lock.stale["pid"] != os.getpid() and lock.stale["alive"] is False
        assert lock.record["pid"] == os.getpid()


# -- kill tests: a stage's outputs are the previous set or the new set, never a mix ----------------------
# (the extraction's own kill tests, at the part, the watermark and the publication, are in test_extract.py)
def test_cleanse_killed_mid_write_leaves_the_previous_cleansed_set(home, hook_dir):
    interim = home / "data" / "interim" / "USRT"
    before = snapshot(interim)
    # interactions.parquet is written first: the kill comes at the second file, with the first done
    killed_run(home, hook_dir, "*/interim/*baskets.parquet", "-c", CONFIG, "-s", "cleanse", "-p", "min_item_support=3",
               "--no-progress")
    assert snapshot(interim) == before
    assert all((interim / f).stat().st_size > 0 for f in before)
    dead = run_dirs(home)[-1]
    assert json.loads((dead / "run.json").read_text())["status"] == "running"

    done = workbench(home, "run", "-c", CONFIG, "-s", "cleanse", "-p", "min_item_support=3", "--no-progress")
    assert "did not finish" in done.stdout and "taking over its lock" in done.stdout
    killed = json.loads((dead / "run.json").read_text())
    assert killed["status"] == "killed" and killed["killed_detected_by"] == str(run_dirs(home)[-1])
    # the new set is complete and consistent: its report describes its interactions
    assert json.loads((interim / "cleansing_rules.json").read_text())["min_item_support"] == 3
    report = pl.read_parquet(interim / "cleansing_report.parquet")
    kept = report.filter((pl.col("table") == "sales_lines") & (pl.col("rule") == "rows_kept"))["rows"].item()
    assert kept == pl.read_parquet(interim / "interactions.parquet").height
    # at most the live version and the one before it stay beside the link; no abandoned staging folder
    hidden = [p.name for p in interim.parent.iterdir() if p.name.startswith(".USRT")]
    assert len(hidden) <= 2 and not [h for h in hidden if ".staging-" in h], hidden


def test_train_killed_at_its_hand_over_leaves_no_record_and_the_next_run_settles_it(home, hook_dir):
    killed_run(home, hook_dir, "*/processed/USRT/runs/*training_runs.json*", "-c", CONFIG, "-s", "train,evaluate", *FAST)
    dead = run_dirs(home)[-1]
    dead_record = json.loads((dead / "run.json").read_text())
    dead_pipeline = dead_record["pipeline_run_id"]
    assert dead_pipeline and not (home / "data" / "processed" / "USRT" / "runs" / dead_pipeline / "training_runs.json").exists()
    client = mlflow.MlflowClient(home_store(home))
    assert client.get_run(dead_pipeline).info.status == "RUNNING"

    done = workbench(home, "run", "-c", CONFIG, "-s", "train,evaluate", *FAST)
    assert f"({dead_pipeline}, pipeline)" in done.stdout and "marked KILLED" in done.stdout
    nested = client.search_runs([client.get_run(dead_pipeline).info.experiment_id],
                                filter_string=f"tags.mlflow.parentRunId = '{dead_pipeline}'")
    assert nested and not [r for r in nested if r.info.status == "RUNNING"]
    assert client.get_run(dead_pipeline).info.status == "KILLED"
    assert json.loads((dead / "run.json").read_text())["status"] == "killed"
    new = json.loads((run_dirs(home)[-1] / "run.json").read_text())
    assert new["status"] == "ok" and new["previous_run"]["lock_record"]["pipeline_run_id"] == dead_pipeline
    assert dead_pipeline in {r["run_id"] for r in new["previous_run"]["mlflow_runs_killed"]}
    # the evaluation used this run's own training, never the dead run's
    champion = json.loads((home / "data" / "processed" / "USRT" / "champion.json").read_text())
    assert champion["pipeline_run_id"] == new["pipeline_run_id"] != dead_pipeline


def test_evaluate_killed_at_its_record_leaves_the_previous_champion_record(home, hook_dir):
    record = home / "data" / "processed" / "USRT" / "champion.json"
    before = record.read_bytes()
    killed_run(home, hook_dir, "*/processed/USRT/.champion.json*", "-c", CONFIG, "-s", "train,evaluate", *FAST)
    assert record.read_bytes() == before
    workbench(home, "run", "-c", CONFIG, "-s", "train,evaluate", *FAST)
    assert json.loads(record.read_text())["pipeline_run_id"] == json.loads((run_dirs(home)[-1] / "run.json").read_text())["pipeline_run_id"]
    assert not list(record.parent.glob(".champion.json.*"))  # the killed writer's temporary is cleaned up


def test_evaluate_alone_needs_a_training_of_its_own_run(home):
    done = workbench(home, "run", "-c", CONFIG, "-s", "evaluate", "--no-progress", check=False)
    assert done.returncode == 1
    assert "has no training record" in done.stderr and "-p pipeline_run_id=" in done.stderr


# -- bad input -----------------------------------------------------------------------------------------
def test_readme_parameters_and_typed_values_reach_the_notebooks(home):
    """`-p end=2025-07-01` (the README's example) and a quoted 'false' arrive as a string and False."""
    workbench(home, "run", "-c", CONFIG, "-s", "extract", "-p", "end=2025-07-01", "-p", "incremental='false'",
              "-p", "legal_entity=FRRT", "--no-progress")
    record = json.loads((sorted((home / "data" / "runs").glob("*-FRRT*"))[-1] / "run.json").read_text())
    assert record["parameters"]["end"] == "2025-07-01" and record["parameters"]["incremental"] is False
    watermark = json.loads((home / "data" / "raw" / "FRRT" / "watermark.json").read_text())
    assert watermark["transaction_time"] < "2025-07-01"


def test_k_zero_is_a_clear_error(home):
    done = workbench(home, "run", "-c", CONFIG, "-s", "evaluate", "-p", "k=0", "--no-progress", check=False)
    assert done.returncode == 1 and "k must be a whole number of recommendations >= 1, got 0" in done.stderr


def test_transactions_without_lines_are_cleansed_or_refused_clearly(home, tmp_path):
    import shutil
    import sqlite3

    source = tmp_path / "no_lines.sqlite"
    shutil.copyfile(home / "data" / "operational" / "demo_retailer.sqlite", source)
    with sqlite3.connect(source) as db:  # a third of USRT's transactions lose their lines; FRRT loses them all
        db.execute("DELETE FROM sales_lines WHERE transaction_id IN "
                   "(SELECT id FROM sales_transactions WHERE legal_entity_id = 'USRT' AND rowid % 3 = 0)")
        db.execute("DELETE FROM sales_lines WHERE transaction_id IN "
                   "(SELECT id FROM sales_transactions WHERE legal_entity_id = 'FRRT')")
    scratch = tmp_path / "home"
    url = f"sqlite:///{source}"
    workbench(scratch, "run", "-c", CONFIG, "-s", "extract,cleanse", "-p", f"source={url}", "--no-progress")
    report = pl.read_parquet(scratch / "data" / "interim" / "USRT" / "cleansing_report.parquet")
    assert report.filter(pl.col("rule") == "rows_kept")["rows"].min() > 0
    done = workbench(scratch, "run", "-c", CONFIG, "-s", "extract", "-p", f"source={url}",
                     "-p", "legal_entity=FRRT", "--no-progress", check=False)
    assert done.returncode == 1 and "FRRT" in done.stderr and "no sales lines" in done.stderr


# -- secrets ---------------------------------------------------------------------------------------------
PASSWORD = "Sup3rS3cretPw"


def _files_with(folder: Path, needle: bytes) -> list[str]:
    return [str(p) for p in folder.rglob("*") if p.is_file() and needle in p.read_bytes()]


def test_a_database_password_is_never_recorded(tmp_path):
    home = tmp_path / "home"
    url = f"postgresql+psycopg://etl:{PASSWORD}@127.0.0.1:9/pos"  # nothing listens on port 9: the extraction fails
    done = workbench(home, "run", "-c", CONFIG, "-s", "extract,train", "-p", f"source={url}", "--no-progress", check=False)
    assert done.returncode == 1 and "01_extract" in done.stderr
    assert PASSWORD not in done.stdout + done.stderr
    run_dir = next((home / "data" / "runs").iterdir())
    record = json.loads((run_dir / "run.json").read_text())
    assert record["parameters"]["source"] == secrets.redact_url(url) == "postgresql+psycopg://etl:***@127.0.0.1:9/pos"
    # the MLflow pipeline run has the parameters too, redacted
    assert mlflow.MlflowClient(home_store(home)).get_run(record["pipeline_run_id"]).data.params["source"] == secrets.redact_url(url)
    # the executed notebook reads it from the environment: the injected cell holds no password
    notebook = (run_dir / "01_extract.ipynb").read_text()
    assert "os').environ['WORKBENCH_PARAMETER_SOURCE']" in notebook
    assert _files_with(home / "data" / "runs", PASSWORD.encode()) == []
    assert _files_with(home / "mlruns", PASSWORD.encode()) == []


def test_a_real_postgres_password_reaches_the_source_and_nothing_else(home, tmp_path):
    """A PostgreSQL source with a password in its URL (the throwaway server trusts any password):
    the extraction connects and succeeds; no file of the run, the entity store or MLflow holds it."""
    from postgres_server import load_demo_retailer, postgres_server

    scratch = tmp_path / "home"
    mapping = str(ROOT / "tests" / "sources" / "demo_postgres.yml")
    with postgres_server() as url:
        load_demo_retailer(home / "data" / "operational" / "demo_retailer.sqlite", url)
        with_password = url.replace("://workbench@", f"://workbench:{PASSWORD}@")
        done = workbench(scratch, "run", "-c", CONFIG, "-s", "extract", "-p", f"source_mapping={mapping}",
                         "-p", f"source={with_password}", "--no-progress")
    assert "01_extract done" in done.stdout and PASSWORD not in done.stdout + done.stderr
    assert (scratch / "data" / "raw" / "USRT" / "watermark.json").exists()
    assert _files_with(scratch, PASSWORD.encode()) == []


def test_a_source_url_can_come_from_an_environment_variable(home, tmp_path):
    scratch = tmp_path / "home"
    url = f"sqlite:///{home / 'data' / 'operational' / 'demo_retailer.sqlite'}"
    done = workbench(scratch, "run", "-c", CONFIG, "-s", "extract", "-p", "source=${ENV:POS_SOURCE_URL}", "--no-progress",
                     env=env_for(scratch, POS_SOURCE_URL=url))
    assert "01_extract done" in done.stdout
    run_dir = next((scratch / "data" / "runs").iterdir())
    assert json.loads((run_dir / "run.json").read_text())["parameters"]["source"] == "${ENV:POS_SOURCE_URL}"
    assert "os').environ['POS_SOURCE_URL']" in (run_dir / "01_extract.ipynb").read_text()
    missing = workbench(scratch, "run", "-c", CONFIG, "-s", "extract", "-p", "source=${ENV:NOT_SET_ANYWHERE}", check=False)
    assert missing.returncode == 1 and "NOT_SET_ANYWHERE" in missing.stderr and "not set" in missing.stderr
