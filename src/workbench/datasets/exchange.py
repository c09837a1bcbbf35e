"""The Recommendations API exchange format: export an entity store as the catalog and usage files that
service took (import is the shipped mapping `configs/sources/recommendations_api.yml`).

    export_recommendations_api("USRT", "exports/usrt")   # exports/usrt/catalog.csv, exports/usrt/usage.csv

catalog.csv  <product id>,<name>,<category>,<description: empty>,price=<price>, type=<product type>
usage.csv    <customer id>,<product id>,<time yyyy/MM/ddTHH:mm:ss>,Purchase
The format has no quoting: commas inside names and ids are replaced by spaces (counted in the
summary). It has no anonymous users and no returns: only sale lines of identified customers with a
positive quantity are exported, one usage line per sales line; the rest is counted as left out.
"""

from __future__ import annotations

import os
from pathlib import Path

import polars as pl

from workbench import storage
from workbench.datasets.store import read_tables

TIME_LAYOUT = "%Y/%m/%dT%H:%M:%S"


def _clean(column: str) -> pl.Expr:
    return pl.col(column).cast(pl.String).fill_null("").str.replace_all(r"[,\r\n]", " ")


def export_recommendations_api(legal_entity: str, folder: str | os.PathLike, *, out_dir=None) -> dict:
    """Write `catalog.csv` and `usage.csv` of the legal entity's entity store into `folder` (atomically each)."""
    tables = read_tables(legal_entity, out_dir=out_dir)
    products, lines = tables["products"], tables["sales_lines"]
    folder = Path(folder)
    products = products.filter(pl.col("product_id").is_not_null()).unique("product_id", keep="first", maintain_order=True)
    catalog = products.select(
        pl.concat_str([_clean("product_id"), _clean("name"), _clean("category"), pl.lit(""),
                       pl.lit("price=") + pl.col("price").cast(pl.String).fill_null("")
                       + pl.lit(", type=") + _clean("product_type")], separator=",").alias("line"))
    sales = lines.filter((pl.col("transaction_type") == "sale") & (pl.col("quantity") > 0))
    usage_rows = sales.filter(pl.col("customer_id").is_not_null() & pl.col("product_id").is_not_null())
    usage = usage_rows.select(pl.concat_str([_clean("customer_id"), _clean("product_id"),
                                             pl.col("transaction_time").dt.strftime(TIME_LAYOUT), pl.lit("Purchase")],
                                            separator=",").alias("line"))
    for name, frame in (("catalog.csv", catalog), ("usage.csv", usage)):
        text = "".join(f"{line}\n" for line in frame["line"])
        storage.atomic_write_text(folder / name, text)
    commas = sum(int(t[c].cast(pl.String).str.contains(",").sum() or 0)
                 for t, cols in ((products, ("product_id", "name", "category")), (usage_rows, ("customer_id", "product_id")))
                 for c in cols)
    return {
        "folder": str(folder),
        "products": catalog.height,
        "usage_lines": usage.height,
        "left_out": {"not_a_sale": lines.height - sales.height, "anonymous": sales.height - usage_rows.height},
        "commas_replaced": commas,
    }
