"""Offline evaluation and model selection: metrics, the temporal protocol of ../shared/EVALUATION.md,
the validation windows before the split, choosing on validation, and the uncertainty of a figure.

Layers: this package may use `workbench.models`; it never imports tracking, serving or the dashboard.
"""

from workbench.evaluation import metrics
from workbench.evaluation.metrics import HEADLINE, HEADLINE_LABELS, headline
from workbench.evaluation.protocol import (
    MAX_BASKETS,
    MAX_CUSTOMERS,
    Cases,
    build_cases,
    evaluate,
    evaluate_per_case,
    last_days_start,
    temporal_split,
    validation_split,
    wish_lists_before,
    without_store,
)
from workbench.evaluation.uncertainty import Interval, Margin, bootstrap_interval, headline_uncertainty, paired_bootstrap
from workbench.evaluation.windows import Fold, ValidationPlan, Window, folds, plan_validation, purchase_cycle_days

__all__ = [
    "HEADLINE",
    "HEADLINE_LABELS",
    "MAX_BASKETS",
    "MAX_CUSTOMERS",
    "Cases",
    "Fold",
    "Interval",
    "Margin",
    "ValidationPlan",
    "Window",
    "bootstrap_interval",
    "build_cases",
    "evaluate",
    "evaluate_per_case",
    "folds",
    "headline",
    "headline_uncertainty",
    "last_days_start",
    "metrics",
    "paired_bootstrap",
    "plan_validation",
    "purchase_cycle_days",
    "temporal_split",
    "validation_split",
    "wish_lists_before",
    "without_store",
]
