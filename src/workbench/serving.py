"""Kept for models registered before the POS model moved to `workbench.pos_model`: MLflow unpickles
their wrapper by the module path it was logged under. New code imports `workbench.pos_model`."""

from workbench.pos_model import PosRecommenderModel  # noqa: F401
