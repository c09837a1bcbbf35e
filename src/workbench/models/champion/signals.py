"""The champion's signals: each a (requests x items) matrix scaled to [0, 1] per request, computed
from the fitted state and one batch of requests, nothing else.

The item-item matrices (EASE weights, P(item | input item)) may be dense arrays or sparse CSR: every
product here is `rows @ matrix` with the batch's rows on the left, so a request costs
O(items) floats whatever the matrix, never items squared.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from workbench.models.base import Batch, entry_positions, on_customer_page, select_rows
from workbench.models.champion.next_purchases import next_purchase_scores
from workbench.models.item_to_item import _row_max_normalise


@dataclass(frozen=True)
class Signals:
    """The batch's signals (`scaled`, by COMPONENTS name) and the raw scores the re-ranker also sees."""

    scaled: dict
    basket_raw: np.ndarray  # EASE on baskets before scaling: how sure the basket model is
    together_raw: np.ndarray  # P(item | input item), averaged over the inputs
    recent_together_raw: np.ndarray  # the same over recent baskets

    def __getitem__(self, component: str) -> np.ndarray:
        return self.scaled[component]


def _dense(scores) -> np.ndarray:
    if sp.issparse(scores):
        scores = scores.toarray()
    return np.asarray(scores, dtype=np.float32)


# up to this many (input entry, matrix entry) products, the products here are summed without scipy
DIRECT_PRODUCTS = 1_000_000


def _products(rows: sp.csr_matrix, matrix: sp.csr_matrix, limit: int = DIRECT_PRODUCTS):
    """(row, column, value) of each product of an entry of `rows` with an entry of `matrix` that
    `rows @ matrix` adds up, in the order scipy adds them; None past `limit` of them.

    Why not scipy: its product keeps one accumulator slot per column of `matrix`, set up on every
    call. For a POS request times the items x past-baskets matrix (millions of columns at 20M lines)
    that setup costs more than the request's few thousand products, and it grows with the history."""
    starts = matrix.indptr[rows.indices]
    lengths = matrix.indptr[rows.indices + 1] - starts
    if int(lengths.sum()) > limit:
        return None
    take, _ = entry_positions(starts, lengths)
    owner = np.repeat(np.repeat(np.arange(rows.shape[0], dtype=np.int64), np.diff(rows.indptr)), lengths)
    dtype = np.result_type(rows.dtype, matrix.dtype)
    return owner, matrix.indices[take].astype(np.int64), np.repeat(rows.data.astype(dtype, copy=False), lengths) * matrix.data[take]


def _times(rows: sp.csr_matrix, matrix) -> np.ndarray:
    """rows @ matrix, dense; no scipy call where the rows hold nothing (an anonymous customer's
    history, a product page's wish list): the POS asks one request at a time. A few rows times a
    sparse matrix are summed straight into the dense result (`_products`): the same floats as scipy's."""
    if rows.nnz == 0:
        return np.zeros((rows.shape[0], matrix.shape[1]), dtype=np.float32)
    found = _products(rows, matrix.tocsr()) if sp.issparse(matrix) else None
    if found is None:
        return _dense(rows @ matrix)
    owner, columns, values = found
    out = np.zeros(rows.shape[0] * matrix.shape[1], dtype=values.dtype)
    np.add.at(out, owner * matrix.shape[1] + columns, values)
    return out.reshape(rows.shape[0], matrix.shape[1]).astype(np.float32, copy=False)


def _sparse_times(rows: sp.csr_matrix, matrix: sp.csr_matrix):
    """(indptr, indices, data) of rows @ matrix with sorted columns and no zeros, as scipy's product
    after `sum_duplicates` (`_products`: the same floats). Sorting the products pays where they are
    fewer than the matrix's columns (a request against past baskets); a batch of the fit's tuning
    has more, and scipy's product is then the faster."""
    found = _products(rows, matrix, min(DIRECT_PRODUCTS, matrix.shape[1]))
    if found is None:
        product = (rows @ matrix).tocsr()
        product.sum_duplicates()
        product.eliminate_zeros()
        return product.indptr, product.indices, product.data
    owner, columns, values = found
    keys, first = np.unique(owner * matrix.shape[1] + columns, return_inverse=True)
    data = np.zeros(len(keys), dtype=values.dtype)
    np.add.at(data, first, values)
    nonzero = data != 0
    keys, data = keys[nonzero], data[nonzero]
    indptr = np.searchsorted(keys // matrix.shape[1], np.arange(rows.shape[0] + 1))
    return indptr, keys % matrix.shape[1], data


def _scale_rows(scores) -> np.ndarray:
    """Each row to [0, 1] by its maximum; negative (EASE's "unlikely") counts as no signal."""
    if sp.issparse(scores) and scores.nnz == 0:  # no history, no wish list: nothing to scale
        return np.zeros(scores.shape, dtype=np.float32)
    scores = np.maximum(_dense(scores), 0.0)
    if scores.ndim != 2 or scores.size == 0:
        return scores
    peaks = scores.max(axis=1, keepdims=True)
    # in place (a new array already): a row without a positive value is all zeros, and stays so
    return np.divide(scores, peaks, out=scores, where=peaks > 0)


def _scaled_times(rows: sp.csr_matrix, matrix) -> np.ndarray:
    """_scale_rows(rows @ matrix), without passes over a (rows x items) block of zeros where the rows
    hold nothing: on a 70k-product catalog those passes were a quarter of a customer page's signals
    (its basket is empty, and so are a basket page's wish list and an anonymous history)."""
    scores = _times(rows, matrix)  # zeros, without a product, where the rows hold nothing
    return _scale_rows(scores) if rows.nnz else scores


def compute(state, batch: Batch) -> Signals:
    """Every signal of every request of `batch` (see COMPONENTS)."""
    n, n_items = len(batch), state.n_items
    inputs = batch.inputs()
    is_customer_page = on_customer_page(batch)
    # on the customer page the inputs are the wish list; elsewhere the basket / viewed product
    every = np.arange(n)
    # (a batch of one page, as every POS request is, needs no row selection for its own side)
    shopping = inputs if not is_customer_page.any() else select_rows(inputs, np.where(is_customer_page, -1, every))
    wished = inputs if is_customer_page.all() else select_rows(inputs, np.where(is_customer_page, every, -1))
    history = batch.history(state.presence)
    recent = batch.history(state.recent)
    basket_raw = _times(shopping, state.basket_similarity)

    def none():
        return np.zeros((n, n_items), dtype=np.float32)

    out = {
        "repeat": _dense(_row_max_normalise(batch.history(state.repeat))),
        "recent": _scale_rows(recent),
        "basket_copurchase": _scale_rows(basket_raw) if shopping.nnz else none(),
        "customer_copurchase": _scaled_times(shopping, state.customer_similarity),
        "history_copurchase": _scaled_times(history, state.customer_similarity),
        "recent_copurchase": _scaled_times(_row_max_normalise(recent), state.customer_similarity),
        "wish_list": _scale_rows(wished.toarray() + 0.5 * _times(wished, state.basket_similarity)) if wished.nnz else none(),
    }
    if shopping.nnz:
        n_inputs = np.maximum(np.diff(shopping.indptr), 1)[:, None]
        together_raw = _times(shopping, state.together) / n_inputs
        recent_together_raw = _times(shopping, state.recent_together) / n_inputs
        out["together"] = _scale_rows(together_raw)
        out["recent_together"] = _scale_rows(recent_together_raw)
        out["usual_with_basket"] = np.sqrt(out["repeat"] * out["basket_copurchase"])
    else:  # no basket in the batch (the customer page): what goes with it is nothing
        together_raw, recent_together_raw = none(), none()
        out["together"], out["recent_together"], out["usual_with_basket"] = none(), none(), none()
    out["similar_baskets"], out["own_baskets"] = none(), none()
    shopper = np.flatnonzero(np.diff(shopping.indptr) > 0)  # the customer page has no basket
    customers = batch.customers()
    for start in range(0, len(shopper), 500):  # chunks: bounded dense blocks of votes
        rows = shopper[start : start + 500]
        similar, own = basket_neighbours(state, select_rows(shopping, rows), customers[rows])
        out["similar_baskets"][rows], out["own_baskets"][rows] = similar, own
    trending = state.trending / max(float(state.trending.max()), 1e-9) if n_items else state.trending
    out["trending"] = np.broadcast_to(trending.astype(np.float32), (n, n_items))
    out["store"] = _store_sellers(state, batch)
    out["wish_category"] = _wish_category(state, wished)
    counts = batch.history(state.counts)
    out["history_category"] = _history_category(state, counts)
    out["similar_customers"] = similar_customers(state, np.where(is_customer_page, customers, -1))
    # the customer pages' alone: the basket and product pages ask what goes with the basket
    if not is_customer_page.all():
        counts = select_rows(counts, np.where(is_customer_page, every, -1))
    fitted = state.next_purchases  # None: the signal off, or a model pickled before it
    out["next_purchases"] = _scale_rows(next_purchase_scores(fitted, counts, n_items)) if counts.nnz and fitted is not None else none()
    return Signals(out, basket_raw, together_raw, recent_together_raw)


def _store_sellers(state, batch: Batch) -> np.ndarray:
    """The best sellers where each request is made: its store's; the legal entity's where the
    request names no store or one the fit never saw (a web order, a store opened since), as the
    candidates' store list falls back to the trending order. A retailer without stores has no
    such signal: its trending signal is the same list."""
    store = np.zeros((len(batch), state.n_items), dtype=np.float32)
    if not state.store_sellers:
        return store
    for r, request in enumerate(batch):
        sellers = state.store_sellers.get(request.store_id, state.trending)
        if sellers.size and sellers.max() > 0:
            store[r] = sellers / sellers.max()
    return store


def _wish_category(state, wished: sp.csr_matrix) -> np.ndarray:
    """The wish list's categories, their best sellers first; nothing without categories."""
    if state.category_of is None or wished.nnz == 0:
        return np.zeros(wished.shape, dtype=np.float32)
    share = _dense(wished @ state.category_of)  # requests x categories: wished items per category
    in_category = _dense(share @ state.category_of.T)  # requests x items
    trending = state.trending / max(float(state.trending.max()), 1e-9)
    return _scale_rows(in_category * (0.5 + 0.5 * trending)[None, :])


def _history_category(state, history: sp.csr_matrix) -> np.ndarray:
    """The best sellers of the categories the customer buys: the share of the customer's purchases
    (baskets per item) in the item's category, times the item's share of its category's baskets.
    Where a customer's few purchases say little about which products, they say which aisles; nothing
    without categories or a customer."""
    if state.category_share is None or history.nnz == 0:  # None: no categories (or pickled before the signal)
        return np.zeros(history.shape, dtype=np.float32)
    taste = _dense(history @ state.category_of)  # requests x categories
    taste /= np.maximum(taste.sum(axis=1, keepdims=True), 1e-9)
    return _scale_rows(_dense(taste @ state.category_of.T) * state.category_share[None, :])


def similar_customers(state, customers: np.ndarray) -> np.ndarray:
    """User k-NN (the neighbours' half of TIFU-KNN, Hu et al. 2020): the cosine of each customer's
    repeat row (`customers`: a customer index per request, -1 for none) with every other customer's
    (among each item's BUYERS_PER_ITEM heaviest buyers); the state's `customer_neighbours` most alike
    vote for their items with their rows at unit length, each by its cosine (times the request's own
    row length, which the scaling of the row takes out). The caller gives the customer pages'
    requests only: the basket and product pages ask what goes with the basket, not with the customer
    (notebooks/research/similar_customers measures the customer pages)."""
    n, neighbours = len(customers), state.customer_neighbours
    out = np.zeros((n, state.n_items), dtype=np.float32)
    if neighbours <= 0 or not (customers >= 0).any():
        return out
    known = np.flatnonzero(customers >= 0)
    profiles = select_rows(state.repeat, customers[known])
    # chunks of at most PAIRS_PER_CHUNK (customer, other customer) products: a batch of the fit's
    # tuning holds thousands of customers, each compared with every buyer of each of its items
    products = np.diff(state.buyers_by_item.indptr)[profiles.indices]
    per_row = np.bincount(np.repeat(np.arange(len(known)), np.diff(profiles.indptr)), weights=products, minlength=len(known))
    chunk = np.floor(np.cumsum(per_row) / PAIRS_PER_CHUNK).astype(np.int64)
    for at in np.unique(chunk):
        rows = np.flatnonzero(chunk == at)
        out[known[rows]] = _customer_votes(state, select_rows(profiles, rows), customers[known[rows]], neighbours)
    return out


# (customer, other customer) products per chunk of `similar_customers`: its memory stays bounded
# whatever the batch, some 40 MB per chunk (its product and the arrays that pick the neighbours)
PAIRS_PER_CHUNK = 1_000_000


def _customer_votes(state, profiles: sp.csr_matrix, customers: np.ndarray, neighbours: int) -> np.ndarray:
    n = len(customers)
    indptr, others, cosines = _sparse_times(profiles, state.buyers_by_item)
    lengths = np.diff(indptr)
    rows = np.repeat(np.arange(n), lengths)
    near = (others != customers[rows]) & (cosines > 0)  # never the customer's own row
    near &= best_of_each_row(np.where(near, cosines, 0.0), indptr, neighbours)
    voters = sp.csr_matrix(
        ((cosines[near] / state.customer_norms[others[near]]).astype(np.float32), others[near], np.searchsorted(rows[near], np.arange(n + 1))),
        shape=(n, state.repeat.shape[0]),
    )
    return _scale_rows(_times(voters, state.repeat))


def best_of_each_row(values: np.ndarray, indptr: np.ndarray, k: int) -> np.ndarray:
    """Which entries of a CSR row layout (`indptr`) are among the `k` largest `values` of their row,
    ties at the cut included."""
    best = np.ones(len(values), dtype=bool)
    for r in np.flatnonzero(np.diff(indptr) > k):
        span = slice(indptr[r], indptr[r + 1])
        best[span] = values[span] >= np.partition(values[span], -k)[-k]
    return best


def basket_neighbours(state, shopping: sp.csr_matrix, customers: np.ndarray, neighbours: int = 100):
    """Session k-NN: cosine overlap of the basket with every past basket; the `neighbours` most
    similar (and, separately, all of the customer's own, `customers` = each row's customer index or
    -1) vote for their items.

    Kept sparse throughout: a basket shares an item with a few thousand past baskets at most,
    and on a single POS request densifying all of them cost more than the vote itself."""
    n = shopping.shape[0]
    indptr, baskets, overlap = _sparse_times(shopping, state.baskets_by_item)
    lengths = np.diff(indptr)
    rows = np.repeat(np.arange(n), lengths)
    sizes = np.sqrt(np.maximum(np.asarray(shopping.sum(axis=1)).ravel(), 1.0))
    values = (overlap * (state.basket_weight[baskets] / sizes[rows])).astype(np.float32)
    customers = np.asarray(customers, dtype=np.int64)
    own = (customers[rows] >= 0) & (state.basket_customer[baskets] == customers[rows])
    near = best_of_each_row(values, indptr, neighbours) & (values > 0)
    own &= values > 0
    # both votes in one product: rows 0..n-1 the neighbours, n..2n-1 the customer's own baskets
    vote_rows = np.concatenate([rows[near], rows[own] + n])
    vote_baskets = np.concatenate([baskets[near], baskets[own]])
    voters = sp.csr_matrix(
        (np.concatenate([values[near], values[own]]), vote_baskets, np.searchsorted(vote_rows, np.arange(2 * n + 1))),
        shape=(2 * n, state.baskets.shape[0]),
    )
    votes = _scale_rows(_times(voters, state.baskets))
    return votes[:n], votes[n:]
