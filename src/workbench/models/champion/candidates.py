"""The champion's candidates: the (request, item) pairs its re-ranker scores, the union of every
signal's top items (never an item the request blocks).

A request's lists are its signals' and its blend's positive items, the best of them where a list
holds more than its depth (ties by item index), and the trending and store lists, prefixes of orders
sorted once at fit (`state._orders`). A list with fewer positive items than its depth is topped up
with a draw of products the request does not already have, seeded by the request (`_filler`): the
same request gets the same candidates in any batch, whatever numpy's partition picks among equal
scores.

Two paths nominate the same pairs. On a catalog up to the state's `dense_item_limit` a batch's lists
are read as (requests x catalog) matrices at once; past it each request's lists are read on their
own from their positive items, so a request costs what it touches, not the catalog (a partition of a
mostly empty 70k-product row costs 1.5-2 ms, and a basket page has several such lists).

The tie rule is `largest`'s: the champion's weight search (`tuning`) picks its pool with it too
(`top_columns`), and its top 10 by the same rule (`tuning._top_places`).
"""

from __future__ import annotations

import zlib

import numpy as np

from workbench.models.base import Batch
from workbench.models.champion.pages import COMPONENTS, PRODUCT_ONLY, page_of


def largest(values: np.ndarray, n: int) -> np.ndarray:
    """rows x columns bool: each row's n largest values, ties at the cut by column (the first win),
    so the pick is the data's, not numpy's selection algorithm's; every column where a row has no
    more."""
    n = min(int(n), values.shape[1])
    if n <= 0:
        return np.zeros(values.shape, dtype=bool)
    if n == values.shape[1]:
        return np.ones(values.shape, dtype=bool)
    cut = -np.partition(-values, n - 1, axis=1)[:, n - 1:n]
    above = values > cut
    at_cut = values == cut
    need = n - np.count_nonzero(above, axis=1)
    tied = np.flatnonzero(np.count_nonzero(at_cut, axis=1) > need)
    if len(tied):
        at_cut[tied] &= np.cumsum(at_cut[tied], axis=1) <= need[tied, None]
    return above | at_cut


def top_columns(values: np.ndarray, n: int) -> np.ndarray:
    """rows x min(n, columns): the columns of each row's n largest values (`largest`: ties at the
    cut by column), in column order. Of a signal (never negative) holding fewer than n positive
    values in a row, the row's top n are those and the first zeros: no partition needed, where
    partitioning a mostly zero row ties at its cut and takes a second pass (`smallest_columns`)."""
    n = min(int(n), values.shape[1])
    if n <= 0 or n == values.shape[1] or values.size == 0 or values.min() < 0:
        return smallest_columns(-values, n)
    positive = values > 0
    missing = n - np.count_nonzero(positive, axis=1)
    few = missing > 0
    top = np.empty((len(values), n), dtype=np.int64)
    if not few.all():
        top[~few] = smallest_columns(-values[~few], n)
    if few.any():
        chosen = positive[few]
        # a row's first zeros lie in its first n columns: fewer than n of those are positive
        zeros = ~chosen[:, :n]
        chosen[:, :n] |= zeros & (np.cumsum(zeros, axis=1) <= missing[few, None])
        top[few] = np.nonzero(chosen)[1].reshape(-1, n)
    return top


def smallest_columns(losses: np.ndarray, n: int) -> np.ndarray:
    """rows x min(n, columns): the columns of each row's n smallest values, ties at the cut by column
    (the first win), in column order. One partition per row; `largest` only in the rows where the
    cut's value also lies outside the partition's pick (which of those it took was numpy's choice)."""
    n = min(int(n), losses.shape[1])
    if n <= 0:
        return np.zeros((len(losses), 0), dtype=np.int64)
    if n == losses.shape[1]:
        return np.broadcast_to(np.arange(n), (len(losses), n))
    # the (n+1)-th smallest in its place: the first n are a pick, undecided where it ties with their largest
    parted = np.argpartition(losses, n, axis=1)[:, : n + 1]
    top = parted[:, :n]
    cut = np.take_along_axis(losses, top, axis=1).max(axis=1)
    undecided = np.flatnonzero(losses[np.arange(len(losses)), parted[:, n]] == cut)
    if len(undecided):
        top[undecided] = np.nonzero(largest(-losses[undecided], n))[1].reshape(len(undecided), n)
    top.sort(axis=1)
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


# up to this many (list, request) rows, a depth's lists are read in one call
STACKED_ROWS = 64


def candidate_pairs(state, batch: Batch, signals, blend: np.ndarray, blocked: np.ndarray, row_wise: bool | None = None):
    """(rows, cols): each candidate (request, item) pair once, ordered by request then item;
    `row_wise` (default: past the state's `dense_item_limit`) reads each request's lists on their
    own, the large-catalog path. Both paths nominate the same pairs."""
    n_items = state.n_items
    # the product page (one viewed item, a whole basket to guess) gets its own, deeper candidate lists
    per_row = np.array(
        [state.product_candidates_per_signal if page_of(r) == "product" and state.product_candidates_per_signal else state.candidates_per_signal for r in batch],
        dtype=np.int64,
    )
    product = on_product_page(batch)
    if n_items > state.dense_item_limit if row_wise is None else row_wise:
        return _row_wise_pairs(state, batch, signals, blend, blocked, per_row, product)
    # requests x items: what the batch's lists nominate (at most a few thousand columns on this path)
    nominated = np.zeros((len(batch), n_items), dtype=bool)
    short = np.zeros(len(batch), dtype=np.int64)
    for per_signal, on_product in sorted({(int(a), bool(b)) for a, b in zip(per_row, product)}):
        group = np.flatnonzero((per_row == per_signal) & (product == on_product))
        whole = len(group) == len(batch)
        free = ~(blocked if whole else blocked[group])
        by_depth = {}
        for scores, depth in _lists(signals, blend, per_signal, on_product):
            by_depth.setdefault(depth, []).append(scores if whole else scores[group])
        counts, depths = [], []
        for depth, lists in by_depth.items():
            # a few requests (a POS call): a depth's lists in one call; a batch: one list at a time,
            # with no copy of the batch's lists stacked
            stacked = len(group) * len(lists) <= STACKED_ROWS
            for scores in [np.concatenate(lists)] if stacked else lists:
                times = len(scores) // len(group)
                chosen, count = _best_positive(scores, np.tile(free, (times, 1)) if times > 1 else free, depth)
                chosen = chosen.reshape(times, len(group), n_items).any(axis=0) if times > 1 else chosen
                if whole:
                    nominated |= chosen
                else:
                    nominated[group] |= chosen
                counts.append(count)
                depths.append(np.full(len(count), depth))
        owners = np.tile(np.arange(len(group)), sum(len(c) for c in counts) // len(group))
        short[group] = _shortfall(owners, np.concatenate(counts), np.concatenate(depths), len(group))
        for r in group.tolist():
            nominated[r, _best_sellers(state, batch[r], blocked[r], per_signal)] = True
    for r in np.flatnonzero(short).tolist():
        nominated[r, _filler(batch[r], blocked[r] | nominated[r], int(short[r]))] = True
    # each (request, item) pair once, ordered by request then item
    return np.nonzero(nominated)


def _lists(signals, blend: np.ndarray, per_signal: int, on_product: bool) -> list:
    """(scores, depth) of a request's own lists: each signal but the best sellers' (the product-only
    ones on the product page alone), and the blend twice as deep."""
    deep = [c for c in COMPONENTS if c not in ("trending", "store") and (on_product or c not in PRODUCT_ONLY)]
    return [(signals[c], per_signal) for c in deep] + [(blend, 2 * per_signal)]


def _best_positive(scores: np.ndarray, free: np.ndarray, depth: int) -> tuple[np.ndarray, np.ndarray]:
    """(chosen, counts) of (lists' rows, items) scores: per row, a mask of its `depth` best positive
    items where `free` (all of them where it has no more; ties at the cut by item index, as
    `_top_of_list`), and its count of such items. A row is partitioned only where it has more positive
    items than `depth`."""
    chosen = scores > 0
    chosen &= free
    counts = np.count_nonzero(chosen, axis=1)
    deep = np.flatnonzero(counts > depth)
    if len(deep):
        # the rows' other items at 0, below the cut: it is positive, as each row holds more positive items
        chosen[deep] = largest(np.where(chosen[deep], scores[deep], 0), depth)
    return chosen, counts


def _shortfall(owners: np.ndarray, counts: np.ndarray, depths: np.ndarray, n_owners: int) -> np.ndarray:
    """Per request (`owners`: the request of each list), how many items its lists lack (`counts`
    positive items of `depths`): a list with fewer positive items lacks the rest; the lists holding
    nothing all lack the same items, as many as the deepest of them."""
    partial = (counts > 0) & (counts < depths)
    lacking = np.bincount(owners[partial], weights=(depths - counts)[partial], minlength=n_owners)
    empty = np.zeros(n_owners)
    np.maximum.at(empty, owners[counts == 0], depths[counts == 0])
    return (lacking + empty).astype(np.int64)


def _best_sellers(state, request, blocked: np.ndarray, per_signal: int) -> np.ndarray:
    """The request's trending and store lists (half as deep): the same order for everyone, sorted at
    fit (`state._orders`), less what the request blocks (`blocked`: a bool per item)."""
    orders = (state.store_orders.get(request.store_id, state.trending_order), state.trending_order)
    return np.concatenate([_prefix(order, blocked, per_signal // 2) for order in orders])


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
    if depth <= 0:
        return np.zeros(0, dtype=np.int64), count
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

    What a short list lacks is made up from across the catalog, not from one corner of it: topped up
    with the newest products, forced on Online Retail's validation windows, the large-catalog path
    fell behind on the "discover" page (benchmarks/results/champion_candidates.md)."""
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
        per_signal = int(per_row[r])
        free = ~blocked[r]
        nominated, counts, depths = [], [], []
        for scores, depth in _lists(signals, blend, per_signal, bool(product[r])):
            items, count = _top_of_list(scores[r], free, depth)
            nominated.append(items)
            counts.append(count)
            depths.append(depth)
        nominated.append(_best_sellers(state, request, blocked[r], per_signal))
        short = int(_shortfall(np.zeros(len(counts), dtype=np.int64), np.array(counts), np.array(depths), 1)[0])
        if short:
            skip = blocked[r].copy()
            skip[np.concatenate(nominated)] = True
            nominated.append(_filler(request, skip, short))
        cols = np.concatenate(nominated)
        all_rows.append(np.full(len(cols), r, dtype=np.int64))
        all_cols.append(cols)
    pairs = np.unique(np.concatenate(all_rows) * n_items + np.concatenate(all_cols))
    return pairs // n_items, pairs % n_items
