"""`CleansingResult`: the cleansed tables, the quarantine, the per-rule report and its reconciliation."""

from __future__ import annotations

import json
from dataclasses import dataclass
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


@dataclass
class CleansingResult:
    """Output of `workbench.cleanse.cleanse`.

    Reconciliation (checked by `check_reconciles`), for every input table:
    ``rows_in = rows_kept + sum(rows per rule)``, where the kept rows are `interactions` for
    sales_lines (after merging to one row per basket and product: the lines merged away are counted
    under ``merged_duplicate_product_line``), `catalog` for products, and the cleansed customers,
    stores and wish lists.
    """

    interactions: pl.DataFrame
    baskets: pl.DataFrame
    catalog: pl.DataFrame
    customers: pl.DataFrame
    stores: pl.DataFrame
    wish_lists: pl.DataFrame
    quarantine: dict[str, pl.DataFrame]
    report: pl.DataFrame
    rules: CleansingRules
    #: wall time of `cleanse` (the in-memory part), for the notebook
    seconds: float | None = None

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
            actual_kept = self.kept(table).height
            if actual_kept != n_kept:
                problems.append(f"{table}: report says {n_kept} kept, {KEPT_TABLE[table]} has {actual_kept} rows")
            quarantine = self.quarantine[table]
            actual = dict(quarantine.group_by("rule").len().iter_rows()) if quarantine.height else {}
            for rule in sorted(set(actual) | {r for r, n in counts.items() if n}):
                if actual.get(rule, 0) != counts.get(rule, 0):
                    problems.append(
                        f"{table}: report says {counts.get(rule, 0)} rows for rule {rule!r}, "
                        f"quarantine/{table} has {actual.get(rule, 0)}"
                    )
        if problems:
            raise ReconciliationError("cleansing does not reconcile:\n  " + "\n  ".join(problems))

    def summary(self) -> str:
        """A few lines for the notebook: rows in, kept and the rules that rejected anything."""
        lines = []
        for table in TABLES:
            counts = {r: n for r, n in self.rule_counts(table).items() if n}
            detail = ", ".join(f"{r} {n:,}" for r, n in counts.items()) or "nothing rejected"
            lines.append(
                f"{table}: {self.rows_in(table):,} in, {self.kept(table).height:,} kept "
                f"({KEPT_TABLE[table]}); {detail}"
            )
        lines.append(f"baskets: {self.baskets.height:,}")
        return "\n".join(lines)

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
                elif name.startswith("quarantine/"):
                    self.quarantine[name.split("/", 1)[1]].write_parquet(staging / file)
                else:
                    getattr(self, name).write_parquet(staging / file)
        return {name: folder / file for name, file in files.items()}
