"""The offline protocol of ../shared/EVALUATION.md: temporal split, the POS scenarios, evaluation.

Cases are plain `Request`s, and `evaluate` scores them through `model.recommend`, so what is
measured is what the POS would be served: input items removed, best sellers filling short lists.
Wish lists are cut at the split: a case sees only entries added before it (`wish_lists_before`).
The splits and cases themselves are defined in `workbench.models.cases` and re-exported here.
The validation windows before the split, where every choice is made, are in `windows`.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd

from workbench.evaluation import metrics
from workbench.models.base import Recommender, Request

# the cases and splits live one layer down, where the champion's own validation windows use them too;
# re-exported here, where the protocol has always been imported from
from workbench.models.cases import (  # noqa: F401
    MAX_BASKETS,
    MAX_CUSTOMERS,
    SCENARIO_NAMES,
    Cases,
    _like,
    _polars,
    build_cases,
    last_days_start,
    temporal_split,
    validation_split,
    wish_lists_before,
)


def recommend_all(model: Recommender, requests: list[Request], k: int = 10, batch_size: int = 1000) -> list[list[str]]:
    """The item ids the POS would show for each request, scored in batches (one dense block each)."""
    lists = []
    for start in range(0, len(requests), batch_size):
        lists.extend(r.item_ids for r in model.recommend(requests[start : start + batch_size], k))
    return lists


def without_store(cases: dict[str, Cases]) -> dict[str, Cases]:
    """The same cases with no store id: what the peers of EVALUATION.md are given."""
    return {
        name: Cases(c.scenario, [replace(r, store_id=None) for r in c.requests], list(c.truth)) for name, c in cases.items()
    }


def evaluate_per_case(
    model: Recommender, cases: dict[str, Cases], k: int = 10, batch_size: int = 1000
) -> tuple[pd.DataFrame, dict[str, dict[str, np.ndarray]]]:
    """(`evaluate`'s table, {scenario: {metric: value of each case}}): the per-case values are what
    bootstrap intervals and paired comparisons resample."""
    popularity = dict(zip((str(i) for i in model.item_ids), model.item_baskets))
    rows, per_case = [], {}
    for scenario, scenario_cases in cases.items():
        recommended = recommend_all(model, scenario_cases.requests, k, batch_size)
        truth = scenario_cases.truth
        values = {m: metrics.per_case(m, recommended, truth, k) for m in metrics.CASE_METRICS} if len(truth) else {
            m: np.zeros(0) for m in metrics.CASE_METRICS
        }
        per_case[scenario] = values
        rows.append(
            {
                "scenario": scenario,
                "n_cases": len(scenario_cases),
                **{m: float(v.mean()) if len(v) else float("nan") for m, v in values.items()},
                "coverage": metrics.catalog_coverage(recommended, model.n_items, k),
                "novelty": metrics.novelty(recommended, popularity, model.n_baskets, k),
            }
        )
    columns = ["scenario", "n_cases", "precision", "recall", "ndcg", "map", "hr", "coverage", "novelty"]
    return pd.DataFrame(rows, columns=columns), per_case


def evaluate(model: Recommender, cases: dict[str, Cases], k: int = 10, batch_size: int = 1000) -> pd.DataFrame:
    """One row per scenario: scenario, n_cases, precision, recall, ndcg, map, hr, coverage, novelty."""
    return evaluate_per_case(model, cases, k, batch_size)[0]
