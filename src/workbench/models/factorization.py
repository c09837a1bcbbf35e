"""Matrix factorisation with the `implicit` library (CPU): ALS and BPR.

Customers get the factors learnt for them. A basket, a viewed product or an unknown customer is
"folded in": ALS solves the customer's least-squares step for that basket against the fixed item
factors (recalculate_user); BPR, which has no such step, averages the items' factors.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from workbench.models.base import Recommender, Request, on_customer_page
from workbench.models.data import TrainingData
from workbench.models.item_to_item import _row_max_normalise
from workbench.models.threads import one_blas_thread


def _bm25(matrix: sp.csr_matrix, k1: float = 100.0, b: float = 0.8) -> sp.csr_matrix:
    from implicit.nearest_neighbours import bm25_weight

    return bm25_weight(matrix, K1=k1, B=b).tocsr().astype(np.float32)


class _Factorization(Recommender):
    def _user_items(self, data: TrainingData) -> sp.csr_matrix:
        """customers x items (counts of baskets): the matrix factorised; baskets x items for a retailer
        without loyalty members (`TrainingData.shopper_items`: requests are folded in either way)."""
        matrix = data.shopper_items(self.params.get("half_life_days"))
        if self.params.get("bm25"):
            matrix = _bm25(matrix)
        return matrix

    def _fit(self, data: TrainingData) -> None:
        # implicit runs its own threads; BLAS must not oversubscribe (implicit checks that when the
        # model is made, and warns where it is not so)
        with one_blas_thread():
            model = self._make()
            model.fit(self._user_items(data), show_progress=False)
        self.model = model
        self.item_factors = np.asarray(model.item_factors, dtype=np.float32)
        self.user_factors = np.asarray(model.user_factors, dtype=np.float32)
        self.affinity_history = _row_max_normalise(data.customer_items(None))

    def _fold_in(self, affinity: sp.csr_matrix) -> np.ndarray:
        raise NotImplementedError

    def score(self, requests: list[Request]) -> np.ndarray:
        if not len(requests):
            return np.zeros((0, self.n_items), np.float32)
        customers = self.customer_rows(requests)
        inputs = self.input_items(requests)
        history = self.histories(requests, self.affinity_history)
        weight = float(self.params.get("history_weight", 0.5))
        is_customer_page = on_customer_page(requests)
        # the customer page of a known customer without a wish list uses the learnt factors;
        # everything else (baskets, viewed products, wish lists) is folded in
        learnt = is_customer_page & (customers >= 0) & (np.diff(inputs.indptr) == 0)
        users = np.zeros((len(requests), self.item_factors.shape[1]), dtype=np.float32)
        users[learnt] = self.user_factors[customers[learnt]]
        fold = np.flatnonzero(~learnt)
        if len(fold):
            history_weight = np.where(is_customer_page[fold], 1.0, weight).astype(np.float32)
            affinity = (inputs[fold] + sp.diags(history_weight) @ history[fold]).tocsr()
            nonempty = np.diff(affinity.indptr) > 0
            if nonempty.any():
                users[fold[nonempty]] = self._fold_in(affinity[nonempty])
        scores = users @ self.item_factors.T
        # no input at all: no signal (the POS shows best sellers instead)
        scores[~(learnt | (np.diff((inputs + history).tocsr().indptr) > 0))] = 0.0
        return scores.astype(np.float32)


class ALS(_Factorization):
    """Implicit-feedback ALS (Hu, Koren & Volinsky), optionally on BM25-weighted counts."""

    name = "als"

    def __init__(
        self,
        factors: int = 64,
        iterations: int = 15,
        regularization: float = 0.05,
        alpha: float = 1.0,
        bm25: bool = True,
        half_life_days: float | None = None,
        history_weight: float = 0.5,
        seed: int = 0,
        threads: int = 1,
    ):
        super().__init__(
            factors=factors,
            iterations=iterations,
            regularization=regularization,
            alpha=alpha,
            bm25=bm25,
            half_life_days=half_life_days,
            history_weight=history_weight,
            seed=seed,
            threads=threads,
        )

    def _make(self):
        from implicit.cpu.als import AlternatingLeastSquares

        p = self.params
        return AlternatingLeastSquares(
            factors=p["factors"],
            iterations=p["iterations"],
            regularization=p["regularization"],
            alpha=p["alpha"],
            random_state=p["seed"],
            num_threads=p["threads"],
        )

    def _fit(self, data: TrainingData) -> None:
        super()._fit(data)
        # implicit caches the items' Gram matrix on the model the first time a customer is folded in:
        # made here, so that scoring only reads it (the served model is shared by threads)
        self.model.YtY

    def __setstate__(self, state: dict) -> None:
        super().__setstate__(state)
        # an ALS pickled before its fit filled that cache (a registered model of before 7 December
        # 2026) fills it here, once at load, not in its first scoring
        if getattr(self, "model", None) is not None:
            self.model.YtY

    def _fold_in(self, affinity: sp.csr_matrix) -> np.ndarray:
        with one_blas_thread():
            return np.asarray(self.model.recalculate_user(np.arange(affinity.shape[0]), affinity), dtype=np.float32)


class BPR(_Factorization):
    """Bayesian Personalised Ranking (Rendle et al.), sampled pairwise ranking on purchases."""

    name = "bpr"

    def __init__(
        self,
        factors: int = 64,
        iterations: int = 100,
        learning_rate: float = 0.01,
        regularization: float = 0.01,
        bm25: bool = False,
        half_life_days: float | None = None,
        history_weight: float = 0.5,
        seed: int = 0,
        threads: int = 1,
    ):
        super().__init__(
            factors=factors,
            iterations=iterations,
            learning_rate=learning_rate,
            regularization=regularization,
            bm25=bm25,
            half_life_days=half_life_days,
            history_weight=history_weight,
            seed=seed,
            threads=threads,
        )

    def _make(self):
        from implicit.cpu.bpr import BayesianPersonalizedRanking

        p = self.params
        return BayesianPersonalizedRanking(
            factors=p["factors"],
            iterations=p["iterations"],
            learning_rate=p["learning_rate"],
            regularization=p["regularization"],
            random_state=p["seed"],
            num_threads=p["threads"],
        )

    def _fold_in(self, affinity: sp.csr_matrix) -> np.ndarray:
        # weighted mean of the items' factors; the last factor is BPR's item bias, whose user side is 1
        totals = np.asarray(affinity.sum(axis=1)).ravel()
        users = (sp.diags(1.0 / totals) @ affinity) @ self.item_factors
        users[:, -1] = 1.0
        return np.asarray(users, dtype=np.float32)
