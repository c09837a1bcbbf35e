"""Extraction: one legal entity's data, read through its source mapping, into its entity store.

    from workbench.datasets.extract import extract_source
    extract_source("demo", "USRT")                                     # configs/sources/demo.yml, the demo database
    extract_source("online_retail", "online_retail")                   # the UCI file named in the mapping
    extract_source("configs/sources/mine.yml", "DE01", source="postgresql://etl@db/pos", start="2025-01-01")

Incremental refresh (the default): a run re-reads the window [start, end); with no `start`, the
window opens `lookback_days` before the store's watermark, so late lines, voids and corrections of
recent receipts are picked up. The store upserts the window's transactions (`workbench.datasets.store`).
`incremental=False` rebuilds the store from the window alone.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
from datetime import datetime, timedelta
from pathlib import Path

import polars as pl
import sqlalchemy as sa
from sqlalchemy.exc import SQLAlchemyError

from workbench import paths, secrets
from workbench.datasets import sources
from workbench.datasets.mapping import (
    EntityMapping,
    MappingError,
    SourceMapping,
    _base,
    apply_sort,
    conform_entity,
    derive,
    evaluate,
    load_mapping,
)
from workbench.datasets.store import (  # noqa: F401 - the entity store's API, re-exported for callers
    CUSTOMERS_SCHEMA,
    DIMENSIONS,
    LEGAL_ENTITY_KEYS,
    PRODUCTS_SCHEMA,
    SALES_LINES_SCHEMA,
    STORES_SCHEMA,
    WISH_LISTS_SCHEMA,
    ExtractionError,
    changed_source_message,
    conform,
    in_window,
    parse_window,
    read_sales_lines,
    read_tables,
    read_watermark,
    scratch_dir,
    store_dir,
    window_text,
    write_entity_store,
)

#: Days re-read before the watermark on an incremental run: receipts voided, corrected or completed
#: later than this are not seen (a full re-read: lookback_days=None).
DEFAULT_LOOKBACK_DAYS = 3.0
STORE_TABLES = ("products", "customers", "stores", "wish_lists")


def default_source_url() -> str:
    return f"sqlite:///{paths.demo_database()}"


def source_of(mapping: SourceMapping, source: str | None) -> str:
    """The run's source: the parameter, else the mapping's default (for sql, "" = the demo database);
    `${ENV:NAME}` reads it from that environment variable, so a password need not be written anywhere."""
    value = secrets.resolve(source or mapping.source, "source")  # `${ENV:NAME}`: the URL from the environment
    if mapping.kind == "sql":
        return value or default_source_url()
    if not value and any(e.files and "{source}" in e.files for e in mapping.entities.values()):
        raise ExtractionError(mapping.where("names its files by {source}: give the run a `source` (a file or folder)"))
    return value


def extract_source(
    mapping: str | os.PathLike | dict | SourceMapping,
    legal_entity: str,
    *,
    source: str | None = None,
    start=None,
    end=None,
    incremental: bool = True,
    lookback_days: float | None = DEFAULT_LOOKBACK_DAYS,
    out_dir: str | os.PathLike | None = None,
    contracts: bool = True,
    encoding: str | None = None,
    progress: bool = True,
) -> dict:
    """Extract one legal entity through `mapping` (a shipped mapping's name, a YAML path, or a dict)
    into its entity store; returns the run's summary (rows per table, new and replaced lines, watermark).

    `encoding` overrides the text encoding of every file the mapping reads (default: the mapping's,
    UTF-8 unless it says otherwise); a file that is not valid in it is an error naming the byte offset."""
    paths.check_legal_entity(legal_entity)
    lo, hi = parse_window(start, end)
    if lookback_days is not None and (isinstance(lookback_days, bool) or not float(lookback_days) >= 0):
        raise ExtractionError(f"lookback_days must be a number of days >= 0 or None, got {lookback_days!r}")
    m = mapping if isinstance(mapping, SourceMapping) else load_mapping(mapping)
    src = source_of(m, source)
    shown = sources.redact(src)
    # a file source is the same however it is spelt (relative to the checkout or absolute)
    identity = {"mapping": m.name, "source": shown if m.kind == "sql" else str(paths.resolve(src))}

    previous = read_watermark(legal_entity, out_dir=out_dir) if incremental else None
    recorded = (previous or {}).get("source_identity")
    if recorded and recorded != identity:  # before reading a large source for nothing
        raise ExtractionError(changed_source_message(legal_entity, store_dir(legal_entity, out_dir), recorded, identity))
    read_lo = lo
    if lo is None and previous and previous.get("transaction_time") and lookback_days is not None:
        read_lo = datetime.fromisoformat(previous["transaction_time"]) - timedelta(days=float(lookback_days))
        if hi is not None and read_lo >= hi:  # a window ending before the lookback: read all of it
            read_lo = None
    scratch = scratch_dir(store_dir(legal_entity, out_dir), "extracting")
    try:
        return _extract(m, src, shown, identity, legal_entity, previous, lo, hi, read_lo, incremental, out_dir,
                        contracts, encoding, progress, scratch)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _extract(m, src, shown, identity, legal_entity, previous, lo, hi, read_lo, incremental, out_dir, contracts,
             encoding, progress, scratch: Path) -> dict:
    read = read_source(m, src, legal_entity, (read_lo, hi), progress=progress, encoding=encoding, scratch=scratch)

    lines = read["sales_lines"]
    n_lines = lines.height if isinstance(lines, pl.DataFrame) else lines.select(pl.len()).collect(engine="streaming").item()
    if n_lines == 0 and (previous is None or lo is not None or hi is not None):
        span = read.get("_span")
        has = f"its sales lines span {span[0]} to {span[1]}" if span and span[0] is not None else "it has no sales lines at all"
        raise ExtractionError(f"legal entity {legal_entity!r} has no sales lines in {window_text(read_lo, hi)} "
                              f"in {shown} ({has})")
    validate = None
    if contracts:
        from workbench.datasets.contracts import check_store

        def validate(store):
            return check_store(store, where=m.where(f"legal entity {legal_entity}"))
    summary = write_entity_store(
        legal_entity, sales_lines=lines, legal_entity_info=read["legal_entity"], source=shown, identity=identity,
        window=(lo, hi), read_window=(read_lo, hi), incremental=incremental, out_dir=out_dir, validate=validate,
        **{t: read[t] for t in STORE_TABLES},
    )
    summary["mapping"] = m.name
    return summary


# --------------------------------------------------------------------------- reading through a mapping


def read_source(m: SourceMapping, src: str, legal_entity: str, window=(None, None), *, progress: bool = False,
                encoding: str | None = None, scratch: Path | None = None) -> dict:
    """The entity-store tables (sales lines of the window; whole dimensions) and the legal entity's settings.

    With a `scratch` folder, the sales lines of a database whose mapping reads them row by row
    (`_row_by_row`) are read out of core: each fetched chunk is mapped and written there, and
    `sales_lines` comes back as a scan of those files (a `pl.LazyFrame`), mapped as it would be whole."""
    raw: dict[str, pl.DataFrame] = {}
    evaluated: dict[str, pl.LazyFrame] = {}
    pushed = False
    span = None
    if m.kind == "sql":
        engine, shown = sources.open_database(src)
        try:
            sources.check_tables(engine, shown, m.requires)
            with engine.connect() as conn:
                info_row = _legal_entity_row(conn, m, legal_entity, shown)
                for name, entity in m.entities.items():
                    if entity.derive_from:
                        continue
                    lines_window = window if name == "sales_lines" and entity.window else (None, None)
                    spilled = None
                    if name == "sales_lines" and scratch is not None:
                        spilled = _sql_lines_out_of_core(conn, engine, m, entity, legal_entity, lines_window, shown,
                                                         progress, m.where(f"source {shown}"), scratch)
                    if spilled is not None:
                        evaluated[name] = spilled
                    else:
                        raw[name] = _sql_entity(conn, engine, entity, legal_entity, lines_window, shown, progress)
                    if name == "sales_lines" and entity.window:
                        pushed = True
                        if spilled is None and raw[name].height == 0:
                            span = _sql_span(conn, entity, legal_entity)
        except SQLAlchemyError as exc:
            raise ExtractionError(f"source {shown}: reading failed: {getattr(exc, 'orig', exc)}") from exc
        finally:
            engine.dispose()
    else:
        shown = src
        info_row = {}
        cache: dict[tuple, pl.DataFrame] = {}
        for name, entity in m.entities.items():
            if entity.derive_from:
                continue
            pattern = entity.files.replace("{source}", src)
            options = dict(fmt=entity.format, encoding=encoding or entity.encoding, separator=entity.separator,
                           header=entity.header, quote=entity.quote)
            key = (pattern, *options.values())
            if name == "sales_lines" and scratch is not None and key not in cache:
                batches = sources.file_batches(pattern, m.where(f"entity {name}"), scratch, **options)
                spilled = None if batches is None else _lines_out_of_core(
                    _first_checked(batches, m, name, pattern), entity, m.where(f"source {shown}"), scratch, m)
                if spilled is not None:
                    evaluated[name] = spilled
                    continue
            if key not in cache:
                cache[key] = sources.read_files(pattern, m.where(f"entity {name}"), **options)
            raw[name] = cache[key]
            _check_required(raw[name], m, name, pattern)

    where = m.where(f"source {shown}")
    info = _legal_entity_info(m, info_row, legal_entity, where)
    work = {name: evaluate(frame, m.entities[name], where) for name, frame in raw.items()}
    work.update(evaluated)
    lines = work["sales_lines"]
    lazy = isinstance(lines, pl.LazyFrame)

    def side(frame: pl.DataFrame):  # a table joined to the lines: lazy when they are
        return frame.lazy() if lazy else frame

    def columns_of(frame) -> list[str]:
        return frame.collect_schema().names() if isinstance(frame, pl.LazyFrame) else frame.columns

    if "transactions" in work:  # header columns the lines do not carry come from their transaction
        tx = conform_entity(work["transactions"], "transactions", where).drop("__row", "__file", "__line", strict=False)
        tx = tx.unique("transaction_id", keep="first", maintain_order=True)
        mapped = set(m.entities["sales_lines"].columns)
        take = [c for c in m.entities["transactions"].columns
                if c in tx.columns and c != "transaction_id" and c not in mapped]
        lines = lines.drop([c for c in take if c in columns_of(lines)]).join(side(tx.select("transaction_id", *take)),
                                                                              on="transaction_id", how="left", maintain_order="left")
    if "transaction_type" not in columns_of(lines):
        lines = lines.with_columns(transaction_type=pl.lit("sale"))
    if "line_number" not in columns_of(lines):
        lines = lines.with_columns(line_number=(pl.int_range(pl.len()).over("transaction_id") + 1).cast(pl.Int64))

    tables = {}
    for name in STORE_TABLES:
        entity = m.entities.get(name)
        if entity is None:  # an optional entity the retailer does not have: an empty table
            tables[name] = None
        else:
            tables[name] = derive(lines, entity, where) if entity.derive_from else work[name]
    if "categories" in work and tables.get("products") is not None:
        cats = conform_entity(work["categories"], "categories", where).select("category_id", pl.col("name").alias("__category"))
        cats = cats.unique("category_id", keep="first", maintain_order=True)
        tables["products"] = (tables["products"].join(cats, left_on="category", right_on="category_id", how="left",
                                                      maintain_order="left")
                              .with_columns(category=pl.col("__category")).drop("__category"))

    out = {}
    for name in STORE_TABLES:
        if tables[name] is None:
            out[name] = pl.DataFrame(schema=DIMENSIONS[name])
            continue
        frame = conform_entity(tables[name], name, where)
        out[name] = apply_sort(frame, m.entities[name]).select(list(DIMENSIONS[name]))
    if tables.get("products") is not None:  # a line without its own price or text takes its product's
        fill = {"unit_price": "price", "description": "name"}
        missing = {c: p for c, p in fill.items() if c not in columns_of(lines)}
        if missing and "product_id" in columns_of(lines):
            catalog = out["products"].filter(pl.col("product_id").is_not_null()).unique("product_id", keep="first")
            lines = lines.join(side(catalog.select("product_id", *[pl.col(p).alias(c) for c, p in missing.items()])),
                               on="product_id", how="left", maintain_order="left")
    if "channel" not in columns_of(lines):
        channels = out["stores"].filter(pl.col("store_id").is_not_null()).unique("store_id", keep="first").select("store_id", "channel")
        lines = lines.join(side(channels), on="store_id", how="left", maintain_order="left") if "store_id" in columns_of(lines) else lines
    lines = _conform_lines(lines, where) if lazy else conform_entity(lines, "sales_lines", where)
    if not pushed and window != (None, None):
        if lazy:
            first, last, n = lines.select(pl.col("transaction_time").min().alias("a"), pl.col("transaction_time").max().alias("b"),
                                          pl.len().alias("n")).collect(engine="streaming").row(0)
            span = (first, last) if n else span
        elif lines.height:
            span = (lines["transaction_time"].min(), lines["transaction_time"].max())
    # exact, also where the database was asked for a coarser window (a date column, say)
    lines = lines.filter(in_window("transaction_time", *window))
    out["sales_lines"] = apply_sort(lines, m.entities["sales_lines"]).select(list(SALES_LINES_SCHEMA))
    out["legal_entity"] = info
    out["_span"] = span
    return out


def _conform_lines(lines: pl.LazyFrame, where: str) -> pl.LazyFrame:
    """`conform_entity` for lines read out of core (a scan)."""
    schema = lines.collect_schema()
    missing = [c for c in ("transaction_id", "product_id") if c not in schema]
    if missing:  # the message of conform_entity, which knows the required columns
        return conform_entity(pl.DataFrame(schema=schema), "sales_lines", where).lazy()
    cols = [pl.col(c).cast(t, strict=False) if c in schema and schema[c] != t else pl.col(c) if c in schema
            else pl.lit(None, t).alias(c) for c, t in SALES_LINES_SCHEMA.items()]
    return lines.select(cols + [c for c in ("__row", "__file", "__line") if c in schema])


def _row_by_row(entity: EntityMapping, source_columns: list[str], where: str) -> bool:
    """Whether the mapping reads the sales lines one source row at a time (no window, aggregate or
    running value; no explode, no sort, line numbers mapped), so that chunks of rows map as the whole would."""
    if entity.explode or entity.sort or "line_number" not in entity.columns:
        return False
    exprs, seen = [], list(source_columns)
    try:
        if entity.rows:
            exprs.append(pl.sql_expr(entity.rows))
        for target, spec in entity.columns.items():
            exprs.append(_base({"column": spec} if isinstance(spec, str) else spec, seen, where))
            seen.append(target)
    except Exception:  # noqa: BLE001 - the whole read reports it, with its rows
        return False
    # `over` keeps an expression "row separable" for polars, but a window needs its whole group
    return all(e.meta.is_row_separable() and ".over(" not in str(e) for e in exprs)


def _check_required(frame: pl.DataFrame, m: SourceMapping, name: str, pattern: str) -> None:
    """An error naming what the entity's source lacks of the columns the mapping `requires`."""
    lacking = [c for c in m.requires.get(name, ()) if c not in frame.columns]
    if lacking:
        have = ", ".join(c for c in frame.columns if not c.startswith("__"))
        raise ExtractionError(m.where(f"entity {name}: {pattern} lacks column(s) {', '.join(lacking)} "
                                      f"(it has: {have or 'none'})"))


def _first_checked(frames, m: SourceMapping, name: str, pattern: str):
    """`frames` of the entity's source (chunks of one scan: one set of columns), the first checked
    with `_check_required`."""
    for i, frame in enumerate(frames):
        if i == 0:
            _check_required(frame, m, name, pattern)
        yield frame


def _derived_needs(m: SourceMapping, columns: list[str], where: str) -> set[str] | None:
    """The columns of the sales lines' working frame that the entities derived from them read (group_by,
    `rows`, each `agg`'s `of` and `where`); None where an expression does not say."""
    needs: set[str] = set()
    try:
        for entity in m.entities.values():
            if not entity.derive_from:
                continue
            needs.add(entity.group_by)
            exprs = [pl.sql_expr(entity.rows)] if entity.rows else []
            for spec in entity.columns.values():
                if isinstance(spec, dict) and "agg" in spec:
                    exprs.append(_base(spec.get("of", entity.group_by), columns, where))
                    exprs += [pl.sql_expr(spec["where"])] if spec.get("where") else []
            for expr in exprs:
                needs.update(expr.meta.root_names())
    except Exception:  # noqa: BLE001 - the whole read reports it
        return None
    return needs


def _lines_out_of_core(chunks, entity: EntityMapping, where: str, scratch: Path, m: SourceMapping) -> pl.LazyFrame | None:
    """The sales lines from `chunks` of source rows (a cursor's, a file scan's), each mapped (`evaluate`) and
    written under `scratch`; a scan of them. None where the mapping does not read row by row, where there are
    no lines, or where a chunk does not map (the lines are then read whole, so the message counts and names
    the rows over all of them)."""
    files: list[Path] = []
    offset = 0
    kept: dict[str, pl.DataType] = {}
    with contextlib.closing(chunks) if hasattr(chunks, "close") else contextlib.nullcontext():
        for chunk in chunks:
            if not files and not _row_by_row(entity, chunk.columns, where):
                return None
            try:
                frame = evaluate(chunk.with_row_index("__row", offset=offset), entity, where)
            except ExtractionError:
                return None
            offset += chunk.height
            del chunk
            if not files:
                # what the lines go on to need: the store's columns, mapped or of the source's own name, and
                # what the derived entities read, typed as in the first chunk (so that the chunks stack)
                needs = _derived_needs(m, frame.columns, where)
                if needs is None or any(frame.schema.get(c) == pl.Null for c in needs - set(SALES_LINES_SCHEMA)):
                    return None  # (a column without a type in the first chunk: the types to stack by are unknown)
                kept = {**{c: t for c, t in SALES_LINES_SCHEMA.items() if c in frame.columns},
                        **{c: frame.schema[c] for c in sorted(needs) if c in frame.columns and c not in SALES_LINES_SCHEMA},
                        **{c: frame.schema[c] for c in ("__row", "__file", "__line") if c in frame.columns}}
            try:
                # a column all null in a chunk has no type of its own; another type is no stacking: read whole
                strict = {c for c in kept if c not in SALES_LINES_SCHEMA and frame.schema.get(c) != pl.Null}
                chunk_out = frame.select([pl.col(c).cast(t, strict=c in strict) if frame.schema.get(c) != t else pl.col(c)
                                          for c, t in kept.items()])
            except pl.exceptions.PolarsError:  # (a column a chunk lacks included)
                return None
            files.append(scratch / f"sales_lines-{len(files):06d}.parquet")
            chunk_out.write_parquet(files[-1])
            del frame, chunk_out
    return pl.scan_parquet(files) if files else None


def _sql_lines_out_of_core(conn, engine, m: SourceMapping, entity: EntityMapping, legal_entity: str, window, shown: str,
                           progress: bool, where: str, scratch: Path) -> pl.LazyFrame | None:
    """The sales lines of a database read chunk by chunk (`_lines_out_of_core`)."""
    query, params = _sql_statement(engine, entity, legal_entity, window)
    try:
        batches = sources.sql_batches(conn, sa.text(query), params, progress=progress, desc=f"{legal_entity} {entity.name}")
        return _lines_out_of_core(batches, entity, where, scratch, m)
    except SQLAlchemyError as exc:
        conn.rollback()
        raise ExtractionError(f"source {shown}: entity {entity.name}: the query failed: "
                              f"{str(getattr(exc, 'orig', exc)).strip()}") from exc


_PARAM = re.compile(r"(?<![:\w]):(\w+)")


def _bind(query: str, params: dict) -> dict:
    """Only the parameters the query names (`:legal_entity`), so a query without them still runs."""
    named = set(_PARAM.findall(query))
    return {k: v for k, v in params.items() if k in named}


def _sql_entity(conn, engine, entity: EntityMapping, legal_entity: str, window, shown: str, progress: bool) -> pl.DataFrame:
    query, params = _sql_statement(engine, entity, legal_entity, window)
    try:
        return sources.sql_frame(conn, sa.text(query), params, progress=progress and entity.name == "sales_lines",
                                 desc=f"{legal_entity} {entity.name}")
    except SQLAlchemyError as exc:
        conn.rollback()
        raise ExtractionError(f"source {shown}: entity {entity.name}: the query failed: "
                              f"{str(getattr(exc, 'orig', exc)).strip()}") from exc


def _sql_statement(engine, entity: EntityMapping, legal_entity: str, window) -> tuple[str, dict]:
    """The entity's query, with the extraction window applied in the database, and its parameters."""
    prep = engine.dialect.identifier_preparer
    if entity.table:
        query = f"SELECT * FROM {prep.quote(entity.table)}" + (f" WHERE {entity.where}" if entity.where else "")
    else:
        query = entity.query.strip().rstrip(";")
    params = _bind(query, {"legal_entity": legal_entity})
    lo, hi = window
    if lo is not None or hi is not None:
        col = f"w.{prep.quote(entity.window)}"
        conds = ([f"{col} >= :window_start"] if lo is not None else []) + ([f"{col} < :window_end"] if hi is not None else [])
        query = f"SELECT * FROM (\n{query}\n) w WHERE {' AND '.join(conds)}"
        if lo is not None:
            # a date column holds the day: the window's first day, from its start (the exact cut comes later)
            lo = lo.replace(hour=0, minute=0, second=0, microsecond=0) if entity.window_by_day else lo
            params["window_start"] = sources.bound(engine, lo)
        if hi is not None:
            params["window_end"] = sources.bound(engine, hi)
    return query, params


def _sql_span(conn, entity: EntityMapping, legal_entity: str):
    query = entity.query.strip().rstrip(";") if entity.query else f"SELECT * FROM {entity.table}"
    col = f"w.{entity.window}"
    row = conn.execute(sa.text(f"SELECT min({col}), max({col}) FROM (\n{query}\n) w"),
                       _bind(query, {"legal_entity": legal_entity})).first()
    return tuple(row) if row else None


def _legal_entity_row(conn, m: SourceMapping, legal_entity: str, shown: str) -> dict:
    spec = m.legal_entity
    if "query" not in spec:
        return {}
    row = conn.execute(sa.text(spec["query"]), _bind(spec["query"], {"legal_entity": legal_entity})).mappings().first()
    if row is None:
        known = [str(r[0]) for r in conn.execute(sa.text(spec["list"]))] if spec.get("list") else []
        raise ExtractionError(f"legal entity {legal_entity!r} is not in {shown}; legal entities there: "
                              f"{', '.join(known) or 'none'}")
    return dict(row)


def _legal_entity_info(m: SourceMapping, row: dict, legal_entity: str, where: str) -> dict:
    spec = m.legal_entity
    info = {"legal_entity_id": legal_entity, "name": legal_entity, "currency": None, "pos_recommendations_enabled": True}
    if "query" in spec:
        columns = spec.get("columns") or {k: k for k in LEGAL_ENTITY_KEYS}
        for target, col_spec in columns.items():
            name = col_spec if isinstance(col_spec, str) else col_spec.get("column")
            if name not in row:
                raise MappingError(f"{where}: legal_entity column {target!r}: the query returns no column {name!r}")
            info[target] = row[name]
    else:
        unknown = [k for k in spec if k not in ("name", "currency", "pos_recommendations_enabled")]
        if unknown:
            raise MappingError(f"{where}: legal_entity has unknown key(s) {unknown}; give name, currency, "
                               "pos_recommendations_enabled (or a query)")
        info.update(spec)
    info["legal_entity_id"] = str(info["legal_entity_id"])
    info["pos_recommendations_enabled"] = bool(info["pos_recommendations_enabled"])
    return info


# --------------------------------------------------------------------------- the shipped formats, by name


def extract_entity_store(source_url: str | None, legal_entity: str, **options) -> dict:
    """An operational database in the demo schema (docs/schema.md): the `demo` mapping."""
    return extract_source("demo", legal_entity, source=source_url, **options)
