"""Extraction of the demo retailer into the entity store: complete, incremental, and loud about bad input."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from datetime import datetime
from pathlib import Path

import polars as pl
import pytest
from helpers import load_benchmark

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

ROOT = Path(__file__).resolve().parents[1]


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


# ----------------------------------------------------------------------------- upserts, kills, overlaps (issue 8)


def _sorted(lines: pl.DataFrame) -> pl.DataFrame:
    return lines.sort(list(lines.columns), nulls_last=True)


def _from_scratch(db_url: str, out, **window) -> pl.DataFrame:
    extract_entity_store(db_url, "USRT", out_dir=out, incremental=False, progress=False, **window)
    return read_sales_lines("USRT", out_dir=out)


def test_incremental_runs_pick_up_late_lines_voids_updates_and_deletions(workbench_home, demo_db_copy, tmp_path):
    url = f"sqlite:///{demo_db_copy}"
    extract_entity_store(url, "USRT", progress=False)
    mark = read_watermark("USRT")["transaction_time"]
    recent = [r[0] for r in sqlite3.connect(demo_db_copy).execute(
        "SELECT id FROM sales_transactions WHERE legal_entity_id = 'USRT' AND transaction_time > datetime(?, '-2 days') "
        "AND status = 'completed' ORDER BY id LIMIT 5", (mark,))]
    late, voided, updated, shrunk, deleted = recent
    _alter(
        demo_db_copy,
        # a line added to a receipt after it was extracted
        f"INSERT INTO sales_lines (transaction_id, line_number, product_id, description, quantity, unit_price, line_type) "
        f"VALUES ('{late}', 99, 'P00001', 'late line', 1, 9.5, 'sale')",
        f"UPDATE sales_transactions SET status = 'voided' WHERE id = '{voided}'",       # voided afterwards
        f"UPDATE sales_lines SET quantity = quantity + 2 WHERE transaction_id = '{updated}'",  # corrected
        f"DELETE FROM sales_lines WHERE transaction_id = '{shrunk}' AND line_number = 1",     # a line taken back
        f"DELETE FROM sales_lines WHERE transaction_id = '{deleted}'",                        # a receipt removed
        f"DELETE FROM sales_transactions WHERE id = '{deleted}'",
        # a new receipt after the watermark
        "INSERT INTO sales_transactions (id, legal_entity_id, store_id, customer_id, transaction_time, status) "
        "VALUES ('USRT-9999999', 'USRT', (SELECT store_id FROM sales_transactions WHERE id = 'USRT-0000001'), NULL, "
        "'2026-01-01 10:00:00', 'completed')",
        "INSERT INTO sales_lines (transaction_id, line_number, product_id, description, quantity, unit_price, line_type) "
        "VALUES ('USRT-9999999', 1, 'P00002', 'new', 1, 3.0, 'sale')",
    )
    summary = extract_entity_store(url, "USRT", progress=False)
    assert summary["read_window"]["start"] is not None  # only the lookback was read
    assert summary["new_transactions"] == 1 and summary["removed_transactions"] == 1
    assert summary["replaced_transactions"] == 4
    got = read_sales_lines("USRT")
    assert _sorted(got).equals(_sorted(_from_scratch(url, tmp_path / "scratch")))
    assert got.filter(pl.col("transaction_id") == voided)["transaction_type"].unique().to_list() == ["void"]
    # nothing changed since: the next run rewrites nothing and adds no part
    parts = read_watermark("USRT")["parts"]
    again = extract_entity_store(url, "USRT", progress=False)
    assert again["part"] is None and again["replaced_transactions"] == again["new_transactions"] == 0
    assert read_watermark("USRT")["parts"] == parts


_WORKER = """
import os, signal, sys, time
import polars as pl
from workbench import storage
from workbench.datasets import store
from workbench.datasets.extract import extract_entity_store

url, start, end, die_at = sys.argv[1:5]

def die():
    os.kill(os.getpid(), signal.SIGKILL)

if die_at == "part":  # half-way through writing the new part
    def dying_at_part(real):
        def write(self, path, *a, **k):
            if str(path).rsplit("/", 1)[-1].startswith("part-"):
                open(path, "wb").write(b"PAR1 half a part")
                die()
            return real(self, path, *a, **k)
        return write
    pl.DataFrame.write_parquet = dying_at_part(pl.DataFrame.write_parquet)
    pl.LazyFrame.sink_parquet = dying_at_part(pl.LazyFrame.sink_parquet)  # parts are streamed to disk
elif die_at == "watermark":  # between the part and the watermark
    real_text = store.Path.write_text
    def write_text(self, text, *a, **k):
        if self.name == "watermark.json":
            real_text(self, text[: len(text) // 2])
            die()
        return real_text(self, text, *a, **k)
    store.Path.write_text = write_text
elif die_at == "publish":  # with everything staged, just before the atomic swap
    storage._swap = lambda *a, **k: die()
elif die_at == "slow":  # a delayed part listing, so that two runs overlap
    real_parts = store._part_files
    store._part_files = lambda root: (time.sleep(1.5), real_parts(root))[1]
extract_entity_store(url, "USRT", start=start, end=end, progress=False)
"""


def _worker(url: str, start: str, end: str, die_at: str = "") -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", _WORKER, url, start, end, die_at or "none"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


@pytest.mark.parametrize("die_at", ["part", "watermark", "publish"])
def test_a_killed_extraction_leaves_the_store_as_it_was(workbench_home, demo_db_url, tmp_path, die_at):
    import signal

    extract_entity_store(demo_db_url, "USRT", end="2025-07-01", progress=False)
    before, mark = read_sales_lines("USRT"), read_watermark("USRT")
    proc = _worker(demo_db_url, "2025-06-01", "2025-10-01", die_at)
    output = proc.communicate(timeout=120)[0]
    assert proc.returncode == -signal.SIGKILL, output
    assert read_watermark("USRT") == mark  # the watermark is whole and still matches the parts
    assert read_sales_lines("USRT").equals(before)
    # the next run completes the work: the store is what one extraction of the whole span gives
    extract_entity_store(demo_db_url, "USRT", start="2025-06-01", end="2025-10-01", progress=False)
    assert _sorted(read_sales_lines("USRT")).equals(_sorted(_from_scratch(demo_db_url, tmp_path / "s", end="2025-10-01")))
    assert [h["window"]["end"] for h in read_watermark("USRT")["history"]] == ["2025-07-01 00:00:00", "2025-10-01 00:00:00"]
    leftovers = [p.name for p in paths.raw_dir("USRT").parent.iterdir() if "staging" in p.name]
    assert leftovers == []  # the dead writer's staging folder went with the next publication


def test_overlapping_extractions_neither_duplicate_lines_nor_lose_history(workbench_home, demo_db_url, tmp_path):
    runs = [_worker(demo_db_url, "2025-01-01", "2025-07-01", "slow"), _worker(demo_db_url, "2025-06-01", "2025-10-01", "slow")]
    for proc in runs:
        output = proc.communicate(timeout=180)[0]
        assert proc.returncode == 0, output
    lines = read_sales_lines("USRT")
    scratch = _from_scratch(demo_db_url, tmp_path / "s", start="2025-01-01", end="2025-10-01")
    assert lines.height == scratch.height and _sorted(lines).equals(_sorted(scratch))
    assert len(read_watermark("USRT")["history"]) == 2


def test_an_end_before_the_lookback_reads_the_whole_window(workbench_home, demo_db, demo_db_url):
    extract_entity_store(demo_db_url, "USRT", progress=False)
    again = extract_entity_store(demo_db_url, "USRT", end="2025-08-01", progress=False)
    assert again["read_window"] == {"start": None, "end": "2025-08-01 00:00:00"}
    assert again["window_lines"] == _source_lines(demo_db, "USRT", end="2025-08-01") and again["part"] is None
    assert read_sales_lines("USRT").height == _source_lines(demo_db, "USRT")


# --- out of core ----------------------------------------------------------------------------------------------


def test_sql_lines_are_read_out_of_core_with_the_same_store(workbench_home, demo_db_url, tmp_path, monkeypatch):
    """Fetched in small chunks, each mapped and written to scratch, sorted and validated in batches: the
    store (lines row for row, dimensions, contract report) is the one an in-memory read gives."""
    from workbench.datasets import contracts, sources, store
    from workbench.datasets.extract import read_source
    from workbench.datasets.mapping import load_mapping

    m = load_mapping("demo")
    whole = read_source(m, demo_db_url, "USRT", (None, datetime(2025, 4, 1)))
    monkeypatch.setattr(sources, "CHUNK_ROWS", 997)
    chunked = read_source(m, demo_db_url, "USRT", (None, datetime(2025, 4, 1)), scratch=tmp_path)
    assert isinstance(chunked["sales_lines"], pl.LazyFrame) and len(list(tmp_path.glob("sales_lines-*.parquet"))) > 3
    assert chunked["sales_lines"].collect().equals(whole["sales_lines"])

    big = extract_entity_store(demo_db_url, "USRT", out_dir=tmp_path / "big", progress=False)
    monkeypatch.setattr(store, "SORT_BATCH_LINES", 1_500)
    monkeypatch.setattr(contracts, "BATCH_LINES", 2_000)
    small = extract_entity_store(demo_db_url, "USRT", out_dir=tmp_path / "small", progress=False)
    assert small["contracts"] == big["contracts"] and small["rows"] == big["rows"]
    assert read_sales_lines("USRT", out_dir=tmp_path / "small").equals(read_sales_lines("USRT", out_dir=tmp_path / "big"))
    assert not [p for p in tmp_path.iterdir() if "extracting" in p.name]  # the scratch folder went


def _export_files(demo_db, folder, fmt: str = "csv"):
    """The demo retailer's USRT lines as a retailer's export: two CSV files in latin-1 (the second
    gzipped), a product name with an accent, products and customers left to be derived from the lines;
    or the same in two JSON-lines files (UTF-8, the second gzipped) or two parquet files."""
    import gzip

    lines = pl.read_database(
        "SELECT l.transaction_id, l.line_number, t.store_id, t.customer_id, l.product_id, l.description AS Description, "
        "l.quantity, l.unit_price, t.transaction_time FROM sales_lines l JOIN sales_transactions t ON l.transaction_id = t.id "
        "WHERE t.legal_entity_id = 'USRT' ORDER BY t.transaction_time, l.transaction_id, l.line_number", sqlite3.connect(demo_db))
    lines = lines.with_columns(pl.when(pl.int_range(pl.len()) == 5000).then(pl.lit("CAFÉ CRÈME MUG")).otherwise(pl.col("Description"))
                               .alias("Description"))
    half = lines.height // 2
    if fmt == "csv":
        (folder / "lines-1.csv").write_bytes(lines[:half].write_csv().encode("latin-1"))
        (folder / "lines-2.csv.gz").write_bytes(gzip.compress(lines[half:].write_csv().encode("latin-1")))
    elif fmt == "jsonl":
        (folder / "lines-1.jsonl").write_bytes(lines[:half].write_ndjson().encode())
        (folder / "lines-2.jsonl.gz").write_bytes(gzip.compress(lines[half:].write_ndjson().encode()))
    else:
        lines[:half].write_parquet(folder / "lines-1.parquet")
        lines[half:].write_parquet(folder / "lines-2.parquet")
    # the export mapping of benchmarks/extract_files.py, over both files
    benchmark = load_benchmark("extract_files")
    mapping = json.loads(json.dumps(benchmark.MAPPING))
    mapping["source"] = str(folder)
    mapping["entities"]["sales_lines"]["files"] = "{source}/lines-*"
    if fmt != "csv":
        mapping["entities"]["sales_lines"]["encoding"] = "utf-8"
    return lines, mapping


@pytest.mark.parametrize("fmt", ["csv", "jsonl", "parquet"])
def test_file_lines_are_read_out_of_core_with_the_same_store(demo_db, tmp_path, monkeypatch, fmt):
    """Export files (CSV in latin-1, JSON lines; one of them gzipped; parquet): decoded block by block,
    scanned in chunks, each mapped and written to scratch; the lines and the entities derived from them
    are those a whole read gives."""
    from workbench.datasets import sources
    from workbench.datasets.extract import read_source
    from workbench.datasets.mapping import load_mapping

    lines, spec = _export_files(demo_db, tmp_path, fmt)
    m = load_mapping(spec)
    whole = read_source(m, str(tmp_path), "EXP", (None, datetime(2025, 10, 1)))
    monkeypatch.setattr(sources, "CHUNK_ROWS", 997)
    monkeypatch.setattr(sources, "TEXT_BLOCK", 4096)  # blocks that end inside lines and characters
    (tmp_path / "scratch").mkdir()
    chunked = read_source(m, str(tmp_path), "EXP", (None, datetime(2025, 10, 1)), scratch=tmp_path / "scratch")
    assert isinstance(chunked["sales_lines"], pl.LazyFrame)
    assert len(list((tmp_path / "scratch").glob("sales_lines-*.parquet"))) > 3
    got = chunked["sales_lines"].collect()
    assert got.equals(whole["sales_lines"]) and 0 < got.height < lines.height  # the window applied
    assert "CAFÉ CRÈME MUG" in got["description"].to_list()
    for name in ("products", "customers"):
        assert chunked[name].equals(whole[name]) and chunked[name].height > 0


def test_a_streamed_file_fails_as_a_whole_read_does(demo_db, tmp_path, monkeypatch):
    """The streamed read names the same byte offset and line for a byte not valid in the declared
    encoding (past the first block), and a truncated archive is an error, never the rows before the break."""
    from workbench.datasets import sources
    from workbench.datasets.extract import read_source
    from workbench.datasets.mapping import load_mapping

    _, spec = _export_files(demo_db, tmp_path)
    data = (tmp_path / "lines-1.csv").read_bytes()
    offset = data.index("É".encode("latin-1"))
    line = data.count(b"\n", 0, offset) + 1
    expected = rf"lines-1\.csv: byte offset {offset} \(line {line}\) is not valid utf-8"
    spec["entities"]["sales_lines"]["encoding"] = "utf-8"
    m = load_mapping(spec)
    with pytest.raises(ExtractionError, match=expected):
        read_source(m, str(tmp_path), "EXP")
    monkeypatch.setattr(sources, "TEXT_BLOCK", 4096)
    (tmp_path / "scratch").mkdir()
    with pytest.raises(ExtractionError, match=expected):
        read_source(m, str(tmp_path), "EXP", scratch=tmp_path / "scratch")
    spec["entities"]["sales_lines"]["encoding"] = "latin-1"
    archive = (tmp_path / "lines-2.csv.gz").read_bytes()
    (tmp_path / "lines-2.csv.gz").write_bytes(archive[: len(archive) // 2])
    with pytest.raises(ExtractionError, match=r"cannot read .*lines-2\.csv\.gz"):
        read_source(load_mapping(spec), str(tmp_path), "EXP", scratch=tmp_path / "scratch")


def test_only_a_mapping_that_reads_row_by_row_is_chunked():
    from workbench.datasets.extract import _row_by_row
    from workbench.datasets.mapping import load_mapping

    assert _row_by_row(load_mapping("demo").entities["sales_lines"], [
        "transaction_id", "line_number", "store_id", "channel", "customer_id", "product_id", "description",
        "quantity", "unit_price", "transaction_time", "status", "line_type"], "demo")
    retail = load_mapping("online_retail").entities["sales_lines"]  # line numbers counted per invoice: a window
    assert not _row_by_row(retail, ["InvoiceNo", "StockCode", "Description", "Quantity", "InvoiceDate", "UnitPrice",
                                    "CustomerID", "Country"], "online_retail")
