"""The contract every algorithm in MODELS keeps (one shared test class, in the style of implicit's
shared recommender tests): a pickled model answers as before, a batch answers as its requests one
by one, many threads sharing one model get the sequential answers, scoring writes nothing to the
model, the basket / viewed product never comes back, and empty or unknown inputs get best sellers.

Each model is fitted once, on a tiny generated retailer (seconds)."""

from __future__ import annotations

import pickle
import random
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import polars as pl
import pytest

from helpers import tiny_interactions

from workbench.models import MODELS, Request, TrainingData, make_model

# hyperparameters that keep each fit to a second or two on the tiny retailer
FAST = {
    "als": {"factors": 4, "iterations": 3},
    "bpr": {"factors": 4, "iterations": 3},
    "blend": {"validation_days": 20, "max_tuning_cases": 150},
    "champion": {"validation_days": 20, "max_tuning_cases": 150, "ranker_iterations": 10, "product_ranker_iterations": 10},
    "routing": {"routes": {"product": "ease", "basket": "sar", "customer": "repeat", "customer_new_items": "ease"},
                "candidates": {"ease": {"algorithm": "ease"}, "sar": {"algorithm": "sar"}, "repeat": {"algorithm": "repeat"}}},
}


@pytest.fixture(scope="module")
def data() -> TrainingData:
    frame = tiny_interactions(seed=3, n_customers=25, n_products=30, n_baskets=300, days=90)
    wish_lists = pl.DataFrame({"customer_id": ["C001", "C001", "C002", "C007"], "product_id": ["P003", "P010", "P020", "P000"]})
    catalog = pl.DataFrame({"product_id": [f"P{p:03d}" for p in range(30)], "name": [f"Mug {p}" for p in range(30)],
                            "category": [f"Cat{p % 4}" for p in range(30)], "price": [2.5] * 30})
    return TrainingData.from_interactions(frame, wish_lists=wish_lists, catalog=catalog)


_FITTED: dict[str, object] = {}


@pytest.fixture(params=sorted(MODELS))
def model(request, data):
    name = request.param
    if name not in _FITTED:  # one fit per algorithm for the whole module
        _FITTED[name] = make_model(name, **FAST.get(name, {})).fit(data)
    return _FITTED[name]


def mixed_requests(model, n: int = 40, seed: int = 0) -> list[Request]:
    """All three pages, with and without a customer, a store, a wish list; unknown ids among them."""
    rng = random.Random(seed)
    items = [str(i) for i in model.item_ids]
    customers = sorted(str(c) for c in model.customer_index)
    requests = [
        Request("product", None, (items[0],)),
        Request("product", customers[0], (items[1],), k=5),
        Request("basket", None, tuple(items[2:5]), store_id="S1"),
        Request("basket", customers[1], (items[5], "UNKNOWN-P")),
        Request("customer", customers[2]),
        Request("customer", "C001", ("P003", "P010")),  # a wish list
        Request("customer", customers[3], exclude_purchased=True),
        Request("customer", "UNKNOWN-C", ("UNKNOWN-P",)),
        Request("customer"),  # nobody, nothing: best sellers
        Request("basket", "UNKNOWN-C", ("UNKNOWN-P",), k=3),
    ]
    while len(requests) < n:
        page = rng.choice(["product", "basket", "customer"])
        customer = rng.choice(customers) if rng.random() < 0.6 else None
        store = rng.choice(["S0", "S1", None])
        if page == "product":
            products = (rng.choice(items),)
        elif page == "basket":
            products = tuple(rng.sample(items, rng.randint(1, 4)))
        else:
            products = tuple(rng.sample(items, rng.randint(0, 2)))
        requests.append(Request(page, customer, products, k=rng.choice([3, 10]), store_id=store,
                                exclude_purchased=page == "customer" and rng.random() < 0.2))
    return requests


def answers(recommendations) -> list[tuple]:
    return [(r.item_ids, r.scores, r.reasons, r.notes) for r in recommendations]


def assert_same_lists(got: list[tuple], expected: list[tuple]) -> None:
    """The same items, reasons and notes; scores equal up to float rounding (a matrix product of a
    batch and of one row may sum in another order, as BLAS picks its kernel by shape)."""
    assert len(got) == len(expected)
    for row, ((items, scores, reasons, notes), (items_e, scores_e, reasons_e, notes_e)) in enumerate(zip(got, expected)):
        assert (items, reasons, notes) == (items_e, reasons_e, notes_e), f"request {row}"
        np.testing.assert_allclose(scores, scores_e, rtol=1e-5, atol=1e-7, err_msg=f"request {row}")


def state_of(model) -> bytes:
    """A deep snapshot of everything the model holds."""
    return pickle.dumps(vars(model), protocol=pickle.HIGHEST_PROTOCOL)


class TestRecommenderContract:
    def test_pickle_round_trip_answers_the_same(self, model):
        requests = mixed_requests(model)
        clone = pickle.loads(pickle.dumps(model, protocol=pickle.HIGHEST_PROTOCOL))
        assert answers(clone.recommend(requests)) == answers(model.recommend(requests))
        np.testing.assert_array_equal(clone.score(requests), model.score(requests))

    def test_a_batch_answers_as_its_requests_one_by_one(self, model):
        requests = mixed_requests(model)
        together = answers(model.recommend(requests))
        assert_same_lists(answers(r for request in requests for r in model.recommend([request])), together)
        scores = model.score(requests)
        for row, request in enumerate(requests):
            np.testing.assert_allclose(model.score([request])[0], scores[row], rtol=1e-5, atol=1e-7)
        # a batch larger than one chunk of `recommend` answers the same
        big = (requests * 20)[:700]
        assert_same_lists(answers(model.recommend(big)), together * 17 + together[:20])

    def test_threads_sharing_the_model_get_the_sequential_answers(self, model):
        requests = mixed_requests(model, n=60, seed=1)
        # singles, batches of 7 and the whole batch, each answered once in sequence first
        calls = [(i,) for i in range(len(requests))] + [tuple(range(s, s + 7)) for s in range(0, len(requests) - 7, 5)]
        calls += [tuple(range(len(requests)))]
        expected = {call: answers(model.recommend([requests[i] for i in call])) for call in calls}
        start = threading.Barrier(8)

        def client(seed: int) -> list[str]:
            order = random.Random(seed).sample(calls, len(calls))
            start.wait()
            wrong = []
            for call in order:
                got = answers(model.recommend([requests[i] for i in call]))
                wrong += [f"request {i} of a call of {len(call)}" for i, g, e in zip(call, got, expected[call]) if g != e]
            return wrong

        with ThreadPoolExecutor(8) as pool:
            wrong = [w for found in pool.map(client, range(8)) for w in found]
        assert not wrong, f"{len(wrong)} answers differ from the sequential ones: {wrong[:5]}"

    def test_scoring_writes_nothing_to_the_model(self, model, data):
        # a fresh fit: the module's shared model has been scored by the tests before, which would hide
        # a cache that the first scoring writes
        model = make_model(model.name, **FAST.get(model.name, {})).fit(data)
        requests = mixed_requests(model)
        before = state_of(model)
        model.recommend(requests)
        model.recommend(requests[:1])
        model.score(requests[3:9])
        items = np.arange(min(3, model.n_items))
        model.explain(requests[2], items, np.zeros(model.n_items, np.float32))
        assert state_of(model) == before, "scoring changed an attribute of the model"

    def test_the_basket_and_the_viewed_product_never_come_back(self, model):
        requests = [r for r in mixed_requests(model, n=60, seed=2) if r.excludes_input]
        for request, recommendation in zip(requests, model.recommend(requests, k=model.n_items)):
            assert not set(request.product_ids) & set(recommendation.item_ids), request
            assert len(recommendation.item_ids) == len(set(recommendation.item_ids))

    def test_empty_and_unknown_inputs(self, model):
        assert model.recommend([]) == []
        assert model.score([]).shape == (0, model.n_items)
        stranger, nothing, unknown_basket = model.recommend(
            [Request("customer", "UNKNOWN-C"), Request("customer"), Request("basket", None, ("UNKNOWN-P", "UNKNOWN-Q"))], k=4
        )
        for recommendation in (stranger, nothing, unknown_basket):
            assert len(recommendation.item_ids) == 4 and all(recommendation.reasons)
        assert any("UNKNOWN-C" in note for note in stranger.notes)
        assert any("UNKNOWN-P" in note for note in unknown_basket.notes)
        assert all(reason.startswith(("best seller", "trending")) for reason in stranger.reasons + unknown_basket.reasons)


def test_an_als_pickled_before_its_fit_filled_the_gram_cache_scores_without_writing_to_itself(data):
    """implicit's ALS caches the items' Gram matrix on itself the first time a customer is folded in;
    the fit fills it, and an ALS pickled before that was so (a model in the registry) fills it at load,
    so a served model is never written by a scoring thread."""
    model = make_model("als", **FAST["als"]).fit(data)
    model.model._YtY = None  # as an ALS fitted before 7 December 2026 was pickled
    loaded = pickle.loads(pickle.dumps(model))
    before = state_of(loaded)
    loaded.recommend(mixed_requests(loaded))
    assert state_of(loaded) == before, "scoring changed an attribute of the model"
    np.testing.assert_array_equal(loaded.model.YtY, model.item_factors.T @ model.item_factors)


@pytest.mark.parametrize("name", sorted(MODELS))
def test_a_retailer_without_loyalty_members(name):
    """Every sale anonymous (a retailer without a loyalty programme): every model fits, and answers
    each page; a customer page (nobody known) gets best sellers, and a model that learns what is
    bought together from customers learns it from the baskets instead (`TrainingData.shopper_items`)."""
    frame = tiny_interactions(seed=3, n_customers=25, n_products=30, n_baskets=300, days=90).assign(customer_id=None)
    frame["customer_id"] = frame["customer_id"].astype(object)
    model = make_model(name, **FAST.get(name, {})).fit(TrainingData.from_interactions(frame))
    assert len(model.customer_index) == 0
    items = [str(i) for i in model.item_ids]
    product, basket, customer = model.recommend(
        [Request("product", None, (items[0],)), Request("basket", None, tuple(items[1:3])), Request("customer", "C001")], k=5
    )
    assert len(product.item_ids) == len(basket.item_ids) == len(customer.item_ids) == 5
    assert items[0] not in product.item_ids and not set(items[1:3]) & set(basket.item_ids)
    assert all(reason.startswith(("best seller", "trending")) for reason in customer.reasons)
    if name not in ("best_sellers", "repeat", "trending"):  # these never learn what goes together
        assert not any(reason.startswith(("best seller", "trending")) for reason in product.reasons), product.reasons
