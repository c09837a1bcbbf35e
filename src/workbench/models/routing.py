"""A per-page champion: each POS page served by the candidate that won that page on validation.

`Routing` is a thin Recommender: it holds one fitted model per distinct candidate and hands each
request to the candidate of its page (product, basket, customer, or the customer page's
"discover" list, `customer_new_items`). Lists, scores and reasons are the candidate's own. It keeps
no state of its own after `fit`, so it is as safe to share between threads as its candidates.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from workbench.models.base import Recommendations, Recommender, Request
from workbench.models.champion.model import fit_in_shared_passes
from workbench.models.data import TrainingData

PAGES = ("product", "basket", "customer", "customer_new_items")


def page_of(request: Request) -> str:
    """The POS page a request comes from, as the protocol's scenarios name them."""
    if request.scenario == "customer" and request.exclude_purchased:
        return "customer_new_items"
    return request.scenario


class Routing(Recommender):
    """routes: {page: candidate name}, every page of PAGES; candidates: {candidate name:
    {"algorithm": registry name, "params": {...}}} for each candidate a route names. Without
    either, every page goes to the simplest candidate there is, the best sellers."""

    name = "routing"

    def __init__(self, routes: dict | None = None, candidates: dict | None = None):
        if routes is None and candidates is None:
            routes, candidates = dict.fromkeys(PAGES, "best_sellers"), {"best_sellers": {"algorithm": "best_sellers"}}
        routes, candidates = dict(routes or {}), {k: dict(v) for k, v in (candidates or {}).items()}
        missing = [p for p in PAGES if p not in routes]
        if missing:
            raise ValueError(f"routes name no candidate for page(s) {missing}; every page of {PAGES} needs one")
        unknown_pages = sorted(set(routes) - set(PAGES))
        if unknown_pages:
            raise ValueError(f"routes name unknown page(s) {unknown_pages}; pages are {PAGES}")
        undefined = sorted({c for c in routes.values() if c not in candidates})
        if undefined:
            raise ValueError(f"routes name candidate(s) {undefined} that `candidates` does not define")
        for name, spec in candidates.items():
            if "algorithm" not in spec:
                raise ValueError(f"candidate {name!r} needs an 'algorithm' (and optionally 'params')")
            spec.setdefault("params", {})
        super().__init__(routes=routes, candidates={c: candidates[c] for c in dict.fromkeys(routes.values())})

    @classmethod
    def from_fitted(cls, routes: dict, models: dict[str, Recommender]) -> "Routing":
        """A routing over candidates fitted already (on the same training data)."""
        candidates = {name: {"algorithm": m.name, "params": dict(getattr(m, "params", {}) or {})} for name, m in models.items()}
        routing = cls(routes, candidates)
        used = [models[c] for c in routing.params["candidates"]]
        reference = used[0]
        for model in used[1:]:
            if len(model.item_ids) != len(reference.item_ids) or (model.item_ids != reference.item_ids).any():
                raise ValueError(f"candidate {model.name!r} was fitted on other products than {reference.name!r}")
        routing._adopt(reference, {c: models[c] for c in routing.params["candidates"]})
        return routing

    def _adopt(self, reference: Recommender, models: dict[str, Recommender]) -> None:
        for attribute in ("item_ids", "item_index", "customer_index", "history", "wish_lists", "best_sellers",
                          "item_baskets", "n_baskets", "item_names"):
            setattr(self, attribute, getattr(reference, attribute, None))
        self.models = models

    def fit(self, data: TrainingData) -> "Routing":
        from workbench.models import make_model

        models = {name: make_model(spec["algorithm"], **spec["params"]) for name, spec in self.params["candidates"].items()}
        # a champion and its blend alone with the same settings: one fit, their signals held once
        fit_in_shared_passes(models, data)
        self._adopt(next(iter(models.values())), models)
        return self

    @property
    def routes(self) -> dict[str, str]:
        return self.params["routes"]

    def model_of(self, request: Request) -> Recommender:
        return self.models[self.routes[page_of(request)]]

    def _groups(self, requests: Sequence[Request]) -> dict[str, list[int]]:
        groups: dict[str, list[int]] = {}
        for r, request in enumerate(requests):
            groups.setdefault(self.routes[page_of(request)], []).append(r)
        return groups

    def score(self, requests: Sequence[Request]) -> np.ndarray:
        out = np.zeros((len(requests), self.n_items), dtype=np.float32)
        for name, rows in self._groups(requests).items():
            out[rows] = self.models[name].score([requests[r] for r in rows])
        return out

    def recommend(self, requests: Sequence[Request], k: int | None = None) -> list[Recommendations]:
        results: list[Recommendations | None] = [None] * len(requests)
        for name, rows in self._groups(requests).items():
            for r, recommendations in zip(rows, self.models[name].recommend([requests[r] for r in rows], k)):
                results[r] = recommendations
        return results

    def explain(self, request: Request, items: np.ndarray, scores_row: np.ndarray) -> list[str]:
        return self.model_of(request).explain(request, items, scores_row)
