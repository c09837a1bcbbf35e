"""The champion's large-catalog candidates (models/champion/candidates.py, `dense_item_limit`): past
the limit each list is read from its positive items, never partitioned over the whole catalog, and
it nominates exactly the pairs of the dense path: the same best positive items, the same best
sellers and the same draw seeded by the request where a list falls short."""

from __future__ import annotations

import dataclasses
import pickle
import tracemalloc

import numpy as np
import pandas as pd
import pytest

from helpers import tiny_interactions

from workbench.models import Request, TrainingData, make_model
from workbench.models.base import Batch
from workbench.models.champion import signals as champion_signals
from workbench.models.champion.candidates import _filler, blocked_items, candidate_pairs, on_product_page
from workbench.models.champion.pages import COMPONENTS, PRODUCT_ONLY, page_of
from workbench.models.champion.ranker import blend_scores

FAST = {"validation_days": 20, "max_tuning_cases": 150, "ranker_iterations": 10, "product_ranker_iterations": 10}


@pytest.fixture(scope="module")
def forced():
    """The champion with the large-catalog path forced on a small catalog (tuned with it too)."""
    data = TrainingData.from_interactions(tiny_interactions(seed=5, n_customers=40, n_products=150, n_baskets=700, days=120))
    return make_model("champion", dense_item_limit=0, **FAST).fit(data)


def requests_of(model, n: int = 30, seed: int = 0) -> list[Request]:
    rng = np.random.default_rng(seed)
    items = [str(i) for i in model.item_ids]
    customers = sorted(model.customer_index)
    out = []
    for i in range(n):
        customer = customers[rng.integers(len(customers))] if rng.random() < 0.6 else None
        store = ("S0", "S1", None)[i % 3]
        out.append(Request("product", None, (items[rng.integers(len(items))],), store_id=store))
        out.append(Request("basket", customer, tuple(rng.choice(items, size=int(rng.integers(1, 5)), replace=False)), store_id=store))
        out.append(Request("customer", customers[rng.integers(len(customers))], exclude_purchased=bool(i % 2), store_id=store))
    return out


def pairs_of(state, model, requests):
    batch = Batch(requests, model)
    found = champion_signals.compute(state, batch)
    scores = blend_scores(state, batch, found)
    blocked = blocked_items(state, batch)
    rows, cols = candidate_pairs(state, batch, found, scores, blocked)
    return batch, found, scores, blocked, set(zip(rows.tolist(), cols.tolist()))


def test_both_paths_nominate_the_same_pairs_the_lists_best_positive_items_first(forced):
    requests = requests_of(forced)
    sparse_state = forced.state
    dense_state = dataclasses.replace(sparse_state, dense_item_limit=10**9)
    batch, found, scores, blocked, sparse = pairs_of(sparse_state, forced, requests)
    assert sparse == pairs_of(dense_state, forced, requests)[-1]
    product = on_product_page(batch)
    n = sparse_state.candidates_per_signal
    must, topped_up = set(), 0
    for r, request in enumerate(batch):
        deep = [c for c in COMPONENTS if c not in ("trending", "store") and (product[r] or c not in PRODUCT_ONLY)]
        for values, depth in [(found[c][r], n) for c in deep] + [(scores[r], 2 * n)]:
            values = np.where(blocked[r], 0.0, values)
            items = np.flatnonzero(values > 0)
            topped_up += len(items) < depth
            if len(items) > depth:  # strictly above the cut: in any top `depth`, whatever the ties
                items = items[values[items] > np.sort(values[items])[::-1][depth - 1]]
            must |= {(r, int(i)) for i in items}
    assert must <= sparse
    assert topped_up  # the fixture has short lists: the draw is compared too
    assert not any(blocked[r, c] for r, c in sparse)
    # the trending and store lists as their orders sorted at fit have them; beyond those and the
    # lists' positive items, the request's own seeded draw: the same alone as in the batch
    for r, request in enumerate(batch):
        trending = [int(i) for i in sparse_state.trending_order if not blocked[r, i]][: n // 2]
        store = [int(i) for i in sparse_state.store_orders.get(request.store_id, sparse_state.trending_order) if not blocked[r, i]][: n // 2]
        by_score = np.argsort(-np.where(blocked[r], -1.0, found["trending"][r]), kind="stable")[: n // 2]
        assert {(r, i) for i in trending + store} <= sparse
        assert set(trending) == set(by_score.tolist())
    for r in range(0, len(batch), 7):
        for state in (sparse_state, dense_state):
            alone = pairs_of(state, forced, [requests[r]])[-1]
            assert {c for _, c in alone} == {c for row, c in sparse if row == r}, page_of(requests[r])
    # each row is as deep as a list where the catalog allows
    assert all(len([p for p in sparse if p[0] == r]) >= min(n, sparse_state.n_items - blocked[r].sum()) for r in range(len(batch)))


def test_a_short_lists_filler_is_the_requests_own_draw_across_the_catalog():
    skip = np.zeros(10_000, dtype=bool)
    skip[:300] = True  # what the request blocks or already nominated
    request = Request("basket", "c1", ("b", "a"), store_id="S1")
    drawn = _filler(request, skip, 40)
    assert len(drawn) == len(set(drawn.tolist())) == 40 and not skip[drawn].any()
    # the same request (its products in any order) draws the same; another request draws others
    assert np.array_equal(drawn, _filler(Request("basket", "c1", ("a", "b"), store_id="S1"), skip, 40))
    assert not np.array_equal(drawn, _filler(Request("basket", "c2", ("a", "b"), store_id="S1"), skip, 40))
    # from across the catalog, not one corner of it
    assert drawn.max() - drawn.min() > 5_000
    # what is left, where the catalog has no more; nothing where it has nothing
    assert sorted(_filler(request, np.arange(10) < 6, 50).tolist()) == [6, 7, 8, 9]
    assert len(_filler(request, np.ones(10, dtype=bool), 5)) == 0


def test_the_large_catalog_path_answers_as_a_recommender(forced):
    requests = requests_of(forced, n=12, seed=1)
    one_by_one = [forced.recommend([r], k=10)[0] for r in requests]
    together = forced.recommend(requests, k=10)
    copy = pickle.loads(pickle.dumps(forced))
    again = copy.recommend(requests, k=10)
    for request, alone, batched, pickled in zip(requests, one_by_one, together, again):
        assert alone.item_ids == batched.item_ids == pickled.item_ids
        assert len(alone.item_ids) == 10 and len(alone.reasons) == 10
        if request.excludes_input:
            assert not set(alone.item_ids) & set(request.product_ids)


def large_catalog(n_items: int = 40_000, seed: int = 0) -> TrainingData:
    """Every product sold at least once, a long tail, a few thousand customers."""
    rng = np.random.default_rng(seed)
    popularity = 1.0 / (np.arange(n_items) + 20.0) ** 0.9
    popularity /= popularity.sum()
    sizes = rng.integers(1, 6, size=n_items // 2)
    items = np.concatenate([np.arange(n_items), rng.choice(n_items, size=int(sizes.sum()), p=popularity)])
    basket = np.concatenate([np.arange(n_items) % (n_items // 2), np.repeat(np.arange(n_items // 2), sizes)])
    customer = rng.integers(-500, 3000, size=n_items // 2)[basket]
    frame = pd.DataFrame({
        "customer_id": [f"C{c}" if c >= 0 else None for c in customer],
        "basket_id": [f"B{b}" for b in basket],
        "product_id": [f"P{i}" for i in items],
        "time": (pd.Timestamp("2024-01-01") + pd.to_timedelta(basket * 600, unit="s")).astype("datetime64[us]"),
        "quantity": 1.0,
        "store_id": [f"S{b % 3}" for b in basket],
    }).drop_duplicates(["basket_id", "product_id"])
    frame["customer_id"] = frame["customer_id"].astype(object)
    return TrainingData.from_interactions(frame)


def test_a_single_request_on_a_large_catalog_nominates_without_a_catalog_wide_array():
    model = make_model("champion", tune=False).fit(large_catalog())
    state = model.state
    assert state.n_items > state.dense_item_limit  # the large-catalog path, chosen by catalog size
    customer = next(iter(model.customer_index))
    items = [str(i) for i in model.item_ids[:3]]
    for request in (Request("product", None, items[:1]), Request("basket", customer, tuple(items)), Request("customer", customer)):
        batch = Batch([request], model)
        found = champion_signals.compute(state, batch)
        scores = blend_scores(state, batch, found)
        blocked = blocked_items(state, batch)
        peaks = {}
        for row_wise in (True, False):
            tracemalloc.start()
            rows, cols = candidate_pairs(state, batch, found, scores, blocked, row_wise=row_wise)
            peaks[row_wise] = tracemalloc.get_traced_memory()[1]
            tracemalloc.stop()
            assert len(rows) >= state.candidates_per_signal
        # the dense path holds a float32 copy of every list and an int64 partition of each (12 bytes
        # x lists x items); reading the positives, a few bytes per item at a time
        assert peaks[True] < 4 * 4 * state.n_items, (request.scenario, peaks)
        assert peaks[False] > 10 * peaks[True], (request.scenario, peaks)


def test_session_neighbours_are_sought_among_each_items_latest_baskets():
    import scipy.sparse as sp

    from workbench.models.champion.state import latest_baskets_by_item

    # 5 baskets x 3 items; item 0 in every basket, item 1 in two, item 2 in one
    baskets = sp.csr_matrix(np.array([[1, 1, 0], [1, 0, 0], [1, 1, 1], [1, 0, 0], [1, 0, 0]], dtype=np.float32))
    age = np.array([50.0, 1.0, 30.0, 1.0, 10.0])  # baskets 1 and 3 tie as the newest
    kept = latest_baskets_by_item(baskets, age, sample=3).toarray()
    assert kept[0].tolist() == [0, 1, 0, 1, 1]  # the three newest, ties by basket index
    assert kept[1].tolist() == [1, 0, 1, 0, 0] and kept[2].tolist() == [0, 0, 1, 0, 0]  # short rows whole
    assert (latest_baskets_by_item(baskets, age, sample=0) != baskets.T).nnz == 0


def test_a_large_catalogs_together_rows_keep_each_products_most_frequent_companions():
    from datetime import datetime, timedelta

    import polars as pl

    from workbench.models.item_to_item import LARGE_CATALOG_NEIGHBOURS

    # product P0 is bought beside 700 other products, P1..P50 twice as often as the rest
    rows = []
    for b in range(750):
        other = 1 + (b % 50 if b >= 700 else b % 700)
        rows += [(f"C{b % 40}", f"B{b}", "P0", b), (f"C{b % 40}", f"B{b}", f"P{other}", b)]
    frame = pl.DataFrame(
        {
            "customer_id": [r[0] for r in rows], "basket_id": [r[1] for r in rows], "product_id": [r[2] for r in rows],
            "time": [datetime(2025, 1, 1) + timedelta(hours=r[3]) for r in rows], "quantity": [1.0] * len(rows),
        }
    )
    data = TrainingData.from_interactions(frame)
    large = make_model("champion", tune=False, dense_item_limit=100).fit(data)
    exact = make_model("champion", tune=False).fit(data)
    p0 = int(np.flatnonzero(data.item_ids == "P0")[0])
    for matrix in ("together", "recent_together"):
        assert getattr(exact.state, matrix)[p0].nnz == 700
        kept = getattr(large.state, matrix)[p0]
        assert kept.nnz == LARGE_CATALOG_NEIGHBOURS
        doubled = {f"P{i}" for i in range(1, 51)}
        assert doubled <= {str(data.item_ids[j]) for j in kept.indices}  # the most frequent companions stay
    (answer,) = large.recommend([Request("basket", None, ("P0",))], k=5)
    assert len(answer.item_ids) == 5 and "P0" not in answer.item_ids


@pytest.mark.parametrize("seed", range(4))
def test_request_products_equal_scipys(seed, monkeypatch):
    """A request times a sparse matrix is summed without scipy (`_products`: scipy's product sets up a
    slot per column of the items x past-baskets matrix on every call): the same floats, dense and sparse,
    with duplicate inputs, empty rows and float64 inputs; past DIRECT_PRODUCTS scipy's own product."""
    import scipy.sparse as sp

    matrix = sp.random(300, 5000, density=0.01, format="csr", dtype=np.float32, random_state=seed)
    for dtype, limit in ((np.float32, 1_000_000), (np.float64, 1_000_000), (np.float32, 10)):
        monkeypatch.setattr(champion_signals, "DIRECT_PRODUCTS", limit)
        rows = sp.random(7, 300, density=0.02, format="csr", dtype=dtype, random_state=seed + 1)
        # a repeated input item in the last row (a basket scanned twice), uncanonical as a batch builds it
        rows = sp.csr_matrix((np.r_[rows.data, dtype(1.5), dtype(0.5)], np.r_[rows.indices, 3, 3], np.r_[rows.indptr[:-1], rows.indptr[-1] + 2]),
                             shape=rows.shape)
        rows = sp.vstack([sp.csr_matrix((1, 300), dtype=dtype), rows]).tocsr()  # an empty row
        expected = (rows @ matrix).toarray().astype(np.float32)
        assert np.array_equal(champion_signals._times(rows, matrix), expected)
        indptr, indices, data = champion_signals._sparse_times(rows, matrix)
        got = sp.csr_matrix((data, indices, indptr), shape=expected.shape)
        assert got.has_canonical_format and np.all(data != 0)
        assert np.array_equal(got.toarray().astype(np.float32), expected)


def test_explanations_source_as_scipys_lookup():
    """The product a reason names ("bought together with X"), read from the CSR rows: as scipy's
    fancy indexing picks it, ties and missing entries (0) included."""
    import scipy.sparse as sp

    from workbench.models.champion.explanations import _top_source

    matrix = sp.random(200, 200, density=0.05, format="csr", dtype=np.float32, random_state=0)
    matrix.data -= 0.5  # EASE's negative weights: a missing entry (0) can win
    rng = np.random.default_rng(0)
    for _ in range(300):
        sources = rng.choice(200, int(rng.integers(1, 12)), replace=False)
        item = int(rng.integers(200))
        column = matrix[sources, item].toarray().ravel()
        assert _top_source(sources, matrix, item) == int(sources[np.argmax(column)])
        assert _top_source(sources, matrix.toarray(), item) == int(sources[np.argmax(column)])
    assert _top_source(np.zeros(0, dtype=np.int64), matrix, 3) == -1
