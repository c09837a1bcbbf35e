"""The champion's `next_purchases` signal: what customers with this purchase history went on to buy
in the next `horizon` days.

The customer page asks what a customer will buy before the next training (the test window:
EVALUATION.md's 30 days), repeats included. The other customer signals answer nearby questions:
`repeat` ranks the customer's own items by recency-weighted count, `history_copurchase` (EASE on
customers) what is bought by the same customers, all time, never the item itself. This one learns
the question itself from the retailer's history: at each of a few past cuts, each customer's history
before the cut (log counts per product) and what they bought in the `horizon` days after it, and
one ridge regression from the first to the second (W = (X'X + lambda I)^-1 X'Y, a multi-output
EASE with the diagonal kept and the output shifted in time). Its diagonal is each product's own
re-buy propensity over the horizon; its other entries what follows what. Only customers who bought
in a cut's horizon are rows, as the customer page's cases are the customers who come back.

The weights are a dense (k x k) matrix over the `max_items` products the most customers buy (all of
them on a smaller catalog): their solve costs k^3 (4,000: about a second on this machine) and their
memory k^2, bounded by `max_items` whatever the catalog; products past them get no such score.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from workbench.models.data import TrainingData

# the cuts cover at most the last year: older habits say less about the coming weeks
LOOK_BACK_DAYS = 365.0


@dataclass(frozen=True)
class NextPurchases:
    """The fitted regression: `weights` (k x k, float32) from the log counts of `items` (k product
    indices, sorted) in a customer's history to the same products in the coming `horizon_days`."""

    items: np.ndarray
    weights: np.ndarray
    horizon_days: float
    rows: int  # the (customer, cut) pairs it learnt from


def _baskets_per_product(customer: np.ndarray, column: np.ndarray, shape: tuple[int, int]) -> sp.csr_matrix:
    """customers x kept products: baskets holding each product, from sale lines' `customer` and
    kept-product `column` (one entry per line)."""
    counts = sp.csr_matrix((np.ones(len(customer), dtype=np.float32), (customer, column)), shape=shape)
    counts.sum_duplicates()
    return counts


def fit_next_purchases(data: TrainingData, horizon_days: float, lambda_: float, max_items: int) -> NextPurchases | None:
    """The regression of `data`'s customers' next `horizon_days` on their history before, stacked
    over the cuts every `horizon_days` back over the last LOOK_BACK_DAYS; None where no customer
    bought on both sides of any cut (or the signal is off: `horizon_days` 0)."""
    if not horizon_days or horizon_days <= 0 or max_items <= 0 or not (data.customer >= 0).any():
        return None
    known = data.customer >= 0
    pairs = np.unique(data.customer[known].astype(np.int64) * data.n_items + data.item[known])
    buyers = np.bincount(pairs % data.n_items, minlength=data.n_items)
    # the products the most customers buy, ties by index: the same set for the same data
    order = np.lexsort((np.arange(data.n_items), -buyers))
    items = np.sort(order[: min(int(max_items), int(np.count_nonzero(buyers)))])
    position = np.full(data.n_items, -1, dtype=np.int64)
    position[items] = np.arange(len(items))
    shape = (data.n_customers, len(items))
    span = float(data.age_days[known].max())
    # the customers' lines of the kept products, picked once for every cut
    usable = known & (position[data.item] >= 0)
    customer, column, age = data.customer[usable], position[data.item[usable]], data.age_days[usable]
    histories, futures = [], []
    cut = float(horizon_days)
    while cut < span and cut <= LOOK_BACK_DAYS:
        # what the customer bought in the horizon after the cut (bought or not), and the log of
        # the baskets holding each product before it (as the served signal reads `counts`)
        ahead, before = (age < cut) & (age >= cut - horizon_days), age >= cut
        future = _baskets_per_product(customer[ahead], column[ahead], shape)
        future.data[:] = 1.0
        history = _baskets_per_product(customer[before], column[before], shape)
        history.data = np.log1p(history.data)
        rows = np.flatnonzero((np.diff(future.indptr) > 0) & (np.diff(history.indptr) > 0))
        histories.append(history[rows])
        futures.append(future[rows])
        cut += float(horizon_days)
    n_rows = sum(h.shape[0] for h in histories)
    if n_rows == 0:
        return None
    x, y = sp.vstack(histories).tocsr(), sp.vstack(futures).tocsr()
    gram = (x.T @ x).toarray().astype(np.float32)
    gram[np.diag_indices_from(gram)] += np.float32(lambda_)
    from scipy.linalg import cho_factor, cho_solve

    # in place: the Gram matrix and the right-hand side are the solve's only copies (k^2 floats each)
    factor = cho_factor(gram, lower=True, overwrite_a=True, check_finite=False)
    weights = cho_solve(factor, (x.T @ y).toarray().astype(np.float32), overwrite_b=True, check_finite=False)
    return NextPurchases(items=items, weights=np.ascontiguousarray(weights, dtype=np.float32), horizon_days=float(horizon_days), rows=n_rows)


def next_purchase_scores(fitted: NextPurchases | None, counts: sp.csr_matrix, n_items: int) -> np.ndarray:
    """(requests x items) raw scores from `counts` (requests x items: each request's customer's
    baskets per product, empty rows for no customer); zeros where nothing was fitted."""
    out = np.zeros((counts.shape[0], n_items), dtype=np.float32)
    if fitted is None or counts.nnz == 0:
        return out
    counts = counts.tocsr()
    # each entry's column among the fitted products (a sorted search: no pass over the catalog)
    column = np.minimum(np.searchsorted(fitted.items, counts.indices), len(fitted.items) - 1)
    kept = fitted.items[column] == counts.indices
    rows = np.repeat(np.arange(counts.shape[0]), np.diff(counts.indptr))[kept]
    history = sp.csr_matrix((np.log1p(counts.data[kept]), (rows, column[kept])), shape=(counts.shape[0], len(fitted.items)))
    out[:, fitted.items] = np.asarray(history @ fitted.weights, dtype=np.float32)
    return out
