"""What the dashboard shows, as plain pandas: loading the cleansed stage, searching products and
customers, a customer's history, a store's best sellers and trending items, the recommendation rows.

Pure functions of DataFrames (no widgets, no MLflow), so they are unit-tested directly and behave
the same on the demo retailer and on Online Retail (~4k products, ~4k customers, 400k lines).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from workbench import paths

SEARCH_LIMIT = 50
TRENDING_HALF_LIFE_DAYS = 14.0
NAME_WIDTH = 60


class DataNotFound(RuntimeError):
    """The cleansed stage of a legal entity is not there (the pipeline has not run for it)."""


@dataclass
class DashboardData:
    legal_entity: str
    catalog: pd.DataFrame  # product_id (index too), name, category, price, n_baskets
    interactions: pd.DataFrame
    baskets: pd.DataFrame
    wish_lists: pd.DataFrame
    customers: pd.DataFrame  # customer_id, name, n_baskets, spend, last_visit (one row per known customer)
    currency: str | None = None
    entity_name: str | None = None
    pos_recommendations_enabled: bool | None = None
    _search_text: pd.Series = field(init=False, repr=False)
    _customer_text: pd.Series = field(init=False, repr=False)

    def __post_init__(self):
        self.catalog = self.catalog.sort_values(["n_baskets", "product_id"], ascending=[False, True])
        self.catalog.index = pd.Index(self.catalog["product_id"].astype(str), name=None)
        self._search_text = (self.catalog["product_id"].astype(str) + " " + self.catalog["name"].fillna("").astype(str)).str.lower()
        self.customers = self.customers.sort_values(["n_baskets", "customer_id"], ascending=[False, True])
        self.customers.index = pd.Index(self.customers["customer_id"].astype(str), name=None)
        self._customer_text = (
            self.customers["customer_id"].astype(str) + " " + self.customers["name"].fillna("").astype(str)
        ).str.lower()

    # -- search --------------------------------------------------------------------------------
    def search_products(self, query: str = "", limit: int = SEARCH_LIMIT) -> pd.DataFrame:
        return search(self.catalog, self._search_text, query, "product_id", limit)

    def search_customers(self, query: str = "", limit: int = SEARCH_LIMIT) -> pd.DataFrame:
        return search(self.customers, self._customer_text, query, "customer_id", limit)

    def product(self, product_id: str) -> pd.Series | None:
        return self.catalog.loc[product_id] if product_id in self.catalog.index else None

    @property
    def stores(self) -> list[tuple[str, int]]:
        """(store_id, baskets), busiest first."""
        if self.baskets.empty or "store_id" not in self.baskets:
            return []
        counts = self.baskets["store_id"].dropna().astype(str).value_counts()
        return sorted(((str(s), int(n)) for s, n in counts.items()), key=lambda x: (-x[1], x[0]))


def search(frame: pd.DataFrame, text: pd.Series, query: str, id_column: str, limit: int) -> pd.DataFrame:
    """Rows matching every word of `query` (id or name, case-insensitive), best first: exact id,
    then id prefix, then the rest in the frame's order (most popular first); at most `limit`."""
    words = (query or "").lower().split()
    if not words:
        return frame.head(limit)
    mask = np.ones(len(frame), dtype=bool)
    for word in words:
        mask &= text.str.contains(word, regex=False).to_numpy()
    hits = frame[mask]
    ids = hits[id_column].astype(str).str.lower()
    whole = (query or "").strip().lower()
    rank = np.where(ids == whole, 0, np.where(ids.str.startswith(whole), 1, 2))
    order = np.argsort(rank, kind="stable")
    return hits.iloc[order[:limit]]


def _text(value) -> str | None:
    return value if isinstance(value, str) and value else None


def short(text, width: int = NAME_WIDTH) -> str:
    text = "" if text is None or (isinstance(text, float) and np.isnan(text)) else str(text)
    return text if len(text) <= width else text[: width - 1].rstrip() + "…"


def money(value, currency: str | None = None) -> str:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return ""
    return f"{float(value):,.2f}" + (f" {currency}" if currency else "")


def product_label(row, currency: str | None = None) -> str:
    """The picker's line: name, category, price (those the catalog has) and the id."""
    parts = (short(row["name"], 48), short(row["category"], 20), money(row["price"], currency))
    shown = " · ".join(part for part in parts if part)
    return f"{shown} [{row['product_id']}]" if shown else f"[{row['product_id']}]"


def customer_label(row) -> str:
    name = row.get("name")
    name = f" {short(name, 30)}" if isinstance(name, str) and name else ""
    return f"{row['customer_id']}{name} · {int(row['n_baskets'])} baskets"


# -- loading -----------------------------------------------------------------------------------
def load(legal_entity: str) -> DashboardData:
    """The cleansed stage of one legal entity (data/interim/<legal_entity>/), plus the entity's
    settings and customer names from the entity store where present."""
    folder = paths.interim_dir(legal_entity)
    needed = ("catalog", "interactions", "baskets")
    missing = [name for name in needed if not (folder / f"{name}.parquet").exists()]
    if missing:
        raise DataNotFound(
            f"no cleansed data for legal entity {legal_entity!r} in {folder} "
            f"(missing {', '.join(m + '.parquet' for m in missing)})"
        )
    catalog = pd.read_parquet(folder / "catalog.parquet")
    interactions = pd.read_parquet(folder / "interactions.parquet")
    baskets = pd.read_parquet(folder / "baskets.parquet")
    wish_path = folder / "wish_lists.parquet"
    wish_lists = (
        pd.read_parquet(wish_path) if wish_path.exists() else pd.DataFrame(columns=["customer_id", "product_id", "added_at"])
    )
    raw = paths.raw_dir(legal_entity)
    names = _read_optional(raw / "customers.parquet", ["customer_id", "name"])
    settings = _read_json(raw / "legal_entity.json")
    return prepare(
        legal_entity,
        catalog,
        interactions,
        baskets,
        wish_lists,
        customer_names=names,
        currency=settings.get("currency"),
        entity_name=settings.get("name"),
        pos_recommendations_enabled=settings.get("pos_recommendations_enabled"),
    )


def _read_optional(path: Path, columns: list[str]) -> pd.DataFrame | None:
    try:
        return pd.read_parquet(path, columns=columns) if path.exists() else None
    except Exception:  # an entity store without names is fine: ids are shown instead
        return None


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text()) if path.exists() else {}
    except (OSError, ValueError):
        return {}


def _ids(series: pd.Series) -> pd.Series:
    return series.astype("string").astype(object).where(series.notna(), None)


def prepare(
    legal_entity: str,
    catalog: pd.DataFrame,
    interactions: pd.DataFrame,
    baskets: pd.DataFrame,
    wish_lists: pd.DataFrame,
    customer_names: pd.DataFrame | None = None,
    currency: str | None = None,
    entity_name: str | None = None,
    pos_recommendations_enabled: bool | None = None,
) -> DashboardData:
    catalog = catalog.copy()
    catalog["product_id"] = _ids(catalog["product_id"])
    for column, default in (("name", ""), ("category", ""), ("price", np.nan)):
        if column not in catalog:
            catalog[column] = default
    catalog["name"] = catalog["name"].fillna("").astype(str)
    catalog["category"] = catalog["category"].fillna("").astype(str)
    if "n_baskets" not in catalog:
        counts = interactions.groupby("product_id")["basket_id"].nunique()
        catalog["n_baskets"] = catalog["product_id"].map(counts).fillna(0).astype(int)
    interactions = interactions.copy()
    for column in ("customer_id", "product_id", "basket_id", "store_id"):
        if column in interactions:
            interactions[column] = _ids(interactions[column])
    baskets = baskets.copy()
    for column in ("customer_id", "basket_id", "store_id"):
        if column in baskets:
            baskets[column] = _ids(baskets[column])
    wish_lists = wish_lists.copy()
    for column in ("customer_id", "product_id"):
        wish_lists[column] = _ids(wish_lists[column]) if len(wish_lists) else wish_lists[column].astype(object)

    known = baskets[baskets["customer_id"].notna()]
    customers = (
        known.groupby("customer_id")
        .agg(n_baskets=("basket_id", "nunique"), spend=("amount", "sum"), last_visit=("time", "max"))
        .reset_index()
    )
    if customer_names is not None and len(customer_names):
        names = customer_names.assign(customer_id=_ids(customer_names["customer_id"])).drop_duplicates("customer_id")
        customers = customers.merge(names[["customer_id", "name"]], on="customer_id", how="left")
        customers["name"] = customers["name"].astype(object).where(customers["name"].notna(), None)
    else:
        customers["name"] = None
    return DashboardData(
        legal_entity=legal_entity,
        catalog=catalog,
        interactions=interactions,
        baskets=baskets,
        wish_lists=wish_lists,
        customers=customers,
        currency=currency,
        entity_name=entity_name,
        pos_recommendations_enabled=pos_recommendations_enabled,
    )


# -- customer page -----------------------------------------------------------------------------
def customer_summary(data: DashboardData, customer_id: str, top: int = 5) -> dict:
    """Baskets, spend, visits, favourite store, top categories and top items of one customer."""
    baskets = data.baskets[data.baskets["customer_id"] == customer_id]
    lines = data.interactions[data.interactions["customer_id"] == customer_id]
    summary = {
        "customer_id": customer_id,
        "name": _text(data.customers["name"].get(customer_id)) if customer_id in data.customers.index else None,
        "n_baskets": int(baskets["basket_id"].nunique()),
        "spend": float(baskets["amount"].sum()) if len(baskets) else 0.0,
        "first_visit": baskets["time"].min() if len(baskets) else None,
        "last_visit": baskets["time"].max() if len(baskets) else None,
        "n_products": int(lines["product_id"].nunique()),
        "favourite_store": None,
        "top_categories": pd.DataFrame(columns=["category", "baskets", "spend", "share"]),
        "top_items": pd.DataFrame(columns=["product_id", "name", "category", "price", "baskets", "units"]),
    }
    summary["average_basket"] = summary["spend"] / summary["n_baskets"] if summary["n_baskets"] else 0.0
    if len(baskets) and "store_id" in baskets:
        stores = baskets["store_id"].dropna().value_counts()
        summary["favourite_store"] = str(stores.index[0]) if len(stores) else None
    if len(lines):
        lines = lines.assign(
            category=lines["product_id"].map(data.catalog["category"]).fillna("(unknown)"),
            amount=lines["amount"] if "amount" in lines else 0.0,
            quantity=lines["quantity"] if "quantity" in lines else 1.0,
        )
        categories = (
            lines.groupby("category")
            .agg(baskets=("basket_id", "nunique"), spend=("amount", "sum"))
            .reset_index()
            .sort_values(["spend", "baskets", "category"], ascending=[False, False, True])
        )
        total = categories["spend"].sum()
        categories["share"] = categories["spend"] / total if total > 0 else 0.0
        summary["top_categories"] = categories.head(top).reset_index(drop=True)
        items = (
            lines.groupby("product_id")
            .agg(baskets=("basket_id", "nunique"), units=("quantity", "sum"))
            .reset_index()
            .sort_values(["baskets", "units", "product_id"], ascending=[False, False, True])
            .head(top)
        )
        items = items.join(data.catalog[["name", "category", "price"]], on="product_id")
        summary["top_items"] = items.reset_index(drop=True)[["product_id", "name", "category", "price", "baskets", "units"]]
    return summary


def wish_list(data: DashboardData, customer_id: str) -> pd.DataFrame:
    """The customer's wish list, newest first, with the catalog's name, category and price."""
    rows = data.wish_lists[data.wish_lists["customer_id"] == customer_id]
    if "added_at" in rows:
        rows = rows.sort_values(["added_at", "product_id"], ascending=[False, True])
    rows = rows.drop_duplicates("product_id")
    out = rows[["product_id"] + (["added_at"] if "added_at" in rows else [])].join(
        data.catalog[["name", "category", "price"]], on="product_id"
    )
    return out.reset_index(drop=True)


# -- store panel ---------------------------------------------------------------------------------
def store_top_items(
    data: DashboardData, store_id: str | None = None, k: int = 10, half_life_days: float | None = None
) -> pd.DataFrame:
    """Best sellers (baskets per product) or, with a half-life, trending items (baskets weighted
    by 1/2 per half-life before the last day of data), in one store or all stores."""
    lines = data.interactions
    if store_id is not None and "store_id" in lines:
        lines = lines[lines["store_id"] == store_id]
    columns = ["product_id", "name", "category", "price", "baskets", "score"]
    if lines.empty:
        return pd.DataFrame(columns=columns)
    if half_life_days:
        now = data.interactions["time"].max()
        age = (now - lines["time"]).dt.total_seconds() / 86400.0
        weight = np.power(0.5, age.to_numpy(dtype=float) / half_life_days)
    else:
        weight = np.ones(len(lines))
    per_item = (
        pd.DataFrame({"product_id": lines["product_id"].to_numpy(), "basket_id": lines["basket_id"].to_numpy(), "w": weight})
        .groupby("product_id")
        .agg(baskets=("basket_id", "nunique"), score=("w", "sum"))
        .reset_index()
        .sort_values(["score", "baskets", "product_id"], ascending=[False, False, True])
        .head(k)
    )
    per_item = per_item.join(data.catalog[["name", "category", "price"]], on="product_id")
    return per_item.reset_index(drop=True)[columns]


# -- recommendations -------------------------------------------------------------------------------
def request_frame(
    scenario: str, customer_id: str | None = None, product_ids=(), k: int = 10, store_id: str | None = None
) -> pd.DataFrame:
    """The pyfunc's input for one POS request (docs/architecture.md, Serving)."""
    return pd.DataFrame(
        {
            "scenario": [scenario],
            "customer_id": pd.Series([customer_id or None], dtype=object),
            "product_ids": pd.Series([[str(p) for p in product_ids]], dtype=object),
            "k": [int(k)],
            "store_id": pd.Series([store_id or None], dtype=object),
        }
    )


def turned_off_reason(output: pd.DataFrame) -> str | None:
    """The pyfunc answers one rank-0 row without a product when the legal entity has POS
    recommendations turned off: its reason, or None for a normal answer."""
    if output is None or output.empty or "rank" not in output:
        return None
    off = output[(output["rank"] == 0) & output["product_id"].isna()]
    if len(off):
        return str(off["reason"].iloc[0])
    return None


def recommendation_rows(output: pd.DataFrame, data: DashboardData, request: int | None = None) -> pd.DataFrame:
    """Model output (request, rank, product_id, score, reason) joined to the catalog, ranked."""
    columns = ["rank", "product_id", "name", "category", "price", "score", "reason"]
    if output is None or output.empty:
        return pd.DataFrame(columns=columns)
    rows = output
    if request is not None and "request" in rows:
        rows = rows[rows["request"] == request]
    rows = rows[rows["product_id"].notna()].copy()
    rows["product_id"] = rows["product_id"].astype(str)
    rows = rows.sort_values("rank", kind="stable")
    rows = rows.join(data.catalog[["name", "category", "price"]], on="product_id")
    rows["name"] = rows["name"].fillna("(not in the catalog)")
    return rows.reset_index(drop=True)[columns]
