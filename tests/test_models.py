"""Each algorithm on tiny hand-made baskets with answers worked out by hand."""

from datetime import datetime, timedelta

import numpy as np
import polars as pl
import pytest

from workbench.models import MODELS, Request, TrainingData, make_model
from workbench.models.champion.trees import RANKER_TREES

NOW = datetime(2011, 6, 30)


def interactions(rows):
    """rows: (customer, basket, product, days ago)"""
    return pl.DataFrame(
        {
            "customer_id": [r[0] for r in rows],
            "basket_id": [r[1] for r in rows],
            "product_id": [r[2] for r in rows],
            "time": [NOW - timedelta(days=r[3]) for r in rows],
            "quantity": [1.0] * len(rows),
            "store_id": ["s1"] * len(rows),
            "name": [f"Mug {r[2]}" for r in rows],
        }
    )


# three baskets: A,B,C / A,B / B,C
THREE = interactions([
    ("c1", "b1", "A", 3), ("c1", "b1", "B", 3), ("c1", "b1", "C", 3),
    ("c1", "b2", "A", 2), ("c1", "b2", "B", 2),
    ("c2", "b3", "B", 1), ("c2", "b3", "C", 1),
])


def fitted(name, frame=THREE, **params):
    return make_model(name, **params).fit(TrainingData.from_interactions(frame))


def test_registry_has_every_algorithm():
    assert {"best_sellers", "trending", "repeat", "sar", "als", "bpr", "item_knn", "ease", "champion"} <= set(MODELS)


@pytest.mark.parametrize(
    "similarity, expected",
    [
        # counts A=2, B=3, C=2; together AB=2, AC=1, BC=2
        ("count", {("A", "B"): 2, ("A", "C"): 1, ("B", "C"): 2, ("A", "A"): 2}),
        ("jaccard", {("A", "B"): 2 / 3, ("A", "C"): 1 / 3, ("B", "C"): 2 / 3, ("A", "A"): 1}),
        ("lift", {("A", "B"): 2 / 6, ("A", "C"): 1 / 4, ("B", "C"): 2 / 6, ("A", "A"): 1 / 2}),
    ],
)
def test_sar_similarities_by_hand(similarity, expected):
    model = fitted("sar", similarity=similarity, half_life_days=None)
    sim = model.similarity.toarray() if hasattr(model.similarity, "toarray") else model.similarity
    for (a, b), value in expected.items():
        i, j = model.item_index[a], model.item_index[b]
        assert sim[i, j] == pytest.approx(value) and sim[j, i] == pytest.approx(value)


def test_sar_support_threshold_drops_rare_pairs():
    model = fitted("sar", similarity="count", support=2)
    sim = model.similarity.toarray() if hasattr(model.similarity, "toarray") else model.similarity
    assert sim[model.item_index["A"], model.item_index["C"]] == 0  # seen together once
    assert sim[model.item_index["A"], model.item_index["B"]] == 2


def test_sar_product_page_names_the_viewed_product_and_never_shows_it():
    (rec,) = fitted("sar").recommend([Request("product", product_ids=("A",))], k=2)
    assert rec.item_ids[0] == "B"  # jaccard 2/3 beats C's 1/3
    assert "A" not in rec.item_ids
    assert rec.reasons[0] == "bought together with Mug A"


def test_repeat_ranks_the_regular_buy_first():
    frame = interactions([
        ("c1", "b1", "A", 30), ("c1", "b2", "A", 20), ("c1", "b3", "A", 10), ("c1", "b3", "B", 10),
        ("c2", "b4", "B", 1), ("c2", "b4", "C", 1),
    ])
    (rec,) = fitted("repeat", frame).recommend([Request("customer", "c1")], k=3)
    assert rec.item_ids[:2] == ["A", "B"]
    assert rec.reasons[:2] == ["you buy this regularly", "you bought this before"]
    assert rec.reasons[2].startswith("best seller")  # C: never bought by c1, filled in


def test_repeat_decay_prefers_recent_buys():
    frame = interactions([
        ("c1", "b1", "A", 300), ("c1", "b2", "A", 290), ("c1", "b3", "B", 1),
        ("c2", "b4", "B", 1),
    ])
    assert fitted("repeat", frame, half_life_days=None).recommend([Request("customer", "c1")], k=1)[0].item_ids == ["A"]
    assert fitted("repeat", frame, half_life_days=14).recommend([Request("customer", "c1")], k=1)[0].item_ids == ["B"]


def test_ease_matches_numpy_closed_form():
    model = fitted("ease", matrix="basket", lambda_=0.5)
    x = np.array([[1, 1, 1], [1, 1, 0], [0, 1, 1]], dtype=np.float64)  # baskets x A,B,C
    p = np.linalg.inv(x.T @ x + 0.5 * np.eye(3))
    b = np.eye(3) - p / np.diag(p)
    np.testing.assert_allclose(model.similarity, b, atol=1e-4)
    assert np.all(np.diag(model.similarity) == 0)
    assert model.similarity.dtype == np.float32


def test_ease_lambda_alias():
    assert make_model("ease", **{"lambda": 50}).params["lambda_"] == 50.0


def test_trending_favours_recent_sales():
    frame = interactions([("c1", f"old{i}", "A", 200) for i in range(5)] + [("c2", "new", "B", 1)])
    assert fitted("best_sellers", frame).recommend([Request("customer")], k=1)[0].item_ids == ["A"]
    assert fitted("trending", frame).recommend([Request("customer")], k=1)[0].item_ids == ["B"]


def test_item_knn_keeps_k_neighbours():
    model = fitted("item_knn", neighbours=1, matrix="basket")
    assert ((np.asarray(model.similarity) if not hasattr(model.similarity, "tocsr") else model.similarity.toarray()) > 0).sum(axis=1).max() == 1


@pytest.mark.parametrize("name", ["als", "bpr"])
def test_factorisation_is_deterministic_with_a_seed(name):
    params = {"factors": 4, "iterations": 5, "seed": 3}
    requests = [Request("customer", "c1"), Request("basket", None, ("A",)), Request("product", product_ids=("C",))]
    first = fitted(name, **params).score(requests)
    second = fitted(name, **params).score(requests)
    np.testing.assert_array_equal(first, second)
    assert first.shape == (3, 3) and np.abs(first).sum() > 0


@pytest.mark.parametrize("name", ["best_sellers", "trending", "repeat", "sar", "item_knn", "ease", "als", "bpr"])
def test_inputs_never_come_back_and_unknowns_fall_back(name):
    model = fitted(name, factors=4, iterations=3) if name in ("als", "bpr") else fitted(name)
    basket, product, stranger = model.recommend(
        [
            Request("basket", "c1", ("A", "B")),
            Request("product", None, ("C",)),
            Request("customer", "nobody", ("ZZZ",)),
        ],
        k=3,
    )
    assert not {"A", "B"} & set(basket.item_ids)
    assert "C" not in product.item_ids
    assert len(stranger.item_ids) == 3 and all(r.startswith("best seller") or r.startswith("trending") for r in stranger.reasons)
    assert any("nobody" in n for n in stranger.notes) and any("ZZZ" in n for n in stranger.notes)


def test_discover_leaves_out_what_the_customer_bought():
    (rec,) = fitted("best_sellers").recommend([Request("customer", "c2", exclude_purchased=True)], k=3)
    assert rec.item_ids == ["A"]  # c2 bought B and C


def seasonal_shop(days=90, seed=0):
    """A small shop: customers re-buy their favourites; two product families go together."""
    rng = np.random.default_rng(seed)
    rows = []
    for b in range(400):
        customer = f"c{rng.integers(30)}" if rng.random() < 0.8 else None
        family = rng.integers(2)
        items = {f"{'PQ'[family]}{j}" for j in rng.choice(6, size=3, replace=False)}
        if customer is not None:
            items.add(f"fav{int(customer[1:]) % 5}")
        rows += [(customer, f"b{b}", item, float(days * (1 - b / 400))) for item in sorted(items)]
    return interactions(rows)


def test_champion_tunes_deterministically_and_explains():
    frame = seasonal_shop()
    first = fitted("champion", frame, validation_days=20, max_tuning_cases=200)
    second = fitted("champion", frame, validation_days=20, max_tuning_cases=200)
    assert first.weights == second.weights
    requests = [Request("customer", "c3"), Request("basket", "c3", ("P0", "P1")), Request("product", None, ("Q2",))]
    np.testing.assert_array_equal(first.score(requests), second.score(requests))
    customer, basket, product = first.recommend(requests, k=5)
    # the customer's own favourite, explained by their own purchases (which of the two signals leads
    # depends on the customer page's blend, searched on the validation window)
    assert customer.item_ids[0] == "fav3" and customer.reasons[0] in ("you buy this regularly", "you bought this recently")
    assert not {"P0", "P1"} & set(basket.item_ids)
    assert product.item_ids[0].startswith("Q") and product.reasons[0] != ""
    assert "Q2" not in product.item_ids


def test_champion_catalog_features_are_names_and_categories_alike_and_only_where_switched_on():
    from workbench.models.champion import FEATURES

    t0 = datetime(2024, 3, 1)
    names = {"bag": ("JUMBO BAG RED RETROSPOT", "bags"), "lunch": ("LUNCH BAG RED RETROSPOT", "bags"),
             "mug": ("BLUE MUG 2", "kitchen"), "cup": ("PAPER CUP", "kitchen")}
    baskets = [("b1", "c1", ("bag", "mug")), ("b2", "c2", ("lunch", "cup")), ("b3", "c1", ("bag", "lunch", "cup")), ("b4", "c3", ("mug", "cup"))]
    rows = [{"customer_id": c, "basket_id": b, "product_id": i, "time": t0 + timedelta(days=n), "quantity": 1.0,
             "name": names[i][0], "category": names[i][1]} for n, (b, c, items) in enumerate(baskets) for i in items]
    data = TrainingData.from_interactions(pl.DataFrame(rows))
    requests = [Request("product", None, ("bag",)), Request("basket", None, ("bag", "mug"))]

    def columns(model):
        pairs, cols, features = model.candidate_features(requests)
        return {(int(r), model.item_ids[c]): (f[FEATURES.index("name_similarity")], f[FEATURES.index("same_category")])
                for r, c, f in zip(pairs, cols, features)}

    on = columns(make_model("champion", tune=False, catalog_features=True).fit(data))
    assert on[(0, "lunch")][0] > 0.3 and on[(0, "lunch")][1] == 1.0  # a series: alike names, one category
    assert on[(0, "cup")] == (0.0, 0.0)
    assert on[(1, "cup")][1] == 0.5  # one of the basket's two products is kitchenware
    assert 0 < on[(1, "lunch")][0] < on[(0, "lunch")][0]  # the mug dilutes the basket's words
    off = columns(make_model("champion", tune=False).fit(data))
    assert set(off) == set(on) and not any(any(v) for v in off.values())


def test_a_champion_pickled_before_the_catalog_features_still_scores():
    """A registered model outlives a code upgrade: its state comes back without the new fields and
    its re-rankers read the features they were trained on (the ones before those appended since)."""
    import pickle
    from dataclasses import replace

    from sklearn.ensemble import HistGradientBoostingClassifier

    from workbench.models.champion import FEATURES, ChampionState

    model = fitted("champion", seasonal_shop(), tune=False)
    rng = np.random.default_rng(0)
    rankers = {}
    # a basket ranker from before the catalog's features, a customer ranker from before history_category,
    # a new-items ranker from before similar_customers
    for page, width in (("basket", FEATURES.index("name_similarity")), ("customer", FEATURES.index("history_category")),
                        ("customer_new_items", FEATURES.index("similar_customers")), ("product", FEATURES.index("next_purchases"))):
        rankers[page] = HistGradientBoostingClassifier(max_iter=5).fit(rng.random((200, width)), rng.random(200) < 0.3)
    newer = ("catalog_features", "name_words", "category_share", "customer_tenure", "customer_idle", "buyers_by_item",
             "customer_norms", "customer_neighbours", "next_purchases")
    weights = {page: {c: w for c, w in page_weights.items() if c not in ("history_category", "similar_customers", "next_purchases")}
               for page, page_weights in model.state.weights.items()}
    fields = {k: v for k, v in replace(model.state, rankers=rankers, weights=weights).__dict__.items() if k not in newer}
    old = ChampionState.__new__(ChampionState)
    old.__setstate__(pickle.loads(pickle.dumps(fields)))
    assert old.catalog_features is False and old.name_words is None and old.category_share is None
    # the customers' pace comes back from their first and last buys
    np.testing.assert_array_equal(old.customer_tenure, model.state.customer_tenure)
    np.testing.assert_array_equal(old.customer_idle, model.state.customer_idle)
    assert old.customer_neighbours == 0 and old.next_purchases is None  # no such columns for its rankers
    model.state = old
    assert not any(model.signals([Request("customer", "c3")])[signal].any() for signal in ("similar_customers", "next_purchases"))
    scores = model.score([Request("basket", "c3", ("P0", "P1")), Request("customer", "c3"), Request("customer", "c3", exclude_purchased=True),
                          Request("product", None, ("P0",))])
    assert np.isfinite(scores).all() and (scores.max(axis=1) > 1.0).all()  # the re-ranked candidates on top


def test_champion_customer_pace_features_are_the_customers_own_on_the_customer_pages_only():
    """The share of the customer's baskets holding the item, the customer's baskets holding it per
    day since their first buy, and the days since their last buy: on the customer pages; the
    constants of no customer on the basket and product pages, where no tree can split on them."""
    from workbench.models.champion import FEATURES
    from workbench.models.champion.pages import CUSTOMER_PACE

    # c1: three baskets, X in two of them, the first 40 days before the newest sale, the last 10
    frame = interactions([("c1", "b0", "X", 40), ("c1", "b0", "Y", 40), ("c1", "b1", "X", 20), ("c1", "b2", "Z", 10), ("c2", "b3", "X", 0), ("c2", "b3", "W", 0)])
    model = fitted("champion", frame, tune=False)
    requests = [Request("customer", "c1"), Request("customer", "c1", exclude_purchased=True), Request("basket", "c1", ("Y",)), Request("product", None, ("Y",)), Request("customer", "nobody")]
    rows, cols, features = model.candidate_features(requests)
    pace = {(int(r), model.item_ids[c]): tuple(f[FEATURES.index(name)] for name in CUSTOMER_PACE) for r, c, f in zip(rows, cols, features)}
    assert pace[(0, "X")] == pytest.approx((2 / 3, 2 / 40, 10.0))
    assert pace[(0, "W")] == pytest.approx((0.0, 0.0, 10.0))
    assert {r for r, _ in pace} >= {0, 2, 3, 4}
    for (r, _), values in pace.items():
        if r >= 2:  # the basket and product pages, and a customer the fit never saw
            assert values == (0.0, 0.0, -1.0)


def test_champion_history_category_is_the_best_sellers_of_the_categories_a_customer_buys():
    """A customer who buys garden products twice as often as kitchenware gets the garden best seller
    first, the kitchen one next, by each product's share of its category; nothing for an anonymous
    request or a catalog without categories, and the signal explains itself by its category."""
    t0 = datetime(2024, 3, 1)
    catalog = {"hose": "garden", "rake": "garden", "pot": "garden", "mug": "kitchen", "cup": "kitchen", "ball": "toys"}
    baskets = [("c1", ("hose",)), ("c1", ("rake",)), ("c1", ("mug",))]  # the customer's own
    baskets += [("c2", ("hose", "pot"))] * 3 + [("c3", ("cup", "mug"))] * 2 + [("c3", ("cup", "ball"))]
    rows = [{"customer_id": c, "basket_id": f"b{n}", "product_id": i, "time": t0 + timedelta(days=n), "quantity": 1.0, "category": catalog[i]}
            for n, (c, items) in enumerate(baskets) for i in items]
    data = TrainingData.from_interactions(pl.DataFrame(rows))
    model = make_model("champion", tune=False).fit(data)
    signal = model.signals([Request("customer", "c1", exclude_purchased=True), Request("basket", None, ("hose",))])["history_category"]
    score = {item: signal[0, model.item_index[item]] for item in catalog}
    # garden: 2/3 of c1's purchases, the hose in 4 of its 8 item-baskets, the pot 3, the rake 1;
    # kitchen: 1/3, the cup and the mug 3 of 6 each
    assert score["hose"] == 1.0 and score["pot"] == pytest.approx(3 / 4) and score["rake"] == pytest.approx(1 / 4)
    assert score["cup"] == pytest.approx((1 / 3 * 3 / 6) / (2 / 3 * 4 / 8)) and score["ball"] == 0.0
    assert not signal[1].any()
    without = make_model("champion", tune=False).fit(TrainingData.from_interactions(pl.DataFrame(rows).drop("category")))
    assert not without.signals([Request("customer", "c1")])["history_category"].any()
    state = model.state.with_weights({"customer_new_items": {"history_category": 1.0}})
    model.state = state
    recommended = model.recommend([Request("customer", "c1", exclude_purchased=True)], k=2)[0]
    assert recommended.item_ids[0] == "pot" and recommended.reasons[0] == "a best seller in garden, a category you buy"


@pytest.mark.parametrize("name", ["als", "bpr"])
def test_factorisation_fits_without_implicit_warning_of_blas_threads(name, monkeypatch):
    """implicit warns (once per process) when BLAS may run threads beside its own as the model is
    made: the model is made, not only fitted, under the one-BLAS-thread limit."""
    import warnings

    import implicit.utils

    monkeypatch.setattr(implicit.utils, "_checked_blas_config", False)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fitted(name, factors=4, iterations=2)


def test_champion_similar_customers_vote_with_what_they_buy_on_the_customer_pages_only(monkeypatch):
    """The customers who buy most like c1 (c2 buys its hose and rake, c3 its hose) bring the pot they
    also buy; c4's and c5's aisle brings nothing; no customer is its own neighbour (c4's lamp, which
    only c4 bought, gets no vote); `customer_neighbours` bounds the voters, 0 turns the signal off,
    and the basket page and an anonymous customer get none. A batch cut into chunks scores the same."""
    from workbench.models.champion import signals as champion_signals

    baskets = [("c1", ("hose", "rake")), ("c2", ("hose", "rake", "pot")), ("c3", ("hose", "pot")),
               ("c4", ("mug", "cup", "lamp")), ("c5", ("mug", "cup", "plate"))]
    frame = interactions([(c, f"b{n}", item, 10 - n) for n, (c, items) in enumerate(baskets) for item in items])
    requests = [Request("customer", "c1", exclude_purchased=True), Request("customer", "c4"), Request("basket", "c1", ("hose",)),
                Request("customer", "nobody")]

    def signal(**params):
        model = fitted("champion", frame, tune=False, **params)
        found = model.signals(requests)["similar_customers"]
        return model, {(r, item): found[r, model.item_index[item]] for r in range(len(requests)) for item in model.item_ids}

    model, score = signal()
    assert score[(0, "pot")] == pytest.approx(1.0) and score[(0, "mug")] == score[(0, "plate")] == 0.0
    assert score[(1, "plate")] > 0 and score[(1, "lamp")] == 0.0 and score[(1, "hose")] == 0.0
    assert not any(score[(r, item)] for r in (2, 3) for item in model.item_ids)
    monkeypatch.setattr(champion_signals, "PAIRS_PER_CHUNK", 1)  # every customer in a chunk of its own
    assert signal()[1] == score
    monkeypatch.undo()
    # one voter: c2 (hose and rake, as c1) before c3 (the hose alone)
    _, one = signal(customer_neighbours=1)
    assert one[(0, "hose")] == one[(0, "rake")] == one[(0, "pot")] > 0
    _, none = signal(customer_neighbours=0)
    assert not any(none.values())
    model.state = model.state.with_weights({"customer_new_items": {"similar_customers": 1.0}})
    recommended = model.recommend([Request("customer", "c1", exclude_purchased=True)], k=1)[0]
    assert recommended.item_ids[0] == "pot" and recommended.reasons[0] == "customers who buy like you buy this"


def test_champion_next_purchases_learns_what_a_customers_history_is_followed_by_on_the_customer_pages():
    """The kettle's buyers buy tea in the months after, and again each month; the mug's buy plates.
    A customer who just bought a kettle gets tea first and plates last, one who just bought a mug the
    other way; a tea buyer's own tea is a re-buy it expects. `next_purchase_days=0` turns the signal
    off; the basket page and an unknown customer get none; `next_purchase_items` keeps the products
    the most customers buy."""
    rows = []
    for i in range(10):
        for first, then, customer in (("kettle", "tea", f"k{i}"), ("mug", "plate", f"m{i}")):
            rows.append((customer, f"{customer}-0", first, 200 + i))
            rows += [(customer, f"{customer}-{month}", then, 200 + i - 30 * month) for month in range(1, 7)]
    rows += [("new kettle", "nk", "kettle", 5), ("new mug", "nm", "mug", 5)]
    frame = interactions(rows)
    requests = [Request("customer", "new kettle"), Request("customer", "new mug"), Request("customer", "k0"),
                Request("basket", "new kettle", ("kettle",)), Request("customer", "nobody")]

    def signal(**params):
        model = fitted("champion", frame, tune=False, **params)
        found = model.signals(requests)["next_purchases"]
        return model, {(r, item): found[r, model.item_index[item]] for r in range(len(requests)) for item in model.item_ids}

    model, score = signal()
    assert score[(0, "tea")] == pytest.approx(1.0) and score[(0, "tea")] > score[(0, "plate")]
    assert score[(1, "plate")] == pytest.approx(1.0) and score[(1, "plate")] > score[(1, "tea")]
    assert score[(2, "tea")] == pytest.approx(1.0)
    assert not any(score[(r, item)] for r in (3, 4) for item in model.item_ids)
    assert model.state.next_purchases.rows > 0
    _, off = signal(next_purchase_days=0)
    assert not any(off.values())
    # kettle and mug: 11 customers each, plate and tea 10 (the tie by product id): tea is left out
    capped, few = signal(next_purchase_items=3)
    assert sorted(capped.item_ids[capped.state.next_purchases.items]) == ["kettle", "mug", "plate"]
    assert few[(0, "tea")] == few[(2, "tea")] == 0.0 and few[(1, "plate")] == pytest.approx(1.0)
    model.state = model.state.with_weights({"customer": {"next_purchases": 1.0}})
    first, regular = model.recommend([Request("customer", "new kettle"), Request("customer", "k0")], k=1)
    assert first.item_ids[0] == "tea" and first.reasons[0] == "customers who bought what you buy bought this next"
    assert regular.item_ids[0] == "tea" and regular.reasons[0] == "you buy this regularly"


def test_champion_product_page_features_stay_on_the_product_page():
    """P(item | viewed item) and its relatives feed the product page's re-ranker only; its deeper
    candidate lists and own tree count are parameters, and "together" explains itself."""
    from workbench.models.champion import FEATURES, PRODUCT_ONLY

    frame = seasonal_shop()
    model = fitted("champion", frame, validation_days=20, max_tuning_cases=200, product_candidates_per_signal=80)
    requests = [Request("basket", "c3", ("P0", "P1")), Request("product", None, ("Q2",))]
    rows, _, features = model.candidate_features(requests)
    columns = [FEATURES.index(name) for name in PRODUCT_ONLY]
    assert not features[rows == 0][:, columns].any()
    assert features[rows == 1][:, FEATURES.index("together_raw")].max() > 0
    item = int(np.argmax(model.state.together[model.item_index["Q2"]].toarray()))
    signals = model.signals([Request("product", None, ("Q2",))])
    assert signals["together"][0, item] == 1.0
    if "product" in model.rankers:
        assert model.rankers["product"].max_iter == model.params["product_ranker_iterations"]


def test_champion_store_signal_falls_back_to_the_legal_entitys_best_sellers():
    """A request naming no store, or a store the fit never saw, gets the legal entity's best sellers
    as its store signal (not nothing); a named store its own; a retailer without stores none."""
    rows = [("c1", f"b{b}", "X", 5) for b in range(3)] + [("c2", f"b{b}", "Y", 5) for b in range(3, 9)]
    frame = interactions(rows).with_columns(store_id=pl.Series(["s1"] * 3 + ["s2"] * 6))
    model = fitted("champion", frame, tune=False)
    requests = [Request("product", None, ("X",), store_id=store) for store in ("s1", None, "s9")]
    store = model.signals(requests)["store"]
    x, y = model.item_index["X"], model.item_index["Y"]
    assert store[0, x] == 1.0 and store[0, y] == 0.0
    for row in (1, 2):
        assert store[row, y] == 1.0 and 0 < store[row, x] < 1.0
    np.testing.assert_allclose(store[1], model.signals(requests[1:2])["trending"][0])
    storeless = fitted("champion", frame.with_columns(store_id=pl.lit(None, dtype=pl.String)), tune=False)
    assert not storeless.signals(requests)["store"].any()


def test_champion_wish_list_reason():
    model = make_model("champion", tune=False).fit(
        TrainingData.from_interactions(THREE, wish_lists=pl.DataFrame({"customer_id": ["c2"], "product_id": ["A"]}))
    )
    (rec,) = model.recommend([Request("customer", "c2", ("A",))], k=3)
    assert rec.reasons[rec.item_ids.index("A")] == "on your wish list"


# -- tiny catalogs: a new shop, a pilot store (5 products, 3 customers, a dozen baskets) ----------------
def tiny_shop():
    rng = np.random.default_rng(0)
    rows = []
    for b in range(12):
        customer = [None, "c1", "c2", "c3"][b % 4]
        for product in sorted(set(rng.choice(list("ABCDE"), size=1 + b % 3))):
            rows.append((customer, f"b{b}", product, 60 - 5 * b))
    return interactions(rows)


TINY_REQUESTS = [
    Request("customer", "c1"),
    Request("customer", "c2", exclude_purchased=True),
    Request("customer", "c3", ("A",)),  # with a wish list
    Request("basket", "c1", ("A", "B")),
    Request("basket", None, ("C",)),
    Request("product", None, ("D",)),
    Request("product", "c3", ("E",)),
    Request("customer", "stranger", ("ZZZ",)),
]


def tiny_params(name):
    return {"factors": 2, "iterations": 3} if name in ("als", "bpr") else {}


@pytest.mark.parametrize("name", sorted(MODELS))
def test_every_model_fits_and_recommends_on_a_tiny_catalog(name):
    model = make_model(name, **tiny_params(name)).fit(TrainingData.from_interactions(tiny_shop()))
    results = model.recommend(TINY_REQUESTS, k=10)
    assert len(results) == len(TINY_REQUESTS)
    for request, rec in zip(TINY_REQUESTS, results):
        assert len(rec.item_ids) == len(set(rec.item_ids)) == len(rec.reasons) == len(rec.scores)
        assert 0 < len(rec.item_ids) <= 5 or (request.exclude_purchased and len(rec.item_ids) <= 5)
        assert all(isinstance(reason, str) and reason for reason in rec.reasons)
        if request.excludes_input:
            assert not set(request.product_ids) & set(rec.item_ids)
    assert model.score([]).shape == (0, 5)


@pytest.mark.parametrize("name", sorted(MODELS))
def test_every_model_evaluates_on_a_tiny_catalog_with_empty_scenarios(name):
    from workbench.evaluation import build_cases, evaluate, temporal_split

    train, test = temporal_split(tiny_shop(), NOW - timedelta(days=20))
    cases = build_cases(train, test)
    # a test window where only single-item anonymous baskets come in: no case on any page
    _, lone = temporal_split(interactions([("c9", "x1", "A", 100), (None, "t1", "A", 1)]), NOW - timedelta(days=20))
    empty = build_cases(train, lone)
    assert all(len(c) == 0 for c in empty.values())
    model = make_model(name, **tiny_params(name)).fit(TrainingData.from_interactions(train))
    for scenario_cases in (cases, empty):
        result = evaluate(model, scenario_cases)
        assert set(result["scenario"]) == set(scenario_cases)


@pytest.mark.parametrize("n_items", [1, 2, 5, 11, 60, 61, 130])
@pytest.mark.parametrize("second_stage", [True, False])
def test_champion_tunes_on_small_catalogs(n_items, second_stage):
    """The tuning used to take a fixed top 60 per signal (kth out of bounds) and a fixed k = 10."""
    rng = np.random.default_rng(n_items)
    rows = []
    for b in range(150):
        customer = f"c{rng.integers(8)}" if rng.random() < 0.7 else None
        size = min(n_items, int(rng.integers(1, 5)))
        for product in sorted(set(rng.choice(n_items, size=size, replace=False))):
            rows.append((customer, f"b{b}", f"P{product:03d}", float(90 * (1 - b / 150))))
    model = make_model("champion", validation_days=20, max_tuning_cases=100, second_stage=second_stage)
    model.fit(TrainingData.from_interactions(interactions(rows)))
    results = model.recommend([Request("customer", "c1"), Request("basket", "c2", ("P000",)), Request("product", None, ("P000",))], k=10)
    assert all(len(r.item_ids) == min(10, n_items if r is results[0] else n_items - 1) for r in results)


def test_champion_when_the_data_is_too_short_for_a_validation_window():
    frame = interactions([("c1", "b1", "A", 0.1), ("c1", "b1", "B", 0.1), ("c2", "b2", "B", 0.05)])
    model = fitted("champion", frame)
    assert model.rankers == {} and model.weights["basket"]["basket_copurchase"] > 0
    (rec,) = model.recommend([Request("basket", "c1", ("A",))], k=2)
    assert rec.item_ids[0] == "B"


def test_scale_rows_takes_sparse_and_empty_matrices():
    import scipy.sparse as sp

    from workbench.models.champion.signals import _scale_rows

    scaled = _scale_rows(sp.csr_matrix(np.array([[0.0, 2.0, -1.0], [0.0, 0.0, 0.0]], dtype=np.float32)))
    np.testing.assert_allclose(scaled, [[0, 1, 0], [0, 0, 0]])
    assert _scale_rows(np.zeros((0, 3), np.float32)).shape == (0, 3)


def test_champion_is_deterministic_with_the_second_stage_and_pickles():
    import pickle

    frame = seasonal_shop()
    first = fitted("champion", frame, validation_days=20, max_tuning_cases=200)
    second = fitted("champion", frame, validation_days=20, max_tuning_cases=200)
    assert set(first.rankers) == {"customer", "customer_new_items", "basket", "product"}
    requests = [Request("customer", "c3"), Request("customer", "c4", exclude_purchased=True), Request("basket", "c3", ("P0", "P1")), Request("product", None, ("Q2",))]
    np.testing.assert_array_equal(first.score(requests), second.score(requests))
    clone = pickle.loads(pickle.dumps(first))
    assert [r.item_ids for r in clone.recommend(requests)] == [r.item_ids for r in first.recommend(requests)]


def test_champion_wish_list_category_reason():
    frame = interactions([
        ("c1", "b1", "A", 5), ("c1", "b1", "B", 5), ("c2", "b2", "C", 3), ("c2", "b3", "D", 2), ("c3", "b4", "D", 1),
    ])
    catalog = pl.DataFrame({"product_id": list("ABCD"), "name": ["Mug A", "Mug B", "Cat food", "Dog food"], "category": ["Mugs", "Mugs", "Pets", "Pets"]})
    data = TrainingData.from_interactions(frame, wish_lists=pl.DataFrame({"customer_id": ["c1"], "product_id": ["C"]}), catalog=catalog)
    model = make_model("champion", tune=False, weights={"customer": {"wish_list": 1.0, "wish_category": 0.5}}).fit(data)
    (rec,) = model.recommend([Request("customer", "c1", ("C",))], k=3)
    assert rec.item_ids[:2] == ["C", "D"]
    assert rec.reasons[:2] == ["on your wish list", "in your wish list's category"]


def test_champion_session_neighbours_match_their_dense_definition():
    """The sparse session k-NN equals its definition: cosine overlap with every past basket, the
    `neighbours` closest (ties at the cut kept) and, separately, the customer's own baskets vote."""
    from workbench.models.champion.signals import _scale_rows, basket_neighbours

    model = fitted("champion", seasonal_shop(), tune=False)
    state = model.state
    requests = [Request("basket", "c3", ("P0", "P1")), Request("product", None, ("Q2",)), Request("basket", "c4", ("Q1", "fav4", "P5"))]
    shopping = model.input_items(requests)
    baskets = state.baskets.toarray()
    for neighbours in (3, 10, 10_000):
        similar, own = basket_neighbours(state, shopping, model.customer_rows(requests), neighbours=neighbours)
        overlap = shopping.toarray() @ baskets.T
        overlap = overlap * state.basket_weight[None, :] / np.sqrt(np.maximum(shopping.toarray().sum(axis=1), 1.0))[:, None]
        customers = model.customer_rows(requests)
        mine = np.where(state.basket_customer[None, :] == customers[:, None], overlap, 0.0) * (customers[:, None] >= 0)
        if neighbours < overlap.shape[1]:
            cut = np.sort(overlap, axis=1)[:, -neighbours][:, None]
            overlap = np.where(overlap >= cut, overlap, 0.0)
        np.testing.assert_allclose(similar, _scale_rows(overlap @ baskets), rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(own, _scale_rows(mine @ baskets), rtol=1e-5, atol=1e-6)
    assert not own[1].any() and own[0].any()  # the anonymous product page has no baskets of its own


def test_champion_candidates_never_hold_an_input_and_come_once():
    model = fitted("champion", seasonal_shop(), validation_days=20, max_tuning_cases=200)
    requests = [Request("customer", "c3"), Request("basket", "c3", ("P0", "P1")), Request("product", None, ("Q2",)), Request("basket", None, ("zzz",))]
    rows, cols, _ = model.candidate_features(requests)
    inputs = model.input_items(requests)
    assert not any(inputs[r, c] for r, c in zip(rows, cols) if requests[r].excludes_input)
    assert len(set(zip(rows.tolist(), cols.tolist()))) == len(rows)  # each pair once
    assert (np.bincount(rows, minlength=len(requests)) > 0).all()


def test_lists_read_at_once_pick_what_each_list_read_alone_picks():
    """The dense path's `_best_positive` over many lists' rows takes, in each row, the items that
    `_top_of_list` (the large-catalog path) takes from that row alone: the best positive items not
    blocked, ties at the cut by item index, all of them where the row has no more than its depth."""
    from workbench.models.champion.candidates import _best_positive, _shortfall, _top_of_list

    rng = np.random.default_rng(0)
    blocked = rng.random((40, 200)) < 0.05
    # few distinct values: many ties at the cut; rows with no, few and many positive items
    scores = np.where(rng.random((40, 200)) < rng.random((40, 1)) ** 3, rng.integers(1, 4, (40, 200)) / 4, 0.0).astype(np.float32)
    scores[:5] = 0.0
    scores[5:10] = np.where(blocked[5:10], 1.0, 0.0)  # positive only where blocked
    for depth in (0, 1, 7, 50, 200):
        chosen, counts = _best_positive(scores, ~blocked, depth)
        for r in range(len(scores)):
            alone, count = _top_of_list(scores[r], ~blocked[r], depth)
            assert count == counts[r]
            assert np.flatnonzero(chosen[r]).tolist() == sorted(alone.tolist())
            assert len(alone) == min(depth, count)
    # lists short of their depth lack the rest; lists holding nothing share one filler
    owners = np.array([0, 0, 0, 1, 1, 2])
    counts = np.array([3, 0, 0, 10, 10, 0])
    depths = np.array([10, 10, 20, 10, 20, 5])
    assert _shortfall(owners, counts, depths, 4).tolist() == [7 + 20, 10, 5, 0]


def test_the_weight_search_picks_among_equal_scores_by_item_index():
    """`top_columns` (the weight search's pool) takes each row's n largest values with ties at the
    cut by column, as a stable sort does, whatever numpy's partition picks: on a signal's values
    (never negative: rows short of n positives take their first zeros without a partition) as on
    values with infinities below them."""
    from workbench.models.champion.candidates import top_columns

    rng = np.random.default_rng(1)
    # few distinct values, zeros in most places: ties at every cut, and rows of every positive count
    signal = np.where(rng.random((60, 300)) < rng.random((60, 1)) ** 3, rng.integers(1, 5, (60, 300)) / 4, 0.0).astype(np.float32)
    signal[:3] = 0.0
    blocked = signal.copy()
    blocked[rng.random(blocked.shape) < 0.05] = -np.inf
    positives = np.count_nonzero(signal > 0, axis=1)
    assert (positives < 10).sum() > 5 and (positives > 60).sum() > 5
    for values in (signal, blocked):
        for n in (0, 1, 10, 60, 299, 300, 400):
            stable = np.sort(np.argsort(-values, axis=1, kind="stable")[:, :n], axis=1)
            np.testing.assert_array_equal(top_columns(values, n), stable)


def test_champion_scores_a_request_alone_as_in_any_batch():
    """A POS request alone (its own memo, no row selection) scores as it does inside a mixed batch,
    and a new batch never reuses the previous one's rows."""
    model = fitted("champion", seasonal_shop(), validation_days=20, max_tuning_cases=200)
    requests = [
        Request("customer", "c3"), Request("basket", "c3", ("P0", "P1")), Request("product", None, ("Q2",)),
        Request("product", "c5", ("P3",)), Request("customer", "c4", ("Q1",), exclude_purchased=True), Request("basket", None, ("zzz",)),
    ]
    together = model.score(requests)
    for r, request in enumerate(requests):
        np.testing.assert_array_equal(model.score([request])[0], together[r])
    assert [x.item_ids for x in model.recommend(requests[::-1])] == [x.item_ids for x in model.recommend(requests)][::-1]


def test_input_items_are_known_sorted_and_once():
    model = fitted("sar")
    inputs = model.input_items([Request("basket", None, ("C", "A", "A", "unknown")), Request("customer", "c1")])
    assert inputs.shape == (2, 3)
    assert inputs.indices.tolist() == [model.item_index["A"], model.item_index["C"]] and inputs.indptr.tolist() == [0, 2, 2]
    assert inputs.data.tolist() == [1.0, 1.0]


@pytest.mark.parametrize("ranker_trees", RANKER_TREES)
def test_champion_rankers_score_as_predict_proba(ranker_trees):
    from workbench.models.champion.ranker import _chance

    model = fitted("champion", seasonal_shop(), validation_days=20, max_tuning_cases=200, ranker_trees=ranker_trees)
    assert model.rankers
    requests = [Request("customer", "c3"), Request("basket", "c3", ("P0", "P1")), Request("product", None, ("Q2",))]
    _, _, features = model.candidate_features(requests)
    for ranker in model.rankers.values():
        np.testing.assert_array_equal(_chance(ranker, features), ranker.predict_proba(features)[:, 1])


def test_champion_walks_a_requests_trees_on_one_thread(monkeypatch):
    # a POS request's trees on two OpenMP threads wait at every tree's barrier for a core that a
    # concurrent request holds (p99 from ~15 ms to hundreds on a busy 2-core server)
    from sklearn.ensemble._hist_gradient_boosting.predictor import TreePredictor

    from workbench.models.champion import ranker as champion_ranker

    model = fitted("champion", seasonal_shop(), validation_days=20, max_tuning_cases=200)
    _, _, features = model.candidate_features([Request("basket", "c3", ("P0", "P1")), Request("product", None, ("Q2",))])
    threads, predict = [], TreePredictor.predict
    monkeypatch.setattr(TreePredictor, "predict", lambda self, X, *args: threads.append(args[-1]) or predict(self, X, *args))
    monkeypatch.setattr(champion_ranker, "_openmp_threads", lambda: 2)
    ranker = next(iter(model.rankers.values()))
    champion_ranker._chance(ranker, features)
    assert threads and set(threads) == {1}
    threads.clear()
    champion_ranker._chance(ranker, np.repeat(features, champion_ranker.PARALLEL_ROWS // len(features) + 1, axis=0))
    assert set(threads) == {2}  # an offline batch of many candidates still uses every core


def test_champion_refit_forgets_the_previous_fit():
    requests = [Request("basket", "c3", ("P0", "P1")), Request("customer", "c4")]
    model = fitted("champion", seasonal_shop(seed=1), validation_days=20, max_tuning_cases=200)
    model.score(requests)  # builds the per-fit lookups
    model.fit(TrainingData.from_interactions(seasonal_shop(seed=2)))
    fresh = fitted("champion", seasonal_shop(seed=2), validation_days=20, max_tuning_cases=200)
    np.testing.assert_array_equal(model.score(requests), fresh.score(requests))


def test_champion_takes_sparse_item_item_matrices():
    """On a large catalog the EASE weights come sparse (models.item_to_item): the champion scores
    from them as from the dense ones, up to float rounding, and recommends the same."""
    import copy

    import scipy.sparse as sp

    from workbench.models.champion.state import _replace

    model = fitted("champion", seasonal_shop(), validation_days=20, max_tuning_cases=200)
    assert isinstance(model.state.basket_similarity, np.ndarray)
    sparse = copy.copy(model)
    sparse.state = _replace(model.state, basket_similarity=sp.csr_matrix(model.state.basket_similarity),
                            customer_similarity=sp.csr_matrix(model.state.customer_similarity))
    requests = [Request("customer", "c3", ("Q1",)), Request("basket", "c3", ("P0", "P1")), Request("product", None, ("Q2",)), Request("product", "c5", ("P3",))]
    np.testing.assert_allclose(sparse.score(requests), model.score(requests), rtol=1e-4, atol=1e-6)
    assert [r.reasons for r in sparse.recommend(requests, k=5)] == [r.reasons for r in model.recommend(requests, k=5)]


def test_spd_inverse_is_the_whole_symmetric_inverse():
    """LAPACK leaves the upper triangle of its inverse unset; the blocks mirrored into it (sizes that
    are and are not a multiple of the block) give the exact symmetric inverse."""
    from workbench.models.item_to_item import _spd_inverse, _symmetric_from_lower

    rng = np.random.default_rng(0)
    for n in (1, 5, 64, 300):
        users = rng.random((n + 20, n)).astype(np.float32)
        gram = users.T @ users + np.eye(n, dtype=np.float32)
        inverse = _spd_inverse(gram)
        assert inverse.dtype == np.float32 and np.array_equal(inverse, inverse.T)
        np.testing.assert_allclose(inverse @ gram, np.eye(n), atol=1e-3)
        lower = np.tril(rng.random((n, n)))
        for block in (1, 7, 64, 256):
            np.testing.assert_array_equal(_symmetric_from_lower(np.asfortranarray(lower.copy()), block), lower + np.tril(lower, -1).T)
