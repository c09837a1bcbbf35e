"""The champion's re-rankers' trees (models/champion/trees.py): grown by LightGBM, scored from frozen
records that give LightGBM's own raw scores to the bit, pickled as LightGBM's model text."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

from workbench.models.champion import trees
from workbench.models.champion.model import Champion
from workbench.models.champion.trees import BoostedTrees, grow_trees, quantised


def rows(n: int, seed: int = 0):
    """Features with many zeros and some missing values (a column missing in training, one not), and
    labels that hang on three of them."""
    rng = np.random.default_rng(seed)
    features = rng.random((n, 8))
    features[rng.random(features.shape) < 0.3] = 0.0
    labels = features[:, 0] + features[:, 1] * features[:, 2] + 0.3 * rng.random(n) > 1.0
    features[: n // 4, 3] = np.nan
    return features, labels


def probe(n: int = 2_000):
    rng = np.random.default_rng(9)
    features = rng.random((n, 8))
    features[rng.random(features.shape) < 0.2] = 0.0
    features[rng.random(features.shape) < 0.1] = np.nan  # also in columns that had none in training
    return features


def lightgbm_raw_scores(model: BoostedTrees, features: np.ndarray) -> np.ndarray:
    """LightGBM's own raw scores of the model's trees (a Booster of its text)."""
    import lightgbm

    return lightgbm.Booster(model_str=model.model_text).predict(features, raw_score=True)


def test_the_frozen_trees_score_as_lightgbm_itself_to_the_bit():
    features, labels = rows(5_000)
    weights = np.random.default_rng(1).random(len(labels)) + 0.5
    model = grow_trees(features, labels, weights, iterations=40, seed=0)
    assert model._trees is not None and model._booster is None  # the frozen records score, the trees held once
    np.testing.assert_array_equal(model.raw_scores(probe()), lightgbm_raw_scores(model, probe()))
    chance = model.chance(probe())
    assert ((chance > 0) & (chance < 1)).all()
    np.testing.assert_array_equal(model.predict_proba(probe())[:, 1], chance)
    # an offline batch walks each tree on more threads: the same sums
    np.testing.assert_array_equal(model.raw_scores(probe(), threads=2), model.raw_scores(probe()))


def test_trees_without_a_split_score_their_one_leaf():
    features, labels = rows(500)
    features[:] = 1.0  # nothing to split on
    model = grow_trees(features, labels, None, iterations=5, seed=0)
    np.testing.assert_array_equal(model.raw_scores(probe()), lightgbm_raw_scores(model, probe()))
    assert np.unique(model.raw_scores(probe())).size == 1


def test_the_trees_pickle_as_lightgbm_text_and_score_the_same_after():
    features, labels = rows(3_000)
    model = grow_trees(features, labels, None, iterations=20, seed=0)
    state = model.__getstate__()
    assert set(state) == {"model_text", "n_features_in_", "max_iter", "n_rows_"}
    back = pickle.loads(pickle.dumps(model))
    np.testing.assert_array_equal(back.raw_scores(probe()), model.raw_scores(probe()))
    assert (back.max_iter, back.n_rows_, back.n_features_in_) == (20, 3_000, 8)


def test_without_the_frozen_records_the_booster_scores(monkeypatch):
    """Another scikit-learn whose tree records are not there: LightGBM's own predict, the same scores."""
    features, labels = rows(3_000)
    model = grow_trees(features, labels, None, iterations=20, seed=0)
    monkeypatch.setattr(trees, "_tree_predictors", lambda dumped, n_features: None)
    fallback = pickle.loads(pickle.dumps(model))
    assert fallback._trees is None and fallback._booster is not None
    np.testing.assert_array_equal(fallback.raw_scores(probe()), model.raw_scores(probe()))


def test_the_same_rows_and_seed_grow_the_same_trees():
    features, labels = rows(3_000)
    first = grow_trees(features, labels, None, iterations=20, seed=0)
    assert grow_trees(features, labels, None, iterations=20, seed=0).model_text == first.model_text
    assert isinstance(first, BoostedTrees)


def test_the_champion_names_what_grows_its_trees():
    assert Champion().params["ranker_trees"] == "lightgbm"
    with pytest.raises(ValueError, match="ranker_trees"):
        Champion(ranker_trees="xgboost")


def test_trees_grown_on_quantised_features_score_raw_ones_as_their_bins():
    """The trees learn from `quantised` values and the POS scores raw ones: each raw value falls on
    the side of every split that its quantised value trained on."""
    rng = np.random.default_rng(4)
    raw = rng.exponential(size=(6_000, 3))
    raw[rng.random(raw.shape) < 0.4] = 0.0  # a signal's many zeros
    labels = raw[:, 0] + rng.normal(scale=0.5, size=len(raw)) > 1.0
    weights = np.where(labels, 5.0, 1.0)
    binned = quantised(raw, weights)
    assert all(len(np.unique(binned[:, j])) <= 255 < len(np.unique(raw[:, j])) for j in range(3))
    model = grow_trees(binned, labels, weights, iterations=30, seed=0)
    np.testing.assert_array_equal(model.raw_scores(raw), model.raw_scores(binned))


def test_the_champion_names_what_its_trees_learn():
    params = Champion().params
    assert (params["ranker_objective"], params["new_items_objective"]) == ("binary", "rank_xendcg")
    with pytest.raises(ValueError, match="ranker_objective"):
        Champion(ranker_objective="ndcg")
    with pytest.raises(ValueError, match="new_items_objective"):
        Champion(new_items_objective="pairwise")
    Champion(new_items_objective=None)  # the pages' own


def case_rows(n_cases: int = 400, per_case: int = 12, seed: int = 0):
    """One validation window's rows, cases interleaved (as the tuning's chunks are not), a quarter of
    the cases without a true candidate."""
    rng = np.random.default_rng(seed)
    features, _ = rows(n_cases * per_case, seed)
    cases = rng.permutation(np.repeat(np.arange(n_cases), per_case))
    labels = (features[:, 0] + 0.3 * rng.random(len(cases)) > 0.9) & (cases % 4 != 0)
    return features, labels, cases


def test_a_ranking_objective_learns_from_each_cases_rows_together(monkeypatch):
    """The new-items page's trees learn XE-NDCG from its cases' rows in case order, the cases
    without a true candidate left out and no case weights; the other pages' stay pointwise; and the
    frozen records score a ranking model as LightGBM does."""
    from workbench.models.champion import ranker

    features, labels, cases = case_rows()
    params = {**Champion().params, "ranker_iterations": 15}
    grown = []
    monkeypatch.setattr(ranker, "grow_trees", lambda *args, **kwargs: grown.append((args, kwargs)) or grow_trees(*args, **kwargs))
    model = ranker.train_ranker([(features, labels, cases)], params, "customer_new_items")
    (taught, taught_labels, weights), settings = grown[-1]
    assert settings["objective"] == "rank_xendcg" and "objective=rank_xendcg" in model.model_text and weights is None
    kept_cases = np.unique(cases[labels])
    sizes = settings["case_sizes"]
    assert len(sizes) == len(kept_cases) and sizes.sum() == len(taught_labels) == np.isin(cases, kept_cases).sum()
    # each case's rows in one run, each with a true candidate
    starts = np.r_[0, np.cumsum(sizes)[:-1]]
    assert all(taught_labels[s : s + n].any() for s, n in zip(starts, sizes))
    np.testing.assert_array_equal(model.raw_scores(probe()), lightgbm_raw_scores(model, probe()))
    # XE-NDCG draws random numbers: seeded, the same rows grow the same trees
    assert ranker.train_ranker([(features, labels, cases)], params, "customer_new_items").model_text == model.model_text
    pointwise = ranker.train_ranker([(features, labels, cases)], params, "basket")
    (_, _, weights), settings = grown[-1]
    assert settings.get("objective", "binary") == "binary" and settings.get("case_sizes") is None and weights is not None
    assert "objective=binary" in pointwise.model_text
    # scikit-learn's trees learn binary, whatever the objective
    sklearn_trees = ranker.train_ranker([(features, labels, cases)], {**params, "ranker_trees": "sklearn"}, "customer_new_items")
    assert type(sklearn_trees).__name__ == "HistGradientBoostingClassifier"
