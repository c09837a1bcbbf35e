"""Choosing on validation: each candidate scored on the validation windows, the winner per POS page.

`validate` fits a candidate on each fold's history and scores that fold's cases (the cases of all
windows pooled). `choose_per_page` picks, for each page, the candidate with the best headline
metric on validation; among candidates tied with it, the simplest (the earliest in `simplicity`)
wins, so a page is never served by a model a simpler one beats. With each candidate's validation
cases at hand it also says how far the winner led the runner-up, in standard errors of their
paired difference, so a route chosen on a lead within noise is reported as such. Counting such a
lead as a tie (the one-standard-error rule, `standard_errors=1`) is a dial, off by default: where it
served a page differently on the quality benchmark's test windows, it mostly moved the page from the
re-ranked champion to its blend and lost more than it won (`benchmarks/results/quality.md` scores
both rules).
`choose_champion` is the alternative of one algorithm for every page (rank sum or one metric), and
`choose` applies a notebook's `champion_rule`. Nothing here ever sees the test window: the caller
scores the test window once, afterwards.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import pandas as pd

from workbench.evaluation import metrics
from workbench.evaluation.protocol import evaluate_per_case
from workbench.evaluation.uncertainty import paired, paired_standard_error
from workbench.evaluation.windows import Fold
from workbench.models import Recommender, TrainingData, make_model

# simplest first: what serves a page when a more complex candidate is no better on validation
SIMPLICITY = ("best_sellers", "trending", "repeat", "item_knn", "sar", "ease", "als", "bpr", "blend", "champion")


@dataclass
class Validation:
    """A candidate's validation figures: `table` as `protocol.evaluate` gives it (cases of all
    windows pooled), `per_case` {scenario: {metric: values}}, and the fit seconds per window."""

    table: pd.DataFrame
    per_case: dict[str, dict[str, np.ndarray]]
    fit_seconds: list[float] = field(default_factory=list)

    def headline(self) -> dict[str, float]:
        """{scenario: its headline metric} on validation."""
        frame = self.table.set_index("scenario")
        return {s: float(frame.loc[s, m]) for s, m in metrics.HEADLINE.items() if s in frame.index}

    def headline_cases(self) -> dict[str, np.ndarray]:
        """{scenario: the headline metric of each validation case}: what `choose_per_page` weighs a
        lead against."""
        return {s: np.asarray(self.per_case[s][m], np.float64) for s, m in metrics.HEADLINE.items() if m in self.per_case.get(s, {})}

    def objective(self) -> float:
        """One figure for a search: the geometric mean of the pages' headline metrics, so a 10% gain
        counts the same on every page whatever its scale."""
        values = np.array([v for v in self.headline().values() if np.isfinite(v)], dtype=np.float64)
        return float(np.exp(np.log(np.maximum(values, 1e-6)).mean())) if len(values) else float("nan")

    def objective_gain(self, other: "Validation", *, n_resamples: int = 500, seed: int = 0) -> tuple[float, float]:
        """(gain, standard error): this objective minus `other`'s (the same folds' cases), and the
        spread of that difference over a seeded paired bootstrap: each page's cases drawn again,
        the same draw for both. How far a gain on validation could be luck of the cases."""
        rng = np.random.default_rng(seed)
        logs_a, logs_b = [], []
        for scenario, metric in metrics.HEADLINE.items():
            a = self.per_case.get(scenario, {}).get(metric)
            b = other.per_case.get(scenario, {}).get(metric)
            if a is None or b is None or not len(a):
                continue
            a, b = paired(a, b, scenario)
            index = rng.integers(0, len(a), size=(n_resamples, len(a)))
            logs_a.append(np.log(np.maximum(a[index].mean(axis=1), 1e-6)))
            logs_b.append(np.log(np.maximum(b[index].mean(axis=1), 1e-6)))
        gain = self.objective() - other.objective()
        if not logs_a:
            return gain, float("nan")
        spread = np.exp(np.mean(logs_a, axis=0)) - np.exp(np.mean(logs_b, axis=0))
        return float(gain), float(spread.std(ddof=1))


def fold_data(fold: Fold, catalog=None) -> TrainingData:
    """The fold's TrainingData, built once and kept on the fold (every trial fits on it)."""
    cached = getattr(fold, "_data", None)
    if cached is None:
        cached = TrainingData.from_interactions(fold.train, wish_lists=fold.wish_lists, catalog=catalog)
        fold._data = cached
    return cached


def validate(
    candidate: str | Callable[[], Recommender],
    folds: list[Fold],
    params: dict | None = None,
    *,
    k: int = 10,
    catalog=None,
) -> Validation:
    """Fit `candidate` (an algorithm name with `params`, or a factory of unfitted models) on each
    fold's history and score the fold's cases; the cases of all folds pooled."""
    if not folds:
        raise ValueError("no validation folds: plan_validation found no window before the split")
    make = candidate if callable(candidate) else (lambda: make_model(candidate, **(params or {})))
    tables, per_case, seconds = [], {}, []
    for fold in folds:
        model = make()
        started = time.perf_counter()
        model.fit(fold_data(fold, catalog))
        seconds.append(time.perf_counter() - started)
        table, values = evaluate_per_case(model, fold.cases, k=k)
        tables.append(table)
        for scenario, by_metric in values.items():
            pooled = per_case.setdefault(scenario, {})
            for metric, v in by_metric.items():
                pooled[metric] = np.concatenate([pooled.get(metric, np.zeros(0)), v])
    rows = []
    for scenario, by_metric in per_case.items():
        parts = [t.set_index("scenario").loc[scenario] for t in tables]
        rows.append(
            {
                "scenario": scenario,
                "n_cases": int(sum(int(p["n_cases"]) for p in parts)),
                **{m: metrics.mean_or_nan(v) for m, v in by_metric.items()},
                "coverage": _mean_of_known([p["coverage"] for p in parts]),
                "novelty": _mean_of_known([p["novelty"] for p in parts]),
            }
        )
    return Validation(pd.DataFrame(rows, columns=tables[0].columns), per_case, seconds)


def _mean_of_known(values) -> float:
    """The mean of the values that are not NaN; NaN, without numpy's warning, where none is (a page
    no fold had a case of, as the customer pages of a retailer without customers)."""
    values = np.asarray(values, dtype=np.float64)
    return metrics.mean_or_nan(values[~np.isnan(values)])


@dataclass
class PageChoice:
    """Which candidate serves each page, and the validation table it was chosen from."""

    routes: dict[str, str]
    table: pd.DataFrame  # one row per (page, candidate): value, rank, chosen

    @property
    def candidates(self) -> list[str]:
        """The distinct candidates that serve a page, in page order."""
        return list(dict.fromkeys(self.routes.values()))

    def leads(self) -> dict[str, dict]:
        """Per page: the chosen candidate, the validation leader, the runner-up (the best other than
        the leader), how far the leader led it and that lead's standard error (NaN without per-case
        figures), and whether the lead is more than one standard error; from `choose_per_page`'s table.
        A page without validation cases (no customers: every figure -inf) has no leader to report."""
        out = {}
        if not {"page", "leader", "behind_best"} <= set(self.table.columns):
            return out  # one algorithm for every page (rank sum or one metric): no page has its own lead
        for page, part in self.table.groupby("page", sort=False):
            if len(part) < 2 or not np.isfinite(part["validation"].max()):
                continue
            leader, runner_up, chosen = part[part["leader"]].iloc[0], part[~part["leader"]].iloc[0], part[part["chosen"]].iloc[0]
            lead, error = float(runner_up["behind_best"]), float(runner_up["standard_error"])
            out[str(page)] = {"chosen": chosen["candidate"], "leader": leader["candidate"], "runner_up": runner_up["candidate"],
                              "lead": round(lead, 4), "standard_error": round(error, 4), "beyond_one_se": bool(lead > error)}
        return out


def _simplicity_rank(candidate: str, simplicity) -> int:
    algorithm = candidate.split(":", 1)[0]
    order = list(simplicity)
    return order.index(candidate) if candidate in order else (order.index(algorithm) if algorithm in order else len(order))


def headline_table(validations: dict[str, Validation]) -> pd.DataFrame:
    """Long table (algorithm, scenario, metrics...) of the candidates' validation figures: what
    `choose_per_page` takes."""
    frames = [v.table.assign(algorithm=a) for a, v in validations.items()]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=["algorithm", "scenario", *metrics.CASE_METRICS])


def headline_cases_frame(validations: dict[str, Validation]) -> pd.DataFrame:
    """Long table (candidate, scenario, case, value) of each candidate's headline metric per
    validation case: how 03_train hands `choose_per_page`'s `per_case` to 04_evaluate."""
    frames = [
        pd.DataFrame({"candidate": name, "scenario": scenario, "case": np.arange(len(values)), "value": values})
        for name, validation in validations.items()
        for scenario, values in validation.headline_cases().items()
    ]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=["candidate", "scenario", "case", "value"])


def headline_cases_from_frame(frame: pd.DataFrame) -> dict[str, dict[str, np.ndarray]]:
    """`headline_cases_frame` read back: {candidate: {scenario: values in case order}}."""
    out: dict[str, dict[str, np.ndarray]] = {}
    for (candidate, scenario), part in frame.groupby(["candidate", "scenario"], sort=False):
        out.setdefault(str(candidate), {})[str(scenario)] = part.sort_values("case")["value"].to_numpy(np.float64)
    return out


def choose_per_page(
    validation: pd.DataFrame,
    *,
    per_case: dict[str, dict[str, np.ndarray]] | None = None,
    standard_errors: float = 0.0,
    simplicity=SIMPLICITY,
    tolerance: float = 0.0,
    candidate_column: str = "algorithm",
) -> PageChoice:
    """Per page (scenario), the candidate with the best headline metric on validation, or a simpler
    one tied with it.

    `validation`: a long table with `candidate_column`, `scenario` and the metric columns (as
    `evaluate` gives them, one block per candidate). `per_case`: {candidate: {scenario: headline
    metric per validation case}} (`Validation.headline_cases`), the same cases in the same order for
    every candidate: the table then gives each candidate's standard error of its paired difference
    with the best. A candidate is tied with the best where the best leads it by no more than
    `standard_errors` of those standard errors, or by no more than `tolerance` (absolute); the
    simplest tied candidate wins (ties in simplicity: the name)."""
    if validation.empty:
        raise ValueError("no validation results to choose from")
    if not standard_errors >= 0:
        raise ValueError(f"standard_errors must be a number >= 0 (0: the best validation mean serves), got {standard_errors!r}")
    missing = [c for c in (candidate_column, "scenario") if c not in validation.columns]
    if missing:
        raise ValueError(f"validation table lacks column(s) {missing}")
    routes, rows = {}, []
    for scenario, metric in metrics.HEADLINE.items():
        part = validation[validation["scenario"] == scenario]
        if part.empty:
            continue
        values = part.set_index(candidate_column)[metric].astype(float).fillna(-np.inf)
        best = str(min(values.index[values == values.max()], key=lambda c: (_simplicity_rank(str(c), simplicity), str(c))))
        errors = {}
        for candidate in values.index:
            cases, best_cases = ((per_case or {}).get(c, {}).get(scenario) for c in (candidate, best))
            if cases is not None and best_cases is not None:
                errors[candidate] = 0.0 if candidate == best else paired_standard_error(best_cases, cases)
        # v >= best - margin, not best - v <= margin: a page without cases scores -inf everywhere, and
        # -inf - -inf is NaN, which would tie no candidate, not even the leader. With the dial off no
        # standard error is weighed at all (a one-case page's is infinite, and 0 x inf is NaN).
        margin = {c: max(tolerance, standard_errors * errors.get(c, 0.0) if standard_errors else 0.0) for c in values.index}
        tied = [c for c, v in values.items() if v >= values[best] - margin[c]]
        winner = min(tied, key=lambda c: (_simplicity_rank(str(c), simplicity), str(c)))
        routes[scenario] = str(winner)
        ranks = values.rank(ascending=False, method="min")
        with np.errstate(invalid="ignore"):  # a page without cases: -inf behind -inf is NaN, and says so
            behind = values[best] - values
        for candidate, value in values.sort_values(ascending=False).items():
            rows.append(
                {"page": scenario, "metric": metric, "candidate": str(candidate), "validation": value,
                 "leader": candidate == best, "behind_best": float(behind[candidate]), "standard_error": errors.get(candidate, float("nan")),
                 "tied_with_best": candidate in tied, "rank": int(ranks[candidate]), "chosen": candidate == winner}
            )
    if not routes:
        raise ValueError(f"validation table holds none of the pages {list(metrics.HEADLINE)}")
    return PageChoice(routes, pd.DataFrame(rows))


def choose_from(validations: dict[str, Validation], **options) -> PageChoice:
    """`choose_per_page` over the candidates' `Validation`s ({candidate: its validation}): their
    headline table and their per-case headline metrics; `options` as `choose_per_page` takes them."""
    return choose_per_page(headline_table(validations), per_case={a: v.headline_cases() for a, v in validations.items()}, **options)


def choose_champion(results: pd.DataFrame, rule: str = "rank_sum") -> tuple[str, pd.DataFrame]:
    """One algorithm for every page, from a long table (algorithm, scenario, <metric>...) of
    validation figures.

    rule ``rank_sum``: rank the algorithms on customer NDCG, customer_new_items NDCG, basket HR and
    product HR (1 = best), lowest sum of ranks wins (ties: higher sum of those metrics, then name).
    rule ``metric:<scenario>.<metric>``, e.g. ``metric:basket.hr``: the highest value wins.
    Returns (algorithm, the scoring table, best first)."""
    if results.empty:
        raise ValueError("no evaluation results to choose a champion from")
    if rule == "rank_sum":
        criteria = [c for c in metrics.HEADLINE.items() if c[0] in set(results["scenario"])]
    elif rule.startswith("metric:"):
        scenario, dot, metric = rule[len("metric:") :].partition(".")
        if not dot or metric not in metrics.CASE_METRICS:
            raise ValueError(f"champion_rule {rule!r}: expected metric:<scenario>.<metric>, metric one of {metrics.CASE_METRICS}")
        criteria = [(scenario, metric)]
    else:
        raise ValueError(f"champion_rule {rule!r} is unknown: use 'per_page', 'rank_sum' or 'metric:<scenario>.<metric>'")
    missing = [f"{s}.{m}" for s, m in criteria if s not in set(results["scenario"])]
    if missing or not criteria:
        raise ValueError(f"champion_rule {rule!r}: no results for {missing or 'any scenario'}")
    table = pd.DataFrame({"algorithm": sorted(results["algorithm"].unique())}).set_index("algorithm")
    for scenario, metric in criteria:
        values = results[results["scenario"] == scenario].set_index("algorithm")[metric]
        table[f"{scenario}.{metric}"] = values
    table = table.fillna(0.0)
    metric_columns = list(table.columns)
    if rule == "rank_sum":
        for column in metric_columns:
            table[f"rank {column}"] = table[column].rank(ascending=False, method="min")
        table["rank_sum"] = table[[f"rank {c}" for c in metric_columns]].sum(axis=1)
        table["metric_sum"] = table[metric_columns].sum(axis=1)
        table = table.reset_index().sort_values(["rank_sum", "metric_sum", "algorithm"], ascending=[True, False, True])
    else:
        table = table.reset_index().sort_values([metric_columns[0], "algorithm"], ascending=[False, True])
    table = table.reset_index(drop=True)
    return str(table.loc[0, "algorithm"]), table


def choose(
    validation: pd.DataFrame, rule: str = "per_page", per_case: dict[str, dict[str, np.ndarray]] | None = None, standard_errors: float = 0.0
) -> PageChoice:
    """Which candidate serves each page, by `rule`: ``per_page`` (`choose_per_page`, with the
    candidates' `per_case` validation figures where given; a lead within `standard_errors` of its
    standard error goes to the simpler candidate), or one algorithm for every page
    (`choose_champion`'s ``rank_sum`` or ``metric:<scenario>.<metric>``); the table is the one the
    rule ranked."""
    if rule == "per_page":
        return choose_per_page(validation, per_case=per_case, standard_errors=standard_errors)
    winner, table = choose_champion(validation, rule)
    return PageChoice(dict.fromkeys(metrics.HEADLINE, winner), table)


def best_baseline(validation: pd.DataFrame, scenario: str, exclude=(), candidate_column: str = "algorithm") -> str:
    """The candidate (outside `exclude`) with the best headline metric of `scenario` on validation:
    the baseline a margin is measured against, chosen without looking at the test window."""
    part = validation[(validation["scenario"] == scenario) & ~validation[candidate_column].isin(list(exclude))]
    if part.empty:
        raise ValueError(f"no baseline with validation results for {scenario!r}")
    metric = metrics.headline(scenario)
    return str(part.sort_values([metric, candidate_column], ascending=[False, True]).iloc[0][candidate_column])
