"""The offline protocol of ../shared/EVALUATION.md: temporal split, the POS scenarios, evaluation.

Cases are plain `Request`s, and `evaluate` scores them through `model.recommend`, so what is
measured is what the POS would be served: input items removed, best sellers filling short lists.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np
import pandas as pd
import polars as pl

from workbench.evaluation import metrics
from workbench.models.base import Recommender, Request

SCENARIO_NAMES = ("customer", "customer_new_items", "basket", "product")


@dataclass
class Cases:
    """The requests of one scenario and, per request, the items the customer really bought."""

    scenario: str
    requests: list[Request]
    truth: list[frozenset]

    def __len__(self) -> int:
        return len(self.requests)


def _polars(frame) -> pl.DataFrame:
    return pl.from_pandas(frame) if isinstance(frame, pd.DataFrame) else frame


def _like(frame: pl.DataFrame, original):
    return frame.to_pandas() if isinstance(original, pd.DataFrame) else frame


def temporal_split(interactions, split_time):
    """(train, test): lines before `split_time`, and lines from then on whose product was sold in
    training (a model cannot be asked to recommend what it has never seen)."""
    frame = _polars(interactions)
    split_time = pd.Timestamp(split_time).to_pydatetime()
    train = frame.filter(pl.col("time") < split_time)
    test = frame.filter((pl.col("time") >= split_time) & pl.col("product_id").is_in(train["product_id"].unique().implode()))
    return _like(train, interactions), _like(test, interactions)


def validation_split(train, days: int = 30):
    """(fit, validation): the last `days` whole days of `train` become the validation window, the
    same protocol one period earlier, for tuning without touching the test window."""
    frame = _polars(train)
    end = pd.Timestamp(frame["time"].max()).normalize() + pd.Timedelta(days=1)
    return temporal_split(train, end - pd.Timedelta(days=days))


def _wish_list_items(wish_lists, before: datetime | None) -> dict:
    if wish_lists is None:
        return {}
    frame = _polars(wish_lists).with_columns(pl.col("customer_id").cast(pl.String), pl.col("product_id").cast(pl.String))
    if before is not None and "added_at" in frame.columns:
        frame = frame.filter(pl.col("added_at") < before)
    grouped = frame.group_by("customer_id").agg(pl.col("product_id").unique().sort())
    return dict(zip(grouped["customer_id"].to_list(), (tuple(p) for p in grouped["product_id"].to_list())))


def build_cases(train, test, *, seed: int = 0, max_baskets: int = 3000, wish_lists=None) -> dict[str, Cases]:
    """The four scenarios of EVALUATION.md, from a temporal split.

    customer: each training customer who bought in the test window; truth = the distinct items bought.
    customer_new_items: the same, truth = only items the customer never bought before.
    basket: up to `max_baskets` test invoices with >= 2 distinct items (drawn at random); one item is
        held out (at random) and is the truth, the rest is the basket, plus the invoice's customer.
    product: the same invoices; the held-out item is the viewed product, the rest is the truth.
    """
    train, test = _polars(train), _polars(test)
    strings = [pl.col(c).cast(pl.String) for c in ("customer_id", "basket_id", "product_id")]
    train, test = train.with_columns(strings), test.with_columns(strings)
    if "store_id" not in train.columns:
        train = train.with_columns(pl.lit(None, dtype=pl.String).alias("store_id"))
    if "store_id" not in test.columns:
        test = test.with_columns(pl.lit(None, dtype=pl.String).alias("store_id"))
    split_time = test["time"].min() if test.height else None
    wished = _wish_list_items(wish_lists, split_time)

    known = train.filter(pl.col("customer_id").is_not_null())
    bought_before = known.group_by("customer_id").agg(pl.col("product_id").unique())
    bought_before = dict(zip(bought_before["customer_id"].to_list(), (set(p) for p in bought_before["product_id"].to_list())))
    # the customer's usual store: where the last training basket was rung up
    last_store = known.sort("time").group_by("customer_id").agg(pl.col("store_id").last())
    last_store = dict(zip(last_store["customer_id"].to_list(), last_store["store_id"].to_list()))

    bought_now = (
        test.filter(pl.col("customer_id").is_in(list(bought_before)))
        .group_by("customer_id")
        .agg(pl.col("product_id").unique().sort())
        .sort("customer_id")
    )
    customer_cases = Cases("customer", [], [])
    new_item_cases = Cases("customer_new_items", [], [])
    for customer_id, items in bought_now.iter_rows():
        wish = wished.get(customer_id, ())
        store = last_store.get(customer_id)
        customer_cases.requests.append(Request("customer", customer_id, wish, store_id=store))
        customer_cases.truth.append(frozenset(items))
        new = frozenset(items) - bought_before[customer_id]
        if new:
            new_item_cases.requests.append(Request("customer", customer_id, wish, store_id=store, exclude_purchased=True))
            new_item_cases.truth.append(new)

    invoices = (
        test.group_by("basket_id")
        .agg(
            pl.col("product_id").unique().sort(),
            pl.col("customer_id").first(),
            pl.col("store_id").first(),
        )
        .filter(pl.col("product_id").list.len() >= 2)
        .sort("basket_id")
    )
    rng = np.random.default_rng(seed)
    drawn = rng.choice(invoices.height, size=min(max_baskets, invoices.height), replace=False)
    basket_cases = Cases("basket", [], [])
    product_cases = Cases("product", [], [])
    rows = invoices.rows()
    for index in drawn:
        _, items, customer_id, store = rows[int(index)]
        held = int(rng.integers(len(items)))
        rest = tuple(items[:held] + items[held + 1 :])
        basket_cases.requests.append(Request("basket", customer_id, rest, store_id=store))
        basket_cases.truth.append(frozenset([items[held]]))
        product_cases.requests.append(Request("product", None, (items[held],), store_id=store))
        product_cases.truth.append(frozenset(rest))
    return {c.scenario: c for c in (customer_cases, new_item_cases, basket_cases, product_cases)}


def recommend_all(model: Recommender, requests: list[Request], k: int = 10, batch_size: int = 1000) -> list[list[str]]:
    """The item ids the POS would show for each request, scored in batches (one dense block each)."""
    lists = []
    for start in range(0, len(requests), batch_size):
        lists.extend(r.item_ids for r in model.recommend(requests[start : start + batch_size], k))
    return lists


def evaluate(model: Recommender, cases: dict[str, Cases], k: int = 10, batch_size: int = 1000) -> pd.DataFrame:
    """One row per scenario: scenario, n_cases, precision, recall, ndcg, map, hr, coverage, novelty."""
    popularity = dict(zip((str(i) for i in model.item_ids), model.item_baskets))
    rows = []
    for scenario, scenario_cases in cases.items():
        recommended = recommend_all(model, scenario_cases.requests, k, batch_size)
        truth = scenario_cases.truth
        rows.append(
            {
                "scenario": scenario,
                "n_cases": len(scenario_cases),
                "precision": metrics.precision_at_k(recommended, truth, k),
                "recall": metrics.recall_at_k(recommended, truth, k),
                "ndcg": metrics.ndcg_at_k(recommended, truth, k),
                "map": metrics.map_at_k(recommended, truth, k),
                "hr": metrics.hit_rate_at_k(recommended, truth, k),
                "coverage": metrics.catalog_coverage(recommended, model.n_items, k),
                "novelty": metrics.novelty(recommended, popularity, model.n_baskets, k),
            }
        )
    return pd.DataFrame(rows)
