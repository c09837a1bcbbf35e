"""The champion's fitted state: one immutable object, built once by `fit_state`, read by every
scoring step and never written after (its arrays are read-only)."""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np
import scipy.sparse as sp

from workbench.models.base import freeze
from workbench.models.champion.next_purchases import NextPurchases, fit_next_purchases
from workbench.models.champion.pages import COMPONENTS, DEFAULT_WEIGHTS, PAGES
from workbench.models.data import TrainingData
from workbench.models.item_to_item import DENSE_ITEM_LIMIT, LARGE_CATALOG_NEIGHBOURS, ease_weights, top_k_per_row


@dataclass(frozen=True)
class ChampionState:
    n_items: int
    # the page's weight of each signal in its linear blend, and the page's re-ranker
    weights: dict
    rankers: dict
    tuning_report: dict | None
    candidates_per_signal: int
    product_candidates_per_signal: int | None
    blend_share: float
    # past this many products a request's candidates come from its lists' positive items (candidates.py)
    dense_item_limit: int
    # customers x items
    repeat: sp.csr_matrix  # recency-weighted baskets (repeat half-life)
    recent: sp.csr_matrix  # the same, recent half-life
    counts: sp.csr_matrix  # baskets holding the item
    presence: sp.csr_matrix  # bought at all
    last_bought: sp.csr_matrix  # days since the last buy + 1
    first_bought: sp.csr_matrix  # days since the first buy + 1
    pair_position: sp.csr_matrix | None  # 1 + position of each (customer, item) in the three above, where they share a pattern
    # items x customers: each customer's repeat row at unit length, of each item the BUYERS_PER_ITEM
    # buyers it weighs most for (similar_customers: the cosine of two customers is a product of rows)
    buyers_by_item: sp.csr_matrix
    customer_norms: np.ndarray  # each customer's repeat row's length
    customer_neighbours: int  # how many similar customers vote (0: none)
    next_purchases: NextPurchases | None  # history -> the next weeks' purchases (None: no such signal)
    # items x items (dense or sparse CSR)
    basket_similarity: object  # EASE on baskets
    customer_similarity: object  # EASE on customers
    together: sp.csr_matrix  # P(item | input item) over all baskets
    recent_together: sp.csr_matrix  # the same over recent baskets
    # baskets
    baskets: sp.csr_matrix  # baskets x items, presence
    baskets_by_item: sp.csr_matrix  # items x baskets, kept row-major: transposing per request costs more than the product
    basket_weight: np.ndarray  # recency / sqrt(size)
    basket_customer: np.ndarray  # customer index per basket, -1 anonymous
    n_fit_baskets: int
    # per item
    trending: np.ndarray
    trending_order: np.ndarray  # items by trending, best first: a request's trending list is its prefix
    store_sellers: dict  # store id -> trending per item at that store
    store_orders: dict  # store id -> items by the store's best sellers then trending, best first
    category_of: sp.csr_matrix | None  # items x categories, one-hot
    category_names: np.ndarray | None
    category_share: np.ndarray | None  # per item, its share of its category's baskets (history_category)
    catalog_features: bool  # whether the re-rankers see the names and categories (features.py)
    name_words: sp.csr_matrix | None  # items x words of the product names, TF-IDF, rows of unit length
    item_basket_count: np.ndarray
    item_log_popularity: np.ndarray
    item_trend: np.ndarray  # recent share of its sales against its all-time share
    item_repeat_rate: np.ndarray
    item_age: np.ndarray
    item_idle: np.ndarray
    item_basket_size: np.ndarray
    # per customer
    customer_baskets: np.ndarray
    customer_tenure: np.ndarray  # days since the customer's first buy
    customer_idle: np.ndarray  # days since the customer's last buy (-1: never bought)

    def __post_init__(self):
        self._freeze()

    def __setstate__(self, state):
        if "trending_order" not in state:  # pickled before the orders were kept: computed once here
            state = {**state, "dense_item_limit": DENSE_ITEM_LIMIT, **_orders(state["trending"], state["store_sellers"])}
        # pickled before the catalog's features, before the history_category signal (it stays 0,
        # and so does its weight on every page)
        state = {"catalog_features": False, "name_words": None, "category_share": None, **state}
        if "customer_tenure" not in state:  # pickled before the customers' pace was kept
            state.update(_customer_span(state["first_bought"], state["last_bought"]))
        if "buyers_by_item" not in state:  # pickled before similar_customers: it stays 0, as its weights
            # (no neighbours: nothing to compare, so nothing is built at load)
            customers, n_items = state["repeat"].shape
            state.update(buyers_by_item=sp.csr_matrix((n_items, customers), dtype=np.float32),
                         customer_norms=np.zeros(customers, dtype=np.float32), customer_neighbours=0)
        state.setdefault("next_purchases", None)  # pickled before next_purchases: it stays 0, as its weights
        state["weights"] = normalise_weights(state["weights"])
        self.__dict__.update(state)
        self._freeze()  # unpickled arrays come back writeable

    def _freeze(self):
        values = [getattr(self, f.name) for f in fields(self)]
        extra = (self.next_purchases.items, self.next_purchases.weights) if self.next_purchases is not None else ()
        freeze(*values, *extra, *self.store_sellers.values(), *self.store_orders.values())

    def with_weights(self, weights: dict | None) -> "ChampionState":
        """The same state with other blend weights (the tuning tries them on a validation window)."""
        return _replace(self, weights=normalise_weights(weights))


def _replace(state: ChampionState, **changes) -> ChampionState:
    values = {f.name: getattr(state, f.name) for f in fields(state)}
    return ChampionState(**{**values, **changes})


def normalise_weights(weights: dict | None) -> dict:
    """Every page's weight of every signal (0 where not given); DEFAULT_WEIGHTS where none."""
    weights = weights or DEFAULT_WEIGHTS
    return {page: {c: float(weights.get(page, {}).get(c, 0.0)) for c in COMPONENTS} for page in PAGES}


def fit_state(data: TrainingData, params: dict, weights: dict | None, rankers: dict, tuning_report: dict | None) -> ChampionState:
    """The signals, the candidates' statistics and the re-rankers, fitted on `data`."""
    p = params
    repeat = data.customer_items(p["repeat_half_life_days"])
    recent = data.customer_items(p["recent_half_life_days"])
    counts = data.customer_items(None)
    presence = counts.copy()
    presence.data[:] = 1.0
    basket_similarity = ease_weights(data.basket_items(None), p["basket_lambda"])
    customer_similarity = ease_weights(presence, p["customer_lambda"])
    trending = data.item_popularity(p["trending_half_life_days"])
    store_sellers = {
        store: data.item_popularity(p["trending_half_life_days"], store_id=store)
        for store in sorted({s for s in data.basket_store if s is not None})
    }
    baskets = data.basket_items(None)
    baskets.data[:] = 1.0
    # recent baskets say more about what goes together this season
    recency = np.power(0.5, data.basket_age_days / 90.0).astype(np.float32)
    sizes = np.maximum(np.asarray(baskets.sum(axis=1)).ravel(), 1.0)
    # P(item | input item) over recent baskets: what goes together this season
    weighted = sp.diags(np.power(0.5, data.basket_age_days / 30.0).astype(np.float32)) @ baskets
    together = (weighted.T @ baskets).tocsr()
    bought = np.maximum(together.diagonal(), 1e-6)
    together.setdiag(0)
    together.eliminate_zeros()
    recent_together = (sp.diags(1.0 / bought) @ together).tocsr().astype(np.float32)
    # P(item | input item) over all baskets: count-based, so popular complements come first. Every
    # basket once: weighed by its size it scored better alone on Online Retail's big orders, no better on
    # the demo retailer's, and added nothing the re-rankers' similar_baskets did not already give them
    # (notebooks/research/basket_size_weighting)
    together = (baskets.T @ baskets).tocsr()
    item_basket_count = np.asarray(together.diagonal(), dtype=np.float32)
    together.setdiag(0)
    together.eliminate_zeros()
    together = (sp.diags(1.0 / np.maximum(item_basket_count, 1.0)) @ together).tocsr().astype(np.float32)
    dense_item_limit = int(p.get("dense_item_limit", DENSE_ITEM_LIMIT))
    if data.n_items > dense_item_limit:
        # a large catalog: each product keeps its most frequent companions only (as SAR does there), so a
        # basket of best sellers costs what those rows hold, not every product ever bought beside them
        recent_together = top_k_per_row(recent_together, LARGE_CATALOG_NEIGHBOURS)
        together = top_k_per_row(together, LARGE_CATALOG_NEIGHBOURS)
    category_of, category_names = _categories(data)
    statistics = _statistics(data, counts, trending)
    return ChampionState(
        n_items=data.n_items,
        weights=normalise_weights(weights),
        rankers=dict(rankers),
        tuning_report=tuning_report,
        candidates_per_signal=p["candidates_per_signal"],
        product_candidates_per_signal=p["product_candidates_per_signal"],
        blend_share=p["blend_share"],
        dense_item_limit=dense_item_limit,
        repeat=repeat,
        recent=recent,
        counts=counts,
        presence=presence,
        **buyers_by_item(repeat),
        customer_neighbours=int(p.get("customer_neighbours") or 0),
        next_purchases=fit_next_purchases(data, p["next_purchase_days"], p["next_purchase_lambda"], int(p["next_purchase_items"])),
        basket_similarity=basket_similarity,
        customer_similarity=customer_similarity,
        together=together,
        recent_together=recent_together,
        baskets=baskets,
        baskets_by_item=latest_baskets_by_item(baskets, data.basket_age_days, int(p.get("basket_sample") or 0)),
        basket_weight=recency / np.sqrt(sizes),
        basket_customer=np.array(data.basket_customer),  # a copy: frozen here, the data stays the caller's
        n_fit_baskets=max(int(baskets.shape[0]), 1),
        trending=trending,
        store_sellers=store_sellers,
        category_of=category_of,
        category_names=category_names,
        category_share=_category_share(category_of, item_basket_count),
        catalog_features=bool(p.get("catalog_features")),
        name_words=name_words(data.item_names) if p.get("catalog_features") else None,
        item_basket_count=item_basket_count,
        **statistics,
        **_orders(trending, store_sellers),
    )


# past this many buyers of an item, those it weighs most for (the largest values of their unit-length
# repeat rows: bought often, lately, among few other items) are the ones a customer is compared with:
# a request's cost then stops growing with the customers (above every product's buyer count on
# Online Retail, at most 881, and on the demo retailer)
BUYERS_PER_ITEM = 5000


def buyers_by_item(repeat: sp.csr_matrix) -> dict:
    """{buyers_by_item, customer_norms} of the customers x items `repeat` (see ChampionState)."""
    norms = np.sqrt(np.asarray(repeat.multiply(repeat).sum(axis=1)).ravel()).astype(np.float32)
    unit = (sp.diags(1.0 / np.maximum(norms, 1e-12)) @ repeat).astype(np.float32)
    return {"buyers_by_item": top_k_per_row(unit.T.tocsr(), BUYERS_PER_ITEM), "customer_norms": norms}


def latest_baskets_by_item(baskets: sp.csr_matrix, basket_age_days: np.ndarray, sample: int) -> sp.csr_matrix:
    """items x baskets of the binary baskets x items `baskets`: each item's `sample` most recent
    baskets (all where `sample` <= 0; ties by basket index), what a request's session neighbours are
    sought among."""
    by_item = baskets.T.tocsr()
    if sample <= 0 or not (np.diff(by_item.indptr) > sample).any():
        return by_item
    # ranked by recency (the youngest largest), then the kept entries given their own values back
    recency = by_item.copy()
    recency.data = (basket_age_days.max() - basket_age_days[by_item.indices]).astype(np.float64) + 1.0
    kept = top_k_per_row(recency, sample)
    kept.data = np.ones(kept.nnz, dtype=by_item.dtype)
    return kept


def _orders(trending: np.ndarray, store_sellers: dict) -> dict:
    """The trending list's and each store list's order of the items, best first, ties by item index:
    the same for every request, so sorted once here. Scaled and summed in float32 exactly as
    `signals.compute` does, so the order is the one the dense path's lists have."""
    scaled = (trending / max(float(trending.max()), 1e-9)).astype(np.float32) if len(trending) else trending.astype(np.float32)
    store_orders = {}
    for store, sellers in store_sellers.items():
        if sellers.size and sellers.max() > 0:
            store_scaled = np.zeros(len(sellers), dtype=np.float32)
            store_scaled[:] = sellers / sellers.max()
            store_orders[store] = np.argsort(-(store_scaled + 1e-3 * scaled), kind="stable").astype(np.int32)
    return {"trending_order": np.argsort(-scaled, kind="stable").astype(np.int32), "store_orders": store_orders}


def _categories(data: TrainingData):
    """(items x categories one-hot, category names), (None, None) where the catalog names none."""
    if data.item_categories is None:
        return None, None
    labels = np.array(["" if c is None else str(c) for c in data.item_categories], dtype=object)
    known = np.flatnonzero(labels != "")
    if not len(known):
        return None, None
    names, codes = np.unique(labels[known], return_inverse=True)
    matrix = sp.csr_matrix((np.ones(len(known), dtype=np.float32), (known, codes)), shape=(data.n_items, len(names)))
    return matrix, names


def _category_share(category_of: sp.csr_matrix | None, item_basket_count: np.ndarray) -> np.ndarray | None:
    """Per item, its share of the baskets of its category's items (0 without a category)."""
    if category_of is None:
        return None
    totals = np.asarray(category_of.T @ item_basket_count.astype(np.float64)).ravel()
    return (np.asarray(category_of @ (1.0 / np.maximum(totals, 1e-9))).ravel() * item_basket_count).astype(np.float32)


def name_words(names) -> sp.csr_matrix | None:
    """items x words of the product names (TF-IDF, unit rows); None where the catalog names none.
    Products of a series share words ("LUNCH BAG RED RETROSPOT", "JUMBO BAG RED RETROSPOT"); a word
    on every other product says little (its IDF)."""
    from sklearn.feature_extraction.text import TfidfVectorizer

    texts = ["" if n is None else str(n) for n in names] if names is not None else []
    if not any(t.strip() for t in texts):
        return None
    try:
        # words of two letters or more, no numbers: sizes and pack counts would join unrelated products
        return TfidfVectorizer(token_pattern=r"(?u)\b[^\W\d_]{2,}\b", dtype=np.float32).fit_transform(texts).tocsr()
    except ValueError:  # not one word in any name
        return None


def _statistics(data: TrainingData, counts: sp.csr_matrix, trending: np.ndarray) -> dict:
    """What the re-ranker needs besides the signals: per (customer, item) first and last buy,
    per customer and per item a few counts."""
    n_items = data.n_items
    known = data.customer >= 0
    keys = data.customer[known].astype(np.int64) * n_items + data.item[known]
    ages = data.age_days[known].astype(np.float64)
    pair_keys, inverse = np.unique(keys, return_inverse=True)
    last = np.full(len(pair_keys), np.inf)
    first = np.zeros(len(pair_keys))
    np.minimum.at(last, inverse, ages)
    np.maximum.at(first, inverse, ages)
    shape = (data.n_customers, n_items)
    rows, cols = pair_keys // n_items, pair_keys % n_items
    # stored + 1 so that "today" is not an implicit zero
    last_bought = sp.csr_matrix((last + 1.0, (rows, cols)), shape=shape)
    first_bought = sp.csr_matrix((first + 1.0, (rows, cols)), shape=shape)
    # the three matrices share one sparsity pattern where counts holds every pair once: one lookup
    # of a pair's position then serves all three
    same = all(
        np.array_equal(m.indptr, counts.indptr) and np.array_equal(m.indices, counts.indices) for m in (last_bought, first_bought)
    )
    pair_position = None
    if same:
        pair_position = counts.copy()
        pair_position.data = np.arange(1, pair_position.nnz + 1, dtype=np.float64)
    customers = data.basket_customer[data.basket_customer >= 0]
    popularity = data.item_popularity(None)
    share_now = trending / max(float(trending.sum()), 1e-9)
    share_ever = popularity / max(float(popularity.sum()), 1e-9)
    buyers = np.bincount(cols, minlength=n_items)
    coo = counts.tocoo()
    rebuyers = np.bincount(coo.col[coo.data >= 2], minlength=n_items)
    age_first = np.zeros(n_items)
    age_last = np.full(n_items, np.inf)
    np.maximum.at(age_first, data.item, data.age_days.astype(np.float64))
    np.minimum.at(age_last, data.item, data.age_days.astype(np.float64))
    basket_sizes = np.bincount(data.basket, minlength=data.n_baskets).astype(np.float64)
    return {
        "last_bought": last_bought,
        "first_bought": first_bought,
        "pair_position": pair_position,
        "customer_baskets": np.bincount(customers, minlength=data.n_customers).astype(np.float32),
        **_customer_span(first_bought, last_bought),
        "item_log_popularity": np.log1p(popularity).astype(np.float32),
        "item_trend": (np.log1p(1e4 * share_now) - np.log1p(1e4 * share_ever)).astype(np.float32),
        "item_repeat_rate": (rebuyers / np.maximum(buyers, 1)).astype(np.float32),
        "item_age": age_first.astype(np.float32),
        "item_idle": np.where(np.isfinite(age_last), age_last, 1e4).astype(np.float32),
        "item_basket_size": (
            np.bincount(data.item, weights=np.log1p(basket_sizes[data.basket]), minlength=n_items) / np.maximum(popularity, 1.0)
        ).astype(np.float32),
    }


def _customer_span(first_bought: sp.csr_matrix, last_bought: sp.csr_matrix) -> dict:
    """Per customer, days since the first and since the last buy of anything: the extremes of the
    customer's row of (customer, item) first and last buys (stored + 1)."""
    tenure = np.zeros(first_bought.shape[0], dtype=np.float32)
    idle = np.full(last_bought.shape[0], -1.0, dtype=np.float32)
    for matrix, out, reduce in ((first_bought, tenure, np.maximum), (last_bought, idle, np.minimum)):
        matrix = matrix.tocsr()
        bought = np.flatnonzero(np.diff(matrix.indptr))
        if len(bought):
            out[bought] = reduce.reduceat(matrix.data, matrix.indptr[bought]) - 1.0
    return {"customer_tenure": tenure, "customer_idle": idle}
