"""The champion's two stages on a batch: each page's linear blend of the signals, then the learnt
re-ranker (a gradient-boosted classifier per page) over the candidates."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from threadpoolctl import threadpool_limits

from workbench.models.base import Batch
from workbench.models.cases import ideal_dcg
from workbench.models.champion.features import candidate_features
from workbench.models.champion.pages import COMPONENTS, RANKER_OF_PAGE, TUNING_METRIC, page_of
from workbench.models.champion.signals import Signals
from workbench.models.champion.trees import MAX_BINS, TREES, BoostedTrees, grow_trees, quantised


@dataclass(frozen=True)
class Scored:
    """One batch's scores, and what explains them: each signal's weight in the blend, the signals."""

    scores: np.ndarray  # requests x items, float32
    # COMPONENTS x requests x 1: each signal's weight in each request's blend; a signal's part in
    # an item's score is its weight times the signal, worked out for the explained items only
    # (every part of every item, COMPONENTS x requests x items, was a quarter of a customer page's
    # scoring on a 70k-product catalog)
    weights: np.ndarray
    signals: Signals


def blend_scores(state, batch: Batch, signals: Signals) -> np.ndarray:
    """Each page's linear blend: each signal times its weight on the request's page, summed in
    COMPONENTS order (the same floats for the served model and the tuning's re-ranker rows)."""
    weights = request_weights(state, batch)
    total = np.zeros((len(batch), state.n_items), dtype=np.float32)
    for c, component in enumerate(COMPONENTS):
        # a signal no page of the batch weighs adds zeros (every signal is finite): not a pass
        if weights[c].any():
            total += weights[c] * signals[component]
    return total


def request_weights(state, batch: Batch) -> np.ndarray:
    """(COMPONENTS x requests x 1) float32: each signal's weight on each request's page."""
    pages = [page_of(r) for r in batch]
    return np.array([[state.weights[page][component] for page in pages] for component in COMPONENTS], dtype=np.float32).reshape(len(COMPONENTS), len(pages), 1)


def rerank(state, batch: Batch, signals: Signals, scores: np.ndarray) -> np.ndarray:
    """The final scores: the re-ranked candidates first, in 1 + (0, 1], the linear blend's ranking of
    the tail below, in (0, 1); requests of a page without a re-ranker keep the blend."""
    ranked = np.array([RANKER_OF_PAGE[page_of(r)] in state.rankers for r in batch], dtype=bool)
    if not ranked.any():
        return scores
    peaks = scores.max(axis=1, keepdims=True)
    tail = np.divide(np.maximum(scores, 0), peaks, out=np.zeros_like(scores), where=peaks > 0) * 0.999
    rows, cols, features = candidate_features(state, batch, signals, scores)
    final = np.where(ranked[:, None], tail, scores)
    pages = np.array([RANKER_OF_PAGE[page_of(r)] for r in batch], dtype=object)
    for page, ranker in state.rankers.items():
        pick = ranked[rows] & (pages[rows] == page)
        if pick.any():
            # a ranker pickled before later features were appended reads its own first columns
            chance = _chance(ranker, features[pick][:, : ranker.n_features_in_]).astype(np.float32)
            share = float(state.blend_share)
            final[rows[pick], cols[pick]] = 1.0 + (1.0 - share) * chance + share * tail[rows[pick], cols[pick]] + 1e-6
    return final


# below this many candidate rows the trees are walked on one thread (see _chance)
PARALLEL_ROWS = 20_000


def _openmp_threads() -> int:
    from sklearn.utils._openmp_helpers import _openmp_effective_n_threads

    return _openmp_effective_n_threads()


def _chance(ranker, features: np.ndarray) -> np.ndarray:
    """`ranker.predict_proba(features)[:, 1]` of a fitted HistGradientBoostingClassifier, bit for bit,
    without the per-call input validation and per-tree partials that cost a fifth of the trees' time
    on a single POS request. Reads sklearn internals (pinned in pyproject.toml; a test compares both
    paths), and falls back to `predict_proba` where they differ. LightGBM's trees score themselves."""
    # A POS request's few hundred candidates run on one thread: each tree's OpenMP region would
    # otherwise wait at its barrier for a second core that concurrent requests (or other worker
    # processes) hold, and a request's p99 grows from ~15 ms to hundreds (benchmarks/latency.py).
    threads = 1 if len(features) < PARALLEL_ROWS else _openmp_threads()
    if isinstance(ranker, BoostedTrees):
        return ranker.chance(features, threads)
    try:
        predictors, baseline, loss = ranker._predictors, ranker._baseline_prediction, ranker._loss
        known_categories, feature_map = ranker._bin_mapper.make_known_categories_bitsets()
    except (AttributeError, ImportError):
        return ranker.predict_proba(features)[:, 1]
    if ranker.n_trees_per_iteration_ != 1 or features.ndim != 2 or features.shape[1] != ranker.n_features_in_:
        return ranker.predict_proba(features)[:, 1]
    features = np.ascontiguousarray(features, dtype=np.float64)
    raw = np.zeros((len(features), 1), dtype=baseline.dtype, order="F")
    raw += baseline
    column = raw[:, 0]
    for (predictor,) in predictors:
        column += predictor.predict(features, known_categories, feature_map, threads)
    return loss.predict_proba(raw)[:, 1]


def training_rows(labels: np.ndarray, limit: int, seed: int) -> np.ndarray:
    """The rows a re-ranker learns from (a boolean mask), at most `limit` of them: a seeded sample
    of the negatives, and every positive while they fill at most half of the rows (else a seeded
    sample of them, with negatives the rest). Negatives are many and alike: a sample of them keeps
    training fast. Why positives are capped too: a product page's truth is the rest of its basket,
    so its positives alone can pass the limit (two validation windows of Online Retail: 51k of 50k;
    bigger baskets sooner). Kept whole, they left one negative, and that re-ranker's product HR@10
    fell from 0.72 to 0.30 on an Online Retail validation fold, below plain best sellers."""
    keep = np.ones(len(labels), dtype=bool)
    positives, negatives = np.flatnonzero(labels), np.flatnonzero(~labels)
    limit = max(int(limit), 2)
    kept_positives = min(len(positives), max(limit // 2, limit - len(negatives)))
    budget = max(limit - kept_positives, 1)
    rng = np.random.default_rng(seed)
    if len(negatives) > budget:
        keep[rng.choice(negatives, size=len(negatives) - budget, replace=False)] = False
    if len(positives) > kept_positives:
        keep[rng.choice(positives, size=len(positives) - kept_positives, replace=False)] = False
    return keep


def case_weights(labels: np.ndarray, groups: np.ndarray, true_candidates: np.ndarray, metric: str, k: int = 10) -> np.ndarray:
    """Each training row's weight: a positive weighs what ranking it on top is worth to its case in
    the page's headline `metric`, a negative 1. HR: 1 / the case's positives (a case counts once,
    however many true items it holds). NDCG: 1 / the case's ideal DCG over its `true_candidates`
    (a hit's gain is 1 / log2(rank + 1) over that ideal), so a case with many true items counts more
    than one with few, as NDCG's mean over cases counts them, though less than one per true item.
    Either way the positives' weights are scaled to the HR weights' sum: only how they are shared
    between the cases differs, not how positives weigh against negatives."""
    weights = np.ones(len(labels))
    positives = np.bincount(groups[labels], minlength=groups.max() + 1).astype(np.float64)
    once = positives[groups[labels]].mean() / positives[groups[labels]]
    if metric == "ndcg":
        worth = 1.0 / ideal_dcg(true_candidates[groups[labels]], k)
        weights[labels] = worth * once.sum() / worth.sum()
    else:
        weights[labels] = once
    return weights


# the re-ranker settings a page may have its own of: {setting: (page, its own setting)}
OWN_SETTING = {"max_training_rows": ("product", "product_training_rows"),
               "ranker_iterations": ("product", "product_ranker_iterations"),
               "ranker_objective": ("customer_new_items", "new_items_objective")}


def _of_page(params: dict, page: str | None, name: str):
    """The re-ranker setting `name` of `page`: the page's own (`product_training_rows` of
    `max_training_rows`, `product_ranker_iterations` of `ranker_iterations`, `new_items_objective` of
    `ranker_objective`) where one is given."""
    owner, own = OWN_SETTING[name]
    return params[own] if page == owner and params[own] else params[name]


def training_set(blocks, params: dict, page: str | None = None):
    """(features, labels, case of each row, weights or None) that `page`'s re-ranker learns from:
    `blocks` ((features, labels, case of each row) per validation window) joined, case ids unique
    across the windows, sampled to at most the page's `max_training_rows` (`training_rows`), each
    row weighed by `case_weights` where `balance_cases` asks; None where the cases hold too few
    positives to learn from."""
    p = params
    features = np.concatenate([b[0] for b in blocks])
    labels = np.concatenate([b[1] for b in blocks])
    offsets = np.cumsum([0] + [int(b[2].max()) + 1 if len(b[2]) else 0 for b in blocks])
    groups = np.concatenate([b[2] + offsets[i] for i, b in enumerate(blocks)])
    if labels.sum() < 10 or (~labels).sum() < 10:
        return None
    true_candidates = np.bincount(groups[labels], minlength=groups.max() + 1)  # before the sample
    keep = training_rows(labels, _of_page(p, page, "max_training_rows"), p["seed"])
    features, labels, groups = features[keep], labels[keep], groups[keep]
    weights = None
    if p["balance_cases"]:
        metric = TUNING_METRIC[page] if p["balance_cases"] == "metric" and page in TUNING_METRIC else "hr"
        weights = case_weights(labels, groups, true_candidates, metric)
    return features, labels, groups, weights


def train_ranker(blocks, params: dict, page: str | None = None):
    """A gradient-boosted classifier: is this candidate in the truth? `blocks`: (features, labels,
    case of each row) per validation window. None where the cases hold too few positives to learn from.
    Its trees grown by LightGBM (`ranker_trees` "lightgbm", models/champion/trees.py) or by
    scikit-learn's HistGradientBoostingClassifier ("sklearn": the re-rankers until 7 December 2026),
    the same settings either way. Pointwise ("binary", weighted by `case_weights`), or with
    LightGBM's trees a ranking objective (`ranker_objective`, the new-items page's own
    `new_items_objective`): the rows of a case together, the cases without a true candidate left
    out (they teach a ranking nothing), unweighted (the objective weighs each case itself)."""
    p = params
    learnt_from = training_set(blocks, p, page)
    if learnt_from is None:
        return None
    features, labels, cases, weights = learnt_from
    iterations = _of_page(p, page, "ranker_iterations")
    objective = _of_page(p, page, "ranker_objective") if p["ranker_trees"] == "lightgbm" else "binary"
    sizes = None
    if objective != "binary":
        taught = np.bincount(cases[labels], minlength=cases.max() + 1)[cases] > 0
        order = np.flatnonzero(taught)[np.argsort(cases[taught], kind="stable")]
        features, labels, cases, weights = features[order], labels[order], cases[order], None
        sizes = np.unique(cases, return_counts=True)[1]
    # both learn from the same bins, each feature's weighted quantiles (`quantised`)
    features = quantised(features, weights, MAX_BINS)
    if p["ranker_trees"] == "lightgbm":
        return grow_trees(features, labels, weights, iterations=iterations, seed=p["seed"], objective=objective, case_sizes=sizes)
    from sklearn.ensemble import HistGradientBoostingClassifier

    model = HistGradientBoostingClassifier(
        max_bins=MAX_BINS,
        max_iter=iterations,
        learning_rate=TREES["learning_rate"],
        max_leaf_nodes=TREES["leaves"],
        min_samples_leaf=TREES["rows_per_leaf"],
        l2_regularization=TREES["l2"],
        early_stopping=False,
        random_state=p["seed"],
    )
    # one OpenMP thread: the same sums in the same order, so the same trees on a machine of any
    # number of cores; and a scheduled run on a busy server is not stalled at every barrier by a
    # thread waiting for a core (at a load of two per core, two threads fit three times slower)
    with threadpool_limits(1, "openmp"):
        model.fit(features, labels, sample_weight=weights)
    model.n_rows_ = int(len(labels))
    return model
