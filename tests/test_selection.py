"""Model selection on validation windows: window sizing, search, per-page choice, routing, intervals."""

import json
import warnings
from datetime import datetime, timedelta

import numpy as np
import pandas as pd
import polars as pl
import pytest
from helpers import tiny_interactions
from helpers import tiny_folds as folds_of

from workbench.evaluation import (
    bootstrap_interval,
    build_cases,
    evaluate,
    folds,
    paired_bootstrap,
    plan_validation,
    purchase_cycle_days,
    temporal_split,
)
from workbench.evaluation import HEADLINE
from workbench.evaluation.search import SEARCH_SPACES, Trial, choose_trial, keep_cut, search, search_space
from workbench.evaluation.selection import (
    SIMPLICITY,
    Validation,
    best_baseline,
    choose,
    choose_champion,
    choose_per_page,
    headline_cases_frame,
    headline_cases_from_frame,
    validate,
)
from workbench.evaluation.uncertainty import paired_standard_error
from workbench.models import MODELS, TrainingData, make_model
from workbench.models.routing import PAGES, Routing
from workbench.models.settings import algorithm_hyperparameters

SPLIT = "2024-04-01"


def shop(cycle_days: int, days: int = 120, customers: int = 60, seed: int = 0) -> pl.DataFrame:
    """Each customer comes back every `cycle_days` (a phase of their own), two or three items a visit."""
    rng = np.random.default_rng(seed)
    start = datetime(2024, 1, 1)
    rows = []
    for c in range(customers):
        favourite = rng.choice(30, size=4, replace=False)
        for visit, day in enumerate(range(int(rng.integers(cycle_days)), days, cycle_days)):
            basket = f"B{c:03d}-{visit:03d}"
            for p in sorted(set(rng.choice(favourite, size=2).tolist()) | {int(rng.integers(30))}):
                rows.append((f"C{c:03d}", basket, f"P{p:02d}", start + timedelta(days=day, hours=10)))
    return pl.DataFrame(rows, schema=["customer_id", "basket_id", "product_id", "time"], orient="row").with_columns(
        pl.lit(1.0).alias("quantity"), pl.lit("S1").alias("store_id")
    )


# -- windows -----------------------------------------------------------------------------------------
def test_purchase_cycle_is_the_median_gap_between_purchase_days():
    assert purchase_cycle_days(shop(7)) == pytest.approx(7.0)
    assert purchase_cycle_days(shop(21)) == pytest.approx(21.0)


def test_windows_follow_the_retailers_purchase_cycle():
    weekly = plan_validation(shop(7), SPLIT, min_cases=20, min_customer_cases=10)
    monthly = plan_validation(shop(21), SPLIT, min_cases=20, min_customer_cases=10)
    assert weekly.window_days == 7 and monthly.window_days == 21
    for plan in (weekly, monthly):
        assert len(plan.windows) == 2
        assert plan.windows[-1].end == pd.Timestamp(SPLIT)  # the last window ends at the split
        assert plan.windows[0].end == plan.windows[1].start  # rolling origin, contiguous
        assert all(w.days == plan.window_days for w in plan.windows)
        assert "purchase cycle" in plan.reason


def test_windows_grow_until_they_hold_enough_cases_and_stay_within_the_history():
    few = plan_validation(shop(7), SPLIT, min_cases=150, min_customer_cases=10)
    assert few.window_days > 7 and few.basket_cases[-1] >= 150
    capped = plan_validation(shop(7, days=20), "2024-01-21", min_cases=10_000)
    assert capped.window_days * len(capped.windows) <= 0.5 * capped.history_days + 1
    assert "the most the history allows" in capped.reason


def test_a_short_history_gets_short_windows_not_thirty_days():
    weeks = tiny_interactions(days=21, n_baskets=600)
    plan = plan_validation(weeks, "2024-01-22", min_cases=50, min_customer_cases=10)
    assert 1 <= plan.window_days <= 5 and len(plan.windows) == 2


def test_the_test_window_caps_the_validation_windows():
    assert plan_validation(shop(21), SPLIT, min_cases=1, min_customer_cases=1, test_days=10).window_days == 10


def test_folds_fit_before_their_window_and_cut_wish_lists_at_its_start():
    data = shop(7)
    plan = plan_validation(data, SPLIT, min_cases=20, min_customer_cases=10)
    start = plan.windows[1].start.to_pydatetime()
    wish = pl.DataFrame(
        {"customer_id": ["C001", "C001"], "product_id": ["P01", "P02"], "added_at": [start - timedelta(days=1), start + timedelta(hours=1)]}
    )
    made = folds(data, plan, wish)
    for fold in made:
        assert fold.train["time"].max() < fold.window.start.to_pydatetime()
        for cases in fold.cases.values():
            assert all(r.store_id == "S1" or r.store_id is None for r in cases.requests)
    assert made[1].wish_lists["product_id"].to_list() == ["P01"]
    wished = [r.product_ids for r in made[1].cases["customer"].requests if r.customer_id == "C001"]
    assert wished in ([], [("P01",)])


def test_customer_cases_of_a_short_window_look_ahead_as_the_test_window_does_up_to_the_split():
    data = shop(7)
    plan = plan_validation(data, SPLIT, min_cases=20, min_customer_cases=10, test_days=30)
    assert plan.window_days == 7 and plan.customer_horizon_days == 30
    older, newer = plan.windows
    # the older window's customers look ahead to the split (14 days, not 30: never past it); the newer one ends there
    assert plan.customer_end(older) == plan.customer_end(newer) == pd.Timestamp(SPLIT)
    assert "customer pages look ahead" in plan.describe()
    made = folds(data, plan)
    first = made[0].cases
    inside = data.filter((pl.col("time") >= older.start.to_pydatetime()) & (pl.col("time") < older.end.to_pydatetime()))
    ahead = data.filter((pl.col("time") >= older.start.to_pydatetime()) & (pl.col("time") < newer.end.to_pydatetime()))
    truth = {r.customer_id: t for r, t in zip(first["customer"].requests, first["customer"].truth)}
    # what a customer bought in the next window counts for the customer page, nothing at or past the split does
    for customer, items in ahead.group_by("customer_id").agg(pl.col("product_id").unique()).iter_rows():
        if customer in truth:
            assert truth[customer] <= set(items)
    assert any(truth[c] - set(inside.filter(pl.col("customer_id") == c)["product_id"]) for c in truth)
    # the basket and product cases are the window's own invoices
    assert {r.product_ids for r in first["product"].requests} <= {(p,) for p in inside["product_id"].unique()}
    assert len(first["basket"]) <= inside["basket_id"].n_unique()
    # windows as long as the test window: the customer cases are the window's alone, as before
    same = plan_validation(data, SPLIT, min_cases=20, min_customer_cases=10, test_days=7)
    assert same.customer_end(same.windows[0]) == same.windows[0].end
    plain = plan_validation(data, SPLIT, min_cases=20, min_customer_cases=10)
    assert plain.customer_end(plain.windows[0]) == plain.windows[0].end


# -- intervals ---------------------------------------------------------------------------------------
def test_bootstrap_interval_is_seeded_and_brackets_the_mean():
    values = np.random.default_rng(1).random(500) < 0.3
    a, b = bootstrap_interval(values, seed=3), bootstrap_interval(values, seed=3)
    assert a == b and a.low < a.value < a.high and a.n_cases == 500
    assert a.high - a.low == pytest.approx(2 * 1.96 * np.sqrt(0.3 * 0.7 / 500), rel=0.25)


def test_paired_bootstrap_tells_a_real_margin_from_noise():
    rng = np.random.default_rng(0)
    base = (rng.random(2000) < 0.3).astype(float)
    better = np.maximum(base, rng.random(2000) < 0.1)
    margin = paired_bootstrap(better, base, seed=0)
    assert margin.significant and margin.ratio > 1 and margin.ratio_low > 1
    noise = paired_bootstrap(np.roll(base, 1), base, seed=0)
    assert not noise.significant and noise.difference_low < 0 < noise.difference_high
    with pytest.raises(ValueError, match="same cases"):
        paired_bootstrap(base[:10], base)


# -- choosing ----------------------------------------------------------------------------------------
def _table(values: dict) -> pd.DataFrame:
    rows = []
    for algorithm, (customer, new, basket, product) in values.items():
        rows += [
            {"algorithm": algorithm, "scenario": "customer", "ndcg": customer, "hr": 0.0},
            {"algorithm": algorithm, "scenario": "customer_new_items", "ndcg": new, "hr": 0.0},
            {"algorithm": algorithm, "scenario": "basket", "ndcg": 0.0, "hr": basket},
            {"algorithm": algorithm, "scenario": "product", "ndcg": 0.0, "hr": product},
        ]
    return pd.DataFrame(rows)


def test_each_page_goes_to_its_validation_winner_and_ties_to_the_simpler():
    table = _table({"repeat": (0.40, 0.03, 0.17, 0.38), "ease": (0.30, 0.10, 0.30, 0.66), "champion": (0.38, 0.12, 0.30, 0.70)})
    choice = choose_per_page(table)
    assert choice.routes == {"customer": "repeat", "customer_new_items": "champion", "basket": "ease", "product": "champion"}
    assert choice.candidates == ["repeat", "champion", "ease"]
    assert choice.table.groupby("page")["chosen"].sum().eq(1).all()
    # within the tolerance the simpler model serves
    assert choose_per_page(table, tolerance=0.05).routes["product"] == "ease"
    assert best_baseline(table, "product", exclude=["champion"]) == "ease"
    assert SIMPLICITY.index("repeat") < SIMPLICITY.index("champion")


def _cases(mean: float, n: int, seed: int, spread: float = 0.3) -> np.ndarray:
    return np.clip(np.random.default_rng(seed).normal(mean, spread, n), 0, 1)


def test_a_lead_within_one_standard_error_is_reported_and_can_go_to_the_simpler_candidate():
    # ALS leads repeat on the customer page by 0.02: on 100 noisy cases that is within one standard
    # error of the paired difference, on 20,000 it is not
    for n, beyond in ((100, False), (20_000, True)):
        repeat = _cases(0.30, n, seed=1)
        als = repeat + 0.02 + np.random.default_rng(2).normal(0, 0.3, n)
        per_case = {"repeat": {"customer": repeat}, "als": {"customer": als}}
        table = pd.DataFrame([{"algorithm": a, "scenario": "customer", "ndcg": v["customer"].mean(), "hr": 0.0} for a, v in per_case.items()])
        # by default the leader serves, and the choice says whether its lead is beyond noise
        choice = choose_per_page(table, per_case=per_case)
        assert choice.routes == {"customer": "als"}
        assert choose(table, "per_page", per_case).routes == {"customer": "als"}
        row = choice.table.set_index("candidate").loc["repeat"]
        assert row["behind_best"] == pytest.approx(als.mean() - repeat.mean())
        assert row["standard_error"] == pytest.approx(np.std(als - repeat, ddof=1) / np.sqrt(n))
        assert choice.leads()["customer"] == {"chosen": "als", "leader": "als", "runner_up": "repeat", "lead": round(float(row["behind_best"]), 4),
                                              "standard_error": round(float(row["standard_error"]), 4), "beyond_one_se": beyond}
        # the one-standard-error rule: a lead within noise is a tie, and the simpler candidate serves
        one_se = choose_per_page(table, per_case=per_case, standard_errors=1.0)
        assert one_se.routes == {"customer": "als" if beyond else "repeat"}, n
        assert bool(one_se.table.set_index("candidate").loc["repeat", "tied_with_best"]) == (not beyond)
        assert choose(table, "per_page", per_case, standard_errors=1.0).routes == one_se.routes
        # without the cases there is no standard error to weigh
        assert choose_per_page(table, standard_errors=1.0).routes == {"customer": "als"}


def test_validation_cases_survive_the_hand_over_and_must_be_paired(tmp_path):
    made = {"repeat": Validation(pd.DataFrame(), {"customer": {"ndcg": np.array([0.1, 0.5, 0.0])}, "basket": {"hr": np.array([1.0, 0.0])}}),
            "ease": Validation(pd.DataFrame(), {"customer": {"ndcg": np.array([0.2, 0.4, 0.3])}, "basket": {"hr": np.array([1.0, 1.0])}})}
    frame = headline_cases_frame(made)
    frame.to_parquet(tmp_path / "cases.parquet")
    back = headline_cases_from_frame(pd.read_parquet(tmp_path / "cases.parquet"))
    assert set(back) == {"repeat", "ease"}
    np.testing.assert_array_equal(back["ease"]["customer"], [0.2, 0.4, 0.3])
    np.testing.assert_array_equal(back["repeat"]["basket"], [1.0, 0.0])
    with pytest.raises(ValueError, match="same cases"):
        paired_standard_error(np.zeros(3), np.zeros(2))


def test_a_page_without_validation_cases_goes_to_the_simplest_candidate():
    # a retailer without customers: the customer pages have no figure (NaN) for any candidate
    table = _table({"repeat": (np.nan, np.nan, 0.17, 0.38), "ease": (np.nan, np.nan, 0.30, 0.66)})
    choice = choose_per_page(table)
    assert choice.routes == {"customer": "repeat", "customer_new_items": "repeat", "basket": "ease", "product": "ease"}
    # nothing led on a page without cases: no lead (NaN) is reported for it
    assert set(choice.leads()) == {"basket", "product"}


def test_a_one_case_page_is_led_by_its_best_mean_unless_the_rule_is_on():
    # one validation case: the paired standard error is infinite, so only the one-SE rule ties them
    per_case = {"repeat": {"customer": np.array([0.2])}, "als": {"customer": np.array([0.3])}}
    table = pd.DataFrame([{"algorithm": a, "scenario": "customer", "ndcg": v["customer"].mean(), "hr": 0.0} for a, v in per_case.items()])
    assert choose_per_page(table, per_case=per_case).routes == {"customer": "als"}
    assert choose_per_page(table, per_case=per_case, standard_errors=1.0).routes == {"customer": "repeat"}
    for dial in (-1.0, float("nan")):
        with pytest.raises(ValueError, match="standard_errors"):
            choose_per_page(table, per_case=per_case, standard_errors=dial)


def test_choosing_refuses_an_empty_table():
    with pytest.raises(ValueError):
        choose_per_page(pd.DataFrame(columns=["algorithm", "scenario", "ndcg", "hr"]))


# -- routing -----------------------------------------------------------------------------------------
ROUTES = {"customer": "repeat", "customer_new_items": "ease", "basket": "ease", "product": "best_sellers"}


def _split():
    train, test = temporal_split(tiny_interactions(), "2024-04-10")
    return train, test, build_cases(train, test, seed=0)


def test_routing_serves_each_page_with_its_candidate():
    train, _, cases = _split()
    data = TrainingData.from_interactions(train)
    fitted = {name: make_model(name).fit(data) for name in ("repeat", "ease", "best_sellers")}
    routing = Routing.from_fitted(ROUTES, fitted)
    for scenario, scenario_cases in cases.items():
        got = routing.recommend(scenario_cases.requests, 10)
        want = fitted[ROUTES[scenario]].recommend(scenario_cases.requests, 10)
        assert [g.item_ids for g in got] == [w.item_ids for w in want]
        assert [g.reasons for g in got] == [w.reasons for w in want]
    mixed = [cases["product"].requests[0], cases["customer"].requests[0]]
    scores = routing.score(mixed)
    assert np.allclose(scores[0], fitted["best_sellers"].score(mixed[:1])[0])
    assert np.allclose(scores[1], fitted["repeat"].score(mixed[1:])[0])
    table = evaluate(routing, cases)
    for scenario in cases:
        alone = evaluate(fitted[ROUTES[scenario]], {scenario: cases[scenario]}).iloc[0]
        assert table.set_index("scenario").loc[scenario, "ndcg"] == pytest.approx(alone["ndcg"])


def test_routing_fits_its_candidates_from_their_specs():
    train, _, cases = _split()
    candidates = {"repeat": {"algorithm": "repeat", "params": {"half_life_days": 30.0}}, "ease": {"algorithm": "ease"},
                  "best_sellers": {"algorithm": "best_sellers"}}
    routing = Routing(ROUTES, candidates).fit(TrainingData.from_interactions(train))
    assert routing.models["repeat"].params["half_life_days"] == 30.0
    assert len(routing.recommend(cases["basket"].requests[:3], 5)) == 3


def test_routing_names_what_is_wrong():
    with pytest.raises(ValueError, match="customer_new_items"):
        Routing({"customer": "a", "basket": "a", "product": "a"}, {"a": {"algorithm": "repeat"}})
    with pytest.raises(ValueError, match="does not define"):
        Routing(dict.fromkeys(PAGES, "nope"), {"a": {"algorithm": "repeat"}})


# -- search ------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def tiny_folds():
    return folds_of(tiny_interactions(n_baskets=600))


def test_every_search_space_names_real_arguments():
    for algorithm in SEARCH_SPACES:
        assert algorithm in MODELS
        search_space(algorithm)  # raises on a name the constructor does not take


def test_search_starts_from_the_defaults_and_is_deterministic(tiny_folds):
    seen = []
    first = search("ease", tiny_folds, n_trials=4, seed=1, on_trial=seen.append)
    second = search("ease", tiny_folds, n_trials=4, seed=1)
    assert [t.number for t in seen] == [0, 1, 2, 3]
    assert seen[0].params["lambda_"] == 250.0 and seen[0].params["matrix"] == "customer"
    assert [t.params for t in first.trials] == [t.params for t in second.trials]
    assert [t.objective for t in first.trials] == [t.objective for t in second.trials]
    top = max(first.trials, key=lambda t: (t.objective, -t.number))
    kept = first.trials[first.chosen_trial]
    assert first.chosen_trial in (0, top.number) and first.best_params == kept.params
    assert first.best.objective() == kept.objective
    assert set(first.trials_table().columns) >= {"trial", "objective", "customer.ndcg", "product.hr", "param.lambda_"}


def test_a_probed_switch_is_tried_right_after_the_defaults(tiny_folds):
    # the champion's catalog features: a short budget (two trials on Online Retail) still compares
    # them with the defaults, all else equal, instead of leaving them to the sampler's random start
    seen = []
    found = search("champion", tiny_folds, n_trials=2, seed=0, fixed={"ranker_iterations": 5, "max_training_rows": 50_000},
                   on_trial=seen.append)
    assert [t.number for t in seen] == [0, 1]  # fixed by the user, the re-rankers' rows are not cut afterwards
    defaults, probe = seen[0].params, seen[1].params
    assert defaults["catalog_features"] is False and probe["catalog_features"] is True
    assert {k: v for k, v in probe.items() if k != "catalog_features"} == {k: v for k, v in defaults.items() if k != "catalog_features"}
    assert found.chosen_trial in (0, 1)


def _validation(per_page: dict) -> Validation:
    """A Validation of these per-case headline values, one array per page."""
    table = pd.DataFrame([{"scenario": p, "n_cases": len(v), HEADLINE[p]: float(np.mean(v))} for p, v in per_page.items()])
    return Validation(table, {p: {HEADLINE[p]: np.asarray(v, dtype=float)} for p, v in per_page.items()})


def _trial(number: int, per_page: dict) -> Trial:
    validation = _validation(per_page)
    return Trial(number, {"setting": number}, validation, validation.objective(), 0.1)


def test_a_best_trial_within_the_noise_of_the_defaults_keeps_the_defaults():
    rng = np.random.default_rng(0)
    defaults = {p: rng.uniform(0.2, 0.6, 400) for p in HEADLINE}
    # the same cases, half up and half down by about as much: a small gain that a draw of other
    # cases could as well have turned into a loss
    swing = np.resize([0.15, -0.146], 400)
    lucky = {p: v + rng.permutation(swing) for p, v in defaults.items()}
    # every case a little better: a real gain, though smaller than the lucky one's swings
    better = {p: v + rng.normal(0.03, 0.02, len(v)) for p, v in defaults.items()}
    gain, error = _validation(lucky).objective_gain(_validation(defaults))
    assert 0 < gain < error
    kept, why = choose_trial(_trial(3, lucky), _trial(0, defaults))
    assert kept.number == 0 and "within one standard error" in why
    gain, error = _validation(better).objective_gain(_validation(defaults))
    assert gain > 5 * error
    kept, why = choose_trial(_trial(5, better), _trial(0, defaults))
    assert kept.number == 5 and "more than one standard error" in why
    # the same draw every time, and a pairing that must be a pairing
    assert _validation(lucky).objective_gain(_validation(defaults)) == _validation(lucky).objective_gain(_validation(defaults))
    with pytest.raises(ValueError, match="the same cases"):
        _validation({p: v[:10] for p, v in lucky.items()}).objective_gain(_validation(defaults))


def test_an_economy_cut_is_kept_only_within_one_standard_error_below_the_choice():
    rng = np.random.default_rng(1)
    chosen = {p: rng.uniform(0.2, 0.6, 400) for p in HEADLINE}
    # cheaper and as good, give or take the luck of the cases: kept, even a little below the choice
    noisy = {p: v + rng.permutation(np.resize([0.1, -0.104], 400)) for p, v in chosen.items()}
    gain, error = _validation(noisy).objective_gain(_validation(chosen))
    assert -error < gain < 0
    keep, why = keep_cut(_trial(4, noisy), _trial(1, chosen))
    assert keep and "within one standard error" in why
    # cheaper and worse on most cases: not kept, whatever it saves
    worse = {p: v - rng.normal(0.02, 0.01, len(v)) for p, v in chosen.items()}
    keep, why = keep_cut(_trial(5, worse), _trial(1, chosen))
    assert not keep and "more than one standard error" in why
    failed = Trial(6, {"setting": 6}, None, float("nan"), 0.1, "FAIL", "MemoryError()", "economy")
    assert keep_cut(failed, _trial(1, chosen)) == (False, "failed (MemoryError())")


def test_search_keeps_the_users_fixed_values_and_respects_the_time_budget(tiny_folds):
    result = search("ease", tiny_folds, fixed={"matrix": "basket"}, n_trials=50, timeout_s=0.0)
    assert len(result.trials) == 1  # the defaults run whatever the budget
    assert result.best_params["matrix"] == "basket" and "matrix" not in search_space("ease", {"matrix": "basket"})


def test_validate_pools_the_cases_of_every_window(tiny_folds):
    result = validate("repeat", tiny_folds)
    n = result.table.set_index("scenario")["n_cases"]
    assert n["customer"] == sum(len(f.cases["customer"]) for f in tiny_folds)
    assert len(result.per_case["customer"]["ndcg"]) == n["customer"]
    assert set(result.headline()) == {"customer", "customer_new_items", "basket", "product"}


def test_validating_on_a_retailer_without_customers_warns_of_nothing():
    """Its customer pages have no case in any window: their figures are NaN, quietly (a scheduled
    run's log held a numpy warning per candidate and page)."""
    anonymous = folds_of(tiny_interactions(n_baskets=600).assign(customer_id=None))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        table = validate("best_sellers", anonymous).table.set_index("scenario")
    assert table.loc["customer", "n_cases"] == 0 and np.isnan(table.loc["customer", "novelty"])
    assert table.loc["basket", "n_cases"] > 0 and not np.isnan(table.loc["basket", "novelty"])


def test_search_trials_are_nested_mlflow_runs(tiny_folds, workbench_home):
    from workbench import tracking
    from workbench.tuning import plot_importances, plot_search, tune_and_log

    parent = tracking.start_pipeline_run("T1")
    result, tuning_run = tune_and_log("sar", tiny_folds, parent_run_id=parent, legal_entity="T1", n_trials=4, seed=0)
    client = tracking.mlflow_client()
    trials = client.search_runs([tracking.experiment_id()], f"tags.mlflow.parentRunId = '{tuning_run}'")
    assert len(trials) == 4
    for run in trials:
        assert run.data.tags[tracking.KIND_TAG] == "trial" and "hp.similarity" in run.data.params
        assert 0 <= run.data.metrics["customer.ndcg_at_10"] <= 1 and "objective" in run.data.metrics
    assert client.get_run(tuning_run).data.tags["mlflow.parentRunId"] == parent
    import matplotlib.pyplot as plt

    plt.close(plot_search({"sar": result}))
    plt.close(plot_importances({"sar": result}))


def test_a_tuned_champions_economy_cuts_are_trials_of_its_tuning_run(tiny_folds, workbench_home):
    import io

    import matplotlib.pyplot as plt
    from tqdm.auto import tqdm

    from workbench import tracking
    from workbench.tuning import plot_search, tune_all

    parent = tracking.start_pipeline_run("T1")
    progress = tqdm(total=2, file=io.StringIO())
    result, tuning_run = tune_all(["champion"], tiny_folds, parent_run_id=parent, legal_entity="T1", n_trials=2, seed=0,
                                  fixed={"champion": {"ranker_iterations": 5}}, progress=progress)["champion"]
    client = tracking.mlflow_client()
    trials = client.search_runs([tracking.experiment_id()], f"tags.mlflow.parentRunId = '{tuning_run}'")
    steps = sorted((int(r.data.params["trial"]), r.data.tags["workbench.trial_step"], r.data.params.get("hp.max_training_rows"))
                   for r in trials)
    assert steps == [(0, "search", None), (1, "search", None), (2, "economy", "25000"), (3, "economy", "12500")]
    assert progress.n == progress.total == 4  # the cuts count, beyond the trials the bar was given
    assert result.best_params["max_training_rows"] == 12_500  # nothing to lose on this small retailer's rows
    plt.close(plot_search({"champion": result}))


def test_tune_all_gives_the_blend_what_the_single_algorithms_kept(tiny_folds, workbench_home):
    from workbench import tracking
    from workbench.tuning import tune_all

    parent = tracking.start_pipeline_run("T1")
    searched = tune_all(["blend", "repeat"], tiny_folds, parent_run_id=parent, legal_entity="T1", n_trials=2, seed=0,
                        fixed={"repeat": {"half_life_days": 33.0}}, untuned={"repeat"})
    assert list(searched) == ["blend", "repeat"]  # as given, though repeat was searched first
    blend, tuning_run = searched["blend"]
    # no probes: the first trial after the defaults takes repeat's half-life, the rest as the defaults
    defaults, guessed = (t.params for t in blend.trials)
    assert guessed == {**defaults, "repeat_half_life_days": 33.0} and defaults["repeat_half_life_days"] != 33.0
    logged = tracking.mlflow_client().get_run(tuning_run).data.params
    assert json.loads(logged["first_guesses"]) == {"repeat_half_life_days": 33.0}
    # the wall-time limit it ran under is the one shared by every algorithm's search
    assert "budget_s" in logged and "timeout_s" not in logged
    # an algorithm that takes none logs none
    sar = tune_all(["repeat", "sar"], tiny_folds, parent_run_id=parent, legal_entity="T1", n_trials=1, seed=0,
                   fixed={"repeat": {"half_life_days": 33.0}})["sar"][1]
    assert "first_guesses" not in tracking.mlflow_client().get_run(sar).data.params


def test_tune_all_leaves_no_tuning_run_running_where_recording_a_result_fails(tiny_folds, workbench_home, monkeypatch):
    """A failure while a finished search's result is recorded ends every tuning run not yet closed as
    FAILED (the ones closed before it stay FINISHED): none is left RUNNING for a dead pipeline."""
    from workbench import tracking, tuning

    closing = tuning._close_tuning_run

    def fails_on_the_second(client, run_id, result):
        if result.algorithm == "repeat":
            raise RuntimeError("tracking store went away")
        closing(client, run_id, result)

    monkeypatch.setattr(tuning, "_close_tuning_run", fails_on_the_second)
    parent = tracking.start_pipeline_run("T1")
    with pytest.raises(RuntimeError, match="tracking store went away"):
        tuning.tune_all(["best_sellers", "repeat", "trending"], tiny_folds, parent_run_id=parent, legal_entity="T1", n_trials=1, seed=0)
    client = tracking.mlflow_client()
    runs = client.search_runs([tracking.experiment_id()], filter_string=f"tags.mlflow.parentRunId = '{parent}'")
    status = {r.info.run_name: r.info.status for r in runs if r.info.run_name.endswith("-tuning")}
    assert status == {"best_sellers-tuning": "FINISHED", "repeat-tuning": "FAILED", "trending-tuning": "FAILED"}


def test_choose_champion_rules():
    results = pd.DataFrame(
        [
            ("a", "customer", 0.30, 0.8), ("a", "customer_new_items", 0.05, 0.3), ("a", "basket", 0.1, 0.20), ("a", "product", 0.1, 0.50),
            ("b", "customer", 0.25, 0.7), ("b", "customer_new_items", 0.09, 0.4), ("b", "basket", 0.2, 0.30), ("b", "product", 0.2, 0.60),
            ("c", "customer", 0.10, 0.5), ("c", "customer_new_items", 0.01, 0.1), ("c", "basket", 0.3, 0.40), ("c", "product", 0.1, 0.40),
        ],
        columns=["algorithm", "scenario", "ndcg", "hr"],
    )
    champion, table = choose_champion(results, "rank_sum")
    assert champion == "b" and table["algorithm"].tolist()[0] == "b"
    assert choose_champion(results, "metric:basket.hr")[0] == "c"
    assert choose_champion(results, "metric:customer.ndcg")[0] == "a"
    with pytest.raises(ValueError, match="unknown"):
        choose_champion(results, "best")
    with pytest.raises(ValueError, match="metric:<scenario>.<metric>"):
        choose_champion(results, "metric:basket")
    # a notebook's champion_rule: one algorithm on every page, or each page its own winner
    assert choose(results, "rank_sum").routes == dict.fromkeys(["customer", "customer_new_items", "basket", "product"], "b")
    assert choose(results, "rank_sum").leads() == {}
    assert choose(results, "per_page").routes == {"customer": "a", "customer_new_items": "b", "basket": "c", "product": "b"}


def test_hyperparameters_map_flat_parameters_to_each_algorithm():
    chosen = algorithm_hyperparameters(
        ["sar", "ease", "repeat", "als"],
        {"sar_similarity": "lift", "ease_lambda": 50.0, "repeat_half_life_days": None, "als_factors": 8},
        {"sar": {"half_life_days": 10}},
        seed=3,
    )
    assert chosen["sar"] == {"similarity": "lift", "half_life_days": 10}
    assert chosen["ease"] == {"lambda_": 50.0}
    assert chosen["repeat"] == {}
    assert chosen["als"] == {"factors": 8, "seed": 3}
    with pytest.raises(ValueError, match=r"\['nope'\] are not arguments of 'sar'"):
        algorithm_hyperparameters(["sar"], {}, {"sar": {"nope": 1}})
    with pytest.raises(ValueError, match="not among algorithms"):
        algorithm_hyperparameters(["sar"], {}, {"ease": {}})
