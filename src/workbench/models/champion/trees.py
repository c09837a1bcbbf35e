"""The champion's re-rankers' trees: grown by LightGBM, scored as frozen arrays.

Why LightGBM grows them: with the same settings (31 leaves, learning rate 0.06, 50 rows a leaf, L2
1.0, the same 255 weighted-quantile bins) it grows them sooner than scikit-learn's
HistGradientBoostingClassifier, every page's headline within its noise on the validation windows of
five datasets and the champion's whole fit 0.61-0.95x as long (notebooks/research/reranker_trees;
the figures in the Champion's docstring, `ranker_trees`).

Why not LightGBM's own predict on the POS: a `Booster` shared by threads writes its prediction
settings into the model on every call (LightGBM#6142, open), and the served model keeps no
mutable state after `fit`. At fit the trees are copied into scikit-learn's tree-predictor records
(one array per tree, the same split rule: `x <= threshold` goes left, a missing value goes where
LightGBM sends it), which its compiled predictor walks without writing anything but its output; the
raw score sums the trees in LightGBM's order, so it equals LightGBM's own to the bit (a test checks
both). Where those records are not available (another scikit-learn), the Booster rebuilt from its
text scores instead.
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view
from scipy.special import expit
from threadpoolctl import threadpool_limits


# what can grow them (the champion's `ranker_trees`): LightGBM, or scikit-learn's
# HistGradientBoostingClassifier (ranker.train_ranker)
RANKER_TREES = ("lightgbm", "sklearn")
# what the trees learn (`ranker_objective`): pointwise, or one of LightGBM's ranking objectives
RANKER_OBJECTIVES = ("binary", "lambdarank", "rank_xendcg")
# the trees' settings, whichever library grows them (ranker.train_ranker's scikit-learn path too)
TREES = {"learning_rate": 0.06, "leaves": 31, "rows_per_leaf": 50, "l2": 1.0}
# the re-ranker's bins per feature (sklearn's default and most), of either library
MAX_BINS = 255


def quantised(features: np.ndarray, weights: np.ndarray | None, max_bins: int = MAX_BINS) -> np.ndarray:
    """`features` (float64) with each column of more than `max_bins` distinct values moved onto at
    most `max_bins` of its own values: the column is cut at its (weighted) quantiles into
    `max_bins // 2` groups of values, and each value goes to its group's smallest or largest value,
    whichever is nearer. A value shared by many rows (0 of a signal, -1 of "never bought") is a
    group of its own, apart from its neighbours, as sklearn's quantile bins keep it.

    The trees see the same bins at training and at scoring: sklearn bins a column of few distinct
    values at the midpoints between them, and each value here goes to the representative whose bin
    holds it there (ties to the lower, as sklearn's `x <= threshold`; LightGBM's edges are the same
    midpoints, `grow_trees`). Why: with sample weights and under 200k rows, sklearn 1.9.1 finds a
    column's bin edges with one weighted percentile per edge (a sort of the column each), about half
    of the champion's whole fit on Online Retail; this is one sort per column (scikit-learn#34248
    does the same inside sklearn, after 1.9.1). LightGBM bins without the weights (`grow_trees`)."""
    out = np.array(features, dtype=np.float64)
    groups = max(max_bins // 2, 1)
    levels = np.arange(1, groups) / groups
    for j in range(out.shape[1]):
        column = out[:, j]
        known = ~np.isnan(column)
        values = column[known]
        order = np.argsort(values, kind="stable")
        ordered = values[order]
        if len(ordered) == 0 or int(np.count_nonzero(ordered[1:] != ordered[:-1])) + 1 <= max_bins:
            continue
        mass = np.cumsum(np.ones(len(ordered)) if weights is None else weights[known][order])
        cuts = np.unique(ordered[np.minimum(np.searchsorted(mass, levels * mass[-1]), len(ordered) - 1)])
        group = np.searchsorted(cuts, ordered, side="left")
        firsts = np.r_[0, np.flatnonzero(np.diff(group)) + 1]
        representatives = np.unique(np.r_[ordered[firsts], ordered[np.r_[firsts[1:], len(ordered)] - 1]])
        # sklearn's own arithmetic for the edges between distinct values, so its bins are these
        edges = sliding_window_view(representatives, 2).mean(axis=1)
        column[known] = representatives[np.searchsorted(edges, values, side="left")]
    return out


def grow_trees(features: np.ndarray, labels: np.ndarray, weights: np.ndarray | None, *, iterations: int, seed: int,
               objective: str = "binary", case_sizes: np.ndarray | None = None) -> "BoostedTrees":
    """A binary classifier (is this candidate in the truth?), or a ranker of each case's candidates
    (`objective`), of `iterations` trees, on one thread (the same sums in the same order: the same
    trees on a machine of any number of cores), from `quantised` features: each distinct value its
    own bin (`min_data_in_bin` 1), so that the bins are the weighted quantiles scikit-learn's trees
    learnt from too. On LightGBM's own bins (unweighted, at least 3 rows each), in a first try, the
    customer page's NDCG@10 fell on all five datasets' validation windows: those bins ignore the case
    weights, which on that page weigh a few rows most.

    `objective`: one of RANKER_OBJECTIVES; a ranking objective learns from rows in case order,
    `case_sizes` rows each, and its raw scores order a case's candidates (their `chance`, the same
    order, is no probability)."""
    import lightgbm

    # the Dataset bins by these, and training checks that it was binned as it would
    binning = {"max_bin": MAX_BINS, "min_data_in_bin": 1, "verbose": -1}
    settings = {
        "objective": objective, "learning_rate": TREES["learning_rate"], "num_leaves": TREES["leaves"],
        "min_data_in_leaf": TREES["rows_per_leaf"], "lambda_l2": TREES["l2"], **binning,
        "num_threads": 1, "deterministic": True, "force_row_wise": True, "seed": int(seed),
    }
    rows = lightgbm.Dataset(np.asarray(features, dtype=np.float64), np.asarray(labels, dtype=np.float64), weight=weights,
                            group=case_sizes, params=binning)
    # LightGBM sets OpenMP's thread count of the calling thread: put back what was there
    with threadpool_limits(1, "openmp"):
        booster = lightgbm.train(settings, rows, num_boost_round=int(iterations))
    return BoostedTrees(booster.model_to_string(), n_features_in_=int(features.shape[1]), max_iter=int(iterations), n_rows_=int(len(labels)))


class BoostedTrees:
    """A fitted re-ranker: `chance(features)` (and scikit-learn's `predict_proba`) of each candidate
    row. Pickles as LightGBM's model text; its tree records are rebuilt on load, never while scoring."""

    def __init__(self, model_text: str, *, n_features_in_: int, max_iter: int, n_rows_: int):
        self.model_text = model_text
        self.n_features_in_, self.max_iter, self.n_rows_ = n_features_in_, max_iter, n_rows_
        self._build()

    def _build(self) -> None:
        import lightgbm

        booster = lightgbm.Booster(model_str=self.model_text)
        self._trees = _tree_predictors(booster.dump_model(), self.n_features_in_)
        # kept only where it scores (no records): the trees are not held twice
        self._booster = booster if self._trees is None else None

    def __getstate__(self):
        return {k: v for k, v in self.__dict__.items() if k not in ("_booster", "_trees")}

    def __setstate__(self, state):
        self.__dict__.update(state)
        self._build()

    def raw_scores(self, features: np.ndarray, threads: int = 1) -> np.ndarray:
        """The trees' summed leaf values of each row (LightGBM's raw score), float64, each tree's rows
        walked on `threads` OpenMP threads (ranker._chance: one for a POS request)."""
        features = np.ascontiguousarray(features, dtype=np.float64)
        if self._trees is None:
            return self._booster.predict(features, raw_score=True, num_threads=threads)
        predictors, no_categories, feature_map = self._trees
        raw = np.zeros(len(features))
        for predictor in predictors:
            raw += predictor.predict(features, no_categories, feature_map, threads)
        return raw

    def chance(self, features: np.ndarray, threads: int = 1) -> np.ndarray:
        return expit(self.raw_scores(features, threads))

    def predict_proba(self, features: np.ndarray) -> np.ndarray:
        chance = self.chance(features)
        return np.column_stack([1.0 - chance, chance])


def _tree_predictors(dumped: dict, n_features: int):
    """(scikit-learn TreePredictors of every tree, and the empty category tables its predictor
    reads), or None where scikit-learn's records are not there or a split is not a plain `<=`."""
    try:
        from sklearn.ensemble._hist_gradient_boosting.common import PREDICTOR_RECORD_DTYPE
        from sklearn.ensemble._hist_gradient_boosting.predictor import TreePredictor
    except ImportError:
        return None
    no_bitsets = np.zeros((0, 8), dtype=np.uint32)
    predictors = []
    for tree in dumped["tree_info"]:
        nodes = []
        if not _records(tree["tree_structure"], nodes, depth=0):
            return None
        records = np.zeros(len(nodes), dtype=PREDICTOR_RECORD_DTYPE)
        for i, node in enumerate(nodes):
            for field, value in node.items():
                records[i][field] = value
        predictors.append(TreePredictor(records, no_bitsets, no_bitsets))
    return predictors, no_bitsets, np.zeros(n_features, dtype=np.uint32)


def _records(node: dict, out: list, depth: int) -> bool:
    """Append `node` and its subtree to `out` (depth first, the node before its children) as
    scikit-learn predictor fields; False where a split is one scikit-learn's predictor cannot take."""
    at = len(out)
    if "leaf_value" in node:
        out.append({"value": node["leaf_value"], "is_leaf": 1, "depth": depth})
        return True
    if node["decision_type"] != "<=" or node["missing_type"] == "Zero":
        return False
    threshold = float(node["threshold"])
    # LightGBM: a missing value goes the default way where the split learnt one ("NaN"); where it
    # did not ("None"), it is read as 0
    missing_left = node["default_left"] if node["missing_type"] == "NaN" else 0.0 <= threshold
    out.append({"feature_idx": node["split_feature"], "num_threshold": threshold, "missing_go_to_left": int(bool(missing_left)), "depth": depth})
    if not _records(node["left_child"], out, depth + 1):
        return False
    out[at]["left"] = at + 1
    out[at]["right"] = len(out)
    return _records(node["right_child"], out, depth + 1)
