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
from workbench.datasets.store import read_tables, scan_sales_lines

TIME_LAYOUT = "%Y/%m/%dT%H:%M:%S"


def _clean(column: str) -> pl.Expr:
    return pl.col(column).cast(pl.String).fill_null("").str.replace_all(r"[,\r\n]", " ")


def export_recommendations_api(legal_entity: str, folder: str | os.PathLike, *, out_dir=None) -> dict:
    """Write `catalog.csv` and `usage.csv` of the legal entity's entity store into `folder` (atomically each).

    The usage file is streamed from the store's parts: memory does not grow with the sales lines."""
    products = read_tables(legal_entity, out_dir=out_dir, sales_lines=False)["products"]
    lines = scan_sales_lines(legal_entity, out_dir=out_dir)
    folder = Path(folder)
    products = products.filter(pl.col("product_id").is_not_null()).unique("product_id", keep="first", maintain_order=True)
    catalog = products.lazy().select(
        pl.concat_str([_clean("product_id"), _clean("name"), _clean("category"), pl.lit(""),
                       pl.lit("price=") + pl.col("price").cast(pl.String).fill_null("")
                       + pl.lit(", type=") + _clean("product_type")], separator=",").alias("line"))
    is_sale = (pl.col("transaction_type") == "sale") & (pl.col("quantity") > 0)
    identified = pl.col("customer_id").is_not_null() & pl.col("product_id").is_not_null()
    usage_rows = lines.filter(is_sale & identified)
    usage = usage_rows.select(pl.concat_str([_clean("customer_id"), _clean("product_id"),
                                             pl.col("transaction_time").dt.strftime(TIME_LAYOUT), pl.lit("Purchase")],
                                            separator=",").alias("line"))
    for name, frame in (("catalog.csv", catalog), ("usage.csv", usage)):
        # one text line per row, as the format has them (a line without a time reads "None", as it always did)
        storage.atomic_write(folder / name, lambda tmp, frame=frame: frame.select(pl.col("line").fill_null("None")).sink_csv(
            tmp, include_header=False, quote_style="never"))
    n_lines, n_sales, n_usage, commas_in_usage = lines.select(
        pl.len().alias("lines"), is_sale.fill_null(False).sum().alias("sales"),
        (is_sale & identified).fill_null(False).sum().alias("usage"),
        pl.sum_horizontal(*[pl.col(c).cast(pl.String).str.contains(",").fill_null(False).cast(pl.Int64)
                            for c in ("customer_id", "product_id")]).filter(is_sale & identified).sum().alias("commas"),
    ).collect(engine="streaming").row(0)
    commas = commas_in_usage + sum(int(products[c].cast(pl.String).str.contains(",").sum() or 0)
                                   for c in ("product_id", "name", "category"))
    return {
        "folder": str(folder),
        "products": products.height,
        "usage_lines": n_usage,
        "left_out": {"not_a_sale": n_lines - n_sales, "anonymous": n_sales - n_usage},
        "commas_replaced": commas,
    }
