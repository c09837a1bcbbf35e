"""`CleansingResult`: the cleansed tables, the quarantine, the per-rule report and its reconciliation."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator, Mapping
from pathlib import Path

import polars as pl

from workbench.cleansing.rules import RULES, TABLES, CleansingRules
from workbench.storage import publish_directory

#: Pseudo-rules of the report: the rows read, and the rows kept (the cleansed table).
ROWS_IN = "rows_in"
ROWS_KEPT = "rows_kept"

#: The cleansed table each input table reconciles with (its kept rows).
KEPT_TABLE = {
    "sales_lines": "interactions",
    "products": "catalog",
    "customers": "customers",
    "stores": "stores",
    "wish_lists": "wish_lists",
}

REPORT_SCHEMA = {"table": pl.Utf8, "rule": pl.Utf8, "rows": pl.Int64}


class ReconciliationError(AssertionError):
    """Rows in != rows kept + rows quarantined for some table (a bug in the cleansing, never the data)."""


def build_report(rows_in: dict[str, int], counts: dict[str, dict[str, int]], kept: dict[str, int]) -> pl.DataFrame:
    """One row per table and rule (all rules, in the order they apply), framed by rows_in and rows_kept."""
    records = []
    for table in TABLES:
        records.append((table, ROWS_IN, rows_in[table]))
        records.extend((table, rule, counts[table][rule]) for rule in RULES[table])
        records.append((table, ROWS_KEPT, kept[table]))
    return pl.DataFrame(records, schema=REPORT_SCHEMA, orient="row")


#: A cleansed table: a frame in memory, or a parquet file read each time it is asked for (the out-of-core
#: cleansing of an entity store leaves its large tables on disk, so a result does not hold them).
Table = pl.DataFrame | Path


def _frame(table: Table) -> pl.DataFrame:
    return pl.read_parquet(table) if isinstance(table, Path) else table


def _lazy(table: Table) -> pl.LazyFrame:
    return pl.scan_parquet(table) if isinstance(table, Path) else table.lazy()


def _height(table: Table) -> int:
    return pl.scan_parquet(table).select(pl.len()).collect().item() if isinstance(table, Path) else table.height


class _Quarantine(Mapping):
    """{table: rejected rows}, each read from its file when asked for if it is on disk."""

    def __init__(self, tables: dict[str, Table]):
        self._tables = tables

    def __getitem__(self, table: str) -> pl.DataFrame:
        return _frame(self._tables[table])

    def __iter__(self) -> Iterator[str]:
        return iter(self._tables)

    def __len__(self) -> int:
        return len(self._tables)


class CleansingResult:
    """Output of `workbench.cleanse.cleanse` and `cleanse_entity_store`.

    Reconciliation (checked by `check_reconciles`), for every input table:
    ``rows_in = rows_kept + sum(rows per rule)``, where the kept rows are `interactions` for
    sales_lines (after merging to one row per basket and product: the lines merged away are counted
    under ``merged_duplicate_product_line``), `catalog` for products, and the cleansed customers,
    stores and wish lists.

    Each table is a frame in memory or a parquet file (`Table`); the attributes always return frames.
    """

    _TABLES = ("interactions", "baskets", "catalog", "customers", "stores", "wish_lists")

    def __init__(self, *, interactions: Table, baskets: Table, catalog: Table, customers: Table, stores: Table,
                 wish_lists: Table, quarantine: dict[str, Table], report: pl.DataFrame, rules: CleansingRules,
                 seconds: float | None = None):
        self._tables: dict[str, Table] = {"interactions": interactions, "baskets": baskets, "catalog": catalog,
                                          "customers": customers, "stores": stores, "wish_lists": wish_lists}
        self._quarantine: dict[str, Table] = dict(quarantine)
        self.report = report
        self.rules = rules
        #: wall time of the cleansing (without writing), for the notebook
        self.seconds = seconds

    interactions = property(lambda self: _frame(self._tables["interactions"]))
    baskets = property(lambda self: _frame(self._tables["baskets"]))
    catalog = property(lambda self: _frame(self._tables["catalog"]))
    customers = property(lambda self: _frame(self._tables["customers"]))
    stores = property(lambda self: _frame(self._tables["stores"]))
    wish_lists = property(lambda self: _frame(self._tables["wish_lists"]))

    @property
    def quarantine(self) -> Mapping[str, pl.DataFrame]:
        return _Quarantine(self._quarantine)

    def height(self, name: str) -> int:
        """Rows of a cleansed table (`interactions`, ...) or of `quarantine/<table>`, without reading it whole."""
        if name.startswith("quarantine/"):
            return _height(self._quarantine[name.split("/", 1)[1]])
        return _height(self._tables[name])

    def kept(self, table: str) -> pl.DataFrame:
        return getattr(self, KEPT_TABLE[table])

    def rule_counts(self, table: str) -> dict[str, int]:
        """{rule: rows} for one table, rules in the order they apply (zero for rules that rejected nothing)."""
        part = self.report.filter((pl.col("table") == table) & ~pl.col("rule").is_in([ROWS_IN, ROWS_KEPT]))
        return dict(zip(part["rule"].to_list(), part["rows"].to_list()))

    def rows_in(self, table: str) -> int:
        return self._report_value(table, ROWS_IN)

    def _report_value(self, table: str, rule: str) -> int:
        value = self.report.filter((pl.col("table") == table) & (pl.col("rule") == rule))["rows"]
        if value.len() != 1:
            raise ReconciliationError(f"report has {value.len()} rows for table {table!r}, rule {rule!r} (expected 1)")
        return int(value.item())

    def check_reconciles(self) -> None:
        """Raise `ReconciliationError` naming the table and numbers unless every row is accounted for once."""
        problems = []
        for table in TABLES:
            n_in = self._report_value(table, ROWS_IN)
            n_kept = self._report_value(table, ROWS_KEPT)
            counts = self.rule_counts(table)
            n_rejected = sum(counts.values())
            if n_in != n_kept + n_rejected:
                problems.append(
                    f"{table}: {n_in} rows in != {n_kept} kept + {n_rejected} quarantined "
                    f"(off by {n_in - n_kept - n_rejected})"
                )
            actual_kept = self.height(KEPT_TABLE[table])
            if actual_kept != n_kept:
                problems.append(f"{table}: report says {n_kept} kept, {KEPT_TABLE[table]} has {actual_kept} rows")
            actual = dict(_lazy(self._quarantine[table]).group_by("rule").len().collect().iter_rows())
            for rule in sorted(set(actual) | {r for r, n in counts.items() if n}):
                if actual.get(rule, 0) != counts.get(rule, 0):
                    problems.append(
                        f"{table}: report says {counts.get(rule, 0)} rows for rule {rule!r}, "
                        f"quarantine/{table} has {actual.get(rule, 0)}"
                    )
        if problems:
            raise ReconciliationError("cleansing does not reconcile:\n  " + "\n  ".join(problems))

    def table_summary(self, table: str) -> str:
        """One table's line: rows in, kept and the rules that rejected anything."""
        counts = {r: n for r, n in self.rule_counts(table).items() if n}
        detail = ", ".join(f"{r} {n:,}" for r, n in counts.items()) or "nothing rejected"
        return f"{table}: {self.rows_in(table):,} in, {self.height(KEPT_TABLE[table]):,} kept ({KEPT_TABLE[table]}); {detail}"

    def summary(self) -> str:
        """A few lines for the notebook: every table's `table_summary`, and the baskets."""
        return "\n".join([*(self.table_summary(table) for table in TABLES), f"baskets: {self.height('baskets'):,}"])

    def as_entity_store(self) -> dict[str, pl.DataFrame]:
        """The cleansed data in the entity-store contract (one sale line per interaction), to cleanse again."""
        names = self.catalog.select("product_id", pl.col("name").alias("description"))
        sales_lines = (
            self.interactions.join(names, on="product_id", how="left")
            .select(
                pl.col("basket_id").alias("transaction_id"),
                pl.int_range(1, pl.len() + 1, dtype=pl.Int64).over("basket_id").alias("line_number"),
                "store_id", "channel", "customer_id", "product_id", "description", "quantity",
                (pl.col("amount") / pl.col("quantity")).alias("unit_price"),
                pl.col("time").alias("transaction_time"),
                pl.lit("sale").alias("transaction_type"),
            )
        )
        products = self.catalog.drop("n_baskets").with_columns(pl.lit("merchandise").alias("product_type"))
        return {
            "sales_lines": sales_lines,
            "products": products,
            "customers": self.customers,
            "stores": self.stores,
            "wish_lists": self.wish_lists,
        }

    def write(self, folder: Path) -> dict[str, Path]:
        """Write the cleansed stage (docs/architecture.md) into `folder`; returns {name: path}.

        The files are written into a staging folder and published together (`storage.publish_directory`):
        a process killed mid-write leaves the previous complete output, never a mix or a 0-byte file.
        """
        folder = Path(folder)
        files = {name: f"{name}.parquet" for name in ("interactions", "baskets", "catalog", "wish_lists", "customers", "stores")}
        files.update({f"quarantine/{table}": f"quarantine/{table}.parquet" for table in self.quarantine})
        files["cleansing_report"] = "cleansing_report.parquet"
        files["cleansing_rules"] = "cleansing_rules.json"
        with publish_directory(folder) as staging:
            (staging / "quarantine").mkdir()
            for name, file in files.items():
                if name == "cleansing_rules":
                    (staging / file).write_text(json.dumps(self.rules.to_dict(), indent=2) + "\n")
                elif name == "cleansing_report":
                    self.report.write_parquet(staging / file)
                else:
                    table = self._quarantine[name.split("/", 1)[1]] if name.startswith("quarantine/") else self._tables[name]
                    _write(table, staging / file)
        written = {name: folder / file for name, file in files.items()}
        # a table that was on disk now reads from the published folder (its scratch file may go)
        for name in self._tables:
            if isinstance(self._tables[name], Path):
                self._tables[name] = written[name]
        for table in self._quarantine:
            if isinstance(self._quarantine[table], Path):
                self._quarantine[table] = written[f"quarantine/{table}"]
        return written


def _write(table: Table, target: Path) -> None:
    """A frame is written; a file is linked (no copy), or copied where links fail."""
    if isinstance(table, pl.DataFrame):
        table.write_parquet(target)
        return
    try:
        os.link(table, target)
    except OSError:
        shutil.copy2(table, target)
