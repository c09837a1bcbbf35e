"""Large catalogs: every algorithm fits and serves in memory that grows with the data, not items squared.

The memory tests fit each algorithm in a child process whose address space is capped below what one
items x items float32 matrix of the generated catalog would take, then ask for the three POS pages.
The dense design (a dense Gram matrix, a dense similarity) fails them with MemoryError; the capped
child proves it by failing on purpose first.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import polars as pl
import pytest
import scipy.sparse as sp

from workbench.models import Request, TrainingData, make_model
from workbench.models.item_to_item import (
    LARGE_CATALOG_NEIGHBOURS,
    cooccurrence,
    ease_weights,
    item_rows,
    sparse_ease_weights,
    top_k_per_row,
)

HERE = Path(__file__).resolve().parent
# the child's address-space cap; the catalog below makes one items x items float32 matrix 2x larger
CAP_BYTES = 3 * 2**30
AISLES, AISLE_SIZE = 200, 200  # 40,000 products


def large_catalog(n_baskets: int = 60_000, n_customers: int = 20_000, seed: int = 0) -> pl.DataFrame:
    """Interactions of a 40,000-product shop: each customer shops two aisles of 200 products, half the
    picks following a Zipf head, half anywhere in the aisle (the long tail); 30% of baskets anonymous."""
    rng = np.random.default_rng(seed)
    sizes = 1 + rng.poisson(3.0, n_baskets)
    basket = np.repeat(np.arange(n_baskets), sizes)
    customer = rng.integers(0, n_customers, n_baskets)
    favourite = rng.integers(0, AISLES, (n_customers, 2))
    aisle = favourite[customer[basket], rng.integers(0, 2, len(basket))]
    head = np.minimum(rng.zipf(1.5, len(basket)) - 1, AISLE_SIZE - 1)
    tail = rng.integers(0, AISLE_SIZE, len(basket))
    item = aisle * AISLE_SIZE + np.where(rng.random(len(basket)) < 0.5, head, tail)
    anonymous = rng.random(n_baskets) < 0.3
    now = datetime(2025, 12, 31)
    frame = pl.DataFrame(
        {
            "customer_id": pl.Series([None if a else f"C{c:06d}" for a, c in zip(anonymous, customer)], dtype=pl.String)[basket],
            "basket_id": pl.Series([f"B{b:07d}" for b in range(n_baskets)])[basket],
            "product_id": pl.Series([f"P{i:06d}" for i in range(AISLES * AISLE_SIZE)])[item],
            "time": pl.Series([now - timedelta(days=float(d)) for d in rng.random(n_baskets) * 120])[basket],
            "quantity": np.ones(len(basket)),
            "store_id": "S1",
        }
    )
    return frame.unique(["basket_id", "product_id"], keep="first", maintain_order=True)


# light settings so each child runs in seconds; the memory behaviour does not depend on them
# (the champion tunes, as by default, on fewer validation cases and with fewer trees)
FAST = {
    "als": {"factors": 16, "iterations": 3},
    "bpr": {"factors": 16, "iterations": 5},
    "champion": {"max_tuning_cases": 300, "ranker_iterations": 10, "product_ranker_iterations": 10},
}

CHILD = r"""
import json, resource, sys
cap = int(sys.argv[1])
resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
sys.path.insert(0, sys.argv[2])
from test_scale import large_catalog
from workbench.models import Request, TrainingData, make_model
data = TrainingData.from_interactions(large_catalog())
name, params = sys.argv[3], json.loads(sys.argv[4])
try:
    model = make_model(name, **params).fit(data)
except MemoryError:
    print(json.dumps({"n_items": data.n_items, "memory_error": True}))
    sys.exit(0)
customer = data.customer_ids[0]
viewed = str(data.item_ids[data.item[0]])
basket = [str(data.item_ids[i]) for i in data.item[data.basket == data.basket[0]]]
pages = model.recommend([Request("product", None, (viewed,)), Request("basket", customer, tuple(basket)), Request("customer", customer)], k=10)
print(json.dumps({"n_items": data.n_items, "memory_error": False, "pages": [p.item_ids for p in pages],
                  "rankers": sorted(getattr(model, "rankers", None) or {}),
                  "peak_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def fit_capped(name: str, params: dict) -> dict:
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "POLARS_MAX_THREADS": "1"}
    out = subprocess.run(
        [sys.executable, "-c", CHILD, str(CAP_BYTES), str(HERE), name, json.dumps(params)],
        capture_output=True, text=True, env=env, timeout=600,
    )
    assert out.returncode == 0, f"{name} failed under a {CAP_BYTES / 2**30:.0f} GiB address-space cap:\n{out.stderr[-3000:]}"
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_the_cap_stops_a_dense_items_by_items_matrix():
    """The guard itself: forced onto the dense path, EASE cannot fit under the cap."""
    result = fit_capped("ease", {"dense_item_limit": 10**9})
    assert result["n_items"] ** 2 * 4 > CAP_BYTES
    assert result["memory_error"]


# The champion with its tuning pass: the validation cases are scored in the model's own chunks, and the
# weight search keeps each case's candidates only, never cases x items (models/champion/tuning.py).
SCALABLE = ["best_sellers", "trending", "repeat", "sar", "item_knn", "ease", "als", "bpr", "champion"]


@pytest.mark.parametrize("name", SCALABLE)
def test_every_algorithm_fits_and_serves_a_large_catalog_under_a_memory_cap(name):
    result = fit_capped(name, FAST.get(name, {}))
    assert result["n_items"] ** 2 * 4 > 1.5 * CAP_BYTES  # one dense items x items matrix alone would not fit
    assert not result["memory_error"]
    product, basket, customer = result["pages"]
    assert len(product) == len(basket) == len(customer) == 10
    if name == "champion":  # tuned: a re-ranker learnt on the validation window for every page
        assert result["rankers"] == ["basket", "customer", "customer_new_items", "product"]


# -- the sparse paths agree with their definitions ------------------------------------------------------------
def _random_users(n_users=300, n_items=60, density=0.08, seed=1) -> sp.csr_matrix:
    rng = np.random.default_rng(seed)
    users = sp.random(n_users, n_items, density=density, random_state=rng, format="csr", dtype=np.float32)
    users.data[:] = 1.0
    return users


def test_sparse_ease_is_each_items_ridge_regression_on_its_copurchased_items():
    users = _random_users()
    lambda_ = 20.0
    weights = sparse_ease_weights(users, lambda_, neighbours=1000).toarray()
    gram = (users.T @ users).toarray().astype(np.float64)
    for j in range(users.shape[1]):
        support = np.flatnonzero((gram[:, j] > 0) & (np.arange(users.shape[1]) != j))
        expected = np.zeros(users.shape[1])
        if len(support):
            expected[support] = np.linalg.solve(gram[np.ix_(support, support)] + lambda_ * np.eye(len(support)), gram[support, j])
        np.testing.assert_allclose(weights[:, j], expected, atol=1e-5)
    assert not np.diag(weights).any()


def test_sparse_ease_keeps_each_items_neighbours_only_and_is_close_to_dense():
    users = _random_users(n_users=2000, n_items=80, density=0.1)
    dense = ease_weights(users, 50.0)
    sparse = ease_weights(users, 50.0, dense_item_limit=10, neighbours=12)
    assert isinstance(dense, np.ndarray) and sp.isspmatrix_csr(sparse)
    assert np.diff(sparse.tocsc().indptr).max() <= 12  # regressors per target
    # the largest weights of each target are found again
    top_dense = np.argsort(-dense, axis=0)[:3]
    found = np.mean([sparse[top_dense[r, j], j] != 0 for j in range(80) for r in range(3)])
    assert found > 0.9


def test_ease_weights_choose_sparse_past_the_dense_item_limit():
    users = _random_users()
    assert isinstance(ease_weights(users, 10.0, dense_item_limit=60), np.ndarray)
    assert sp.isspmatrix_csr(ease_weights(users, 10.0, dense_item_limit=59))


def test_top_k_per_row_matches_sorting_each_row():
    rng = np.random.default_rng(3)
    matrix = sp.random(50, 70, density=0.3, random_state=rng, format="csr", dtype=np.float32)
    matrix.data = np.round(matrix.data * 4) / 4  # ties, broken by column
    kept = top_k_per_row(matrix, 5).toarray()
    dense = matrix.toarray()
    for r in range(50):
        columns = np.flatnonzero(dense[r])
        best = columns[np.lexsort((columns, -dense[r, columns]))][:5]
        assert set(np.flatnonzero(kept[r])) == set(best)
        np.testing.assert_array_equal(kept[r, best], dense[r, best])


def test_chunked_item_rows_equal_the_whole_product():
    users = _random_users(n_items=90)
    by_item = users.T.tocsr()
    whole = (by_item @ users).toarray()
    for budget in (1, 50, 10**9):  # one row per chunk, a few rows, everything at once
        chunked = item_rows(90, np.ones(90), lambda a, b: by_item[a:b] @ users, None, budget=budget)
        np.testing.assert_array_equal(chunked.toarray(), whole)


def _shop():
    return large_catalog(n_baskets=3000, n_customers=800, seed=4)


def test_sar_keeps_top_neighbours_past_the_dense_item_limit_and_all_below():
    data = TrainingData.from_interactions(_shop())
    exact = make_model("sar", dense_item_limit=10**9).fit(data).similarity
    bounded = make_model("sar", dense_item_limit=10).fit(data).similarity
    assert sp.issparse(bounded) and np.diff(bounded.indptr).max() <= LARGE_CATALOG_NEIGHBOURS
    full = cooccurrence(data, "basket", None, 1)
    assert (exact.toarray() > 0).sum() == full.nnz if not sp.issparse(exact) else exact.nnz == full.nnz
    few = make_model("sar", neighbours=3).fit(data).similarity
    assert np.diff(sp.csr_matrix(few).indptr).max() <= 3


@pytest.mark.parametrize("name", ["sar", "item_knn", "ease"])
def test_item_to_item_scoring_keeps_no_state_on_the_model(name):
    """Scoring and explaining are pure: nothing of a request stays on the shared model."""
    model = make_model(name, dense_item_limit=10).fit(TrainingData.from_interactions(_shop()))
    before = {k: id(v) for k, v in vars(model).items()}
    customer = model.customer_ids[0] if hasattr(model, "customer_ids") else next(iter(model.customer_index))
    requests = [Request("customer", customer), Request("basket", customer, (str(model.item_ids[0]),)), Request("product", None, (str(model.item_ids[1]),))]
    first = model.recommend(requests, k=5)
    after = {k: id(v) for k, v in vars(model).items()}
    assert after == before
    again = [model.recommend([r], k=5)[0] for r in requests]
    assert [r.item_ids for r in again] == [r.item_ids for r in first]
    assert [r.reasons for r in again] == [r.reasons for r in first]


def test_scoring_in_blocks_equals_one_product():
    model = make_model("ease", dense_item_limit=10).fit(TrainingData.from_interactions(_shop()))
    customers = list(model.customer_index)[:700]
    requests = [Request("customer", c) for c in customers]
    scores = model.score(requests)  # 700 requests: three blocks
    whole = model.affinity(requests) @ model.similarity
    np.testing.assert_allclose(scores, whole.toarray(), rtol=1e-6)
