"""Small hand-made data shared by several test modules (tests/ is on sys.path under pytest), and the
loader of a benchmark script."""

import contextlib
import importlib.util
import os
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def load_benchmark(name: str):
    """benchmarks/<name>.py as a module (benchmarks/ is not a package)."""
    sys.path.insert(0, str(BENCHMARKS))  # the benchmarks import their shared helpers (readme_block, provenance)
    try:
        spec = importlib.util.spec_from_file_location(f"{name}_benchmark", BENCHMARKS / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module
    finally:
        sys.path.remove(str(BENCHMARKS))


def tiny_interactions(seed=0, n_customers=30, n_products=40, n_baskets=400, days=120):
    """Customers with favourite products (repeat purchases) and products bought in pairs."""
    rng = np.random.default_rng(seed)
    start = pd.Timestamp("2024-01-01")
    favourites = {c: rng.choice(n_products, size=3, replace=False) for c in range(n_customers)}
    rows = []
    for b in range(n_baskets):
        anonymous = rng.random() < 0.2
        c = int(rng.integers(n_customers))
        items = set(rng.choice(favourites[c], size=int(rng.integers(1, 3)), replace=False).tolist())
        items |= {int(p) for p in rng.choice(n_products, size=int(rng.integers(0, 3)), replace=False)}
        items |= {(i + 1) % n_products for i in list(items) if i % 2 == 0}
        when = start + pd.Timedelta(days=days * b / n_baskets, hours=int(rng.integers(8, 20)))
        for p in sorted(items):
            rows.append(
                {"customer_id": None if anonymous else f"C{c:03d}", "basket_id": f"B{b:05d}", "product_id": f"P{p:03d}",
                 "time": when, "quantity": 1.0, "amount": 2.5, "store_id": f"S{b % 2}", "channel": "store"}
            )
    frame = pd.DataFrame(rows)
    frame["customer_id"] = frame["customer_id"].astype(object)
    frame["time"] = frame["time"].astype("datetime64[us]")
    return frame


def tiny_folds(data):
    """The validation folds before 2024-04-10 of `tiny_interactions`-sized data (small case minimums)."""
    from workbench.evaluation import folds, plan_validation

    return folds(data, plan_validation(data, "2024-04-10", min_cases=20, min_customer_cases=5))


@contextlib.contextmanager
def scratch_home(tmp_path_factory, name: str):
    """A test module's own empty project home (WORKBENCH_HOME), with no MLFLOW_TRACKING_URI from
    outside pointing MLflow elsewhere; for module-scoped fixtures, where `monkeypatch` is not."""
    home = tmp_path_factory.mktemp(name)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("WORKBENCH_HOME", str(home))
        mp.delenv("MLFLOW_TRACKING_URI", raising=False)
        yield home


def home_store(home) -> str:
    """The MLflow store of a pipeline run whose WORKBENCH_HOME is `home` (`workbench.paths.tracking_uri`)."""
    return f"sqlite:///{home / 'mlruns' / 'mlflow.db'}"


def registered_model(home, alias: str):
    """The model registered under `alias` in `home`'s own store, loaded as the POS loads it."""
    import mlflow

    with mlflow_store(home_store(home)):
        return mlflow.pyfunc.load_model(f"models:/pos-recommender@{alias}")


@contextlib.contextmanager
def mlflow_store(uri: str):
    """MLflow's tracking and registry URIs at `uri` for the block (`models:/` resolves through the
    registry URI), and afterwards exactly as they were: set or not, in MLflow and in os.environ,
    where `mlflow.set_tracking_uri` also writes them. Setting back what `mlflow.get_tracking_uri()`
    returned would not do: where nothing was set it returns MLflow's default, ./mlflow.db in the
    working directory, and setting that sends every later test's runs of the process there (under
    pytest-xdist, a worker's first test left a mlflow.db in the checkout)."""
    import mlflow
    from mlflow.tracking._model_registry import utils as registry
    from mlflow.tracking._tracking_service import utils as tracking

    names = ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI")
    saved = tracking._tracking_uri, registry._registry_uri, {name: os.environ.get(name) for name in names}
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    try:
        yield
    finally:
        tracking._tracking_uri, registry._registry_uri = saved[0], saved[1]
        for name, value in saved[2].items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
