"""The sales lines of an entity store cleansed out of core: batch by batch of whole days, each batch read
from the store's parquet parts (row groups outside its days are skipped), its interactions, baskets and
quarantine written to parquet, so memory holds one batch, not the history.

Why batches of days give the same result, row for row, as cleansing all lines at once
(`workbench.cleansing.sales.cleanse_sales_lines`):
- the lines are cleansed in time order; a batch holds one time range [lo, hi), so the batches in turn
  are that order (lines without a time, a batch of their own, come last, as they sort last);
- rules 1-9 look at one line, rules 10-11 at the lines of one transaction: a batch never cuts a
  transaction, since it is cut only at a day start that no transaction's lines span;
- a line's position in the store (`__row`, the last sort key) is counted over the whole store;
- the quarantine is written rule by rule, each rule's rows batch by batch: the order of one pass.
What needs all the data at once, and so stays in memory: the day counts and the (rare) transactions
whose lines carry more than one time, found by one streaming pass over two columns, and, only when
rules 12-14 are on (they count baskets per product and customer over all interactions, repeatedly),
the lines kept after rule 11 (one per interaction).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import polars as pl

from workbench.cleansing.frames import Splitter
from workbench.cleansing.rules import RULES, CleansingRules
from workbench.cleansing.sales import (
    baskets_of, interactions_of, line_rules, prepare_lines, support_rules, support_rules_on,
)

#: Lines per batch (about): a batch is whole days, so a day with more lines makes a larger batch.
BATCH_LINES = 100_000
#: The column holding a line's position in the store (the last sort key of every rule).
ROW = "__row"

_TIME = "transaction_time"


@dataclass
class LinesOutcome:
    """Where the cleansed sales lines went (parquet files) and the per-rule counts."""

    interactions: Path
    baskets: Path
    quarantine: Path
    n_baskets: pl.DataFrame  # product_id, n_baskets: distinct baskets per product among the interactions
    rows_in: int = 0
    counts: dict[str, int] = field(default_factory=lambda: {rule: 0 for rule in RULES["sales_lines"]})


def time_ranges(lines: pl.LazyFrame, batch_lines: int) -> list[tuple[datetime | None, datetime | None]]:
    """Consecutive ranges [lo, hi) of whole days with about `batch_lines` lines each (None: open), cut
    only at day starts that no transaction's lines span."""
    timed = lines.select("transaction_id", _TIME).filter(pl.col(_TIME).is_not_null())
    days, spans = pl.collect_all([
        timed.group_by(pl.col(_TIME).dt.truncate("1d").alias("day")).len().sort("day"),
        # transactions keyed by a hash of their id: a collision only joins two spans, so cuts stay safe
        timed.group_by(pl.col("transaction_id").hash(seed=0).alias("__tx"))
        .agg(pl.col(_TIME).min().alias("lo"), pl.col(_TIME).max().alias("hi"))
        .filter(pl.col("lo") < pl.col("hi")).select("lo", "hi"),
    ], engine="streaming")
    cuts: list[datetime] = []
    in_batch = 0
    for day, count in days.iter_rows():
        if in_batch >= batch_lines and spans.filter((pl.col("lo") < day) & (pl.col("hi") >= day)).height == 0:
            cuts.append(day)
            in_batch = 0
        in_batch += count
    edges = [None, *cuts, None]
    return list(zip(edges[:-1], edges[1:]))


def _in_range(lo: datetime | None, hi: datetime | None) -> pl.Expr:
    expr = pl.col(_TIME).is_not_null()
    if lo is not None:
        expr = expr & (pl.col(_TIME) >= lo)
    if hi is not None:
        expr = expr & (pl.col(_TIME) < hi)
    return expr


def _concat(files: list[Path], target: Path, empty: pl.DataFrame) -> Path:
    """The files stacked in order into `target`, streamed (`empty` gives the schema when there are none)."""
    if files:
        pl.scan_parquet(files).sink_parquet(target)
    else:
        empty.write_parquet(target)
    return target


def cleanse_lines_in_batches(
    lines: pl.LazyFrame,
    rules: CleansingRules,
    products: pl.DataFrame,
    products_quarantine: pl.DataFrame,
    catalog_ids: pl.Series,
    as_of: datetime | None,
    scratch: Path,
    batch_lines: int = BATCH_LINES,
) -> LinesOutcome:
    """Cleanse the sales lines of `lines` (a scan of the entity store, conformed) into parquet files under
    `scratch`: the same interactions, baskets, quarantine and counts as `cleanse_sales_lines` on all lines."""
    schema = lines.collect_schema()
    columns = [c for c in schema if c != ROW]
    # a line's position is best counted by the scan (`scan_parquet(..., row_index_name=ROW)`): a
    # with_row_index above the scan keeps each batch's time filter out of the parquet reader, so every
    # batch would read the whole store (time quadratic in lines)
    rows = lines if ROW in schema else lines.with_row_index(ROW)
    share = lines.select(pl.col("transaction_id").str.contains(r"^\d+$").mean()).collect(engine="streaming").item()
    id_prefixes = bool(share is not None and share >= 0.5)  # as `online_retail_like`, over the whole store
    keep_rest = support_rules_on(rules)
    for folder in ("q", "i", "b", "r"):
        (scratch / folder).mkdir(parents=True, exist_ok=True)
    order = {rule: i for i, rule in enumerate(RULES["sales_lines"])}
    quarantined: list[tuple[int, int, Path]] = []  # (rule, batch, file): sorted, the order of one pass
    interaction_files, basket_files, rest_files, n_baskets = [], [], [], []
    counts = {rule: 0 for rule in RULES["sales_lines"]}
    rows_in = 0
    ranges = [*time_ranges(lines, batch_lines), "no time"]
    template = None
    for batch, bounds in enumerate(ranges):
        where = pl.col(_TIME).is_null() if bounds == "no time" else _in_range(*bounds)
        chunk = rows.filter(where).collect()
        if template is None:
            template = chunk.select(columns).clear()
        if chunk.height == 0:
            continue
        s = Splitter("sales_lines", prepare_lines(chunk, products, products_quarantine, catalog_ids), columns)
        del chunk
        line_rules(s, rules, as_of, id_prefixes)
        rows_in += s.rows_in
        for rule, n in s.counts.items():
            counts[rule] += n
        for frame in s.rejected:
            rule = frame["rule"][0]
            file = scratch / "q" / f"{order[rule]:02d}-{batch:06d}.parquet"
            frame.write_parquet(file)
            quarantined.append((order[rule], batch, file))
        if keep_rest:
            file = scratch / "r" / f"{batch:06d}.parquet"
            s.rest.write_parquet(file)
            rest_files.append(file)
            continue
        interactions = interactions_of(s.rest)
        del s
        interaction_files.append(scratch / "i" / f"{batch:06d}.parquet")
        interactions.write_parquet(interaction_files[-1])
        basket_files.append(scratch / "b" / f"{batch:06d}.parquet")
        baskets_of(interactions).write_parquet(basket_files[-1])
        n_baskets.append(interactions.group_by("product_id").agg(pl.col("basket_id").n_unique().alias("n_baskets")))
    quarantine_files = [file for _, _, file in sorted(quarantined)]

    if keep_rest:  # rules 12-14 count over all interactions: the kept lines, one per interaction, at once
        s = Splitter("sales_lines", pl.concat([pl.read_parquet(f) for f in rest_files]), columns)
        support_rules(s, rules)
        for rule, n in s.counts.items():
            counts[rule] += n
        for i, frame in enumerate(s.rejected):
            quarantine_files.append(scratch / "q" / f"support-{i:04d}.parquet")
            frame.write_parquet(quarantine_files[-1])
        interactions = interactions_of(s.rest)
        del s
        interaction_files = [scratch / "i" / "all.parquet"]
        interactions.write_parquet(interaction_files[0])
        basket_files = [scratch / "b" / "all.parquet"]
        baskets_of(interactions).write_parquet(basket_files[0])
        n_baskets = [interactions.group_by("product_id").agg(pl.col("basket_id").n_unique().alias("n_baskets"))]
        del interactions

    empty_quarantine = Splitter("sales_lines", template, columns).quarantine(template)
    return LinesOutcome(
        interactions=_concat(interaction_files, scratch / "interactions.parquet", pl.DataFrame()),
        baskets=_concat(basket_files, scratch / "baskets.parquet", pl.DataFrame()),
        quarantine=_concat(quarantine_files, scratch / "quarantine.parquet", empty_quarantine),
        n_baskets=(pl.concat(n_baskets).group_by("product_id").agg(pl.col("n_baskets").sum())
                   if n_baskets else pl.DataFrame(schema={"product_id": pl.Utf8, "n_baskets": pl.Int64})),
        rows_in=rows_in,
        counts=counts,
    )
