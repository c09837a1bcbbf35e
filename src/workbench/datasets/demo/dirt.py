"""The dirt of real systems, in known proportions (`DIRT`): returns referencing earlier sales, voided
transactions and lines, unknown and missing product ids, odd prices, exact duplicate lines."""

from __future__ import annotations

import numpy as np

from workbench.datasets.demo.catalog import CATEGORIES, Catalog
from workbench.datasets.demo.sampling import DAY, group_rank, rng_for

# Share of dirt, per line or transaction, so tests and the cleansing report can check them.
DIRT = {
    "voided_transactions": 0.015,  # of sales transactions: header status 'voided'
    "void_lines": 0.02,  # of sales transactions: one extra line scanned and voided at the till
    "duplicate_lines": 0.004,  # of sales lines: posted twice, identical in every column
    "unknown_product": 0.003,  # of merchandise lines: product id missing from the catalog
    "null_product": 0.002,  # of lines: open-department sale keyed by price, no product id
    "zero_price": 0.002,
    "negative_price": 0.0005,
    "no_loyalty_tier": 0.03,  # of customers
    "wish_list_unknown_product": 0.005,
}


RETURN_RATE = {"Apparel": 0.08, "Electronics": 0.03, "Home": 0.015, "Leisure": 0.015, "Essentials": 0.003}


def add_dirt_and_returns(seed, days, catalog: Catalog, trips: dict, lines: dict, step):
    """Voids, returns, duplicates and bad product data, in the proportions of `DIRT`."""
    rng = rng_for(seed, 4)
    n_trip = len(trips["cust"])
    status_voided = rng.random(n_trip) < DIRT["voided_transactions"]
    n_lines = len(lines["trip"])
    line_type = np.full(n_lines, "sale", dtype=object)
    return_of_trip = np.full(n_lines, -1)
    return_of_line = np.full(n_lines, -1)

    # Returns: a later transaction of the same customer and store, negative quantities,
    # pointing at the sale line it gives back.
    dept = np.array([CATEGORIES[c].department if c < len(CATEGORIES) else "Non-merchandise" for c in catalog.category], dtype=object)
    rate = np.array([RETURN_RATE.get(d, 0.0) for d in dept])[lines["prod"]]
    back = np.flatnonzero((rng.random(n_lines) < rate) & ~status_voided[lines["trip"]])
    orig_trip = lines["trip"][back]
    ret_trips, ret_of = np.unique(orig_trip, return_inverse=True)
    delay = (1 + rng.exponential(8, len(ret_trips))).clip(max=45) * DAY
    ret_sec = trips["sec"][ret_trips] + delay.astype(np.int64)
    ret_sec = (ret_sec // DAY) * DAY + 10 * 3600 + rng.integers(0, 10 * 3600, len(ret_trips))
    in_window = ret_sec < days * DAY
    keep = in_window[ret_of]
    back, ret_of = back[keep], ret_of[keep]
    kept_trips = np.flatnonzero(in_window)
    renumber = np.full(len(ret_trips), -1)
    renumber[kept_trips] = np.arange(len(kept_trips))
    new_trip = n_trip + renumber[ret_of]
    partial = (lines["qty"][back] > 1) & (rng.random(len(back)) < 0.3)
    r_lines = {
        "trip": new_trip,
        "prod": lines["prod"][back],
        "qty": -np.where(partial, 1, lines["qty"][back]),
        "price": lines["price"][back],
        "line_no": group_rank(new_trip) + 1,
    }
    r_type = np.full(len(back), "return", dtype=object)
    src_trips = ret_trips[kept_trips]
    trips = {
        "cust": np.concatenate([trips["cust"], trips["cust"][src_trips]]),
        "entity": np.concatenate([trips["entity"], trips["entity"][src_trips]]),
        "store": np.concatenate([trips["store"], trips["store"][src_trips]]),
        "online": np.concatenate([trips["online"], trips["online"][src_trips]]),
        "sec": np.concatenate([trips["sec"], ret_sec[kept_trips]]),
        "has_lines": np.concatenate([trips["has_lines"], np.ones(len(src_trips), bool)]),
    }
    status_voided = np.concatenate([status_voided, np.zeros(len(src_trips), bool)])

    # A line scanned by mistake and voided at the till.
    sale_trip_ids = np.flatnonzero(trips["has_lines"][:n_trip])
    fumbled = sale_trip_ids[rng.random(len(sale_trip_ids)) < DIRT["void_lines"]]
    n_per_trip = np.bincount(lines["trip"], minlength=n_trip)
    first_line = np.searchsorted(lines["trip"], fumbled)
    pick = first_line + (rng.random(len(fumbled)) * n_per_trip[fumbled]).astype(np.int64)
    v_lines = {
        "trip": fumbled, "prod": lines["prod"][pick], "qty": lines["qty"][pick], "price": lines["price"][pick],
        "line_no": n_per_trip[fumbled] + 1,
    }

    all_lines = {k: np.concatenate([lines[k], r_lines[k], v_lines[k]]) for k in ("trip", "prod", "qty", "price", "line_no")}
    all_lines["type"] = np.concatenate([line_type, r_type, np.full(len(fumbled), "void", dtype=object)])
    all_lines["ret_trip"] = np.concatenate([return_of_trip, lines["trip"][back], np.full(len(fumbled), -1)])
    all_lines["ret_line"] = np.concatenate([return_of_line, lines["line_no"][back], np.full(len(fumbled), -1)])
    all_lines["description"] = catalog.name[all_lines["prod"]].copy()
    product_id = catalog.product_id[all_lines["prod"]].copy()
    price = all_lines["price"].astype(float).copy()

    # Bad product data on sale lines: ids the catalog does not know, missing ids, odd prices.
    is_sale = all_lines["type"] == "sale"
    merch = catalog.product_type[all_lines["prod"]] == "merchandise"
    u = rng.random(len(price))
    unknown = is_sale & merch & (u < DIRT["unknown_product"])
    product_id[unknown] = np.array([f"P9{x:04d}" for x in rng.integers(0, 10_000, unknown.sum())], dtype=object)
    missing = is_sale & ~unknown & (rng.random(len(price)) < DIRT["null_product"])
    product_id[missing] = None
    all_lines["description"][missing] = "MISC MERCHANDISE"
    u = rng.random(len(price))
    price[is_sale & (u < DIRT["zero_price"])] = 0.0
    neg = is_sale & (u >= DIRT["zero_price"]) & (u < DIRT["zero_price"] + DIRT["negative_price"])
    price[neg] = -price[neg]
    all_lines["product_id"] = product_id
    all_lines["price"] = price

    # Header totals come from the till, before any double posting.
    counted = all_lines["type"] != "void"
    total = np.bincount(all_lines["trip"], weights=np.where(counted, all_lines["qty"] * price, 0.0), minlength=len(trips["cust"]))

    # Exact duplicates: the same line posted twice by a batch job.
    dup = np.flatnonzero(is_sale & (rng.random(len(price)) < DIRT["duplicate_lines"]))
    order = np.lexsort((np.r_[np.zeros(len(price)), np.ones(len(dup))], np.r_[all_lines["line_no"], all_lines["line_no"][dup]],
                        np.r_[all_lines["trip"], all_lines["trip"][dup]]))
    all_lines = {k: np.concatenate([v, v[dup]])[order] for k, v in all_lines.items()}
    trips["voided"] = status_voided
    trips["total"] = total
    step("returns and dirt")
    return trips, all_lines
