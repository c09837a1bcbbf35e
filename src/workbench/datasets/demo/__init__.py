"""The embedded demo retailer: a deterministic operational database whose shoppers have habits.

A two-legal-entity retailer (a US business with POS recommendations switched on, a smaller
French one with them off), its stores, catalog, loyalty customers, a year of sales and wish
lists. The shopping is simulated so that recommenders have something real to learn:

* every customer has category tastes (Dirichlet) and a shopping rhythm (gamma-distributed);
* products bought together: phone + case + charger, coffee maker + coffee, ... (fixed
  complement pairs, see `make_catalog`);
* staples (coffee, snacks, personal care, cleaning, pet food) are re-bought at a
  customer-specific cadence;
* popularity is Zipf-like inside every category;
* weekly and yearly seasonality (weekend peak, Black Friday, Christmas ramp, seasonal
  categories like outerwear, swimwear, garden and holiday decorations);
* wish lists follow tastes and partly foreshadow later purchases.

It also carries the dirt of real systems, in known proportions (see `DIRT`): voided
transactions and voided lines, returns referencing earlier sales, non-merchandise lines
(gift cards, shipping, services, bag fees), exact duplicate lines, unknown and null product
ids, zero and negative prices, customers without a loyalty tier.

Everything is vectorised with numpy so `scale=10` (15,000 customers, ~1M lines) stays cheap, and
`products` grows the catalog (every category in proportion, Zipf popularity inside each) for a large
retailer: 100,000 products and `scale=200` (~20M lines) are written in chunks. Each stage draws from
its own seeded generator, so the catalog does not depend on `scale`; `products=None` is the 600-product
catalog of `make demo`, the same database as before `products` existed.
"""
from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from workbench.datasets.demo.catalog import CATEGORIES, Catalog, category_sizes, make_catalog
from workbench.datasets.demo.database import write_database
from workbench.datasets.demo.dirt import DIRT, add_dirt_and_returns
from workbench.datasets.demo.retailer import LEGAL_ENTITIES, STORES
from workbench.datasets.demo.shoppers import make_customers, simulate
from workbench.datasets.demo.wish_lists import wish_lists

__all__ = ["CATEGORIES", "DIRT", "LEGAL_ENTITIES", "STORES", "Catalog", "category_sizes", "generate_demo_retailer", "make_catalog"]


def generate_demo_retailer(
    path: str | os.PathLike,
    *,
    seed: int = 42,
    scale: float = 1.0,
    products: int | None = None,
    start: str = "2025-01-01",
    days: int = 365,
    progress: bool = True,
) -> dict:
    """Write the demo retailer's operational SQLite database to `path` (replacing it).

    `scale` multiplies customers and transactions (1.0: ~1,500 customers, ~28k transactions, ~100k
    lines); `products` sets the catalog's size (None: 600 products). A large retailer: `products=100_000,
    scale=200` (~300k customers, ~20M lines). Same seed, scale, products, start and days -> the same
    database, byte for byte in every table. Returns the row count of every table.
    """
    t0 = time.perf_counter()
    if scale <= 0:
        raise ValueError(f"scale must be positive, got {scale!r}")
    category_sizes(products)  # a catalog too small for the categories fails here, before any work
    if days < 1:
        raise ValueError(f"days must be at least 1, got {days!r}")
    try:
        start_day = np.datetime64(str(start), "D")
    except ValueError as exc:
        raise ValueError(f"start {start!r} is not a date (expected YYYY-MM-DD)") from exc
    path = Path(path)
    stages = ["catalog", "customers", "shopping trips", "staples and walk-ins", "basket contents",
              "complements, services and shipping", "returns and dirt", "wish lists", "writing database"]
    bar = tqdm(total=len(stages), desc="demo retailer", disable=not progress, unit="step")

    def step(name: str) -> None:
        bar.set_postfix_str(name)
        bar.update(1)

    catalog = make_catalog(seed, products)
    step("catalog")
    customers = make_customers(seed, scale, days, catalog)
    step("customers")
    trips, lines = simulate(seed, scale, start_day, days, catalog, customers, step)
    trips, lines = add_dirt_and_returns(seed, days, catalog, trips, lines, step)
    wish = wish_lists(seed, days, catalog, customers, trips, lines)
    step("wish lists")
    counts = write_database(path, seed, start_day, catalog, customers, trips, lines, wish)
    step("writing database")
    bar.close()
    counts["seconds"] = round(time.perf_counter() - t0, 2)
    counts["path"] = str(path)
    return counts
