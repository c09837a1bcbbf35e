"""Leakage guards: what happens after the split (or after a validation window) never changes a choice.

Each test builds a dataset, then rewrites the part a choice must not see (the test window,
wish-list entries added after the split, the data after a validation window) into something
very different, and asserts the outcome is identical. A control rewrites data the choice may
see, and asserts the outcome does change: the probe is sensitive enough to catch a leak.
"""

from datetime import timedelta

import numpy as np
import pandas as pd
import polars as pl
import pytest
from helpers import tiny_interactions

from workbench.evaluation import build_cases, folds, plan_validation, temporal_split
from workbench.evaluation.search import search
from workbench.evaluation.selection import choose_per_page, headline_table, validate

SPLIT = pd.Timestamp("2024-04-10")
ALGORITHMS = ("best_sellers", "repeat", "ease")


def base() -> pl.DataFrame:
    return pl.from_pandas(tiny_interactions(seed=3, n_baskets=700))


def scramble(frame: pl.DataFrame, start, end=None, seed: int = 9) -> pl.DataFrame:
    """The lines in [start, end) with other products and customers: a different world there."""
    inside = pl.col("time") >= pd.Timestamp(start).to_pydatetime()
    if end is not None:
        inside = inside & (pl.col("time") < pd.Timestamp(end).to_pydatetime())
    rng = np.random.default_rng(seed)
    products = np.array(sorted(frame["product_id"].unique().to_list()))
    customers = np.array(sorted(frame["customer_id"].drop_nulls().unique().to_list()))
    n = frame.height
    return frame.with_columns(
        pl.when(inside).then(pl.Series(rng.choice(products, n))).otherwise(pl.col("product_id")).alias("product_id"),
        pl.when(inside).then(pl.Series(rng.choice(customers, n))).otherwise(pl.col("customer_id")).alias("customer_id"),
    ).unique(["basket_id", "product_id"], keep="first", maintain_order=True)


def wish_lists(extra_after_split: bool) -> pl.DataFrame:
    rows = [("C001", "P003", SPLIT - timedelta(days=40)), ("C002", "P010", SPLIT - timedelta(days=3))]
    if extra_after_split:
        rows += [(f"C{c:03d}", f"P{p:03d}", SPLIT + timedelta(hours=1 + p)) for c in range(30) for p in range(0, 40, 3)]
    return pl.DataFrame(rows, schema=["customer_id", "product_id", "added_at"], orient="row")


def selection_outcome(interactions, wished, n_trials: int = 3) -> dict:
    """Everything tuning and choosing produce: the plan, each search's trials, the routes."""
    # test_days past the windows' length: the older window's customer cases look ahead to the split
    plan = plan_validation(interactions, SPLIT, min_cases=30, min_customer_cases=10, test_days=30)
    assert plan.customer_end(plan.windows[0]) > plan.windows[0].end
    made = folds(interactions, plan, wished, seed=0)
    searches = {a: search(a, made, n_trials=n_trials, seed=0) for a in ALGORITHMS}
    table = headline_table({a: r.best for a, r in searches.items()})
    return {
        "plan": plan.as_dict(),
        "trials": {a: [(t.params, round(t.objective, 12)) for t in r.trials] for a, r in searches.items()},
        "validation": table.round(12).to_dict("records"),
        "routes": choose_per_page(table, per_case={a: r.best.headline_cases() for a, r in searches.items()}).routes,
    }


@pytest.fixture(scope="module")
def reference():
    return selection_outcome(base(), wish_lists(False))


def test_the_test_window_and_later_wish_lists_never_change_tuning_or_the_choice(reference):
    leaked = selection_outcome(scramble(base(), SPLIT), wish_lists(True))
    assert leaked == reference


def test_the_probe_is_sensitive_to_data_before_the_split(reference):
    changed = selection_outcome(scramble(base(), SPLIT - timedelta(days=12), SPLIT), wish_lists(False))
    assert changed["validation"] != reference["validation"]


def test_a_validation_window_never_sees_the_data_after_it():
    data = base()
    plan = plan_validation(data, SPLIT, min_cases=30, min_customer_cases=10)
    assert len(plan.windows) == 2
    first_end = plan.windows[0].end
    reference = validate("ease", folds(data, plan)[:1]).table
    later = validate("ease", folds(scramble(data, first_end), plan)[:1]).table
    pd.testing.assert_frame_equal(reference, later)
    # control: the same rewrite inside the first window does move its figures
    inside = validate("ease", folds(scramble(data, plan.windows[0].start, first_end), plan)[:1]).table
    assert not inside.equals(reference)


def test_wish_list_entries_added_during_a_validation_window_are_not_its_cases_inputs():
    data = base()
    plan = plan_validation(data, SPLIT, min_cases=30, min_customer_cases=10)
    window = plan.windows[-1]
    during = pl.DataFrame(
        [(f"C{c:03d}", "P039", window.start.to_pydatetime() + timedelta(hours=2)) for c in range(30)],
        schema=["customer_id", "product_id", "added_at"], orient="row",
    )
    fold = folds(data, plan, during)[-1]
    assert fold.wish_lists.height == 0
    customer_pages = fold.cases["customer"].requests + fold.cases["customer_new_items"].requests
    assert customer_pages and all("P039" not in r.product_ids for r in customer_pages)
    # control: the same entries a day before the window are the customers' wish lists there
    before = during.with_columns(pl.col("added_at") - timedelta(days=1))
    seen = folds(data, plan, before)[-1].cases["customer"].requests
    assert any("P039" in r.product_ids for r in seen)


def test_test_cases_see_wish_lists_as_they_stood_at_the_split_not_at_the_first_sale():
    data = base()
    train, test = temporal_split(data, SPLIT)
    first_sale = pd.Timestamp(test["time"].min())
    assert first_sale > SPLIT  # the gap where the old cut let entries in
    between = SPLIT + (first_sale - SPLIT) / 2
    wished = pl.DataFrame({"customer_id": ["C001", "C001"], "product_id": ["P001", "P002"],
                           "added_at": [SPLIT - timedelta(days=1), between.to_pydatetime()]})
    cases = build_cases(train, test, wish_lists=wished, split_time=SPLIT)
    inputs = {r.product_ids for r in cases["customer"].requests if r.customer_id == "C001"}
    assert inputs <= {("P001",)}
    # without the split time, the cut is the last training sale: still nothing after the split
    default = build_cases(train, test, wish_lists=wished)
    assert all("P002" not in r.product_ids for r in default["customer"].requests)
