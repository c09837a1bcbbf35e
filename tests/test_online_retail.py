"""UCI Online Retail into the entity store: a handmade file in every format, bad files, and the real one."""

from __future__ import annotations

import gzip
from datetime import datetime

import polars as pl
import pytest

from workbench import paths
from workbench.datasets.extract import SALES_LINES_SCHEMA, WISH_LISTS_SCHEMA, ExtractionError, read_sales_lines
from workbench.datasets.online_retail import extract_online_retail, read_online_retail

HEADER = ["InvoiceNo", "StockCode", "Description", "Quantity", "InvoiceDate", "UnitPrice", "CustomerID", "Country"]
ROWS = [
    ("536365", "85123A", "WHITE HANGING HEART T-LIGHT HOLDER", 6, "2010-12-01 08:26:00", 2.55, 17850.0, "United Kingdom"),
    ("536365", "71053", "WHITE METAL LANTERN", 6, "2010-12-01 08:26:00", 3.39, 17850.0, "United Kingdom"),
    ("536365", "POST", "POSTAGE", 1, "2010-12-01 08:26:00", 18.0, 17850.0, "United Kingdom"),
    ("536366", "85123A", "WHITE HANGING HEART T-LIGHT HOLDER ", 6, "2010-12-02 09:00:00", 2.95, None, "EIRE"),
    ("536366", "22633", "HAND WARMER UNION JACK", 6, "2010-12-02 09:00:00", 1.85, None, "EIRE"),
    ("536366", "22633", "HAND WARMER UNION JACK", 6, "2010-12-02 09:00:00", 1.85, None, "EIRE"),
    ("C536379", "85123A", "WHITE HANGING HEART T-LIGHT HOLDER", -1, "2010-12-03 10:00:00", 2.55, 17850.0, "United Kingdom"),
    ("536367", "gift_0001_20", "Dotcomgiftshop Gift Voucher £20.00", 1, "2011-01-05 11:00:00", 17.02, 12583.0, "France"),
    ("536367", "DCGSSBOY", "BOYS PARTY BAG", 1, "2011-01-05 11:00:00", 3.29, 12583.0, "France"),
    ("536367", "85123A", "CREAM HANGING HEART T-LIGHT HOLDER", 2, "2011-01-05 11:00:00", 0.0, 12583.0, "France"),
    ("536367", "m", "Manual", 1, "2011-01-05 11:00:00", 0.5, 12583.0, "France"),
    ("536368", "71053", None, 3, "2011-02-01 12:00:00", 3.39, 12583.0, "United Kingdom"),
    ("A563185", "B", "Adjust bad debt", 1, "2011-08-12 14:50:00", 11062.06, None, "United Kingdom"),
]


def _csv_text(rows=ROWS, header=HEADER) -> str:
    def cell(v):
        return "" if v is None else str(v)

    return "\n".join([",".join(header)] + [",".join(cell(v) for v in r) for r in rows]) + "\n"


@pytest.fixture
def tiny_csv(tmp_path):
    path = tmp_path / "online_retail.csv"
    path.write_text(_csv_text(), encoding="utf-8")
    return path


@pytest.fixture
def tiny_xlsx(tmp_path):
    """The same rows as the spreadsheet the UCI ships: numbers as numbers, dates as dates."""
    from openpyxl import Workbook

    wb = Workbook()
    ws = wb.active
    ws.append(HEADER)
    for inv, code, desc, qty, when, price, cust, country in ROWS:
        ws.append([int(inv) if inv.isdigit() else inv, int(code) if code.isdigit() else code, desc, qty,
                   datetime.fromisoformat(when), price, cust, country])
    path = tmp_path / "Online Retail.xlsx"
    wb.save(path)
    return path


def test_handmade_csv_maps_every_row(tiny_csv):
    tables = read_online_retail(tiny_csv)
    lines = tables["sales_lines"]
    assert lines.height == len(ROWS)
    assert dict(lines.schema) == SALES_LINES_SCHEMA
    assert lines["line_number"].to_list() == [1, 2, 3, 1, 2, 3, 1, 1, 2, 3, 4, 1, 1]
    assert lines["customer_id"].to_list()[:4] == ["17850", "17850", "17850", None]
    assert set(lines["channel"]) == {"online"}
    assert lines["store_id"].to_list()[3] == "online-eire"
    types = dict(zip(lines["transaction_id"], lines["transaction_type"]))
    assert types["C536379"] == "cancellation" and types["A563185"] == "adjustment" and types["536365"] == "sale"
    assert lines["quantity"][6] == -1.0 and lines["transaction_time"][0] == datetime(2010, 12, 1, 8, 26)
    assert lines["description"][3] == "WHITE HANGING HEART T-LIGHT HOLDER "  # lines keep the source text


def test_handmade_csv_products_customers_stores(tiny_csv):
    tables = read_online_retail(tiny_csv)
    products = {r["product_id"]: r for r in tables["products"].iter_rows(named=True)}
    heart = products["85123A"]
    assert heart["name"] == "WHITE HANGING HEART T-LIGHT HOLDER"  # most frequent, stripped
    assert heart["price"] == 2.55  # median of the positive prices
    assert heart["category"] == "Candles & lights"
    assert products["22633"]["category"] == "Textiles"
    assert products["71053"]["name"] == "WHITE METAL LANTERN"
    kinds = {k: v["product_type"] for k, v in products.items()}
    assert kinds == {"85123A": "merchandise", "71053": "merchandise", "22633": "merchandise", "POST": "fee",
                     "gift_0001_20": "gift_card", "DCGSSBOY": "other", "m": "adjustment", "B": "adjustment"}
    assert products["POST"]["category"] == "Non-merchandise"

    customers = {r["customer_id"]: r for r in tables["customers"].iter_rows(named=True)}
    assert set(customers) == {"17850", "12583"}
    assert customers["12583"]["home_store_id"] == "online-france"  # where most of their lines ship
    stores = tables["stores"]
    assert dict(zip(stores["store_id"], stores["country"])) == {
        "online-eire": "EIRE", "online-france": "France", "online-united-kingdom": "United Kingdom"}
    assert set(stores["channel"]) == {"online"}
    assert tables["wish_lists"].height == 0 and dict(tables["wish_lists"].schema) == WISH_LISTS_SCHEMA


def test_gzip_and_xlsx_read_the_same_as_csv(tiny_csv, tiny_xlsx, tmp_path):
    gz = tmp_path / "online_retail.csv.gz"
    gz.write_bytes(gzip.compress(tiny_csv.read_bytes()))
    expected = read_online_retail(tiny_csv)
    for other in (gz, tiny_xlsx):
        got = read_online_retail(other)
        for name, table in expected.items():
            assert got[name].equals(table), f"{other.name}: {name} differs from the csv"


def test_extract_writes_the_entity_store_incrementally(workbench_home, tiny_csv):
    first = extract_online_retail(tiny_csv, start="2011-01-01")
    assert first["new_lines"] == 6 and first["watermark"] == "2011-08-12 14:50:00"
    root = paths.raw_dir("online_retail")
    assert {p.name for p in root.iterdir()} >= {"sales_lines", "products.parquet", "customers.parquet", "stores.parquet",
                                                "wish_lists.parquet", "legal_entity.json", "watermark.json"}
    assert extract_online_retail(tiny_csv, start="2011-01-01")["new_lines"] == 0
    # without start, a run re-reads only the lookback before the watermark: nothing older is added...
    nightly = extract_online_retail(tiny_csv)
    assert nightly["new_lines"] == 0 and nightly["read_window"]["start"] == "2011-08-09 14:50:00"
    # ...unless the lookback is off (the whole source re-read)
    rest = extract_online_retail(tiny_csv, lookback_days=None)
    assert rest["new_lines"] == 7 and rest["rows"]["sales_lines"] == len(ROWS)
    assert read_sales_lines("online_retail").height == len(ROWS)
    assert extract_online_retail(tiny_csv, lookback_days=None)["new_lines"] == 0


def test_extract_window_without_rows(workbench_home, tiny_csv):
    with pytest.raises(ExtractionError, match=r"no sales lines in \[2012-01-01 00:00:00, the end\).*2010-12-01 08:26:00"):
        extract_online_retail(tiny_csv, start="2012-01-01")
    with pytest.raises(ExtractionError, match="is not before end"):
        extract_online_retail(tiny_csv, start="2011-01-01", end="2010-01-01")


def test_missing_columns_are_named(tmp_path):
    path = tmp_path / "short.csv"
    path.write_text(_csv_text([r[:6] for r in ROWS], HEADER[:6]))
    with pytest.raises(ExtractionError, match=r"short\.csv lacks column\(s\) CustomerID, Country"):
        read_online_retail(path)


def test_corrupt_gzip(tmp_path, tiny_csv):
    path = tmp_path / "broken.csv.gz"
    path.write_bytes(gzip.compress(tiny_csv.read_bytes() * 50)[:300])
    with pytest.raises(ExtractionError, match=r"cannot read .*broken\.csv\.gz: EOFError"):
        read_online_retail(path)
    path.write_bytes(tiny_csv.read_bytes())  # named .gz but not compressed
    with pytest.raises(ExtractionError, match=r"broken\.csv\.gz: BadGzipFile"):
        read_online_retail(path)


def test_corrupt_xlsx(tmp_path):
    path = tmp_path / "broken.xlsx"
    path.write_bytes(b"PK\x03\x04 not really a zip archive")
    with pytest.raises(ExtractionError, match=r"cannot read .*broken\.xlsx"):
        read_online_retail(path)


def test_missing_file_and_unknown_format(tmp_path):
    with pytest.raises(ExtractionError, match=r"entity sales_lines: no file matches .*absent\.csv\.gz"):
        read_online_retail(tmp_path / "absent.csv.gz")
    odd = tmp_path / "retail.dat"
    odd.write_bytes(b"x")
    with pytest.raises(ExtractionError, match="unknown format"):
        read_online_retail(odd)
    broken = tmp_path / "retail.parquet"
    broken.write_bytes(b"x")
    with pytest.raises(ExtractionError, match=r"cannot read .*retail\.parquet"):
        read_online_retail(broken)


def test_unreadable_values_name_column_and_row(tmp_path):
    rows = list(ROWS)
    rows[4] = rows[4][:4] + ("2010-13-45 09:00:00",) + rows[4][5:]
    path = tmp_path / "bad_date.csv"
    path.write_text(_csv_text(rows))
    with pytest.raises(ExtractionError, match=r"column sales_lines\.transaction_time: 1 value\(s\) of column 'InvoiceDate' "
                       r"do not read as a datetime \(bad_date\.csv line 6: '2010-13-45 09:00:00'\)"):
        read_online_retail(path)
    rows = list(ROWS)
    rows[1] = rows[1][:3] + ("six",) + rows[1][4:]
    path.write_text(_csv_text(rows))
    with pytest.raises(ExtractionError, match=r"sales_lines\.quantity: 1 value\(s\) of column 'Quantity' do not read as a number \(bad_date\.csv line 3: 'six'\)"):
        read_online_retail(path)


@pytest.mark.real_data
def test_real_online_retail_file(online_retail_file, workbench_home):
    tables = read_online_retail(online_retail_file)
    lines = tables["sales_lines"]
    assert lines.height == 541_909
    types = dict(lines.group_by("transaction_type").len().rows())
    assert types == {"sale": 541_909 - 9_288 - 3, "cancellation": 9_288, "adjustment": 3}
    assert lines["customer_id"].drop_nulls().n_unique() == 4_372 == tables["customers"].height
    assert lines["customer_id"].null_count() == 135_080
    assert not lines["customer_id"].drop_nulls().str.contains(r"\.").any()
    assert lines["transaction_id"].n_unique() == 25_900
    assert tables["products"].height == 4_070 and tables["stores"].height == 38
    assert lines["transaction_time"].min() == datetime(2010, 12, 1, 8, 26)
    non_merch = tables["products"].filter(pl.col("product_type") != "merchandise")["product_id"].to_list()
    assert {"POST", "DOT", "M", "m", "C2", "D", "S", "B", "PADS", "BANK CHARGES", "AMAZONFEE", "CRUK"} <= set(non_merch)
    prefixed = tables["products"].filter(pl.col("product_id").str.starts_with("gift_") | pl.col("product_id").str.starts_with("DCGS"))
    assert prefixed.height > 10 and (prefixed["product_type"] != "merchandise").all()
    assert tables["products"].filter(pl.col("product_type") == "merchandise")["category"].is_in(["Other"]).mean() < 0.25

    summary = extract_online_retail(online_retail_file)
    assert summary["rows"]["sales_lines"] == 541_909 == read_sales_lines("online_retail").height


def test_the_same_file_spelt_another_way_is_the_same_source(workbench_home, tiny_csv, monkeypatch):
    extract_online_retail(tiny_csv)
    monkeypatch.chdir(tiny_csv.parent)
    relative = __import__("os").path.relpath(tiny_csv, paths.code_root())
    assert extract_online_retail(relative)["new_lines"] == 0  # not refused as another source
    other = tiny_csv.with_name("other.csv")
    other.write_bytes(tiny_csv.read_bytes())
    with pytest.raises(ExtractionError, match="refusing to mix"):
        extract_online_retail(other)
