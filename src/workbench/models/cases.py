"""The POS pages' evaluation cases and headline metrics: the primitives that the champion's own
validation windows (models/) and the offline protocol (`workbench.evaluation`) share.

A temporal split, the validation split one period earlier, the four scenarios of
../shared/EVALUATION.md built from held-out sales (wish lists cut at the split: a case sees only
entries added before it), and `HEADLINE`, the one definition of what each POS page is judged on.
Pure functions of the sales lines; this module sits below evaluation and never imports it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import polars as pl

from workbench.models.base import Request

# scenario -> the metric its POS page is judged on (../shared/EVALUATION.md); everything that names
# a page's headline figure (tuning, tracking, notebooks, benchmarks, the dashboard) takes it from here
HEADLINE = {"customer": "ndcg", "customer_new_items": "ndcg", "basket": "hr", "product": "hr"}
HEADLINE_LABELS = {
    "customer": "customer NDCG@10",
    "customer_new_items": "new-items NDCG@10",
    "basket": "basket HR@10",
    "product": "product HR@10",
}


def discounts(k: int) -> np.ndarray:
    """(k,) NDCG's discount of a hit at each rank: 1 / log2(rank + 1)."""
    return 1.0 / np.log2(np.arange(2, k + 2))


def ideal_dcg(sizes, k: int) -> np.ndarray:
    """NDCG's normaliser of each case: the DCG of min(|truth|, k) hits at the top (sizes >= 1)."""
    return np.cumsum(discounts(k))[np.minimum(np.asarray(sizes), k).astype(int) - 1]


def headline(scenario: str) -> str:
    """The metric the scenario's POS page is judged on."""
    if scenario not in HEADLINE:
        raise ValueError(f"scenario {scenario!r} has no headline metric; known: {sorted(HEADLINE)}")
    return HEADLINE[scenario]


SCENARIO_NAMES = ("customer", "customer_new_items", "basket", "product")

# Cases per scenario past which a random draw (seeded) stands for the rest. EVALUATION.md takes
# every test customer (1,394 on Online Retail) and up to 3,000 invoices; a retailer with tens of
# millions of lines has hundreds of thousands of test customers, whose scoring would dominate the
# pipeline while a 10,000-case draw already pins NDCG@10 to about +-0.005 (95%).
MAX_BASKETS = 3000
MAX_CUSTOMERS = 10_000


@dataclass
class Cases:
    """The requests of one scenario and, per request, the items the customer really bought."""

    scenario: str
    requests: list[Request]
    truth: list[frozenset]
    # the first this many cases hold one view of each invoice, the rest further views of the same
    # invoices (`build_cases(views=...)`); None: every case is its own
    first_views: int | None = None

    def __len__(self) -> int:
        return len(self.requests)

    def one_per_invoice(self) -> "Cases":
        """These cases without the further views of an invoice."""
        if self.first_views is None:
            return self
        return Cases(self.scenario, self.requests[: self.first_views], self.truth[: self.first_views])


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


def last_days_start(interactions, days: float) -> pd.Timestamp:
    """The start of the last `days` whole days of the interactions (the day after the newest sale,
    `days` earlier): where the test window starts by default, and each validation window."""
    newest = _polars(interactions)["time"].max()
    return pd.Timestamp(newest).normalize() + pd.Timedelta(days=1) - pd.Timedelta(days=days)


def validation_split(train, days: int = 30):
    """(fit, validation): the last `days` whole days of `train` become the validation window, the
    same protocol one period earlier, for tuning without touching the test window."""
    return temporal_split(train, last_days_start(train, days))


def wish_lists_before(wish_lists, split_time):
    """The wish-list entries added before `split_time` (all of them where the frame has no
    `added_at`: the caller cut it already); None stays None. Same frame type out as in."""
    if wish_lists is None:
        return None
    frame = _polars(wish_lists)
    if "added_at" in frame.columns:
        frame = frame.filter(pl.col("added_at") < pd.Timestamp(split_time).to_pydatetime())
    return _like(frame, wish_lists)


def _wish_list_items(wish_lists, before) -> dict:
    if wish_lists is None:
        return {}
    frame = _polars(wish_lists_before(wish_lists, before)).with_columns(
        pl.col("customer_id").cast(pl.String), pl.col("product_id").cast(pl.String)
    )
    grouped = frame.group_by("customer_id").agg(pl.col("product_id").unique().sort())
    return dict(zip(grouped["customer_id"].to_list(), (tuple(p) for p in grouped["product_id"].to_list())))


def build_cases(
    train,
    test,
    *,
    seed: int = 0,
    max_baskets: int = MAX_BASKETS,
    max_customers: int = MAX_CUSTOMERS,
    wish_lists=None,
    split_time=None,
    customer_test=None,
    views: int = 1,
) -> dict[str, Cases]:
    """The four scenarios of EVALUATION.md, from a temporal split.

    `customer_test`: the lines the customer pages' truth comes from, where it looks further ahead
    than the invoices of `test` (a validation window shorter than the test window: see
    `evaluation.windows.folds`); default `test`.

    Wish lists count as they stood at `split_time` (entries added from then on are unknown to the
    POS at the time of the cases); without `split_time`, as they stood at the last training sale,
    which never lets a later entry in.

    customer: each training customer who bought in the test window (up to `max_customers` of them,
        drawn at random where there are more); truth = the distinct items bought.
    customer_new_items: the same customers, truth = only items the customer never bought before.
    basket: up to `max_baskets` test invoices with >= 2 distinct items (drawn at random); one item is
        held out (at random) and is the truth, the rest is the basket, plus the invoice's customer.
    product: the same invoices; the held-out item is the viewed product, the rest is the truth.

    `views`: each drawn invoice gives up to this many basket and product cases, each holding out
    another of its items (the first as with one; the others from a stream of their own, in the
    draw's order, while there are fewer than `max_baskets` cases): more cases to learn from in a
    window of few invoices, never more cases than one view of `max_baskets` invoices. The evaluation
    keeps one per invoice.
    """
    train, test = _polars(train), _polars(test)
    strings = [pl.col(c).cast(pl.String) for c in ("customer_id", "basket_id", "product_id")]
    train, test = train.with_columns(strings), test.with_columns(strings)
    customer_test = test if customer_test is None else _polars(customer_test).with_columns(strings)
    if "store_id" not in train.columns:
        train = train.with_columns(pl.lit(None, dtype=pl.String).alias("store_id"))
    if "store_id" not in test.columns:
        test = test.with_columns(pl.lit(None, dtype=pl.String).alias("store_id"))
    if split_time is None and wish_lists is not None:
        # a moment after the last training sale and not after the split, whatever the split was
        split_time = pd.Timestamp(train["time"].max()) + pd.Timedelta(microseconds=1) if train.height else pd.Timestamp.min
    wished = _wish_list_items(wish_lists, split_time)

    known = train.filter(pl.col("customer_id").is_not_null())
    bought_now = (
        customer_test.join(known.select("customer_id").unique(), on="customer_id", how="semi")
        .group_by("customer_id")
        .agg(pl.col("product_id").unique().sort())
        .sort("customer_id")
    )
    if bought_now.height > max_customers:
        # its own stream, so the invoices below are drawn the same whether or not customers were
        keep = np.sort(np.random.default_rng([seed, 1]).choice(bought_now.height, size=max_customers, replace=False))
        bought_now = bought_now[keep]
    # the histories of the case customers only: a large retailer has millions of other ones
    history = known.join(bought_now.select("customer_id"), on="customer_id", how="semi")
    bought_before = history.group_by("customer_id").agg(pl.col("product_id").unique())
    bought_before = dict(zip(bought_before["customer_id"].to_list(), (set(p) for p in bought_before["product_id"].to_list())))
    # the customer's usual store: where the last training basket was rung up (ties in time: the later line)
    last_store = history.sort("time", maintain_order=True).group_by("customer_id").agg(pl.col("store_id").last())
    last_store = dict(zip(last_store["customer_id"].to_list(), last_store["store_id"].to_list()))

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

    def view(items, customer_id, store, held: int) -> None:
        """The invoice's basket and product case with its item `held` held out."""
        rest = tuple(items[:held] + items[held + 1 :])
        basket_cases.requests.append(Request("basket", customer_id, rest, store_id=store))
        basket_cases.truth.append(frozenset([items[held]]))
        product_cases.requests.append(Request("product", None, (items[held],), store_id=store))
        product_cases.truth.append(frozenset(rest))

    firsts = []
    for index in drawn:
        _, items, customer_id, store = rows[int(index)]
        firsts.append(int(rng.integers(len(items))))
        view(items, customer_id, store, firsts[-1])
    if views > 1:
        # the further views after every first one: a draw of one view per invoice stays the same
        more = np.random.default_rng([seed, 2])
        for index, first in zip(drawn, firsts):
            _, items, customer_id, store = rows[int(index)]
            others = [i for i in more.permutation(len(items)) if i != first][: views - 1]
            for held in sorted(others)[: max(max_baskets - len(basket_cases), 0)]:
                view(items, customer_id, store, held)
        basket_cases.first_views = product_cases.first_views = len(drawn)
    return {c.scenario: c for c in (customer_cases, new_item_cases, basket_cases, product_cases)}
