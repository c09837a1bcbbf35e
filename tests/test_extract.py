"""Extraction of the demo retailer into the entity store: complete, incremental, and loud about bad input."""

from __future__ import annotations

import json
import sqlite3
from datetime import datetime

import polars as pl
import pytest

from workbench import paths
from workbench.datasets.extract import (
    CUSTOMERS_SCHEMA,
    PRODUCTS_SCHEMA,
    SALES_LINES_SCHEMA,
    ExtractionError,
    extract_entity_store,
    read_sales_lines,
    read_watermark,
)


def _scalar(db, sql: str, *args):
    con = sqlite3.connect(db)
    try:
        return con.execute(sql, args).fetchone()[0]
    finally:
        con.close()


def _source_lines(db, le: str, start: str = "0000", end: str = "9999") -> int:
    return _scalar(db, "SELECT COUNT(*) FROM sales_lines l JOIN sales_transactions t ON t.id = l.transaction_id "
                       "WHERE t.legal_entity_id = ? AND t.transaction_time >= ? AND t.transaction_time < ?", le, start, end)


def _alter(database, *statements: str) -> None:
    """Break a private copy of the demo database the way a real source can be broken."""
    with sqlite3.connect(database) as con:
        for statement in statements:
            con.execute(statement)
    con.close()


def test_roundtrip_every_line_and_dimension_lands(workbench_home, demo_db, demo_db_url):
    summary = extract_entity_store(demo_db_url, "USRT", progress=False)
    root = paths.raw_dir("USRT")
    assert root == workbench_home / "data" / "raw" / "USRT"
    lines = read_sales_lines("USRT")
    assert lines.height == summary["rows"]["sales_lines"] == summary["new_lines"] == _source_lines(demo_db, "USRT")
    assert dict(lines.schema) == SALES_LINES_SCHEMA
    assert summary["rows"]["products"] == _scalar(demo_db, "SELECT COUNT(*) FROM products")
    assert summary["rows"]["customers"] == _scalar(demo_db, "SELECT COUNT(*) FROM customers WHERE legal_entity_id = 'USRT'")
    assert summary["rows"]["stores"] == _scalar(demo_db, "SELECT COUNT(*) FROM stores WHERE legal_entity_id = 'USRT'")
    assert summary["rows"]["wish_lists"] == _scalar(
        demo_db, "SELECT COUNT(*) FROM wish_list_items i JOIN wish_lists w ON w.id = i.wish_list_id "
                 "JOIN customers c ON c.id = w.customer_id WHERE c.legal_entity_id = 'USRT'")
    assert dict(pl.read_parquet(root / "products.parquet").schema) == PRODUCTS_SCHEMA
    assert dict(pl.read_parquet(root / "customers.parquet").schema) == CUSTOMERS_SCHEMA
    for name in ("stores", "wish_lists"):
        assert (root / f"{name}.parquet").exists()
    assert json.loads((root / "legal_entity.json").read_text()) == {
        "legal_entity_id": "USRT", "name": "Demo Retail US Inc.", "currency": "USD", "pos_recommendations_enabled": True}
    watermark = read_watermark("USRT")
    assert watermark["transaction_time"] == str(lines["transaction_time"].max())
    assert watermark["parts"] == [p.name for p in sorted((root / "sales_lines").glob("part-*.parquet"))]
    # Duplicated source lines are carried, not collapsed: cleansing decides.
    source_dups = _scalar(demo_db, "SELECT COUNT(*) FROM (SELECT transaction_id, line_number FROM sales_lines l "
                                   "JOIN sales_transactions t ON t.id = l.transaction_id WHERE t.legal_entity_id = 'USRT' "
                                   "GROUP BY 1, 2 HAVING COUNT(*) > 1)")
    assert source_dups > 0
    assert lines.group_by("transaction_id", "line_number").len().filter(pl.col("len") > 1).height == source_dups


def test_transaction_types_map_status_and_line_type(workbench_home, demo_db, demo_db_url):
    extract_entity_store(demo_db_url, "USRT", progress=False)
    types = dict(read_sales_lines("USRT").group_by("transaction_type").len().rows())
    voids = _scalar(demo_db, "SELECT COUNT(*) FROM sales_lines l JOIN sales_transactions t ON t.id = l.transaction_id "
                             "WHERE t.legal_entity_id = 'USRT' AND (t.status = 'voided' OR l.line_type = 'void')")
    returns = _scalar(demo_db, "SELECT COUNT(*) FROM sales_lines l JOIN sales_transactions t ON t.id = l.transaction_id "
                               "WHERE t.legal_entity_id = 'USRT' AND t.status <> 'voided' AND l.line_type = 'return'")
    assert set(types) == {"sale", "return", "void"}
    assert types["void"] == voids and types["return"] == returns
    lines = read_sales_lines("USRT")
    assert set(lines["channel"].unique()) == {"online", "store"}
    anonymous = lines.group_by("transaction_id").agg(pl.col("customer_id").first())["customer_id"].null_count()
    assert anonymous > 0


def test_window_is_half_open(workbench_home, demo_db, demo_db_url):
    summary = extract_entity_store(demo_db_url, "FRRT", start="2025-03-01", end=datetime(2025, 4, 1), progress=False)
    lines = read_sales_lines("FRRT")
    assert lines.height == summary["new_lines"] == _source_lines(demo_db, "FRRT", "2025-03-01", "2025-04-01")
    assert lines["transaction_time"].min() >= datetime(2025, 3, 1)
    assert lines["transaction_time"].max() < datetime(2025, 4, 1)
    assert json.loads((paths.raw_dir("FRRT") / "legal_entity.json").read_text())["pos_recommendations_enabled"] is False


def test_incremental_refresh_adds_only_new_lines(workbench_home, demo_db, demo_db_url):
    first = extract_entity_store(demo_db_url, "USRT", end="2025-07-01", progress=False)
    assert first["new_lines"] == _source_lines(demo_db, "USRT", end="2025-07-01")
    again = extract_entity_store(demo_db_url, "USRT", end="2025-07-01", progress=False)
    assert again["new_lines"] == 0 and again["part"] is None
    assert again["watermark"] == first["watermark"]

    later = extract_entity_store(demo_db_url, "USRT", start="2025-06-01", end="2025-10-01", progress=False)
    assert later["new_lines"] == _source_lines(demo_db, "USRT", "2025-07-01", "2025-10-01")
    assert later["already_extracted_lines"] == _source_lines(demo_db, "USRT", "2025-06-01", "2025-07-01")
    new_part = pl.read_parquet(paths.raw_dir("USRT") / "sales_lines" / later["part"])
    assert new_part["transaction_time"].min() > datetime.fromisoformat(first["watermark"])

    rest = extract_entity_store(demo_db_url, "USRT", progress=False)
    lines = read_sales_lines("USRT")
    assert lines.height == rest["rows"]["sales_lines"] == _source_lines(demo_db, "USRT")
    assert len(read_watermark("USRT")["parts"]) == 3
    assert extract_entity_store(demo_db_url, "USRT", progress=False)["new_lines"] == 0
    # No transaction is in two parts, so none was extracted twice.
    parts = sorted((paths.raw_dir("USRT") / "sales_lines").glob("part-*.parquet"))
    ids = [set(pl.read_parquet(p, columns=["transaction_id"])["transaction_id"]) for p in parts]
    assert sum(len(i) for i in ids) == len(set().union(*ids)) == lines["transaction_id"].n_unique()


def test_full_refresh_replaces_the_parts(workbench_home, demo_db, demo_db_url):
    extract_entity_store(demo_db_url, "USRT", end="2025-05-01", progress=False)
    extract_entity_store(demo_db_url, "USRT", start="2025-05-01", end="2025-08-01", progress=False)
    full = extract_entity_store(demo_db_url, "USRT", end="2025-08-01", incremental=False, progress=False)
    assert len(read_watermark("USRT")["parts"]) == 1
    assert read_sales_lines("USRT").height == full["new_lines"] == _source_lines(demo_db, "USRT", end="2025-08-01")


def test_out_dir_overrides_the_entity_store_folder(workbench_home, tmp_path, demo_db_url):
    out = tmp_path / "elsewhere"
    summary = extract_entity_store(demo_db_url, "FRRT", out_dir=out, progress=False)
    assert read_sales_lines("FRRT", out_dir=out).height == summary["new_lines"] > 0
    assert not paths.raw_dir("FRRT").exists()
    assert read_sales_lines("FRRT").height == 0 and dict(read_sales_lines("FRRT").schema) == SALES_LINES_SCHEMA


# ----------------------------------------------------------------------------- bad input


def test_missing_database_file_is_named_and_not_created(workbench_home, tmp_path):
    missing = tmp_path / "nope" / "retail.sqlite"
    with pytest.raises(ExtractionError, match=r"database file .*retail\.sqlite does not exist"):
        extract_entity_store(f"sqlite:///{missing}", "USRT", progress=False)
    assert not missing.exists()


def test_unreadable_database_file(workbench_home, tmp_path):
    junk = tmp_path / "junk.sqlite"
    junk.write_bytes(b"this is not a database, just some bytes" * 100)
    with pytest.raises(ExtractionError, match=r"junk\.sqlite.*cannot read it as a database"):
        extract_entity_store(f"sqlite:///{junk}", "USRT", progress=False)


def test_not_a_url(workbench_home):
    with pytest.raises(ExtractionError, match="not a SQLAlchemy database URL"):
        extract_entity_store("retail.sqlite", "USRT", progress=False)


def test_missing_table_is_named(workbench_home, demo_db_copy):
    _alter(demo_db_copy, "DROP TABLE wish_list_items")
    with pytest.raises(ExtractionError, match=r"demo_copy\.sqlite.*missing table\(s\) wish_list_items"):
        extract_entity_store(f"sqlite:///{demo_db_copy}", "USRT", progress=False)


def test_missing_columns_are_named_with_their_table(workbench_home, demo_db_copy):
    _alter(
        demo_db_copy,
        "ALTER TABLE sales_lines DROP COLUMN unit_price",
        "ALTER TABLE sales_lines DROP COLUMN line_type",
        "ALTER TABLE customers RENAME COLUMN loyalty_tier TO tier",
    )
    with pytest.raises(ExtractionError) as err:
        extract_entity_store(f"sqlite:///{demo_db_copy}", "USRT", progress=False)
    message = str(err.value)
    assert "demo_copy.sqlite" in message
    assert "table sales_lines lacks column(s) unit_price, line_type" in message
    assert "table customers lacks column(s) loyalty_tier" in message


def test_unknown_legal_entity_lists_the_known_ones(workbench_home, demo_db_url):
    with pytest.raises(ExtractionError, match=r"legal entity 'DERT' is not in .*legal entities there: FRRT, USRT"):
        extract_entity_store(demo_db_url, "DERT", progress=False)


def test_legal_entity_without_data_in_the_window(workbench_home, demo_db_url):
    with pytest.raises(ExtractionError) as err:
        extract_entity_store(demo_db_url, "FRRT", start="2030-01-01", end="2030-02-01", progress=False)
    message = str(err.value)
    assert "'FRRT' has no sales lines in [2030-01-01 00:00:00, 2030-02-01 00:00:00)" in message
    assert "its sales lines span 2025-01-01" in message
    assert not paths.raw_dir("FRRT").exists()


@pytest.mark.parametrize(
    ("start", "end", "message"),
    [
        ("2025-05-01", "2025-05-01", "start 2025-05-01 00:00:00 is not before end 2025-05-01 00:00:00"),
        ("2025-06-01", "2025-05-01", "is not before end"),
        ("2025-13-01", None, "start '2025-13-01' is not a date or datetime"),
        (None, "yesterday", "end 'yesterday' is not a date or datetime"),
        (20250101, None, "start 20250101 is not a date"),
    ],
)
def test_bad_window(workbench_home, demo_db_url, start, end, message):
    with pytest.raises(ExtractionError, match=message.replace("(", r"\(").replace(")", r"\)")):
        extract_entity_store(demo_db_url, "USRT", start=start, end=end, progress=False)


def test_legal_entity_id_must_be_a_plain_identifier(workbench_home, demo_db_url):
    with pytest.raises(ValueError, match="not a valid legal entity id"):
        extract_entity_store(demo_db_url, "../USRT", progress=False)


def test_unparseable_time_is_an_error_not_a_null(workbench_home, demo_db_copy):
    _alter(demo_db_copy, "UPDATE sales_transactions SET transaction_time = 'soon' WHERE id = 'FRRT-0000002'")
    with pytest.raises(ExtractionError, match=r"column sales_lines\.transaction_time: 1 value\(s\) .* do not read as a datetime \(row \d+: 'soon'\)"):
        extract_entity_store(f"sqlite:///{demo_db_copy}", "FRRT", progress=False)
