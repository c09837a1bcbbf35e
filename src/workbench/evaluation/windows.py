"""Train | validation | test: the validation windows before the split, sized from the retailer's data.

Every choice (hyperparameters, which algorithm serves which POS page) is made on validation
windows that end at the split, rolling origin: window i is the same protocol as the test, one or
more periods earlier, each fitted on everything before its own start. The test window after the
split is scored once, for the report.

How long a validation window is comes from the retailer's own data, not a constant
(`workbench.models.window_sizing`, which the champion's own tuning windows use too): at least one
purchase cycle, long enough to hold enough cases, at most a share of the history, and no longer
than the test window where one is given (validation imitates the test).

Where the windows are shorter than the test window (a history of a few weeks), the customer pages'
cases of a window still look as far ahead as the test's do, as far as the split allows: a customer
who returns buys about one basket in five days, and re-buys their staples over a month, and which
model wins the customer page depends on which of the two it is asked (on Online Retail's three
3-week histories, 5-day windows alone chose for the customer page a candidate at 0.93-0.99 of the
test window's best, looking ahead 0.99-1.00, and ranked the candidates nearer the test's order; on
the new-items page both chose within 1% of it, and on a 6-week history looking ahead chose one at
0.97 where the window alone chose the best: notebooks/research/customer_horizon.ipynb). The basket
and product cases are invoices, and stay in their window.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import pandas as pd
import polars as pl

from workbench.evaluation.protocol import MAX_BASKETS, Cases, _polars, build_cases, temporal_split, wish_lists_before
# re-exported: the sizing is defined one layer down, where the champion's own windows use it too
from workbench.models.window_sizing import (  # noqa: F401
    MAX_SHARE,
    MIN_CASES,
    MIN_CUSTOMER_CASES,
    purchase_cycle_days,
    size_windows,
    window_counts,
    with_first_seen,
)

DAY = pd.Timedelta(days=1)


@dataclass(frozen=True)
class Window:
    """[start, end): the cases come from here; the model is fitted on what came before `start`."""

    start: pd.Timestamp
    end: pd.Timestamp

    @property
    def days(self) -> float:
        return (self.end - self.start) / DAY


def customer_truth_end(start, end, split, horizon_days: float | None) -> pd.Timestamp:
    """Where the customer pages' truth of the window [start, end) ends: its own end, or further
    ahead (`horizon_days` from its start, the test window's) up to the split."""
    start, end, split = pd.Timestamp(start), pd.Timestamp(end), pd.Timestamp(split)
    if not horizon_days:
        return end
    return max(end, min(start + horizon_days * DAY, split))


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
    # how far ahead the customer pages' cases look from a window's start (the test window's days;
    # None: the window's own end); never past the split
    customer_horizon_days: float | None = None

    def customer_end(self, window: Window) -> pd.Timestamp:
        """Where the customer pages' truth of `window` ends (`customer_truth_end`)."""
        return customer_truth_end(window.start, window.end, self.split, self.customer_horizon_days)

    def as_dict(self) -> dict:
        out = asdict(self)
        out["split"] = str(self.split)
        out["windows"] = [{"start": str(w.start), "end": str(w.end)} for w in self.windows]
        return out

    def describe(self) -> str:
        spans = ", ".join(f"{w.start:%Y-%m-%d}..{w.end - DAY:%Y-%m-%d}" for w in self.windows)
        ahead = [f"{w.start:%Y-%m-%d}..{self.customer_end(w) - DAY:%Y-%m-%d}" for w in self.windows if self.customer_end(w) > w.end]
        longer = f"; customer pages look ahead as the test window does: {', '.join(ahead)}" if ahead else ""
        return f"{len(self.windows)} validation window(s) of {self.window_days} day(s) before {self.split:%Y-%m-%d} ({spans}): {self.reason}{longer}"


@dataclass
class Fold:
    """One validation window: the interactions and wish lists a model may be fitted on (everything
    before the window), and the window's cases."""

    window: Window
    train: pl.DataFrame
    wish_lists: pl.DataFrame | None
    cases: dict[str, Cases]


def plan_validation(
    interactions,
    split_time,
    *,
    max_windows: int = 2,
    min_cases: int = MIN_CASES,
    min_customer_cases: int = MIN_CUSTOMER_CASES,
    max_share: float = MAX_SHARE,
    test_days: float | None = None,
) -> ValidationPlan:
    """The rolling-origin validation windows before `split_time`, sized from the data (see the
    module's docstring; `models.window_sizing.size_windows`). Only interactions before the split
    are looked at."""
    if max_windows < 1:
        raise ValueError(f"max_windows must be at least 1, got {max_windows}")
    split = pd.Timestamp(split_time)
    history = _polars(interactions).filter(pl.col("time") < split.to_pydatetime())
    if history.height == 0:
        raise ValueError(f"no interactions before the split {split}: nothing to validate on")
    lines = with_first_seen(history)
    first = pd.Timestamp(lines["time"].min())
    size = size_windows(lines, split, max_windows=max_windows, min_cases=min_cases, min_customer_cases=min_customer_cases,
                        max_share=max_share, max_days=test_days)
    length, why, history_days, cycle = size.days, size.reason, size.history_days, size.purchase_cycle_days
    windows, basket_counts, customer_counts = [], [], []
    for i in range(max_windows):
        end = split - i * length * DAY
        start = end - length * DAY
        if start <= first:
            break
        baskets, customers = window_counts(lines, start.to_pydatetime(), end.to_pydatetime())
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
        customer_horizon_days=test_days,
    )


def folds(interactions, plan: ValidationPlan, wish_lists=None, *, seed: int = 0, max_baskets: int = MAX_BASKETS) -> list[Fold]:
    """One `Fold` per window of `plan`: nothing at or after the split is ever looked at, and each
    window sees the wish lists as they stood at its own start. The customer pages' cases look ahead
    to `plan.customer_end` of the window (see the module's docstring)."""
    history = _polars(interactions).filter(pl.col("time") < plan.split.to_pydatetime())
    out = []
    for w, window in enumerate(plan.windows):
        # one split up to the customer pages' end: the invoices are its part inside the window
        train, ahead = temporal_split(history.filter(pl.col("time") < plan.customer_end(window).to_pydatetime()), window.start)
        inside = ahead.filter(pl.col("time") < window.end.to_pydatetime())
        wished = wish_lists_before(None if wish_lists is None else _polars(wish_lists), window.start)
        cases = build_cases(train, inside, seed=seed + w, max_baskets=max_baskets, wish_lists=wished, split_time=window.start, customer_test=ahead)
        out.append(Fold(window, train, wished, cases))
    return out
