"""What the champion's re-ranker sees of each candidate (request, item) pair: the signals, and what
a linear blend cannot use (FEATURES)."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from workbench.models.base import Batch, on_customer_page
from workbench.models.champion.candidates import blocked_items, candidate_pairs, on_product_page
from workbench.models.champion.pages import COMPONENTS, FEATURES, PRODUCT_ONLY
from workbench.models.champion.signals import _dense


# each feature's column in the re-ranker's rows
COLUMN = {name: i for i, name in enumerate(FEATURES)}


def _rank_within_rows(values: np.ndarray, rows: np.ndarray, n_rows: int) -> np.ndarray:
    """Rank (0 = best) of each (row, value) pair among the pairs of its row, by descending value."""
    order = np.lexsort((-values, rows))
    starts = np.searchsorted(rows[order], np.arange(n_rows))
    ranks = np.empty(len(values), dtype=np.float32)
    ranks[order] = np.arange(len(values)) - starts[rows[order]]
    return ranks


def purchase_stats(state, customers: np.ndarray, items: np.ndarray):
    """(counts, last_bought, first_bought) of these (customer, item) pairs, 0 where never bought.
    The three matrices share one sparsity pattern: one lookup of the pairs' positions serves all."""
    matrices = (state.counts, state.last_bought, state.first_bought)
    if state.pair_position is None or state.counts.nnz == 0:
        return tuple(np.asarray(m[customers, items]).ravel() for m in matrices)
    at = np.asarray(state.pair_position[customers, items]).ravel().astype(np.int64) - 1
    return tuple(np.where(at >= 0, m.data[at], 0) for m in matrices)


def candidate_features(state, batch: Batch, signals, blend: np.ndarray):
    """(rows, cols, features): the candidate (request, item) pairs, never a blocked item, and their
    FEATURES (one row per pair)."""
    n = len(batch)
    rows, cols = candidate_pairs(state, batch, signals, blend, blocked_items(state, batch))
    product = on_product_page(batch)
    features = np.empty((len(rows), len(FEATURES)), dtype=np.float32)
    for component in COMPONENTS:
        features[:, COLUMN[component]] = signals[component][rows, cols]
    features[:, COLUMN["blend"]] = blend[rows, cols]
    customers = batch.customers()
    known = customers[rows] >= 0
    counts = np.zeros(len(rows), dtype=np.float32)
    # -1: never bought (sklearn's binning fails on an all-NaN column)
    last = np.full(len(rows), -1.0, dtype=np.float32)
    first = np.full(len(rows), -1.0, dtype=np.float32)
    if known.any():
        counts[known], last_known, first_known = purchase_stats(state, customers[rows[known]], cols[known])
        bought = last_known > 0
        last[np.flatnonzero(known)[bought]] = last_known[bought] - 1.0
        first[np.flatnonzero(known)[bought]] = first_known[bought] - 1.0
    features[:, COLUMN["history_count"]] = counts
    features[:, COLUMN["last_bought_days"]] = last
    interval = (first - last) / np.maximum(counts - 1.0, 1.0)
    features[:, COLUMN["rebuy_due"]] = np.where(counts >= 2, last / np.maximum(interval, 1.0), -1.0)
    customer_baskets = _of_customers(state.customer_baskets, customers, 0.0)
    features[:, COLUMN["customer_baskets"]] = np.log1p(customer_baskets[rows])
    inputs = batch.inputs()
    features[:, COLUMN["basket_size"]] = np.diff(inputs.indptr)[rows]
    features[:, COLUMN["has_customer"]] = known
    features[:, COLUMN["item_popularity"]] = state.item_log_popularity[cols]
    features[:, COLUMN["item_trend"]] = state.item_trend[cols]
    features[:, COLUMN["item_repeat_rate"]] = state.item_repeat_rate[cols]
    features[:, COLUMN["item_age_days"]] = state.item_age[cols]
    features[:, COLUMN["item_idle_days"]] = state.item_idle[cols]
    features[:, COLUMN["item_basket_size"]] = state.item_basket_size[cols]
    input_popularity = _dense(inputs @ state.item_log_popularity[:, None]).ravel() / np.maximum(np.diff(inputs.indptr), 1)
    features[:, COLUMN["input_popularity"]] = input_popularity[rows]
    features[:, COLUMN["basket_copurchase_raw"]] = signals.basket_raw[rows, cols]
    together = signals.together_raw[rows, cols]
    item_counts = state.item_basket_count
    share = np.maximum(item_counts[cols], 1.0) / state.n_fit_baskets
    input_count = _dense(inputs @ item_counts[:, None]).ravel() / np.maximum(np.diff(inputs.indptr), 1)
    features[:, COLUMN["together_raw"]] = together
    features[:, COLUMN["recent_together_raw"]] = signals.recent_together_raw[rows, cols]
    features[:, COLUMN["together_lift"]] = np.log1p(together / share)
    features[:, COLUMN["together_reverse"]] = together * input_count[rows] / np.maximum(item_counts[cols], 1.0)
    features[:, COLUMN["together_rank"]] = _rank_within_rows(together, rows, n)
    for name in PRODUCT_ONLY:
        features[~product[rows], COLUMN[name]] = 0.0
    features[:, COLUMN["similar_baskets_rank"]] = _rank_within_rows(features[:, COLUMN["similar_baskets"]], rows, n)
    features[:, COLUMN["blend_rank"]] = _rank_within_rows(features[:, COLUMN["blend"]], rows, n)
    _customer_pace(state, batch, rows, counts, customer_baskets[rows], features)
    features[:, COLUMN["name_similarity"]] = _alike(state.name_words if state.catalog_features else None, inputs, rows, cols)
    features[:, COLUMN["same_category"]] = _alike(state.category_of if state.catalog_features else None, inputs, rows, cols, unit=False)
    return rows, cols, features


def _customer_pace(state, batch: Batch, rows: np.ndarray, counts: np.ndarray, baskets: np.ndarray, features: np.ndarray) -> None:
    """CUSTOMER_PACE into `features` on the customer pages' rows (elsewhere as for no customer, a
    constant the trees never split on): `counts` and `baskets`, each pair's history count and its
    customer's baskets."""
    customers = np.where(on_customer_page(batch)[rows], batch.customers()[rows], -1)
    known = customers >= 0
    features[:, COLUMN["history_share"]] = np.where(known, counts / np.maximum(baskets, 1.0), 0.0)
    features[:, COLUMN["purchase_rate"]] = np.where(known, counts / np.maximum(_of_customers(state.customer_tenure, customers, 1.0), 1.0), 0.0)
    features[:, COLUMN["customer_idle_days"]] = _of_customers(state.customer_idle, customers, -1.0)


def _of_customers(values: np.ndarray, customers: np.ndarray, default: float) -> np.ndarray:
    """values[customer] of each entry, `default` where there is none (-1): also where the retailer has
    no loyalty members at all and `values` is empty (every sale anonymous)."""
    if not len(values):
        return np.full(len(customers), default, dtype=np.float32)
    return np.where(customers >= 0, values[np.maximum(customers, 0)], default)


def _alike(item_terms, inputs: sp.csr_matrix, rows: np.ndarray, cols: np.ndarray, unit: bool = True) -> np.ndarray:
    """Per candidate pair, how much the candidate shares the terms (name words, category) of its
    request's products: the cosine to their summed terms (`unit`), else the share of those products
    in its terms. 0 without products or terms."""
    if item_terms is None or inputs.nnz == 0 or not len(rows):
        return np.zeros(len(rows), dtype=np.float32)
    profile = (inputs @ item_terms).tocsr()
    if unit:
        norms = np.sqrt(np.asarray(profile.multiply(profile).sum(axis=1)).ravel())
    else:
        norms = np.diff(inputs.indptr).astype(np.float64)
    profile = (sp.diags(1.0 / np.maximum(norms, 1e-12)) @ profile).tocsr()
    # each pair's dot product from the candidate's own few terms: the cost of the candidates,
    # never of requests x catalog
    terms = item_terms[cols]
    pair = np.repeat(np.arange(len(cols)), np.diff(terms.indptr))
    shared = np.asarray(profile[rows[pair], terms.indices]).ravel()
    return np.bincount(pair, weights=terms.data * shared, minlength=len(cols)).astype(np.float32)
