"""Input contract checks and the rule-by-rule splitter shared by the cleansing of every table."""

from __future__ import annotations

import polars as pl

from workbench.cleansing.rules import RULES

#: The columns cleansing needs from each entity-store table, with their contract dtypes
#: (docs/architecture.md). Other columns are carried along into the quarantine.
REQUIRED_COLUMNS: dict[str, dict[str, pl.DataType]] = {
    "sales_lines": {
        "transaction_id": pl.Utf8, "line_number": pl.Int64, "store_id": pl.Utf8, "channel": pl.Utf8,
        "customer_id": pl.Utf8, "product_id": pl.Utf8, "quantity": pl.Float64, "unit_price": pl.Float64,
        "transaction_time": pl.Datetime("us"), "transaction_type": pl.Utf8,
    },
    "products": {
        "product_id": pl.Utf8, "name": pl.Utf8, "category": pl.Utf8, "price": pl.Float64,
        "product_type": pl.Utf8,
    },
    "customers": {"customer_id": pl.Utf8},
    "stores": {"store_id": pl.Utf8},
    "wish_lists": {"customer_id": pl.Utf8, "product_id": pl.Utf8, "added_at": pl.Datetime("us")},
}


class CleansingInputError(ValueError):
    """An input table misses or mistypes a column the cleansing needs."""

    def __init__(self, message: str, table: str, column: str | None = None):
        super().__init__(message)
        self.table = table
        self.column = column


def conform(table: str, frame: pl.DataFrame) -> pl.DataFrame:
    """Check the required columns are there and cast them to the contract dtypes."""
    if not isinstance(frame, pl.DataFrame):
        raise CleansingInputError(f"table {table!r} must be a polars DataFrame, got {type(frame).__name__}", table)
    casts = _contract_casts(table, frame.schema, lambda column, dtype: frame.select(pl.col(column).cast(dtype, strict=True)))
    return frame.with_columns(casts) if casts else frame


def conform_lazy(table: str, frame: pl.LazyFrame) -> pl.LazyFrame:
    """`conform` for a scan: the same checks and casts, a value that does not cast found by one streaming pass."""
    casts = _contract_casts(
        table, frame.collect_schema(),
        lambda column, dtype: frame.select(pl.col(column).cast(dtype, strict=True).null_count()).collect(engine="streaming"),
    )
    return frame.with_columns(casts) if casts else frame


def _contract_casts(table: str, schema, try_cast) -> list[pl.Expr]:
    """The casts that bring `schema` to the contract of `table`; `try_cast(column, dtype)` raises
    where a value does not cast (re-raised naming the table and the column)."""
    missing = [c for c in REQUIRED_COLUMNS[table] if c not in schema]
    if missing:
        raise CleansingInputError(
            f"table {table!r} is missing column(s) {missing} (has {list(schema)})", table, missing[0]
        )
    casts = []
    for column, dtype in REQUIRED_COLUMNS[table].items():
        current = schema[column]
        if current == dtype:
            continue
        if isinstance(dtype, pl.Datetime) and isinstance(current, pl.Datetime):
            expr = pl.col(column).dt.replace_time_zone(None) if current.time_zone else pl.col(column)
            casts.append(expr.dt.cast_time_unit("us"))
            continue
        try:
            try_cast(column, dtype)
        except Exception as exc:  # noqa: BLE001 - re-raised with the table and column named
            raise CleansingInputError(
                f"column {column!r} of table {table!r} is {current}, expected {dtype} ({exc.__class__.__name__})",
                table, column,
            ) from exc
        casts.append(pl.col(column).cast(dtype))
    return casts


def fmt(template: str, *columns: str | pl.Expr) -> pl.Expr:
    """`pl.format` where a null value reads 'null' instead of nulling the whole sentence."""
    exprs = [(pl.col(c) if isinstance(c, str) else c).cast(pl.Utf8).fill_null("null") for c in columns]
    return pl.format(template, *exprs)


def blank(column: str) -> pl.Expr:
    """Null, or only whitespace."""
    return pl.col(column).is_null() | (pl.col(column).str.strip_chars() == "")


class Splitter:
    """Applies the rules of one table in order; each rejected row goes to the first rule rejecting it."""

    def __init__(self, table: str, frame: pl.DataFrame, original_columns: list[str]):
        self.table = table
        self.rows_in = frame.height
        self.rest = frame
        self.columns = original_columns
        self.counts = {rule: 0 for rule in RULES[table]}
        self._quarantined: list[pl.DataFrame] = []

    def reject(
        self, rule: str, mask: pl.Expr, reason: pl.Expr | str, *, enabled: bool = True, in_context: bool = False
    ) -> int:
        """Move the rows of `rest` where `mask` is true (null counts as false) to the quarantine.

        The reason is worded on the rejected rows only, unless `in_context` (it looks at kept rows too).
        """
        if rule not in self.counts:
            raise KeyError(f"{rule!r} is not a rule of table {self.table!r}")
        if not enabled or self.rest.height == 0:
            return 0
        reason_expr = (pl.lit(reason) if isinstance(reason, str) else reason).alias("reason")
        flagged = self.rest.with_columns(mask.fill_null(False).alias("__reject"))
        if in_context:
            flagged = flagged.with_columns(reason_expr)
            reason_expr = pl.col("reason")
        bad = flagged.filter(pl.col("__reject"))
        if bad.height:
            self._quarantined.append(bad.select(*self.columns, pl.lit(rule).alias("rule"), reason_expr))
            self.rest = flagged.filter(~pl.col("__reject")).drop("__reject", "reason", strict=False)
            self.counts[rule] += bad.height
        return bad.height

    @property
    def rejected(self) -> list[pl.DataFrame]:
        """The rows rejected so far, one frame per rule that rejected any (as `quarantine` has them), in order."""
        return list(self._quarantined)

    def quarantine(self, template: pl.DataFrame) -> pl.DataFrame:
        """All rejected rows: the original columns, `rule` and `reason` (empty with that schema if none)."""
        empty = template.select(self.columns).clear().with_columns(
            pl.lit(None, pl.Utf8).alias("rule"), pl.lit(None, pl.Utf8).alias("reason")
        )
        return pl.concat([empty, *self._quarantined], how="vertical_relaxed")
