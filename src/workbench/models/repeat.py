"""The customer's own repeat purchases: what a regular comes back for."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from workbench.models.base import Recommender, Request
from workbench.models.data import TrainingData


class RepeatPurchases(Recommender):
    """Score = the customer's baskets holding the item, each weighted by recency (half-life), so a
    product bought every month outranks one bought a lot last year. No customer, no signal: the
    POS then shows best sellers."""

    name = "repeat"

    def __init__(self, half_life_days: float | None = 90.0, use_quantity: bool = False):
        super().__init__(half_life_days=half_life_days, use_quantity=use_quantity)

    def _fit(self, data: TrainingData) -> None:
        weights = data.decay(self.params["half_life_days"])
        if self.params["use_quantity"]:
            # a case of 24 counts more than one unit, but sub-linearly: bulk buys are not loyalty
            weights = weights * np.log1p(data.quantity)
        known = data.customer >= 0
        self.affinity = sp.csr_matrix(
            (weights[known], (data.customer[known], data.item[known])),
            shape=(data.n_customers, data.n_items),
            dtype=np.float32,
        )

    def score(self, requests: list[Request]) -> np.ndarray:
        history = self.histories(requests, self.affinity).copy()  # the batch's rows are shared: add to a copy
        # among items bought equally often, the one everybody buys is the likelier re-buy
        tie_break = self.best_sellers / max(float(self.best_sellers.max()), 1e-9) * 1e-3
        history.data += tie_break[history.indices] * (history.data > 0)
        return history.toarray()

    def explain(self, request, items, scores_row):
        c = self.customer_index.get(request.customer_id)
        counts = self.history[c].toarray().ravel()[items] if c is not None else np.zeros(len(items))
        return ["you buy this regularly" if n >= 2 else "you bought this before" for n in counts]
