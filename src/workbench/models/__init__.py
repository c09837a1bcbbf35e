"""Recommendation algorithms behind one small interface (see base.Recommender)."""

from workbench.models.base import SCENARIOS, Recommendations, Recommender, Request
from workbench.models.data import TrainingData
from workbench.models.popularity import BestSellers

MODELS = {
    "best_sellers": BestSellers,
}


def make_model(name: str, **params) -> Recommender:
    """A model by its registry name, with its hyperparameters."""
    if name not in MODELS:
        raise ValueError(f"unknown algorithm {name!r}; known: {sorted(MODELS)}")
    return MODELS[name](**params)


__all__ = ["MODELS", "SCENARIOS", "Recommendations", "Recommender", "Request", "TrainingData", "make_model"]
