"""The demo retailer: deterministic, documented, and carrying the structure and dirt it promises."""

from __future__ import annotations

import hashlib
import re
import sqlite3

import numpy as np
import polars as pl
import pytest

from conftest import DEMO_SCALE, DEMO_SEED, REPO_ROOT
from workbench.datasets.demo import CATEGORIES, DIRT, generate_demo_retailer, make_catalog
from workbench.datasets.schema import DDL


def _query(db, sql: str) -> pl.DataFrame:
    con = sqlite3.connect(db)
    try:
        cur = con.execute(sql)
        cols = [d[0] for d in cur.description]
        return pl.DataFrame(cur.fetchall(), schema=cols, orient="row", infer_schema_length=None)
    finally:
        con.close()


def _table_hashes(db) -> dict[str, str]:
    con = sqlite3.connect(db)
    try:
        return {t: hashlib.sha256(repr(con.execute(f"SELECT * FROM {t} ORDER BY rowid").fetchall()).encode()).hexdigest()
                for t in DDL}
    finally:
        con.close()


@pytest.fixture(scope="module")
def completed_sale_lines(demo_db) -> pl.DataFrame:
    """Sale lines of completed transactions, with customer, time and category."""
    return _query(demo_db, """
        SELECT l.transaction_id, l.product_id, t.customer_id, t.transaction_time, t.store_id, c.name AS category
        FROM sales_lines l JOIN sales_transactions t ON t.id = l.transaction_id
        LEFT JOIN products p ON p.id = l.product_id LEFT JOIN product_categories c ON c.id = p.category_id
        WHERE l.line_type = 'sale' AND t.status = 'completed' AND p.product_type = 'merchandise'
    """).unique(["transaction_id", "product_id"])


def test_same_seed_same_database_other_seed_differs(tmp_path):
    kw = dict(scale=0.05, days=60, progress=False)
    a = generate_demo_retailer(tmp_path / "a.sqlite", seed=3, **kw)
    b = generate_demo_retailer(tmp_path / "b.sqlite", seed=3, **kw)
    c = generate_demo_retailer(tmp_path / "c.sqlite", seed=4, **kw)
    assert _table_hashes(tmp_path / "a.sqlite") == _table_hashes(tmp_path / "b.sqlite")
    assert _table_hashes(tmp_path / "a.sqlite")["sales_lines"] != _table_hashes(tmp_path / "c.sqlite")["sales_lines"]
    assert {k: v for k, v in a.items() if k not in ("seconds", "path")} == {k: v for k, v in b.items() if k not in ("seconds", "path")}
    assert c["sales_lines"] > 0


def test_regenerating_replaces_the_file(tmp_path):
    path = tmp_path / "demo.sqlite"
    generate_demo_retailer(path, scale=0.05, days=30, progress=False)
    first = _table_hashes(path)
    generate_demo_retailer(path, scale=0.05, days=30, progress=False)
    assert _table_hashes(path) == first
    assert not (tmp_path / "demo.sqlite.tmp").exists()


def test_bad_arguments_are_refused(tmp_path):
    with pytest.raises(ValueError, match="scale"):
        generate_demo_retailer(tmp_path / "x.sqlite", scale=0, progress=False)
    with pytest.raises(ValueError, match="not a date"):
        generate_demo_retailer(tmp_path / "x.sqlite", start="first of May", progress=False)


def test_sizes_follow_scale(demo_db):
    counts = _query(demo_db, "SELECT (SELECT COUNT(*) FROM customers) c, (SELECT COUNT(*) FROM sales_transactions) t, "
                             "(SELECT COUNT(*) FROM sales_lines) l, (SELECT COUNT(*) FROM products) p").row(0)
    customers, transactions, lines, products = counts
    assert customers == round(1500 * DEMO_SCALE)
    assert 20_000 * DEMO_SCALE <= transactions <= 32_000 * DEMO_SCALE
    assert 3.0 <= lines / transactions <= 4.5
    assert products == 600  # the catalog does not scale


def test_legal_entities_and_stores(demo_db):
    entities = _query(demo_db, "SELECT id, currency, pos_recommendations_enabled FROM legal_entities ORDER BY id")
    assert entities.rows() == [("FRRT", "EUR", 0), ("USRT", "USD", 1)]
    stores = _query(demo_db, "SELECT legal_entity_id, channel, COUNT(*) n, COUNT(city) with_city FROM stores GROUP BY 1, 2")
    for le in ("USRT", "FRRT"):
        online = stores.filter((pl.col("legal_entity_id") == le) & (pl.col("channel") == "online"))
        physical = stores.filter((pl.col("legal_entity_id") == le) & (pl.col("channel") == "store"))
        assert online["n"].item() == 1 and physical["n"].item() >= 3 and physical["with_city"].item() == physical["n"].item()
    per_entity = dict(_query(demo_db, "SELECT legal_entity_id, COUNT(*) FROM sales_transactions GROUP BY 1").rows())
    assert per_entity["FRRT"] < per_entity["USRT"] / 2  # FRRT is the smaller business


def test_catalog_has_merchandise_and_non_merchandise(demo_db):
    types = dict(_query(demo_db, "SELECT product_type, COUNT(*) FROM products GROUP BY 1").rows())
    assert types["merchandise"] > 550
    assert {"gift_card", "service", "fee"} <= set(types)
    names = _query(demo_db, "SELECT name FROM products")["name"]
    assert names.n_unique() == len(names)


def test_about_forty_percent_of_transactions_are_anonymous(demo_db):
    share = _query(demo_db, "SELECT AVG(customer_id IS NULL) s FROM sales_transactions WHERE id IN "
                            "(SELECT transaction_id FROM sales_lines WHERE line_type = 'sale')")["s"].item()
    assert 0.33 <= share <= 0.47


def test_complement_pairs_are_bought_together_far_above_chance(completed_sale_lines):
    lines = completed_sale_lines.select("transaction_id", "product_id")
    n_baskets = lines["transaction_id"].n_unique()
    counts = dict(lines.group_by("product_id").len().rows())
    pairs = lines.join(lines, on="transaction_id").filter(pl.col("product_id") < pl.col("product_id_right"))
    together = {(a, b): n for a, b, n in pairs.group_by("product_id", "product_id_right").len().rows()}

    def lift(a, b):
        expected = counts.get(a, 0) * counts.get(b, 0) / n_baskets
        return together.get((min(a, b), max(a, b)), 0) / expected if expected else np.nan

    designed = [lift(a, b) for a, b in make_catalog(DEMO_SEED).complement_pairs()]
    rng = np.random.default_rng(0)
    products = sorted(counts)
    random = [lift(*rng.choice(products, 2, replace=False)) for _ in range(1000)]
    assert len(designed) > 100
    assert np.nanmedian(designed) > 10
    assert np.nanmean(random) < 3


def test_customers_rebuy_staples(completed_sale_lines):
    staple_names = {c.name for c in CATEGORIES if c.staple}
    known = completed_sale_lines.filter(pl.col("customer_id").is_not_null())
    per_pair = known.group_by("customer_id", "product_id", "category").agg(n=pl.col("transaction_id").n_unique())
    # Share of purchases that re-buy something the customer bought before.
    repeat = per_pair.group_by(pl.col("category").is_in(staple_names).alias("staple")).agg(
        rate=1 - pl.len() / pl.col("n").sum())
    rates = dict(repeat.rows())
    assert rates[True] > 0.5  # staples come back
    assert rates[True] > 1.8 * rates[False]
    assert (per_pair["n"] >= 2).mean() > 0.12


def test_popularity_is_skewed(completed_sale_lines):
    counts = completed_sale_lines.group_by("product_id").len().sort("len", descending=True)["len"].to_numpy()
    assert counts[: len(counts) // 10].sum() / counts.sum() > 0.35


def test_seasonality(demo_db, completed_sale_lines):
    by_month = completed_sale_lines.with_columns(month=pl.col("transaction_time").str.slice(5, 2).cast(pl.Int32))
    share = by_month.group_by("month").agg(
        outer=(pl.col("category") == "Outerwear").mean(), swim=(pl.col("category") == "Swim & Beach").mean())
    share = {m: (o, s) for m, o, s in share.rows()}
    assert share[12][0] > 3 * share[7][0]  # jackets in winter
    assert share[7][1] > 3 * share[12][1]  # swimsuits in summer
    tx = _query(demo_db, "SELECT transaction_time FROM sales_transactions").with_columns(
        t=pl.col("transaction_time").str.to_datetime())
    monthly = tx.group_by(pl.col("t").dt.month()).len()
    december = monthly.filter(pl.col("t") == 12)["len"].item()
    assert december > 1.3 * monthly["len"].mean()
    weekday = dict(tx.group_by(pl.col("t").dt.weekday()).len().rows())
    assert weekday[6] > 1.3 * weekday[2]  # Saturday beats Tuesday


def test_wish_lists_follow_tastes(demo_db, completed_sale_lines):
    wished = _query(demo_db, """
        SELECT w.customer_id, c.name AS category FROM wish_list_items i JOIN wish_lists w ON w.id = i.wish_list_id
        JOIN products p ON p.id = i.product_id JOIN product_categories c ON c.id = p.category_id
    """)
    top = (completed_sale_lines.filter(pl.col("customer_id").is_not_null())
           .group_by("customer_id", "category").len().sort("len", descending=True)
           .group_by("customer_id", maintain_order=True).head(3).select("customer_id", "category"))
    top_set = set(top.rows())
    hit = np.mean([(c, k) in top_set for c, k in wished.rows()])
    shuffled = wished["customer_id"].shuffle(seed=1)
    baseline = np.mean([(c, k) in top_set for c, k in zip(shuffled, wished["category"])])
    assert len(wished) > 200
    assert hit > 1.8 * baseline


def test_dirt_is_there_in_the_promised_proportions(demo_db):
    tx = _query(demo_db, "SELECT status, COUNT(*) n FROM sales_transactions GROUP BY 1")
    voided = dict(tx.rows()).get("voided", 0) / tx["n"].sum()
    assert 0.5 * DIRT["voided_transactions"] < voided < 2 * DIRT["voided_transactions"]

    lines = _query(demo_db, """
        SELECT l.*, p.product_type, t.store_id, s.channel FROM sales_lines l
        JOIN sales_transactions t ON t.id = l.transaction_id JOIN stores s ON s.id = t.store_id
        LEFT JOIN products p ON p.id = l.product_id
    """)
    n = lines.height
    kinds = dict(lines.group_by("line_type").len().rows())
    assert set(kinds) == {"sale", "return", "void"}
    assert kinds["void"] > 0 and 0.01 < kinds["return"] / n < 0.06

    dups = lines.select(list(DDL_COLUMNS)).group_by(DDL_COLUMNS).len().filter(pl.col("len") > 1)
    assert 0.3 * DIRT["duplicate_lines"] < dups.height / n < 3 * DIRT["duplicate_lines"]

    unknown = lines.filter(pl.col("product_id").is_not_null() & pl.col("product_type").is_null())
    assert unknown.height > 0 and unknown["product_id"].str.starts_with("P9").all()
    assert 0 < lines["product_id"].null_count() < 0.01 * n
    assert (lines["unit_price"] == 0).sum() > 0 and (lines["unit_price"] < 0).sum() > 0

    shipping = lines.filter(pl.col("product_id").str.starts_with("SHIP-"))
    assert shipping.height > 0 and (shipping["channel"] == "online").all()
    assert lines.filter(pl.col("product_type") == "gift_card").height > 0
    assert lines.filter(pl.col("product_type") == "service").height > 0


DDL_COLUMNS = ["transaction_id", "line_number", "product_id", "description", "quantity", "unit_price", "line_type"]


def test_returns_give_back_an_earlier_sale(demo_db):
    returns = _query(demo_db, """
        SELECT r.product_id AS returned, r.quantity AS rq, o.product_id AS sold, o.quantity AS sq, o.line_number AS sold_line,
               rt.transaction_time AS returned_at, ot.transaction_time AS sold_at,
               rt.customer_id AS rc, ot.customer_id AS sc
        FROM sales_lines r
        JOIN sales_transactions rt ON rt.id = r.transaction_id
        LEFT JOIN sales_lines o ON o.transaction_id = r.return_of_transaction_id AND o.line_number = r.return_of_line_number
                                AND o.line_type = 'sale'
        LEFT JOIN sales_transactions ot ON ot.id = o.transaction_id
        WHERE r.line_type = 'return'
    """).unique()
    assert returns.height > 50
    assert returns["sold_line"].null_count() == 0  # every return points at a real sale line
    assert (returns["rq"] < 0).all() and (-returns["rq"] <= returns["sq"]).all()
    # Same product unless the sale line itself had its id garbled by the dirt.
    assert (returns["returned"] == returns["sold"]).fill_null(False).mean() > 0.98
    assert (returns["returned_at"] > returns["sold_at"]).all()
    assert returns.filter(pl.col("rc").ne_missing(pl.col("sc"))).height == 0


def test_every_table_and_column_is_documented(demo_db):
    doc = (REPO_ROOT / "docs" / "schema.md").read_text()
    con = sqlite3.connect(demo_db)
    try:
        for table in DDL:
            assert re.search(rf"`{table}`", doc), f"docs/schema.md does not describe table {table}"
            for _, column, *_ in con.execute(f"PRAGMA table_info({table})"):
                assert f"`{column}`" in doc, f"docs/schema.md does not describe {table}.{column}"
    finally:
        con.close()


# -- the default database never changes; a large retailer on demand ------------------------------------
# Table hashes (`_table_hashes`, first 16 hex digits) of the databases generated before `products` and
# chunked writes existed (commit b1fa35e): the session fixture's and `make demo`'s default.
UNCHANGED = {
    (DEMO_SEED, DEMO_SCALE): {
        "legal_entities": "e260c162fcc16bee", "stores": "6a8b679220271c93", "product_categories": "9c0406409a80aa59",
        "products": "56bb3918606249bd", "customers": "5283ec90bc6805dd", "sales_transactions": "b0d2850529aac853",
        "sales_lines": "592bb89d64f35997", "wish_lists": "6f4370fb842bc3fd", "wish_list_items": "d1c3691481d8adf1",
    },
    (42, 1.0): {
        "legal_entities": "e260c162fcc16bee", "stores": "6a8b679220271c93", "product_categories": "9c0406409a80aa59",
        "products": "78f833e208a96c92", "customers": "d2de1e1f167b151a", "sales_transactions": "f97714a1b210b600",
        "sales_lines": "a303222a971b5b33", "wish_lists": "73aa17b9f007e8db", "wish_list_items": "c2ff1540890932ac",
    },
}


def _short_hashes(db) -> dict[str, str]:
    return {table: digest[:16] for table, digest in _table_hashes(db).items()}


def test_default_databases_are_unchanged_and_chunked_writes_change_nothing(demo_db, tmp_path, monkeypatch):
    import workbench.datasets.demo.database as database

    assert _short_hashes(demo_db) == UNCHANGED[(DEMO_SEED, DEMO_SCALE)]
    generate_demo_retailer(tmp_path / "make_demo.sqlite", progress=False)  # `make demo`'s defaults
    assert _short_hashes(tmp_path / "make_demo.sqlite") == UNCHANGED[(42, 1.0)]
    monkeypatch.setattr(database, "WRITE_CHUNK", 997)  # many small chunks: the same rows in the same order
    generate_demo_retailer(tmp_path / "chunked.sqlite", seed=DEMO_SEED, scale=DEMO_SCALE, progress=False)
    assert _short_hashes(tmp_path / "chunked.sqlite") == UNCHANGED[(DEMO_SEED, DEMO_SCALE)]


@pytest.fixture(scope="module")
def large_catalog_db(tmp_path_factory):
    path = tmp_path_factory.mktemp("large") / "large.sqlite"
    generate_demo_retailer(path, seed=5, scale=0.3, products=6000, days=90, progress=False)
    return path


def test_products_sets_the_catalog_size_with_every_category_and_brand(large_catalog_db):
    products = _query(large_catalog_db, "SELECT * FROM products")
    assert products.height == 6000
    assert products["id"].n_unique() == products["name"].n_unique() == 6000
    per_category = dict(products.group_by("category_id").len().iter_rows())
    # every category in its share of the default catalog (non-merchandise unchanged)
    for category in CATEGORIES:
        assert per_category[category.id] == pytest.approx(category.n_products * 6000 / 600, rel=0.03)
    assert sum(per_category[c.id] for c in CATEGORIES) == 6000 - 9
    assert products.filter(pl.col("product_type") == "merchandise")["brand"].null_count() == 0
    assert products["brand"].n_unique() > 20


def test_large_catalog_popularity_has_a_long_tail(large_catalog_db):
    sold = _query(large_catalog_db, """
        SELECT l.product_id, COUNT(*) AS n FROM sales_lines l JOIN products p ON p.id = l.product_id
        WHERE l.line_type = 'sale' AND p.product_type = 'merchandise' GROUP BY l.product_id
    """).sort("n", descending=True)
    share_of_top_tenth = sold["n"].head(600).sum() / sold["n"].sum()
    assert share_of_top_tenth > 0.4  # the hits
    assert sold.height > 2000 and (sold["n"] <= 2).sum() > 500  # and a long tail sold once or twice


def test_large_catalog_is_deterministic(large_catalog_db, tmp_path):
    generate_demo_retailer(tmp_path / "again.sqlite", seed=5, scale=0.3, products=6000, days=90, progress=False)
    assert _table_hashes(tmp_path / "again.sqlite") == _table_hashes(large_catalog_db)


def test_catalog_ids_never_collide_with_the_dirts_unknown_ids():
    catalog = make_catalog(1, products=95_000)
    assert len(catalog.product_id) == 95_000 and len(set(catalog.product_id)) == 95_000
    merchandise = catalog.product_id[: catalog.n_merchandise]
    assert all(len(p) == 8 for p in merchandise)  # "P" + 7 digits; unknown products are "P9" + 4 digits


def test_products_too_few_for_the_categories_are_refused(tmp_path):
    with pytest.raises(ValueError, match="products must be at least"):
        generate_demo_retailer(tmp_path / "x.sqlite", products=20, progress=False)


def test_cli_demo_data_takes_products(tmp_path):
    from workbench.cli import main

    path = tmp_path / "cli.sqlite"
    assert main(["demo-data", "--products", "1200", "--scale", "0.05", "--path", str(path)]) == 0
    assert _query(path, "SELECT COUNT(*) AS n FROM products")["n"][0] == 1200
