"""Writing the demo retailer into its operational SQLite database, in the workbench's own schema:
receipt numbers per legal entity in time order, lines in till-journal order, a chunk at a time."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

import numpy as np

from workbench.datasets.demo.catalog import CATEGORIES, NON_MERCHANDISE_CATEGORIES, Catalog
from workbench.datasets.demo.dirt import DIRT
from workbench.datasets.demo.retailer import FIRST_NAMES, LAST_NAMES, LEGAL_ENTITIES, LOYALTY_TIERS, STORES
from workbench.datasets.demo.sampling import first_by_group, group_rank, rng_for
from workbench.datasets.demo.shoppers import Customers
from workbench.datasets.schema import DDL, INDEXES

# rows written to SQLite per executemany: bounds the Python tuples alive at once
WRITE_CHUNK = 500_000


def _fmt_times(start: np.datetime64, seconds: np.ndarray) -> list[str]:
    stamps = (start.astype("datetime64[s]") + np.asarray(seconds, dtype=np.int64).astype("timedelta64[s]")).astype(str)
    return np.char.replace(stamps, "T", " ").tolist()


def _fmt_dates(start: np.datetime64, days: np.ndarray) -> list[str]:
    return (start + np.asarray(days, dtype=np.int64).astype("timedelta64[D]")).astype(str).tolist()


def write_database(path: Path, seed, start_day, catalog: Catalog, customers: Customers, trips, lines, wish) -> dict:
    rng = rng_for(seed, 6)
    # Transaction ids are receipt numbers per legal entity, in time order.
    keep = trips["has_lines"]
    idx = np.flatnonzero(keep)
    idx = idx[np.lexsort((idx, trips["sec"][idx], trips["entity"][idx]))]
    seq = group_rank(trips["entity"][idx]) + 1
    le_ids = [le[0] for le in LEGAL_ENTITIES]
    trip_id = np.full(len(trips["cust"]), None, dtype=object)
    trip_id[idx] = [f"{le_ids[e]}-{s:07d}" for e, s in zip(trips["entity"][idx].tolist(), seq.tolist())]
    cust_ids = np.array([f"C{i + 1:06d}" for i in range(customers.n)], dtype=object)
    store_ids = np.array([s[0] for s in STORES], dtype=object)

    first = rng.choice(FIRST_NAMES, customers.n)
    last = rng.choice(LAST_NAMES, customers.n)
    # Tier follows spending habits, with noise; a few members never got a tier assigned.
    score = np.log(customers.rate + 0.1) + rng.normal(0, 0.5, customers.n)
    tier_idx = np.searchsorted(np.quantile(score, [0.5, 0.8, 0.95]), score)
    tier = np.array(LOYALTY_TIERS, dtype=object)[tier_idx]
    tier[rng.random(customers.n) < DIRT["no_loyalty_tier"]] = None

    tmp = path.with_name(path.name + ".tmp")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp.unlink(missing_ok=True)
    con = sqlite3.connect(tmp)
    try:
        con.execute("PRAGMA journal_mode=OFF")
        con.execute("PRAGMA synchronous=OFF")
        for ddl in DDL.values():
            con.execute(ddl)
        ins = lambda table, rows: con.executemany(  # noqa: E731
            f"INSERT INTO {table} VALUES ({','.join('?' * len(rows[0]))})", rows) if rows else None

        ins("legal_entities", [le[:5] for le in LEGAL_ENTITIES])
        ins("stores", [s[:7] for s in STORES])
        ins("product_categories",
            [(c.id, c.name, c.department, c.season) for c in CATEGORIES] + [tuple(c) for c in NON_MERCHANDISE_CATEGORIES])
        inactive = rng.random(len(catalog.price)) < 0.03
        inactive[catalog.n_merchandise:] = False
        ins("products", list(zip(
            catalog.product_id.tolist(), catalog.name.tolist(),
            [catalog.category_ids[c] for c in catalog.category.tolist()], catalog.brand.tolist(),
            catalog.price.tolist(), catalog.product_type.tolist(), (~inactive).astype(int).tolist())))
        ins("customers", list(zip(
            cust_ids.tolist(),
            [le_ids[e] for e in customers.entity.tolist()],
            [f"{f} {l}" for f, l in zip(first.tolist(), last.tolist())],
            [f"{f.lower()}.{l.lower()}{i + 1}@example.com" for i, (f, l) in enumerate(zip(first.tolist(), last.tolist()))],
            tier.tolist(),
            store_ids[customers.home_store].tolist(),
            _fmt_dates(start_day, customers.signup_day))))
        # Transactions and lines a chunk at a time: 20M lines never become one list of tuples.
        for chunk in np.array_split(idx, max(1, -(-len(idx) // WRITE_CHUNK))):
            cust = trips["cust"][chunk]
            ins("sales_transactions", list(zip(
                trip_id[chunk].tolist(),
                [le_ids[e] for e in trips["entity"][chunk].tolist()],
                store_ids[trips["store"][chunk]].tolist(),
                np.where(cust >= 0, cust_ids[np.maximum(cust, 0)], None).tolist(),
                _fmt_times(start_day, trips["sec"][chunk]),
                np.where(trips["voided"][chunk], "voided", "completed").tolist(),
                np.round(trips["total"][chunk], 2).tolist())))
        # Lines in receipt order so that the file reads like the till journal.
        rank = np.empty(len(trips["cust"]), dtype=np.int64)
        rank[idx] = np.arange(len(idx))
        order = np.lexsort((lines["line_no"], rank[lines["trip"]]))
        for lo in np.array_split(order, max(1, -(-len(order) // WRITE_CHUNK))):
            ret = lines["ret_trip"][lo]
            ins("sales_lines", list(zip(
                trip_id[lines["trip"][lo]].tolist(),
                lines["line_no"][lo].tolist(),
                lines["product_id"][lo].tolist(),
                lines["description"][lo].tolist(),
                lines["qty"][lo].astype(float).tolist(),
                np.round(lines["price"][lo], 2).tolist(),
                lines["type"][lo].tolist(),
                np.where(ret >= 0, trip_id[np.maximum(ret, 0)], None).tolist(),
                np.where(ret >= 0, lines["ret_line"][lo], None).tolist())))
        w_cust, w_prod, w_added = wish
        owners = np.unique(w_cust)
        list_ids = {c: f"W{i + 1:06d}" for i, c in enumerate(owners.tolist())}
        created = first_by_group(w_added.astype(float), np.searchsorted(owners, w_cust), len(owners))
        names = np.array(["My wish list", "Birthday ideas", "Holiday gifts", "For the new home"], dtype=object)
        ins("wish_lists", list(zip(
            list(list_ids.values()), cust_ids[owners].tolist(),
            names[rng.integers(0, len(names), len(owners))].tolist(),
            _fmt_times(start_day, created.astype(np.int64)))))
        ins("wish_list_items", list(zip(
            [list_ids[c] for c in w_cust.tolist()], w_prod.tolist(), _fmt_times(start_day, w_added))))
        for ddl in INDEXES:
            con.execute(ddl)
        con.commit()
        counts = {t: con.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0] for t in DDL}
    finally:
        con.close()
    os.replace(tmp, path)
    return counts
