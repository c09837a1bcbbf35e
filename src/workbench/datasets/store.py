"""The entity store of one legal entity (`data/raw/<legal_entity>/`): its tables, how a run updates
it, and the one place that writes it.

Layout (docs/architecture.md): `sales_lines/part-*.parquet`, `products.parquet`,
`customers.parquet`, `stores.parquet`, `wish_lists.parquet`, `legal_entity.json`, `watermark.json`.

How a run updates it (`write_entity_store`):
- **Upsert by transaction.** The run hands over every sales line of the window it read; each
  transaction of that window replaces its stored lines whole (late lines, a receipt voided or
  corrected after extraction), and a stored transaction of the window that the source no longer
  has is removed. Transactions outside the window are kept as they are. So after any sequence of
  runs, the store holds what one full extraction would, as long as every change in the source
  happened inside a window some run re-read (the extraction's lookback). A transaction whose lines
  did not change is left in its part: re-reading a window rewrites nothing.
- **Atomic publication.** Every run writes a complete new version of the store (unchanged parts
  are hard links, not copies) and publishes it with one atomic symlink swap
  (`workbench.storage.publish_directory`): parts, dimensions and watermark appear together or not
  at all, whatever kills the process.
- **One writer at a time.** The read-merge-publish step holds an OS lock on
  `data/raw/.<legal_entity>.lock`, so overlapping extractions (a cron run beside a manual one)
  serialise: no line is stored twice and no watermark history entry is lost.
- **One source per store.** The watermark records the source's identity (mapping and source,
  password redacted); a run from a different source is refused unless it rebuilds the store
  (`incremental=False`), so lines of two retailers are never mixed.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import tempfile
from contextlib import contextmanager
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Iterator

import polars as pl

from workbench import paths, storage
from workbench.datasets.schema import TIME_FORMAT

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
SCHEMAS = {"sales_lines": SALES_LINES_SCHEMA, **DIMENSIONS}
LEGAL_ENTITY_KEYS = ("legal_entity_id", "name", "currency", "pos_recommendations_enabled")
_ORDER = ["transaction_time", "transaction_id", "line_number"]


class ExtractionError(ValueError):
    """The source, the mapping, the window or the legal entity is not usable; the message says which and why."""


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


def in_window(column: str, lo: datetime | None, hi: datetime | None) -> pl.Expr:
    expr = pl.lit(True)
    if lo is not None:
        expr = expr & (pl.col(column) >= lo)
    if hi is not None:
        expr = expr & (pl.col(column) < hi)
    return expr


# --------------------------------------------------------------------------- reading


def store_dir(legal_entity: str, out_dir: str | os.PathLike | None = None) -> Path:
    return Path(out_dir) if out_dir is not None else paths.raw_dir(legal_entity)


def read_watermark(legal_entity: str, *, out_dir: str | os.PathLike | None = None) -> dict | None:
    path = store_dir(legal_entity, out_dir) / "watermark.json"
    return json.loads(path.read_text()) if path.exists() else None


def legal_entity_enabled(legal_entity: str, default: bool = True) -> bool:
    """The legal entity's `pos_recommendations_enabled` (data/raw/<le>/legal_entity.json): whether
    its POS shows recommendations; `default` where the extraction recorded no such setting."""
    path = paths.raw_dir(legal_entity) / "legal_entity.json"
    if path.exists():
        value = json.loads(path.read_text()).get("pos_recommendations_enabled")
        if isinstance(value, bool):
            return value
    return default


def _part_files(root: Path) -> list[Path]:
    return sorted((root / "sales_lines").glob("part-*.parquet"))


def read_sales_lines(legal_entity: str, *, out_dir: str | os.PathLike | None = None) -> pl.DataFrame:
    """Every extracted sales line of the legal entity, all parts, in time order."""
    parts = _part_files(store_dir(legal_entity, out_dir))
    if not parts:
        return pl.DataFrame(schema=SALES_LINES_SCHEMA)
    return pl.concat([pl.read_parquet(p) for p in parts], how="vertical")


def scan_sales_lines(legal_entity: str, *, out_dir: str | os.PathLike | None = None) -> pl.LazyFrame:
    """`read_sales_lines` as a scan: nothing is read until it is collected or sunk."""
    parts = _part_files(store_dir(legal_entity, out_dir))
    return pl.scan_parquet(parts) if parts else pl.LazyFrame(schema=SALES_LINES_SCHEMA)


def read_tables(legal_entity: str, *, out_dir: str | os.PathLike | None = None,
                sales_lines: bool = True) -> dict[str, pl.DataFrame]:
    """The whole entity store: sales_lines (unless `sales_lines=False`) and the dimension tables (empty
    with their schema if absent)."""
    root = store_dir(legal_entity, out_dir)
    tables = {"sales_lines": read_sales_lines(legal_entity, out_dir=out_dir)} if sales_lines else {}
    for name, schema in DIMENSIONS.items():
        path = root / f"{name}.parquet"
        tables[name] = pl.read_parquet(path) if path.exists() else pl.DataFrame(schema=schema)
    return tables


# --------------------------------------------------------------------------- writing


def conform(df: pl.DataFrame | pl.LazyFrame, schema: dict[str, pl.DataType], table: str, source: str):
    """Exactly the contract's columns, order and types; a value that cannot be converted is an error, not a null
    (for a scan, when it is collected)."""
    have_schema = df.collect_schema()
    missing = [c for c in schema if c not in have_schema]
    if missing:
        raise ExtractionError(f"{source}: {table} lacks column(s) {', '.join(missing)}")
    exprs = []
    for name, dtype in schema.items():
        col, have = pl.col(name), have_schema[name]
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


@contextmanager
def writer_lock(root: Path) -> Iterator[None]:
    """The OS lock of one entity store (released by the kernel if the holder dies)."""
    root.parent.mkdir(parents=True, exist_ok=True)
    lock = root.parent / f".{root.name}.lock"
    with open(lock, "a+") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def _fingerprints(lines: pl.LazyFrame) -> pl.LazyFrame:
    """One row per transaction: its line count and an order-free hash of its lines."""
    return lines.group_by("transaction_id").agg(
        pl.len().alias("__n"), (pl.struct(list(SALES_LINES_SCHEMA)).hash(seed=7) % (1 << 40)).sum().alias("__h")
    )


def changed_source_message(legal_entity: str, root: Path, recorded: dict, identity: dict) -> str:
    def text(i: dict) -> str:
        return f"{i.get('source')} (mapping {i.get('mapping')})"

    return (f"the entity store of legal entity {legal_entity!r} ({root}) was extracted from {text(recorded)}, "
            f"but this run reads {text(identity)}: refusing to mix two sources in one store. Rebuild it from the "
            f"new source with incremental=False (-p incremental=false), or extract into another legal_entity.")


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
    identity: dict | None = None,
    window: tuple[datetime | None, datetime | None] = (None, None),
    read_window: tuple[datetime | None, datetime | None] | None = None,
    incremental: bool = True,
    out_dir: str | os.PathLike | None = None,
    validate=None,
) -> dict:
    """Upsert the sales lines read from `read_window` (default `window`), rewrite the dimensions,
    move the watermark, and publish the new version of the store atomically (see the module doc).

    `sales_lines` holds every line the source has in the read window. `validate(tables)`, when
    given, is called on the store as it will be published (a data contract; what it returns is the
    summary's `contracts`); raising there publishes nothing.
    """
    paths.check_legal_entity(legal_entity)
    root = store_dir(legal_entity, out_dir)
    read_window = window if read_window is None else read_window
    # a frame is checked here; a scan (read out of core) when it is collected
    lines = conform(sales_lines, SALES_LINES_SCHEMA, "sales_lines", source).lazy()
    dims = {name: conform(df, DIMENSIONS[name], name, source) for name, df in
            (("products", products), ("customers", customers), ("stores", stores), ("wish_lists", wish_lists))}
    missing = [k for k in LEGAL_ENTITY_KEYS if k not in legal_entity_info]
    if missing:
        raise ExtractionError(f"{source}: legal entity settings lack {', '.join(missing)}")
    info = {k: legal_entity_info[k] for k in LEGAL_ENTITY_KEYS}
    info["pos_recommendations_enabled"] = bool(info["pos_recommendations_enabled"])
    identity = identity or {"mapping": None, "source": source}

    with writer_lock(root):
        previous = read_watermark(legal_entity, out_dir=out_dir) if root.exists() else None
        recorded = (previous or {}).get("source_identity")
        if incremental and recorded and recorded != identity:
            raise ExtractionError(changed_source_message(legal_entity, root, recorded, identity))
        old_parts = _part_files(root) if incremental and root.exists() else []

        if old_parts:
            # Per transaction of the run and of the store's re-read window (and any transaction the run
            # brings): line count and hash. One row per transaction is all that is held of either.
            fresh = _fingerprints(lines).collect(engine="streaming")
            fresh_ids = fresh.select("transaction_id")
            stored = pl.scan_parquet(old_parts).filter(
                in_window("transaction_time", *read_window) | pl.col("transaction_id").is_in(fresh_ids["transaction_id"].implode())
            )
            stored_fp = _fingerprints(stored).collect(engine="streaming")
            same = fresh.join(stored_fp, on=["transaction_id", "__n", "__h"], how="semi").select("transaction_id")
            stored_ids = stored_fp.select("transaction_id")
            new_ids = fresh_ids.join(stored_ids, on="transaction_id", how="anti")
            replace = stored_ids.join(same, on="transaction_id", how="anti")
            removed_ids = replace.join(fresh_ids, on="transaction_id", how="anti")
            n_new_ids = new_ids.height
            # as anti and semi joins: a line without a transaction id matches no transaction
            is_same = pl.col("transaction_id").is_in(same["transaction_id"].implode()).fill_null(False)
            n_new = pl.col("transaction_id").is_in(new_ids["transaction_id"].implode()).fill_null(False).sum()
            n_same = is_same.sum()
        else:  # an empty store: every transaction of the run is new (and nothing is held per transaction)
            replace = removed_ids = pl.DataFrame(schema={"transaction_id": pl.String})
            n_new_ids = lines.select(pl.col("transaction_id").n_unique()).collect(engine="streaming").item()
            is_same, n_new, n_same = pl.lit(False), pl.len(), pl.lit(0, pl.UInt32)
        window_lines, new_lines, already, newest = lines.select(
            pl.len().alias("lines"), n_new.alias("new"), n_same.alias("already"),
            pl.col("transaction_time").filter(~is_same).max().alias("newest"),
        ).collect(engine="streaming").row(0)
        write = lines.filter(~is_same)

        store = {"sales_lines": None, **dims}
        extracted_at = datetime.now(timezone.utc).replace(tzinfo=None)
        with storage.publish_directory(root) as stage:
            (stage / "sales_lines").mkdir()
            drop = replace["transaction_id"].implode()
            for part in old_parts:
                target = stage / "sales_lines" / part.name
                scan = pl.scan_parquet(part)
                if replace.height and scan.select(pl.col("transaction_id").is_in(drop).any()).collect().item():
                    rest = scan.filter(~pl.col("transaction_id").is_in(drop))
                    if rest.select(pl.len()).collect(engine="streaming").item():
                        rest.sink_parquet(target)
                else:
                    _link(part, target)
            part_name = None
            if window_lines - already:
                stem, n = f"part-{newest:%Y%m%dT%H%M%S}", 1
                part = stage / "sales_lines" / f"{stem}.parquet"
                while part.exists():  # a backfill can end on the same second as an earlier part
                    n += 1
                    part = stage / "sales_lines" / f"{stem}-{n}.parquet"
                _write_sorted(write, part, stage / ".sorting")
                part_name = part.name
            parts = _part_files(stage)
            kept_lines = pl.scan_parquet(parts) if parts else pl.LazyFrame(schema=SALES_LINES_SCHEMA)
            store["sales_lines"] = kept_lines
            contract = validate(store) if validate is not None else None
            for name, df in dims.items():
                df.write_parquet(stage / f"{name}.parquet")
            (stage / "legal_entity.json").write_text(json.dumps(info, indent=2) + "\n")

            # the watermark: the newest stored transaction that is not dated after this run
            time = pl.col("transaction_time")
            n_kept, newest_kept = kept_lines.select(
                pl.len().alias("lines"), time.filter(time <= extracted_at + timedelta(days=1)).max().alias("newest")
            ).collect(engine="streaming").row(0)
            mark = newest_kept.isoformat(sep=" ") if newest_kept is not None else None
            run = {
                "window": {"start": _iso(window[0]), "end": _iso(window[1])},
                "read_window": {"start": _iso(read_window[0]), "end": _iso(read_window[1])},
                "part": part_name,
                "new_lines": new_lines,
                "replaced_transactions": replace.height - removed_ids.height,
                "removed_transactions": removed_ids.height,
                "source": source,
                "incremental": incremental,
                "extracted_at": extracted_at.isoformat(sep=" ", timespec="seconds"),
            }
            history = ((previous or {}).get("history", []) if incremental else []) + [run]
            watermark = {"transaction_time": mark, "extracted_at": run["extracted_at"], "source_identity": identity,
                         "parts": [p.name for p in parts], "history": history}
            (stage / "watermark.json").write_text(json.dumps(watermark, indent=2, default=str) + "\n")

    return {
        "legal_entity": legal_entity,
        "source": source,
        "path": str(root),
        "window": run["window"],
        "read_window": run["read_window"],
        "window_lines": window_lines,
        "new_lines": run["new_lines"],
        "new_transactions": n_new_ids,
        "replaced_transactions": run["replaced_transactions"],
        "removed_transactions": run["removed_transactions"],
        "already_extracted_lines": already,
        "part": part_name,
        "watermark": mark,
        "rows": {name: n_kept if name == "sales_lines" else df.height for name, df in store.items()},
        "contracts": contract,
    }


#: Lines sorted at a time when a part is written: the lines are cut into ranges of whole days.
SORT_BATCH_LINES = 500_000


def _write_sorted(lines: pl.LazyFrame, part: Path, scratch: Path, batch_lines: int = SORT_BATCH_LINES) -> None:
    """`lines` sorted by time, transaction and line number (ties in their order) into one parquet file, out
    of core: ranges of whole days, in time order, each sorted on its own (lines without a time first, as
    a sort puts them), then streamed into `part`."""
    time = pl.col("transaction_time")
    days = lines.group_by(time.dt.truncate("1d").alias("day")).len().sort("day", nulls_last=False).collect(engine="streaming")
    ranges, lo, in_batch = [], None, 0
    for day, count in days.filter(pl.col("day").is_not_null()).iter_rows():
        if in_batch >= batch_lines:
            ranges.append((lo, day))
            lo, in_batch = day, 0
        in_batch += count
    ranges.append((lo, None))
    wheres = [time.is_null()] + [time.is_not_null() & in_window("transaction_time", lo, hi) for lo, hi in ranges]
    scratch.mkdir()
    files = []
    for i, where in enumerate(wheres):
        batch = lines.filter(where).collect()
        if batch.height:
            files.append(scratch / f"{i:06d}.parquet")
            batch.sort(_ORDER, maintain_order=True).write_parquet(files[-1])
        del batch
    pl.scan_parquet(files).sink_parquet(part)
    shutil.rmtree(scratch)


def scratch_dir(final: Path, what: str) -> Path:
    """A private scratch folder next to `final` (the same file system: its files can be linked into a
    published version). Those a killed process left behind are removed first."""
    final.parent.mkdir(parents=True, exist_ok=True)
    prefix = f".{final.name}.{what}-"
    for left in final.parent.glob(f"{prefix}*"):
        pid = left.name[len(prefix):].split("-", 1)[0]
        if pid.isdigit() and int(pid) != os.getpid() and not storage._pid_alive(int(pid)):
            shutil.rmtree(left, ignore_errors=True)
    return Path(tempfile.mkdtemp(prefix=f"{prefix}{os.getpid()}-", dir=final.parent))


def _link(src: Path, dst: Path) -> None:
    """An unchanged part goes into the new version as a hard link (no copy), or a copy where links fail."""
    try:
        os.link(src.resolve(), dst)
    except OSError:
        shutil.copy2(src, dst)


def _iso(t: datetime | None) -> str | None:
    return t.isoformat(sep=" ") if t is not None else None
