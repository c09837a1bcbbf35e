"""Cleansed interactions as index arrays and sparse matrices, built once and shared by every model."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import polars as pl
import scipy.sparse as sp

REQUIRED_COLUMNS = ("customer_id", "basket_id", "product_id", "time")


def _as_polars(frame) -> pl.DataFrame:
    if isinstance(frame, pl.DataFrame):
        return frame
    if isinstance(frame, pd.DataFrame):
        return pl.from_pandas(frame)
    raise TypeError(f"interactions must be a polars or pandas DataFrame, not {type(frame).__name__}")


@dataclass
class TrainingData:
    """Interactions of one legal entity, indexed.

    Items and customers are numbered in sorted id order so the same data always gives the same
    indices (and so the same model). Anonymous baskets keep customer index -1: they still teach
    co-purchase structure.
    """

    item_ids: np.ndarray
    customer_ids: np.ndarray
    basket_ids: np.ndarray
    # one entry per (basket, product) interaction
    customer: np.ndarray  # int32, -1 = anonymous
    basket: np.ndarray  # int32
    item: np.ndarray  # int32
    age_days: np.ndarray  # float32, days before reference_time
    quantity: np.ndarray  # float32
    # one entry per basket
    basket_customer: np.ndarray
    basket_store: np.ndarray
    basket_age_days: np.ndarray
    reference_time: pd.Timestamp
    wish_lists: sp.csr_matrix | None = None  # customers x items
    # the wish-list entries as given (customer_id, product_id, and added_at where the source dates
    # them): a validation window inside this data sees only the entries added before it
    wish_list_entries: pl.DataFrame | None = None
    # product names (for reasons such as "bought together with ...") and categories, where known
    item_names: np.ndarray | None = None
    item_categories: np.ndarray | None = None
    item_index: dict = field(init=False, repr=False)
    customer_index: dict = field(init=False, repr=False)

    def __post_init__(self):
        self.item_index = {item_id: i for i, item_id in enumerate(self.item_ids)}
        self.customer_index = {customer_id: i for i, customer_id in enumerate(self.customer_ids)}

    @property
    def n_items(self) -> int:
        return len(self.item_ids)

    @property
    def n_customers(self) -> int:
        return len(self.customer_ids)

    @property
    def n_baskets(self) -> int:
        return len(self.basket_ids)

    @classmethod
    def from_interactions(cls, interactions, wish_lists=None, reference_time=None, catalog=None) -> "TrainingData":
        """`interactions`: the cleansed interactions (docs/architecture.md); `reference_time` defaults
        to the last interaction, the moment "now" for time decay. `catalog` (product_id, name,
        category), or a `name` column of the interactions, lets the models name products."""
        frame = _as_polars(interactions)
        missing = [c for c in REQUIRED_COLUMNS if c not in frame.columns]
        if missing:
            raise ValueError(f"interactions lack column(s) {missing}; have {frame.columns}")
        if frame.height == 0:
            raise ValueError("interactions are empty: nothing to train on")
        if "quantity" not in frame.columns:
            frame = frame.with_columns(pl.lit(1.0).alias("quantity"))
        if "store_id" not in frame.columns:
            frame = frame.with_columns(pl.lit(None, dtype=pl.String).alias("store_id"))
        frame = frame.with_columns(
            pl.col("customer_id").cast(pl.String),
            pl.col("basket_id").cast(pl.String),
            pl.col("product_id").cast(pl.String),
            pl.col("store_id").cast(pl.String),
        )
        if frame["product_id"].null_count() or frame["basket_id"].null_count():
            raise ValueError("interactions hold rows without product_id or basket_id: cleanse them first")
        reference_time = pd.Timestamp(reference_time if reference_time is not None else frame["time"].max())

        item_ids = np.array(sorted(frame["product_id"].unique().to_list()), dtype=object)
        customer_ids = np.array(sorted(frame["customer_id"].drop_nulls().unique().to_list()), dtype=object)
        basket_ids = np.array(sorted(frame["basket_id"].unique().to_list()), dtype=object)
        codes = frame.select(
            pl.col("product_id").cast(pl.Enum(list(item_ids))).to_physical().alias("item"),
            pl.col("basket_id").cast(pl.Enum(list(basket_ids))).to_physical().alias("basket"),
            pl.col("customer_id").cast(pl.Enum(list(customer_ids))).to_physical().fill_null(-1).alias("customer"),
            ((pl.lit(reference_time) - pl.col("time")).dt.total_seconds() / 86400.0).alias("age_days"),
            pl.col("quantity").cast(pl.Float32),
            pl.col("store_id"),
        )
        item = codes["item"].to_numpy().astype(np.int32)
        basket = codes["basket"].to_numpy().astype(np.int32)
        customer = codes["customer"].to_numpy().astype(np.int32)
        age = codes["age_days"].to_numpy().astype(np.float32)

        per_basket = (
            codes.group_by("basket")
            .agg(pl.col("customer").first(), pl.col("store_id").first(), pl.col("age_days").min())
            .sort("basket")
        )
        data = cls(
            item_ids=item_ids,
            customer_ids=customer_ids,
            basket_ids=basket_ids,
            customer=customer,
            basket=basket,
            item=item,
            age_days=age,
            quantity=codes["quantity"].to_numpy(),
            basket_customer=per_basket["customer"].to_numpy().astype(np.int32),
            basket_store=np.array(per_basket["store_id"].to_list(), dtype=object),
            basket_age_days=per_basket["age_days"].to_numpy().astype(np.float32),
            reference_time=reference_time,
        )
        if wish_lists is not None:
            data.wish_list_entries = _wish_list_entries(_as_polars(wish_lists))
            data.wish_lists = data._wish_list_matrix(data.wish_list_entries)
        data._attach_catalog(frame, None if catalog is None else _as_polars(catalog))
        return data

    def _attach_catalog(self, frame: pl.DataFrame, catalog: pl.DataFrame | None) -> None:
        source = catalog if catalog is not None else frame
        if "product_id" not in source.columns:
            return
        source = source.with_columns(pl.col("product_id").cast(pl.String))
        for column, attribute in (("name", "item_names"), ("category", "item_categories")):
            if column in source.columns:
                first = source.group_by("product_id").agg(pl.col(column).drop_nulls().first())
                lookup = dict(first.iter_rows())
                setattr(self, attribute, np.array([lookup.get(i) for i in self.item_ids], dtype=object))

    def to_interactions(self) -> pl.DataFrame:
        """The interactions back as a frame (customer_id, basket_id, product_id, time, quantity,
        store_id), so the protocol can cut a validation window out of a model's own training data."""
        reference = self.reference_time.to_datetime64().astype("datetime64[us]")
        seconds = np.round(self.age_days.astype(np.float64) * 86400.0).astype("timedelta64[s]")
        customers = np.where(self.customer >= 0, self.customer_ids[np.maximum(self.customer, 0)] if self.n_customers else None, None)
        return pl.DataFrame(
            {
                "customer_id": pl.Series(customers.tolist(), dtype=pl.String),
                "basket_id": pl.Series(self.basket_ids[self.basket].tolist(), dtype=pl.String),
                "product_id": pl.Series(self.item_ids[self.item].tolist(), dtype=pl.String),
                "time": pl.Series(reference - seconds.astype("timedelta64[us]")),
                "quantity": pl.Series(self.quantity.astype(np.float64)),
                "store_id": pl.Series(self.basket_store[self.basket].tolist(), dtype=pl.String),
            }
        )

    def item_label(self, i: int) -> str:
        """What a cashier would call the product: its name where known, else its id."""
        if self.item_names is not None and self.item_names[i]:
            return str(self.item_names[i]).strip()
        return str(self.item_ids[i])

    def _wish_list_matrix(self, wish_lists: pl.DataFrame) -> sp.csr_matrix:
        """customers x items, 1 where the customer wishes for the product (unknown ones left out)."""
        pairs = wish_lists.select(pl.col("customer_id").cast(pl.String), pl.col("product_id").cast(pl.String)).drop_nulls()
        rows = _positions(self.customer_ids, pairs["customer_id"].to_numpy())
        cols = _positions(self.item_ids, pairs["product_id"].to_numpy())
        known = (rows >= 0) & (cols >= 0)
        values = np.ones(int(known.sum()), dtype=np.float32)
        matrix = sp.csr_matrix((values, (rows[known], cols[known])), shape=(self.n_customers, self.n_items))
        matrix.data[:] = 1.0
        return matrix

    def decay(self, half_life_days: float | None) -> np.ndarray:
        """Weight of each interaction: 1 today, 1/2 one half-life ago; None = no decay."""
        if not half_life_days:
            return np.ones_like(self.age_days)
        return np.power(0.5, self.age_days / float(half_life_days)).astype(np.float32)

    def customer_items(self, half_life_days: float | None = None) -> sp.csr_matrix:
        """customers x items: number of baskets with the item, time-decayed; anonymous rows left out."""
        known = self.customer >= 0
        weights = self.decay(half_life_days)[known]
        return sp.csr_matrix(
            (weights, (self.customer[known], self.item[known])),
            shape=(self.n_customers, self.n_items),
            dtype=np.float32,
        )

    def shopper_items(self, half_life_days: float | None = None) -> sp.csr_matrix:
        """What a model that learns from customers learns from: `customer_items`, or where no sale names
        a customer (a retailer without loyalty members) `basket_items`, each basket a shopper of its
        own. Without it such a model would learn nothing there and serve best sellers."""
        matrix = self.customer_items(half_life_days)
        return matrix if matrix.nnz else self.basket_items(half_life_days)

    def basket_items(self, half_life_days: float | None = None) -> sp.csr_matrix:
        """baskets x items, binary (time-decayed where asked)."""
        matrix = sp.csr_matrix(
            (self.decay(half_life_days), (self.basket, self.item)),
            shape=(self.n_baskets, self.n_items),
            dtype=np.float32,
        )
        return matrix

    def item_popularity(self, half_life_days: float | None = None, store_id: str | None = None) -> np.ndarray:
        """Baskets per item (time-decayed where asked), in one store where asked."""
        weights = self.decay(half_life_days)
        if store_id is not None:
            weights = weights * (self.basket_store[self.basket] == store_id)
        return np.bincount(self.item, weights=weights, minlength=self.n_items).astype(np.float32)


def _wish_list_entries(wish_lists: pl.DataFrame) -> pl.DataFrame:
    """(customer_id, product_id[, added_at]), the ids as strings, rows without ids left out."""
    columns = [pl.col("customer_id").cast(pl.String), pl.col("product_id").cast(pl.String)]
    if "added_at" in wish_lists.columns:
        columns.append(pl.col("added_at"))
    return wish_lists.select(columns).drop_nulls(["customer_id", "product_id"])


def _positions(sorted_ids: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Index of each value in `sorted_ids` (the sorted id arrays of TrainingData), -1 where absent."""
    if len(sorted_ids) == 0 or len(values) == 0:
        return np.full(len(values), -1, dtype=np.int64)
    values = np.asarray(values, dtype=object)
    at = np.minimum(np.searchsorted(sorted_ids, values), len(sorted_ids) - 1)
    return np.where(sorted_ids[at] == values, at, -1).astype(np.int64)
