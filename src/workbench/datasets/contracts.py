"""The entity store's data contract, checked with pandera on every extraction before anything is published.

The store is raw data: cleansing, not extraction, deals with the dirt every retailer has (a few lines of
unknown products, duplicate product rows, a receipt dated in the future), so each rule tolerates a small
share of offending rows (`TOLERANCE`, 5%). A wrong mapping breaks a rule wholesale (a column mapped from
the wrong source column, ids in another format than the lines', times in another layout), and the
extraction stops with the entity, the column, the rule and a few offending rows, publishing nothing.
Types are checked strictly.

Rules:
sales_lines  transaction_id, transaction_time, quantity, unit_price present; transaction_time in a
             plausible range; transaction_type a known type; one time, store and customer per
             transaction; product_id in products, customer_id in customers, store_id in stores
             (each where that table is not empty: an optional entity the retailer does not have)
products     product_id present and unique; price not negative
customers    customer_id present and unique;  stores: store_id present and unique
wish_lists   customer_id in customers, product_id in products, added_at present
"""

from __future__ import annotations

from datetime import datetime, timedelta

import pandera.polars as pa
import polars as pl

from workbench.datasets.store import SCHEMAS, ExtractionError

TOLERANCE = 0.05
TRANSACTION_TYPES = ("sale", "return", "void", "cancellation", "adjustment")
EARLIEST = datetime(1990, 1, 1)
#: the columns that say which row an offending value sits in
ROW_KEYS = {"sales_lines": ("transaction_id", "line_number"), "products": ("product_id",), "customers": ("customer_id",),
            "stores": ("store_id",), "wish_lists": ("customer_id", "product_id")}


class ContractError(ExtractionError):
    """The extracted store breaks its data contract; `report` holds every rule's result."""

    def __init__(self, message: str, report: list[dict]):
        super().__init__(message)
        self.report = report


def _check(name: str, test, error: str) -> pa.Check:
    """An element-wise check: `test(column_name)` is a polars expression, true where the row is fine."""
    return pa.Check(lambda data: data.lazyframe.select(test(data.key).fill_null(True)), name=name, error=error)


def _present(name: str = "present") -> pa.Check:
    return _check(name, lambda c: pl.col(c).is_not_null(), "has a value")


def _in(ids: pl.Series, what: str) -> pa.Check:
    ids = ids.drop_nulls().unique().implode()
    return _check(f"in_{what}", lambda c: pl.col(c).is_null() | pl.col(c).is_in(ids), f"is one of {what}")


def _unique() -> pa.Check:
    return _check("unique", lambda c: pl.col(c).is_null() | pl.col(c).is_unique(), "is unique")


def _one_per_transaction(column: str) -> pa.Check:
    return _check("one_per_transaction", lambda c: pl.col(c).n_unique().over("transaction_id") == 1,
                  f"one {column} per transaction")


def schemas(store: dict[str, pl.DataFrame], now: datetime | None = None) -> dict[str, pa.DataFrameSchema]:
    """The pandera schema of each table; referential rules are built from the store's own dimensions."""
    now = now or datetime.now()
    products, customers, stores = (store[t]["product_id" if t == "products" else t[:-1] + "_id"]
                                   for t in ("products", "customers", "stores"))

    def refs(ids: pl.Series, what: str) -> list[pa.Check]:
        return [_in(ids, what)] if ids.drop_nulls().len() else []

    columns = {
        "sales_lines": {
            "transaction_id": [_present()],
            "transaction_time": [_present(), _check("plausible_time", lambda c: pl.col(c).is_between(EARLIEST, now + timedelta(days=1)),
                                                    f"between {EARLIEST:%Y-%m-%d} and the extraction"),
                                 _one_per_transaction("time")],
            "quantity": [_present()],
            "unit_price": [_present()],
            "transaction_type": [_present(), _check("known_type", lambda c: pl.col(c).is_in(TRANSACTION_TYPES),
                                                    f"one of {', '.join(TRANSACTION_TYPES)}")],
            "product_id": refs(products, "products"),
            "customer_id": refs(customers, "customers") + [_one_per_transaction("customer")],
            "store_id": refs(stores, "stores") + [_one_per_transaction("store")],
        },
        "products": {"product_id": [_present(), _unique()],
                     "price": [_check("not_negative", lambda c: pl.col(c).is_nan() | (pl.col(c) >= 0), ">= 0")]},
        "customers": {"customer_id": [_present(), _unique()]},
        "stores": {"store_id": [_present(), _unique()]},
        "wish_lists": {"customer_id": refs(customers, "customers"), "product_id": refs(products, "products"),
                       "added_at": [_present()]},
    }
    return {
        table: pa.DataFrameSchema(
            {c: pa.Column(dtype, checks=columns[table].get(c, []), nullable=True) for c, dtype in SCHEMAS[table].items()},
            name=table, strict=True, ordered=True,
        )
        for table in SCHEMAS
    }


#: Sales lines validated at a time when the store's lines come as a scan (batches of whole transactions).
BATCH_LINES = 500_000


def check_store(store: dict[str, pl.DataFrame | pl.LazyFrame], where: str = "entity store",
                tolerance: float = TOLERANCE) -> list[dict]:
    """Validate every table; returns the report (one row per rule). Raises `ContractError` naming each
    broken rule (share of offending rows above `tolerance`, or any type error) with a few of its rows.

    Sales lines given as a scan are validated out of core, in batches of whole transactions (every rule
    looks at one line or at one transaction's lines, so the counts add up); only a broken contract reads
    them whole, to name the offending rows as a single pass would."""
    lines = store["sales_lines"]
    if isinstance(lines, pl.LazyFrame):
        report = _check_lines_in_batches(store, lines, tolerance)
        if report is not None:
            return report
        store = {**store, "sales_lines": lines.collect()}
    return _check_frames(store, where, tolerance)


def _check_lines_in_batches(store: dict, lines: pl.LazyFrame, tolerance: float) -> list[dict] | None:
    """The report of `check_store`, validating the sales lines batch by batch; None if any rule is broken."""
    schemas_ = schemas({**store, "sales_lines": pl.DataFrame(schema=SCHEMAS["sales_lines"])})
    height = lines.select(pl.len()).collect(engine="streaming").item()
    n_batches = max(1, -(-height // BATCH_LINES))
    offending: dict[tuple[str, str], int] = {}
    for i in range(n_batches):
        batch = lines.filter(pl.col("transaction_id").hash(seed=0) % n_batches == i).collect() if n_batches > 1 \
            else lines.collect()
        rest = dict(store, sales_lines=batch)
        part = _check_frames(rest, "", 1.0, tables=("sales_lines",), schema_of=schemas_, keep_going=True)
        del batch, rest
        if any(e["rows"] is None for e in part):  # a type error: not a matter of share
            return None
        for e in part:
            offending[(e["column"], e["rule"])] = offending.get((e["column"], e["rule"]), 0) + e["rows"]
    report = []
    for e in _check_frames(store, "", tolerance, tables=tuple(t for t in SCHEMAS if t != "sales_lines"), schema_of=schemas_,
                           keep_going=True):
        report.append(e)
    lines_report = []
    for column, col in schemas_["sales_lines"].columns.items():
        for check in col.checks:
            n = offending.get((column, check.name), 0)
            share = n / height if height else 0.0
            if share > tolerance:
                return None
            lines_report.append({"entity": "sales_lines", "column": column, "rule": check.name, "rows": n,
                                 "share": round(share, 4), "tolerated": tolerance, "status": "ok"})
    if any(e["status"] == "broken" for e in report):
        return None
    return lines_report + report


def _check_frames(store: dict[str, pl.DataFrame], where: str, tolerance: float, tables: tuple[str, ...] | None = None,
                  schema_of: dict | None = None, keep_going: bool = False) -> list[dict]:
    report, broken = [], []
    for table, schema in (schema_of or schemas(store)).items():
        if tables is not None and table not in tables:
            continue
        frame = store[table]
        cases = pl.DataFrame(schema={"column": pl.String, "check": pl.String, "index": pl.Int64, "failure_case": pl.String})
        try:
            schema.validate(frame, lazy=True)
        except pa.errors.SchemaErrors as exc:
            cases = exc.failure_cases.select(pl.col("column").cast(pl.String), pl.col("check").cast(pl.String),
                                             pl.col("index").cast(pl.Int64), pl.col("failure_case").cast(pl.String))
        for column, col in schema.columns.items():
            for check in col.checks:
                rows = cases.filter((pl.col("column") == column) & (pl.col("check") == (check.error or check.name)))
                n = rows["index"].n_unique()
                share = n / frame.height if frame.height else 0.0
                entry = {"entity": table, "column": column, "rule": check.name, "rows": n,
                         "share": round(share, 4), "tolerated": tolerance, "status": "ok" if share <= tolerance else "broken"}
                report.append(entry)
                if share > tolerance:
                    broken.append((entry, check.error, _examples(frame, table, column, rows)))
        # types, missing or extra columns: not a matter of share
        other = cases.filter(pl.col("index").is_null() | ~pl.col("column").is_in(list(schema.columns)))
        for column, check, value in other.select("column", "check", "failure_case").unique().iter_rows():
            entry = {"entity": table, "column": column, "rule": check, "rows": None, "share": None,
                     "tolerated": 0.0, "status": "broken"}
            report.append(entry)
            broken.append((entry, check, f"{value!r}"))
    if broken and not keep_going:
        lines = [f"{e['entity']}.{e['column']} rule {e['rule']} ({what}): "
                 + (f"{e['rows']} of {store[e['entity']].height} rows ({e['share']:.1%}, tolerated {e['tolerated']:.0%}); "
                    if e["rows"] is not None else "")
                 + examples for e, what, examples in broken]
        raise ContractError(f"{where}: the extracted data breaks the entity store's contract, nothing was written "
                            "(check the source mapping):\n  " + "\n  ".join(lines), report)
    return report


def _examples(frame: pl.DataFrame, table: str, column: str, rows: pl.DataFrame, n: int = 3) -> str:
    keys = [k for k in ROW_KEYS[table] if k != column]
    picked = frame.with_row_index("__i").filter(pl.col("__i").is_in(rows["index"].unique().sort().head(n).implode()))
    out = []
    for row in picked.iter_rows(named=True):
        at = ", ".join(f"{k} {row[k]!r}" for k in keys)
        out.append(f"row {row['__i']}{' (' + at + ')' if at else ''}: {column} = {row[column]!r}")
    return "; ".join(out)
