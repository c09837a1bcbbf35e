"""The champion: the signals each POS page needs, blended per page, then re-ranked by a learnt model.

Repeat purchases rule the customer page (retail customers re-buy), co-purchase structure rules the
transaction and product pages, and what is selling right now fills the rest. Each signal is scaled
to [0, 1] per request.

Two stages, both learnt on the last `validation_days` of the training data (the protocol of
EVALUATION.md one period earlier, never the test window):

1. a linear blend per page (weights: DEFAULT_WEIGHTS, or a deterministic coordinate search over GRID
   when `second_stage=False`); it ranks the long tail and gives every item its human reason;
2. candidates (the union of every signal's top `candidates_per_signal`) re-ranked per page by a
   gradient-boosted classifier over the signals plus what a linear blend cannot use: how often and
   how long ago the customer bought the item, the item's popularity, trend, repeat rate and age, the
   basket's size. One model per page, trained pointwise on the validation cases. The product page's
   model also sees P(item | viewed item) (all baskets and recent ones), its lift and P(viewed | item),
   draws candidates from P(item | viewed item) too, and gets `product_ranker_iterations` trees.

Every default here was picked on validation windows before the evaluation split (the protocol run
with split 2011-10-10 on the data before 2011-11-09, and a month earlier), never on the test window:
see benchmarks/results/quality.md, "How the settings were chosen".

The signals are then refitted on all the data.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import polars as pl
import scipy.sparse as sp

from workbench.models.base import Recommender, Request, row_items, select_rows
from workbench.models.data import TrainingData
from workbench.models.item_to_item import _row_max_normalise, ease_weights

COMPONENTS = (
    "repeat",  # the customer's own re-buys, recency-weighted
    "recent",  # what the customer bought in the last weeks
    "basket_copurchase",  # bought in the same basket as the basket's items / the viewed product
    "customer_copurchase",  # bought by the same customers as the basket's items / the viewed product
    "history_copurchase",  # bought by customers whose history looks like this customer's
    "recent_copurchase",  # the same from the customer's recent purchases: taste moves with the season
    "usual_with_basket",  # what the customer buys regularly and goes with this basket
    "recent_together",  # share of the input's recent baskets (30-day half-life) that also held the item
    "together",  # P(item | input item): share of all the input's baskets that also held it (favours popular complements)
    "similar_baskets",  # what completed the most similar past baskets (session k-nearest-neighbours)
    "own_baskets",  # what completed this customer's own past baskets like this one
    "trending",
    "store",  # the store's own recent best sellers
    "wish_list",
    "wish_category",  # popular items of the wish list's categories
)
# the pages the weights are tuned for; "product_customer" = product page with a customer attached
PAGES = ("customer", "customer_new_items", "basket", "product", "product_customer")
# the learnt re-ranker of each page (a product page with a customer is a one-item basket)
RANKER_OF_PAGE = {"customer": "customer", "customer_new_items": "customer_new_items", "basket": "basket", "product": "product", "product_customer": "basket"}
REASONS = {
    "repeat": "you buy this regularly",
    "usual_with_basket": "you buy this regularly",
    "recent": "you bought this recently",
    "trending": "trending now",
    "store": "best seller",
    "wish_list": "on your wish list",
    "wish_category": "in your wish list's category",
}
# the metric each page is tuned for, as in EVALUATION.md's targets
TUNING_METRIC = {"customer": "ndcg", "customer_new_items": "ndcg", "basket": "hr", "product": "hr", "product_customer": "hr"}
GRID = (0.0, 0.03, 0.1, 0.2, 0.35, 0.5, 0.75, 1.0, 1.5, 2.5)

# the weights the coordinate search found on Online Retail (a good start anywhere)
DEFAULT_WEIGHTS = {
    "customer": {"repeat": 0.75, "history_copurchase": 0.2, "recent_copurchase": 0.1, "trending": 0.1, "store": 0.35, "wish_list": 0.5, "wish_category": 0.1},
    "customer_new_items": {"history_copurchase": 1.0, "recent_copurchase": 0.5, "trending": 0.5, "store": 0.03, "wish_list": 0.5, "wish_category": 0.2},
    "basket": {"basket_copurchase": 1.0, "customer_copurchase": 0.5, "repeat": 0.35, "usual_with_basket": 0.03, "own_baskets": 0.1},
    "product": {"basket_copurchase": 1.0, "customer_copurchase": 0.5, "similar_baskets": 2.5, "trending": 0.1, "store": 0.75},
    "product_customer": {"basket_copurchase": 0.75, "customer_copurchase": 0.5, "repeat": 1.0, "similar_baskets": 1.5, "own_baskets": 0.5, "trending": 0.1},
}
# what the re-ranker sees besides the signals (one column each)
EXTRA_FEATURES = (
    "blend",  # the page's linear blend
    "history_count",  # baskets of this customer holding the item
    "last_bought_days",  # days since this customer last bought it (-1: never)
    "rebuy_due",  # days since the last buy over the customer's usual interval between buys of it
    "customer_baskets",
    "basket_size",
    "has_customer",
    "item_popularity",  # log baskets holding the item
    "item_trend",  # recent share of its sales against its all-time share
    "item_repeat_rate",  # share of its buyers who bought it again
    "item_age_days",  # days since its first sale
    "item_idle_days",  # days since its last sale
    "item_basket_size",  # mean size of the baskets holding the item: big-basket items go with anything
    "input_popularity",  # how popular the viewed product / the basket's items are (mean log baskets)
    "basket_copurchase_raw",  # the co-purchase score before scaling: how sure the basket model is
    "together_raw",  # P(item | input item) before scaling
    "recent_together_raw",  # the same over recent baskets
    "together_lift",  # P(item | input) / P(item): together beyond popularity
    "together_reverse",  # P(input | item): how often the item comes with the input
    "together_rank",
    "similar_baskets_rank",
    "blend_rank",
)
FEATURES = COMPONENTS + EXTRA_FEATURES
PRODUCT_ONLY = ("together", "together_raw", "recent_together_raw", "together_lift", "together_reverse", "together_rank")


def page_of(request: Request) -> str:
    if request.scenario == "customer":
        return "customer_new_items" if request.exclude_purchased else "customer"
    if request.scenario == "product" and request.customer_id is not None:
        return "product_customer"
    return request.scenario


def _dense(scores) -> np.ndarray:
    if sp.issparse(scores):
        scores = scores.toarray()
    return np.asarray(scores, dtype=np.float32)


def _times(rows: sp.csr_matrix, matrix) -> np.ndarray:
    """rows @ matrix, dense; no scipy call where the rows hold nothing (an anonymous customer's
    history, a product page's wish list): the POS asks one request at a time."""
    if rows.nnz == 0:
        return np.zeros((rows.shape[0], matrix.shape[1]), dtype=np.float32)
    return _dense(rows @ matrix)


def _scale_rows(scores) -> np.ndarray:
    """Each row to [0, 1] by its maximum; negative (EASE's "unlikely") counts as no signal."""
    scores = np.maximum(_dense(scores), 0.0)
    if scores.ndim != 2 or scores.size == 0:
        return scores
    peaks = scores.max(axis=1, keepdims=True)
    return np.divide(scores, peaks, out=np.zeros_like(scores), where=peaks > 0)


def _top_columns(matrix: np.ndarray, n: int) -> np.ndarray:
    """(..., min(n, columns)): the columns of each row's n largest values (in no order)."""
    n = min(int(n), matrix.shape[-1])
    if n <= 0:
        return np.zeros((*matrix.shape[:-1], 0), dtype=np.int64)
    if n == matrix.shape[-1]:
        return np.broadcast_to(np.arange(n), (*matrix.shape[:-1], n))
    return np.argpartition(-matrix, n - 1, axis=-1)[..., :n]


def _nominate(masked: np.ndarray, blocked: np.ndarray, n: int) -> np.ndarray:
    """`_top_columns` of (lists, rows, items) scores, blocked items at -1.

    A list that scores nothing in a row still nominates n items: argpartition's pick among the tied
    zeros. Those filler candidates stay (dropping them cost 0.007-0.008 product HR on both validation
    windows); as every empty list of a row is the same array, it is partitioned once per row, not
    once per list (argpartition is slowest on exactly these rows)."""
    empty = masked.max(axis=-1) <= 0
    if not empty.any():
        return _top_columns(masked, n)
    empty_row = np.where(blocked, -1.0, np.zeros(1, dtype=masked.dtype))
    lists, at = np.nonzero(empty)
    empty[lists, at] = (masked[lists, at] == empty_row[at]).all(axis=-1)  # nothing below zero but the blocked
    top = np.empty((*masked.shape[:-1], min(int(n), masked.shape[-1])), dtype=np.int64)
    top[~empty] = _top_columns(masked[~empty], n)
    rows = np.flatnonzero(empty.any(axis=0))
    filler = _top_columns(empty_row[rows], n)
    slot = np.zeros(masked.shape[1], dtype=np.int64)
    slot[rows] = np.arange(len(rows))
    lists, at = np.nonzero(empty)
    top[lists, at] = filler[slot[at]]
    return top


def _chance(ranker, features: np.ndarray) -> np.ndarray:
    """`ranker.predict_proba(features)[:, 1]` of a fitted HistGradientBoostingClassifier, bit for bit,
    without the per-call input validation and per-tree partials that cost a fifth of the trees' time
    on a single POS request. Reads sklearn internals (pinned in pyproject.toml; a test compares both
    paths), and falls back to `predict_proba` where they differ."""
    try:
        from sklearn.utils._openmp_helpers import _openmp_effective_n_threads

        predictors, baseline, loss = ranker._predictors, ranker._baseline_prediction, ranker._loss
        known_categories, feature_map = ranker._bin_mapper.make_known_categories_bitsets()
    except (AttributeError, ImportError):
        return ranker.predict_proba(features)[:, 1]
    if ranker.n_trees_per_iteration_ != 1 or features.ndim != 2 or features.shape[1] != ranker.n_features_in_:
        return ranker.predict_proba(features)[:, 1]
    features = np.ascontiguousarray(features, dtype=np.float64)
    threads = _openmp_effective_n_threads()
    raw = np.zeros((len(features), 1), dtype=baseline.dtype, order="F")
    raw += baseline
    column = raw[:, 0]
    for (predictor,) in predictors:
        column += predictor.predict(features, known_categories, feature_map, threads)
    return loss.predict_proba(raw)[:, 1]


def _rank_within_rows(values: np.ndarray, rows: np.ndarray, n_rows: int) -> np.ndarray:
    """Rank (0 = best) of each (row, value) pair among the pairs of its row, by descending value."""
    order = np.lexsort((-values, rows))
    starts = np.searchsorted(rows[order], np.arange(n_rows))
    ranks = np.empty(len(values), dtype=np.float32)
    ranks[order] = np.arange(len(values)) - starts[rows[order]]
    return ranks


class Champion(Recommender):
    """Blend of repeat purchases, co-purchase (EASE on baskets for the basket/viewed product; EASE on
    customers for the history), session neighbours, trending and store best sellers, the wish list
    and its categories; re-ranked per page by a learnt model."""

    name = "champion"

    def __init__(
        self,
        weights: dict | None = None,
        tune: bool = True,
        validation_days: int = 30,
        repeat_half_life_days: float = 90.0,
        recent_half_life_days: float = 14.0,
        basket_lambda: float = 50.0,
        customer_lambda: float = 250.0,
        trending_half_life_days: float = 14.0,
        max_tuning_cases: int = 3000,
        validation_windows: int = 1,
        second_stage: bool = True,
        candidates_per_signal: int = 50,
        product_candidates_per_signal: int | None = None,
        ranker_iterations: int = 60,
        product_ranker_iterations: int | None = 120,
        max_training_rows: int = 250_000,
        negative_rate: float = 0.4,
        balance_cases: bool = True,
        blend_share: float = 0.0,
        seed: int = 0,
    ):
        super().__init__(
            weights=weights,
            tune=tune,
            validation_days=validation_days,
            repeat_half_life_days=repeat_half_life_days,
            recent_half_life_days=recent_half_life_days,
            basket_lambda=basket_lambda,
            customer_lambda=customer_lambda,
            trending_half_life_days=trending_half_life_days,
            max_tuning_cases=max_tuning_cases,
            validation_windows=validation_windows,
            second_stage=second_stage,
            candidates_per_signal=candidates_per_signal,
            product_candidates_per_signal=product_candidates_per_signal,
            ranker_iterations=ranker_iterations,
            product_ranker_iterations=product_ranker_iterations,
            max_training_rows=max_training_rows,
            negative_rate=negative_rate,
            balance_cases=balance_cases,
            blend_share=blend_share,
            seed=seed,
        )

    # -- fitting -------------------------------------------------------------------------------
    def _fit(self, data: TrainingData) -> None:
        p = self.params
        weights = p["weights"]
        self.tuning_report = None
        self.rankers = {}
        if p["tune"]:
            searched, self.rankers, self.tuning_report = self._tune(data, search_weights=weights is None and not p["second_stage"])
            weights = weights if weights is not None else searched
        self._set_weights(weights)
        self._fit_signals(data)

    def _set_weights(self, weights: dict | None) -> None:
        weights = weights or DEFAULT_WEIGHTS
        self.weights = {page: {c: float(weights.get(page, {}).get(c, 0.0)) for c in COMPONENTS} for page in PAGES}

    def _fit_signals(self, data: TrainingData) -> None:
        p = self.params
        self.repeat = data.customer_items(p["repeat_half_life_days"])
        self.recent = data.customer_items(p["recent_half_life_days"])
        self.counts = data.customer_items(None)
        self.presence = self.counts.copy()
        self.presence.data[:] = 1.0
        self.basket_similarity = ease_weights(data.basket_items(None), p["basket_lambda"])
        self.customer_similarity = ease_weights(self.presence, p["customer_lambda"])
        self.trending = data.item_popularity(p["trending_half_life_days"])
        self.store_sellers = {
            store: data.item_popularity(p["trending_half_life_days"], store_id=store)
            for store in sorted({s for s in data.basket_store if s is not None})
        }
        self._wish_lists = data.wish_lists
        baskets = data.basket_items(None)
        baskets.data[:] = 1.0
        # recent baskets say more about what goes together this season
        recency = np.power(0.5, data.basket_age_days / 90.0).astype(np.float32)
        sizes = np.maximum(np.asarray(baskets.sum(axis=1)).ravel(), 1.0)
        self.baskets = baskets
        # items x baskets, kept row-major: transposing per request costs more than the product itself
        self.baskets_by_item = baskets.T.tocsr()
        self.basket_weight = recency / np.sqrt(sizes)
        self.basket_customer = data.basket_customer
        # P(item | input item) over recent baskets: what goes together this season
        weighted = sp.diags(np.power(0.5, data.basket_age_days / 30.0).astype(np.float32)) @ baskets
        together = (weighted.T @ baskets).tocsr()
        bought = np.maximum(together.diagonal(), 1e-6)
        together.setdiag(0)
        together.eliminate_zeros()
        self.recent_together = (sp.diags(1.0 / bought) @ together).tocsr().astype(np.float32)
        # P(item | input item) over all baskets: count-based, so popular complements come first
        together = (baskets.T @ baskets).tocsr()
        self.item_basket_count = np.asarray(together.diagonal(), dtype=np.float32)
        together.setdiag(0)
        together.eliminate_zeros()
        self.together = (sp.diags(1.0 / np.maximum(self.item_basket_count, 1.0)) @ together).tocsr().astype(np.float32)
        self.n_fit_baskets = max(int(baskets.shape[0]), 1)
        self._fit_categories(data)
        self._fit_statistics(data)

    def _fit_categories(self, data: TrainingData) -> None:
        """items x categories (one-hot), where the catalog names categories."""
        self.category_of = None
        if data.item_categories is None:
            return
        labels = np.array(["" if c is None else str(c) for c in data.item_categories], dtype=object)
        known = np.flatnonzero(labels != "")
        if not len(known):
            return
        names, codes = np.unique(labels[known], return_inverse=True)
        self.category_names = names
        self.category_of = sp.csr_matrix(
            (np.ones(len(known), dtype=np.float32), (known, codes)), shape=(data.n_items, len(names))
        )

    def _fit_statistics(self, data: TrainingData) -> None:
        """What the re-ranker needs besides the signals: per (customer, item) first and last buy,
        per customer and per item a few counts."""
        self.__dict__.pop("_pair_position", None)  # built from the previous fit's matrices
        n_items = data.n_items
        known = data.customer >= 0
        keys = data.customer[known].astype(np.int64) * n_items + data.item[known]
        ages = data.age_days[known].astype(np.float64)
        pair_keys, inverse = np.unique(keys, return_inverse=True)
        last = np.full(len(pair_keys), np.inf)
        first = np.zeros(len(pair_keys))
        np.minimum.at(last, inverse, ages)
        np.maximum.at(first, inverse, ages)
        shape = (data.n_customers, n_items)
        rows, cols = pair_keys // n_items, pair_keys % n_items
        # stored + 1 so that "today" is not an implicit zero
        self.last_bought = sp.csr_matrix((last + 1.0, (rows, cols)), shape=shape)
        self.first_bought = sp.csr_matrix((first + 1.0, (rows, cols)), shape=shape)
        customers = data.basket_customer[data.basket_customer >= 0]
        self.customer_baskets = np.bincount(customers, minlength=data.n_customers).astype(np.float32)
        popularity = data.item_popularity(None)
        self.item_log_popularity = np.log1p(popularity).astype(np.float32)
        share_now = self.trending / max(float(self.trending.sum()), 1e-9)
        share_ever = popularity / max(float(popularity.sum()), 1e-9)
        self.item_trend = (np.log1p(1e4 * share_now) - np.log1p(1e4 * share_ever)).astype(np.float32)
        buyers = np.bincount(cols, minlength=n_items)
        counts = self.counts.tocoo()
        rebuyers = np.bincount(counts.col[counts.data >= 2], minlength=n_items)
        self.item_repeat_rate = (rebuyers / np.maximum(buyers, 1)).astype(np.float32)
        age_first = np.zeros(n_items)
        age_last = np.full(n_items, np.inf)
        np.maximum.at(age_first, data.item, data.age_days.astype(np.float64))
        np.minimum.at(age_last, data.item, data.age_days.astype(np.float64))
        self.item_age = age_first.astype(np.float32)
        basket_sizes = np.bincount(data.basket, minlength=data.n_baskets).astype(np.float64)
        self.item_basket_size = (
            np.bincount(data.item, weights=np.log1p(basket_sizes[data.basket]), minlength=n_items) / np.maximum(popularity, 1.0)
        ).astype(np.float32)
        self.item_idle = np.where(np.isfinite(age_last), age_last, 1e4).astype(np.float32)

    # -- tuning on the validation window -------------------------------------------------------------
    def _tune(self, data: TrainingData, search_weights: bool):
        """(weights or None, rankers, report): learnt on the last `validation_windows` periods of
        `validation_days` before the end of `data` (the most recent one alone for the weights).
        Where the data is too small for a validation window, nothing is learnt (defaults serve)."""
        p = self.params
        interactions = data.to_interactions()
        wish_lists = _wish_list_frame(data)
        weights, report = {}, {}
        rows = {page: [] for page in dict.fromkeys(RANKER_OF_PAGE.values())}
        for window in range(max(int(p["validation_windows"]), 1)):
            inner, cases = self._validation_window(data, interactions, wish_lists, window)
            if inner is None:
                break
            for page in PAGES:
                requests, truth = cases[page].requests, cases[page].truth
                if window == 0:
                    weights[page] = DEFAULT_WEIGHTS.get(page, {})
                    if search_weights and requests:
                        weights[page], report[page] = inner._search(requests, truth, TUNING_METRIC[page])
                if p["second_stage"] and requests and page in rows:
                    inner._set_weights({**inner.weights, page: weights[page]})
                    rows[page].append(inner._ranker_rows(requests, truth, seed=(p["seed"], window, PAGES.index(page))))
        rankers = {}
        for page, blocks in rows.items():
            ranker = self._train_ranker(blocks, page) if blocks else None
            if ranker is not None:
                rankers[page] = ranker
                report[f"{page}.ranker_rows"] = ranker.n_rows_
        return (weights if search_weights and weights else None), rankers, report or None

    def _validation_window(self, data: TrainingData, interactions, wish_lists, window: int):
        """(inner champion, cases): the champion fitted on what came before the validation window
        `window` periods back, and that window's cases; (None, None) where there is no such window."""
        # imported here: evaluation depends on models, not the other way round
        from workbench.evaluation.protocol import build_cases, validation_split

        p = self.params
        days = int(p["validation_days"])
        if interactions.height == 0:
            return None, None
        if window:
            end = pd.Timestamp(interactions["time"].max()).normalize() + pd.Timedelta(days=1 - window * days)
            interactions = interactions.filter(pl.col("time") < end.to_pydatetime())
        if interactions.height == 0:
            return None, None
        fit_part, validation = validation_split(interactions, days=days)
        if fit_part.height == 0 or validation.height == 0:
            return None, None
        inner = Champion(**{**p, "tune": False, "weights": p["weights"] or DEFAULT_WEIGHTS})
        inner_data = TrainingData.from_interactions(fit_part, reference_time=validation["time"].min())
        if wish_lists is not None:
            inner_data.wish_lists = inner_data._wish_list_matrix(wish_lists)
        inner_data.item_names = _reindex(data, inner_data, data.item_names)
        inner_data.item_categories = _reindex(data, inner_data, data.item_categories)
        inner.fit(inner_data)
        cases = build_cases(fit_part, validation, seed=p["seed"] + window, max_baskets=p["max_tuning_cases"], wish_lists=wish_lists)
        cases["product_customer"] = _with_customers(cases["product"], cases["basket"])
        return inner, cases

    def _ranker_rows(self, requests, truth, seed):
        """(features, labels, case of each row) of the candidates of these validation cases; cases
        without any true item among their candidates are left out (they teach nothing about ranking),
        and only a deterministic share `negative_rate` of the wrong candidates is kept."""
        rng = np.random.default_rng(list(seed))
        blocks, labels, groups = [], [], []
        for start in range(0, len(requests), 500):
            chunk = requests[start : start + 500]
            rows, cols, features, _ = self._candidate_features(chunk)
            relevant = sp.csr_matrix(
                (
                    np.ones(sum(len(t) for t in truth[start : start + 500]), dtype=np.float32),
                    (
                        [r for r, t in enumerate(truth[start : start + 500]) for _ in t],
                        [self.item_index.get(i, -1) for t in truth[start : start + 500] for i in t],
                    ),
                ),
                shape=(len(chunk), self.n_items + 1),
            ) if len(chunk) else None
            target = np.asarray(relevant[rows, cols]).ravel() > 0 if len(rows) else np.zeros(0, dtype=bool)
            useful = np.zeros(len(chunk), dtype=bool)
            useful[rows[target]] = True
            keep = useful[rows] & (target | (rng.random(len(rows)) < self.params["negative_rate"]))
            blocks.append(features[keep])
            labels.append(target[keep])
            groups.append(rows[keep] + start)
        if not blocks:
            return np.zeros((0, len(FEATURES)), np.float32), np.zeros(0, bool), np.zeros(0, np.int64)
        return np.concatenate(blocks), np.concatenate(labels), np.concatenate(groups)

    def _train_ranker(self, blocks, page: str | None = None):
        """A gradient-boosted classifier: is this candidate in the truth? None where the cases hold
        too few positives to learn from."""
        from sklearn.ensemble import HistGradientBoostingClassifier

        p = self.params
        features = np.concatenate([b[0] for b in blocks])
        labels = np.concatenate([b[1] for b in blocks])
        # case ids unique across the windows
        offsets = np.cumsum([0] + [int(b[2].max()) + 1 if len(b[2]) else 0 for b in blocks])
        groups = np.concatenate([b[2] + offsets[i] for i, b in enumerate(blocks)])
        if labels.sum() < 10 or (~labels).sum() < 10:
            return None
        # negatives are many and alike: a deterministic sample of them keeps training fast
        negatives = np.flatnonzero(~labels)
        budget = max(p["max_training_rows"] - int(labels.sum()), 1)
        if len(negatives) > budget:
            dropped = np.random.default_rng(p["seed"]).choice(negatives, size=len(negatives) - budget, replace=False)
            keep = np.ones(len(labels), dtype=bool)
            keep[dropped] = False
            features, labels, groups = features[keep], labels[keep], groups[keep]
        weights = None
        if p["balance_cases"]:
            # every case counts once, however many true items it holds (HR and NDCG are per case)
            positives = np.bincount(groups[labels], minlength=groups.max() + 1).astype(np.float64)
            weights = np.ones(len(labels))
            weights[labels] = positives[groups[labels]].mean() / positives[groups[labels]]
        model = HistGradientBoostingClassifier(
            max_iter=p["product_ranker_iterations"] if page == "product" and p["product_ranker_iterations"] else p["ranker_iterations"],
            learning_rate=0.06,
            max_leaf_nodes=31,
            min_samples_leaf=50,
            l2_regularization=1.0,
            early_stopping=False,
            random_state=p["seed"],
        )
        model.fit(features, labels, sample_weight=weights)
        model.n_rows_ = int(len(labels))
        return model

    def _search(self, requests, truth, metric: str, k: int = 10):
        """Steepest ascent over GRID, one signal's weight at a time, from the defaults;
        deterministic, and cheap: the signals are computed once and only re-weighted."""
        full = self.signals(requests)
        blocked = self._blocked(requests)
        relevant = np.zeros((len(requests), self.n_items), dtype=bool)
        for r, t in enumerate(truth):
            relevant[r, [self.item_index[i] for i in t if i in self.item_index]] = True
        sizes = np.maximum(relevant.sum(axis=1), 1)
        # only items in some signal's top 60 can reach a blend's top 10 in practice: search on
        # those candidates, duplicates masked out
        candidates = np.concatenate([_top_columns(full[c], 60) for c in COMPONENTS], axis=1)
        candidates = np.sort(candidates, axis=1)
        duplicate = np.zeros(candidates.shape, dtype=bool)
        duplicate[:, 1:] = candidates[:, 1:] == candidates[:, :-1]
        signals = {c: np.take_along_axis(full[c], candidates, axis=1) for c in COMPONENTS}
        blocked = np.take_along_axis(blocked, candidates, axis=1) | duplicate
        relevant = np.take_along_axis(relevant, candidates, axis=1)
        k = min(k, candidates.shape[1])
        discounts = 1.0 / np.log2(np.arange(2, k + 2))
        ideal = np.cumsum(discounts)[np.minimum(sizes, k) - 1]

        def quality(weights):
            scores = sum(w * signals[c] for c, w in weights.items() if w) + 1e-6 * signals["store"]
            scores = np.where(blocked, -np.inf, scores)
            top = _top_columns(scores, k)
            order = np.argsort(-np.take_along_axis(scores, top, axis=1), axis=1, kind="stable")
            top = np.take_along_axis(top, order, axis=1)
            hits = np.take_along_axis(relevant, top, axis=1) & np.isfinite(np.take_along_axis(scores, top, axis=1))
            if metric == "hr":
                return float(hits.any(axis=1).mean()) + 0.01 * float((hits @ discounts / ideal).mean())
            return float((hits @ discounts / ideal).mean())

        page = page_of(requests[0])
        weights = {c: DEFAULT_WEIGHTS.get(page, {}).get(c, 0.0) for c in COMPONENTS}
        live = [c for c in COMPONENTS if signals[c].any()]
        best = quality(weights)
        # steepest ascent: each round takes the single best change of one weight, until none helps
        for _ in range(8):
            trials = [{**weights, c: v} for c in live for v in GRID if v != weights[c]]
            scored = [(quality(t), -i, t) for i, t in enumerate(trials) if any(t.values())]
            if not scored:
                break
            top_quality, _, top = max(scored, key=lambda x: (x[0], x[1]))
            if top_quality <= best + 1e-6:
                break
            best, weights = top_quality, top
        return weights, best

    # -- scoring -------------------------------------------------------------------------------
    def signals(self, requests: list[Request]) -> dict[str, np.ndarray]:
        """Each signal as a (requests x items) matrix scaled to [0, 1] per request."""
        n = len(requests)
        inputs = self.input_items(requests)
        is_customer_page = np.array([r.scenario == "customer" for r in requests], dtype=bool)
        # on the customer page the inputs are the wish list; elsewhere the basket / viewed product
        every = np.arange(n)
        # (a batch of one page, as every POS request is, needs no row selection for its own side)
        shopping = inputs if not is_customer_page.any() else select_rows(inputs, np.where(is_customer_page, -1, every))
        wished = inputs if is_customer_page.all() else select_rows(inputs, np.where(is_customer_page, every, -1))
        history = self.histories(requests, self.presence)
        recent = self.histories(requests, self.recent)
        basket_raw = _times(shopping, self.basket_similarity)
        out = {
            "repeat": _dense(_row_max_normalise(self.histories(requests, self.repeat))),
            "recent": _scale_rows(recent),
            "basket_copurchase": _scale_rows(basket_raw),
            "customer_copurchase": _scale_rows(_times(shopping, self.customer_similarity)),
            "history_copurchase": _scale_rows(_times(history, self.customer_similarity)),
            "recent_copurchase": _scale_rows(_times(_row_max_normalise(recent), self.customer_similarity)),
            "wish_list": _scale_rows(wished.toarray() + 0.5 * _times(wished, self.basket_similarity)),
        }
        n_inputs = np.maximum(np.diff(shopping.indptr), 1)[:, None]
        together_raw = _times(shopping, self.together) / n_inputs
        recent_together_raw = _times(shopping, self.recent_together) / n_inputs
        out["together"] = _scale_rows(together_raw)
        out["recent_together"] = _scale_rows(recent_together_raw)
        # kept for the re-ranker's features
        self._basket_raw, self._together_raw, self._recent_together_raw = basket_raw, together_raw, recent_together_raw
        out["usual_with_basket"] = np.sqrt(out["repeat"] * out["basket_copurchase"])
        out["similar_baskets"] = np.zeros((n, self.n_items), dtype=np.float32)
        out["own_baskets"] = np.zeros((n, self.n_items), dtype=np.float32)
        shopper = np.flatnonzero(np.diff(shopping.indptr) > 0)  # the customer page has no basket
        for start in range(0, len(shopper), 500):  # chunks: bounded dense blocks of votes
            rows = shopper[start : start + 500]
            similar, own = self._basket_neighbours(select_rows(shopping, rows), [requests[r] for r in rows])
            out["similar_baskets"][rows], out["own_baskets"][rows] = similar, own
        trending = self.trending / max(float(self.trending.max()), 1e-9) if self.n_items else self.trending
        out["trending"] = np.broadcast_to(trending.astype(np.float32), (n, self.n_items))
        store = np.zeros((n, self.n_items), dtype=np.float32)
        for r, request in enumerate(requests):
            sellers = self.store_sellers.get(request.store_id)
            if sellers is not None and sellers.size and sellers.max() > 0:
                store[r] = sellers / sellers.max()
        out["store"] = store
        out["wish_category"] = self._wish_category(wished)
        return out

    def _wish_category(self, wished: sp.csr_matrix) -> np.ndarray:
        """The wish list's categories, their best sellers first; nothing without categories."""
        category_of = getattr(self, "category_of", None)
        if category_of is None or wished.nnz == 0:
            return np.zeros(wished.shape, dtype=np.float32)
        share = _dense(wished @ category_of)  # requests x categories: wished items per category
        in_category = _dense(share @ category_of.T)  # requests x items
        trending = self.trending / max(float(self.trending.max()), 1e-9)
        return _scale_rows(in_category * (0.5 + 0.5 * trending)[None, :])

    def _basket_neighbours(self, shopping: sp.csr_matrix, requests, neighbours: int = 100):
        """Session k-NN: cosine overlap of the basket with every past basket; the `neighbours` most
        similar (and, separately, all of the customer's own) vote for their items.

        Kept sparse throughout: a basket shares an item with a few thousand past baskets at most,
        and on a single POS request densifying all of them cost more than the vote itself."""
        if getattr(self, "baskets_by_item", None) is None:  # a champion pickled before it was kept
            self.baskets_by_item = self.baskets.T.tocsr()
        n = shopping.shape[0]
        overlap = (shopping @ self.baskets_by_item).tocsr()
        overlap.sum_duplicates()
        lengths = np.diff(overlap.indptr)
        rows = np.repeat(np.arange(n), lengths)
        baskets = overlap.indices
        sizes = np.sqrt(np.maximum(np.asarray(shopping.sum(axis=1)).ravel(), 1.0))
        values = (overlap.data * (self.basket_weight[baskets] / sizes[rows])).astype(np.float32)
        customers = self.customer_rows(requests)
        own = (customers[rows] >= 0) & (self.basket_customer[baskets] == customers[rows])
        # the `neighbours` best of each row, ties at the cut included
        near = np.ones(len(values), dtype=bool)
        if self.baskets.shape[0] > neighbours:
            for r in np.flatnonzero(lengths > neighbours):
                span = slice(overlap.indptr[r], overlap.indptr[r + 1])
                near[span] = values[span] >= np.partition(values[span], -neighbours)[-neighbours]
        near &= values > 0
        own &= values > 0
        # both votes in one product: rows 0..n-1 the neighbours, n..2n-1 the customer's own baskets
        vote_rows = np.concatenate([rows[near], rows[own] + n])
        vote_baskets = np.concatenate([baskets[near], baskets[own]])
        voters = sp.csr_matrix(
            (np.concatenate([values[near], values[own]]), vote_baskets, np.searchsorted(vote_rows, np.arange(2 * n + 1))),
            shape=(2 * n, self.baskets.shape[0]),
        )
        votes = _scale_rows(voters @ self.baskets)
        return votes[:n], votes[n:]

    def _blocked(self, requests: list[Request]) -> np.ndarray:
        blocked = np.zeros((len(requests), self.n_items), dtype=bool)
        for matrix, applies in (
            (self.input_items(requests), [r.excludes_input for r in requests]),
            (self.histories(requests, self.presence), [r.exclude_purchased for r in requests]),
        ):
            rows = np.repeat(np.arange(len(requests)), np.diff(matrix.indptr))
            pick = np.asarray(applies, dtype=bool)[rows]
            blocked[rows[pick], matrix.indices[pick]] = True
        return blocked

    def _blend(self, requests, signals) -> tuple[np.ndarray, np.ndarray]:
        """(scores, parts): each page's linear blend, and each signal's part in it."""
        pages = [page_of(r) for r in requests]
        parts = np.zeros((len(COMPONENTS), len(requests), self.n_items), dtype=np.float32)
        for c, component in enumerate(COMPONENTS):
            weight = np.array([self.weights[page][component] for page in pages], dtype=np.float32)[:, None]
            parts[c] = weight * signals[component]
        return parts.sum(axis=0), parts

    def _candidate_features(self, requests, signals=None, blend=None):
        """(rows, cols, features, blend): the candidate (request, item) pairs, never a blocked item,
        and their FEATURES."""
        if signals is None:
            signals = self.signals(requests)
        if blend is None:
            blend, _ = self._blend(requests, signals)
        blocked = self._blocked(requests)
        n = len(requests)
        # the product page (one viewed item, a whole basket to guess) gets its own, deeper candidate lists
        per_row = np.array(
            [self.params["product_candidates_per_signal"] if page_of(r) == "product" and self.params["product_candidates_per_signal"] else self.params["candidates_per_signal"] for r in requests],
            dtype=np.int64,
        )
        # the P(item | viewed item) features and candidates serve the product page only: on the other
        # pages they did not help on the validation window
        product = np.array([page_of(r) == "product" for r in requests], dtype=bool)
        all_rows, all_cols = [], []
        for per_signal, on_product in sorted({(int(a), bool(b)) for a, b in zip(per_row, product)}):
            group = np.flatnonzero((per_row == per_signal) & (product == on_product))
            deep = [c for c in COMPONENTS if c not in ("trending", "store") and (on_product or c not in PRODUCT_ONLY)]
            lists = [
                (np.stack([signals[c][group] for c in deep]), per_signal),  # one partition for them all
                (blend[group][None], 2 * per_signal),
                # trending and the store's best sellers: the same list for everyone, a few are enough
                (np.stack([signals["store"][group] + 1e-3 * signals["trending"][group], signals["trending"][group]]), per_signal // 2),
            ]
            for scores, depth in lists:
                top = _nominate(np.where(blocked[group], -1.0, scores), blocked[group], depth)
                all_rows.append(np.broadcast_to(group[None, :, None], top.shape).ravel())
                all_cols.append(top.ravel())
        # each (request, item) pair once, ordered by request then item
        pairs = np.unique(np.concatenate(all_rows) * self.n_items + np.concatenate(all_cols))
        rows, cols = pairs // self.n_items, pairs % self.n_items
        keep = ~blocked[rows, cols]
        rows, cols = rows[keep], cols[keep]

        features = np.empty((len(rows), len(FEATURES)), dtype=np.float32)
        for f, component in enumerate(COMPONENTS):
            features[:, f] = signals[component][rows, cols]
        extra = {name: len(COMPONENTS) + i for i, name in enumerate(EXTRA_FEATURES)}
        features[:, extra["blend"]] = blend[rows, cols]
        customers = self.customer_rows(requests)
        known = customers[rows] >= 0
        counts = np.zeros(len(rows), dtype=np.float32)
        # -1: never bought (sklearn's binning fails on an all-NaN column)
        last = np.full(len(rows), -1.0, dtype=np.float32)
        first = np.full(len(rows), -1.0, dtype=np.float32)
        if known.any():
            counts[known], last_known, first_known = self._purchase_stats(customers[rows[known]], cols[known])
            bought = last_known > 0
            last[np.flatnonzero(known)[bought]] = last_known[bought] - 1.0
            first[np.flatnonzero(known)[bought]] = first_known[bought] - 1.0
        features[:, extra["history_count"]] = counts
        features[:, extra["last_bought_days"]] = last
        interval = (first - last) / np.maximum(counts - 1.0, 1.0)
        features[:, extra["rebuy_due"]] = np.where(counts >= 2, last / np.maximum(interval, 1.0), -1.0)
        customer_baskets = np.where(customers >= 0, self.customer_baskets[np.maximum(customers, 0)] if len(self.customer_baskets) else 0, 0)
        features[:, extra["customer_baskets"]] = np.log1p(customer_baskets[rows])
        inputs = self.input_items(requests)
        features[:, extra["basket_size"]] = np.diff(inputs.indptr)[rows]
        features[:, extra["has_customer"]] = known
        features[:, extra["item_popularity"]] = self.item_log_popularity[cols]
        features[:, extra["item_trend"]] = self.item_trend[cols]
        features[:, extra["item_repeat_rate"]] = self.item_repeat_rate[cols]
        features[:, extra["item_age_days"]] = self.item_age[cols]
        features[:, extra["item_idle_days"]] = self.item_idle[cols]
        features[:, extra["item_basket_size"]] = self.item_basket_size[cols]
        input_popularity = _dense(inputs @ self.item_log_popularity[:, None]).ravel() / np.maximum(np.diff(inputs.indptr), 1)
        features[:, extra["input_popularity"]] = input_popularity[rows]
        features[:, extra["basket_copurchase_raw"]] = self._basket_raw[rows, cols]
        together = self._together_raw[rows, cols]
        item_counts = self.item_basket_count
        share = np.maximum(item_counts[cols], 1.0) / self.n_fit_baskets
        input_count = _dense(inputs @ item_counts[:, None]).ravel() / np.maximum(np.diff(inputs.indptr), 1)
        features[:, extra["together_raw"]] = together
        features[:, extra["recent_together_raw"]] = self._recent_together_raw[rows, cols]
        features[:, extra["together_lift"]] = np.log1p(together / share)
        features[:, extra["together_reverse"]] = together * input_count[rows] / np.maximum(item_counts[cols], 1.0)
        features[:, extra["together_rank"]] = _rank_within_rows(together, rows, n)
        for name in PRODUCT_ONLY:
            column = COMPONENTS.index(name) if name in COMPONENTS else extra[name]
            features[~product[rows], column] = 0.0
        features[:, extra["similar_baskets_rank"]] = _rank_within_rows(features[:, COMPONENTS.index("similar_baskets")], rows, n)
        features[:, extra["blend_rank"]] = _rank_within_rows(features[:, extra["blend"]], rows, n)
        return rows, cols, features, blend

    def _purchase_stats(self, customers: np.ndarray, items: np.ndarray):
        """(counts, last_bought, first_bought) of these (customer, item) pairs, 0 where never bought.
        The three matrices share one sparsity pattern: one lookup of the pairs' positions serves all."""
        position = self.__dict__.get("_pair_position")
        if position is None:
            same = all(
                np.array_equal(m.indptr, self.counts.indptr) and np.array_equal(m.indices, self.counts.indices)
                for m in (self.last_bought, self.first_bought)
            )
            position = self.counts.copy() if same else False
            if same:
                position.data = np.arange(1, position.nnz + 1, dtype=np.float64)
            self._pair_position = position
        if position is False or self.counts.nnz == 0:
            return tuple(np.asarray(m[customers, items]).ravel() for m in (self.counts, self.last_bought, self.first_bought))
        at = np.asarray(position[customers, items]).ravel().astype(np.int64) - 1
        return tuple(np.where(at >= 0, m.data[at], 0) for m in (self.counts, self.last_bought, self.first_bought))

    def score(self, requests: list[Request]) -> np.ndarray:
        if not len(requests):
            return np.zeros((0, self.n_items), np.float32)
        signals = self.signals(requests)
        scores, parts = self._blend(requests, signals)
        rankers = getattr(self, "rankers", {})
        ranked = np.array([RANKER_OF_PAGE[page_of(r)] in rankers for r in requests], dtype=bool)
        if ranked.any():
            # the linear blend ranks the tail in (0, 1); the re-ranked candidates come first, in 1 + (0, 1]
            peaks = scores.max(axis=1, keepdims=True)
            tail = np.divide(np.maximum(scores, 0), peaks, out=np.zeros_like(scores), where=peaks > 0) * 0.999
            rows, cols, features, _ = self._candidate_features(requests, signals, scores)
            final = np.where(ranked[:, None], tail, scores)
            pages = np.array([RANKER_OF_PAGE[page_of(r)] for r in requests], dtype=object)
            for page, ranker in rankers.items():
                pick = ranked[rows] & (pages[rows] == page)
                if pick.any():
                    chance = _chance(ranker, features[pick]).astype(np.float32)
                    share = float(self.params["blend_share"])
                    final[rows[pick], cols[pick]] = 1.0 + (1.0 - share) * chance + share * tail[rows[pick], cols[pick]] + 1e-6
            scores = final
        # kept for explain(): which signal put each item on the list
        self._cache = {request: (parts[:, r, :], signals) for r, request in enumerate(requests)}
        self._cache_rows = {request: r for r, request in enumerate(requests)}
        self._cache_inputs = (requests, self.input_items(requests), self.histories(requests, self.presence))
        return scores.astype(np.float32, copy=False)

    def __getstate__(self):
        # the explain() cache of the last batch is large and worthless once pickled
        state = super().__getstate__()
        for key in ("_cache", "_cache_rows", "_cache_inputs", "_basket_raw", "_together_raw", "_recent_together_raw", "_pair_position"):
            state.pop(key, None)
        return state

    # -- explaining ----------------------------------------------------------------------------
    def explain(self, request, items, scores_row):
        if request not in getattr(self, "_cache", {}):
            self.score([request])
        parts, signals = self._cache[request]
        r = self._cache_rows[request]
        _, inputs, history = self._cache_inputs
        # the signal that contributes most to the page's blend; where the page's weights give the
        # item nothing (the re-ranker found it), the strongest signal behind it
        weighted = parts[:, items]
        unweighted = np.stack([signals[c][r, items] for c in COMPONENTS])
        winners = np.where(weighted.max(axis=0) > 0, weighted.argmax(axis=0), unweighted.argmax(axis=0))
        no_signal = (weighted.max(axis=0) <= 0) & (unweighted.max(axis=0) <= 0)
        reasons = []
        for item, winner, nothing in zip(items, winners, no_signal):
            component = COMPONENTS[winner]
            if nothing:
                reasons.append("best seller")
            elif component in ("basket_copurchase", "recent_together", "together"):
                matrix = {"basket_copurchase": self.basket_similarity, "recent_together": self.recent_together, "together": self.together}[component]
                source = _top_source(row_items(inputs, r), matrix, item)
                reasons.append(f"bought together with {self.item_label(source)}" if source >= 0 else "bought together")
            elif component == "customer_copurchase":
                source = _top_source(row_items(inputs, r), self.customer_similarity, item)
                reasons.append(f"customers who buy {self.item_label(source)} also buy this" if source >= 0 else "bought together")
            elif component in ("similar_baskets", "own_baskets"):
                reasons.append("often in baskets like yours" if component == "similar_baskets" else "you bought this with these items before")
            elif component in ("history_copurchase", "recent_copurchase"):
                source = _top_source(row_items(history, r), self.customer_similarity, item)
                reasons.append(f"customers who buy {self.item_label(source)} also buy this" if source >= 0 else "for you")
            elif component == "wish_list":
                on_list = request.scenario == "customer" and self.item_ids[item] in request.product_ids
                if on_list:
                    reasons.append("on your wish list")
                else:
                    source = _top_source(row_items(inputs, r), self.basket_similarity, item)
                    reasons.append(f"goes with {self.item_label(source)} on your wish list" if source >= 0 else "goes with your wish list")
            elif component in ("repeat", "usual_with_basket", "recent"):
                c = self.customer_index.get(request.customer_id)
                bought = self.history[c, item] if c is not None else 0
                reasons.append(REASONS[component] if bought >= 2 or component == "recent" else "you bought this before")
            elif component == "store" and request.store_id is not None:
                reasons.append(f"best seller at {request.store_id}")
            else:
                reasons.append(REASONS[component])
        return reasons


def _top_source(sources: np.ndarray, similarity: np.ndarray, item: int) -> int:
    if len(sources) == 0:
        return -1
    column = similarity[sources, item]
    column = column.toarray().ravel() if sp.issparse(column) else np.asarray(column).ravel()
    return int(sources[np.argmax(column)])


def _reindex(source: TrainingData, target: TrainingData, values):
    """A per-item array of `source` (names, categories) in `target`'s item order."""
    if values is None:
        return None
    return np.array([values[source.item_index[i]] for i in target.item_ids], dtype=object)


def _wish_list_frame(data: TrainingData):
    """The wish lists of `data` as (customer_id, product_id) rows, for the validation window."""
    if data.wish_lists is None or data.wish_lists.nnz == 0:
        return None
    import polars as pl

    matrix = data.wish_lists.tocoo()
    return pl.DataFrame(
        {
            "customer_id": pl.Series([str(c) for c in data.customer_ids[matrix.row]], dtype=pl.String),
            "product_id": pl.Series([str(i) for i in data.item_ids[matrix.col]], dtype=pl.String),
        }
    )


def _with_customers(product_cases, basket_cases):
    """The product cases again, with the invoice's customer attached (the personalised product page)."""
    from workbench.evaluation.protocol import Cases

    cases = Cases("product_customer", [], [])
    for product, basket, truth in zip(product_cases.requests, basket_cases.requests, product_cases.truth):
        if basket.customer_id is not None:
            cases.requests.append(Request("product", basket.customer_id, product.product_ids, store_id=product.store_id))
            cases.truth.append(truth)
    return cases
