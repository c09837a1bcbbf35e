"""The one interface every recommendation algorithm implements, and what they share.

A model scores every catalog item for a batch of requests at once (dense rows over a small
catalog are cheaper than any clever sparse top-k here); `recommend` turns scores into the POS
list: input items removed, best sellers filling the gaps, a reason for every item.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
import scipy.sparse as sp

from workbench.models.data import TrainingData

SCENARIOS = ("product", "basket", "customer")


@dataclass(frozen=True)
class Request:
    """One POS request. `product_ids`: the viewed product (product page), the basket's items
    (transaction page) or the wish list (customer page)."""

    scenario: str
    customer_id: str | None = None
    product_ids: tuple[str, ...] = ()
    k: int = 10
    store_id: str | None = None
    # the customer page's "discover" list: leave out what the customer already bought
    exclude_purchased: bool = False

    def __post_init__(self):
        if self.scenario not in SCENARIOS:
            raise ValueError(f"scenario {self.scenario!r} is not one of {SCENARIOS}")
        if not isinstance(self.k, (int, np.integer)) or isinstance(self.k, bool) or self.k < 1:
            raise ValueError(f"k must be a positive integer, got {self.k!r}")
        object.__setattr__(self, "product_ids", tuple(str(p) for p in self.product_ids))

    @property
    def excludes_input(self) -> bool:
        """The viewed product and the basket's items are never recommended back; a wish list may be."""
        return self.scenario in ("product", "basket")


def on_customer_page(requests: Sequence[Request]) -> np.ndarray:
    """Per request: the customer page (with or without what the customer bought), where the inputs
    are the wish list rather than a basket or a viewed product, and the customer's history leads."""
    return np.array([r.scenario == "customer" for r in requests], dtype=bool)


@dataclass
class Recommendations:
    item_ids: list[str]
    scores: list[float]
    reasons: list[str]
    notes: list[str] = field(default_factory=list)  # e.g. "customer C9 is unknown"


class Recommender:
    """Base class: subclasses set `name`, implement `_fit(data)` and `score(requests)`, and may
    override `explain` to give the reason behind each recommended item."""

    name = "base"
    best_seller_half_life_days: float | None = None

    def __init__(self, **params):
        self.params = params

    # -- fitting -------------------------------------------------------------------------------
    def fit(self, data: TrainingData) -> "Recommender":
        self._fit_common(data)
        self._fit(data)
        self._freeze_common()
        return self

    def _fit_common(self, data: TrainingData) -> None:
        """What every model keeps of the training data besides its own fit."""
        self.item_ids = data.item_ids
        self.item_index = data.item_index
        self.customer_index = data.customer_index
        # every model keeps the customers' histories: the personal pages and the fallbacks need them
        self.history = data.customer_items()
        self.wish_lists = data.wish_lists
        self.best_sellers = data.item_popularity(self.best_seller_half_life_days)
        # baskets per item and in all: what novelty (self-information) is measured against
        self.item_baskets = data.item_popularity(None)
        self.n_baskets = data.n_baskets
        self.item_names = data.item_names

    def _freeze_common(self) -> None:
        # what scoring reads stays as fitted: a write from a scoring path fails loudly, never races
        freeze(self.history, self.best_sellers, self.item_baskets)

    def _fit(self, data: TrainingData) -> None:
        raise NotImplementedError

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        freeze(*(state.get(name) for name in ("history", "best_sellers", "item_baskets")))  # unpickled arrays come back writeable

    @property
    def n_items(self) -> int:
        return len(self.item_ids)

    def item_label(self, i: int) -> str:
        """The product's name where the training data had one, else its id."""
        names = getattr(self, "item_names", None)
        if names is not None and names[i]:
            return str(names[i]).strip()
        return str(self.item_ids[i])

    # -- scoring -------------------------------------------------------------------------------
    def score(self, requests: Sequence[Request]) -> np.ndarray:
        """(n_requests, n_items) float32; higher is better, <= 0 means "no signal".

        Must be a pure function of the fitted model and `requests`: the served model is shared by
        every thread of the server, so nothing may be written to `self` here. What several steps
        of one call share lives in the call's `Batch` (pass `requests` through `self.batch`)."""
        raise NotImplementedError

    def batch(self, requests: Sequence[Request]) -> "Batch":
        """`requests` as this call's Batch (the same one where it already is one of this model)."""
        if isinstance(requests, Batch) and requests.model is self:
            return requests
        return Batch(requests, self)

    def input_items(self, requests: Sequence[Request]) -> sp.csr_matrix:
        """requests x items: the known items of each request's product_ids."""
        return self.batch(requests).inputs()

    def customer_rows(self, requests: Sequence[Request]) -> np.ndarray:
        """Customer index per request, -1 for none or unknown."""
        return self.batch(requests).customers()

    def histories(self, requests: Sequence[Request], matrix: sp.csr_matrix | None = None) -> sp.csr_matrix:
        """requests x items: each request's customer row of `matrix` (default: the purchase history)."""
        return self.batch(requests).history(self.history if matrix is None else matrix)

    # -- explaining ----------------------------------------------------------------------------
    def explain(self, request: Request, items: np.ndarray, scores_row: np.ndarray) -> list[str]:
        return [f"recommended by {self.name}"] * len(items)

    def explain_in_batch(self, batch: "Batch", r: int, items: np.ndarray, scores_row: np.ndarray) -> list[str]:
        """The reasons for request `r` of `batch`, scored just before: a model whose reasons come
        from its scoring pass (the champion) finds that pass in the batch's memo."""
        return self.explain(batch[r], items, scores_row)

    # -- the POS list --------------------------------------------------------------------------
    # floats of one chunk's (rows x items) score matrix: what a call holds at a time, however big the
    # batch; a model holding several such matrices per row (the champion's signals) sets fewer
    chunk_floats = 4_000_000

    @property
    def chunk_rows(self) -> int:
        """Requests scored at once by `recommend`: 256, fewer on a catalog so large that 256 rows of
        scores would pass `chunk_floats`."""
        return max(1, min(256, self.chunk_floats // max(self.n_items, 1)))

    def recommend(self, requests: Sequence[Request], k: int | None = None) -> list[Recommendations]:
        """The POS list of every request. Each request is answered as if it came alone (a model's
        row never depends on the other rows of its batch), so a batch is worked in chunks."""
        results = []
        for start in range(0, len(requests), self.chunk_rows):
            results += self._recommend(Batch(requests[start : start + self.chunk_rows], self), k)
        return results

    def _recommend(self, batch: "Batch", k: int | None) -> list[Recommendations]:
        scores = np.asarray(self.score(batch), dtype=np.float32)
        inputs = batch.inputs()
        discover = [r for r, request in enumerate(batch) if request.exclude_purchased]
        bought = self.histories([batch[r] for r in discover]) if discover else None
        bought_rows = dict(zip(discover, range(len(discover))))
        sellers = None  # the fill's float32 best sellers, cast only when a list runs short
        results = []
        for r, request in enumerate(batch):
            n = k or request.k
            parts = []
            if request.excludes_input:
                parts.append(row_items(inputs, r))
            if r in bought_rows:
                parts.append(row_items(bought, bought_rows[r]))
            blocked = np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)
            ranked = _top(scores[r], n, blocked, positive=True)
            reasons = self.explain_in_batch(batch, r, ranked, scores[r]) if len(ranked) else []
            notes = self._notes(request)
            if len(ranked) < n:
                # not enough signal: fill with best sellers, as a POS never shows an empty panel
                if sellers is None:
                    sellers = np.asarray(self.best_sellers, dtype=np.float32)
                fill = _top(sellers, n - len(ranked), np.concatenate([blocked, ranked]))
                fallback = "best seller" + (f" ({'; '.join(notes)})" if notes else "")
                ranked = np.concatenate([ranked, fill])
                reasons = list(reasons) + [fallback] * len(fill)
                fill_top = scores[r][ranked[: len(ranked) - len(fill)]]
                floor = float(fill_top.min()) if len(fill_top) else 1.0
                # fill items rank below every scored item, in best-seller order
                fill_values = floor * 0.5 * (self.best_sellers[fill] / max(self.best_sellers.max(), 1e-9))
                item_scores = np.concatenate([scores[r][ranked[: len(ranked) - len(fill)]], fill_values])
            else:
                item_scores = scores[r][ranked]
            results.append(
                Recommendations(
                    item_ids=[str(self.item_ids[i]) for i in ranked],
                    scores=[float(s) for s in item_scores],
                    reasons=list(reasons),
                    notes=notes,
                )
            )
        return results

    def _notes(self, request: Request) -> list[str]:
        notes = []
        if request.customer_id is not None and request.customer_id not in self.customer_index:
            notes.append(f"customer {request.customer_id} has no purchase history")
        unknown = [p for p in request.product_ids if p not in self.item_index]
        if unknown:
            notes.append(f"product {', '.join(unknown[:3])} not in the trained catalog")
        return notes


class Batch(tuple):
    """One call's requests, with what its steps share (the requests' rows of the input items and of
    the histories, a model's intermediate results): built per call, never kept on the model, so
    concurrent calls on one shared model never see each other's rows."""

    def __new__(cls, requests: Sequence[Request], model: Recommender):
        batch = super().__new__(cls, requests)
        batch.model = model
        batch.memo = {}
        return batch

    def __reduce__(self):  # a batch is worth nothing outside its call: it pickles as its requests
        return tuple, (tuple(self),)

    def inputs(self) -> sp.csr_matrix:
        """requests x items: the known items of each request's product_ids, sorted, each once."""
        matrix = self.memo.get("inputs")
        if matrix is None:
            item_index = self.model.item_index
            # straight into CSR arrays, sorted and without repeats (a product named twice is still one)
            indptr, indices = [0], []
            for request in self:
                known = sorted({i for i in map(item_index.get, request.product_ids) if i is not None})
                indices.extend(known)
                indptr.append(len(indices))
            matrix = sp.csr_matrix(
                (np.ones(len(indices), dtype=np.float32), np.array(indices, dtype=np.int32), np.array(indptr, dtype=np.int32)),
                shape=(len(self), self.model.n_items),
            )
            self.memo["inputs"] = matrix
        return matrix

    def customers(self) -> np.ndarray:
        """Customer index per request, -1 for none or unknown."""
        rows = self.memo.get("customers")
        if rows is None:
            index = self.model.customer_index
            rows = np.array([index.get(r.customer_id, -1) if r.customer_id is not None else -1 for r in self], dtype=np.int64)
            self.memo["customers"] = rows
        return rows

    def history(self, matrix: sp.csr_matrix) -> sp.csr_matrix:
        """requests x items: each request's customer row of `matrix` (a fitted customers x items matrix)."""
        known = self.memo.get(("history", id(matrix)))
        if known is None or known[0] is not matrix:  # the matrix itself kept: an id can be reused
            known = (matrix, select_rows(matrix.tocsr(), self.customers()))
            self.memo[("history", id(matrix))] = known
        return known[1]


def freeze(*arrays) -> None:
    """Mark fitted arrays (dense, or a sparse matrix's buffers) read-only."""
    for array in arrays:
        if sp.issparse(array):
            for part in ("data", "indices", "indptr"):
                if hasattr(array, part):
                    getattr(array, part).flags.writeable = False
        elif isinstance(array, np.ndarray):
            array.flags.writeable = False


def row_items(matrix: sp.csr_matrix, r: int) -> np.ndarray:
    """The column indices of row r: `matrix[r].indices` without building a one-row matrix."""
    return matrix.indices[matrix.indptr[r] : matrix.indptr[r + 1]]


def select_rows(matrix: sp.csr_matrix, rows: np.ndarray) -> sp.csr_matrix:
    """matrix[rows] with an empty row where rows is -1, straight from the CSR arrays: on the POS's
    single requests a selector-matrix product costs more in scipy overhead than the work itself."""
    rows = np.asarray(rows, dtype=np.int64)
    known = rows >= 0
    last = len(matrix.indptr) - 1  # clipped: a matrix without rows (a retailer without customer ids) has no row 0
    starts = np.where(known, matrix.indptr[np.clip(rows, 0, last)], 0)
    lengths = np.where(known, matrix.indptr[np.clip(rows + 1, 0, last)], 0) - starts
    take, indptr = entry_positions(starts, lengths)
    return sp.csr_matrix((matrix.data[take], matrix.indices[take], indptr), shape=(len(rows), matrix.shape[1]))


def entry_positions(starts: np.ndarray, lengths: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(positions, offsets): where in a CSR matrix's `indices` / `data` the entries of some rows lie
    (rows starting at `starts`, of `lengths` entries, one after the other), and where each row's
    entries begin among those positions (an indptr). A gather of rows without building a matrix."""
    offsets = np.zeros(len(lengths) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    # each row's start, then +1 along the row
    return np.repeat(starts - offsets[:-1], lengths) + np.arange(offsets[-1], dtype=np.int64), offsets


def _top(row: np.ndarray, n: int, blocked: np.ndarray | None = None, *, positive: bool = False) -> np.ndarray:
    """Indices of the n largest finite values of `row` (only values > 0 where `positive`), leaving out
    the `blocked` indices, best first, ties by index. One partition of the row for a few more than n
    candidates: a catalog-sized mask and copy per request cost more than the scoring at 100k products."""
    size = len(row)
    if n <= 0 or size == 0:
        return np.array([], dtype=np.int64)
    blocked = np.zeros(0, dtype=np.int64) if blocked is None else np.asarray(blocked, dtype=np.int64)
    floor_allowed = 0.0 if positive else -np.inf  # an item outside the candidates is at most their floor
    m = min(size, n + len(blocked))
    if m < size:
        candidates = np.argpartition(-row, m - 1)[:m]
        floor = row[candidates].min()
    else:
        candidates, floor = np.arange(size), -np.inf
    def usable_of(values: np.ndarray) -> np.ndarray:
        return np.isfinite(values) & (values > 0) if positive else np.isfinite(values)

    usable = usable_of(row[candidates])
    if len(blocked):
        usable &= ~np.isin(candidates, blocked)
    chosen = candidates[usable]
    if len(chosen) < n and not floor <= floor_allowed:
        # infinities or NaNs took candidate places while usable items lie beyond them: mask the whole row
        masked = np.where(usable_of(row), row, -np.inf)
        masked[blocked] = -np.inf
        return _top(masked, n, positive=positive)
    chosen = chosen[np.lexsort((chosen, -row[chosen]))]
    if len(chosen) < n or m == size:
        return chosen[:n]
    last = row[chosen[n - 1]]
    if last == floor:
        # ties at the cut may lie outside the candidates: the lowest indices of the tied value win
        tied = np.flatnonzero(row == last)
        if len(blocked):
            tied = tied[~np.isin(tied, blocked)]
        above = chosen[row[chosen] > last]
        return np.concatenate([above, tied[: n - len(above)]])
    return chosen[:n]
