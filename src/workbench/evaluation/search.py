"""A budgeted hyperparameter search per algorithm on the retailer's validation windows (Optuna).

`evaluation.spaces` is the documented data of what is searched: per algorithm, per constructor
argument, the range and why (`SEARCH_SPACES`). The first trial is always the algorithm's defaults (a starting point,
not an answer); then the trials that carry evidence (each probed switch, then a first guess from
other searches: `Search.first_steps`); then a seeded TPE sampler proposes, until `n_trials` ran or
the next trial would not fit in what is left of `timeout_s` at the pace of the slowest trial so far (`Search.run`). Each
trial fits on every fold's history and scores that fold's cases, nothing after the split. The
objective is `Validation.objective` (geometric mean of the pages' headline metrics). The search
keeps its best trial only where it beats the defaults by more than one standard error of the
difference (`Validation.objective_gain`, the one-standard-error rule of Breiman et al.): the best of
a few trials on a small retailer's validation cases is partly the luck of those cases, and a gain
within that luck is no reason to leave the defaults (notebooks/research/search_replication.ipynb:
on Online Retail, trials that beat the defaults on one validation window by at most one standard
error lost to them on the next window on average; `make research`). `on_trial` is
called after each trial (the tracking layer logs it as an MLflow run; this module logs nothing).
`search_all` runs every algorithm's search within one wall-time budget.

Last, where the algorithm has settings that buy quality with fit time (`spaces.ECONOMIES`: the
champion's every-page weight search and its re-ranker rows), `Search.economize` tries the chosen
settings with each cut in turn and keeps a cut while its validation loss to the chosen trial stays
within one standard error: the same rule pointed at the fit's cost, so a retailer whose data does not
need the expensive setting does not pay for it (notebooks/research/reranker_rows).

With a `timeout_s`, how many trials fit in it depends on the machine; for runs that must repeat
bit for bit, give `n_trials` alone.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, field
from typing import Any, Callable

import pandas as pd

from workbench.evaluation import metrics
from workbench.evaluation.selection import Validation, validate
from workbench.evaluation.spaces import (
    SEARCH_SPACES,
    SEEDED_BY,
    Choice,
    FloatRange,
    IntRange,
    economies,
    first_guesses_for,
    probed_switches,
    search_space,
    seeded_last,
    seeded_settings,
    starting_point,
    within,
)
from workbench.evaluation.windows import Fold
from workbench.models.settings import defaults

__all__ = ["SEARCH_SPACES", "Search", "SearchResult", "Trial", "choose_trial", "keep_cut", "search", "search_all",
           "search_space", "seeded_settings", "top_trial"]


@dataclass
class Trial:
    number: int
    params: dict
    validation: Validation | None
    objective: float
    seconds: float
    state: str = "COMPLETE"
    error: str = ""
    step: str = "search"  # "search": the defaults, a probe, a guess or a sampled trial; "economy": a cut (Search.economize)


@dataclass
class SearchResult:
    """A finished search. `best_params` / `best`: the chosen trial's settings and validation figures:
    the top trial, or the defaults where the top one's gain over them is within one standard error
    (`chosen_by` says which, with the gain); then its cheapest economy cut within one standard error
    of it, where `Search.economize` kept one (`chosen_by` says so too)."""

    algorithm: str
    best_params: dict
    best: Validation
    trials: list[Trial] = field(default_factory=list)
    study: Any = None
    wall_s: float = 0.0  # wall time of the whole search, every trial and the sampler between them
    stopped: str = "trials"  # "trials": all of n_trials ran; "budget": the next would not have fit
    chosen_trial: int = 0
    chosen_by: str = "the defaults: the best trial"
    first_guesses: dict = field(default_factory=dict)  # what its first guess took from other searches

    @property
    def top(self) -> Trial:
        """The trial with the best validation objective (ties: the earlier), kept or not."""
        return top_trial(self.trials)

    def trials_table(self) -> pd.DataFrame:
        """One row per trial: number, objective, seconds, state, the headline metrics, the params."""
        rows = []
        for t in self.trials:
            row = {"trial": t.number, "objective": t.objective, "seconds": round(t.seconds, 2), "state": t.state, "step": t.step}
            if t.validation is not None:
                row.update({f"{s}.{metrics.HEADLINE[s]}": v for s, v in t.validation.headline().items()})
            row.update({f"param.{k}": v for k, v in t.params.items()})
            rows.append(row)
        return pd.DataFrame(rows)


def _suggest(trial, name: str, spec):
    if isinstance(spec, FloatRange):
        return trial.suggest_float(name, spec.low, spec.high, log=spec.log)
    if isinstance(spec, IntRange):
        return trial.suggest_int(name, spec.low, spec.high, log=spec.log)
    if isinstance(spec, Choice):
        return trial.suggest_categorical(name, list(spec.options))
    raise TypeError(f"search space entry {name!r} is a {type(spec).__name__}, not FloatRange, IntRange or Choice")


class Search:
    """One algorithm's search on `folds`, which can be continued: `run` adds trials within a trial
    count and a wall time. `fixed` (given by the user) are not searched. The defaults are trial 0
    and always run; an algorithm without a search space runs only that. `n_trials` is the most
    the search will hold in all (it also sizes the sampler's random start)."""

    def __init__(
        self,
        algorithm: str,
        folds: list[Fold],
        *,
        fixed: dict | None = None,
        n_trials: int = 20,
        seed: int = 0,
        k: int = 10,
        catalog=None,
        on_trial: Callable[[Trial], None] | None = None,
    ):
        import optuna

        self.algorithm, self.folds, self.k, self.catalog, self.on_trial = algorithm, folds, k, catalog, on_trial
        self.seed = seed
        self.fixed = dict(fixed or {})
        self.space = search_space(algorithm, self.fixed)
        self.n_trials = max(int(n_trials), 1) if self.space else 1
        self.trials: list[Trial] = []
        self.wall_s = 0.0
        self.stopped = ""
        logging.getLogger("optuna").setLevel(logging.WARNING)
        sampler = optuna.samplers.TPESampler(seed=seed, n_startup_trials=min(8, max(int(n_trials) // 3, 2)))
        self.study = optuna.create_study(direction="maximize", sampler=sampler, study_name=f"{algorithm}-validation")
        start = starting_point(algorithm, self.space)
        self.study.enqueue_trial(start, skip_if_exists=True)
        # the probed switches, tried by `first_steps` before any sampled trial
        self.switches = [name for name in probed_switches(self.space) if name in start]
        self.first_guesses: dict = {}  # what `try_next` took, for the record
        # the settings `economize` may cut once the search has chosen; none for an untuned algorithm
        self.economies = economies(algorithm, self.fixed) if self.n_trials > 1 else {}
        self.economized: tuple[Trial, str] | None = None  # (the trial kept after the cuts, why), once economize ran

    def _queue(self, proposal: dict) -> dict:
        if any(all(t.params.get(k) == v for k, v in proposal.items()) for t in self.trials):
            return {}
        self.study.enqueue_trial(proposal, skip_if_exists=True)
        return proposal

    def _best_so_far(self) -> dict:
        done = [t for t in self.trials if t.state == "COMPLETE"]
        return {k: v for k, v in top_trial(done).params.items() if k in self.space} if done else {}

    def try_next(self, settings: dict) -> dict:
        """Make the next trial the best one so far with `settings` changed (only those this search
        searches, within its ranges), unless a trial already ran them; returns what was queued."""
        settings = {k: v for k, v in settings.items() if k in self.space and within(self.space[k], v)}
        best = self._best_so_far()
        if not settings or not best or self.done:
            return {}
        proposal = self._queue({**best, **settings})
        if proposal:  # recorded only where it makes a trial of its own
            self.first_guesses = settings
        return proposal

    def probe(self, name: str) -> dict:
        """Make the next trial the best one so far with the probed switch `name` changed (to its
        first other option), unless a trial already ran that; returns what was queued."""
        best = self._best_so_far()
        if not best or self.done:
            return {}
        other = next(o for o in self.space[name].options if o != best[name])
        return self._queue({**best, name: other})

    def first_steps(self, timeout_s: float | None = None, guesses: dict | None = None) -> "Search":
        """After the defaults, the trials that carry evidence before any sampled one: each probed
        switch, then the first guess (`try_next(guesses)`: what the single algorithms' searches kept
        for the same signals, on the same windows), each trial the best so far with that change, while
        the time left from this call holds the slowest trial so far. The switches go first: each is
        one change, which the guess then builds on, and which a retailer keeps is its own validation's
        to say (the settings each dataset's search kept: benchmarks/results/quality.md)."""
        started = time.perf_counter()
        if not self.trials:
            self.run(up_to=1)
        steps = [lambda name=name: self.probe(name) for name in self.switches] + [lambda: self.try_next(guesses or {})]
        for step in steps:
            if self.done:
                break
            if timeout_s is not None and float(timeout_s) - (time.perf_counter() - started) < self._slowest():
                self.stopped = "budget"
                break
            if step():
                self.run(up_to=len(self.trials) + 1)
        return self

    def _slowest(self) -> float:
        return max((t.seconds for t in self.trials), default=0.0)

    def _evaluate(self, number: int, params: dict, step: str = "search") -> Trial:
        """Validate `params` as trial `number` and record it; a failure fails the trial (FAIL), not
        the search, except the defaults' (trial 0), without which there is nothing to choose from."""
        started = time.perf_counter()
        try:
            result = validate(self.algorithm, self.folds, params, k=self.k, catalog=self.catalog)
        except Exception as error:  # a bad corner of the space fails the trial, not the search
            if number == 0:
                raise
            trial = Trial(number, params, None, float("nan"), time.perf_counter() - started, "FAIL", repr(error), step)
        else:
            trial = Trial(number, params, result, result.objective(), time.perf_counter() - started, step=step)
        self._record(trial)
        return trial

    def _objective(self, trial) -> float:
        import optuna

        params = {**self.fixed, **{name: _suggest(trial, name, spec) for name, spec in self.space.items()}}
        done = self._evaluate(trial.number, params)
        if done.state == "FAIL":
            raise optuna.TrialPruned(done.error)
        trial.set_user_attr("headline", done.validation.headline())
        return done.objective if math.isfinite(done.objective) else 0.0

    def _record(self, trial: Trial) -> None:
        self.trials.append(trial)
        if self.on_trial:
            self.on_trial(trial)

    @property
    def done(self) -> bool:
        """Whether the search holds all the trials it may."""
        return len(self.trials) >= self.n_trials

    def run(self, timeout_s: float | None = None, *, up_to: int | None = None) -> "Search":
        """Run trials until the search holds `up_to` (default `n_trials`) or the next would not fit
        in `timeout_s` seconds from this call: the defaults (trial 0) always run, without them there
        is nothing to choose from; after them no trial starts when the time left is less than the
        slowest trial of this algorithm so far (a trial's time is known only once it ran)."""
        started = time.perf_counter()
        wanted = min(self.n_trials, self.n_trials if up_to is None else int(up_to))
        if self.economized is not None:  # the choice is made and cut; a later trial would reopen it
            return self
        try:
            if not self.trials:
                self.study.optimize(self._objective, n_trials=1)
            while len(self.trials) < wanted:
                if timeout_s is not None:
                    left = float(timeout_s) - (time.perf_counter() - started)
                    if left < self._slowest():
                        self.stopped = "budget"
                        break
                self.study.optimize(self._objective, n_trials=1)
            else:
                self.stopped = "trials" if self.done else self.stopped
        finally:
            self.wall_s += time.perf_counter() - started
        return self

    def _choice(self) -> tuple[Trial, str]:
        """The searched trial kept (`choose_trial`), before any economy cut."""
        done = [t for t in self.trials if t.state == "COMPLETE" and t.step == "search"]
        if not done:
            raise RuntimeError(f"{self.algorithm}: no trial ran; call run() first")
        return choose_trial(top_trial(done), next((t for t in done if t.number == 0), None), seed=self.seed)

    def _ran(self, params: dict) -> Trial | None:
        """The completed trial that ran exactly `params`, if any."""
        return next((t for t in self.trials if t.state == "COMPLETE" and t.params == params), None)

    def economy_reserve(self) -> float:
        """Seconds `economize` may take: a trial per cut at the pace of the slowest trial so far, the
        cuts of the best trial so far (the choice is not known yet) less those a trial already ran
        (before any trial: every cut of every economy)."""
        if self.economized is not None:
            return 0.0
        done = [t for t in self.trials if t.state == "COMPLETE" and t.step == "search"]
        if not done:
            return sum(e.steps for e in self.economies.values()) * self._slowest()
        top = top_trial(done).params
        to_run = sum(self._ran({**top, name: cut}) is None
                     for name, economy in self.economies.items()
                     for cut in economy.cuts(top.get(name, defaults(self.algorithm)[name])))
        return to_run * self._slowest()

    def economize(self, timeout_s: float | None = None) -> "Search":
        """Cut the chosen trial's economy settings (`spaces.ECONOMIES`), one trial per cut, each the
        chosen settings with that setting cut further (a trial that already ran those settings, e.g. a
        switch's probe's starting point, is not run again); a cut is kept while the loss of its validation
        objective to the chosen trial's is within one standard error of the difference (paired over
        the same cases, `Validation.objective_gain`), and the first that loses more ends that setting.
        Every cut is judged against the chosen trial, not the last cut, so what is kept stays within
        one standard error of the choice. No cut starts that the time left from this call could not
        hold at the pace of the trial it cuts (its settings with less work; the slowest trial so far,
        which `economy_reserve` sets time aside by before the choice is known, may be a probe of a
        slower setting). Runs once; afterwards `run` adds nothing."""
        started = time.perf_counter()
        if self.economized is not None or not self.economies:
            return self
        chosen, why = self._choice()
        kept, notes = chosen, []
        number = max(t.number for t in self.trials) + 1
        for name, economy in self.economies.items():
            value = kept.params.get(name, defaults(self.algorithm)[name])
            for cut in economy.cuts(value):
                trial = self._ran({**kept.params, name: cut})  # a probe's starting point often is the cut
                if trial is None:
                    if timeout_s is not None and float(timeout_s) - (time.perf_counter() - started) < kept.seconds:
                        self.stopped = "budget"
                        notes.append(f"{name} {cut} not tried: the time left would not hold it")
                        break
                    trial = self._evaluate(number, {**kept.params, name: cut}, step="economy")
                    number += 1
                keep, why_cut = keep_cut(trial, chosen, seed=self.seed)
                notes.append(f"{name} {cut} (trial {trial.number}) {why_cut}")
                if not keep:
                    break
                kept = trial
        self.wall_s += time.perf_counter() - started
        self.economized = (kept, f"{why}; then {'; '.join(notes)}" if notes else why)
        return self

    def result(self) -> SearchResult:
        chosen, why = self.economized or self._choice()  # no trial is added once economize ran
        return SearchResult(self.algorithm, chosen.params, chosen.validation, list(self.trials), self.study,
                            wall_s=self.wall_s, stopped=self.stopped or "trials", chosen_trial=chosen.number, chosen_by=why,
                            first_guesses=dict(self.first_guesses))


def top_trial(trials: list[Trial]) -> Trial:
    """The completed trial with the best validation objective (ties: the earlier)."""
    return max((t for t in trials if t.state == "COMPLETE"), key=lambda t: (t.objective, -t.number))


def choose_trial(top: Trial, defaults: Trial | None, *, seed: int = 0) -> tuple[Trial, str]:
    """(the trial whose settings are kept, why): `top`, unless its objective beats the `defaults`'
    by no more than one standard error of the difference on the same validation cases."""
    if defaults is None or top is defaults:
        return top, "the defaults: the best trial" if top is defaults else f"trial {top.number}: the best (the defaults failed)"
    gain, error = top.validation.objective_gain(defaults.validation, seed=seed)
    if math.isfinite(error) and gain <= error:
        return defaults, f"the defaults: trial {top.number} beat them by {gain:.4f}, within one standard error ({error:.4f})"
    return top, f"trial {top.number}: beat the defaults by {gain:.4f}, more than one standard error ({error:.4f})"


def keep_cut(cut: Trial, chosen: Trial, *, seed: int = 0) -> tuple[bool, str]:
    """(whether the economy `cut` is kept, why): where its validation objective is at most one
    standard error of the difference below the `chosen` trial's, on the same validation cases."""
    if cut.state != "COMPLETE":
        return False, f"failed ({cut.error})"
    gain, error = cut.validation.objective_gain(chosen.validation, seed=seed)
    if math.isfinite(error) and -gain <= error:
        return True, f"kept: {gain:+.4f} against the choice, within one standard error ({error:.4f})"
    return False, f"not kept: lost {-gain:.4f} to the choice, more than one standard error ({error:.4f})"


def search(
    algorithm: str,
    folds: list[Fold],
    *,
    fixed: dict | None = None,
    n_trials: int = 20,
    timeout_s: float | None = None,
    seed: int = 0,
    k: int = 10,
    catalog=None,
    on_trial: Callable[[Trial], None] | None = None,
    first_guesses: dict | None = None,
) -> SearchResult:
    """Search `algorithm`'s hyperparameters on `folds` within `n_trials` and `timeout_s` (see
    `Search.run`: the defaults always run; no later trial starts that the time left could not hold
    at the pace of the slowest one so far): the defaults, the probes and the first guess from
    `first_guesses` (e.g. `seeded_settings`) first (`Search.first_steps`), then sampled trials."""
    started = time.perf_counter()
    found = Search(algorithm, folds, fixed=fixed, n_trials=n_trials, seed=seed, k=k, catalog=catalog, on_trial=on_trial)
    found.first_steps(timeout_s, first_guesses)

    def left():
        return None if timeout_s is None else max(float(timeout_s) - (time.perf_counter() - started), 0.0)

    found.run(None if timeout_s is None else max(left() - found.economy_reserve(), 0.0))
    return found.economize(left()).result()


def search_all(
    algorithms: list[str],
    folds: list[Fold],
    *,
    n_trials: int = 20,
    budget_s: float | None = None,
    seed: int = 0,
    k: int = 10,
    catalog=None,
    fixed: dict[str, dict] | None = None,
    untuned: tuple | list | set = (),
    on_trial: Callable[[str, Trial], None] | None = None,
) -> dict[str, SearchResult]:
    """Every algorithm's search within one wall-time budget `budget_s` for all of them, in this order:

    1. each algorithm's defaults (trial 0; always run: they are what the choice falls back on);
    2. the searches of the single algorithms whose kept settings are the blend's and the champion's
       first guesses (SEEDED_BY: `repeat`, `trending`, `ease`; cheap), each an even share of the time
       left as if every algorithm still to search had one;
    3. the first steps of the others (`Search.first_steps`), in the order given: each probed
       switch (`Choice.probe`), then the first guess (their best so far with what step 2 kept for the
       same signals), each where the time left holds it;
    4. sampled trials, each algorithm in turn given an even share of the time left (what one does
       not use goes to the next), the blend and the champion last;
    5. the economy cuts (`Search.economize`: the champion's every-page weight search and re-ranker
       rows), whose time steps 2 and 4 set aside (a trial per cut not yet run, at the pace of that
       algorithm's slowest trial so far).

    Within any share (and in step 3) no trial starts when the time left is less than that algorithm's slowest trial
    so far; in step 5, less than the trial it cuts took. The champion's trials are fits with its own
    validation-window tuning, and count like any other. Where the defaults alone take the whole budget, no further trial runs and
    `SearchResult.stopped` says "budget". `untuned` ones only run their given settings. Steps 2 and 3
    go before the sampled trials because the pages are served by the blend and the champion, whose
    trials take tens of seconds on Online Retail: a budget of a few minutes reaches only a few of them,
    and with the guesses after every single algorithm's share it never reached them there
    (`notebooks/research/tuning_budget`, `benchmarks/search_schedule.py`)."""
    started = time.perf_counter()
    untuned = set(untuned)
    searches = {
        a: Search(a, folds, fixed=(fixed or {}).get(a), n_trials=1 if a in untuned else n_trials, seed=seed, k=k,
                  catalog=catalog, on_trial=(lambda t, a=a: on_trial(a, t)) if on_trial else None)
        for a in algorithms
    }

    def left():
        return None if budget_s is None else max(float(budget_s) - (time.perf_counter() - started), 0.0)

    def in_shares(order, among):  # each an even share of the time left over `among` algorithms still to search
        for i, algorithm in enumerate(order):
            remaining = left()
            if remaining is not None:  # what the economy cuts (step 5) will take is set aside first
                remaining = max(remaining - sum(found.economy_reserve() for found in searches.values()), 0.0)
            searches[algorithm].run(None if remaining is None else remaining / (among - i))

    for found in searches.values():
        found.run(up_to=1)
    more = seeded_last([a for a, found in searches.items() if not found.done])
    singles = {single for single, _, _ in SEEDED_BY.values()} & set(searches)
    in_shares([a for a in more if a in singles], len(more))
    guesses = seeded_settings({a: searches[a].result().best_params for a in singles})
    for algorithm in more:
        found = searches[algorithm]
        if found.switches or first_guesses_for(found.space, SEEDED_BY):
            found.first_steps(left(), guesses)
    rest = [a for a in more if not searches[a].done]
    in_shares(rest, len(rest))
    for found in searches.values():
        found.economize(left())
    return {a: found.result() for a, found in searches.items()}
