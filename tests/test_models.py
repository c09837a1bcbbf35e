"""Each algorithm on tiny hand-made baskets with answers worked out by hand."""

from datetime import datetime, timedelta

import numpy as np
import polars as pl
import pytest

from workbench.models import MODELS, Request, TrainingData, make_model
from workbench.models.item_to_item import ease_weights

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
    assert customer.item_ids[0] == "fav3" and customer.reasons[0] == "you buy this regularly"
    assert not {"P0", "P1"} & set(basket.item_ids)
    assert product.item_ids[0].startswith("Q") and product.reasons[0] != ""
    assert "Q2" not in product.item_ids


def test_champion_wish_list_reason():
    model = make_model("champion", tune=False).fit(
        TrainingData.from_interactions(THREE, wish_lists=pl.DataFrame({"customer_id": ["c2"], "product_id": ["A"]}))
    )
    (rec,) = model.recommend([Request("customer", "c2", ("A",))], k=3)
    assert rec.reasons[rec.item_ids.index("A")] == "on your wish list"
