"""Train | validation | test: the validation windows before the split, sized from the retailer's data.

Every choice (hyperparameters, which algorithm serves which POS page) is made on validation
windows that end at the split, rolling origin: window i is the same protocol as the test, one or
more periods earlier, each fitted on everything before its own start. The test window after the
split is scored once, for the report.

How long a validation window is comes from the retailer's own data, not a constant:

* at least one **purchase cycle** (the median gap between the purchase days of a repeat
  customer): shorter, and the customer page only sees the most frequent buyers come back;
* long enough to hold `min_cases` basket cases and `min_customer_cases` returning customers, so
  a validation figure is not noise;
* at most `max_share` of the history before the split, over all windows together, so the models
  still have most of the history to learn from; and no longer than the test window where one is
  given (validation imitates the test).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import pandas as pd
import polars as pl

from workbench.evaluation.protocol import MAX_BASKETS, Cases, _polars, build_cases, temporal_split, wish_lists_before

DAY = pd.Timedelta(days=1)


@dataclass(frozen=True)
class Window:
    """[start, end): the cases come from here; the model is fitted on what came before `start`."""

    start: pd.Timestamp
    end: pd.Timestamp

    @property
    def days(self) -> float:
        return (self.end - self.start) / DAY


@dataclass
class ValidationPlan:
    """The validation windows (oldest first) before `split`, and why they are as long as they are."""

    split: pd.Timestamp
    windows: list[Window]
    window_days: int
    history_days: float
    purchase_cycle_days: float | None
    basket_cases: list[int] = field(default_factory=list)
    customer_cases: list[int] = field(default_factory=list)
    reason: str = ""

    def as_dict(self) -> dict:
        out = asdict(self)
        out["split"] = str(self.split)
        out["windows"] = [{"start": str(w.start), "end": str(w.end)} for w in self.windows]
        return out

    def describe(self) -> str:
        spans = ", ".join(f"{w.start:%Y-%m-%d}..{w.end - DAY:%Y-%m-%d}" for w in self.windows)
        return f"{len(self.windows)} validation window(s) of {self.window_days} day(s) before {self.split:%Y-%m-%d} ({spans}): {self.reason}"


@dataclass
class Fold:
    """One validation window: the interactions and wish lists a model may be fitted on (everything
    before the window), and the window's cases."""

    window: Window
    train: pl.DataFrame
    wish_lists: pl.DataFrame | None
    cases: dict[str, Cases]


def purchase_cycle_days(interactions) -> float | None:
    """The median, over customers who bought on at least two days, of the median gap in days
    between their purchase days; None where nobody came back."""
    frame = _polars(interactions).filter(pl.col("customer_id").is_not_null())
    if frame.height == 0:
        return None
    days = (
        frame.select(pl.col("customer_id").cast(pl.String), pl.col("time").dt.truncate("1d").alias("day"))
        .unique()
        .sort("customer_id", "day")
        .with_columns(gap=(pl.col("day").diff().over("customer_id").dt.total_seconds() / 86400.0))
        .drop_nulls("gap")
    )
    if days.height == 0:
        return None
    per_customer = days.group_by("customer_id").agg(pl.col("gap").median())
    return float(per_customer["gap"].median())


def _window_counts(history: pl.DataFrame, start, end) -> tuple[int, int]:
    """(basket cases, returning customers) of the window [start, end) fitted on history < start."""
    before = history.filter(pl.col("time") < start)
    inside = history.filter((pl.col("time") >= start) & (pl.col("time") < end))
    if before.height == 0 or inside.height == 0:
        return 0, 0
    known = inside.filter(pl.col("product_id").is_in(before["product_id"].unique().implode()))
    baskets = known.group_by("basket_id").agg(pl.col("product_id").n_unique().alias("n")).filter(pl.col("n") >= 2).height
    customers = known.filter(pl.col("customer_id").is_in(before["customer_id"].drop_nulls().unique().implode()))
    return baskets, customers["customer_id"].n_unique()


def plan_validation(
    interactions,
    split_time,
    *,
    max_windows: int = 2,
    min_cases: int = 500,
    min_customer_cases: int = 200,
    max_share: float = 0.5,
    test_days: float | None = None,
) -> ValidationPlan:
    """The rolling-origin validation windows before `split_time`, sized from the data (see the
    module's docstring). Only interactions before the split are looked at."""
    if max_windows < 1:
        raise ValueError(f"max_windows must be at least 1, got {max_windows}")
    split = pd.Timestamp(split_time)
    history = _polars(interactions).with_columns(pl.col("customer_id").cast(pl.String), pl.col("product_id").cast(pl.String))
    history = history.filter(pl.col("time") < split.to_pydatetime())
    if history.height == 0:
        raise ValueError(f"no interactions before the split {split}: nothing to validate on")
    first = pd.Timestamp(history["time"].min())
    history_days = (split - first) / DAY
    cycle = purchase_cycle_days(history)
    # together the windows take at most max_share of the history; each at least one day
    ceiling = max(int(math.floor(max_share * history_days / max_windows)), 1)
    if test_days:
        ceiling = max(min(ceiling, int(math.ceil(test_days))), 1)
    floor = max(int(math.ceil(cycle)), 1) if cycle else 1
    floor = min(floor, ceiling)
    # the shortest length from the cycle up that holds enough cases in the most recent window
    length, why = ceiling, f"the most the history allows ({max_share:.0%} of {history_days:.0f} days over {max_windows} windows)"
    for days in range(floor, ceiling + 1):
        baskets, customers = _window_counts(history, (split - days * DAY).to_pydatetime(), split.to_pydatetime())
        if baskets >= min_cases and customers >= min_customer_cases:
            length = days
            why = (
                f"purchase cycle {cycle:.1f} days" if cycle else "no repeat customers"
            ) + f"; {baskets:,} basket cases and {customers:,} returning customers in the last window"
            break
    else:
        why += f"; fewer than {min_cases:,} basket cases or {min_customer_cases:,} returning customers in any shorter window"
    windows, basket_counts, customer_counts = [], [], []
    for i in range(max_windows):
        end = split - i * length * DAY
        start = end - length * DAY
        if start <= first:
            break
        baskets, customers = _window_counts(history, start.to_pydatetime(), end.to_pydatetime())
        if baskets == 0 and customers == 0:
            break
        windows.append(Window(start, end))
        basket_counts.append(baskets)
        customer_counts.append(customers)
    if not windows:
        raise ValueError(f"the {history_days:.1f} days before the split {split} hold no validation window with a case")
    return ValidationPlan(
        split=split,
        windows=windows[::-1],
        window_days=length,
        history_days=round(history_days, 2),
        purchase_cycle_days=None if cycle is None else round(cycle, 2),
        basket_cases=basket_counts[::-1],
        customer_cases=customer_counts[::-1],
        reason=why,
    )


def folds(interactions, plan: ValidationPlan, wish_lists=None, *, seed: int = 0, max_baskets: int = MAX_BASKETS) -> list[Fold]:
    """One `Fold` per window of `plan`: nothing at or after the split is ever looked at, and each
    window sees the wish lists as they stood at its own start."""
    history = _polars(interactions).filter(pl.col("time") < plan.split.to_pydatetime())
    out = []
    for w, window in enumerate(plan.windows):
        train, inside = temporal_split(history.filter(pl.col("time") < window.end.to_pydatetime()), window.start)
        wished = wish_lists_before(None if wish_lists is None else _polars(wish_lists), window.start)
        cases = build_cases(train, inside, seed=seed + w, max_baskets=max_baskets, wish_lists=wished, split_time=window.start)
        out.append(Fold(window, train, wished, cases))
    return out
