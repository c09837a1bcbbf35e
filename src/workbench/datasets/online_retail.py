"""The UCI Online Retail file (csv, csv.gz or the original xlsx), read through its shipped source
mapping, `configs/sources/online_retail.yml`: everything specific to that retailer (GBP, countries as
online stores, invoice prefixes, non-merchandise stock codes, gift-shop categories) lives there.
"""

from __future__ import annotations

import os
from pathlib import Path

import polars as pl

from workbench.datasets.extract import extract_source, read_source
from workbench.datasets.mapping import load_mapping

MAPPING = "online_retail"


def read_online_retail(path: str | os.PathLike, encoding: str | None = None) -> dict[str, pl.DataFrame]:
    """The file as entity-store tables: sales_lines (every row), products, customers, stores, wish_lists."""
    tables = read_source(load_mapping(MAPPING), str(Path(path)), "online_retail", encoding=encoding)
    return {name: tables[name] for name in ("sales_lines", "products", "customers", "stores", "wish_lists")}


def extract_online_retail(path: str | os.PathLike, legal_entity: str = "online_retail", **options) -> dict:
    """Write the file's entity store under `paths.raw_dir(legal_entity)`, like `extract_source`.

    The window [start, end) filters sales lines on InvoiceDate; dimensions come from the whole file.
    """
    return extract_source(MAPPING, legal_entity, source=str(Path(path)), **options)
