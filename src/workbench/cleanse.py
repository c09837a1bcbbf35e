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

import shutil
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import polars as pl

from workbench import paths
from workbench.datasets.extract import read_watermark
from workbench.datasets.store import scratch_dir
from workbench.cleansing.batches import BATCH_LINES, ROW, cleanse_lines_in_batches
from workbench.cleansing.dimensions import cleanse_customers, cleanse_products, cleanse_stores, cleanse_wish_lists
from workbench.cleansing.frames import REQUIRED_COLUMNS, CleansingInputError, conform, conform_lazy
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

    products, products_quarantine, customers, stores = _dimensions(raw, rules)
    sales, interactions = cleanse_sales_lines(
        raw["sales_lines"], rules, raw["products"], products_quarantine, products.rest["product_id"], as_of
    )
    n_baskets = interactions.group_by("product_id").agg(pl.col("basket_id").n_unique().alias("n_baskets"))
    result = _result(raw, rules, products, products_quarantine, customers, stores, n_baskets,
                     rows_in=sales.rows_in, counts=sales.counts, interactions=interactions,
                     baskets=baskets_of(interactions), quarantine=sales.quarantine(raw["sales_lines"]))
    result.check_reconciles()
    result.seconds = time.perf_counter() - started
    return result


def _dimensions(raw: dict[str, pl.DataFrame], rules: CleansingRules):
    """The products (splitter and quarantine), customers and stores cleansed: the sales-line rules need them."""
    products = cleanse_products(raw["products"], rules)
    return products, products.quarantine(raw["products"]), cleanse_customers(raw["customers"]), cleanse_stores(raw["stores"])


def _result(raw, rules, products, products_quarantine, customers, stores, n_baskets: pl.DataFrame, *, rows_in: int,
            counts: dict[str, int], interactions, baskets, quarantine) -> CleansingResult:
    """The result around the cleansed sales lines (frames, or parquet files): catalog, wish lists and report."""
    catalog = (
        products.rest.select(_CATALOG_COLUMNS)
        .join(n_baskets, on="product_id", how="left", maintain_order="left")
        .with_columns(pl.col("n_baskets").fill_null(0).cast(pl.Int64))
    )
    customers_kept = customers.rest
    wish_lists = cleanse_wish_lists(raw["wish_lists"], customers_kept["customer_id"], catalog["product_id"])
    splitters = {"products": products, "customers": customers, "stores": stores, "wish_lists": wish_lists}
    kept = {
        "interactions": interactions,
        "catalog": catalog,
        "customers": customers_kept,
        "stores": stores.rest,
        "wish_lists": wish_lists.rest.select("customer_id", "product_id", "added_at"),
    }
    n_interactions = interactions.height if isinstance(interactions, pl.DataFrame) else \
        pl.scan_parquet(interactions).select(pl.len()).collect().item()
    report = build_report(
        rows_in={"sales_lines": rows_in, **{t: s.rows_in for t, s in splitters.items()}},
        counts={"sales_lines": counts, **{t: s.counts for t, s in splitters.items()}},
        kept={t: n_interactions if t == "sales_lines" else kept[KEPT_TABLE[t]].height for t in TABLES},
    )
    return CleansingResult(
        baskets=baskets,
        quarantine={"sales_lines": quarantine,
                    **{t: (products_quarantine if t == "products" else s.quarantine(raw[t])) for t, s in splitters.items()}},
        report=report,
        rules=rules,
        **kept,
    )


def read_entity_store(legal_entity: str) -> dict[str, pl.DataFrame]:
    """Read the entity store of `legal_entity` (paths.raw_dir); clear errors for what is missing."""
    folder = paths.raw_dir(legal_entity)
    parts = _sales_parts(legal_entity)
    tables = {"sales_lines": pl.concat([pl.read_parquet(p) for p in parts], how="diagonal_relaxed")}
    for table in TABLES[1:]:
        file = folder / f"{table}.parquet"
        if not file.is_file():
            raise FileNotFoundError(f"legal entity {legal_entity!r}: the entity store has no {file}")
        tables[table] = pl.read_parquet(file)
    return tables


def cleanse_entity_store(legal_entity: str, rules: CleansingRules | None = None, *, batch_lines: int = BATCH_LINES,
                         **overrides: Any) -> CleansingResult:
    """Cleanse `paths.raw_dir(legal_entity)` into `paths.interim_dir(legal_entity)`.

    `overrides` are `CleansingRules` fields (notebook parameters) applied over `rules` (default rules if None).
    The sales lines are cleansed out of core, about `batch_lines` at a time (`workbench.cleansing.batches`),
    with the same result as `cleanse` on the whole store; the result reads its interactions, baskets and
    sales-line quarantine from the written files when asked for them.
    """
    rules = CleansingRules() if rules is None else rules
    if not isinstance(rules, CleansingRules):
        raise TypeError(f"rules must be a CleansingRules, got {type(rules).__name__}")
    if overrides:
        rules = rules.replace(**overrides)
    folder = paths.raw_dir(legal_entity)
    parts = _sales_parts(legal_entity)
    dimensions = {}
    for table in TABLES[1:]:
        file = folder / f"{table}.parquet"
        if not file.is_file():
            raise FileNotFoundError(f"legal entity {legal_entity!r}: the entity store has no {file}")
        dimensions[table] = pl.read_parquet(file)
    watermark = read_watermark(legal_entity) or {}
    as_of = datetime.fromisoformat(watermark["extracted_at"]) if watermark.get("extracted_at") else None
    as_of = datetime.now(timezone.utc).replace(tzinfo=None) if as_of is None else as_of
    started = time.perf_counter()
    try:
        raw = {t: conform(t, dimensions[t]) for t in TABLES[1:]}
        lines = conform_lazy("sales_lines", pl.scan_parquet(parts, row_index_name=ROW))
        if lines.select(pl.len()).collect().item() == 0:
            raise ValueError(f"legal entity {legal_entity!r} has no sales: {folder / 'sales_lines'} holds no rows")
    except CleansingInputError as exc:
        file = folder / ("sales_lines/part-*.parquet" if exc.table == "sales_lines" else f"{exc.table}.parquet")
        raise CleansingInputError(f"legal entity {legal_entity!r}, {file}: {exc}", exc.table, exc.column) from exc
    interim = paths.interim_dir(legal_entity)
    scratch = scratch_dir(interim, "cleansing")
    try:
        products, products_quarantine, customers, stores = _dimensions(raw, rules)
        out = cleanse_lines_in_batches(lines, rules, raw["products"], products_quarantine,
                                       products.rest["product_id"], as_of, scratch, batch_lines)
        result = _result(raw, rules, products, products_quarantine, customers, stores, out.n_baskets,
                         rows_in=out.rows_in, counts=out.counts, interactions=out.interactions,
                         baskets=out.baskets, quarantine=out.quarantine)
        result.check_reconciles()
        result.seconds = time.perf_counter() - started
        result.write(interim)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return result


def _sales_parts(legal_entity: str) -> list[Path]:
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
    return parts
