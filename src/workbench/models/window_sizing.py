"""How long a validation window is, from the retailer's own sales: the one definition that the
offline protocol's validation windows (`workbench.evaluation.windows`) and the champion's own
tuning windows (`models.champion.tuning`) share.

* at least one **purchase cycle** (the median gap between the purchase days of a repeat
  customer): shorter, and the customer page only sees the most frequent buyers come back;
* long enough to hold `min_cases` basket cases and `min_customer_cases` returning customers, so
  a validation figure is not noise;
* at most `max_share` of the history, over all windows together, so the models still have most of
  the history to learn from; and no longer than `max_days` where given (the test window: validation
  imitates the test).

A retailer whose history spans a few weeks gets windows of days, not a month it cannot spare.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import pandas as pd
import polars as pl

from workbench.models.cases import _polars

DAY = pd.Timedelta(days=1)
# what a validation window must hold, and the most of the history the windows may take together
MIN_CASES = 500
MIN_CUSTOMER_CASES = 200
MAX_SHARE = 0.5


@dataclass(frozen=True)
class WindowSize:
    """A window length in whole days, and why it is that long."""

    days: int
    reason: str
    history_days: float
    purchase_cycle_days: float | None


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


def with_first_seen(history) -> pl.DataFrame:
    """The lines (product and customer ids as strings) with when their product was first sold and
    their customer first bought: what `window_counts` reads, computed once for every window."""
    lines = _polars(history).with_columns(pl.col("customer_id").cast(pl.String), pl.col("product_id").cast(pl.String))
    return lines.with_columns(
        product_first=pl.col("time").min().over("product_id"),
        customer_first=pl.col("time").min().over("customer_id"),
    )


def window_counts(lines: pl.DataFrame, start, end) -> tuple[int, int]:
    """(basket cases, returning customers) of the window [start, end) fitted on the lines before
    `start`: baskets holding two or more products sold before, and customers who bought before.
    `lines`: `with_first_seen` of the history."""
    known = lines.filter((pl.col("time") >= start) & (pl.col("time") < end) & (pl.col("product_first") < start))
    baskets = known.group_by("basket_id").agg(pl.col("product_id").n_unique().alias("n")).filter(pl.col("n") >= 2).height
    customers = known.filter(pl.col("customer_id").is_not_null() & (pl.col("customer_first") < start))["customer_id"].n_unique()
    return baskets, customers


def size_windows(
    lines: pl.DataFrame,
    end: pd.Timestamp,
    *,
    max_windows: int = 2,
    min_cases: int = MIN_CASES,
    min_customer_cases: int = MIN_CUSTOMER_CASES,
    max_share: float = MAX_SHARE,
    max_days: float | None = None,
) -> WindowSize:
    """The length of each of `max_windows` validation windows ending at `end` (see the module's
    docstring). `lines`: `with_first_seen` of the history before `end`."""
    if max_windows < 1:
        raise ValueError(f"max_windows must be at least 1, got {max_windows}")
    if lines.height == 0:
        raise ValueError(f"no interactions before {end}: nothing to validate on")
    end = pd.Timestamp(end)
    history_days = (end - pd.Timestamp(lines["time"].min())) / DAY
    cycle = purchase_cycle_days(lines)
    # together the windows take at most max_share of the history; each at least one day
    ceiling = max(int(math.floor(max_share * history_days / max_windows)), 1)
    if max_days:
        ceiling = max(min(ceiling, int(math.ceil(max_days))), 1)
    floor = min(max(int(math.ceil(cycle)), 1) if cycle else 1, ceiling)
    recent = lines.filter(pl.col("time") >= (end - ceiling * DAY).to_pydatetime())
    # the shortest length from the cycle up that holds enough cases in the most recent window
    for days in range(floor, ceiling + 1):
        baskets, customers = window_counts(recent, (end - days * DAY).to_pydatetime(), end.to_pydatetime())
        if baskets >= min_cases and customers >= min_customer_cases:
            why = (f"purchase cycle {cycle:.1f} days" if cycle else "no repeat customers") + (
                f"; {baskets:,} basket cases and {customers:,} returning customers in the last window"
            )
            return WindowSize(days, why, history_days, cycle)
    why = (
        f"the most the history allows ({max_share:.0%} of {history_days:.0f} days over {max_windows} windows)"
        f"; fewer than {min_cases:,} basket cases or {min_customer_cases:,} returning customers in any shorter window"
    )
    return WindowSize(ceiling, why, history_days, cycle)
