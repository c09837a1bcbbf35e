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
import sqlite3
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from workbench.datasets.schema import DDL, INDEXES

DAY = 86_400

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
# rows written to SQLite per executemany: bounds the Python tuples alive at once
WRITE_CHUNK = 500_000
ANONYMOUS_SHARE = 0.40  # walk-ins paying without a loyalty card
COMPLEMENT_PROBABILITY = 0.45  # chance each complement joins a basket holding its anchor


@dataclass(frozen=True)
class Category:
    id: str
    name: str
    department: str
    n_products: int
    traffic: float  # relative share of basket items
    price: float  # typical price
    nouns: tuple[str, ...]
    season: str | None = None
    staple: bool = False


CATEGORIES: tuple[Category, ...] = (
    Category("phones", "Smartphones", "Electronics", 14, 0.6, 520, ("Smartphone",)),
    Category("phone_acc", "Phone Accessories", "Electronics", 30, 1.2, 19,
             ("Phone Case", "Screen Protector", "USB-C Charger", "Charging Cable", "Wireless Charger", "Car Mount", "Power Bank")),
    Category("audio", "Audio", "Electronics", 22, 0.8, 75, ("Wireless Earbuds", "Headphones", "Bluetooth Speaker", "Soundbar")),
    Category("computers", "Laptops & Tablets", "Electronics", 14, 0.4, 690, ("Laptop", "Tablet", "Chromebook", "2-in-1 Laptop")),
    Category("computer_acc", "Computer Accessories", "Electronics", 26, 0.8, 35,
             ("Wireless Mouse", "Keyboard", "Laptop Sleeve", "USB Hub", "Monitor", "Webcam", "Tablet Stylus")),
    Category("gaming", "Video Games", "Electronics", 20, 0.6, 55, ("Game Console", "Controller", "Video Game"), season="gifting"),
    Category("kitchen", "Kitchen", "Home", 30, 0.9, 42,
             ("Coffee Maker", "Blender", "Toaster", "Chef's Knife", "Frying Pan", "Mixing Bowl Set")),
    Category("home_decor", "Home Decor", "Home", 34, 0.9, 24, ("Scented Candle", "Picture Frame", "Throw Pillow", "Vase", "Wall Clock")),
    Category("bedding", "Bed & Bath", "Home", 24, 0.6, 38, ("Bath Towel", "Duvet Cover", "Pillow", "Sheet Set")),
    Category("garden", "Garden & Patio", "Home", 24, 0.6, 34,
             ("Garden Hose", "Planter", "Patio Chair", "Seed Kit", "BBQ Grill", "BBQ Tools"), season="spring"),
    Category("holiday", "Holiday Decorations", "Home", 16, 0.5, 18,
             ("Christmas Lights", "Ornament Set", "Wreath", "Gift Wrap Paper"), season="holiday"),
    Category("coffee", "Coffee & Tea", "Essentials", 20, 1.4, 9,
             ("Ground Coffee", "Coffee Beans", "Coffee Pods", "Green Tea", "Black Tea"), staple=True),
    Category("snacks", "Snacks", "Essentials", 26, 1.6, 4,
             ("Granola Bars", "Trail Mix", "Potato Chips", "Dark Chocolate", "Crackers"), staple=True),
    Category("personal", "Personal Care", "Essentials", 28, 1.4, 7,
             ("Shampoo", "Conditioner", "Body Wash", "Toothpaste", "Deodorant", "Razor Blades"), staple=True),
    Category("cleaning", "Household Cleaning", "Essentials", 22, 1.2, 8,
             ("Dish Soap", "Laundry Detergent", "Paper Towels", "All-Purpose Cleaner", "Trash Bags"), staple=True),
    Category("pet", "Pet Supplies", "Essentials", 20, 0.8, 17, ("Dog Food", "Cat Food", "Cat Litter", "Dog Treats", "Pet Toy"), staple=True),
    Category("womens", "Women's Apparel", "Apparel", 36, 1.1, 34, ("T-Shirt", "Jeans", "Dress", "Sweater", "Blouse")),
    Category("mens", "Men's Apparel", "Apparel", 30, 0.9, 34, ("T-Shirt", "Jeans", "Polo Shirt", "Sweater", "Chinos")),
    Category("outerwear", "Outerwear", "Apparel", 20, 0.6, 58, ("Winter Jacket", "Rain Jacket", "Scarf", "Gloves", "Beanie"), season="winter"),
    Category("swimwear", "Swim & Beach", "Apparel", 18, 0.5, 19, ("Swimsuit", "Beach Towel", "Sunglasses", "Sunscreen", "Flip-Flops"), season="summer"),
    Category("shoes", "Footwear", "Apparel", 24, 0.8, 62, ("Running Shoes", "Sneakers", "Boots", "Sandals", "Socks 3-Pack")),
    Category("toys", "Toys", "Leisure", 26, 0.7, 28, ("Building Blocks Set", "Board Game", "Puzzle", "Plush Toy", "RC Car"), season="gifting"),
    Category("books", "Books", "Leisure", 24, 0.6, 15, ("Novel", "Cookbook", "Children's Book", "Travel Guide")),
    Category("sports", "Sports & Fitness", "Leisure", 22, 0.6, 29, ("Yoga Mat", "Dumbbell Set", "Water Bottle", "Fitness Tracker", "Resistance Bands")),
    Category("beauty", "Beauty", "Leisure", 21, 0.9, 18, ("Lipstick", "Moisturizer", "Mascara", "Face Serum", "Nail Polish")),
)
NON_MERCHANDISE_CATEGORIES = (
    ("gift_cards", "Gift Cards", "Non-merchandise", "winter"),
    ("services", "Services", "Non-merchandise", None),
    ("fees", "Fees", "Non-merchandise", None),
)
# id, name, category, product_type, price
NON_MERCHANDISE = (
    ("GC-25", "Gift Card 25", "gift_cards", "gift_card", 25.0),
    ("GC-50", "Gift Card 50", "gift_cards", "gift_card", 50.0),
    ("GC-100", "Gift Card 100", "gift_cards", "gift_card", 100.0),
    ("SVC-WARRANTY", "Extended Protection Plan (2 years)", "services", "service", 49.99),
    ("SVC-GIFTWRAP", "Gift Wrapping", "services", "service", 4.99),
    ("SVC-SETUP", "Device Setup Service", "services", "service", 39.99),
    ("SHIP-STD", "Standard Shipping", "fees", "fee", 5.99),
    ("SHIP-EXP", "Express Shipping", "fees", "fee", 14.99),
    ("BAG-FEE", "Reusable Shopping Bag", "fees", "fee", 0.15),
)
BRANDS = {
    "Electronics": ("Voltix", "Nimbus", "Aurora", "Kestrel", "Zentro", "Orbit"),
    "Home": ("Hearth & Co", "Linden", "Maple Lane", "Nordhaus", "Casa Bella"),
    "Essentials": ("Green Valley", "Morning Ridge", "Everyday", "Bright Home", "Happy Paws"),
    "Apparel": ("Northline", "Urban Thread", "Coastline", "Alpine Trail", "Bloom"),
    "Leisure": ("Playwell", "Pageturner", "Peak Fit", "Lumiere", "Kidsville"),
}
VARIANTS = {
    "Electronics": ("Pro", "Lite", "Max", "Mini", "Plus", "Ultra", "Air", "S", "X", "Neo", "Go"),
    "Home": ("Classic", "Modern", "Rustic", "Nordic", "Deluxe", "Essential", "Cozy", "Vintage"),
    "Essentials": ("Original", "Organic", "Family Size", "Value Pack", "Extra", "Sensitive", "Fresh", "Premium"),
    "Apparel": ("Black", "Navy", "Grey", "White", "Red", "Olive", "Beige", "Denim Blue"),
    "Leisure": ("Classic", "Deluxe", "Junior", "Essential", "Signature", "Travel", "Collector's"),
}

# (anchor category, anchor nouns or None for all, complement category, complement nouns, how many)
COMPLEMENT_RULES = (
    ("phones", None, "phone_acc", ("Phone Case", "Screen Protector", "USB-C Charger"), 3),
    ("phones", None, "audio", ("Wireless Earbuds",), 1),
    ("computers", ("Laptop", "Chromebook", "2-in-1 Laptop"), "computer_acc", ("Wireless Mouse", "Laptop Sleeve", "USB Hub"), 2),
    ("computers", ("Tablet",), "computer_acc", ("Tablet Stylus",), 1),
    ("gaming", ("Game Console",), "gaming", ("Controller", "Video Game"), 2),
    ("kitchen", ("Coffee Maker",), "coffee", ("Ground Coffee", "Coffee Beans", "Coffee Pods"), 2),
    ("pet", ("Dog Food",), "pet", ("Dog Treats",), 1),
    ("pet", ("Cat Food",), "pet", ("Cat Litter",), 1),
    ("personal", ("Shampoo",), "personal", ("Conditioner",), 1),
    ("garden", ("BBQ Grill",), "garden", ("BBQ Tools",), 1),
    ("outerwear", ("Winter Jacket",), "outerwear", ("Scarf", "Gloves", "Beanie"), 2),
    ("swimwear", ("Swimsuit",), "swimwear", ("Sunscreen", "Beach Towel"), 1),
    ("womens", ("Dress",), "shoes", ("Sandals",), 1),
    ("mens", ("Jeans",), "mens", ("T-Shirt",), 1),
    ("holiday", ("Christmas Lights",), "holiday", ("Ornament Set",), 1),
    ("sports", ("Yoga Mat",), "sports", ("Resistance Bands", "Water Bottle"), 1),
    ("toys", ("Board Game",), "toys", ("Puzzle",), 1),
    ("beauty", ("Lipstick",), "beauty", ("Nail Polish",), 1),
)

# Month-of-year demand multipliers for seasonal categories (January first).
SEASONS = {
    None: (1,) * 12,
    "winter": (2.2, 1.8, 1.0, 0.6, 0.35, 0.25, 0.25, 0.35, 0.7, 1.2, 1.9, 2.4),
    "summer": (0.2, 0.25, 0.5, 1.0, 1.9, 2.8, 3.0, 2.2, 0.8, 0.35, 0.2, 0.2),
    "spring": (0.3, 0.5, 1.5, 2.6, 2.8, 2.0, 1.3, 0.9, 0.6, 0.4, 0.3, 0.25),
    "holiday": (0.1, 0.05, 0.05, 0.05, 0.05, 0.05, 0.05, 0.1, 0.3, 1.0, 4.0, 6.0),
    "gifting": (0.7, 0.7, 0.7, 0.7, 0.8, 0.8, 0.8, 0.8, 0.9, 1.1, 1.9, 3.2),
}
RETURN_RATE = {"Apparel": 0.08, "Electronics": 0.03, "Home": 0.015, "Leisure": 0.015, "Essentials": 0.003}

LEGAL_ENTITIES = (
    # id, name, currency, country, pos_recommendations_enabled, share of customers
    ("USRT", "Demo Retail US Inc.", "USD", "United States", 1, 0.8),
    ("FRRT", "Demo Retail France SAS", "EUR", "France", 0, 0.2),
)
STORES = (
    # id, legal entity, name, channel, city, country, opened_on, weight as home store
    ("USRT-WEB", "USRT", "Online store (US)", "online", None, "United States", "2015-03-01", 0.0),
    ("USRT-NYC", "USRT", "New York Fifth Avenue", "store", "New York", "United States", "2012-05-14", 0.28),
    ("USRT-CHI", "USRT", "Chicago Michigan Avenue", "store", "Chicago", "United States", "2013-09-02", 0.20),
    ("USRT-LAX", "USRT", "Los Angeles Grove", "store", "Los Angeles", "United States", "2014-04-10", 0.20),
    ("USRT-HOU", "USRT", "Houston Galleria", "store", "Houston", "United States", "2016-11-18", 0.12),
    ("USRT-SEA", "USRT", "Seattle Pike Street", "store", "Seattle", "United States", "2018-06-01", 0.10),
    ("USRT-BOS", "USRT", "Boston Newbury Street", "store", "Boston", "United States", "2019-08-23", 0.10),
    ("FRRT-WEB", "FRRT", "Boutique en ligne (FR)", "online", None, "France", "2017-01-15", 0.0),
    ("FRRT-PAR", "FRRT", "Paris Rivoli", "store", "Paris", "France", "2016-03-05", 0.55),
    ("FRRT-LYS", "FRRT", "Lyon Part-Dieu", "store", "Lyon", "France", "2018-10-12", 0.25),
    ("FRRT-MRS", "FRRT", "Marseille Canebiere", "store", "Marseille", "France", "2020-02-20", 0.20),
)
FIRST_NAMES = ("James", "Mary", "Robert", "Patricia", "John", "Jennifer", "Michael", "Linda", "David", "Elizabeth",
               "William", "Barbara", "Richard", "Susan", "Joseph", "Jessica", "Thomas", "Sarah", "Chris", "Karen",
               "Daniel", "Lisa", "Matthew", "Nancy", "Anthony", "Sandra", "Mark", "Ashley", "Paul", "Emily",
               "Camille", "Louis", "Chloe", "Hugo", "Manon", "Lucas", "Lea", "Jules", "Ines", "Gabriel")
LAST_NAMES = ("Smith", "Johnson", "Williams", "Brown", "Jones", "Garcia", "Miller", "Davis", "Rodriguez", "Martinez",
              "Hernandez", "Lopez", "Wilson", "Anderson", "Thomas", "Taylor", "Moore", "Jackson", "Martin", "Lee",
              "Perez", "Thompson", "White", "Harris", "Clark", "Lewis", "Walker", "Young", "Allen", "King",
              "Dubois", "Moreau", "Laurent", "Simon", "Michel", "Lefebvre", "Leroy", "Roux", "David", "Bertrand")
LOYALTY_TIERS = ("Bronze", "Silver", "Gold", "Platinum")


@dataclass
class Catalog:
    """The product master, with the complement pairs the shoppers follow (the hidden truth)."""

    product_id: np.ndarray  # str, merchandise first, then non-merchandise
    name: np.ndarray
    category: np.ndarray  # index into `category_ids`
    brand: np.ndarray
    noun: np.ndarray
    price: np.ndarray
    product_type: np.ndarray
    popularity: np.ndarray  # within-category Zipf weight
    category_ids: tuple[str, ...]
    n_merchandise: int
    complements: np.ndarray = field(default_factory=lambda: np.empty((0, 2), dtype=np.int64))  # (anchor, complement) rows

    def index(self, product_id: str) -> int:
        return int(np.flatnonzero(self.product_id == product_id)[0])

    def complement_pairs(self) -> list[tuple[str, str]]:
        """The (anchor product id, complement product id) pairs bought together by design."""
        return [(str(self.product_id[a]), str(self.product_id[c])) for a, c in self.complements]


def _rng(seed: int, stage: int) -> np.random.Generator:
    return np.random.default_rng([seed, stage])


def _charm_price(price: np.ndarray) -> np.ndarray:
    """Shelf prices end in .99 (or .49 under 5), like real ones."""
    price = np.maximum(price, 0.8)
    return np.where(price >= 5, np.floor(price) + 0.99, np.floor(price * 2) / 2 + 0.49).round(2)


def category_sizes(products: int | None = None) -> list[int]:
    """Merchandise products per category: the hand-set sizes (600 products with the non-merchandise
    ones), or `products` in all, shared in the same proportions."""
    base = [c.n_products for c in CATEGORIES]
    if products is None:
        return base
    merchandise = int(products) - len(NON_MERCHANDISE)
    if merchandise < len(CATEGORIES):
        raise ValueError(f"products must be at least {len(CATEGORIES) + len(NON_MERCHANDISE)} (one per category "
                         f"plus {len(NON_MERCHANDISE)} non-merchandise), got {products!r}")
    sizes = np.maximum(1, np.floor(np.array(base) * merchandise / sum(base))).astype(int)
    # the remainder to the categories whose share was rounded down most, the largest first
    short = merchandise - int(sizes.sum())
    remainder = np.array(base) * merchandise / sum(base) - sizes
    sizes[np.lexsort((-np.array(base), -remainder))[:short]] += 1
    return sizes.tolist()


def _product_names(rng, cat: Category, n: int, taken: set) -> list[tuple[str, str, str]]:
    """n (name, brand, noun) of one category, unique across the catalog (men's and women's jeans
    would otherwise collide); past brand x variant x noun, model generations "2", "3", ..."""
    combos = [(b, v, n) for n in cat.nouns for b in BRANDS[cat.department] for v in VARIANTS[cat.department]]
    picked: list[tuple[str, str, str]] = []
    generation = 1
    while len(picked) < n:
        suffix = "" if generation == 1 else f" {generation}"
        for i in rng.permutation(len(combos)):
            b, v, noun = combos[i]
            name = f"{b} {v} {noun}{suffix}"
            if name not in taken:
                taken.add(name)
                picked.append((name, b, noun))
                if len(picked) == n:
                    break
        generation += 1
    return picked


def make_catalog(seed: int = 42, products: int | None = None) -> Catalog:
    """The demo product master; depends on `seed` and `products` only (not on scale or window).
    `products`: the catalog's size, non-merchandise included (None: the 600 of `make demo`)."""
    rng = _rng(seed, 1)
    names, cats, brands, nouns, prices = [], [], [], [], []
    taken: set = set()
    for ci, (cat, size) in enumerate(zip(CATEGORIES, category_sizes(products))):
        for name, brand, noun in _product_names(rng, cat, size, taken):
            names.append(name)
            brands.append(brand)
            nouns.append(noun)
        cats += [ci] * size
        prices.append(_charm_price(cat.price * rng.lognormal(0, 0.4, size)))
    n_merch = len(names)
    # Zipf inside each category: a few hits, a long tail.
    popularity = np.empty(n_merch)
    cats_arr = np.array(cats)
    for ci in range(len(CATEGORIES)):
        idx = np.flatnonzero(cats_arr == ci)
        ranks = rng.permutation(len(idx)) + 1
        popularity[idx] = 1.0 / ranks**1.0

    category_ids = tuple(c.id for c in CATEGORIES) + tuple(c[0] for c in NON_MERCHANDISE_CATEGORIES)
    # Shuffle merchandise ids so that the id says nothing about the category. Unknown products in the
    # dirt are "P9" + 4 digits: past 90,000 products the ids get 7 digits, so they never collide.
    width = 5 if n_merch < 90_000 else 7
    ids = np.array([f"P{i:0{width}d}" for i in rng.permutation(n_merch) + 1], dtype=object)
    nm = NON_MERCHANDISE
    catalog = Catalog(
        product_id=np.concatenate([ids, np.array([p[0] for p in nm], dtype=object)]),
        name=np.array(names + [p[1] for p in nm], dtype=object),
        category=np.concatenate([cats_arr, [category_ids.index(p[2]) for p in nm]]).astype(np.int64),
        brand=np.array(brands + [None] * len(nm), dtype=object),
        noun=np.array(nouns + [p[1] for p in nm], dtype=object),
        price=np.concatenate(prices + [np.array([p[4] for p in nm])]),
        product_type=np.array(["merchandise"] * n_merch + [p[3] for p in nm], dtype=object),
        popularity=np.concatenate([popularity, np.zeros(len(nm))]),
        category_ids=category_ids,
        n_merchandise=n_merch,
    )
    catalog.complements = _complement_pairs(rng, catalog)
    return catalog


def _complement_pairs(rng: np.random.Generator, catalog: Catalog) -> np.ndarray:
    pairs = []
    cat_index = {c: i for i, c in enumerate(catalog.category_ids)}
    for anchor_cat, anchor_nouns, comp_cat, comp_nouns, k in COMPLEMENT_RULES:
        in_anchor = catalog.category == cat_index[anchor_cat]
        if anchor_nouns is not None:
            in_anchor &= np.isin(catalog.noun, anchor_nouns)
        candidates = np.flatnonzero((catalog.category == cat_index[comp_cat]) & np.isin(catalog.noun, comp_nouns))
        if len(candidates) == 0:
            continue
        weights = catalog.popularity[candidates] ** 0.5  # complements lean popular, not only the hit
        for anchor in np.flatnonzero(in_anchor):
            chosen = rng.choice(candidates, size=min(k, len(candidates)), replace=False, p=weights / weights.sum())
            pairs += [(anchor, c) for c in chosen if c != anchor]
    pairs = np.unique(np.array(pairs, dtype=np.int64).reshape(-1, 2), axis=0)
    return pairs


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


def _sample_from_rows(rng, weights: np.ndarray, rows: np.ndarray, chunk: int = 200_000) -> np.ndarray:
    """One column index per entry of `rows`, drawn with probability proportional to weights[rows]."""
    out = np.empty(len(rows), dtype=np.int64)
    for lo in range(0, len(rows), chunk):
        w = weights[rows[lo : lo + chunk]]
        cum = np.cumsum(w, axis=1)
        u = rng.random(len(w)) * cum[:, -1]
        out[lo : lo + chunk] = np.minimum((cum < u[:, None]).sum(axis=1), w.shape[1] - 1)
    return out


def _pick_products(rng, catalog: Catalog, category: np.ndarray, weight: np.ndarray | None = None) -> np.ndarray:
    """A product of the given category per draw, following popularity (optionally reweighted)."""
    out = np.empty(len(category), dtype=np.int64)
    w_all = catalog.popularity if weight is None else catalog.popularity * weight
    for ci in np.unique(category):
        draws = np.flatnonzero(category == ci)
        members = np.flatnonzero((catalog.category == ci) & (np.arange(len(catalog.price)) < catalog.n_merchandise))
        cdf = np.cumsum(w_all[members])
        out[draws] = members[np.minimum(np.searchsorted(cdf, rng.random(len(draws)) * cdf[-1], side="right"), len(members) - 1)]
    return out


def _group_rank(keys: np.ndarray) -> np.ndarray:
    """0-based position of each row inside its run of equal (sorted) keys."""
    n = len(keys)
    if n == 0:
        return np.empty(0, dtype=np.int64)
    starts = np.r_[0, np.flatnonzero(keys[1:] != keys[:-1]) + 1]
    lengths = np.diff(np.r_[starts, n])
    return np.arange(n) - np.repeat(starts, lengths)


@dataclass
class _Customers:
    n: int
    entity: np.ndarray
    home_store: np.ndarray
    online_share: np.ndarray
    rate: np.ndarray  # discretionary trips per year
    signup_day: np.ndarray  # relative to window start, negative = before
    taste: np.ndarray  # (n + 1, n_categories); last row = anonymous shoppers


def _make_customers(seed, scale, days, catalog) -> _Customers:
    rng = _rng(seed, 2)
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
    return _Customers(n, entity, home_store, online_share, rate, signup_day, taste)


def _store_for_trips(rng, customers: _Customers, cust: np.ndarray, online: np.ndarray, entity: np.ndarray) -> np.ndarray:
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


def _simulate(seed, scale, start, days, catalog: Catalog, customers: _Customers, step):
    """Trips and basket lines; returns plain numpy columns."""
    rng = _rng(seed, 3)
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
    s_cat = staple_cats[_sample_from_rows(rng, customers.taste[:, staple_cats] + 1e-3, s_cust)]
    s_prod = _pick_products(rng, catalog, s_cat)
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
    r_day = np.minimum(_first_by_group(e_time[~attached], run_of_event, len(runs)), days - 1).astype(np.int64)
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
    i_cat = _sample_from_rows(rng, pm_weights, pm_inv)
    i_prod = _pick_products(rng, catalog, i_cat)
    cheap = catalog.price[i_prod] < 10
    i_qty = np.where(cheap, 1 + rng.poisson(0.5, len(i_prod)), 1 + (rng.random(len(i_prod)) < 0.06))
    step("basket contents")

    # Complements follow their anchor into the basket.
    comp = catalog.complements
    starts = np.searchsorted(comp[:, 0], np.arange(len(catalog.price)))
    counts = np.searchsorted(comp[:, 0], np.arange(len(catalog.price)), side="right") - starts
    n_c = counts[i_prod]
    src = np.repeat(np.arange(len(i_prod)), n_c)
    offs = _group_rank(src)
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
    lines["line_no"] = _group_rank(lines["trip"]) + 1
    trips = {
        "cust": trip_cust, "entity": trip_entity, "store": trip_store, "online": trip_online,
        "sec": trip_sec, "has_lines": has_lines | ship,
    }
    step("complements, services and shipping")
    return trips, lines


def _first_by_group(values: np.ndarray, group: np.ndarray, n_groups: int) -> np.ndarray:
    out = np.full(n_groups, np.inf)
    np.minimum.at(out, group, values)
    return out


def _add_dirt_and_returns(seed, days, catalog: Catalog, trips: dict, lines: dict, step):
    """Voids, returns, duplicates and bad product data, in the proportions of `DIRT`."""
    rng = _rng(seed, 4)
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
        "line_no": _group_rank(new_trip) + 1,
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


def _wish_lists(seed, days, catalog: Catalog, customers: _Customers, trips: dict, lines: dict):
    """Wish lists: aspirational picks by taste, plus some items the customer buys later."""
    rng = _rng(seed, 5)
    online_minded = customers.online_share > np.median(customers.online_share)
    has = rng.random(customers.n) < np.where(online_minded, 0.45, 0.2)
    owners = np.flatnonzero(has)
    n_items = 2 + rng.poisson(3, len(owners))
    w_cust = np.repeat(owners, n_items)
    n_cat = len(CATEGORIES)
    cat = _sample_from_rows(rng, customers.taste[:, :n_cat], w_cust)
    prod = _pick_products(rng, catalog, cat, weight=np.sqrt(catalog.price))  # wish lists lean to pricier items
    first_day = np.clip(customers.signup_day, 0, days - 1)
    added = (first_day[w_cust] + rng.random(len(w_cust)) * (days - first_day[w_cust])) * DAY

    # Foreshadowing: a later purchase, wished for some days before it happened.
    line_cust = trips["cust"][lines["trip"]]
    sale = (lines["type"] == "sale") & (line_cust >= 0) & has[np.maximum(line_cust, 0)]
    sale &= catalog.product_type[lines["prod"]] == "merchandise"
    cand = np.flatnonzero(sale)
    cand = cand[np.lexsort((rng.random(len(cand)), line_cust[cand]))]
    rank = _group_rank(line_cust[cand])
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


def _fmt_times(start: np.datetime64, seconds: np.ndarray) -> list[str]:
    stamps = (start.astype("datetime64[s]") + np.asarray(seconds, dtype=np.int64).astype("timedelta64[s]")).astype(str)
    return np.char.replace(stamps, "T", " ").tolist()


def _fmt_dates(start: np.datetime64, days: np.ndarray) -> list[str]:
    return (start + np.asarray(days, dtype=np.int64).astype("timedelta64[D]")).astype(str).tolist()


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
    customers = _make_customers(seed, scale, days, catalog)
    step("customers")
    trips, lines = _simulate(seed, scale, start_day, days, catalog, customers, step)
    trips, lines = _add_dirt_and_returns(seed, days, catalog, trips, lines, step)
    wish = _wish_lists(seed, days, catalog, customers, trips, lines)
    step("wish lists")
    counts = _write(path, seed, start_day, catalog, customers, trips, lines, wish)
    step("writing database")
    bar.close()
    counts["seconds"] = round(time.perf_counter() - t0, 2)
    counts["path"] = str(path)
    return counts


def _write(path: Path, seed, start_day, catalog: Catalog, customers: _Customers, trips, lines, wish) -> dict:
    rng = _rng(seed, 6)
    # Transaction ids are receipt numbers per legal entity, in time order.
    keep = trips["has_lines"]
    idx = np.flatnonzero(keep)
    idx = idx[np.lexsort((idx, trips["sec"][idx], trips["entity"][idx]))]
    seq = _group_rank(trips["entity"][idx]) + 1
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
        created = _first_by_group(w_added.astype(float), np.searchsorted(owners, w_cust), len(owners))
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
