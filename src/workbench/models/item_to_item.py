"""Item-to-item models: a similarity between products, and scores = what the request holds @ similarity.

One scoring path serves all three POS pages: the request's "affinity" row holds the viewed product,
the basket's items or the customer's (recency-weighted) history and wish list; multiplying by the
item-item matrix gives every product's score in one sparse-dense product per batch.

Memory grows with the data, never with the catalog squared: item-item matrices are built a chunk of
item rows at a time from the sparse purchase matrix (each chunk's co-occurrences kept to a bounded
budget), and on catalogs larger than `dense_item_limit` only each item's top `neighbours` survive.
Below that limit SAR and EASE stay exact (EASE dense and closed-form: a 4,000-item catalog inverts in
about a second); above it EASE becomes the same ridge regression per item restricted to the item's
`neighbours` most co-purchased items (see `sparse_ease_weights`).
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from workbench.models.base import Recommender, Request, freeze, on_customer_page
from workbench.models.data import TrainingData

# Catalogs up to this size keep exact item-item models (dense EASE: ~16 bytes x items^2 while fitting,
# 1 GB at 8,000 items); larger ones keep each item's top neighbours, sparse. A parameter of every model.
DENSE_ITEM_LIMIT = 8_000
# co-purchased products SAR keeps per product on a large catalog (its basket and customer pages sum
# many small similarities: on Online Retail 100 lost 4-12%, 1,000 1-4%)
LARGE_CATALOG_NEIGHBOURS = 500
# regressors of each product in the sparse EASE of a large catalog
EASE_NEIGHBOURS = 64
# co-occurrence entries one chunk of item rows may produce before it is pruned (~12 bytes each)
CHUNK_ENTRIES = 8_000_000
# requests scored per block: a block's sparse product and dense rows stay small
SCORE_BLOCK = 256


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
    """Base of SAR, ItemKNN and EASE. Subclasses build `self.similarity` (items x items; sparse, or
    dense on catalogs up to `dense_item_limit`) in `_similarity`. Params every subclass has:
    `half_life_days` (recency weight of the customer's history), `history_weight` (how much the
    attached customer's history counts next to the basket or the viewed product), `wish_list_weight`,
    `dense_item_limit` (the largest catalog kept exact and, where filled enough, dense)."""

    # EASE was trained on presence, not counts: feed it presence
    binary_history = False

    def _fit(self, data: TrainingData) -> None:
        similarity = self._similarity(data)
        exact = data.n_items <= self.params.get("dense_item_limit", DENSE_ITEM_LIMIT)
        if exact and sp.issparse(similarity) and similarity.nnz > 0.05 * data.n_items**2:
            # past a few percent filled, a dense matrix multiplies faster than a sparse one
            similarity = similarity.toarray()
        self.similarity = similarity
        history = data.customer_items(self.params.get("half_life_days"))
        if self.binary_history and not self.params.get("half_life_days"):
            history.data[:] = 1.0
        self.affinity_history = _row_max_normalise(history)
        freeze(self.similarity, self.affinity_history)  # scoring only reads them

    def _similarity(self, data: TrainingData):
        raise NotImplementedError

    def _neighbours(self, n_items: int, large_default: int) -> int | None:
        """How many neighbours each item keeps: `neighbours` where set, else all of them on a
        catalog that fits `dense_item_limit` and `large_default` on a larger one."""
        neighbours = self.params.get("neighbours")
        if neighbours is not None:
            return int(neighbours)
        return None if n_items <= self.params.get("dense_item_limit", DENSE_ITEM_LIMIT) else large_default

    def affinity(self, requests: list[Request]) -> sp.csr_matrix:
        """requests x items: what each request says about the shopper's taste."""
        inputs = self.input_items(requests)
        history = self.histories(requests, self.affinity_history)
        is_customer_page = on_customer_page(requests)
        # the customer page is about the history; the wish list is a softer extra hint
        input_weight = np.where(is_customer_page, self.params.get("wish_list_weight", 1.0), 1.0)
        history_weight = np.where(is_customer_page, 1.0, self.params.get("history_weight", 0.0))
        return (sp.diags(input_weight.astype(np.float32)) @ inputs + sp.diags(history_weight.astype(np.float32)) @ history).tocsr()

    def score(self, requests: list[Request]) -> np.ndarray:
        if not len(requests):
            return np.zeros((0, self.n_items), np.float32)
        batch = self.batch(requests)
        affinity = self.affinity(batch)
        batch.memo["affinity"] = affinity  # the call's own: explain_in_batch reads it back
        if len(requests) <= SCORE_BLOCK:
            return _dense_rows(affinity @ self.similarity)
        # blocks of requests: the sparse product of a large batch never exists in full
        scores = np.empty((len(requests), self.n_items), dtype=np.float32)
        for start in range(0, len(requests), SCORE_BLOCK):
            scores[start : start + SCORE_BLOCK] = _dense_rows(affinity[start : start + SCORE_BLOCK] @ self.similarity)
        return scores

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
        return self._reasons(self.affinity([request]), items)

    def explain_in_batch(self, batch, r, items, scores_row):
        # the affinity rows of this call's scoring pass, from the call's batch (never from the
        # shared model, so concurrent callers never read each other's rows)
        affinity = batch.memo.get("affinity") if hasattr(batch, "memo") else None
        return self._reasons(affinity[r] if affinity is not None else self.affinity([batch[r]]), items)

    def _reasons(self, affinity_row: sp.csr_matrix, items: np.ndarray) -> list[str]:
        sources, shares = self.contributions(affinity_row, items)
        reasons = []
        for item, source, share in zip(items, sources, shares):
            if source < 0 or share <= 0:
                reasons.append("popular with shoppers like you")
            elif source == item:
                reasons.append("you bought this before")
            else:
                reasons.append(f"bought together with {self.item_label(source)}")
        return reasons


def _dense_rows(scores) -> np.ndarray:
    scores = scores.toarray() if sp.issparse(scores) else np.asarray(scores)
    return scores.astype(np.float32, copy=False)


# -- item-item matrices a chunk of item rows at a time ---------------------------------------------
def _product_work(left_by_item: sp.csr_matrix, right: sp.csr_matrix) -> np.ndarray:
    """Per item row of left.T @ right: an upper bound of its entries (its users' row lengths in
    `right`, summed, at most the number of items)."""
    lengths = np.diff(right.indptr).astype(np.float64)
    rows = np.repeat(np.arange(left_by_item.shape[0]), np.diff(left_by_item.indptr))
    work = np.bincount(rows, weights=lengths[left_by_item.indices], minlength=left_by_item.shape[0])
    return np.minimum(work, right.shape[1]) + 1.0


def _row_ranges(work: np.ndarray, budget: float = CHUNK_ENTRIES):
    """Consecutive (start, end) item ranges whose summed work stays within `budget` (at least one row)."""
    total = np.cumsum(work)
    start = 0
    while start < len(work):
        before = total[start - 1] if start else 0.0
        end = max(int(np.searchsorted(total, before + budget, side="right")), start + 1)
        yield start, min(end, len(work))
        start = end


def item_rows(n_items: int, work: np.ndarray, make_rows, keep: int | None, budget: float = CHUNK_ENTRIES, dtype=np.float32) -> sp.csr_matrix:
    """items x items, built a chunk of rows at a time: `make_rows(start, end)` gives rows start..end
    (CSR, all columns), each chunk cut to its rows' `keep` largest entries (None: all kept), so only
    one chunk's full co-occurrences exist at once."""
    parts = []
    for start, end in _row_ranges(work, budget):
        rows = make_rows(start, end).tocsr()
        parts.append(rows if keep is None else top_k_per_row(rows, keep))
    if not parts:
        return sp.csr_matrix((0, n_items), dtype=dtype)
    return sp.vstack(parts, format="csr").astype(dtype, copy=False)


def _self_products(by_item: sp.csr_matrix) -> np.ndarray:
    """Each item row with itself: the diagonal of by_item @ by_item.T, summed in float32 in user order
    as the sparse product sums it (so the chunks' values match a whole-matrix product bit for bit)."""
    squares = by_item.multiply(by_item).tocsr().astype(np.float32)
    return squares @ np.ones(squares.shape[1], dtype=np.float32)


def _cooccurrence_inputs(data: TrainingData, level: str, half_life_days: float | None):
    """(weighted, binary): users x items for the co-occurrence of `level`."""
    if level == "basket":
        return data.basket_items(half_life_days), data.basket_items(None)
    if level == "customer":
        binary = data.shopper_items(None)
        binary.data[:] = 1.0
        weighted = binary
        if half_life_days:
            # a customer counts fully while still buying the product, less once it is long ago
            weighted = data.shopper_items(half_life_days)
            weighted.data = np.minimum(weighted.data, 1.0)
        return weighted, binary
    raise ValueError(f"level must be 'basket' or 'customer', not {level!r}")


def cooccurrence(data: TrainingData, level: str, half_life_days: float | None, support: float, transform=None, keep: int | None = None) -> sp.csr_matrix:
    """items x items: baskets (level "basket") or customers (level "customer") holding both products,
    recent ones counting more where a half-life is given; pairs seen together fewer than `support`
    times are dropped as noise. `transform(rows, start, diagonal)` turns a chunk of rows into the
    values kept (`diagonal`: every product with itself), and `keep` bounds each row's entries."""
    weighted, binary = _cooccurrence_inputs(data, level, half_life_days)
    binary_by_item = binary.T.tocsr()
    weighted_by_item = binary_by_item if weighted is binary else weighted.T.tocsr()
    # every product with itself, as the chunks compute it (the same float32 sums, in the same order)
    diagonal = _self_products(weighted_by_item)
    if support > 1:
        diagonal = np.where(_self_products(binary_by_item) >= support, diagonal, 0).astype(np.float32)

    def make_rows(start: int, end: int) -> sp.csr_matrix:
        rows = (weighted_by_item[start:end] @ weighted).tocsr()
        if support > 1:
            rows = rows.multiply((binary_by_item[start:end] @ binary) >= support).tocsr()
        rows.eliminate_zeros()
        rows = rows.astype(np.float32)
        return rows if transform is None else transform(rows, start, diagonal)

    return item_rows(data.n_items, _product_work(binary_by_item, binary), make_rows, keep)


class SAR(ItemToItem):
    """Smart Adaptive Recommendations (Microsoft's SAR): co-occurrence of products in the same
    basket (or by the same customer), turned into a similarity (jaccard, lift or raw count).
    `neighbours`: the most similar products each product keeps (None: every co-purchased product
    on a catalog up to `dense_item_limit`, the top LARGE_CATALOG_NEIGHBOURS on a larger one)."""

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
        neighbours: int | None = None,
        dense_item_limit: int = DENSE_ITEM_LIMIT,
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
            neighbours=neighbours,
            dense_item_limit=dense_item_limit,
        )

    def _similarity(self, data: TrainingData) -> sp.csr_matrix:
        p = self.params
        kind = p["similarity"]

        def similarity(rows: sp.csr_matrix, start: int, diagonal: np.ndarray) -> sp.csr_matrix:
            both = rows.data
            row_items = start + np.repeat(np.arange(rows.shape[0]), np.diff(rows.indptr))
            if kind == "jaccard":
                values = both / (diagonal[row_items] + diagonal[rows.indices] - both)
            elif kind == "lift":
                values = both / (diagonal[row_items] * diagonal[rows.indices])
            else:
                values = both
            return sp.csr_matrix((values.astype(np.float32), rows.indices, rows.indptr), shape=rows.shape)

        keep = self._neighbours(data.n_items, LARGE_CATALOG_NEIGHBOURS)
        return cooccurrence(data, p["level"], p["cooccurrence_half_life_days"], p["support"], transform=similarity, keep=keep)


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
        dense_item_limit: int = DENSE_ITEM_LIMIT,
    ):
        super().__init__(
            neighbours=neighbours,
            matrix=matrix,
            half_life_days=half_life_days,
            history_weight=history_weight,
            wish_list_weight=wish_list_weight,
            dense_item_limit=dense_item_limit,
        )

    def _similarity(self, data: TrainingData) -> sp.csr_matrix:
        if self.params["matrix"] == "basket":
            users = data.basket_items(None)
        else:
            users = data.shopper_items(None)
        norms = np.sqrt(np.asarray(users.multiply(users).sum(axis=0)).ravel())
        norms[norms == 0] = 1.0
        normalised = (users @ sp.diags(1.0 / norms)).tocsr()
        by_item = normalised.T.tocsr()
        return item_rows(
            data.n_items,
            _product_work(by_item, normalised),
            lambda start, end: (by_item[start:end] @ normalised).astype(np.float32),
            self.params["neighbours"],
        )


def top_k_per_row(matrix: sp.csr_matrix, k: int) -> sp.csr_matrix:
    """Keep the k largest entries of each row (ties by column, for determinism)."""
    matrix = matrix.tocsr()
    matrix.sort_indices()
    lengths = np.diff(matrix.indptr)
    if not (lengths > k).any():
        return matrix.copy()
    n_rows = matrix.shape[0]
    rows = np.repeat(np.arange(n_rows, dtype=np.int32 if n_rows < 2**31 else np.int64), lengths)
    # row by row, largest first, ties by column: the entries are in (row, column) order already, so a
    # stable sort by value, then a stable sort by row, is that order (2.5x faster than a 3-key lexsort)
    order = np.argsort(-matrix.data, kind="stable")
    order = order[np.argsort(rows[order], kind="stable")]
    # rows stay in order, so a position's rank is its offset in its row
    kept = np.sort(order[(np.arange(matrix.nnz) - matrix.indptr[rows]) < k])
    indptr = np.zeros(n_rows + 1, dtype=np.int64)
    np.cumsum(np.minimum(lengths, k), out=indptr[1:])
    return sp.csr_matrix((matrix.data[kept], matrix.indices[kept], indptr), shape=matrix.shape)


class EASE(ItemToItem):
    """EASE (Steck, 2019): the closed-form linear item-item model B = I - P / diag(P), P = (X'X +
    lambda I)^-1, with a zero diagonal. X is customers x items or baskets x items (`matrix`).
    On a catalog larger than `dense_item_limit`, each product's column is the same ridge regression
    restricted to its `neighbours` most co-purchased products (sparse; see `ease_weights`)."""

    name = "ease"
    binary_history = True

    def __init__(
        self,
        lambda_: float = 250.0,
        matrix: str = "customer",
        half_life_days: float | None = None,
        history_weight: float = 0.0,
        wish_list_weight: float = 1.0,
        neighbours: int = EASE_NEIGHBOURS,
        dense_item_limit: int = DENSE_ITEM_LIMIT,
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
            neighbours=neighbours,
            dense_item_limit=dense_item_limit,
        )

    def _similarity(self, data: TrainingData):
        if self.params["matrix"] == "basket":
            users = data.basket_items(None)
        elif self.params["matrix"] == "customer":
            users = data.shopper_items(None)
            users.data[:] = 1.0
        else:
            raise ValueError(f"matrix must be 'customer' or 'basket', not {self.params['matrix']!r}")
        p = self.params
        return ease_weights(users, p["lambda_"], dense_item_limit=p["dense_item_limit"], neighbours=p["neighbours"])


def ease_weights(
    users: sp.csr_matrix, lambda_: float, *, dense_item_limit: int = DENSE_ITEM_LIMIT, neighbours: int = EASE_NEIGHBOURS
) -> np.ndarray | sp.csr_matrix:
    """The EASE item-item weights (sources x targets), in float32: dense and exact on a catalog up to
    `dense_item_limit` items (4,000 invert in about a second), else a sparse CSR matrix in which each
    target's column is its ridge regression on its `neighbours` most co-purchased products only
    (`sparse_ease_weights`)."""
    users = users.tocsr()
    if users.shape[1] > dense_item_limit:
        return sparse_ease_weights(users, lambda_, neighbours)
    # co-purchase counts: whole numbers, exact in float32 (below 2^24), so cast before densifying
    gram = (users.T @ users).astype(np.float32, copy=False).toarray()
    gram[np.diag_indices_from(gram)] += np.float32(lambda_)
    precision = _spd_inverse(gram)
    weights = precision / (-np.diag(precision))[None, :]
    weights[np.diag_indices_from(weights)] = 0.0
    return weights.astype(np.float32, copy=False)


def sparse_ease_weights(
    users: sp.csr_matrix, lambda_: float, neighbours: int = EASE_NEIGHBOURS, *, kept_per_item: int | None = None,
    rank_by: str = "cosine", targets_per_solve: int = 32,
) -> sp.csr_matrix:
    """EASE one target at a time: column j of B = I - P / diag(P) is the ridge regression of item j
    on every other item, b = (G[-j, -j] + lambda I)^-1 G[-j, j] with G = X'X. Restricting the
    regressors to j's `neighbours` nearest items (by cosine, so a niche item strongly tied to j is
    not crowded out by best sellers) makes it sparse; EASE's weights on items never bought with j,
    which it gives only through their correlations, are left out.

    The Gram matrix is never whole: it is built a chunk of item rows at a time and each row cut to its
    `kept_per_item` nearest items (default 8 x `neighbours`), then made symmetric again (an entry
    kept on either side is exact). Its entries among a target's regressors must be nearly complete,
    or the regression is no longer positive definite and small lambdas blow up: at 2 x neighbours,
    lambda 50 lost 90% of its quality on Online Retail; at 8 x none. Memory grows with items x
    kept_per_item."""
    users = users.tocsr().astype(np.float32)
    n_items = users.shape[1]
    by_item = users.T.tocsr()
    self_products = _self_products(by_item).astype(np.float64)
    scale = np.sqrt(np.maximum(self_products, 1e-12)) if rank_by == "cosine" else np.ones(n_items)
    kept_per_item = 8 * neighbours if kept_per_item is None else kept_per_item

    def off_diagonal(start: int, end: int) -> sp.csr_matrix:
        rows = (by_item[start:end] @ users).tocsr().astype(np.float64)
        row_items = start + np.repeat(np.arange(end - start), np.diff(rows.indptr))
        rows.data[rows.indices == row_items] = 0.0  # an item is never its own regressor
        rows.data /= scale[row_items] * scale[rows.indices]  # ranked by cosine (or raw count)
        rows.eliminate_zeros()
        return rows

    nearness = item_rows(n_items, _product_work(by_item, users), off_diagonal, kept_per_item, dtype=np.float64)
    nearness = nearness.maximum(nearness.T).tocsr()
    nearness.sort_indices()
    nearest = top_k_per_row(nearness, neighbours)
    # each target's regressors, padded with -1 to `neighbours` columns, and their co-purchases with it
    counts = np.diff(nearest.indptr)
    width = max(int(counts.max()) if n_items else 0, 1)
    target_of = np.repeat(np.arange(n_items), counts)
    slot = np.arange(nearest.nnz) - nearest.indptr[target_of]
    regressors = np.full((n_items, width), -1, dtype=np.int64)
    regressors[target_of, slot] = nearest.indices
    with_target = np.zeros((n_items, width), dtype=np.float64)
    with_target[target_of, slot] = nearest.data * scale[target_of] * scale[nearest.indices]

    sources, targets, values = [], [], []
    for start in range(0, n_items, targets_per_solve):
        block_regressors = regressors[start : start + targets_per_solve]
        present = block_regressors >= 0
        if not present.any():
            continue
        union, position = np.unique(block_regressors[present], return_inverse=True)
        among = nearness[union][:, union].toarray() * np.outer(scale[union], scale[union])
        among[np.diag_indices_from(among)] = self_products[union] + lambda_
        where = np.zeros(block_regressors.shape, dtype=np.int64)
        where[present] = position
        systems = among[where[:, :, None], where[:, None, :]]
        both = present[:, :, None] & present[:, None, :]
        systems = np.where(both, systems, 0.0)
        # padding solves to zero: identity rows and a zero right-hand side
        pad_rows, pad_slots = np.nonzero(~present)
        systems[pad_rows, pad_slots, pad_slots] = 1.0
        solution = np.linalg.solve(systems, with_target[start : start + targets_per_solve][:, :, None])[:, :, 0]
        rows, slots = np.nonzero(present)
        sources.append(block_regressors[rows, slots])
        targets.append(start + rows)
        values.append(solution[rows, slots])
    if not sources:
        return sp.csr_matrix((n_items, n_items), dtype=np.float32)
    weights = sp.csr_matrix(
        (np.concatenate(values).astype(np.float32), (np.concatenate(sources), np.concatenate(targets))), shape=(n_items, n_items)
    )
    weights.eliminate_zeros()
    return weights


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
            return _symmetric_from_lower(inverse)
    return np.linalg.inv(matrix)


def _symmetric_from_lower(matrix: np.ndarray, block: int = 256) -> np.ndarray:
    """The symmetric matrix whose lower triangle `matrix` holds (LAPACK's inverse leaves the upper
    one unset), filled in place block by block: its transpose, in LAPACK's column-major order, is
    row-major with the values above the diagonal, and each block below is copied from its mirror.
    A few cache-sized copies, where masking out the triangles and adding the transpose took three
    passes over the whole matrix (0.2 s of each 4,000-item EASE fit)."""
    upper = matrix.T
    n = upper.shape[0]
    for i in range(0, n, block):
        diagonal = upper[i : i + block, i : i + block]
        diagonal[...] = np.triu(diagonal) + np.triu(diagonal, 1).T
        for j in range(i + block, n, block):
            upper[j : j + block, i : i + block] = upper[i : i + block, j : j + block].T
    return upper
