"""The champion: one blend of the signals each POS page needs, weighted per page.

Repeat purchases rule the customer page (retail customers re-buy), co-purchase structure rules the
transaction and product pages, and what is selling right now fills the rest. Each signal is scaled
to [0, 1] per request, and the page's weights mix them. The weights are not guessed: `fit` tunes
them on the last `validation_days` of the training data (the protocol of EVALUATION.md one period
earlier), by a small deterministic coordinate search, then refits the signals on all the data.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from workbench.models.base import Recommender, Request
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
    "similar_baskets",  # what completed the most similar past baskets (session k-nearest-neighbours)
    "own_baskets",  # what completed this customer's own past baskets like this one
    "trending",
    "store",  # the store's own recent best sellers
    "wish_list",
)
# the pages the weights are tuned for; "product_customer" = product page with a customer attached
PAGES = ("customer", "customer_new_items", "basket", "product", "product_customer")
REASONS = {
    "repeat": "you buy this regularly",
    "usual_with_basket": "you buy this regularly",
    "recent": "you bought this recently",
    "trending": "trending now",
    "store": "best seller",
    "wish_list": "on your wish list",
}
# the metric each page is tuned for, as in EVALUATION.md's targets
TUNING_METRIC = {"customer": "ndcg", "customer_new_items": "ndcg", "basket": "hr", "product": "hr", "product_customer": "hr"}
GRID = (0.0, 0.03, 0.1, 0.2, 0.35, 0.5, 0.75, 1.0, 1.5, 2.5)

DEFAULT_WEIGHTS = {
    "customer": {"repeat": 1.0, "recent": 0.2, "history_copurchase": 0.2, "trending": 0.1, "wish_list": 0.5},
    "customer_new_items": {"history_copurchase": 1.0, "trending": 0.5, "wish_list": 0.5},
    "basket": {"basket_copurchase": 1.0, "repeat": 0.35, "trending": 0.1},
    "product": {"basket_copurchase": 1.0, "customer_copurchase": 0.5, "trending": 0.2},
    "product_customer": {"basket_copurchase": 1.0, "customer_copurchase": 0.5, "repeat": 0.2, "trending": 0.2},
}


def page_of(request: Request) -> str:
    if request.scenario == "customer":
        return "customer_new_items" if request.exclude_purchased else "customer"
    if request.scenario == "product" and request.customer_id is not None:
        return "product_customer"
    return request.scenario


def _scale_rows(scores: np.ndarray) -> np.ndarray:
    """Each row to [0, 1] by its maximum; negative (EASE's "unlikely") counts as no signal."""
    scores = np.maximum(scores, 0.0)
    peaks = scores.max(axis=1, keepdims=True)
    return np.divide(scores, peaks, out=np.zeros_like(scores), where=peaks > 0)


class Champion(Recommender):
    """Blend of repeat purchases, co-purchase (EASE on baskets for the basket/viewed product; EASE on
    customers for the history), trending and store best sellers, and the wish list."""

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
        max_tuning_cases: int = 2000,
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
            seed=seed,
        )

    # -- fitting -------------------------------------------------------------------------------
    def _fit(self, data: TrainingData) -> None:
        p = self.params
        weights = p["weights"]
        self.tuning_report = None
        if weights is None and p["tune"]:
            weights, self.tuning_report = self._tune(data)
        self.weights = {page: {c: float((weights or DEFAULT_WEIGHTS).get(page, {}).get(c, 0.0)) for c in COMPONENTS} for page in PAGES}
        self._fit_signals(data)

    def _fit_signals(self, data: TrainingData) -> None:
        p = self.params
        self.repeat = data.customer_items(p["repeat_half_life_days"])
        self.recent = data.customer_items(p["recent_half_life_days"])
        self.presence = data.customer_items(None)
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
        self.basket_weight = recency / np.sqrt(sizes)
        self.basket_customer = data.basket_customer

    def _tune(self, data: TrainingData):
        # imported here: evaluation depends on models, not the other way round
        from workbench.evaluation.protocol import build_cases, validation_split

        p = self.params
        fit_part, validation = validation_split(data.to_interactions(), days=p["validation_days"])
        inner = Champion(**{**p, "tune": False, "weights": DEFAULT_WEIGHTS})
        inner.fit(TrainingData.from_interactions(fit_part, reference_time=validation["time"].min()))
        cases = build_cases(fit_part, validation, seed=p["seed"], max_baskets=p["max_tuning_cases"])
        cases["product_customer"] = _with_customers(cases["product"], cases["basket"])
        weights, report = {}, {}
        for page in PAGES:
            weights[page], report[page] = inner._search(cases[page].requests, cases[page].truth, TUNING_METRIC[page])
        return weights, report

    def _search(self, requests, truth, metric: str, k: int = 10):
        """Steepest ascent over GRID, one signal's weight at a time, from the defaults;
        deterministic, and cheap: the signals are computed once and only re-weighted."""
        full = self.signals(requests)
        blocked = self._blocked(requests)
        relevant = sp.csr_matrix(
            (np.ones(sum(len(t) for t in truth), dtype=np.float32),
             ([r for r, t in enumerate(truth) for _ in t], [self.item_index[i] for t in truth for i in t])),
            shape=(len(requests), self.n_items),
        ).toarray() > 0
        sizes = relevant.sum(axis=1)
        # only items in some signal's top 60 can reach a blend's top 10 in practice: search on
        # those candidates (a tenth of the catalog), duplicates masked out
        if self.n_items > 120:
            candidates = np.concatenate([np.argpartition(-full[c], 60, axis=1)[:, :60] for c in COMPONENTS], axis=1)
        else:
            candidates = np.broadcast_to(np.arange(self.n_items), (len(requests), self.n_items))
        candidates = np.sort(candidates, axis=1)
        duplicate = np.zeros(candidates.shape, dtype=bool)
        duplicate[:, 1:] = candidates[:, 1:] == candidates[:, :-1]
        signals = {c: np.take_along_axis(full[c], candidates, axis=1) for c in COMPONENTS}
        blocked = np.take_along_axis(blocked, candidates, axis=1) | duplicate
        relevant = np.take_along_axis(relevant, candidates, axis=1)
        discounts = 1.0 / np.log2(np.arange(2, k + 2))
        ideal = np.cumsum(discounts)[np.minimum(sizes, k) - 1]

        def quality(weights):
            scores = sum(w * signals[c] for c, w in weights.items() if w) + 1e-6 * signals["store"]
            scores = np.where(blocked, -np.inf, scores)
            top = np.argpartition(-scores, k, axis=1)[:, :k] if scores.shape[1] > k else np.broadcast_to(np.arange(scores.shape[1]), scores.shape)
            order = np.argsort(-np.take_along_axis(scores, top, axis=1), axis=1, kind="stable")
            top = np.take_along_axis(top, order, axis=1)
            hits = np.take_along_axis(relevant, top, axis=1)
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
            top_quality, _, top = max(scored, key=lambda x: (x[0], x[1]))
            if top_quality <= best + 1e-6:
                break
            best, weights = top_quality, top
        return weights, best

    # -- scoring -------------------------------------------------------------------------------
    def signals(self, requests: list[Request]) -> dict[str, np.ndarray]:
        """Each signal as a (requests x items) matrix scaled to [0, 1] per request."""
        inputs = self.input_items(requests)
        is_customer_page = np.array([r.scenario == "customer" for r in requests])
        # on the customer page the inputs are the wish list; elsewhere the basket / viewed product
        shopping = sp.diags((~is_customer_page).astype(np.float32)) @ inputs
        wished = sp.diags(is_customer_page.astype(np.float32)) @ inputs
        history = self.histories(requests, self.presence)
        repeat = _row_max_normalise(self.histories(requests, self.repeat))
        out = {
            "repeat": repeat.toarray(),
            "recent": _scale_rows(self.histories(requests, self.recent).toarray()),
            "basket_copurchase": _scale_rows(np.asarray(shopping @ self.basket_similarity)),
            "customer_copurchase": _scale_rows(np.asarray(shopping @ self.customer_similarity)),
            "history_copurchase": _scale_rows(np.asarray(history @ self.customer_similarity)),
            "recent_copurchase": _scale_rows(np.asarray(_row_max_normalise(self.histories(requests, self.recent)) @ self.customer_similarity)),
            "wish_list": _scale_rows(wished.toarray() + 0.5 * np.asarray(wished @ self.basket_similarity)),
        }
        out["usual_with_basket"] = np.sqrt(out["repeat"] * out["basket_copurchase"])
        out["similar_baskets"] = np.zeros((len(requests), self.n_items), dtype=np.float32)
        out["own_baskets"] = np.zeros((len(requests), self.n_items), dtype=np.float32)
        shopper = np.flatnonzero(np.diff(shopping.indptr) > 0)  # the customer page has no basket
        for start in range(0, len(shopper), 500):  # chunks: one dense block of baskets each
            rows = shopper[start : start + 500]
            similar, own = self._basket_neighbours(shopping[rows], [requests[r] for r in rows])
            out["similar_baskets"][rows], out["own_baskets"][rows] = similar, own
        trending = self.trending / max(float(self.trending.max()), 1e-9)
        out["trending"] = np.broadcast_to(trending, (len(requests), self.n_items)).astype(np.float32)
        store = np.zeros((len(requests), self.n_items), dtype=np.float32)
        for r, request in enumerate(requests):
            sellers = self.store_sellers.get(request.store_id)
            if sellers is not None and sellers.max() > 0:
                store[r] = sellers / sellers.max()
        out["store"] = store
        return out

    def _basket_neighbours(self, shopping: sp.csr_matrix, requests, neighbours: int = 100):
        """Session k-NN: cosine overlap of the basket with every past basket; the `neighbours` most
        similar (and, separately, all of the customer's own) vote for their items."""
        overlap = np.asarray((shopping @ self.baskets.T).toarray(), dtype=np.float32)
        sizes = np.sqrt(np.maximum(np.asarray(shopping.sum(axis=1)).ravel(), 1.0))[:, None]
        overlap *= self.basket_weight[None, :] / sizes
        own = np.zeros_like(overlap)
        customers = self.customer_rows(requests)
        for r in np.flatnonzero(customers >= 0):
            mine = self.basket_customer == customers[r]
            own[r, mine] = overlap[r, mine]
        if overlap.shape[1] > neighbours:
            cut = np.partition(overlap, -neighbours, axis=1)[:, -neighbours][:, None]
            overlap[overlap < cut] = 0.0
        return (
            _scale_rows((sp.csr_matrix(overlap) @ self.baskets).toarray()),
            _scale_rows((sp.csr_matrix(own) @ self.baskets).toarray()),
        )

    def _blocked(self, requests: list[Request]) -> np.ndarray:
        blocked = np.zeros((len(requests), self.n_items), dtype=bool)
        inputs = self.input_items(requests)
        history = self.histories(requests, self.presence)
        for r, request in enumerate(requests):
            if request.excludes_input:
                blocked[r, inputs[r].indices] = True
            if request.exclude_purchased:
                blocked[r, history[r].indices] = True
        return blocked

    def score(self, requests: list[Request]) -> np.ndarray:
        if not len(requests):
            return np.zeros((0, self.n_items), np.float32)
        signals = self.signals(requests)
        pages = [page_of(r) for r in requests]
        scores = np.zeros((len(requests), self.n_items), dtype=np.float32)
        parts = np.zeros((len(COMPONENTS), len(requests), self.n_items), dtype=np.float32)
        for c, component in enumerate(COMPONENTS):
            weight = np.array([self.weights[page][component] for page in pages], dtype=np.float32)[:, None]
            parts[c] = weight * signals[component]
            scores += parts[c]
        # kept for explain(): which signal put each item on the list
        self._cache = {request: (parts[:, r, :], signals) for r, request in enumerate(requests)}
        self._cache_rows = {request: r for r, request in enumerate(requests)}
        self._cache_inputs = (requests, self.input_items(requests), self.histories(requests, self.presence))
        return scores

    # -- explaining ----------------------------------------------------------------------------
    def explain(self, request, items, scores_row):
        if request not in self._cache:
            self.score([request])
        parts, _ = self._cache[request]
        r = self._cache_rows[request]
        _, inputs, history = self._cache_inputs
        winners = parts[:, items].argmax(axis=0)
        reasons = []
        for item, winner in zip(items, winners):
            component = COMPONENTS[winner]
            if component == "basket_copurchase":
                source = _top_source(inputs[r].indices, self.basket_similarity, item)
                reasons.append(f"bought together with {self.item_label(source)}" if source >= 0 else "bought together")
            elif component == "customer_copurchase":
                source = _top_source(inputs[r].indices, self.customer_similarity, item)
                reasons.append(f"customers who buy {self.item_label(source)} also buy this" if source >= 0 else "bought together")
            elif component in ("similar_baskets", "own_baskets"):
                reasons.append("often in baskets like yours" if component == "similar_baskets" else "you bought this with these items before")
            elif component in ("history_copurchase", "recent_copurchase"):
                source = _top_source(history[r].indices, self.customer_similarity, item)
                reasons.append(f"customers who buy {self.item_label(source)} also buy this" if source >= 0 else "for you")
            elif component == "wish_list":
                on_list = request.scenario == "customer" and self.item_ids[item] in request.product_ids
                if on_list:
                    reasons.append("on your wish list")
                else:
                    source = _top_source(inputs[r].indices, self.basket_similarity, item)
                    reasons.append(f"goes with {self.item_label(source)} on your wish list")
            elif component in ("repeat", "usual_with_basket") and self.history[self.customer_index[request.customer_id], item] < 2:
                reasons.append("you bought this before")
            elif component == "store" and request.store_id is not None:
                reasons.append(f"best seller at {request.store_id}")
            else:
                reasons.append(REASONS[component])
        return reasons


def _top_source(sources: np.ndarray, similarity: np.ndarray, item: int) -> int:
    if len(sources) == 0:
        return -1
    return int(sources[np.argmax(similarity[sources, item])])


def _with_customers(product_cases, basket_cases):
    """The product cases again, with the invoice's customer attached (the personalised product page)."""
    from workbench.evaluation.protocol import Cases

    cases = Cases("product_customer", [], [])
    for product, basket, truth in zip(product_cases.requests, basket_cases.requests, product_cases.truth):
        if basket.customer_id is not None:
            cases.requests.append(Request("product", basket.customer_id, product.product_ids, store_id=product.store_id))
            cases.truth.append(truth)
    return cases
