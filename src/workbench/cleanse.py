"""Stage 02: cleanse the entity store of one legal entity into interactions, baskets and a catalog.

    from workbench.cleanse import CleansingRules, cleanse, cleanse_entity_store

    result = cleanse_entity_store("online_retail", min_item_support=2)   # reads raw/, writes interim/
    result.check_reconciles()                                            # rows in = kept + quarantined
    result.report                                                        # table, rule, rows

Every rejected row goes to `quarantine[<table>]` with all its columns plus `rule` and `reason`,
attributed to the first rule that rejects it; the rules, their order and the reconciliation are
documented in `workbench.cleansing.rules` and `CleansingResult`.
"""

from __future__ import annotations

import time
from datetime import datetime, timezone
from typing import Any

import polars as pl

from workbench import paths
from workbench.datasets.extract import read_watermark
from workbench.cleansing.dimensions import cleanse_customers, cleanse_products, cleanse_stores, cleanse_wish_lists
from workbench.cleansing.frames import REQUIRED_COLUMNS, CleansingInputError, conform
from workbench.cleansing.result import (
    KEPT_TABLE, ROWS_IN, ROWS_KEPT, CleansingResult, ReconciliationError, build_report,
)
from workbench.cleansing.rules import DEFAULT_NON_MERCHANDISE_CODES, RULES, TABLES, CleansingRules
from workbench.cleansing.sales import baskets_of, cleanse_sales_lines, online_retail_like

__all__ = [
    "CleansingInputError", "CleansingResult", "CleansingRules", "DEFAULT_NON_MERCHANDISE_CODES", "KEPT_TABLE",
    "REQUIRED_COLUMNS", "ROWS_IN", "ROWS_KEPT", "RULES", "ReconciliationError", "TABLES", "cleanse",
    "cleanse_entity_store", "online_retail_like", "read_entity_store",
]

_CATALOG_COLUMNS = ["product_id", "name", "category", "price"]


def cleanse(
    tables: dict[str, pl.DataFrame], rules: CleansingRules | None = None, as_of: datetime | None = None
) -> CleansingResult:
    """Cleanse the entity-store tables (in memory, no I/O); `tables` needs every name of `TABLES`.

    `as_of`: when the tables were extracted (naive UTC); sales lines dated later are quarantined
    (`future_time`). None: now.
    """
    as_of = datetime.now(timezone.utc).replace(tzinfo=None) if as_of is None else as_of
    started = time.perf_counter()
    rules = CleansingRules() if rules is None else rules
    if not isinstance(rules, CleansingRules):
        raise TypeError(f"rules must be a CleansingRules, got {type(rules).__name__}")
    missing = [t for t in TABLES if t not in tables]
    if missing:
        raise CleansingInputError(f"missing input table(s) {missing}; cleansing needs {list(TABLES)}", missing[0])
    raw = {t: conform(t, tables[t]) for t in TABLES}
    if raw["sales_lines"].height == 0:
        raise CleansingInputError("there are no sales lines to cleanse", "sales_lines")

    products = cleanse_products(raw["products"], rules)
    products_quarantine = products.quarantine(raw["products"])
    customers = cleanse_customers(raw["customers"])
    stores = cleanse_stores(raw["stores"])

    sales, interactions = cleanse_sales_lines(
        raw["sales_lines"], rules, raw["products"], products_quarantine, products.rest["product_id"], as_of
    )
    n_baskets = interactions.group_by("product_id").agg(pl.col("basket_id").n_unique().alias("n_baskets"))
    catalog = (
        products.rest.select(_CATALOG_COLUMNS)
        .join(n_baskets, on="product_id", how="left", maintain_order="left")
        .with_columns(pl.col("n_baskets").fill_null(0).cast(pl.Int64))
    )
    customers_kept = customers.rest
    wish_lists = cleanse_wish_lists(raw["wish_lists"], customers_kept["customer_id"], catalog["product_id"])

    splitters = {"sales_lines": sales, "products": products, "customers": customers, "stores": stores,
                 "wish_lists": wish_lists}
    kept = {
        "interactions": interactions,
        "catalog": catalog,
        "customers": customers_kept,
        "stores": stores.rest,
        "wish_lists": wish_lists.rest.select("customer_id", "product_id", "added_at"),
    }
    report = build_report(
        rows_in={t: s.rows_in for t, s in splitters.items()},
        counts={t: s.counts for t, s in splitters.items()},
        kept={t: kept[KEPT_TABLE[t]].height for t in TABLES},
    )
    result = CleansingResult(
        baskets=baskets_of(interactions),
        quarantine={t: (products_quarantine if t == "products" else s.quarantine(raw[t])) for t, s in splitters.items()},
        report=report,
        rules=rules,
        **kept,
    )
    result.check_reconciles()
    result.seconds = time.perf_counter() - started
    return result


def read_entity_store(legal_entity: str) -> dict[str, pl.DataFrame]:
    """Read the entity store of `legal_entity` (paths.raw_dir); clear errors for what is missing."""
    folder = paths.raw_dir(legal_entity)
    if not folder.is_dir():
        raise FileNotFoundError(
            f"legal entity {legal_entity!r} has no entity store at {folder} (run the extraction, 01_extract, first)"
        )
    parts = sorted((folder / "sales_lines").glob("part-*.parquet"))
    if not parts:
        raise FileNotFoundError(
            f"legal entity {legal_entity!r} has no sales: no {folder / 'sales_lines' / 'part-*.parquet'}"
        )
    tables = {"sales_lines": pl.concat([pl.read_parquet(p) for p in parts], how="diagonal_relaxed")}
    for table in TABLES[1:]:
        file = folder / f"{table}.parquet"
        if not file.is_file():
            raise FileNotFoundError(f"legal entity {legal_entity!r}: the entity store has no {file}")
        tables[table] = pl.read_parquet(file)
    return tables


def cleanse_entity_store(legal_entity: str, rules: CleansingRules | None = None, **overrides: Any) -> CleansingResult:
    """Cleanse `paths.raw_dir(legal_entity)` into `paths.interim_dir(legal_entity)`.

    `overrides` are `CleansingRules` fields (notebook parameters) applied over `rules` (default rules if None).
    """
    rules = CleansingRules() if rules is None else rules
    if overrides:
        rules = rules.replace(**overrides)
    tables = read_entity_store(legal_entity)
    folder = paths.raw_dir(legal_entity)
    if tables["sales_lines"].height == 0:
        raise ValueError(f"legal entity {legal_entity!r} has no sales: {folder / 'sales_lines'} holds no rows")
    watermark = read_watermark(legal_entity) or {}
    as_of = datetime.fromisoformat(watermark["extracted_at"]) if watermark.get("extracted_at") else None
    try:
        result = cleanse(tables, rules, as_of)
    except CleansingInputError as exc:
        file = folder / ("sales_lines/part-*.parquet" if exc.table == "sales_lines" else f"{exc.table}.parquet")
        raise CleansingInputError(f"legal entity {legal_entity!r}, {file}: {exc}", exc.table, exc.column) from exc
    result.write(paths.interim_dir(legal_entity))
    return result
