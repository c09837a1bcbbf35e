"""Best sellers and trending items: the baseline every POS has, and the fallback of every model."""

from __future__ import annotations

import numpy as np

from workbench.models.base import Recommender, Request
from workbench.models.data import TrainingData


class BestSellers(Recommender):
    """Baskets per item, optionally over a recency half-life ("trending") and per store/channel."""

    name = "best_sellers"

    def __init__(self, half_life_days: float | None = None, per_store: bool = True):
        super().__init__(half_life_days=half_life_days, per_store=per_store)

    def _fit(self, data: TrainingData) -> None:
        half_life = self.params["half_life_days"]
        self.popularity = data.item_popularity(half_life)
        self.store_popularity = {}
        if self.params["per_store"]:
            for store in sorted({s for s in data.basket_store if s is not None}):
                self.store_popularity[store] = data.item_popularity(half_life, store_id=store)

    def score(self, requests: list[Request]) -> np.ndarray:
        top = max(float(self.popularity.max()), 1e-9)
        rows = []
        for request in requests:
            store = self.store_popularity.get(request.store_id)
            if store is not None and store.max() > 0:
                # the store's own best sellers first, the legal entity's to break ties
                rows.append(store / store.max() + 1e-3 * self.popularity / top)
            else:
                rows.append(self.popularity / top)
        return np.vstack(rows).astype(np.float32) if rows else np.zeros((0, self.n_items), np.float32)

    def explain(self, request, items, scores_row):
        trending = bool(self.params["half_life_days"])
        where = f" at store {request.store_id}" if request.store_id in self.store_popularity else ""
        return [("trending" if trending else "best seller") + where] * len(items)


class Trending(BestSellers):
    """Best sellers of the last weeks: each basket counts half as much per `half_life_days` of age,
    so seasonal items (Christmas, summer) climb as soon as they start selling."""

    name = "trending"

    def __init__(self, half_life_days: float | None = 14.0, per_store: bool = True):
        super().__init__(half_life_days=half_life_days, per_store=per_store)
