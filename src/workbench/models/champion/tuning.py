"""Learning the champion's blend weights and re-rankers on validation windows at the end of the
training data (the protocol of EVALUATION.md one period earlier, never the test window)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace

import numpy as np
import pandas as pd
import polars as pl
import scipy.sparse as sp

from workbench.models.base import Request
from workbench.models.cases import Cases, build_cases, discounts, ideal_dcg, last_days_start, validation_split
from workbench.models.champion.candidates import blocked_items, top_columns
from workbench.models.champion.features import candidate_features
from workbench.models.champion.pages import COMPONENTS, DEFAULT_WEIGHTS, FEATURES, GRID, PAGES, RANKER_OF_PAGE, TUNING_METRIC, page_of
from workbench.models.champion.ranker import blend_scores, train_ranker
from workbench.models.champion.signals import compute
from workbench.models.data import TrainingData
from workbench.models.window_sizing import size_windows, with_first_seen

# The pages whose blend weights are searched when the re-ranker follows (blend-only, or with
# `search_every_page`: every page). On Online Retail's validation window (fit before 2011-10-10, cases
# to 2011-11-09) a searched blend under the re-ranker beat DEFAULT_WEIGHTS on the product and
# customer pages and lost on the new-items and basket pages; those keep the defaults unless a
# retailer's own validation prefers `search_every_page` (a probed switch of `evaluation.search`,
# kept only where it beats its absence by more than one standard error).
SEARCHED_UNDER_RANKER = ("customer", "product")


def tune(params: dict, data: TrainingData, search_weights: bool, with_blend: bool = False):
    """(weights or None, rankers, report, blend): learnt on the last `validation_windows` periods of
    `window_days` before the end of `data` (the report says how many days). The blend weights are
    searched on the most recent window alone (from DEFAULT_WEIGHTS), first: every window's re-ranker rows are then built on the
    retailer's own blend. Where the data is too small for a validation window, nothing is learnt
    (defaults serve). The pages are worked on `fit_threads` threads: each page's search, rows and
    re-ranker depend on nothing of another page's, so the outcome is the same on any number.

    `with_blend`: `blend` is also what the blend alone (`second_stage=False`, the same settings
    otherwise) would learn, as (weights or None, report): every page's weights searched on the same
    window's cases (None without it)."""
    p = params
    interactions = data.to_interactions()
    wish_lists = _wish_list_frame(data)
    weights, report, blend_weights, blend_report = {}, {}, {}, {}
    days = window_days(p, interactions)
    if days is not None:
        report["validation_days"] = blend_report["validation_days"] = days
    rows = {page: [] for page in dict.fromkeys(RANKER_OF_PAGE.values())}
    with ThreadPoolExecutor(max(int(p["fit_threads"]), 1)) as pool:
        # the weights are searched on the most recent window alone: only re-rankers learn from more
        windows = max(int(p["validation_windows"]), 1) if p["second_stage"] else 1
        for window in range(windows if days else 0):
            inner, cases = _validation_window(p, data, interactions, wish_lists, window, days)
            if inner is None:
                break
            if window == 0:
                weights = {page: DEFAULT_WEIGHTS.get(page, {}) for page in PAGES}
                blend_weights = dict(weights)

            def page_work(page, window=window, inner=inner, cases=cases):
                """(searched weights and their quality or None, the page's re-ranker rows or None)."""
                requests, truth = cases[page].requests, cases[page].truth
                searched = None
                if window == 0 and search_weights and requests and (_searched(p, page) or with_blend):
                    # one case per invoice: the further views teach the re-rankers, and would only
                    # add to the search's time
                    once = cases[page].one_per_invoice()
                    searched = _search(inner, inner.state, once.requests, once.truth, TUNING_METRIC[page])
                block = None
                if p["second_stage"] and requests and page in rows:
                    # the page's requests are blended with its own weights alone
                    chosen = searched[0] if searched and _searched(p, page) else weights[page]
                    state = inner.state.with_weights({**inner.state.weights, page: chosen})
                    block = _ranker_rows(inner, state, requests, truth, seed=(p["seed"], window, PAGES.index(page)), negative_rate=p["negative_rate"])
                return searched, block

            for page, (searched, block) in zip(PAGES, pool.map(page_work, PAGES)):
                if searched is not None and _searched(p, page):
                    weights[page], report[page] = searched
                if searched is not None and with_blend:
                    blend_weights[page], blend_report[page] = searched
                if block is not None:
                    rows[page].append(block)
        # the most rows first: the longest fits start while the others share the threads
        order = sorted((page for page, blocks in rows.items() if blocks), key=lambda page: -sum(len(b[1]) for b in rows[page]))
        trained = dict(zip(order, pool.map(lambda page: train_ranker(rows[page], p, page), order)))
    rankers = {}
    for page in rows:
        ranker = trained.get(page)
        if ranker is not None:
            rankers[page] = ranker
            report[f"{page}.ranker_rows"] = ranker.n_rows_
    blend = ((blend_weights if search_weights and blend_weights else None), blend_report or None) if with_blend else None
    return (weights if search_weights and weights else None), rankers, report or None, blend


def _searched(params: dict, page: str) -> bool:
    """Whether the page's own blend weights are searched: every page's without a re-ranker or with
    `search_every_page`, the SEARCHED_UNDER_RANKER ones' otherwise (a champion pickled before the
    switch has no such setting: it was off)."""
    return page in SEARCHED_UNDER_RANKER or not params["second_stage"] or bool(params.get("search_every_page", False))


def window_days(params: dict, interactions) -> int | None:
    """How long each validation window is: `validation_days` where given, else sized from the
    retailer's own sales (`models.window_sizing`: a purchase cycle or more, enough cases, at most
    half the history, no longer than `max_validation_days`); None without any sale."""
    if params["validation_days"]:
        return int(params["validation_days"])
    if interactions.height == 0:
        return None
    end = last_days_start(interactions, 0)
    size = size_windows(with_first_seen(interactions), end, max_windows=max(int(params["validation_windows"]), 1),
                        max_days=params["max_validation_days"])
    return size.days


def _validation_window(params: dict, data: TrainingData, interactions, wish_lists, window: int, days: int):
    """(inner champion, cases): the champion fitted on what came before the validation window
    `window` periods back (each `days` long), and that window's cases; (None, None) where there is
    no such window."""
    from workbench.models.champion.model import Champion  # imported here: the model imports this module

    p = params
    if interactions.height == 0:
        return None, None
    if window:
        interactions = interactions.filter(pl.col("time") < last_days_start(interactions, window * days).to_pydatetime())
    if interactions.height == 0:
        return None, None
    fit_part, validation = validation_split(interactions, days=days)
    if fit_part.height == 0 or validation.height == 0:
        return None, None
    # the window's first day, where validation_split cuts: the wish lists as the POS knew them then
    start = last_days_start(interactions, days)
    wished = _added_before(wish_lists, start)
    inner = Champion(**{**p, "tune": False, "weights": p["weights"] or DEFAULT_WEIGHTS})
    inner_data = TrainingData.from_interactions(fit_part, wish_lists=wished, reference_time=validation["time"].min())
    inner_data.item_names = _reindex(data, inner_data, data.item_names)
    inner_data.item_categories = _reindex(data, inner_data, data.item_categories)
    inner.fit(inner_data)
    cases = build_cases(fit_part, validation, seed=p["seed"] + window, max_baskets=p["max_tuning_cases"], wish_lists=wished,
                        split_time=start, views=int(p["tuning_views"]))
    # the baskets are drawn already; the customer pages hold every customer who bought in the window
    cases = {page: _at_most(c, p["max_tuning_cases"], seed=(p["seed"], window, i)) for i, (page, c) in enumerate(cases.items())}
    cases["product_customer"] = _with_customers(cases["product"], cases["basket"])
    return inner, cases


def _at_most(cases, n: int, seed):
    """`cases`, or `n` of them drawn at random (kept in their order) where there are more: the
    tuning's time and the search's candidates grow with the cases, never past `max_tuning_cases`."""
    if len(cases) <= n:
        return cases
    keep = np.sort(np.random.default_rng(list(seed)).choice(len(cases), size=n, replace=False))
    first = None if cases.first_views is None else int(np.count_nonzero(keep < cases.first_views))
    return replace(cases, requests=[cases.requests[i] for i in keep], truth=[cases.truth[i] for i in keep], first_views=first)


def _ranker_rows(inner, state, requests, truth, seed, negative_rate: float):
    """(features, labels, case of each row) of the candidates of these validation cases (scored by
    `inner` with `state`); cases without any true item among their candidates are left out (they
    teach nothing about ranking), and only a deterministic share `negative_rate` of the wrong
    candidates is kept. Scored in the model's own chunks (`chunk_rows`): a chunk's signals are dense
    (rows x items) blocks, so a fixed number of rows would grow with the catalog."""
    rng = np.random.default_rng(list(seed))
    blocks, labels, groups = [], [], []
    for start, stop in _chunks(inner, len(requests)):
        chunk = inner.batch(requests[start:stop])
        signals = compute(state, chunk)
        rows, cols, features = candidate_features(state, chunk, signals, blend_scores(state, chunk, signals))
        relevant = _relevant(inner, truth[start:stop])
        target = np.asarray(relevant[rows, cols]).ravel() > 0 if len(rows) else np.zeros(0, dtype=bool)
        useful = np.zeros(len(chunk), dtype=bool)
        useful[rows[target]] = True
        # one draw per candidate, in case order: the same stream whatever the chunk size
        keep = useful[rows] & (target | (rng.random(len(rows)) < negative_rate))
        blocks.append(features[keep])
        labels.append(target[keep])
        groups.append(rows[keep] + start)
    if not blocks:
        return np.zeros((0, len(FEATURES)), np.float32), np.zeros(0, bool), np.zeros(0, np.int64)
    return np.concatenate(blocks), np.concatenate(labels), np.concatenate(groups)


def _chunks(inner, n: int):
    """(start, stop) of each chunk of `n` requests that `inner` scores at once."""
    step = max(int(inner.chunk_rows), 1)
    return [(start, min(start + step, n)) for start in range(0, n, step)]


def _relevant(inner, truth) -> sp.csr_matrix:
    """cases x items, 1 at each case's true items (the ones `inner` knows); sparse: its non-zeros are
    the truth, whatever the catalog."""
    rows = [r for r, t in enumerate(truth) for i in t if i in inner.item_index]
    cols = [inner.item_index[i] for t in truth for i in t if i in inner.item_index]
    relevant = sp.csr_matrix((np.ones(len(rows), dtype=np.float32), (rows, cols)), shape=(len(truth), inner.n_items))
    relevant.data[:] = 1.0
    return relevant


def _search_candidates(inner, state, requests, truth, depth: int = 60, at_least: int = 10):
    """(signals, blocked, relevant, sizes) of the cases on their candidates only: the union of every
    signal's top `depth` items, each signal (by COMPONENTS name) as a (cases x candidates) block. Only
    items in some signal's top 60 can reach a blend's top 10 in practice; computed chunk by chunk, so
    what is kept grows with the cases, never cases x items.

    A case's candidates come first in item order; after them, blocked columns only (a blocked item,
    a repeat, padding), which never count in a top 10. The blocks are as wide as the most any case
    keeps (`at_least` columns): a quarter of the signals' 18 x 60 on the demo retailer, and the
    search's time grows with the width."""
    n, full_width = len(requests), len(COMPONENTS) * min(depth, state.n_items)
    parts = []
    sizes = np.ones(n, dtype=np.int64)
    for start, stop in _chunks(inner, n):
        chunk = inner.batch(requests[start:stop])
        full = compute(state, chunk).scaled
        candidates = np.sort(np.concatenate([top_columns(full[c], depth) for c in COMPONENTS], axis=1), axis=1)
        dropped = np.zeros(candidates.shape, dtype=bool)
        dropped[:, 1:] = candidates[:, 1:] == candidates[:, :-1]
        dropped |= np.take_along_axis(blocked_items(state, chunk), candidates, axis=1)
        # the kept candidates first, still in item order (ties in the top 10 go by it)
        order = np.argsort(dropped, axis=1, kind="stable")
        width = int(np.count_nonzero(~dropped, axis=1).max(initial=0))
        candidates, dropped = np.take_along_axis(candidates, order[:, :width], axis=1), np.take_along_axis(dropped, order[:, :width], axis=1)
        truth_of_chunk = _relevant(inner, truth[start:stop])
        sizes[start:stop] = np.maximum(np.diff(truth_of_chunk.indptr), 1)
        parts.append((start, stop, width, {c: np.take_along_axis(full[c], candidates, axis=1) for c in COMPONENTS}, dropped,
                      np.take_along_axis(truth_of_chunk.toarray() > 0, candidates, axis=1)))
    width = max([min(at_least, full_width)] + [used for _, _, used, *_ in parts])
    signals = {c: np.zeros((n, width), dtype=np.float32) for c in COMPONENTS}
    blocked = np.ones((n, width), dtype=bool)
    relevant = np.zeros((n, width), dtype=bool)
    for start, stop, used, part_signals, part_blocked, part_relevant in parts:
        for c in COMPONENTS:
            signals[c][start:stop, :used] = part_signals[c]
        blocked[start:stop, :used] = part_blocked
        relevant[start:stop, :used] = part_relevant
    return signals, blocked, relevant, sizes


def _search(inner, state, requests, truth, metric: str, k: int = 10):
    """Steepest ascent over GRID, one signal's weight at a time, from the defaults;
    deterministic, and cheap: the signals are computed once, on each case's candidates, and only
    re-weighted (a trial changes one weight: the round's blend plus that change, blocked items kept
    out once per round); a trial ranks only the cases with a true candidate, and finds where their
    true candidates land in the top k (`_top_places`) without ordering the rest."""
    signals, blocked, relevant, sizes = _search_candidates(inner, state, requests, truth, at_least=k)
    k = min(k, blocked.shape[1])
    rank_discounts, ideal = discounts(k), ideal_dcg(sizes, k)

    live = [c for c in COMPONENTS if signals[c].any()]
    # a case without a true candidate scores nothing under any weights: only the others are ranked
    # (the means still count every case)
    n = len(blocked)
    scored_cases = np.flatnonzero((relevant & ~blocked).any(axis=1))
    signals = {c: values[scored_cases] for c, values in signals.items()}
    blocked = blocked[scored_cases]
    true_cases, true_columns = np.nonzero(relevant[scored_cases] & ~blocked)

    def losses(weights):
        """The blend's scores, negated, +inf where blocked."""
        scores = sum(w * signals[c] for c, w in weights.items() if w) + 1e-6 * signals["store"]
        return np.where(blocked, np.inf, -scores).astype(np.float32, copy=False)

    def quality(negated):
        cases, places = _top_places(negated, true_cases, true_columns, k)
        hits = np.zeros((n, k), dtype=bool)
        hits[scored_cases[cases], places] = True
        if metric == "hr":
            return float(hits.any(axis=1).mean()) + 0.01 * float((hits @ rank_discounts / ideal).mean())
        return float((hits @ rank_discounts / ideal).mean())

    page = page_of(requests[0])
    weights = {c: DEFAULT_WEIGHTS.get(page, {}).get(c, 0.0) for c in COMPONENTS}
    negated = losses(weights)
    best = quality(negated)
    trial = np.empty_like(negated)
    # steepest ascent: each round takes the single best change of one weight, until none helps
    for _ in range(8):
        trials = [(c, v) for c in live for v in GRID if v != weights[c]]
        scored = []
        for i, (c, v) in enumerate(trials):
            if not any({**weights, c: v}.values()):
                continue
            np.multiply(signals[c], np.float32(weights[c] - v), out=trial)
            trial += negated
            scored.append((quality(trial), -i, (c, v)))
        if not scored:
            break
        top_quality, _, (c, v) = max(scored, key=lambda x: (x[0], x[1]))
        if top_quality <= best + 1e-6:
            break
        best, weights = top_quality, {**weights, c: v}
        negated = losses(weights)
    return weights, best


def _top_places(losses: np.ndarray, rows: np.ndarray, columns: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """(row, place) of each of the (`rows`, `columns`) cells among its row's k smallest `losses`,
    ordered by loss, ties by column (the search's candidates are sorted by item: ties go by item
    index, as in serving). Found from each row's k smallest losses alone, one partition per row,
    where ordering the k would sort every row."""
    smallest = np.partition(losses, k - 1, axis=1)[:, :k]
    cut = smallest[:, k - 1]
    own = losses[rows, columns]
    near = np.flatnonzero(own <= cut[rows])  # the others are out of the k
    rows, columns, own = rows[near], columns[near], own[near, None]
    places = np.count_nonzero(smallest[rows] < own, axis=1)
    # a tie within the k, or at the cut (where the tied may lie past the k), goes by column: counted
    # on the row's every column
    tied = np.flatnonzero((np.count_nonzero(smallest[rows] == own, axis=1) > 1) | (own[:, 0] == cut[rows]))
    if len(tied):
        whole, own_tied = losses[rows[tied]], own[tied]
        earlier = np.arange(losses.shape[1]) < columns[tied, None]
        places[tied] = np.count_nonzero(whole < own_tied, axis=1) + np.count_nonzero((whole == own_tied) & earlier, axis=1)
    inside = places < k
    return rows[inside], places[inside]


def _reindex(source: TrainingData, target: TrainingData, values):
    """A per-item array of `source` (names, categories) in `target`'s item order."""
    if values is None:
        return None
    return np.array([values[source.item_index[i]] for i in target.item_ids], dtype=object)


def _wish_list_frame(data: TrainingData):
    """The wish lists of `data` as (customer_id, product_id[, added_at]) rows, for the validation
    windows: the dated entries where `data` has them, else the matrix's (undated: all count)."""
    if data.wish_list_entries is not None:
        return data.wish_list_entries if data.wish_list_entries.height else None
    if data.wish_lists is None or data.wish_lists.nnz == 0:
        return None
    matrix = data.wish_lists.tocoo()
    return pl.DataFrame(
        {
            "customer_id": pl.Series([str(c) for c in data.customer_ids[matrix.row]], dtype=pl.String),
            "product_id": pl.Series([str(i) for i in data.item_ids[matrix.col]], dtype=pl.String),
        }
    )


def _added_before(wish_lists: pl.DataFrame | None, start: pd.Timestamp) -> pl.DataFrame | None:
    """The entries added before `start` (all of an undated wish list); None stays None."""
    if wish_lists is None or "added_at" not in wish_lists.columns:
        return wish_lists
    return wish_lists.filter(pl.col("added_at") < start.to_pydatetime())


def _with_customers(product_cases, basket_cases):
    """The product cases again, with the invoice's customer attached (the personalised product page)."""
    cases = Cases("product_customer", [], [])
    for i, (product, basket, truth) in enumerate(zip(product_cases.requests, basket_cases.requests, product_cases.truth)):
        if product_cases.first_views is not None and i == product_cases.first_views:
            cases.first_views = len(cases)
        if basket.customer_id is not None:
            cases.requests.append(Request("product", basket.customer_id, product.product_ids, store_id=product.store_id))
            cases.truth.append(truth)
    return cases

