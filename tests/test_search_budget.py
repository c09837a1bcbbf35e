"""The wall-time budget of the hyperparameter search holds: no trial starts that the time left could
not hold at the pace of the slowest trial so far (an economy cut: of the trial it cuts), and every
algorithm's defaults still run."""

from dataclasses import replace

import pytest
from helpers import tiny_interactions
from helpers import tiny_folds as folds_of

from workbench.evaluation.search import Search, search, search_all, seeded_settings, top_trial
from workbench.evaluation.spaces import ECONOMIES, CostlySwitch


@pytest.fixture(scope="module")
def tiny_folds():
    return folds_of(tiny_interactions(n_baskets=600))


def test_no_trial_starts_when_the_time_left_is_less_than_the_slowest_so_far(tiny_folds):
    found = Search("ease", tiny_folds, n_trials=5, seed=0).run(up_to=2)
    assert len(found.trials) == 2 and not found.done
    slowest = max(t.seconds for t in found.trials)
    found.run(timeout_s=0.99 * slowest)
    assert len(found.trials) == 2 and found.stopped == "budget"
    found.run(timeout_s=1000 * slowest + 60)
    assert len(found.trials) == 5 and found.stopped == "trials"
    result = found.result()
    assert result.wall_s >= sum(t.seconds for t in result.trials)
    assert [t.number for t in result.trials] == [0, 1, 2, 3, 4]


def test_continuing_a_search_proposes_what_one_run_would(tiny_folds):
    in_steps = Search("sar", tiny_folds, n_trials=4, seed=3).run(up_to=1).run(up_to=2).run().result()
    at_once = search("sar", tiny_folds, n_trials=4, seed=3)
    assert [t.params for t in in_steps.trials] == [t.params for t in at_once.trials]


def test_search_all_runs_every_default_and_nothing_more_without_budget(tiny_folds):
    seen = []
    results = search_all(["best_sellers", "repeat", "ease"], tiny_folds, n_trials=4, budget_s=0.0, seed=0,
                         on_trial=lambda algorithm, trial: seen.append((algorithm, trial.number)))
    assert {a: len(r.trials) for a, r in results.items()} == {"best_sellers": 1, "repeat": 1, "ease": 1}
    assert {r.stopped for r in results.values()} == {"budget"}
    # the defaults first, all of them, before any further trial
    assert seen == [("best_sellers", 0), ("repeat", 0), ("ease", 0)]


def test_search_all_without_a_time_limit_runs_every_trial(tiny_folds):
    results = search_all(["best_sellers", "ease"], tiny_folds, n_trials=3, budget_s=None, seed=0, untuned={"ease"})
    # best_sellers has two settings to try (per store or not); ease is untuned: its given settings only
    assert len(results["best_sellers"].trials) == 3 and results["best_sellers"].stopped == "trials"
    assert len(results["ease"].trials) == 1
    assert all(r.wall_s > 0 for r in results.values())


def test_search_all_runs_each_probe_then_the_first_guess_before_any_sampled_trial(tiny_folds):
    seen = []
    results = search_all(["champion", "ease"], tiny_folds, n_trials=5, budget_s=None, seed=0,
                         fixed={"champion": {"ranker_iterations": 5, "max_training_rows": 50_000},
                                "ease": {"lambda_": 77.0, "matrix": "basket"}},
                         untuned={"ease"}, on_trial=lambda algorithm, trial: seen.append((algorithm, trial.number)))
    assert seen == [("champion", 0), ("ease", 0), *(("champion", n) for n in range(1, 5))]
    trials = results["champion"].trials
    # each probe, then the guess: the best trial before it with that one change
    for n, switch in ((1, "catalog_features"), (2, "search_every_page")):
        before = top_trial(trials[:n]).params
        assert trials[n].params == {**before, switch: not before[switch]}
    before = top_trial(trials[:3]).params
    assert trials[3].params == {**before, "basket_lambda": 77.0} and before["basket_lambda"] != 77.0
    # and only where the time left holds it, as any trial
    held = search_all(["champion"], tiny_folds, n_trials=3, budget_s=0.0, seed=0, fixed={"champion": {"ranker_iterations": 5}})
    assert len(held["champion"].trials) == 1 and held["champion"].stopped == "budget"


def test_the_single_searches_that_give_first_guesses_go_before_the_champions_first_steps(tiny_folds):
    seen = []
    search_all(["champion", "sar", "repeat"], tiny_folds, n_trials=3, budget_s=None, seed=0,
               fixed={"champion": {"ranker_iterations": 5}}, on_trial=lambda algorithm, trial: seen.append((algorithm, trial.number)))
    # the defaults of all; repeat's search (it gives the champion's first guess); the champion's probes
    # (its guess would follow); then sar's sampled trials before the champion's last (the blend and the champion last);
    # last of all the cuts of the champion's re-ranker rows (its economy)
    assert seen[:3] == [("champion", 0), ("sar", 0), ("repeat", 0)]
    assert seen[3:5] == [("repeat", 1), ("repeat", 2)]
    assert seen[5:7] == [("champion", 1), ("champion", 2)] and seen[7:9] == [("sar", 1), ("sar", 2)]
    assert seen[9:] == [("champion", 3), ("champion", 4)]


def test_the_blends_first_guesses_are_what_the_single_algorithms_kept():
    kept = {"repeat": {"half_life_days": 300.0, "use_quantity": True}, "ease": {"lambda_": 80.0, "matrix": "customer"}}
    # EASE's lambda is the customer one here: the basket lambda keeps its own
    assert seeded_settings(kept) == {"repeat_half_life_days": 300.0, "customer_lambda": 80.0}
    assert seeded_settings({"ease": {"lambda_": 80.0, "matrix": "basket"}}) == {"basket_lambda": 80.0}
    assert seeded_settings({}) == {}


def test_search_all_seeds_the_champions_first_guess_with_what_the_single_algorithms_kept(tiny_folds):
    seen = []
    results = search_all(["champion", "trending", "repeat", "ease"], tiny_folds, n_trials=4, budget_s=None, seed=0,
                         fixed={"champion": {"ranker_iterations": 5, "max_training_rows": 50_000}, "repeat": {"half_life_days": 33.0},
                                "ease": {"lambda_": 77.0, "matrix": "basket"}},
                         untuned={"repeat", "ease"}, on_trial=lambda algorithm, trial: seen.append((algorithm, trial.number)))
    # listed first, the champion still searches after trending, whose kept half-life it takes
    assert seen.index(("champion", 3)) > max(seen.index(("trending", n)) for n in range(4))
    trials = results["champion"].trials
    assert len(trials) == 4
    # the first trial after the probes
    seeded, best = trials[3].params, top_trial(trials[:3]).params
    taken = {"repeat_half_life_days": 33.0, "basket_lambda": 77.0,
             "trending_half_life_days": results["trending"].best_params["half_life_days"]}
    assert {k: seeded[k] for k in taken} == taken
    # everything else as the best trial before it
    assert {k: v for k, v in seeded.items() if k not in taken} == {k: v for k, v in best.items() if k not in taken}


def test_the_champions_choice_is_then_cut_where_the_cut_costs_nothing_and_time_holds_it(tiny_folds):
    seen = []
    rows_only = {"ranker_iterations": 5, "search_every_page": False}  # the switch's cut: the test below
    found = search("champion", tiny_folds, n_trials=2, seed=0, fixed=rows_only, on_trial=seen.append)
    assert [(t.number, t.step) for t in seen] == [(0, "search"), (1, "search"), (2, "economy"), (3, "economy")]
    choice = found.trials[0] if found.trials[1].objective <= found.trials[0].objective else found.trials[1]
    # each cut is the searched choice with fewer re-ranker rows, nothing else changed
    assert seen[2].params == {**choice.params, "max_training_rows": 25_000}
    assert seen[3].params == {**choice.params, "max_training_rows": 12_500}
    # no re-ranker of this small retailer learns from 12,500 rows: the cuts lose nothing and are kept
    assert seen[3].objective == choice.objective
    assert found.chosen_trial == 3 and found.best_params["max_training_rows"] == 12_500
    assert "max_training_rows 12500 (trial 3) kept" in found.chosen_by
    assert found.best.objective() == seen[3].objective

    # no cut starts that the time left could not hold, and none is added once the choice is cut
    held = Search("champion", tiny_folds, n_trials=2, seed=0, fixed=rows_only).run()
    assert held.economy_reserve() == 2 * max(t.seconds for t in held.trials)
    held.economize(timeout_s=0.0)
    assert len(held.trials) == 2 and held.stopped == "budget" and held.economy_reserve() == 0.0
    result = held.result()
    assert "max_training_rows" not in result.best_params and "25000 not tried" in result.chosen_by
    held.run(up_to=5)
    assert len(held.trials) == 2

    # a cut is paced by the trial it cuts, not by a slower trial the choice passed over
    paced = Search("champion", tiny_folds, n_trials=2, seed=0, fixed=rows_only).run()
    chosen = paced._choice()[0]
    paced.trials = [t if t is chosen else replace(t, seconds=1e6) for t in paced.trials]
    assert paced.economy_reserve() == 2e6  # before the choice, the slowest trial is what may come
    paced.economize(timeout_s=4 * chosen.seconds + 60.0)
    assert [t.step for t in paced.trials] == ["search", "search", "economy", "economy"]


def test_a_costly_switch_chosen_on_is_tried_off_on_the_trial_that_already_ran_it(tiny_folds, monkeypatch):
    import workbench.evaluation.search as searching

    # every page's blend searched is the only economy here (the re-ranker rows fixed)
    fixed = {"ranker_iterations": 5, "max_training_rows": 50_000, "catalog_features": False}
    found = Search("champion", tiny_folds, n_trials=2, seed=0, fixed=fixed).first_steps()
    off, on = found.trials
    assert (off.params["search_every_page"], on.params) == (False, {**off.params, "search_every_page": True})
    # the cut of either trial has run: nothing to set time aside for
    assert found.economy_reserve() == 0.0
    # chosen on (whichever won here), it is set against the same settings off, which are not run again
    monkeypatch.setattr(searching, "choose_trial", lambda top, defaults, seed=0: (on, "the switch on, for this test"))
    result = found.economize(timeout_s=0.0).result()
    assert len(found.trials) == 2 and found.stopped != "budget"
    keep, why = searching.keep_cut(off, on, seed=0)
    assert f"search_every_page False (trial 0) {why}" in result.chosen_by
    assert result.chosen_trial == (0 if keep else 1)
    assert result.best_params["search_every_page"] is (not keep)


def test_a_costly_switch_is_cut_to_off_and_only_from_on():
    switch = ECONOMIES["champion"]["search_every_page"]
    assert isinstance(switch, CostlySwitch) and switch.steps == 1
    assert switch.cuts(True) == [False] and switch.cuts(False) == []
    # cut before the rows, whose cuts would change the settings its ran trial has
    assert list(ECONOMIES["champion"]).index("search_every_page") < list(ECONOMIES["champion"]).index("max_training_rows")
