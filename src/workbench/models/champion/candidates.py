"""The champion's candidates: the (request, item) pairs its re-ranker scores, the union of every
signal's top items (never an item the request blocks).

Two paths. On a catalog up to the state's `dense_item_limit` a batch's lists are partitioned over
the whole catalog at once (argpartition), and a list with fewer positive items than its depth is
topped up with argpartition's pick among its tied zeros: the "filler" the default settings were
tuned with (quality.md). That pick costs 1.5-2 ms per list on a 70k-product catalog (a partition of
mostly equal values, a few blocked items above them), and a basket page has several such lists:
past the limit each request's lists are read from their positive items instead (the same items),
a short list is topped up with a draw of products the request does not already have, seeded by the
request (`_filler`), and the trending and store lists are prefixes of orders sorted once at fit
(`state._orders`). A request then costs what it touches, not the catalog.
"""

from __future__ import annotations

import zlib

import numpy as np

from workbench.models.base import Batch
from workbench.models.champion.pages import COMPONENTS, PRODUCT_ONLY, page_of


def _top_columns(matrix: np.ndarray, n: int) -> np.ndarray:
    """(..., min(n, columns)): the columns of each row's n largest values (in no order)."""
    n = min(int(n), matrix.shape[-1])
    if n <= 0:
        return np.zeros((*matrix.shape[:-1], 0), dtype=np.int64)
    if n == matrix.shape[-1]:
        return np.broadcast_to(np.arange(n), (*matrix.shape[:-1], n))
    return np.argpartition(-matrix, n - 1, axis=-1)[..., :n]


def _nominate(scores: np.ndarray, blocked: np.ndarray, n: int, filler: dict, owners: np.ndarray) -> np.ndarray:
    """`_top_columns` of (lists' rows, items) scores with the blocked items at -1; `owners`: the
    request of each row (whose `blocked` row it is).

    A row where its list scores nothing still nominates n items: argpartition's pick among the tied
    zeros. Those filler candidates stay (dropping them cost 0.007-0.008 product HR on both validation
    windows); as every empty list of a request is the same array, its pick is made once per request
    and depth (`filler`, shared by the batch's lists), not once per list (argpartition is slowest on
    exactly these rows). A row's pick depends on that row alone, so any grouping of the rows
    nominates the same items; the scores are copied once, negated, for argpartition."""
    n = min(int(n), scores.shape[-1])
    if n <= 0:
        return np.zeros((scores.shape[0], 0), dtype=np.int64)
    if n == scores.shape[-1]:
        return np.broadcast_to(np.arange(n), (scores.shape[0], n))
    negated = np.where(blocked, np.float32(1.0), -scores)
    # "scores nothing": no positive score, and nothing but the blocked below zero
    empty = negated.min(axis=-1) >= 0
    if empty.any():
        at = np.flatnonzero(empty)
        empty[at] = ((negated[at] == 0) | blocked[at]).all(axis=-1)
    if not empty.any():
        return np.argpartition(negated, n - 1, axis=-1)[:, :n]
    top = np.empty((scores.shape[0], n), dtype=np.int64)
    if not empty.all():
        top[~empty] = np.argpartition(negated[~empty], n - 1, axis=-1)[:, :n]
    empty_rows = np.flatnonzero(empty)
    # the first row of each request whose pick at this depth is not made yet
    missing = {}
    for at in empty_rows.tolist():
        if (int(owners[at]), n) not in filler:
            missing.setdefault(int(owners[at]), at)
    if missing:
        picks = _top_columns(np.where(blocked[list(missing.values())], -1.0, np.zeros(1, dtype=np.float32)), n)
        filler.update({(owner, n): pick for owner, pick in zip(missing, picks)})
    top[empty_rows] = np.stack([filler[(int(owners[at]), n)] for at in empty_rows.tolist()])
    return top


def blocked_items(state, batch: Batch) -> np.ndarray:
    """requests x items: what a request must never get back (its basket / viewed product; on the
    "discover" customer page, what the customer bought)."""
    blocked = np.zeros((len(batch), state.n_items), dtype=bool)
    for matrix, applies in (
        (batch.inputs(), [r.excludes_input for r in batch]),
        (batch.history(state.presence), [r.exclude_purchased for r in batch]),
    ):
        rows = np.repeat(np.arange(len(batch)), np.diff(matrix.indptr))
        pick = np.asarray(applies, dtype=bool)[rows]
        blocked[rows[pick], matrix.indices[pick]] = True
    return blocked


def on_product_page(batch: Batch) -> np.ndarray:
    """Per request: the anonymous product page, the only page the P(item | viewed item) features and
    candidates serve (on the other pages they did not help on the validation window)."""
    return np.array([page_of(r) == "product" for r in batch], dtype=bool)


# up to this many (list, request) rows, a depth's lists are nominated in one call
STACKED_ROWS = 64


def candidate_pairs(state, batch: Batch, signals, blend: np.ndarray, blocked: np.ndarray, row_wise: bool | None = None):
    """(rows, cols): each candidate (request, item) pair once, ordered by request then item;
    `row_wise` (default: past the state's `dense_item_limit`) reads each request's lists from their
    positive items, the large-catalog path."""
    n_items = state.n_items
    # the product page (one viewed item, a whole basket to guess) gets its own, deeper candidate lists
    per_row = np.array(
        [state.product_candidates_per_signal if page_of(r) == "product" and state.product_candidates_per_signal else state.candidates_per_signal for r in batch],
        dtype=np.int64,
    )
    product = on_product_page(batch)
    if n_items > state.dense_item_limit if row_wise is None else row_wise:
        return _row_wise_pairs(state, batch, signals, blend, blocked, per_row, product)
    all_rows, all_cols = [], []
    for per_signal, on_product in sorted({(int(a), bool(b)) for a, b in zip(per_row, product)}):
        group = np.flatnonzero((per_row == per_signal) & (product == on_product))
        deep = [c for c in COMPONENTS if c not in ("trending", "store") and (on_product or c not in PRODUCT_ONLY)]
        whole = len(group) == len(batch)
        block = blocked if whole else blocked[group]

        def rows_of(matrix, group=group, whole=whole):
            return matrix if whole else matrix[group]

        trending = rows_of(signals["trending"])
        by_depth = {}
        for depth, scores in [
            *((per_signal, rows_of(signals[c])) for c in deep),
            (2 * per_signal, rows_of(blend)),
            # trending and the store's best sellers: the same list for everyone, a few are enough
            (per_signal // 2, rows_of(signals["store"]) + 1e-3 * trending),
            (per_signal // 2, trending),
        ]:
            by_depth.setdefault(depth, []).append(scores)
        filler = {}  # the empty lists' pick, per request and depth
        for depth, lists in by_depth.items():
            # a few requests (a POS call): a depth's lists in one call; a batch: one list at a time,
            # with no copy of the batch's lists stacked
            stacked = len(group) * len(lists) <= STACKED_ROWS
            for scores in [np.concatenate(lists)] if stacked else lists:
                times = len(scores) // len(group)
                owners = np.tile(np.arange(len(group)), times)
                top = _nominate(scores, np.tile(block, (times, 1)) if times > 1 else block, depth, filler, owners)
                all_rows.append(np.repeat(group[owners], top.shape[1]))
                all_cols.append(top.ravel())
    # each (request, item) pair once, ordered by request then item
    pairs = np.unique(np.concatenate(all_rows) * n_items + np.concatenate(all_cols))
    rows, cols = pairs // n_items, pairs % n_items
    keep = ~blocked[rows, cols]
    return rows[keep], cols[keep]


def _true_positions(mask: np.ndarray) -> np.ndarray:
    """np.flatnonzero(mask) of a 1-d bool array, read 8 bytes at a time: a list of a request holds a
    few hundred positive items in tens of thousands, and skipping the empty words is 5x faster."""
    if len(mask) % 8:
        mask = np.concatenate([mask, np.zeros(8 - len(mask) % 8, dtype=bool)])
    words = np.flatnonzero(mask.view(np.uint64))
    at = (words[:, None] * 8 + np.arange(8)).ravel()
    return at[mask[at]]


def _top_of_list(scores: np.ndarray, free: np.ndarray, depth: int) -> tuple[np.ndarray, int]:
    """(items, count): a list's `depth` best positive items the request does not block (`scores`:
    one row over the catalog), and how many positive items it has."""
    positive = scores > 0
    positive &= free
    count = int(np.count_nonzero(positive))
    if count <= depth:
        return _true_positions(positive), count
    values = scores[positive]
    cut = np.partition(values, count - depth)[count - depth]
    above = np.flatnonzero(positive & (scores > cut))
    at_cut = np.flatnonzero(positive & (scores == cut))[: depth - len(above)]  # ties by item index
    return np.concatenate([above, at_cut]), count


def _prefix(order: np.ndarray, skip: np.ndarray, n: int) -> np.ndarray:
    """The first n items of `order` (items, best first) not in `skip` (a bool per item)."""
    n = min(int(n), len(order))
    take = 2 * n + 64
    while True:  # a request blocks a few items, a "discover" page what the customer bought
        head = order[:take]
        head = head[~skip[head]]
        if len(head) >= n or take >= len(order):
            return head[:n]
        take *= 4


def _filler(request, skip: np.ndarray, n: int) -> np.ndarray:
    """n products not in `skip` (a bool per item; fewer where the catalog has fewer), drawn at random
    with a seed of the request's own (its page, customer, products and store): the same request gets
    the same ones in any batch, and no request costs a pass over the catalog.

    What a short list lacks is made up from across the catalog, as the dense path's pick among tied
    zeros is, rather than from one corner of it: the newest products did so before, and forced on
    Online Retail's validation windows the large-catalog path then fell further behind the dense one
    on the "discover" page (benchmarks/results/champion_candidates.md compares the two paths)."""
    free = int(len(skip) - np.count_nonzero(skip))
    n = min(int(n), free)
    if n <= 0:
        return np.zeros(0, dtype=np.int64)
    key = repr((request.scenario, request.customer_id, sorted(set(request.product_ids)), request.store_id, request.exclude_purchased))
    rng = np.random.default_rng(zlib.crc32(key.encode()))
    if 4 * n >= free:  # most of what is left: one permutation of it
        return rng.permutation(np.flatnonzero(~skip))[:n]
    taken = np.zeros(0, dtype=np.int64)
    while len(taken) < n:  # a request skips a few hundred items at most: a draw or two
        draw = rng.integers(0, len(skip), size=2 * n + 16)
        draw = draw[~skip[draw]]
        taken = np.concatenate([taken, draw])
        taken = taken[np.sort(np.unique(taken, return_index=True)[1])]
    return taken[:n]


def _row_wise_pairs(state, batch: Batch, signals, blend: np.ndarray, blocked: np.ndarray, per_row: np.ndarray, product: np.ndarray):
    """candidate_pairs request by request, from each list's positive items (see the module's docstring)."""
    n_items = state.n_items
    all_rows, all_cols = [], []
    for r, request in enumerate(batch):
        per_signal, on_product = int(per_row[r]), bool(product[r])
        deep = [c for c in COMPONENTS if c not in ("trending", "store") and (on_product or c not in PRODUCT_ONLY)]
        free = ~blocked[r]
        nominated, lacking, empty = [], 0, 0
        for scores, depth in [(signals[c][r], per_signal) for c in deep] + [(blend[r], 2 * per_signal)]:
            items, count = _top_of_list(scores, free, depth)
            nominated.append(items)
            # lists holding nothing lack the same items (one filler for them, as on the dense path)
            lacking, empty = (lacking + depth - count, empty) if 0 < count < depth else (lacking, max(empty, depth) if count == 0 else empty)
        # trending and the store's best sellers: the same order for everyone, computed at fit
        for order in (state.store_orders.get(request.store_id, state.trending_order), state.trending_order):
            nominated.append(_prefix(order, blocked[r], per_signal // 2))
        if lacking + empty:
            skip = blocked[r].copy()
            for items in nominated:
                skip[items] = True
            nominated.append(_filler(request, skip, lacking + empty))
        cols = np.concatenate(nominated)
        all_rows.append(np.full(len(cols), r, dtype=np.int64))
        all_cols.append(cols)
    pairs = np.unique(np.concatenate(all_rows) * n_items + np.concatenate(all_cols))
    return pairs // n_items, pairs % n_items
