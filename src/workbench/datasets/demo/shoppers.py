"""The demo's shoppers and their trips: customers with category tastes and a shopping rhythm, the
calendar (week, season, Black Friday, Christmas), staples re-bought at a personal cadence, walk-ins,
basket contents, complements, services and shipping."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from workbench.datasets.demo.catalog import CATEGORIES, NON_MERCHANDISE, Catalog, pick_products
from workbench.datasets.demo.retailer import LEGAL_ENTITIES, STORES
from workbench.datasets.demo.sampling import DAY, first_by_group, group_rank, rng_for, sample_from_rows

ANONYMOUS_SHARE = 0.40  # walk-ins paying without a loyalty card
COMPLEMENT_PROBABILITY = 0.45  # chance each complement joins a basket holding its anchor


# Month-of-year demand multipliers for seasonal categories (January first).
SEASONS = {
    None: (1,) * 12,
    "winter": (2.2, 1.8, 1.0, 0.6, 0.35, 0.25, 0.25, 0.35, 0.7, 1.2, 1.9, 2.4),
    "summer": (0.2, 0.25, 0.5, 1.0, 1.9, 2.8, 3.0, 2.2, 0.8, 0.35, 0.2, 0.2),
    "spring": (0.3, 0.5, 1.5, 2.6, 2.8, 2.0, 1.3, 0.9, 0.6, 0.4, 0.3, 0.25),
    "holiday": (0.1, 0.05, 0.05, 0.05, 0.05, 0.05, 0.05, 0.1, 0.3, 1.0, 4.0, 6.0),
    "gifting": (0.7, 0.7, 0.7, 0.7, 0.8, 0.8, 0.8, 0.8, 0.9, 1.1, 1.9, 3.2),
}


def _calendar(start: np.datetime64, days: int) -> tuple[np.ndarray, np.ndarray]:
    """Daily traffic weights and month (0-11) of each day of the window."""
    dates = start + np.arange(days)
    month = dates.astype("datetime64[M]").astype(np.int64) % 12
    dom = (dates - dates.astype("datetime64[M]")).astype(np.int64) + 1
    weekday = (dates.astype(np.int64) + 3) % 7  # 1970-01-01 was a Thursday
    w = np.array([0.85, 0.85, 0.9, 0.95, 1.1, 1.45, 1.1])[weekday]
    w = w * np.array([0.85, 0.8, 0.9, 0.95, 1.0, 1.05, 1.05, 1.0, 0.95, 1.0, 1.15, 1.5])[month]
    december = month == 11
    w[december] *= 1 + np.exp(-(((dom[december] - 21) / 5.0) ** 2))  # the run-up to Christmas
    w[(month == 10) & (weekday == 4) & (dom >= 23) & (dom <= 29)] *= 2.5  # Black Friday
    w[december & (dom == 25)] *= 0.05
    w[(month == 0) & (dom == 1)] *= 0.3
    return w, month


def _sample_days(rng, cdf: np.ndarray, first_day: np.ndarray) -> np.ndarray:
    """A traffic-weighted day on or after `first_day` for each draw."""
    f0 = np.concatenate([[0.0], cdf])[first_day]
    u = f0 + rng.random(len(first_day)) * (1.0 - f0)
    return np.minimum(np.searchsorted(cdf, u, side="right"), len(cdf) - 1)


def _time_of_day(rng, online: np.ndarray) -> np.ndarray:
    """Seconds after midnight: stores trade 9:00-21:00 peaking mid-afternoon, online peaks in the evening."""
    store = 9 * 3600 + rng.beta(2.2, 2.0, len(online)) * 12 * 3600
    web = np.mod(rng.normal(20.5, 3.5, len(online)), 24) * 3600
    return np.where(online, web, store).astype(np.int64)


@dataclass
class Customers:
    """The loyalty members: legal entity, home store, how much they shop online and how often."""

    n: int
    entity: np.ndarray
    home_store: np.ndarray
    online_share: np.ndarray
    rate: np.ndarray  # discretionary trips per year
    signup_day: np.ndarray  # relative to window start, negative = before
    taste: np.ndarray  # (n + 1, n_categories); last row = anonymous shoppers


def make_customers(seed, scale, days, catalog) -> Customers:
    """About 1,500 x `scale` members, 70% signed up before the window, with concentrated tastes."""
    rng = rng_for(seed, 2)
    n = max(20, int(round(1500 * scale)))
    shares = np.array([le[5] for le in LEGAL_ENTITIES])
    entity = np.searchsorted(np.cumsum(shares), rng.random(n) * shares.sum(), side="right")
    home_store = np.empty(n, dtype=np.int64)
    for e, le in enumerate(LEGAL_ENTITIES):
        stores = [i for i, s in enumerate(STORES) if s[1] == le[0] and s[3] == "store"]
        w = np.array([STORES[i][7] for i in stores])
        members = np.flatnonzero(entity == e)
        home_store[members] = np.array(stores)[rng.choice(len(stores), size=len(members), p=w / w.sum())]
    online_share = np.where(entity == 0, rng.beta(1.2, 3.5, n), rng.beta(1.0, 5.0, n))
    rate = rng.gamma(0.9, 6.0 / 0.9, n)
    before = rng.random(n) < 0.7
    signup_day = np.where(before, -rng.integers(1, 3 * 365, n), rng.integers(0, max(days, 1), n))
    n_cat = len(CATEGORIES)
    traffic = np.array([c.traffic for c in CATEGORIES])
    # Concentrated tastes: most customers care about a handful of categories.
    taste = rng.dirichlet(0.35 * n_cat * traffic / traffic.sum(), size=n)
    taste = np.vstack([taste, traffic / traffic.sum()])
    return Customers(n, entity, home_store, online_share, rate, signup_day, taste)


def _store_for_trips(rng, customers: Customers, cust: np.ndarray, online: np.ndarray, entity: np.ndarray) -> np.ndarray:
    """Online trips go to the entity's web store; in-store trips mostly to the home store."""
    web = np.array([next(i for i, s in enumerate(STORES) if s[1] == le[0] and s[3] == "online") for le in LEGAL_ENTITIES])
    store = np.empty(len(cust), dtype=np.int64)
    known = cust >= 0
    store[known] = customers.home_store[cust[known]]
    wander = ~known | (rng.random(len(cust)) < 0.15)
    for e, le in enumerate(LEGAL_ENTITIES):
        stores = [i for i, s in enumerate(STORES) if s[1] == le[0] and s[3] == "store"]
        w = np.array([STORES[i][7] for i in stores])
        m = np.flatnonzero(wander & (entity == e))
        store[m] = np.array(stores)[rng.choice(len(stores), size=len(m), p=w / w.sum())]
    return np.where(online, web[entity], store)


def simulate(seed, scale, start, days, catalog: Catalog, customers: Customers, step):
    """Trips and basket lines; returns plain numpy columns."""
    rng = rng_for(seed, 3)
    weights, month_of_day = _calendar(start, days)
    cdf = np.cumsum(weights) / weights.sum()
    first_day = np.clip(customers.signup_day, 0, days - 1)
    active = (days - first_day) / 365.0

    # Discretionary trips of loyalty customers.
    n_trips = rng.poisson(customers.rate * active)
    t_cust = np.repeat(np.arange(customers.n), n_trips)
    t_day = _sample_days(rng, cdf, first_day[t_cust])
    t_online = rng.random(len(t_cust)) < customers.online_share[t_cust]
    t_sec = t_day * DAY + _time_of_day(rng, t_online)
    step("shopping trips")

    # Staples: each such customer re-buys a few products at a personal cadence.
    staple_cats = np.array([i for i, c in enumerate(CATEGORIES) if c.staple])
    has = rng.random(customers.n) < 0.5
    k = np.where(has, 1 + rng.poisson(0.6, customers.n), 0)
    s_cust = np.repeat(np.arange(customers.n), k)
    s_cat = staple_cats[sample_from_rows(rng, customers.taste[:, staple_cats] + 1e-3, s_cust)]
    s_prod = pick_products(rng, catalog, s_cat)
    _, keep = np.unique(s_cust * len(catalog.price) + s_prod, return_index=True)
    s_cust, s_prod = s_cust[keep], s_prod[keep]
    cadence = np.clip(rng.lognormal(np.log(45), 0.45, len(s_cust)), 10, 120)
    s_qty = 1 + rng.poisson(0.4, len(s_cust))
    max_k = int(days / 7) + 2
    gaps = cadence[:, None] * rng.lognormal(0, 0.18, (len(s_cust), max_k))
    first = first_day[s_cust] + rng.random(len(s_cust)) * cadence
    when = first[:, None] + np.cumsum(gaps, axis=1) - gaps[:, :1]
    pair, _ = np.nonzero(when < days)
    e_time = when[when < days]  # in days, row-major so aligned with `pair`
    e_cust, e_prod, e_qty = s_cust[pair], s_prod[pair], s_qty[pair]

    # A replenishment rides along with a trip within 5 days, or joins that week's staples run.
    order = np.lexsort((t_sec, t_cust))
    t_cust, t_day, t_online, t_sec = t_cust[order], t_day[order], t_online[order], t_sec[order]
    key_trip = t_cust * (days + 10.0) * DAY + t_sec
    key_evt = e_cust * (days + 10.0) * DAY + e_time * DAY
    pos = np.searchsorted(key_trip, key_evt)
    best = np.full(len(e_cust), -1)
    best_gap = np.full(len(e_cust), np.inf)
    for cand in (pos - 1, pos):
        ok = (cand >= 0) & (cand < len(t_cust))
        c = np.where(ok, cand, 0)
        gap = np.where(ok & (t_cust[c] == e_cust), np.abs(t_sec[c] - e_time * DAY), np.inf)
        better = gap < best_gap
        best, best_gap = np.where(better, c, best), np.where(better, gap, best_gap)
    attached = best_gap <= 5 * DAY
    run_key = e_cust[~attached] * (days + 10) + (e_time[~attached] // 7).astype(np.int64)
    runs, run_of_event = np.unique(run_key, return_inverse=True)
    r_cust = runs // (days + 10)
    r_day = np.minimum(first_by_group(e_time[~attached], run_of_event, len(runs)), days - 1).astype(np.int64)
    r_online = rng.random(len(runs)) < customers.online_share[r_cust]
    r_sec = r_day * DAY + _time_of_day(rng, r_online)
    n_known = len(t_cust) + len(runs)

    # Anonymous walk-ins (and a few guest checkouts online).
    n_anon = int(round(n_known * ANONYMOUS_SHARE / (1 - ANONYMOUS_SHARE)))
    shares = np.array([le[5] for le in LEGAL_ENTITIES])
    a_entity = np.searchsorted(np.cumsum(shares), rng.random(n_anon) * shares.sum(), side="right")
    a_day = _sample_days(rng, cdf, np.zeros(n_anon, dtype=np.int64))
    a_online = rng.random(n_anon) < 0.06
    a_sec = a_day * DAY + _time_of_day(rng, a_online)

    # All trips: 0 discretionary, 1 staples run, 2 anonymous.
    trip_cust = np.concatenate([t_cust, r_cust, np.full(n_anon, -1)])
    trip_kind = np.concatenate([np.zeros(len(t_cust), np.int8), np.ones(len(runs), np.int8), np.full(n_anon, 2, np.int8)])
    trip_online = np.concatenate([t_online, r_online, a_online])
    trip_sec = np.concatenate([t_sec, r_sec, a_sec])
    trip_entity = np.concatenate([customers.entity[t_cust], customers.entity[r_cust], a_entity])
    trip_store = _store_for_trips(rng, customers, trip_cust, trip_online, trip_entity)
    trip_month = month_of_day[np.minimum(trip_sec // DAY, days - 1)]
    n_trip = len(trip_cust)
    step("staples and walk-ins")

    # Basket seeds: category by taste x season, product by popularity.
    lam = np.select([trip_kind == 0, trip_kind == 1], [3.2, 1.0], 2.0) + 0.6 * trip_online
    n_seed = (trip_kind != 1) + rng.poisson(lam)
    i_trip = np.repeat(np.arange(n_trip), n_seed)
    season = np.array([SEASONS[c.season] for c in CATEGORIES]).T  # (12, n_cat)
    staple_mask = np.array([0.2 if c.staple else 1.0 for c in CATEGORIES])  # staples mostly come by cadence
    persona = np.where(trip_cust >= 0, trip_cust, customers.n)[i_trip]
    # Sampling per (persona, month) row: build the weight matrix for the distinct pairs only.
    pm, pm_inv = np.unique(persona * 12 + trip_month[i_trip], return_inverse=True)
    pm_weights = customers.taste[pm // 12] * season[pm % 12] * staple_mask
    i_cat = sample_from_rows(rng, pm_weights, pm_inv)
    i_prod = pick_products(rng, catalog, i_cat)
    cheap = catalog.price[i_prod] < 10
    i_qty = np.where(cheap, 1 + rng.poisson(0.5, len(i_prod)), 1 + (rng.random(len(i_prod)) < 0.06))
    step("basket contents")

    # Complements follow their anchor into the basket.
    comp = catalog.complements
    starts = np.searchsorted(comp[:, 0], np.arange(len(catalog.price)))
    counts = np.searchsorted(comp[:, 0], np.arange(len(catalog.price)), side="right") - starts
    n_c = counts[i_prod]
    src = np.repeat(np.arange(len(i_prod)), n_c)
    offs = group_rank(src)
    c_prod = comp[starts[i_prod[src]] + offs, 1]
    take = rng.random(len(src)) < COMPLEMENT_PROBABILITY
    c_trip, c_prod = i_trip[src[take]], c_prod[take]

    # Staple events, attached to a trip or to their staples run.
    run_trip = len(t_cust) + run_of_event
    ev_trip = np.empty(len(e_cust), dtype=np.int64)
    ev_trip[attached] = best[attached]
    ev_trip[~attached] = run_trip

    # Non-merchandise lines.
    nm = {pid: catalog.index(pid) for pid, *_ in NON_MERCHANDISE}
    merch_items_trip = np.concatenate([i_trip, c_trip])
    merch_items_prod = np.concatenate([i_prod, c_prod])
    electronics = np.array([CATEGORIES[c].department == "Electronics" if c < len(CATEGORIES) else False
                            for c in catalog.category])
    big_ticket = electronics[merch_items_prod] & (catalog.price[merch_items_prod] > 150)
    warranty_trip = merch_items_trip[big_ticket & (rng.random(len(big_ticket)) < 0.2)]
    computer = np.array([c < len(CATEGORIES) and CATEGORIES[c].id == "computers" for c in catalog.category])
    setup_trip = merch_items_trip[computer[merch_items_prod] & (rng.random(len(merch_items_prod)) < 0.1)]
    december = trip_month == 11
    gift_card_trip = np.flatnonzero(rng.random(n_trip) < np.where(december, 0.036, 0.012))
    gift_card_prod = np.array([nm["GC-25"], nm["GC-50"], nm["GC-100"]])[rng.choice(3, len(gift_card_trip), p=[0.5, 0.35, 0.15])]
    wrap_trip = np.flatnonzero(trip_online & (rng.random(n_trip) < np.where(december, 0.15, 0.04)))
    bag_trip = np.flatnonzero(~trip_online & (trip_entity == 1) & (rng.random(n_trip) < 0.3))

    lines = {
        "trip": np.concatenate([i_trip, c_trip, ev_trip, warranty_trip, setup_trip, gift_card_trip, wrap_trip, bag_trip]),
        "prod": np.concatenate([i_prod, c_prod, e_prod, np.full(len(warranty_trip), nm["SVC-WARRANTY"]),
                                np.full(len(setup_trip), nm["SVC-SETUP"]), gift_card_prod,
                                np.full(len(wrap_trip), nm["SVC-GIFTWRAP"]), np.full(len(bag_trip), nm["BAG-FEE"])]),
        "qty": np.concatenate([i_qty, np.ones(len(c_trip), np.int64), e_qty,
                               np.ones(len(warranty_trip) + len(setup_trip) + len(gift_card_trip) + len(wrap_trip), np.int64),
                               1 + rng.poisson(0.3, len(bag_trip))]),
    }
    # One line per product per basket; the first reason it entered the basket wins.
    _, first_idx = np.unique(lines["trip"] * len(catalog.price) + lines["prod"], return_index=True)
    first_idx.sort()
    lines = {k: v[first_idx] for k, v in lines.items()}
    price = catalog.price[lines["prod"]]
    merch = catalog.product_type[lines["prod"]] == "merchandise"
    promo = merch & (rng.random(len(price)) < np.where(december[lines["trip"]], 0.2, 0.07))
    discount = rng.choice([0.1, 0.2, 0.3], size=len(price))
    lines["price"] = np.where(promo, np.round(price * (1 - discount), 2), price)

    # Shipping on online orders: free over 50, express for the impatient.
    subtotal = np.bincount(lines["trip"], weights=lines["price"] * lines["qty"] * merch, minlength=n_trip)
    has_lines = np.bincount(lines["trip"], minlength=n_trip) > 0
    express = rng.random(n_trip) < 0.12
    ship = trip_online & has_lines & ((subtotal < 50) | express)
    ship_trip = np.flatnonzero(ship)
    ship_prod = np.where(express[ship_trip], nm["SHIP-EXP"], nm["SHIP-STD"])
    lines = {
        "trip": np.concatenate([lines["trip"], ship_trip]),
        "prod": np.concatenate([lines["prod"], ship_prod]),
        "qty": np.concatenate([lines["qty"], np.ones(len(ship_trip), np.int64)]),
        "price": np.concatenate([lines["price"], catalog.price[ship_prod]]),
    }
    order = np.argsort(lines["trip"], kind="stable")
    lines = {k: v[order] for k, v in lines.items()}
    lines["line_no"] = group_rank(lines["trip"]) + 1
    trips = {
        "cust": trip_cust, "entity": trip_entity, "store": trip_store, "online": trip_online,
        "sec": trip_sec, "has_lines": has_lines | ship,
    }
    step("complements, services and shipping")
    return trips, lines
