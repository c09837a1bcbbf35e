"""Top-k ranking metrics of ../shared/EVALUATION.md, over many cases at once.

Every metric takes `recommended` (one ranked list of item ids per case; lists may be shorter than
k, a POS panel can be short) and `truth` (one collection of relevant item ids per case) and returns
the mean over the cases. Gains are binary: an item was bought or it was not. `per_case` gives the
value of each case, for bootstrap intervals over cases.

`HEADLINE` is the one definition of what each POS page is judged on (in `workbench.models.cases`,
re-exported here); everything that names a page's headline figure takes it from there or here.
"""

from __future__ import annotations

from typing import Iterable, Sequence

import numpy as np

# defined one layer down (models' own validation windows tune for them too), re-exported here
from workbench.models.cases import HEADLINE, HEADLINE_LABELS, headline  # noqa: F401
from workbench.models.cases import discounts, ideal_dcg

# the ranking metrics with a value per case (coverage and novelty are properties of the lists)
CASE_METRICS = ("precision", "recall", "ndcg", "map", "hr")


def hits_matrix(recommended: Sequence[Sequence], truth: Sequence[Iterable], k: int = 10) -> np.ndarray:
    """(n_cases, k) bool: whether the item at each rank is in the case's truth (False past the list)."""
    hits = np.zeros((len(recommended), k), dtype=bool)
    for c, (items, relevant) in enumerate(zip(recommended, truth)):
        relevant = relevant if isinstance(relevant, (set, frozenset)) else set(relevant)
        for r, item in enumerate(list(items)[:k]):
            hits[c, r] = item in relevant
    return hits


def _truth_sizes(truth: Sequence[Iterable]) -> np.ndarray:
    sizes = np.array([len(set(t)) for t in truth], dtype=np.float64)
    if (sizes == 0).any():
        raise ValueError("every case needs at least one relevant item")
    return sizes


def mean_or_nan(values: np.ndarray) -> float:
    """The mean; NaN, without numpy's warning, where there is no value (a page without cases)."""
    return float(values.mean()) if len(values) else float("nan")


def per_case(metric: str, recommended, truth, k: int = 10) -> np.ndarray:
    """(n_cases,) float64: `metric` (one of CASE_METRICS) of each case; its mean is the metric."""
    hits = hits_matrix(recommended, truth, k)
    if metric == "precision":
        return hits.sum(axis=1) / k
    if metric == "hr":
        return hits.any(axis=1).astype(np.float64)
    sizes = _truth_sizes(truth)
    if metric == "recall":
        return hits.sum(axis=1) / sizes
    if metric == "ndcg":
        return (hits @ discounts(k)) / ideal_dcg(sizes, k)
    if metric == "map":
        precision_at_rank = np.cumsum(hits, axis=1) / np.arange(1, k + 1)
        return (precision_at_rank * hits).sum(axis=1) / np.minimum(sizes, k)
    raise ValueError(f"metric {metric!r} has no per-case value; one of {CASE_METRICS}")


def precision_at_k(recommended, truth, k: int = 10) -> float:
    """Hits in the top k over k (a short list is not rewarded for being short)."""
    return mean_or_nan(per_case("precision", recommended, truth, k))


def recall_at_k(recommended, truth, k: int = 10) -> float:
    """Hits in the top k over |truth|."""
    return mean_or_nan(per_case("recall", recommended, truth, k))


def hit_rate_at_k(recommended, truth, k: int = 10) -> float:
    """Share of cases with at least one hit in the top k."""
    return mean_or_nan(per_case("hr", recommended, truth, k))


def ndcg_at_k(recommended, truth, k: int = 10) -> float:
    """DCG of the binary hits over the ideal DCG of min(|truth|, k) hits at the top."""
    return mean_or_nan(per_case("ndcg", recommended, truth, k))


def map_at_k(recommended, truth, k: int = 10) -> float:
    """Mean of AP@k: the precision at each hit's rank, summed, over min(|truth|, k)."""
    return mean_or_nan(per_case("map", recommended, truth, k))


def catalog_coverage(recommended, n_items: int, k: int = 10) -> float:
    """Share of the catalog that appears in at least one top-k list."""
    shown = {item for items in recommended for item in list(items)[:k]}
    return len(shown) / n_items if n_items else float("nan")


def novelty(recommended, popularity: dict, n_baskets: int, k: int = 10) -> float:
    """Mean self-information -log2 p(item) of the recommended items, p = share of training baskets
    holding the item: high when the lists go beyond the best sellers. Items unseen in training
    count as seen once."""
    information = [
        -np.log2(max(popularity.get(item, 0), 1) / n_baskets) for items in recommended for item in list(items)[:k]
    ]
    return float(np.mean(information)) if information else float("nan")
