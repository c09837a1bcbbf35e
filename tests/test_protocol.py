from datetime import datetime

import polars as pl
import pytest

from workbench.evaluation import build_cases, evaluate, temporal_split, validation_split
from workbench.models import make_model, TrainingData


def frame():
    rows = [
        # customer, basket, product, day
        ("c1", "b1", "A", 1), ("c1", "b1", "B", 1),
        ("c1", "b2", "A", 3), ("c1", "b2", "C", 3),
        ("c2", "b3", "B", 4), ("c2", "b3", "C", 4),
        (None, "b4", "A", 5), (None, "b4", "B", 5),
        # test window (from day 10)
        ("c1", "t1", "A", 10), ("c1", "t1", "D", 10), ("c1", "t1", "B", 10),  # D is new: dropped
        ("c2", "t2", "A", 11), ("c2", "t2", "C", 11),
        ("c3", "t3", "B", 12), ("c3", "t3", "C", 12),  # c3 has no training history
        (None, "t4", "C", 12),  # one item: no basket case
    ]
    return pl.DataFrame(
        {
            "customer_id": [r[0] for r in rows],
            "basket_id": [r[1] for r in rows],
            "product_id": [r[2] for r in rows],
            "time": [datetime(2011, 1, r[3]) for r in rows],
            "quantity": [1.0] * len(rows),
            "store_id": ["online"] * len(rows),
            "channel": ["online"] * len(rows),
        }
    )


def test_temporal_split_drops_unseen_test_items():
    train, test = temporal_split(frame(), "2011-01-10")
    assert train["basket_id"].unique().sort().to_list() == ["b1", "b2", "b3", "b4"]
    assert "D" not in test["product_id"].to_list()
    assert test.height == 7


def test_split_keeps_pandas_in_pandas_out():
    train, test = temporal_split(frame().to_pandas(), "2011-01-10")
    assert type(train).__name__ == "DataFrame" and hasattr(train, "iloc")


def test_validation_split_takes_the_last_days():
    fit, validation = validation_split(frame().filter(pl.col("time") < datetime(2011, 1, 10)), days=1)
    assert validation["basket_id"].unique().to_list() == ["b4"]  # the last whole day: day 5
    assert fit["time"].max() < validation["time"].min()


def test_cases_follow_the_protocol():
    train, test = temporal_split(frame(), "2011-01-10")
    cases = build_cases(train, test, seed=0)
    customer = cases["customer"]
    assert [r.customer_id for r in customer.requests] == ["c1", "c2"]  # c3 is new
    assert customer.truth == [frozenset({"A", "B"}), frozenset({"A", "C"})]
    new = cases["customer_new_items"]
    assert [r.customer_id for r in new.requests] == ["c2"] and new.truth == [frozenset({"A"})]
    assert all(r.exclude_purchased for r in new.requests)
    basket, product = cases["basket"], cases["product"]
    assert len(basket) == len(product) == 3  # t1, t2, t3; t4 has one item
    for b, p, bt, pt in zip(basket.requests, product.requests, basket.truth, product.truth):
        (held,) = bt
        assert held not in b.product_ids and p.product_ids == (held,)
        assert set(b.product_ids) == set(pt)
        assert p.customer_id is None
    again = build_cases(train, test, seed=0)
    assert [r.product_ids for r in again["basket"].requests] == [r.product_ids for r in basket.requests]


def test_evaluate_gives_one_row_per_scenario():
    train, test = temporal_split(frame(), "2011-01-10")
    cases = build_cases(train, test)
    model = make_model("best_sellers", per_store=False).fit(TrainingData.from_interactions(train))
    result = evaluate(model, cases, k=2)
    assert result["scenario"].tolist() == ["customer", "customer_new_items", "basket", "product"]
    assert set(result.columns) >= {"n_cases", "precision", "recall", "ndcg", "map", "hr", "coverage", "novelty"}
    # c2's only new item is A, the top best seller it has not bought: a hit at rank 1
    assert result.set_index("scenario").loc["customer_new_items", "ndcg"] == pytest.approx(1.0)


def test_customer_cases_past_the_cap_are_a_seeded_draw_and_leave_the_invoices_alone():
    train, test = temporal_split(frame(), "2011-01-10")
    every = build_cases(train, test, seed=0)
    capped = build_cases(train, test, seed=0, max_customers=1)
    (drawn,) = [r.customer_id for r in capped["customer"].requests]
    assert drawn in {"c1", "c2"}
    truth = dict(zip((r.customer_id for r in every["customer"].requests), every["customer"].truth))
    assert capped["customer"].truth == [truth[drawn]]
    # new-items cases come from the drawn customers only (c1 has no new item, c2 has A)
    assert [r.customer_id for r in capped["customer_new_items"].requests] == (["c2"] if drawn == "c2" else [])
    for scenario in ("basket", "product"):
        assert [r.product_ids for r in capped[scenario].requests] == [r.product_ids for r in every[scenario].requests]
    again = build_cases(train, test, seed=0, max_customers=1)
    assert [r.customer_id for r in again["customer"].requests] == [drawn]
    assert build_cases(train, test, seed=0, max_customers=2)["customer"].truth == every["customer"].truth


def test_more_views_per_invoice_add_cases_after_the_first_views():
    train, test = temporal_split(frame(), "2011-01-10")
    one = build_cases(train, test, seed=0)
    three = build_cases(train, test, seed=0, views=3)
    for scenario in ("customer", "customer_new_items"):
        assert three[scenario].requests == one[scenario].requests
    basket, product = three["basket"], three["product"]
    n = len(one["basket"])
    # the first views are the one-view draw, unchanged
    assert basket.requests[:n] == one["basket"].requests and product.truth[:n] == one["product"].truth
    # t1, t2, t3 have 2 known items each (D is new): never more views than items, each held out once
    assert len(basket) == len(product) == 2 + 2 + 2
    held = {}
    for b, p, bt, pt in zip(basket.requests, product.requests, basket.truth, product.truth):
        (item,) = bt
        assert p.product_ids == (item,) and set(b.product_ids) == set(pt) and item not in pt
        invoice = frozenset(pt | {item})
        assert item not in held.setdefault(invoice, set())
        held[invoice].add(item)
    assert sorted(len(items) for items in held.values()) == [2, 2, 2]
    assert build_cases(train, test, seed=0, views=3)["basket"].requests == basket.requests
    # the search's cases: one per invoice, the one-view draw
    assert basket.first_views == product.first_views == n and one["basket"].first_views is None
    assert basket.one_per_invoice().requests == one["basket"].requests and product.one_per_invoice().truth == one["product"].truth
    # the further views stop at max_baskets cases: the first views of every drawn invoice come first
    capped = build_cases(train, test, seed=0, views=3, max_baskets=4)["basket"]
    assert len(capped) == 4 and capped.requests[:3] == basket.requests[:3]
