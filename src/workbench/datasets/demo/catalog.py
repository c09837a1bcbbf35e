"""The demo retailer's product master: categories, brands and names, shelf prices, Zipf popularity
inside every category, and the complement pairs shoppers follow (the hidden truth a recommender
can learn)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from workbench.datasets.demo.sampling import rng_for


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
    rng = rng_for(seed, 1)
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


def pick_products(rng, catalog: Catalog, category: np.ndarray, weight: np.ndarray | None = None) -> np.ndarray:
    """A product of the given category per draw, following popularity (optionally reweighted)."""
    out = np.empty(len(category), dtype=np.int64)
    w_all = catalog.popularity if weight is None else catalog.popularity * weight
    for ci in np.unique(category):
        draws = np.flatnonzero(category == ci)
        members = np.flatnonzero((catalog.category == ci) & (np.arange(len(catalog.price)) < catalog.n_merchandise))
        cdf = np.cumsum(w_all[members])
        out[draws] = members[np.minimum(np.searchsorted(cdf, rng.random(len(draws)) * cdf[-1], side="right"), len(members) - 1)]
    return out
