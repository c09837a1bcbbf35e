"""Item-to-item models: a similarity between products, and scores = what the request holds @ similarity.

One scoring path serves all three POS pages: the request's "affinity" row holds the viewed product,
the basket's items or the customer's (recency-weighted) history and wish list; multiplying by the
item-item matrix gives every product's score in one sparse-dense product per batch.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from workbench.models.base import Recommender, Request
from workbench.models.data import TrainingData


def _row_max_normalise(matrix: sp.csr_matrix) -> sp.csr_matrix:
    """Scale each row to a maximum of 1, so a long history does not drown a short basket."""
    if matrix.nnz == 0:  # an anonymous customer's history: nothing to scale
        return matrix.tocsr().astype(np.float32, copy=False)
    matrix = matrix.tocsr().astype(np.float32)  # a copy: the caller's matrix stays as it was
    lengths = np.diff(matrix.indptr)
    peaks = np.zeros(matrix.shape[0], dtype=np.float32)
    nonempty = lengths > 0
    peaks[nonempty] = np.maximum.reduceat(matrix.data, matrix.indptr[:-1][nonempty]) if matrix.nnz else 0
    peaks[peaks == 0] = 1.0
    # scaled in place: a diagonal-matrix product costs more in scipy overhead than the work on a POS request
    matrix.data *= np.repeat((1.0 / peaks).astype(np.float32), lengths)
    return matrix


class ItemToItem(Recommender):
    """Base of SAR, ItemKNN and EASE. Subclasses build `self.similarity` (items x items; sparse or
    dense) in `_similarity`. Params every subclass has: `half_life_days` (recency weight of the
    customer's history), `history_weight` (how much the attached customer's history counts next to
    the basket or the viewed product), `wish_list_weight`."""

    # EASE was trained on presence, not counts: feed it presence
    binary_history = False

    def _fit(self, data: TrainingData) -> None:
        self.similarity = self._similarity(data)
        if sp.issparse(self.similarity) and self.similarity.nnz > 0.05 * data.n_items**2:
            # past a few percent filled, a dense matrix multiplies faster than a sparse one
            self.similarity = self.similarity.toarray()
        history = data.customer_items(self.params.get("half_life_days"))
        if self.binary_history and not self.params.get("half_life_days"):
            history.data[:] = 1.0
        self.affinity_history = _row_max_normalise(history)
        self._cache: dict = {}

    def _similarity(self, data: TrainingData):
        raise NotImplementedError

    def affinity(self, requests: list[Request]) -> sp.csr_matrix:
        """requests x items: what each request says about the shopper's taste."""
        inputs = self.input_items(requests)
        history = self.histories(requests, self.affinity_history)
        is_customer_page = np.array([r.scenario == "customer" for r in requests])
        # the customer page is about the history; the wish list is a softer extra hint
        input_weight = np.where(is_customer_page, self.params.get("wish_list_weight", 1.0), 1.0)
        history_weight = np.where(is_customer_page, 1.0, self.params.get("history_weight", 0.0))
        return (sp.diags(input_weight.astype(np.float32)) @ inputs + sp.diags(history_weight.astype(np.float32)) @ history).tocsr()

    def score(self, requests: list[Request]) -> np.ndarray:
        if not len(requests):
            return np.zeros((0, self.n_items), np.float32)
        affinity = self.affinity(requests)
        scores = affinity @ self.similarity
        scores = scores.toarray() if sp.issparse(scores) else np.asarray(scores)
        # kept for explain(), which recommend() calls right after on the same requests
        self._cache = {request: affinity[r] for r, request in enumerate(requests)}
        return scores.astype(np.float32, copy=False)

    def contributions(self, affinity_row: sp.csr_matrix, items: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(inputs, shares): for each item, the input item contributing most to its score."""
        inputs, weights = affinity_row.indices, affinity_row.data
        if len(inputs) == 0:
            return np.full(len(items), -1), np.zeros(len(items))
        block = self.similarity[inputs][:, items] if sp.issparse(self.similarity) else self.similarity[np.ix_(inputs, items)]
        block = (block.toarray() if sp.issparse(block) else block) * weights[:, None]
        best = block.argmax(axis=0)
        return inputs[best], block[best, np.arange(len(items))]

    def explain(self, request, items, scores_row):
        row = self._cache.get(request)
        if row is None:
            row = self.affinity([request])[0]
        sources, shares = self.contributions(row, items)
        reasons = []
        for item, source, share in zip(items, sources, shares):
            if source < 0 or share <= 0:
                reasons.append("popular with shoppers like you")
            elif source == item:
                reasons.append("you bought this before")
            else:
                reasons.append(f"bought together with {self.item_label(source)}")
        return reasons


def cooccurrence(data: TrainingData, level: str, half_life_days: float | None, support: float) -> sp.csr_matrix:
    """items x items: baskets (level "basket") or customers (level "customer") holding both products,
    recent ones counting more where a half-life is given; pairs seen together fewer than `support`
    times are dropped as noise."""
    if level == "basket":
        weighted, binary = data.basket_items(half_life_days), data.basket_items(None)
    elif level == "customer":
        binary = data.customer_items(None)
        binary.data[:] = 1.0
        weighted = binary
        if half_life_days:
            # a customer counts fully while still buying the product, less once it is long ago
            weighted = data.customer_items(half_life_days)
            weighted.data = np.minimum(weighted.data, 1.0)
    else:
        raise ValueError(f"level must be 'basket' or 'customer', not {level!r}")
    counts = (binary.T @ binary).tocsr()
    matrix = (weighted.T @ weighted).tocsr() if weighted is not binary else counts.copy()
    if support > 1:
        matrix = matrix.multiply(counts >= support).tocsr()
    matrix.eliminate_zeros()
    return matrix.astype(np.float32)


class SAR(ItemToItem):
    """Smart Adaptive Recommendations (Microsoft's SAR): co-occurrence of products in the same
    basket (or by the same customer), turned into a similarity (jaccard, lift or raw count)."""

    name = "sar"

    def __init__(
        self,
        level: str = "basket",
        similarity: str = "jaccard",
        support: float = 1,
        half_life_days: float | None = 30.0,
        cooccurrence_half_life_days: float | None = None,
        history_weight: float = 0.0,
        wish_list_weight: float = 1.0,
    ):
        if similarity not in ("jaccard", "lift", "count"):
            raise ValueError(f"similarity must be jaccard, lift or count, not {similarity!r}")
        super().__init__(
            level=level,
            similarity=similarity,
            support=support,
            half_life_days=half_life_days,
            cooccurrence_half_life_days=cooccurrence_half_life_days,
            history_weight=history_weight,
            wish_list_weight=wish_list_weight,
        )

    def _similarity(self, data: TrainingData) -> sp.csr_matrix:
        p = self.params
        counts = cooccurrence(data, p["level"], p["cooccurrence_half_life_days"], p["support"]).tocoo()
        diagonal = counts.diagonal()
        rows, cols, both = counts.row, counts.col, counts.data
        if p["similarity"] == "jaccard":
            values = both / (diagonal[rows] + diagonal[cols] - both)
        elif p["similarity"] == "lift":
            values = both / (diagonal[rows] * diagonal[cols])
        else:
            values = both
        return sp.csr_matrix((values.astype(np.float32), (rows, cols)), shape=counts.shape)


class ItemKNN(ItemToItem):
    """Cosine similarity between products' buyer vectors, keeping each product's `neighbours`
    closest products (the classic item-based collaborative filter)."""

    name = "item_knn"

    def __init__(
        self,
        neighbours: int = 20,
        matrix: str = "customer",
        half_life_days: float | None = None,
        history_weight: float = 0.0,
        wish_list_weight: float = 1.0,
    ):
        super().__init__(
            neighbours=neighbours,
            matrix=matrix,
            half_life_days=half_life_days,
            history_weight=history_weight,
            wish_list_weight=wish_list_weight,
        )

    def _similarity(self, data: TrainingData) -> sp.csr_matrix:
        if self.params["matrix"] == "basket":
            users = data.basket_items(None)
        else:
            users = data.customer_items(None)
        norms = np.sqrt(np.asarray(users.multiply(users).sum(axis=0)).ravel())
        norms[norms == 0] = 1.0
        normalised = (users @ sp.diags(1.0 / norms)).tocsc()
        similarity = (normalised.T @ normalised).tocsr().astype(np.float32)
        return top_k_per_row(similarity, self.params["neighbours"])


def top_k_per_row(matrix: sp.csr_matrix, k: int) -> sp.csr_matrix:
    """Keep the k largest entries of each row (ties by column, for determinism)."""
    matrix = matrix.tocsr()
    matrix.sort_indices()
    rows, cols, values = [], [], []
    for i in range(matrix.shape[0]):
        start, end = matrix.indptr[i], matrix.indptr[i + 1]
        if end == start:
            continue
        data, idx = matrix.data[start:end], matrix.indices[start:end]
        keep = np.lexsort((idx, -data))[:k]
        rows.append(np.full(len(keep), i))
        cols.append(idx[keep])
        values.append(data[keep])
    if not rows:
        return sp.csr_matrix(matrix.shape, dtype=np.float32)
    return sp.csr_matrix(
        (np.concatenate(values), (np.concatenate(rows), np.concatenate(cols))), shape=matrix.shape, dtype=np.float32
    )


class EASE(ItemToItem):
    """EASE (Steck, 2019): the closed-form linear item-item model B = I - P / diag(P), P = (X'X +
    lambda I)^-1, with a zero diagonal. X is customers x items or baskets x items (`matrix`)."""

    name = "ease"
    binary_history = True

    def __init__(
        self,
        lambda_: float = 250.0,
        matrix: str = "customer",
        half_life_days: float | None = None,
        history_weight: float = 0.0,
        wish_list_weight: float = 1.0,
        **aliases,
    ):
        # `lambda` is a Python keyword: accept it spelt plainly through make_model(..., **{"lambda": 50})
        lambda_ = float(aliases.pop("lambda", lambda_))
        if aliases:
            raise TypeError(f"unknown parameter(s) {sorted(aliases)}")
        super().__init__(
            lambda_=lambda_,
            matrix=matrix,
            half_life_days=half_life_days,
            history_weight=history_weight,
            wish_list_weight=wish_list_weight,
        )

    def _similarity(self, data: TrainingData) -> np.ndarray:
        if self.params["matrix"] == "basket":
            users = data.basket_items(None)
        elif self.params["matrix"] == "customer":
            users = data.customer_items(None)
            users.data[:] = 1.0
        else:
            raise ValueError(f"matrix must be 'customer' or 'basket', not {self.params['matrix']!r}")
        return ease_weights(users, self.params["lambda_"])


def ease_weights(users: sp.csr_matrix, lambda_: float) -> np.ndarray:
    """The EASE item-item weights, in float32 (a 4,000-item catalog inverts in about a second)."""
    gram = (users.T @ users).toarray().astype(np.float32)
    gram[np.diag_indices_from(gram)] += np.float32(lambda_)
    precision = _spd_inverse(gram)
    weights = precision / (-np.diag(precision))[None, :]
    weights[np.diag_indices_from(weights)] = 0.0
    return weights.astype(np.float32)


def _spd_inverse(matrix: np.ndarray) -> np.ndarray:
    """The inverse of a symmetric positive definite matrix by Cholesky (about 1.5x faster than LU);
    LU where Cholesky fails (lambda 0 on a singular Gram matrix)."""
    from scipy.linalg import lapack

    if matrix.shape[0] == 0:
        return matrix.copy()
    factor, info = lapack.spotrf(matrix, lower=1, clean=1) if matrix.dtype == np.float32 else lapack.dpotrf(matrix, lower=1, clean=1)
    if info == 0:
        inverse, info = lapack.spotri(factor, lower=1) if matrix.dtype == np.float32 else lapack.dpotri(factor, lower=1)
        if info == 0:
            lower = np.tril(inverse)
            return lower + np.tril(lower, -1).T
    return np.linalg.inv(matrix)
