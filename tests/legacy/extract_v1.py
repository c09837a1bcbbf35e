"""Extraction: one legal entity's operational data into its entity store (Parquet).

The entity store layout is the contract of `docs/architecture.md`; `write_entity_store` is
the one place that writes it, shared by the operational-database extraction here and the
Online Retail reader (`workbench.datasets.online_retail`).

Incremental refresh: sales lines are append-only parts, one per run. A run adds the lines of
the window's transactions that the store does not hold yet (matched on transaction id), so
re-running a window adds nothing and a later window adds only what is newer than the
watermark. Transactions are taken as immutable once extracted. Dimension tables (products,
customers, stores, wish lists) and the legal entity's settings are rewritten whole each run.
"""

from __future__ import annotations

import json
import os
from datetime import date, datetime, timezone
from pathlib import Path

import polars as pl
import sqlalchemy as sa
from sqlalchemy.exc import ArgumentError, SQLAlchemyError
from tqdm.auto import tqdm

from workbench import paths
from workbench.datasets.schema import TIME_FORMAT

# as workbench.datasets.schema defined them before source mappings
# What extraction needs from each table; anything else in the source is ignored, so a
# retailer's database may carry more columns than the demo.
REQUIRED_COLUMNS: dict[str, tuple[str, ...]] = {
    "legal_entities": ("id", "name", "currency", "pos_recommendations_enabled"),
    "stores": ("id", "legal_entity_id", "name", "channel", "city", "country"),
    "product_categories": ("id", "name"),
    "products": ("id", "name", "category_id", "list_price", "product_type"),
    "customers": ("id", "legal_entity_id", "name", "loyalty_tier", "home_store_id", "signup_date"),
    "sales_transactions": ("id", "legal_entity_id", "store_id", "customer_id", "transaction_time", "status"),
    "sales_lines": ("transaction_id", "line_number", "product_id", "description", "quantity", "unit_price", "line_type"),
    "wish_lists": ("id", "customer_id"),
    "wish_list_items": ("wish_list_id", "product_id", "added_at"),
}

# Operational vocabulary -> entity-store transaction_type. A voided header voids every line,
# whatever the line says; a line type not listed here is carried over as-is (lowercased)
# so cleansing, not extraction, decides what to do with it.
TRANSACTION_STATUS_VOIDED = "voided"
LINE_TYPE_TO_TRANSACTION_TYPE: dict[str, str] = {
    "sale": "sale",
    "return": "return",
    "void": "void",
}


SALES_LINES_SCHEMA: dict[str, pl.DataType] = {
    "transaction_id": pl.String(),
    "line_number": pl.Int64(),
    "store_id": pl.String(),
    "channel": pl.String(),
    "customer_id": pl.String(),
    "product_id": pl.String(),
    "description": pl.String(),
    "quantity": pl.Float64(),
    "unit_price": pl.Float64(),
    "transaction_time": pl.Datetime("us"),
    "transaction_type": pl.String(),
}
PRODUCTS_SCHEMA: dict[str, pl.DataType] = {
    "product_id": pl.String(), "name": pl.String(), "category": pl.String(), "price": pl.Float64(), "product_type": pl.String(),
}
CUSTOMERS_SCHEMA: dict[str, pl.DataType] = {
    "customer_id": pl.String(), "name": pl.String(), "loyalty_tier": pl.String(), "home_store_id": pl.String(),
    "signup_date": pl.Date(),
}
STORES_SCHEMA: dict[str, pl.DataType] = {
    "store_id": pl.String(), "name": pl.String(), "channel": pl.String(), "city": pl.String(), "country": pl.String(),
}
WISH_LISTS_SCHEMA: dict[str, pl.DataType] = {
    "customer_id": pl.String(), "product_id": pl.String(), "added_at": pl.Datetime("us"),
}
DIMENSIONS = {"products": PRODUCTS_SCHEMA, "customers": CUSTOMERS_SCHEMA, "stores": STORES_SCHEMA, "wish_lists": WISH_LISTS_SCHEMA}
LEGAL_ENTITY_KEYS = ("legal_entity_id", "name", "currency", "pos_recommendations_enabled")


class ExtractionError(ValueError):
    """The source, the window or the legal entity is not usable; the message says which and why."""


# --------------------------------------------------------------------------- window


def _parse_time(value, what: str) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return value.astimezone(timezone.utc).replace(tzinfo=None) if value.tzinfo else value
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day)
    if isinstance(value, str):
        try:
            return _parse_time(datetime.fromisoformat(value.strip()), what)
        except ValueError:
            pass
    raise ExtractionError(
        f"{what} {value!r} is not a date or datetime (expected ISO text such as '2025-01-31' or '2025-01-31 08:00:00')"
    )


def parse_window(start=None, end=None) -> tuple[datetime | None, datetime | None]:
    """Validate the extraction window [start, end): ISO text, date or datetime; None = open."""
    lo, hi = _parse_time(start, "start"), _parse_time(end, "end")
    if lo is not None and hi is not None and lo >= hi:
        raise ExtractionError(f"empty window: start {lo:{TIME_FORMAT}} is not before end {hi:{TIME_FORMAT}}")
    return lo, hi


def window_text(lo: datetime | None, hi: datetime | None) -> str:
    left = f"{lo:{TIME_FORMAT}}" if lo else "the beginning"
    right = f"{hi:{TIME_FORMAT}}" if hi else "the end"
    return f"[{left}, {right})"


# --------------------------------------------------------------------------- entity store


def store_dir(legal_entity: str, out_dir: str | os.PathLike | None = None) -> Path:
    return Path(out_dir) if out_dir is not None else paths.raw_dir(legal_entity)


def read_watermark(legal_entity: str, *, out_dir: str | os.PathLike | None = None) -> dict | None:
    path = store_dir(legal_entity, out_dir) / "watermark.json"
    return json.loads(path.read_text()) if path.exists() else None


def _part_files(root: Path) -> list[Path]:
    return sorted((root / "sales_lines").glob("part-*.parquet"))


def read_sales_lines(legal_entity: str, *, out_dir: str | os.PathLike | None = None) -> pl.DataFrame:
    """Every extracted sales line of the legal entity, all parts, in extraction order."""
    parts = _part_files(store_dir(legal_entity, out_dir))
    if not parts:
        return pl.DataFrame(schema=SALES_LINES_SCHEMA)
    return pl.concat([pl.read_parquet(p) for p in parts], how="vertical")


def conform(df: pl.DataFrame, schema: dict[str, pl.DataType], table: str, source: str) -> pl.DataFrame:
    """Exactly the contract's columns, order and types; a value that cannot be converted is an error, not a null."""
    missing = [c for c in schema if c not in df.columns]
    if missing:
        raise ExtractionError(f"{source}: {table} lacks column(s) {', '.join(missing)}")
    exprs = []
    for name, dtype in schema.items():
        col, have = pl.col(name), df.schema[name]
        if have == dtype:
            exprs.append(col)
        elif have == pl.String and isinstance(dtype, pl.Datetime):
            exprs.append(col.str.to_datetime(time_unit="us", strict=True))
        elif have == pl.String and dtype == pl.Date:
            exprs.append(col.str.slice(0, 10).str.to_date(strict=True))
        elif isinstance(have, pl.Datetime) and isinstance(dtype, pl.Datetime) and have.time_zone:
            exprs.append(col.dt.convert_time_zone("UTC").dt.replace_time_zone(None).dt.cast_time_unit("us"))
        elif isinstance(have, pl.Datetime) and dtype == pl.Date:
            exprs.append(col.dt.date())
        else:
            exprs.append(col.cast(dtype, strict=True))
    try:
        return df.select(exprs)
    except pl.exceptions.PolarsError as exc:
        raise ExtractionError(f"{source}: {table} has values that do not fit the entity store: {exc}") from exc


def _write_parquet(df: pl.DataFrame, path: Path) -> None:
    # Write then rename, so a crash never leaves a half-written file that looks complete.
    tmp = path.with_name(path.name + ".tmp")
    df.write_parquet(tmp)
    os.replace(tmp, path)


def _write_json(obj: dict, path: Path) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(obj, indent=2, default=str) + "\n")
    os.replace(tmp, path)


def write_entity_store(
    legal_entity: str,
    *,
    sales_lines: pl.DataFrame,
    products: pl.DataFrame,
    customers: pl.DataFrame,
    stores: pl.DataFrame,
    wish_lists: pl.DataFrame,
    legal_entity_info: dict,
    source: str,
    window: tuple[datetime | None, datetime | None] = (None, None),
    incremental: bool = True,
    out_dir: str | os.PathLike | None = None,
) -> dict:
    """Append the window's new sales lines as a part, rewrite the dimensions, move the watermark.

    `sales_lines` holds every line of the window; lines of transactions already in the store
    are left out (incremental) and counted in the summary as `already_extracted_lines`.
    """
    paths.check_legal_entity(legal_entity)
    root = store_dir(legal_entity, out_dir)
    lines = conform(sales_lines, SALES_LINES_SCHEMA, "sales_lines", source)
    dims = {name: conform(df, DIMENSIONS[name], name, source) for name, df in
            (("products", products), ("customers", customers), ("stores", stores), ("wish_lists", wish_lists))}
    missing = [k for k in LEGAL_ENTITY_KEYS if k not in legal_entity_info]
    if missing:
        raise ExtractionError(f"{source}: legal entity settings lack {', '.join(missing)}")

    previous = read_watermark(legal_entity, out_dir=out_dir) if incremental else None
    existing_parts = _part_files(root)
    if incremental and existing_parts:
        known = pl.concat([pl.read_parquet(p, columns=["transaction_id"]) for p in existing_parts]).unique()
        new = lines.join(known, on="transaction_id", how="anti")
    else:
        new = lines
    (root / "sales_lines").mkdir(parents=True, exist_ok=True)
    if not incremental:
        for p in existing_parts:
            p.unlink()
        existing_parts = []

    part_name = None
    old_mark = previous.get("transaction_time") if previous else None
    mark = old_mark
    if new.height:
        new_max = new["transaction_time"].max()
        mark = max(new_max, datetime.fromisoformat(old_mark)).isoformat(sep=" ") if old_mark else new_max.isoformat(sep=" ")
        stem = f"part-{new_max:%Y%m%dT%H%M%S}"
        part = root / "sales_lines" / f"{stem}.parquet"
        n = 1
        while part.exists():  # a backfill can end on the same second as an earlier part
            n += 1
            part = root / "sales_lines" / f"{stem}-{n}.parquet"
        _write_parquet(new.sort(["transaction_time", "transaction_id", "line_number"], maintain_order=True), part)
        part_name = part.name

    for name, df in dims.items():
        _write_parquet(df, root / f"{name}.parquet")
    info = {k: legal_entity_info[k] for k in LEGAL_ENTITY_KEYS}
    info["pos_recommendations_enabled"] = bool(info["pos_recommendations_enabled"])
    _write_json(info, root / "legal_entity.json")

    parts = [p.name for p in _part_files(root)]
    run = {
        "window": {"start": _iso(window[0]), "end": _iso(window[1])},
        "part": part_name,
        "new_lines": new.height,
        "source": source,
        "incremental": incremental,
    }
    extracted_at = datetime.now(timezone.utc).replace(tzinfo=None).isoformat(sep=" ", timespec="seconds")
    history = (previous or {}).get("history", []) + [dict(run, extracted_at=extracted_at)]
    _write_json({"transaction_time": mark, "extracted_at": extracted_at, "parts": parts, "history": history},
                root / "watermark.json")

    total_lines = sum(pl.scan_parquet(root / "sales_lines" / p).select(pl.len()).collect().item() for p in parts)
    return {
        "legal_entity": legal_entity,
        "source": source,
        "path": str(root),
        "window": run["window"],
        "window_lines": lines.height,
        "new_lines": new.height,
        "new_transactions": new["transaction_id"].n_unique(),
        "already_extracted_lines": lines.height - new.height,
        "part": part_name,
        "watermark": mark,
        "rows": {"sales_lines": total_lines, **{name: df.height for name, df in dims.items()}},
    }


def _iso(t: datetime | None) -> str | None:
    return t.isoformat(sep=" ") if t is not None else None


# --------------------------------------------------------------------------- operational source


def default_source_url() -> str:
    return f"sqlite:///{paths.demo_database()}"


def _open_source(source_url: str) -> tuple[sa.Engine, str]:
    try:
        url = sa.make_url(source_url)
    except ArgumentError as exc:
        raise ExtractionError(f"{source_url!r} is not a SQLAlchemy database URL (e.g. sqlite:///path/to/db.sqlite)") from exc
    shown = url.render_as_string(hide_password=True)
    if url.get_backend_name() == "sqlite" and url.database not in (None, "", ":memory:") and not url.database.startswith("file:"):
        # SQLite would quietly create an empty database at a mistyped path.
        db = Path(url.database)
        if not db.exists():
            hint = ""
            if db.resolve() == paths.demo_database().resolve():
                hint = " (build the demo retailer first: workbench.datasets.generate_demo_retailer)"
            raise ExtractionError(f"source {shown}: database file {db} does not exist{hint}")
        if not db.is_file():
            raise ExtractionError(f"source {shown}: {db} is not a file")
    try:
        engine = sa.create_engine(url)
    except (SQLAlchemyError, ImportError) as exc:
        raise ExtractionError(f"source {shown}: cannot open it: {exc}") from exc
    return engine, shown


def check_source_schema(engine: sa.Engine, shown: str) -> dict[str, sa.Table]:
    """Every table and column extraction needs is there, or an error naming all that are missing."""
    try:
        inspector = sa.inspect(engine)
        tables = set(inspector.get_table_names())
    except SQLAlchemyError as exc:
        raise ExtractionError(f"source {shown}: cannot read it as a database: {getattr(exc, 'orig', exc)}") from exc
    problems = []
    missing_tables = [t for t in REQUIRED_COLUMNS if t not in tables]
    if missing_tables:
        problems.append(f"missing table(s) {', '.join(missing_tables)}")
    for table, needed in REQUIRED_COLUMNS.items():
        if table in tables:
            have = {c["name"] for c in inspector.get_columns(table)}
            lacking = [c for c in needed if c not in have]
            if lacking:
                problems.append(f"table {table} lacks column(s) {', '.join(lacking)}")
    if problems:
        raise ExtractionError(f"source {shown} does not have the operational schema: {'; '.join(problems)}")
    meta = sa.MetaData()
    return {t: sa.Table(t, meta, autoload_with=engine) for t in REQUIRED_COLUMNS}


def _bound(column: sa.Column, t: datetime):
    # SQLite keeps times as ISO text: compare text with text in the same layout.
    if isinstance(column.type, (sa.String, sa.Text)) or column.type.__class__.__name__ == "NullType":
        return t.strftime(TIME_FORMAT)
    return t


def _frame(conn, query, columns: list[str], *, progress: bool, desc: str, total: int | None = None) -> pl.DataFrame:
    result = conn.execution_options(stream_results=True).execute(query)
    chunks = []
    with tqdm(total=total, desc=desc, unit="row", disable=not progress, leave=False) as bar:
        for rows in result.partitions(100_000):
            chunks.append(pl.DataFrame([tuple(r) for r in rows], schema=columns, orient="row", infer_schema_length=None))
            bar.update(len(rows))
    if not chunks:
        return pl.DataFrame(schema={c: pl.Null for c in columns})
    return pl.concat(chunks, how="vertical_relaxed")


def extract_entity_store(
    source_url: str | None,
    legal_entity: str,
    *,
    start=None,
    end=None,
    out_dir: str | os.PathLike | None = None,
    incremental: bool = True,
    progress: bool = True,
) -> dict:
    """Extract one legal entity from an operational database (any SQLAlchemy URL) into its entity store.

    `start`/`end` bound the transactions, [start, end), on transaction time; None = open.
    `source_url=None` means the demo database (`sqlite:///<paths.demo_database()>`).
    Returns a summary: rows per table in the store, new lines this run, the watermark.
    """
    lo, hi = parse_window(start, end)
    paths.check_legal_entity(legal_entity)
    engine, shown = _open_source(source_url or default_source_url())
    try:
        t = check_source_schema(engine, shown)
        with engine.connect() as conn:
            info = _legal_entity_info(conn, t, legal_entity, shown)
            tx, ln, st = t["sales_transactions"], t["sales_lines"], t["stores"]
            window = [tx.c.legal_entity_id == legal_entity]
            if lo is not None:
                window.append(tx.c.transaction_time >= _bound(tx.c.transaction_time, lo))
            if hi is not None:
                window.append(tx.c.transaction_time < _bound(tx.c.transaction_time, hi))
            n_tx = conn.execute(sa.select(sa.func.count()).select_from(tx).where(*window)).scalar_one()
            if n_tx == 0:
                raise ExtractionError(_no_data_message(conn, tx, legal_entity, lo, hi, shown))
            n_lines = conn.execute(
                sa.select(sa.func.count()).select_from(ln.join(tx, ln.c.transaction_id == tx.c.id)).where(*window)
            ).scalar_one()
            # Lines join their header (it names the legal entity); the store is a left join so a
            # line at an unknown store still lands, with a null channel, for cleansing to judge.
            lines_q = (
                sa.select(
                    ln.c.transaction_id, ln.c.line_number, tx.c.store_id, st.c.channel, tx.c.customer_id,
                    ln.c.product_id, ln.c.description, ln.c.quantity, ln.c.unit_price, tx.c.transaction_time,
                    tx.c.status, ln.c.line_type,
                )
                .select_from(ln.join(tx, ln.c.transaction_id == tx.c.id).outerjoin(st, st.c.id == tx.c.store_id))
                .where(*window)
            )
            cols = ["transaction_id", "line_number", "store_id", "channel", "customer_id", "product_id", "description",
                    "quantity", "unit_price", "transaction_time", "status", "line_type"]
            raw = _frame(conn, lines_q, cols, progress=progress, desc=f"{legal_entity} sales lines", total=n_lines)
            dims = _dimensions(conn, t, legal_entity)
    except SQLAlchemyError as exc:
        raise ExtractionError(f"source {shown}: reading failed: {getattr(exc, 'orig', exc)}") from exc
    finally:
        engine.dispose()

    sales_lines = raw.with_columns(
        transaction_type=pl.when(pl.col("status").cast(pl.String).str.to_lowercase() == TRANSACTION_STATUS_VOIDED)
        .then(pl.lit("void"))
        .otherwise(pl.col("line_type").cast(pl.String).str.to_lowercase().replace(LINE_TYPE_TO_TRANSACTION_TYPE)),
    ).drop("status", "line_type")
    if sales_lines.height != n_lines:  # the promise that nothing is dropped, checked rather than assumed
        raise ExtractionError(f"source {shown}: read {sales_lines.height} sales lines but the window holds {n_lines}")
    return write_entity_store(
        legal_entity, sales_lines=sales_lines, legal_entity_info=info, source=shown, window=(lo, hi),
        incremental=incremental, out_dir=out_dir, **dims,
    )


def _legal_entity_info(conn, t: dict[str, sa.Table], legal_entity: str, shown: str) -> dict:
    le = t["legal_entities"]
    row = conn.execute(
        sa.select(le.c.id, le.c.name, le.c.currency, le.c.pos_recommendations_enabled).where(le.c.id == legal_entity)
    ).first()
    if row is None:
        known = [r[0] for r in conn.execute(sa.select(le.c.id).order_by(le.c.id))]
        raise ExtractionError(
            f"legal entity {legal_entity!r} is not in {shown}; legal entities there: {', '.join(map(str, known)) or 'none'}"
        )
    return {"legal_entity_id": str(row[0]), "name": row[1], "currency": row[2], "pos_recommendations_enabled": bool(row[3])}


def _no_data_message(conn, tx: sa.Table, legal_entity: str, lo, hi, shown: str) -> str:
    where = []
    if lo is not None:
        where.append(tx.c.transaction_time >= _bound(tx.c.transaction_time, lo))
    if hi is not None:
        where.append(tx.c.transaction_time < _bound(tx.c.transaction_time, hi))
    counts = conn.execute(
        sa.select(tx.c.legal_entity_id, sa.func.count()).where(*where).group_by(tx.c.legal_entity_id).order_by(tx.c.legal_entity_id)
    ).all()
    span = conn.execute(
        sa.select(sa.func.min(tx.c.transaction_time), sa.func.max(tx.c.transaction_time)).where(tx.c.legal_entity_id == legal_entity)
    ).first()
    others = ", ".join(f"{e} ({n} transactions)" for e, n in counts) or "none"
    has = f"its transactions span {span[0]} to {span[1]}" if span and span[0] is not None else "it has no transactions at all"
    return (f"legal entity {legal_entity!r} has no sales transactions in {window_text(lo, hi)} in {shown} ({has}); "
            f"legal entities with transactions in that window: {others}")


def _dimensions(conn, t: dict[str, sa.Table], legal_entity: str) -> dict[str, pl.DataFrame]:
    p, c, cu, st, wl, wi = (t[n] for n in ("products", "product_categories", "customers", "stores", "wish_lists", "wish_list_items"))
    # The product master is shared by the group's legal entities, so it is taken whole.
    products = _frame(conn, sa.select(p.c.id, p.c.name, c.c.name, p.c.list_price, p.c.product_type)
                      .select_from(p.outerjoin(c, c.c.id == p.c.category_id)).order_by(p.c.id),
                      ["product_id", "name", "category", "price", "product_type"], progress=False, desc="products")
    customers = _frame(conn, sa.select(cu.c.id, cu.c.name, cu.c.loyalty_tier, cu.c.home_store_id, cu.c.signup_date)
                       .where(cu.c.legal_entity_id == legal_entity).order_by(cu.c.id),
                       list(CUSTOMERS_SCHEMA), progress=False, desc="customers")
    stores = _frame(conn, sa.select(st.c.id, st.c.name, st.c.channel, st.c.city, st.c.country)
                    .where(st.c.legal_entity_id == legal_entity).order_by(st.c.id),
                    list(STORES_SCHEMA), progress=False, desc="stores")
    wish_lists = _frame(conn, sa.select(wl.c.customer_id, wi.c.product_id, wi.c.added_at)
                        .select_from(wi.join(wl, wl.c.id == wi.c.wish_list_id).join(cu, cu.c.id == wl.c.customer_id))
                        .where(cu.c.legal_entity_id == legal_entity).order_by(wl.c.customer_id, wi.c.added_at, wi.c.product_id),
                        list(WISH_LISTS_SCHEMA), progress=False, desc="wish lists")
    return {"products": products, "customers": customers, "stores": stores, "wish_lists": wish_lists}
