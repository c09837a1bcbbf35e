"""Recommendation algorithms behind one small interface (see base.Recommender)."""

from workbench.models.base import SCENARIOS, Recommendations, Recommender, Request
from workbench.models.data import TrainingData
from workbench.models.champion import Blend, Champion
from workbench.models.factorization import ALS, BPR
from workbench.models.item_to_item import EASE, SAR, ItemKNN
from workbench.models.popularity import BestSellers, Trending
from workbench.models.repeat import RepeatPurchases
from workbench.models.routing import Routing

MODELS = {
    "best_sellers": BestSellers,
    "trending": Trending,
    "repeat": RepeatPurchases,
    "sar": SAR,
    "item_knn": ItemKNN,
    "ease": EASE,
    "als": ALS,
    "bpr": BPR,
    # the champion's blend without its re-rankers: where a retailer's few cases teach them little
    "blend": Blend,
    "champion": Champion,
    # the per-page champion 04_evaluate registers: each POS page served by its validation winner
    "routing": Routing,
}


def make_model(name: str, **params) -> Recommender:
    """A model by its registry name, with its hyperparameters."""
    if name not in MODELS:
        raise ValueError(f"unknown algorithm {name!r}; known: {sorted(MODELS)}")
    return MODELS[name](**params)


__all__ = ["MODELS", "SCENARIOS", "Recommendations", "Recommender", "Request", "TrainingData", "make_model"]
