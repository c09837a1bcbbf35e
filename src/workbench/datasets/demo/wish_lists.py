"""The demo's wish lists: aspirational picks by taste, and items the customer buys later, wished for
some days before."""

from __future__ import annotations

import numpy as np

from workbench.datasets.demo.catalog import CATEGORIES, Catalog, pick_products
from workbench.datasets.demo.dirt import DIRT
from workbench.datasets.demo.sampling import DAY, group_rank, rng_for, sample_from_rows
from workbench.datasets.demo.shoppers import Customers


def wish_lists(seed, days, catalog: Catalog, customers: Customers, trips: dict, lines: dict):
    """Wish lists: aspirational picks by taste, plus some items the customer buys later."""
    rng = rng_for(seed, 5)
    online_minded = customers.online_share > np.median(customers.online_share)
    has = rng.random(customers.n) < np.where(online_minded, 0.45, 0.2)
    owners = np.flatnonzero(has)
    n_items = 2 + rng.poisson(3, len(owners))
    w_cust = np.repeat(owners, n_items)
    n_cat = len(CATEGORIES)
    cat = sample_from_rows(rng, customers.taste[:, :n_cat], w_cust)
    prod = pick_products(rng, catalog, cat, weight=np.sqrt(catalog.price))  # wish lists lean to pricier items
    first_day = np.clip(customers.signup_day, 0, days - 1)
    added = (first_day[w_cust] + rng.random(len(w_cust)) * (days - first_day[w_cust])) * DAY

    # Foreshadowing: a later purchase, wished for some days before it happened.
    line_cust = trips["cust"][lines["trip"]]
    sale = (lines["type"] == "sale") & (line_cust >= 0) & has[np.maximum(line_cust, 0)]
    sale &= catalog.product_type[lines["prod"]] == "merchandise"
    cand = np.flatnonzero(sale)
    cand = cand[np.lexsort((rng.random(len(cand)), line_cust[cand]))]
    rank = group_rank(line_cust[cand])
    cand = cand[rank < rng.poisson(1.5, len(cand))]
    f_cust = line_cust[cand]
    f_sec = trips["sec"][lines["trip"][cand]] - (1 + rng.random(len(cand)) * 45) * DAY
    f_sec = np.maximum(f_sec, first_day[f_cust] * DAY)
    w_cust = np.concatenate([w_cust, f_cust])
    prod = np.concatenate([prod, lines["prod"][cand]])
    added = np.concatenate([added, f_sec]).astype(np.int64)
    _, keep = np.unique(w_cust * len(catalog.price) + prod, return_index=True)
    keep.sort()
    w_cust, prod, added = w_cust[keep], prod[keep], added[keep]
    product_id = catalog.product_id[prod].copy()
    unknown = rng.random(len(prod)) < DIRT["wish_list_unknown_product"]
    product_id[unknown] = np.array([f"P9{x:04d}" for x in rng.integers(0, 10_000, unknown.sum())], dtype=object)
    order = np.lexsort((added, w_cust))
    return w_cust[order], product_id[order], added[order]
