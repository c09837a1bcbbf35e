"""Shared fixtures. Keep each fixture small and documented; data that is expensive to build is session-scoped and read-only."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
# ../shared beside the repository: real data for tests and benchmarks, never copied into the repo.
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"
ONLINE_RETAIL_FILE = SHARED_DATA / "online_retail" / "online_retail.csv.gz"

DEMO_SEED = 7
DEMO_SCALE = 0.3  # ~450 customers, ~8k transactions, ~28k lines: a second to build


@pytest.fixture
def workbench_home(tmp_path, monkeypatch) -> Path:
    """An empty project home: everything `workbench.paths` resolves lands under tmp_path, the MLflow
    store too (`mlflow.set_tracking_uri` writes MLFLOW_TRACKING_URI into os.environ, where an earlier
    test's store would otherwise win over this home's)."""
    monkeypatch.setenv("WORKBENCH_HOME", str(tmp_path))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("MLFLOW_REGISTRY_URI", raising=False)
    return tmp_path


@pytest.fixture(scope="session")
def demo_db(tmp_path_factory) -> Path:
    """A small demo retailer database (one year of 2025), built once per session. Do not modify it:
    tests that need a broken database copy it first (see `demo_db_copy`)."""
    from workbench.datasets.demo import generate_demo_retailer

    path = tmp_path_factory.mktemp("demo") / "demo_retailer.sqlite"
    generate_demo_retailer(path, seed=DEMO_SEED, scale=DEMO_SCALE, progress=False)
    return path


@pytest.fixture(scope="session")
def demo_db_url(demo_db) -> str:
    return f"sqlite:///{demo_db}"


@pytest.fixture
def demo_db_copy(demo_db, tmp_path) -> Path:
    """A private copy of the session's demo database, free to be altered."""
    import shutil

    copy = tmp_path / "demo_copy.sqlite"
    shutil.copyfile(demo_db, copy)
    return copy


@pytest.fixture(scope="session")
def online_retail_file() -> Path:
    """The real UCI Online Retail file from ../shared; the test is skipped where it is absent."""
    if not ONLINE_RETAIL_FILE.exists():
        pytest.skip(f"real data not available: {ONLINE_RETAIL_FILE}")
    return ONLINE_RETAIL_FILE


# `make test` leaves the checkout as it found it: a file the tests write into it (a stray ./mlflow.db
# that git does not ignore) fails the run, naming the file. Checked once, by the process that started
# the run (not by each pytest-xdist worker), and only in a git checkout. New files only: a tracked
# file that changes during a run is as likely the developer's own edit meanwhile.
_UNTRACKED = pytest.StashKey[set | None]()


def _untracked_files() -> set[str] | None:
    """The checkout's untracked files that git does not ignore; None outside a git checkout."""
    try:
        status = subprocess.run(["git", "status", "--porcelain", "--untracked-files=all"], cwd=REPO_ROOT,
                                capture_output=True, text=True, timeout=120)
    except (OSError, subprocess.SubprocessError):
        return None
    if status.returncode != 0:
        return None
    return {line[3:] for line in status.stdout.splitlines() if line.startswith("?? ")}


def pytest_sessionstart(session):
    if not hasattr(session.config, "workerinput"):
        session.config.stash[_UNTRACKED] = _untracked_files()


def pytest_sessionfinish(session, exitstatus):
    before = session.config.stash.get(_UNTRACKED, None)
    if before is None or hasattr(session.config, "workerinput"):
        return
    written = sorted((_untracked_files() or set()) - before)
    if written:
        reporter = session.config.pluginmanager.get_plugin("terminalreporter")
        if reporter is not None:
            reporter.write_line(f"the tests wrote into the checkout (new in git status): {written}", red=True)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
