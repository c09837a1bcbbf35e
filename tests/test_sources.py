"""Source mappings (configs/sources/): the shipped formats extract exactly what the code before mappings
did (tests/legacy/, frozen), a changed source is refused, and a mapping error names what is wrong."""

from __future__ import annotations

import json
import shutil
import sqlite3
from datetime import datetime
from pathlib import Path

import polars as pl
import pytest
import yaml

from helpers import registered_model
from legacy import extract_v1, online_retail_v1
from workbench import paths
from workbench.datasets import extract as ex
from workbench.datasets.mapping import MappingError, load_mapping, shipped_mappings
from workbench.datasets.online_retail import read_online_retail
from workbench.datasets.store import read_tables

TABLES = ("sales_lines", "products", "customers", "stores", "wish_lists")


def assert_same_store(got: dict, want: dict) -> None:
    for name in TABLES:
        a, b = got[name], want[name]
        assert a.schema == b.schema, name
        assert a.height == b.height, f"{name}: {a.height} rows, expected {b.height}"
        diff = [c for c in a.columns if not a[c].equals(b[c])]
        assert not diff, f"{name}: columns {diff} differ"


def legacy_store(root) -> dict:
    tables = {"sales_lines": extract_v1.read_sales_lines("x", out_dir=root)}
    tables.update({t: pl.read_parquet(root / f"{t}.parquet") for t in TABLES[1:]})
    return tables


@pytest.mark.parametrize("legal_entity", ["USRT", "FRRT"])
def test_demo_mapping_extracts_what_the_code_before_mappings_did(workbench_home, demo_db_url, legal_entity):
    old_root = workbench_home / "legacy"
    extract_v1.extract_entity_store(demo_db_url, legal_entity, out_dir=old_root, progress=False)
    summary = ex.extract_source("demo", legal_entity, source=demo_db_url, progress=False)
    assert summary["mapping"] == "demo"
    assert_same_store(read_tables(legal_entity), legacy_store(old_root))
    assert (json.loads((paths.raw_dir(legal_entity) / "legal_entity.json").read_text())
            == json.loads((old_root / "legal_entity.json").read_text()))


def test_online_retail_mapping_reads_what_the_code_before_mappings_did(tmp_path):
    from test_online_retail import ROWS, _csv_text

    path = tmp_path / "online_retail.csv"
    path.write_text(_csv_text(ROWS + [("536370", "22728", "ALARM CLOCK BAKELIKE PINK", 24, "12/01/2010 08:45", 3.75,
                                       "12583", " France ")]))
    assert_same_store(read_online_retail(path), online_retail_v1.read_online_retail(path))


@pytest.mark.real_data
def test_online_retail_mapping_on_the_real_file(online_retail_file):
    assert_same_store(read_online_retail(online_retail_file), online_retail_v1.read_online_retail(online_retail_file))


def test_shipped_mappings_load():
    assert {"demo", "online_retail"} <= set(shipped_mappings())
    for name in shipped_mappings():
        assert load_mapping(name).entities["sales_lines"].columns


# ----------------------------------------------------------------------------- one source per store


def test_a_changed_source_is_refused_and_rebuilt_on_request(workbench_home, demo_db, tmp_path):
    ex.extract_entity_store(f"sqlite:///{demo_db}", "USRT", progress=False)
    before = read_tables("USRT")
    other = tmp_path / "other_retailer.sqlite"
    shutil.copyfile(demo_db, other)
    with sqlite3.connect(other) as conn:
        conn.execute("DELETE FROM customers")
    with pytest.raises(ex.ExtractionError) as err:
        ex.extract_entity_store(f"sqlite:///{other}", "USRT", progress=False)
    message = str(err.value)
    assert "was extracted from sqlite:///" in message and "other_retailer.sqlite" in message
    assert "refusing to mix" in message and "incremental=False" in message
    assert_same_store(read_tables("USRT"), before)  # nothing touched
    rebuilt = ex.extract_entity_store(f"sqlite:///{other}", "USRT", incremental=False, progress=False)
    assert rebuilt["rows"]["customers"] == 0 and read_tables("USRT")["customers"].height == 0
    assert ex.read_watermark("USRT")["source_identity"]["source"] == f"sqlite:///{other}"
    assert len(ex.read_watermark("USRT")["history"]) == 1  # a rebuilt store starts a new history


def test_a_password_is_never_recorded(workbench_home, demo_db):
    with pytest.raises(ex.ExtractionError) as err:
        ex.extract_source("demo", "USRT", source="postgresql+psycopg://etl:s3cret@127.0.0.1:1/pos", progress=False)
    assert "s3cret" not in str(err.value) and "etl:***@127.0.0.1" in str(err.value)


# ----------------------------------------------------------------------------- mapping errors


def test_mapping_errors_name_the_file_entity_and_column(tmp_path):
    bad = tmp_path / "bad.yml"
    bad.write_text("name: bad\nkind: files\nentities:\n  sales_lines:\n    files: x.csv\n    columns:\n      basket: Invoice\n")
    with pytest.raises(MappingError, match=r"bad\.yml, entity sales_lines: 'basket' is not a column of sales_lines"):
        load_mapping(bad)
    bad.write_text("name: bad\nkind: files\nentities:\n  sales_line:\n    files: x.csv\n")
    with pytest.raises(MappingError, match=r"unknown entit.*sales_line"):
        load_mapping(bad)
    with pytest.raises(MappingError, match="not found.*shipped mappings"):
        load_mapping("no_such_mapping")
    bad.write_text("name: bad\nkind: files\nentities:\n  sales_lines:\n    files: x.csv\n    columns:\n"
                   "      transaction_time: {days_since_previous: d, per: c, origin: '2024-01-01', end: '2024-12-31'}\n")
    with pytest.raises(MappingError, match=r"sales_lines.*transaction_time.*`origin`.*or back from `end`.*not both"):
        load_mapping(bad)


# ----------------------------------------------------------------------------- file encodings (issue 8)


def test_a_file_in_another_encoding_fails_naming_file_and_offset_then_reads_with_its_encoding(tmp_path):
    from test_online_retail import ROWS, _csv_text

    text = _csv_text(ROWS[:2] + [("536399", "21000", "CAFÉ CRÈME MUG", 2, "2010-12-05 10:00:00", 1.25, "12583", "France")])
    path = tmp_path / "latin1.csv"
    path.write_bytes(text.encode("latin-1"))
    offset = text.encode("latin-1").index("É".encode("latin-1"))
    with pytest.raises(ex.ExtractionError, match=rf"latin1\.csv: byte offset {offset} \(line 4\) is not valid utf-8.*encoding: latin-1"):
        read_online_retail(path)
    tables = read_online_retail(path, encoding="latin-1")
    assert "CAFÉ CRÈME MUG" in tables["sales_lines"]["description"].to_list()
    assert tables["sales_lines"]["description"].str.contains("\ufffd").sum() == 0  # never a replacement character


# ----------------------------------------------------------------------------- data contracts


def test_a_wrong_mapping_fails_its_contract_naming_entity_column_rule_and_rows(workbench_home, demo_db_url):
    import yaml

    from workbench.datasets.contracts import ContractError

    good = ex.extract_source("demo", "USRT", source=demo_db_url, progress=False)
    report = {(r["entity"], r["column"], r["rule"]): r for r in good["contracts"]}
    assert all(r["status"] == "ok" for r in good["contracts"])
    assert report[("sales_lines", "customer_id", "in_customers")]["rows"] == 0
    assert 0 < report[("sales_lines", "product_id", "in_products")]["rows"]  # the demo's dirt, tolerated
    before = read_tables("USRT")

    wrong = yaml.safe_load(load_mapping("demo").text)
    wrong["entities"]["customers"]["columns"]["customer_id"] = "name"  # the customer's name mapped as its id
    with pytest.raises(ContractError) as err:
        ex.extract_source(wrong, "USRT", source=demo_db_url, progress=False)
    message = str(err.value)
    assert "nothing was written" in message
    assert "sales_lines.customer_id rule in_customers (is one of customers)" in message
    assert "wish_lists.customer_id rule in_customers" in message
    assert "row 0 (transaction_id 'USRT-" in message and "customer_id = 'C0" in message
    assert_same_store(read_tables("USRT"), before)  # the published store is untouched


def test_an_optional_entity_the_retailer_lacks_is_an_empty_table(workbench_home, tmp_path):
    from test_online_retail import ROWS

    path = tmp_path / "baskets.csv"
    path.write_text("basket,sku,sku_name,sold,units,price\n" + "\n".join(
        f"{r[0]},{r[1]},{r[2] or ''},{r[4][8:10]}/{r[4][5:7]}/{r[4][:4]} {r[4][11:16]},{r[3]},{r[5]}" for r in ROWS) + "\n")
    summary = ex.extract_source(paths.code_root() / "tests" / "sources" / "anonymous_baskets.yml", "ANON",
                                source=str(path), progress=False)
    tables = read_tables("ANON")
    assert summary["rows"]["customers"] == summary["rows"]["stores"] == summary["rows"]["wish_lists"] == 0
    assert tables["sales_lines"]["customer_id"].null_count() == len(ROWS) and tables["sales_lines"].height == len(ROWS)
    assert tables["products"].height == len({r[1] for r in ROWS})
    assert tables["sales_lines"]["transaction_time"].min().isoformat() == "2010-12-01T08:26:00"


# ----------------------------------------------------------------------------- the Recommendations API format


def test_recommendations_api_files_round_trip(workbench_home, demo_db_url, tmp_path):
    from workbench.datasets.exchange import export_recommendations_api

    ex.extract_entity_store(demo_db_url, "FRRT", progress=False)
    folder = tmp_path / "rec_api"
    summary = export_recommendations_api("FRRT", folder)
    assert (folder / "catalog.csv").read_text().count("\n") == summary["products"]
    original = read_tables("FRRT")
    # events that are not purchases are not sales; a usage line without an event is one
    with open(folder / "usage.csv", "a") as usage:
        usage.write("C000001,P00001,2025/06/01T10:00:00,Click\nC000001,P00002,2025/06/01T10:00:00\n")
    imported = ex.extract_source("recommendations_api", "FRRT_REC", source=str(folder), progress=False)
    assert imported["rows"]["sales_lines"] == summary["usage_lines"] + 1
    got = read_tables("FRRT_REC")

    sold = (original["sales_lines"].filter((pl.col("transaction_type") == "sale") & (pl.col("quantity") > 0)
                                           & pl.col("customer_id").is_not_null() & pl.col("product_id").is_not_null())
            .select("customer_id", "product_id", pl.col("transaction_time").dt.truncate("1s")))
    appended = (pl.col("customer_id") == "C000001") & (pl.col("product_id") == "P00002") & (
        pl.col("transaction_time") == datetime(2025, 6, 1, 10))
    assert got["sales_lines"].filter(appended).height == 1
    back = got["sales_lines"].filter(~appended).select("customer_id", "product_id", "transaction_time")
    assert back.sort(back.columns).equals(sold.sort(sold.columns))
    # a basket is one customer's purchases at one moment; prices and names come from the catalog
    assert got["sales_lines"]["transaction_id"].n_unique() == got["sales_lines"].select("customer_id", "transaction_time").n_unique()
    want = original["products"].filter(pl.col("product_id").is_not_null()).unique("product_id", keep="first", maintain_order=True)
    assert got["products"].select("product_id", "price", "product_type").equals(want.select("product_id", "price", "product_type"))
    assert got["products"]["category"].equals(want["category"])
    line = got["sales_lines"].row(0, named=True)
    assert line["unit_price"] == want.filter(pl.col("product_id") == line["product_id"])["price"].item()
    assert set(got["customers"]["customer_id"]) == set(got["sales_lines"]["customer_id"])


DYNAMICS_DDL = """
CREATE TABLE CompanyInfo (DATAAREAID TEXT, NAME TEXT, CURRENCYCODE TEXT);
CREATE TABLE RetailTransactionTable (TRANSACTIONID TEXT, STORE TEXT, CUSTACCOUNT TEXT, TRANSDATE TEXT, TRANSTIME INTEGER,
                                     TYPE INTEGER, ENTRYSTATUS INTEGER, DATAAREAID TEXT);
CREATE TABLE RetailTransactionSalesTrans (TRANSACTIONID TEXT, LINENUM REAL, ITEMID TEXT, QTY REAL, PRICE REAL,
                                          TRANSACTIONSTATUS INTEGER, DATAAREAID TEXT);
CREATE TABLE EcoResProduct (RECID INTEGER, DISPLAYPRODUCTNUMBER TEXT, PRICE REAL, PRODUCTTYPE INTEGER);
CREATE TABLE EcoResProductTranslation (PRODUCT INTEGER, NAME TEXT, LANGUAGEID TEXT);
CREATE TABLE EcoResProductCategory (PRODUCT INTEGER, CATEGORY INTEGER);
CREATE TABLE EcoResCategory (RECID INTEGER, NAME TEXT);
CREATE TABLE CustTable (ACCOUNTNUM TEXT, PARTY INTEGER, CUSTGROUP TEXT, DATAAREAID TEXT);
CREATE TABLE DirPartyTable (RECID INTEGER, NAME TEXT);
CREATE TABLE RetailStoreTable (STORENUMBER TEXT, NAME TEXT, CITY TEXT, COUNTRYREGIONID TEXT, DATAAREAID TEXT);
INSERT INTO CompanyInfo VALUES ('usrt', 'Contoso US', 'USD'), ('frrt', 'Contoso FR', 'EUR');
INSERT INTO RetailTransactionTable VALUES
  ('R1', 'S1', 'C-1', '2025-03-01 00:00:00', 36000, 2, 0, 'usrt'),
  ('R2', 'S1', '',    '2025-03-02 00:00:00', 50400, 2, 1, 'usrt'),
  ('R3', 'S1', 'C-1', '2025-03-03 00:00:00', 3600,  2, 0, 'usrt'),
  ('R4', 'S1', 'C-1', '2025-03-03 00:00:00', 7200,  19, 0, 'usrt'),
  ('R5', 'S9', 'C-9', '2025-03-03 00:00:00', 7200,  2, 0, 'frrt');
INSERT INTO RetailTransactionSalesTrans VALUES
  ('R1', 1, 'I-100', -2, 4.5, 0, 'usrt'), ('R1', 2, 'I-200', -1, 9.0, 0, 'usrt'), ('R1', 3, 'I-300', -1, 20, 1, 'usrt'),
  ('R2', 1, 'I-100', -1, 4.5, 0, 'usrt'), ('R3', 1, 'I-200', 1, 9.0, 0, 'usrt'), ('R4', 1, 'I-100', -5, 0, 0, 'usrt'),
  ('R5', 1, 'I-100', -1, 4.5, 0, 'frrt');
INSERT INTO EcoResProduct VALUES (11, 'I-100', 4.5, 1), (12, 'I-200', 9.0, 1), (13, 'I-300', 20.0, 2);
INSERT INTO EcoResProductTranslation VALUES (11, 'Mug', 'en-us'), (11, 'Tasse', 'fr'), (12, 'Teapot', 'en-us'),
  (13, 'Warranty', 'en-us');
INSERT INTO EcoResProductCategory VALUES (11, 7), (12, 7), (13, 8);
INSERT INTO EcoResCategory VALUES (7, 'Kitchen'), (8, 'Services');
INSERT INTO CustTable VALUES ('C-1', 501, 'Gold', 'usrt'), ('C-9', 509, 'Std', 'frrt');
INSERT INTO DirPartyTable VALUES (501, 'Ada Lovelace'), (509, 'Blaise Pascal');
INSERT INTO RetailStoreTable VALUES ('S1', 'Seattle', 'Seattle', 'USA', 'usrt'), ('S9', 'Paris', 'Paris', 'FRA', 'frrt');
"""


def test_the_documented_dynamics_example_runs(workbench_home, tmp_path):
    db = tmp_path / "channel.sqlite"
    with sqlite3.connect(db) as conn:
        conn.executescript(DYNAMICS_DDL)
    summary = ex.extract_source("dynamics_example", "usrt", source=f"sqlite:///{db}", progress=False)
    t = read_tables("usrt")
    lines = t["sales_lines"].sort("transaction_id", "line_number")
    assert summary["rows"]["sales_lines"] == 5  # R4 is not a sales receipt, R5 another legal entity
    assert lines["quantity"].to_list() == [2.0, 1.0, 1.0, 1.0, -1.0]
    assert lines["transaction_type"].to_list() == ["sale", "sale", "void", "void", "return"]
    assert lines["customer_id"].to_list() == ["C-1", "C-1", "C-1", None, "C-1"]
    assert lines["transaction_time"].dt.strftime("%Y-%m-%d %H:%M").to_list()[:1] == ["2025-03-01 10:00"]
    assert t["products"].select("product_id", "name", "category", "product_type").rows() == [
        ("I-100", "Mug", "Kitchen", "merchandise"), ("I-200", "Teapot", "Kitchen", "merchandise"),
        ("I-300", "Warranty", "Services", "service")]
    assert t["customers"].rows() == [("C-1", "Ada Lovelace", "Gold", None, None)]
    assert json.loads((paths.raw_dir("usrt") / "legal_entity.json").read_text())["currency"] == "USD"
    # the window is exact although the database filters by day (R2 is at 14:00 on its day)
    ex.extract_source("dynamics_example", "usrt", source=f"sqlite:///{db}", start="2025-03-02 13:00", end="2025-03-03",
                      incremental=False, progress=False)
    assert read_tables("usrt")["sales_lines"]["transaction_id"].unique().to_list() == ["R2"]


@pytest.mark.parametrize("anchor, expected", [
    ({"origin": "2024-01-01"}, {"o1": "2024-01-01 09:00", "o2": "2024-01-08 10:00", "o3": "2024-01-01 08:00", "o4": "2024-01-10 23:00"}),
    # each customer's last order on `end`: u1's 9.5 days of offsets end there, and so does u2's one order
    ({"end": "2024-03-31"}, {"o1": "2024-03-21 21:00", "o2": "2024-03-28 22:00", "o3": "2024-03-31 08:00", "o4": "2024-03-31 11:00"}),
])
def test_orders_and_order_lines_with_day_offsets(workbench_home, tmp_path, anchor, expected):
    """An orders file (days since the customer's previous order, no timestamps) and its order lines."""
    (tmp_path / "orders.csv").write_text(
        "order_id,user_id,order_number,days_since_prior_order,hour\n"
        "o1,u1,1,,9\no2,u1,2,7.0,10\no3,u2,1,,8\no4,u1,3,2.5,11\n")
    (tmp_path / "order_lines.csv").write_text(
        "order_id,product_id,add_to_cart_order,price\no1,p1,1,2.0\no1,p2,2,3.0\no2,p1,1,2.0\no3,p2,1,3.0\no4,p3,1,1.5\n")
    mapping = {
        "name": "orders", "kind": "files", "source": str(tmp_path),
        "legal_entity": {"name": "Orders retailer", "currency": "USD", "pos_recommendations_enabled": True},
        "entities": {
            "sales_lines": {"files": "{source}/order_lines.csv", "columns": {
                "transaction_id": "order_id", "line_number": {"column": "add_to_cart_order", "cast": "int"},
                "product_id": "product_id", "quantity": {"constant": 1.0}, "unit_price": "price"}},
            "transactions": {"files": "{source}/orders.csv", "columns": {
                "transaction_id": "order_id", "customer_id": "user_id",
                "_n": {"column": "order_number", "cast": "int"},  # ordered as numbers, not text
                "_day": {"days_since_previous": "days_since_prior_order", "per": "user_id", "order_by": "_n", **anchor},
                "transaction_time": {"polars": 'pl.col("_day") + pl.duration(hours=pl.col("hour").cast(pl.Int64))'}}},
            "products": {"from": "sales_lines", "group_by": "product_id", "columns": {
                "product_id": "product_id", "price": {"agg": "median", "of": "unit_price"},
                "product_type": {"constant": "merchandise"}}},
            "customers": {"from": "sales_lines", "group_by": "customer_id", "columns": {"customer_id": "customer_id"}},
        },
    }
    ex.extract_source(mapping, "ORD", progress=False)
    lines = read_tables("ORD")["sales_lines"].sort("transaction_id", "line_number")
    times = dict(zip(lines["transaction_id"], lines["transaction_time"].dt.strftime("%Y-%m-%d %H:%M")))
    assert times == expected
    assert lines["customer_id"].to_list() == ["u1", "u1", "u1", "u2", "u1"]
    assert read_tables("ORD")["customers"]["customer_id"].to_list() == ["u1", "u2"]


def test_the_source_url_may_come_from_the_environment(workbench_home, demo_db_url, monkeypatch):
    monkeypatch.setenv("POS_DB_URL", demo_db_url)
    summary = ex.extract_source("demo", "FRRT", source="${ENV:POS_DB_URL}", progress=False)
    assert summary["source"] == demo_db_url and summary["rows"]["sales_lines"] > 0
    monkeypatch.delenv("POS_DB_URL")
    with pytest.raises(ValueError, match="POS_DB_URL"):
        ex.extract_source("demo", "FRRT", source="${ENV:POS_DB_URL}", progress=False)


# ----------------------------------------------------------------------------- a retailer without customers, end to end


def _pipeline(tmp_path: Path, legal_entity: str, mapping: str, source: Path, algorithms: list[str]) -> Path:
    """`workbench run` of extract, cleanse, train and evaluate on `source` through the test mapping
    `tests/sources/<mapping>` (untuned, one validation window: the path, not the figures), in a
    WORKBENCH_HOME of its own; returns that home."""
    import os
    import subprocess
    import sys

    config = tmp_path / "run.yml"
    config.write_text(
        f"stages: [extract, cleanse, train, evaluate]\nparameters:\n  legal_entity: {legal_entity}\n"
        f"  source_mapping: {paths.code_root() / 'tests' / 'sources' / mapping}\n  source: {source}\n"
        f"  algorithms: [{', '.join(algorithms)}]\n  tune: false\n  validation_windows: 1\n  bootstrap_resamples: 100\n")
    home = tmp_path / "home"
    env = {**os.environ, "WORKBENCH_HOME": str(home)}
    env.pop("MLFLOW_TRACKING_URI", None)
    done = subprocess.run([str(Path(sys.executable).parent / "workbench"), "run", "-c", str(config), "--no-progress"],
                          env=env, capture_output=True, text=True, timeout=1500)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-5000:]
    return home


def _three_pages(model, product: str, basket_customer: str | None, customer: str) -> list:
    """The registered model's answers (k = 5) to a product page on `product`, a basket page of
    `product` with `basket_customer` and `customer`'s page, one frame each: five items on every page."""
    import pandas as pd

    answers = model.predict(pd.DataFrame({
        "scenario": ["product", "basket", "customer"], "customer_id": [None, basket_customer, customer],
        "product_ids": [[product], [product], []], "k": [5, 5, 5]}))
    pages = [answers[answers["request"] == page] for page in range(3)]
    for page, mine in enumerate(pages):
        assert len(mine) == 5 and mine["product_id"].notna().all(), (page, mine)
    return pages


@pytest.mark.e2e
def test_a_retailer_without_customers_gets_all_three_pos_pages(demo_db, tmp_path):
    """Baskets without customer ids, stores or wish lists, through a mapping and the whole pipeline
    (03_train used to fail with IndexError on the empty customer matrix, and the champion's fit on
    its empty per-customer arrays)."""
    import csv

    rows = sqlite3.connect(demo_db).execute(
        "SELECT l.transaction_id, l.product_id, l.description, t.transaction_time, l.quantity, l.unit_price "
        "FROM sales_lines l JOIN sales_transactions t ON t.id = l.transaction_id "
        "WHERE t.legal_entity_id = 'USRT' AND t.status = 'completed' AND l.line_type = 'sale'").fetchall()
    export = tmp_path / "baskets.csv"
    with open(export, "w", newline="") as f:
        out = csv.writer(f)
        out.writerow(["basket", "sku", "sku_name", "sold", "units", "price"])
        out.writerows((b, s, n, f"{t[8:10]}/{t[5:7]}/{t[:4]} {t[11:16]}", q, p) for b, s, n, t, q, p in rows)
    home = _pipeline(tmp_path, "ANON", "anonymous_baskets.yml", export, ["best_sellers", "repeat", "sar", "champion"])
    assert pl.read_parquet(home / "data" / "raw" / "ANON" / "customers.parquet").height == 0
    product = rows[0][1]
    pages = _three_pages(registered_model(home, "champion-ANON"), product, None, "C000001")
    for page, mine in enumerate(pages):
        assert product not in set(mine["product_id"]), (page, mine)
    assert pages[2]["reason"].str.startswith("best seller").all(), pages[2]


@pytest.mark.e2e
def test_a_basket_sequence_file_without_dates_gets_all_three_pos_pages(demo_db, tmp_path):
    """Households' baskets in order and no dates (tests/sources/basket_sequences.yml) through the
    whole pipeline: each household's baskets a week apart with the last on the end day, and the
    registered model serves a household's page from its own history."""
    rows = sqlite3.connect(demo_db).execute(
        "SELECT t.customer_id, l.transaction_id, l.product_id FROM sales_lines l JOIN sales_transactions t ON t.id = l.transaction_id "
        "WHERE t.legal_entity_id = 'USRT' AND t.status = 'completed' AND l.line_type = 'sale' AND t.customer_id IS NOT NULL "
        "ORDER BY t.customer_id, t.transaction_time, l.transaction_id").fetchall()
    baskets: dict[tuple, list] = {}
    for customer, basket, product in rows:
        baskets.setdefault((customer, basket), []).append(product)
    numbers: dict[str, int] = {}
    export = tmp_path / "baskets.jsonl"
    with open(export, "w") as f:
        for (customer, _), items in baskets.items():  # in each household's order: the query's
            numbers[customer] = numbers.get(customer, 0) + 1
            f.write(json.dumps({"household": customer, "basket_number": numbers[customer], "items": items}) + "\n")
    home = _pipeline(tmp_path, "SEQ", "basket_sequences.yml", export, ["best_sellers", "repeat", "ease", "champion"])

    loyal = max(numbers, key=numbers.get)
    lines = pl.read_parquet(home / "data" / "raw" / "SEQ" / "sales_lines" / "*.parquet").filter(pl.col("customer_id") == loyal)
    days = sorted(set(lines["transaction_time"].dt.date().to_list()))
    assert len(days) == numbers[loyal] and str(days[-1]) == "2025-12-31"
    assert {(b - a).days for a, b in zip(days, days[1:])} == {7}

    product = rows[0][2]
    pages = _three_pages(registered_model(home, "champion-SEQ"), product, loyal, loyal)
    for page, mine in enumerate(pages[:2]):
        assert product not in set(mine["product_id"]), (page, mine)
    assert not pages[2]["reason"].str.startswith("best seller").all(), pages[2]


def test_basket_sequences_in_json_lines(workbench_home, tmp_path):
    """One JSON object per basket with its items as a list, and days instead of timestamps."""
    (tmp_path / "baskets.jsonl").write_text(
        '{"basket": 1, "household": "h1", "day": 3, "items": ["milk", "bread"], "store": "s1"}\n'
        '{"basket": 2, "household": "h2", "day": 4, "items": ["milk"], "store": "s2"}\n'
        '{"basket": 3, "household": null, "day": 4, "items": ["eggs", "milk", "tea"], "store": "s1"}\n')
    mapping = {
        "name": "basket_json", "kind": "files", "source": str(tmp_path / "baskets.jsonl"),
        "legal_entity": {"name": "Grocer", "currency": "EUR", "pos_recommendations_enabled": True},
        "entities": {
            "sales_lines": {"files": "{source}", "explode": "items", "columns": {
                "transaction_id": {"column": "basket", "cast": "id"}, "customer_id": "household",
                "product_id": "items", "store_id": "store", "quantity": {"constant": 1.0}, "unit_price": {"constant": 1.0},
                "transaction_time": {"polars": 'pl.datetime(2024, 1, 1) + pl.duration(days=pl.col("day"))'}}},
            "products": {"from": "sales_lines", "group_by": "product_id", "columns": {
                "product_id": "product_id", "product_type": {"constant": "merchandise"}}},
            "stores": {"from": "sales_lines", "group_by": "store_id", "columns": {
                "store_id": "store_id", "channel": {"constant": "store"}}},
        },
    }
    summary = ex.extract_source(mapping, "GROCER", progress=False)
    lines = read_tables("GROCER")["sales_lines"].sort("transaction_id", "line_number")
    assert summary["rows"]["sales_lines"] == 6 and lines["line_number"].to_list() == [1, 2, 1, 1, 2, 3]
    assert lines["product_id"].to_list() == ["milk", "bread", "milk", "eggs", "milk", "tea"]
    assert lines["channel"].unique().to_list() == ["store"]  # from the stores entity
    assert read_tables("GROCER")["products"]["product_id"].to_list() == ["bread", "eggs", "milk", "tea"]


def test_basket_sequences_without_dates_get_each_customers_last_basket_on_the_end_day(workbench_home, tmp_path):
    """Baskets numbered in each household's order and no dates at all: `basket_sequence` puts a
    household's consecutive baskets `days_apart` apart and its last one on `end`, every line of a
    basket at its basket's time; a mapping without `days_apart` fails naming it."""
    (tmp_path / "baskets.jsonl").write_text(
        '{"household": "h1", "n": 3, "items": ["milk", "bread"]}\n'
        '{"household": "h1", "n": 9, "items": ["milk"]}\n'
        '{"household": "h2", "n": 1, "items": ["eggs", "tea"]}\n'
        '{"household": "h1", "n": 4, "items": ["tea"]}\n')
    time = {"basket_sequence": "n", "per": "household", "days_apart": 7, "end": "2024-06-30"}
    mapping = {
        "name": "sequences", "kind": "files", "source": str(tmp_path / "baskets.jsonl"),
        "legal_entity": {"name": "Grocer", "currency": "EUR", "pos_recommendations_enabled": True},
        "entities": {
            "sales_lines": {"files": "{source}", "explode": "items", "columns": {
                "transaction_id": {"expr": "household || '-' || CAST(n AS VARCHAR)"}, "customer_id": "household",
                "product_id": "items", "quantity": {"constant": 1.0}, "unit_price": {"constant": 1.0},
                "transaction_time": time}},
            "products": {"from": "sales_lines", "group_by": "product_id", "columns": {
                "product_id": "product_id", "product_type": {"constant": "merchandise"}}},
        },
    }
    ex.extract_source(mapping, "SEQ", progress=False)
    lines = read_tables("SEQ")["sales_lines"]
    times = dict(zip(lines["transaction_id"], lines["transaction_time"].dt.strftime("%Y-%m-%d")))
    # h1's baskets 3, 4, 9 (its 1st, 2nd and 3rd): two weeks, one week and no time before the end
    assert times == {"h1-3": "2024-06-16", "h1-4": "2024-06-23", "h1-9": "2024-06-30", "h2-1": "2024-06-30"}
    assert lines.group_by("transaction_id").agg(pl.col("transaction_time").n_unique())["transaction_time"].max() == 1
    bad = tmp_path / "bad.yml"
    bad.write_text(yaml.safe_dump({**mapping, "entities": {"sales_lines": {**mapping["entities"]["sales_lines"], "columns": {
        **mapping["entities"]["sales_lines"]["columns"], "transaction_time": {"basket_sequence": "n", "per": "household"}}}}}))
    with pytest.raises(MappingError, match=r"transaction_time: basket_sequence needs `days_apart`.*got None"):
        load_mapping(bad)
    # numbers that a file gives as text keep their order as numbers: 10 comes after 9
    from workbench.datasets.mapping import EntityMapping, evaluate

    text = pl.DataFrame({"household": ["h1"] * 3, "n": ["9", "10", "100"]})
    timed = evaluate(text, EntityMapping(name="sales_lines", columns={"transaction_time": time}), "test")
    assert timed["transaction_time"].dt.strftime("%Y-%m-%d").to_list() == ["2024-06-16", "2024-06-23", "2024-06-30"]


def test_the_documented_day_number_recipe_reads_days_and_hhmm():
    """docs/sources.md's mapping for files that number their days (DAY, TRANS_TIME as HHMM) gives
    the times it says: day 1 on the chosen date, the time of day from HHMM."""
    import re

    from workbench.datasets.mapping import EntityMapping, evaluate

    docs = (paths.code_root() / "docs" / "sources.md").read_text()
    spec = yaml.safe_load(re.search(r"`transaction_time: (\{polars: .*TRANS_TIME.*\})`", docs).group(1))
    frame = pl.DataFrame({"DAY": [1, 711], "TRANS_TIME": [1631, 5]})
    timed = evaluate(frame, EntityMapping(name="sales_lines", columns={"transaction_time": spec}), "docs")
    assert timed["transaction_time"].to_list() == [datetime(2020, 1, 1, 16, 31), datetime(2021, 12, 11, 0, 5)]


def test_local_times_casts_and_lookups(workbench_home, tmp_path):
    from workbench.datasets.mapping import EntityMapping, evaluate

    frame = pl.DataFrame({"t": ["2025-07-01 10:00", "2025-01-15 10:00"], "flag": ["yes", "0"], "code": ["post", "x1"],
                          "n": ["3", "4"]})
    entity = EntityMapping(name="sales_lines", columns={
        "transaction_time": {"column": "t", "format": "%Y-%m-%d %H:%M", "timezone": "Europe/Paris"},
        "_flag": {"column": "flag", "cast": "bool"},
        "line_number": {"column": "n", "cast": "int"},
        "transaction_type": {"lookup": {"of": "code", "upper": True, "values": {"POST": "fee"}, "default": "sale"}},
    })
    out = evaluate(frame, entity, "test")
    assert out["transaction_time"].dt.strftime("%H:%M").to_list() == ["08:00", "09:00"]  # CEST, CET -> UTC
    assert out["_flag"].to_list() == [True, False] and out["line_number"].to_list() == [3, 4]
    assert out["transaction_type"].to_list() == ["fee", "sale"]
    with pytest.raises(ex.ExtractionError, match=r"column sales_lines\.line_number: 1 value\(s\) of column 'n' do not read as int \(row 2: 'four'\)"):
        evaluate(frame.with_columns(n=pl.Series(["3", "four"])), entity, "test")


@pytest.mark.e2e
def test_a_run_that_keeps_no_sales_line_says_which_rules_took_them(tmp_path):
    """A mapping that never says a product is merchandise (product_type left out): cleansing rejects the
    whole catalog, then every line; the run's one error line names both rules, as a scheduled run's log
    is all anyone reads."""
    import os
    import subprocess
    import sys

    (tmp_path / "lines.csv").write_text("basket,sku,sold,units,price\nB1,A,01/03/2025 10:00,1,2.0\nB1,B,01/03/2025 10:00,1,3.0\n"
                                        "B2,A,02/03/2025 11:00,2,2.0\n")
    mapping = (paths.code_root() / "tests" / "sources" / "anonymous_baskets.yml").read_text()
    mapping = mapping.replace("      product_type: {constant: merchandise}\n", "").replace("sku_name, ", "")
    mapping = mapping.replace("      description: sku_name\n", "").replace("      name: {agg: mode, of: description}\n", "")
    (tmp_path / "mapping.yml").write_text(mapping)
    (tmp_path / "run.yml").write_text(f"stages: [extract, cleanse]\nparameters:\n  legal_entity: NOTYPE\n"
                                      f"  source_mapping: {tmp_path / 'mapping.yml'}\n  source: {tmp_path / 'lines.csv'}\n")
    env = {**os.environ, "WORKBENCH_HOME": str(tmp_path / "home")}
    env.pop("MLFLOW_TRACKING_URI", None)
    done = subprocess.run([str(Path(sys.executable).parent / "workbench"), "run", "-c", str(tmp_path / "run.yml"), "--no-progress"],
                          env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode != 0
    error = next(line for line in (done.stdout + done.stderr).splitlines() if "cleansing kept no sales line" in line)
    assert "sales_lines: 3 in, 0 kept (interactions); non_merchandise 3;" in error, error
    assert "products: 2 in, 0 kept (catalog); non_merchandise 2;" in error, error
