"""The champion as a Recommender: hyperparameters, fit, and scoring as a pure function of the fitted
state and the batch of requests."""

from __future__ import annotations

import inspect
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace

import numpy as np

from workbench.models.base import Batch, Recommender, Request
from workbench.models.champion import explanations, ranker, signals
from workbench.models.champion.pages import COMPONENTS
from workbench.models.champion.state import ChampionState, fit_state
from workbench.models.champion.trees import RANKER_OBJECTIVES, RANKER_TREES
from workbench.models.champion.tuning import tune
from workbench.models.data import TrainingData
from workbench.models.item_to_item import DENSE_ITEM_LIMIT
from workbench.models.threads import one_blas_thread


class Champion(Recommender):
    """Blend of repeat purchases, co-purchase (EASE on baskets for the basket/viewed product; EASE on
    customers for the history), session neighbours, trending and store best sellers, the wish list
    and its categories; re-ranked per page by a learnt model.

    Everything fitted is in `state` (a ChampionState, immutable); scoring writes nothing to the
    model, so one fitted champion serves any number of threads.

    The fit's own tuning works on the last `validation_windows` windows of its training data, each
    `validation_days` long, or, by default (None), as long as the retailer's own sales say
    (`models.window_sizing`: a purchase cycle or more, enough cases, at most half the history, no
    longer than `max_validation_days`, the POS test window it imitates): a retailer with a few
    weeks of history gets windows of days, not a month it cannot spare. The tuning report holds
    the length used (`validation_days`).

    Each invoice of the tuning's window gives up to `tuning_views` basket and product cases (each
    holding out another of its items; at most `max_tuning_cases` in all, the weight search on one
    per invoice): a window's few thousand invoices teach the basket and product re-rankers more, at
    the cost of their rows alone. Three: on the validation windows of Online Retail's three splits
    and the demo retailer's two legal entities pooled, basket HR@10 gained 0.012 and product HR@10
    0.007 over one view when they were chosen (4.3 and 2.3 standard errors; two then lifted the
    basket page alone; notebooks/research/tuning_views). On today's champion three gain 0.011 and
    0.009 (3.8 and 3.1), two 0.013 and 0.007 (4.8 and 2.4).

    The fit's own tuning learns each page's re-ranker from at most `max_training_rows` rows (every
    positive while they fill at most half of them, the rest a sample seeded by `seed`) and works the
    pages on `fit_threads` threads: the same model on any number, only sooner where cores are free.
    `product_training_rows` gives the product page a budget of its own (None: `max_training_rows`).
    None: on the validation windows of Online Retail's three splits and the demo retailer's two legal
    entities pooled, 100,000 product rows moved product HR@10 by -0.0017 (0.7 standard errors) and
    200,000 by +0.0003 (0.1), at 1.06-1.56x the fit; and of `product_ranker_iterations`' 120 trees,
    60 cost it 0.0029 (1.4), for 0.85-0.96x the fit (notebooks/research/product_page_reranker).

    `balance_cases`: how much each case's true items weigh in its page's re-ranker training
    (`ranker.case_weights`). "metric": what a hit is worth in the page's headline metric: on the HR
    pages a case counts once, however many true items it holds; on the NDCG (customer) pages a true
    item weighs 1 / its case's ideal DCG, so a customer with many true items counts more than one
    with few, as NDCG's mean counts them, but not once per item. True: every case once on every page
    (the weighting before 7 December 2026); False: every row 1. On the validation windows of Online
    Retail's three splits and the demo retailer's two legal entities pooled, "metric" gains customer
    NDCG@10 0.0021 (2.3 standard errors) and new-items 0.0014 (1.6) over True, and the search's
    objective on all five; False gains new-items 0.0031 (2.6) but costs product HR@10 0.0073 (2.5),
    whose cases hold a basket's other items (notebooks/research/reranker_case_weights).

    The session neighbours of a basket are sought among each of its products' `basket_sample` most
    recent past baskets (the sample of session k-NN, Ludewig & Jannach 2018): a request's cost then
    stops growing with the retailer's history. 5,000 is above every product's basket count on Online
    Retail (at most 2,198) and the demo retailer, where it changes nothing; at 20M lines a best
    seller is in ~100k baskets.

    On the customer pages, the `customer_neighbours` customers whose purchases look most like the
    customer's (cosine of their recency-weighted rows) vote for what they buy (`similar_customers`,
    0: no such signal). 100: on the validation windows of Online Retail's three splits and the demo
    retailer's two legal entities pooled, customer NDCG@10 gains 0.0019 (2.1 standard errors) and
    new-items 0.0013 (1.2) over none (notebooks/research/similar_customers). When 100 was chosen, 30
    and 300 gained the customer page less. Under today's re-rankers (case weights), paired against
    100 on the same cases: 30 gains the customer page 0.0012 (1.3) and new-items 0.0002 (0.2), with
    two of the five datasets' customer pages the other way; 300 gains new-items 0.0026 (2.6) and
    costs the customer page 0.0010 (1.2). Whether 30 should replace 100 is open: its lead passes one
    standard error on the customer page alone, and the change has not been through the quality
    benchmark.

    On the customer pages, `next_purchases` says what customers with this history went on to buy in
    the next `next_purchase_days` (0: no such signal): one ridge regression (`next_purchase_lambda`)
    from each returning customer's history before a past cut to what they bought in the days after
    it, cuts every `next_purchase_days` back over the last year, over the `next_purchase_items`
    products the most customers buy (its solve grows with their cube, its memory with their square;
    models/champion/next_purchases.py). 30 days: the POS between two trainings, and the test window.
    Lambda 200: on the validation windows of Online Retail's three splits and the demo retailer's two
    legal entities pooled, customer NDCG@10 gains 0.0032 (3.4 standard errors) and new-items 0.0024
    (2.2) over none; 50 and 800 gain less on both (notebooks/research/next_purchases). Not searched.

    `catalog_features` lets the re-rankers see the catalog: how alike a candidate's name is to the
    request's products' names, and the share of those products in its category. Off by default:
    whether a retailer's alike names are bought together (a series) or instead of each other
    (substitutes) is the retailer's own. On validation windows (notebooks/research/reranker_features)
    it moves the basket and product pages by up to about two standard errors, up on some retailers and
    pages, down on others, so the search tries it on each retailer's validation windows
    (`evaluation.search`, a probed switch).

    Under the re-rankers, the blend weights of the customer and product pages are searched on the
    tuning's window and those of the new-items and basket pages start from DEFAULT_WEIGHTS (what
    Online Retail's validation window preferred, `tuning.SEARCHED_UNDER_RANKER`);
    `search_every_page` searches every page's. Which suits a retailer is its own validation's to
    say: the search probes it on each retailer's validation windows, as `catalog_features`, and
    keeps it only where it beats the same settings without it by more than one standard error: it
    buys quality with fit time (`evaluation.spaces.ECONOMIES`).

    `ranker_trees`: what grows the re-rankers' trees, "lightgbm" or "sklearn" (scikit-learn's
    HistGradientBoostingClassifier, which grew them until 7 December 2026), the same settings either
    way, on the same weighted-quantile bins; either scores without writing to the model
    (models/champion/trees.py). LightGBM: on the validation windows of Online Retail's three splits
    and the demo retailer's two legal entities, pooled and paired with scikit-learn's trees, every
    page within 1.3 standard errors (customer NDCG@10 -0.0000, new-items -0.0008, basket HR@10
    -0.0005, product HR@10 -0.0028, SE 0.0021; a seed alone moves the product page about one SE,
    notebooks/research/seed_spread), at 0.61-0.95x the champion's fit on one thread
    (notebooks/research/reranker_trees).

    `ranker_objective`: what every page's trees learn, "binary" (pointwise: is this candidate in the
    truth?, weighted by `balance_cases`) or a LightGBM ranking objective ("lambdarank",
    "rank_xendcg"), each case's candidates ranked against each other; `new_items_objective` the
    new-items page's own (None: `ranker_objective`). Scikit-learn's trees learn "binary" alone.
    XE-NDCG on the new-items page: on the validation windows of Online Retail's three splits and the
    demo retailer's two legal entities pooled, paired with every page pointwise, new-items NDCG@10
    gains 0.0029 (2.9 standard errors), on four of the five datasets; on the other pages it gains
    nothing (customer -0.0001, basket -0.0030, product -0.0029), and LambdaRank costs the customer
    page 0.0022 (2.4) and the product page 0.0068 (3.0) (notebooks/research/reranker_objective).

    `validation_windows`: the re-rankers learn from the cases of the last tuning window, or of the
    last two (the blend weights always from the last): twice the cases, half of them older. One, and
    not a switch the search probes: on the quality benchmark's validation folds
    (notebooks/research/reranker_windows) two windows raised the search's objective on both of the
    demo retailer's legal entities and on two of Online Retail's three splits, at 1.3-1.6x the fit;
    probed, the search took them at those two splits, and the champion's fit there went past issue
    9's limit (5x the slowest single algorithm's)."""

    name = "champion"
    # a chunk holds some 25 (rows x items) float matrices (the signals, their raws, the blend, the
    # blocked items and the re-ranked scores), each of at most chunk_floats
    chunk_floats = 1_000_000

    def __init__(
        self,
        weights: dict | None = None,
        tune: bool = True,
        validation_days: int | None = None,
        max_validation_days: int = 30,
        repeat_half_life_days: float = 90.0,
        recent_half_life_days: float = 14.0,
        basket_lambda: float = 50.0,
        customer_lambda: float = 250.0,
        trending_half_life_days: float = 14.0,
        max_tuning_cases: int = 3000,
        validation_windows: int = 1,
        tuning_views: int = 3,
        second_stage: bool = True,
        candidates_per_signal: int = 50,
        product_candidates_per_signal: int | None = None,
        ranker_iterations: int = 60,
        product_ranker_iterations: int | None = 120,
        # 50k: on Online Retail's validation windows before 2011-10-09 and 2011-11-09, every page's
        # headline within the seed-to-seed noise of 250k's, the re-rankers' training half as long
        # (before the case weights; on today's champion, before 2011-11-09, 250k gains product HR@10
        # 0.013, 2.6 SE, and costs basket HR@10 0.010, 2.0 SE: notebooks/research/champion_settings);
        # fewer cost Online Retail's validation objective more than one standard error (12.5k at every
        # split, 25k at one of three) and the demo retailer's nothing measurable (notebooks/research/reranker_rows):
        # the rows a re-ranker needs are the retailer's own, so a tuned champion tries fewer once its
        # settings are chosen (an economy of evaluation.spaces) and keeps them where they cost nothing
        max_training_rows: int = 50_000,
        product_training_rows: int | None = None,
        negative_rate: float = 0.4,
        balance_cases: bool | str = "metric",
        ranker_trees: str = "lightgbm",
        ranker_objective: str = "binary",
        new_items_objective: str | None = "rank_xendcg",
        blend_share: float = 0.0,
        catalog_features: bool = False,
        search_every_page: bool = False,
        dense_item_limit: int = DENSE_ITEM_LIMIT,
        basket_sample: int = 5000,
        customer_neighbours: int = 100,
        next_purchase_days: float = 30.0,
        next_purchase_lambda: float = 200.0,
        next_purchase_items: int = 4000,
        fit_threads: int = 2,
        seed: int = 0,
    ):
        if ranker_trees not in RANKER_TREES:
            raise ValueError(f"ranker_trees must be one of {RANKER_TREES}, not {ranker_trees!r}")
        if ranker_objective not in RANKER_OBJECTIVES:
            raise ValueError(f"ranker_objective must be one of {RANKER_OBJECTIVES}, not {ranker_objective!r}")
        if new_items_objective not in (None, *RANKER_OBJECTIVES):
            raise ValueError(f"new_items_objective must be None or one of {RANKER_OBJECTIVES}, not {new_items_objective!r}")
        super().__init__(
            weights=weights,
            tune=tune,
            validation_days=validation_days,
            max_validation_days=max_validation_days,
            repeat_half_life_days=repeat_half_life_days,
            recent_half_life_days=recent_half_life_days,
            basket_lambda=basket_lambda,
            customer_lambda=customer_lambda,
            trending_half_life_days=trending_half_life_days,
            max_tuning_cases=max_tuning_cases,
            validation_windows=validation_windows,
            tuning_views=tuning_views,
            second_stage=second_stage,
            candidates_per_signal=candidates_per_signal,
            product_candidates_per_signal=product_candidates_per_signal,
            ranker_iterations=ranker_iterations,
            product_ranker_iterations=product_ranker_iterations,
            max_training_rows=max_training_rows,
            product_training_rows=product_training_rows,
            negative_rate=negative_rate,
            balance_cases=balance_cases,
            ranker_trees=ranker_trees,
            ranker_objective=ranker_objective,
            new_items_objective=new_items_objective,
            blend_share=blend_share,
            catalog_features=catalog_features,
            search_every_page=search_every_page,
            dense_item_limit=dense_item_limit,
            basket_sample=basket_sample,
            customer_neighbours=customer_neighbours,
            next_purchase_days=next_purchase_days,
            next_purchase_lambda=next_purchase_lambda,
            next_purchase_items=next_purchase_items,
            fit_threads=fit_threads,
            seed=seed,
        )

    # -- fitting -------------------------------------------------------------------------------
    def _fit(self, data: TrainingData) -> None:
        self.state: ChampionState = self._fitted(data, with_blend=False)[0]

    def _fitted(self, data: TrainingData, with_blend: bool) -> tuple[ChampionState, ChampionState | None]:
        """(the champion's state, and with `with_blend` its blend's: the same signals, the weights
        the blend alone searches for every page, no re-ranker)."""
        p = self.params
        weights = p["weights"]
        # BLAS on one thread: the fit's own threads (the signals beside the tuning, the pages) fill
        # the cores, and BLAS threads on top of them stall waiting for one (models/threads.py); the
        # products and factorisations also sum in one order on a machine of any number of cores
        with one_blas_thread():
            if not p["tune"]:
                state = fit_state(data, p, weights, {}, None)
                return state, state
            # the signals' matrices and statistics owe nothing to the tuning: fitted on another
            # thread meanwhile, and the tuning's outcome put in after
            with ThreadPoolExecutor(1) as pool:
                fitting = pool.submit(fit_state, data, p, weights, {}, None) if int(p["fit_threads"]) > 1 else None
                searched, rankers, report, blend = tune(p, data, search_weights=weights is None, with_blend=with_blend)
                state = fitting.result() if fitting is not None else fit_state(data, p, weights, {}, None)
        champion = replace(state.with_weights(weights if weights is not None else searched), rankers=dict(rankers), tuning_report=report)
        if not with_blend:
            return champion, None
        blend_weights, blend_report = blend
        return champion, replace(state.with_weights(weights if weights is not None else blend_weights), tuning_report=blend_report)

    def fit_with_blend(self, data: TrainingData, blend: "Blend") -> "Champion":
        """Fit this champion and `blend` in one pass where the blend's settings are the champion's
        on everything that shapes a blend (`shares_fit`): one set of signals, validation cases and
        searches for both, their matrices shared in memory (a per-page champion served by both holds
        them once); the blend the same as `blend.fit(data)` would make it."""
        if not shares_fit(self.params, blend.params):
            raise ValueError("the blend's settings differ from the champion's; fit each on its own")
        self._fit_common(data)
        self.state, state = self._fitted(data, with_blend=True)
        self._freeze_common()
        for name, value in vars(self).items():
            if name not in ("params", "state"):
                setattr(blend, name, value)
        bp = blend.params
        blend.state = replace(state, rankers={}, candidates_per_signal=bp["candidates_per_signal"],
                              product_candidates_per_signal=bp["product_candidates_per_signal"], blend_share=bp["blend_share"])
        return self

    # what the notebooks and the quality benchmark show of a fit (copies: the state stays as fitted)
    @property
    def weights(self) -> dict:
        return {page: dict(weights) for page, weights in self.state.weights.items()}

    @property
    def rankers(self) -> dict:
        return dict(self.state.rankers)

    @property
    def tuning_report(self) -> dict | None:
        return self.state.tuning_report

    # -- scoring -------------------------------------------------------------------------------
    def score(self, requests) -> np.ndarray:
        batch = self.batch(requests)
        if len(batch) <= self.chunk_rows:
            return self.scored(batch).scores
        # a big batch in chunks: the signals of a chunk are (signals x chunk x items) floats
        return np.vstack([self.scored(Batch(batch[start : start + self.chunk_rows], self)).scores for start in range(0, len(batch), self.chunk_rows)])

    def scored(self, batch: Batch) -> ranker.Scored:
        """The batch's scores with what explains them, computed once per batch (in its memo)."""
        scored = batch.memo.get("champion")
        if scored is None:
            if not len(batch):
                empty = np.zeros((0, self.n_items), np.float32)
                scored = ranker.Scored(empty, np.zeros((len(COMPONENTS), 0, 1), np.float32), None)
            else:
                found = signals.compute(self.state, batch)
                blend = ranker.blend_scores(self.state, batch, found)
                final = ranker.rerank(self.state, batch, found, blend)
                scored = ranker.Scored(final.astype(np.float32, copy=False), ranker.request_weights(self.state, batch), found)
            batch.memo["champion"] = scored
        return scored

    def signals(self, requests) -> dict[str, np.ndarray]:
        """Each signal as a (requests x items) matrix scaled to [0, 1] per request."""
        return signals.compute(self.state, self.batch(requests)).scaled

    def candidate_features(self, requests):
        """(rows, cols, features): the re-ranker's candidate pairs of these requests and their FEATURES."""
        from workbench.models.champion.features import candidate_features

        batch = self.batch(requests)
        found = signals.compute(self.state, batch)
        return candidate_features(self.state, batch, found, ranker.blend_scores(self.state, batch, found))

    # -- explaining ----------------------------------------------------------------------------
    def explain_in_batch(self, batch: Batch, r: int, items: np.ndarray, scores_row: np.ndarray) -> list[str]:
        if len(batch) > self.chunk_rows:  # not scored in one piece: the request alone scores the same
            batch, r = Batch([batch[r]], self), 0
        return explanations.explain(self.state, batch, self.scored(batch), r, items)

    def explain(self, request: Request, items: np.ndarray, scores_row: np.ndarray) -> list[str]:
        return self.explain_in_batch(Batch([request], self), 0, items, scores_row)


class Blend(Champion):
    """The champion's first stage alone: each page's linear blend of the signals, its weights
    searched for every page on the fit's own validation window, and no re-ranker. A candidate of
    its own, because a page's re-ranker learns from that window's cases and a retailer with few of
    them can be served worse by it than by the blend (the demo retailer's new-items page, on its
    validation windows); the per-page routing then serves such a page from the blend. Takes the
    champion's arguments; only `second_stage` defaults otherwise."""

    name = "blend"

    def __init__(self, **params):
        super().__init__(**{"second_stage": False, **params})


# the champion's arguments, as the search and the notebooks' settings read them (blend's own default)
_CHAMPION_SIGNATURE = inspect.signature(Champion)
Blend.__signature__ = _CHAMPION_SIGNATURE.replace(
    parameters=[p.replace(default=False) if p.name == "second_stage" else p for p in _CHAMPION_SIGNATURE.parameters.values()]
)


# the champion's arguments that shape its re-rankers (or only its pace), never its blend
RANKER_ONLY = ("second_stage", "candidates_per_signal", "product_candidates_per_signal", "ranker_iterations",
               "product_ranker_iterations", "max_training_rows", "product_training_rows", "negative_rate",
               "balance_cases", "ranker_trees", "ranker_objective", "new_items_objective", "blend_share", "catalog_features", "search_every_page", "fit_threads")


def shares_fit(champion_params: dict, blend_params: dict) -> bool:
    """Whether a blend with `blend_params` is what a champion with `champion_params` learns of its
    blend on the way: the same settings on every argument but RANKER_ONLY."""
    def shaping(params):
        return {k: v for k, v in params.items() if k not in RANKER_ONLY}

    return shaping(champion_params) == shaping(blend_params)


def shared_passes(models: dict) -> dict[str, str]:
    """{name: name of its partner} of each champion and blend alone in `models` ({name: unfitted
    model}) that `shares_fit`: each pair can be fitted in one pass (`Champion.fit_with_blend`); a
    blend is paired at most once, champions in `models`' order."""
    partner = {}
    for champion in [n for n, m in models.items() if m.name == "champion"]:
        blend = next((n for n, m in models.items() if m.name == "blend" and n not in partner
                      and shares_fit(models[champion].params, m.params)), None)
        if blend is not None:
            partner[champion], partner[blend] = blend, champion
    return partner


def fit_shared_pass(models: dict, name: str, partner: str, data: TrainingData) -> None:
    """Fit `models[name]` and `models[partner]` (a champion and its blend, either way round) in one pass."""
    champion, blend = (name, partner) if models[name].name == "champion" else (partner, name)
    models[champion].fit_with_blend(data, models[blend])


def fit_in_shared_passes(models: dict, data: TrainingData) -> None:
    """Fit every model of `models` on `data`, the pairs of `shared_passes` in one pass each."""
    partner = shared_passes(models)
    for name, model in models.items():
        if name not in partner:
            model.fit(data)
        elif model.name == "champion":
            fit_shared_pass(models, name, partner[name], data)
