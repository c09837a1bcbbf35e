"""The champion's own tuning pass (models/champion/tuning.py): its validation windows see only what the
POS knew at their start, it works in the model's own chunks, and it learns the blend weights."""

from __future__ import annotations

import pickle
from datetime import datetime

import numpy as np
import pandas as pd
import polars as pl
import pytest

from helpers import tiny_interactions

from workbench.evaluation.search import search_space
from workbench.evaluation.selection import SIMPLICITY
from workbench.models import Request, TrainingData, make_model
from workbench.models.cases import Cases
from workbench.models.settings import algorithm_hyperparameters, defaults
from workbench.models.champion.model import Champion, shared_passes
from workbench.models.champion.pages import DEFAULT_WEIGHTS, FEATURES, PAGES
from workbench.models.champion.tuning import (SEARCHED_UNDER_RANKER, _at_most, _ranker_rows, _search, _top_places, _validation_window,
                                              _wish_list_frame, _with_customers, tune, window_days)
from workbench.models.window_sizing import purchase_cycle_days

FAST = {"validation_days": 20, "max_tuning_cases": 150, "ranker_iterations": 10, "product_ranker_iterations": 10}
# tiny_interactions(seed=3, ..., days=90) runs 2024-01-01 .. 2024-03-31: the 20-day validation
# window starts 2024-03-12, and C001 buys in it
WINDOW_START = datetime(2024, 3, 12)
EARLY = {"customer_id": "C001", "product_id": "P014", "added_at": datetime(2024, 1, 20)}
LATE = {"customer_id": "C001", "product_id": "P029", "added_at": datetime(2024, 3, 20)}


def shop(*wish_list_entries) -> TrainingData:
    frame = tiny_interactions(seed=3, n_customers=25, n_products=30, n_baskets=300, days=90)
    wish_lists = pl.DataFrame(list(wish_list_entries), schema={"customer_id": pl.String, "product_id": pl.String, "added_at": pl.Datetime("us")})
    return TrainingData.from_interactions(frame, wish_lists=wish_lists)


def window(data: TrainingData):
    params = Champion(**FAST).params
    inner, cases = _validation_window(params, data, data.to_interactions(), _wish_list_frame(data), 0, params["validation_days"])
    assert inner is not None
    wished = {r.customer_id: r.product_ids for r in cases["customer"].requests}
    return inner, cases, wished


def outcome(data: TrainingData):
    """What the tuning learns: weights, the search's report, and each ranker's answers on fixed rows."""
    weights, rankers, report, _ = tune(Champion(**FAST).params, data, search_weights=True)
    probe = np.random.default_rng(0).random((64, len(FEATURES))).astype(np.float32)
    return weights, report, {page: ranker.predict_proba(probe)[:, 1] for page, ranker in rankers.items()}


def test_the_shop_puts_the_late_entry_inside_the_validation_window():
    data = shop(EARLY)
    times = data.to_interactions()["time"]
    assert times.max() >= LATE["added_at"] >= WINDOW_START > EARLY["added_at"]
    _, cases, wished = window(data)
    assert "C001" in wished  # C001 buys in the window: it has a customer case


def test_a_wish_list_entry_added_inside_the_validation_window_is_unknown_to_it():
    inner, cases, wished = window(shop(EARLY, LATE))
    assert wished["C001"] == ("P014",)
    c = inner.customer_index["C001"]
    assert [str(inner.item_ids[i]) for i in inner.wish_lists[c].indices] == ["P014"]
    # the same entry dated before the window is used: it is what the date changes
    dated_before = {**LATE, "added_at": datetime(2024, 3, 1)}
    inner_before, _, wished_before = window(shop(EARLY, dated_before))
    assert wished_before["C001"] == ("P014", "P029")
    assert sorted(str(inner_before.item_ids[i]) for i in inner_before.wish_lists[c].indices) == ["P014", "P029"]


def test_a_late_wish_list_entry_changes_nothing_the_tuning_learns():
    weights, report, rankers = outcome(shop(EARLY))
    late_weights, late_report, late_rankers = outcome(shop(EARLY, LATE))
    assert late_weights == weights and late_report == report
    assert rankers.keys() == late_rankers.keys() and rankers
    for page in rankers:
        np.testing.assert_array_equal(late_rankers[page], rankers[page])


def test_an_undated_wish_list_is_used_whole():
    frame = tiny_interactions(seed=3, n_customers=25, n_products=30, n_baskets=300, days=90)
    data = TrainingData.from_interactions(frame, wish_lists=pl.DataFrame({"customer_id": ["C001", "C001"], "product_id": ["P014", "P029"]}))
    _, _, wished = window(data)
    assert wished["C001"] == ("P014", "P029")


@pytest.fixture(scope="module")
def validation():
    params = Champion(**FAST).params
    data = shop(EARLY)
    inner, cases = _validation_window(params, data, data.to_interactions(), _wish_list_frame(data), 0, params["validation_days"])
    return params, inner, cases


@pytest.mark.parametrize("page", ["customer", "basket", "product"])
def test_the_tuning_pass_gives_the_same_in_any_chunk_size(validation, page):
    """The pass works in the model's chunks (`chunk_rows`, fewer rows on a larger catalog): one row
    per chunk, a few, or all at once learn the same."""
    params, inner, cases = validation
    requests, truth = cases[page].requests, cases[page].truth
    assert len(requests) > 3
    found = []
    for chunk_floats in (inner.n_items, 3 * inner.n_items, 10**9):
        inner.chunk_floats = chunk_floats  # on the instance: this fit only
        try:
            rows = _ranker_rows(inner, inner.state, requests, truth, seed=(0, 0, 0), negative_rate=0.4)
            found.append((rows, _search(inner, inner.state, requests, truth, "ndcg")))
        finally:
            del inner.chunk_floats
    (rows, searched), others = found[0], found[1:]
    for other_rows, other_searched in others:
        for a, b in zip(rows, other_rows):
            np.testing.assert_array_equal(a, b)
        assert other_searched == searched


@pytest.mark.parametrize("k", [1, 3, 10])
def test_the_search_places_true_candidates_as_a_full_ordering_does(k):
    """`_top_places` (one partition per case) puts each true candidate where ordering the whole row
    by loss, ties by column, would: on losses drawn from a few values (ties everywhere: within the k,
    at the cut and past it) with blocked (+inf) cells, true ones among them, and rows with fewer
    unblocked cells than k."""
    rng = np.random.default_rng(k)
    losses = rng.integers(0, 6, size=(400, 30)).astype(np.float32)
    losses[rng.random(losses.shape) < 0.3] = np.inf
    losses[:20, 2:] = np.inf  # fewer candidates than the k
    rows, columns = np.nonzero(rng.random(losses.shape) < 0.15)
    order = np.lexsort((np.broadcast_to(np.arange(30), losses.shape), losses), axis=1)  # by loss, then column
    place_of = np.argsort(order, axis=1)
    expected = {(r, place_of[r, c]) for r, c in zip(rows, columns) if place_of[r, c] < k and np.isfinite(losses[r, c])}
    unblocked = np.isfinite(losses[rows, columns])
    found_rows, places = _top_places(losses, rows[unblocked], columns[unblocked], k)
    assert set(zip(found_rows.tolist(), places.tolist())) == {(int(r), int(p)) for r, p in expected}
    assert len(found_rows) == len(expected) > 50


@pytest.mark.parametrize("page", ["customer", "basket", "product"])
def test_the_weight_search_is_the_same_with_blocked_columns_anywhere_in_its_pool(validation, page, monkeypatch):
    """The search's pool keeps only as many columns as a case has candidates, blocked ones (an item
    the request blocks, a repeat) left out: they never count in a top 10, so blocked columns spread
    anywhere, whatever their signals, find the same weights and quality."""
    from workbench.models.champion import tuning

    params, inner, cases = validation
    requests, truth = cases[page].requests, cases[page].truth
    pool = tuning._search_candidates(inner, inner.state, requests, truth)
    assert pool[1].shape[1] < len(tuning.COMPONENTS) * inner.n_items  # the pool is narrower than every signal's top items
    expected = _search(inner, inner.state, requests, truth, "ndcg")

    def widened(*args, **kwargs):
        signals, blocked, relevant, sizes = pool
        rng = np.random.default_rng(0)
        n, width = blocked.shape
        at = np.sort(rng.choice(4 * width, width, replace=False))  # where the pool's own columns go

        def spread(values, extra):
            out = extra.astype(values.dtype)
            out[:, at] = values
            return out

        return ({c: spread(v, rng.random((n, 4 * width))) for c, v in signals.items()}, spread(blocked, np.ones((n, 4 * width))),
                spread(relevant, rng.random((n, 4 * width)) < 0.5), sizes)

    monkeypatch.setattr(tuning, "_search_candidates", widened)
    assert _search(inner, inner.state, requests, truth, "ndcg") == expected


def test_the_blend_weights_are_searched_under_the_re_ranker_on_the_pages_the_validation_chose():
    """The second stage no longer pins every page's blend to the Online Retail defaults: the search
    runs on the validation window for SEARCHED_UNDER_RANKER, before the re-ranker's rows are built;
    the other pages keep DEFAULT_WEIGHTS unless `search_every_page`. Without the re-ranker, every
    page is searched."""
    data = shop(EARLY)
    model = Champion(**FAST).fit(data)
    assert model.rankers
    searched = {page for page in PAGES if isinstance(model.tuning_report.get(page), float)}
    assert searched == set(SEARCHED_UNDER_RANKER)
    for page in set(PAGES) - searched:
        assert {c: w for c, w in model.weights[page].items() if w} == DEFAULT_WEIGHTS[page]
    # a retailer whose validation prefers it searches every page's blend under the re-rankers too
    every = Champion(**FAST, search_every_page=True).fit(data)
    assert every.rankers.keys() == model.rankers.keys()
    assert all(isinstance(every.tuning_report.get(page), float) for page in PAGES)
    assert {page: every.weights[page] for page in SEARCHED_UNDER_RANKER} == {page: model.weights[page] for page in SEARCHED_UNDER_RANKER}
    assert any(every.weights[page] != model.weights[page] for page in set(PAGES) - searched)
    blend_only = Champion(**FAST, second_stage=False).fit(data)
    assert not blend_only.rankers
    assert all(isinstance(blend_only.tuning_report.get(page), float) for page in PAGES)
    # the blend alone as a candidate of its own: the same fit, so the same weights
    blend = make_model("blend", **FAST).fit(data)
    assert not blend.rankers and blend.name == "blend"
    assert blend.weights == blend_only.weights
    np.testing.assert_array_equal(blend.score(REQUESTS), blend_only.score(REQUESTS))


REQUESTS = [Request("customer", "C001"), Request("basket", None, ("P001", "P002")), Request("product", "C002", ("P003",))]


def test_the_blend_takes_the_champions_settings_and_searches_its_blend_alone():
    """Its signature is the champion's (the search starts from its defaults, a misspelt setting is an
    error), but without a re-ranker; the champion's notebook settings hold for it too."""
    assert defaults("blend") == {**defaults("champion"), "second_stage": False}
    assert make_model("blend", second_stage=True).params["second_stage"] is True
    assert set(search_space("blend")) < set(search_space("champion"))
    assert not {"ranker_iterations", "candidates_per_signal"} & set(search_space("blend"))
    chosen = algorithm_hyperparameters(["blend", "champion"], {"validation_days": 14, "test_days": 20, "tune_champion": False})
    assert chosen["blend"] == chosen["champion"] == {"validation_days": 14, "max_validation_days": 20, "tune": False}
    assert SIMPLICITY.index("blend") == SIMPLICITY.index("champion") - 1


def weekly_shop(days: int, customers: int = 40) -> TrainingData:
    """Customers each back every 7 days (a phase of their own), over `days` days."""
    rows, start = [], datetime(2024, 1, 1)
    rng = np.random.default_rng(0)
    for c in range(customers):
        for visit, day in enumerate(range(c % 7, days, 7)):
            for p in rng.choice(30, size=3, replace=False):
                rows.append({"customer_id": f"C{c:03d}", "basket_id": f"B{c:03d}-{visit:03d}", "product_id": f"P{p:03d}",
                             "time": start + pd.Timedelta(days=day, hours=10), "quantity": 1.0, "store_id": "S1"})
    return TrainingData.from_interactions(pd.DataFrame(rows))


def test_the_champions_windows_are_sized_from_the_retailers_sales_not_a_month():
    """Five weeks of a busy shop get validation windows of one purchase cycle (a week: 600 baskets,
    600 returning customers), where a fixed 30 days would leave five days to fit the inner champion
    on; too few cases in a cycle grow them, to half the history, at most the test window's length;
    a given length is kept."""
    short = weekly_shop(35, customers=600)
    interactions = short.to_interactions()
    assert purchase_cycle_days(interactions) == pytest.approx(7.0)
    params = Champion(**{**FAST, "validation_days": None, "max_validation_days": 30}).params
    assert window_days(params, interactions) == 7
    model = Champion(**{**FAST, "validation_days": None}).fit(short)
    assert model.tuning_report["validation_days"] == 7
    # 40 customers a week: never 500 basket cases, so half of 35 days
    assert window_days(params, weekly_shop(35).to_interactions()) == 17
    # 40 customers never hold 500 baskets in a window: the most the history allows, capped by the test window
    assert window_days({**params, "validation_windows": 1}, weekly_shop(200).to_interactions()) == 30
    assert window_days({**params, "validation_windows": 1, "max_validation_days": 14}, weekly_shop(200).to_interactions()) == 14
    assert window_days({**params, "validation_days": 20}, interactions) == 20


def test_a_routing_over_the_champion_and_its_blend_fits_them_once_and_holds_their_signals_once():
    """The blend a champion learns on the way is the blend fitted alone, bit for bit; a per-page
    champion served by both fits once and pickles their matrices once. Other blend settings: two fits."""
    data = shop(EARLY)
    routes = {"customer": "champion", "customer_new_items": "blend", "basket": "champion", "product": "blend"}
    candidates = {"champion": {"algorithm": "champion", "params": dict(FAST)}, "blend": {"algorithm": "blend", "params": dict(FAST)}}
    routing = make_model("routing", routes=routes, candidates=candidates).fit(data)
    champion, blend = routing.models["champion"], routing.models["blend"]
    alone = {"champion": make_model("champion", **FAST).fit(data), "blend": make_model("blend", **FAST).fit(data)}
    for name, model in (("champion", champion), ("blend", blend)):
        np.testing.assert_array_equal(model.score(REQUESTS), alone[name].score(REQUESTS))
        assert model.weights == alone[name].weights
        assert model.tuning_report == alone[name].tuning_report
    assert not blend.rankers and champion.rankers
    assert blend.state.basket_similarity is champion.state.basket_similarity
    assert len(pickle.dumps(routing)) < 0.75 * (len(pickle.dumps(alone["champion"])) + len(pickle.dumps(alone["blend"])))
    # a blend of other signals is not the champion's: fitted on its own
    candidates["blend"]["params"] = {**FAST, "basket_lambda": 7.0}
    other = make_model("routing", routes=routes, candidates=candidates).fit(data)
    assert other.models["blend"].state.basket_similarity is not other.models["champion"].state.basket_similarity
    np.testing.assert_array_equal(other.models["blend"].score(REQUESTS), make_model("blend", **FAST, basket_lambda=7.0).fit(data).score(REQUESTS))


def test_a_champion_that_searches_every_page_still_fits_in_one_pass_with_its_blend():
    """`search_every_page` changes only the champion's weights under its re-rankers (the blend alone
    searches every page anyway): a champion with it and the blend of its other settings share one
    fit, each the same as fitted alone."""
    data = shop(EARLY)
    every = {**FAST, "search_every_page": True}
    models = {"champion": make_model("champion", **every), "blend": make_model("blend", **FAST)}
    assert shared_passes(models) == {"champion": "blend", "blend": "champion"}
    models["champion"].fit_with_blend(data, models["blend"])
    alone = {"champion": make_model("champion", **every).fit(data), "blend": make_model("blend", **FAST).fit(data)}
    for name, model in models.items():
        assert model.weights == alone[name].weights
        np.testing.assert_array_equal(model.score(REQUESTS), alone[name].score(REQUESTS))
    assert models["blend"].state.basket_similarity is models["champion"].state.basket_similarity


def test_further_views_of_an_invoice_teach_the_re_rankers_and_leave_the_weight_search_alone():
    """`tuning_views`: each invoice of the window is a basket and product case once more (another item
    held out); the re-rankers learn from the extra rows, the weight search stays on one case per
    invoice, so it finds what one view found."""
    data = shop(EARLY)
    one = Champion(**FAST, tuning_views=1).fit(data)
    two = Champion(**FAST, tuning_views=2).fit(data)
    assert two.weights == one.weights
    assert {page: r for page, r in two.tuning_report.items() if isinstance(r, float)} == \
        {page: r for page, r in one.tuning_report.items() if isinstance(r, float)}
    for page in ("basket", "product"):
        assert two.tuning_report[f"{page}.ranker_rows"] > one.tuning_report[f"{page}.ranker_rows"]
    for page in ("customer", "customer_new_items"):
        assert two.tuning_report[f"{page}.ranker_rows"] == one.tuning_report[f"{page}.ranker_rows"]


def test_the_blend_and_the_explained_parts_are_weight_times_signal_bit_for_bit():
    """The blend (`blend_scores`: what the served model re-ranks, and what the tuning's re-ranker rows
    learn on) is the sum of each signal's part, weight x signal, in COMPONENTS order; an explanation
    works out the parts of its own items only, from the scored batch's weights: the same floats as
    the whole catalog's parts."""
    from workbench.models.champion import ranker, signals
    from workbench.models.champion.pages import COMPONENTS

    model = Champion(**FAST).fit(shop(EARLY))
    batch = model.batch(REQUESTS + [Request("customer", "C003", exclude_purchased=True)])
    found = signals.compute(model.state, batch)
    scored = model.scored(batch)
    parts = np.stack([scored.weights[c] * found[component] for c, component in enumerate(COMPONENTS)])
    assert parts.any()
    np.testing.assert_array_equal(ranker.blend_scores(model.state, batch, found).view(np.uint32), parts.sum(axis=0).view(np.uint32))
    items = np.arange(model.n_items)
    for r in range(len(batch)):
        own = scored.weights[:, r] * np.stack([scored.signals[c][r, items] for c in COMPONENTS])
        np.testing.assert_array_equal(own.view(np.uint32), parts[:, r, :].view(np.uint32))


def test_a_draw_of_the_cases_keeps_count_of_the_first_views():
    """Where a page holds more cases than `max_tuning_cases`, the drawn cases keep their order, and
    the weight search still gets only the first view of each invoice among them."""
    cases = Cases("basket", [Request("basket", None, (f"P{i:03d}",)) for i in range(40)], [frozenset({"X"})] * 40, first_views=25)
    drawn = _at_most(cases, 20, seed=(0, 0, 2))
    kept = [int(r.product_ids[0][1:]) for r in drawn.requests]
    assert len(drawn) == 20 and kept == sorted(kept)
    assert drawn.first_views == sum(i < 25 for i in kept)
    assert [int(r.product_ids[0][1:]) for r in drawn.one_per_invoice().requests] == [i for i in kept if i < 25]


def test_the_personalised_product_cases_keep_count_of_the_first_views():
    customers = ["C1", None, "C2", "C3", None, "C1"]  # invoices 0-2, then further views of 0, 1, 2
    basket = Cases("basket", [Request("basket", c, ("P1",)) for c in customers], [frozenset({"P2"})] * 6, first_views=3)
    product = Cases("product", [Request("product", None, (f"P{i}",)) for i in range(6)], [frozenset({"P1"})] * 6, first_views=3)
    personal = _with_customers(product, basket)
    assert [r.customer_id for r in personal.requests] == ["C1", "C2", "C3", "C1"]
    assert personal.first_views == 2 and [r.product_ids for r in personal.one_per_invoice().requests] == [("P0",), ("P2",)]
