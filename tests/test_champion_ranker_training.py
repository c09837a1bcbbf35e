"""How the champion's re-rankers learn (models/champion/ranker.py, training side): at most
`max_training_rows` rows with every positive kept while they fill at most half, bins that scoring
sees as training did, and the same trees from the same seed."""

from __future__ import annotations

import numpy as np
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.metrics import roc_auc_score

from workbench.models.base import Request
from workbench.models.champion.model import Champion
from workbench.models.champion.pages import FEATURES
from workbench.models.champion.ranker import case_weights, train_ranker, training_rows
from workbench.models.champion.trees import MAX_BINS, quantised


def blocks(seed: int = 0, cases: int = 400, per_case: int = 30):
    """Two validation windows' (features, labels, case of each row), about one row in ten a positive."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(2):
        n = cases * per_case
        features = rng.normal(size=(n, len(FEATURES))).astype(np.float32)
        features[:, 3] = rng.integers(0, 4, n)  # a column of few values, as history_count
        labels = features[:, 0] + 0.5 * features[:, 1] + rng.normal(size=n) > 2.0
        out.append((features, labels, np.repeat(np.arange(cases), per_case)))
    return out


def test_the_training_rows_are_capped_and_keep_every_positive():
    labels = np.zeros(10_000, dtype=bool)
    labels[::37] = True
    keep = training_rows(labels, 2_000, seed=0)
    assert keep.sum() == 2_000
    assert keep[labels].all()
    np.testing.assert_array_equal(keep, training_rows(labels, 2_000, seed=0))
    assert not np.array_equal(keep, training_rows(labels, 2_000, seed=1))
    # under the limit: every row
    assert training_rows(labels, 20_000, seed=0).all()


def test_positives_past_half_the_limit_leave_the_other_half_to_negatives():
    """A product page's truth is the rest of its basket: its positives alone can pass the limit,
    and a ranker needs negatives to rank."""
    labels = np.zeros(10_000, dtype=bool)
    labels[:6_000] = True
    keep = training_rows(labels, 2_000, seed=0)
    assert keep.sum() == 2_000
    assert keep[labels].sum() == 1_000 and keep[~labels].sum() == 1_000
    np.testing.assert_array_equal(keep, training_rows(labels, 2_000, seed=0))
    # too few negatives to fill their half: positives take the rest
    labels[:9_500] = True
    keep = training_rows(labels, 2_000, seed=0)
    assert keep[~labels].all() and keep[labels].sum() == 1_500


def test_a_ranker_of_a_positive_heavy_page_still_ranks():
    """Positives many times the row limit (a product page of big baskets over two windows): the
    kept rows still hold negatives enough to learn from. Kept whole, the positives left one
    negative, and this ranker's AUC was 0.73."""
    rng = np.random.default_rng(3)
    n = 30_000
    features = rng.normal(size=(n, len(FEATURES))).astype(np.float32)
    labels = features[:, 0] + rng.normal(scale=0.5, size=n) > -1.0  # about four rows in five
    params = Champion(max_training_rows=5_000, ranker_iterations=20).params
    assert labels.sum() > params["max_training_rows"]
    ranker = train_ranker([(features, labels, np.arange(n) // 10)], params, "product")
    probe = rng.normal(size=(4_000, len(FEATURES))).astype(np.float32)
    truth = probe[:, 0] + rng.normal(scale=0.5, size=len(probe)) > -1.0
    assert roc_auc_score(truth, ranker.predict_proba(probe)[:, 1]) > 0.85


def test_a_ranker_learns_from_at_most_max_training_rows():
    params = Champion(max_training_rows=5_000, ranker_iterations=5).params
    data = blocks()
    positives = int(sum(b[1].sum() for b in data))
    assert 100 < positives < 5_000
    ranker = train_ranker(data, params, "basket")
    assert ranker.n_rows_ == 5_000
    assert train_ranker(data, {**params, "max_training_rows": 10**9}, "basket").n_rows_ == sum(len(b[1]) for b in data)


def test_the_product_page_learns_from_its_own_row_budget_and_the_other_pages_from_the_common_one():
    params = Champion(max_training_rows=5_000, product_training_rows=8_000, ranker_iterations=5, product_ranker_iterations=5).params
    data = blocks()
    assert train_ranker(data, params, "product").n_rows_ == 8_000
    assert train_ranker(data, params, "basket").n_rows_ == 5_000
    assert train_ranker(data, {**params, "product_training_rows": None}, "product").n_rows_ == 5_000


def test_the_same_seed_gives_the_same_trees():
    params = Champion(max_training_rows=6_000, ranker_iterations=8).params
    probe = np.random.default_rng(5).normal(size=(500, len(FEATURES))).astype(np.float32)
    first = train_ranker(blocks(), params, "basket").predict_proba(probe)
    np.testing.assert_array_equal(first, train_ranker(blocks(), params, "basket").predict_proba(probe))
    other_seed = train_ranker(blocks(), {**params, "seed": 1}, "basket").predict_proba(probe)
    assert not np.array_equal(first, other_seed)


def test_quantised_features_fall_in_the_bins_scoring_finds_for_the_raw_ones():
    """The trees learn from quantised values and score raw ones: each raw value must land in the bin
    its quantised value trained in, so a ranker answers the same for either."""
    rng = np.random.default_rng(1)
    n = 20_000
    raw = np.c_[rng.normal(size=n), rng.exponential(size=n), rng.integers(0, 5, n), np.round(rng.normal(size=n), 2)].astype(np.float32)
    labels = raw[:, 0] + raw[:, 1] + rng.normal(size=n) > 1.5
    weights = rng.uniform(0.5, 2.0, n)
    binned = quantised(raw, weights)
    distinct = [len(np.unique(binned[:, j])) for j in range(raw.shape[1])]
    assert MAX_BINS // 2 < min(distinct[0], distinct[1], distinct[3]) and max(distinct) <= MAX_BINS
    assert distinct[2] == 5 and len(np.unique(raw[:, 3])) > MAX_BINS
    np.testing.assert_array_equal(binned[:, 2], raw[:, 2])  # few distinct values: untouched
    model = HistGradientBoostingClassifier(max_iter=20, early_stopping=False, random_state=0).fit(binned, labels, sample_weight=weights)
    np.testing.assert_array_equal(model.predict_proba(raw), model.predict_proba(binned))
    # and the raw values' own bins are the quantised ones'
    np.testing.assert_array_equal(model._bin_mapper.transform(raw.astype(np.float64)), model._bin_mapper.transform(binned))


def test_a_value_most_rows_share_keeps_a_bin_of_its_own():
    """A signal is 0 on most candidates: a small but present signal must not be binned with the 0s."""
    rng = np.random.default_rng(2)
    signal = np.where(rng.random(50_000) < 0.7, 0.0, rng.random(50_000) ** 3).astype(np.float32)
    binned = quantised(signal[:, None], None)[:, 0]
    assert len(np.unique(binned)) <= MAX_BINS < len(np.unique(signal))
    np.testing.assert_array_equal(binned == 0, signal == 0)


def test_the_fit_learns_the_same_on_any_number_of_threads():
    from helpers import tiny_interactions

    from workbench.models import TrainingData

    data = TrainingData.from_interactions(tiny_interactions(seed=3, n_customers=25, n_products=30, n_baskets=300, days=90))
    fast = {"validation_days": 20, "max_tuning_cases": 150, "ranker_iterations": 10, "product_ranker_iterations": 10}
    one, two = Champion(**fast, fit_threads=1).fit(data), Champion(**fast, fit_threads=2).fit(data)
    assert one.rankers and one.rankers.keys() == two.rankers.keys()
    assert one.weights == two.weights and one.tuning_report == two.tuning_report
    probe = np.random.default_rng(0).random((64, len(FEATURES))).astype(np.float32)
    for page in one.rankers:
        np.testing.assert_array_equal(one.rankers[page].predict_proba(probe), two.rankers[page].predict_proba(probe))
    # the state fitted beside the tuning (two threads) scores as the one fitted after it (one)
    requests = [Request("customer", "C001"), Request("basket", "C002", ("P001", "P002")), Request("product", None, ("P003",))]
    np.testing.assert_array_equal(one.score(requests), two.score(requests))


def test_a_positive_weighs_what_a_hit_is_worth_in_its_page_metric():
    # case 0: one true item; case 1: four; case 2: twenty (only ten count in NDCG@10's ideal)
    sizes = [1, 4, 20]
    groups = np.concatenate([np.full(n + 5, case) for case, n in enumerate(sizes)])
    labels = np.concatenate([np.r_[np.ones(n, bool), np.zeros(5, bool)] for n in sizes])
    true_candidates = np.bincount(groups[labels])
    hr = case_weights(labels, groups, true_candidates, "hr")
    ndcg = case_weights(labels, groups, true_candidates, "ndcg")
    for weights in (hr, ndcg):
        assert (weights[~labels] == 1).all()  # negatives as they are
        # positives against negatives as before: only how the cases share their weight differs
        assert np.isclose(weights[labels].sum(), hr[labels].sum())
    # HR: every case the same in all, whatever its true items
    assert np.allclose(np.bincount(groups[labels], hr[labels]), hr[labels].sum() / 3)
    # NDCG: one hit in a case of many true items is worth less than in a case of one, but not 1/20 of it
    per_hit = {case: ndcg[labels & (groups == case)][0] for case in range(3)}
    ideal = np.cumsum(1 / np.log2(np.arange(2, 12)))
    assert np.isclose(per_hit[0] / per_hit[1], ideal[3])
    assert np.isclose(per_hit[0] / per_hit[2], ideal[9])
    assert per_hit[2] > per_hit[0] / 20


def test_a_customer_page_ranker_learns_with_ndcg_weights_and_a_basket_page_ranker_with_hr_weights():
    made = blocks()
    params = {**Champion().params, "max_training_rows": 100_000}
    by_metric = {page: train_ranker(made, params, page) for page in ("customer", "basket")}
    by_case = {page: train_ranker(made, {**params, "balance_cases": True}, page) for page in ("customer", "basket")}
    features = np.concatenate([b[0] for b in made])[:500].astype(np.float64)
    # the basket page's weights are the earlier ones (a case counts once): the same trees
    np.testing.assert_array_equal(by_metric["basket"].predict_proba(features), by_case["basket"].predict_proba(features))
    # the customer page's are not
    assert not np.array_equal(by_metric["customer"].predict_proba(features), by_case["customer"].predict_proba(features))
