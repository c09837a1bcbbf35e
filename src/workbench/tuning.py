"""The per-retailer search of `evaluation.search`, recorded in MLflow and plotted.

Layers: `evaluation` searches and never logs; this module (beside `tracking`) records it. Under the
pipeline run, each algorithm gets a `tuning` run, and each trial a `trial` run nested under that,
with its hyperparameters, its validation metrics (`<scenario>.<metric>_at_<k>`, validation windows
only) and the objective. The algorithm's own run (03_train) carries the chosen trial's validation
figures as `validation_<scenario>_<metric>_at_<k>`, a name the test-window comparison never reads.
"""

from __future__ import annotations

import json
import time
from typing import Iterable

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator
from mlflow.entities import Metric, Param, RunTag

from workbench import tracking
from workbench.evaluation.search import SearchResult, Trial, search, search_all
from workbench.evaluation.spaces import SEARCH_SPACES
from workbench.evaluation.selection import Validation
from workbench.evaluation.windows import Fold, ValidationPlan


def validation_metric_key(scenario: str, metric: str, k: int = 10) -> str:
    return f"validation_{scenario}_{metric}_at_{k}"


def validation_metrics(validation: Validation, k: int = 10) -> dict[str, float]:
    """A candidate's validation table as MLflow metrics on its algorithm run."""
    out = {}
    for row in validation.table.to_dict("records"):
        for metric in ("n_cases", *tracking.METRICS):
            value = row.get(metric)
            if value is not None and np.isfinite(value):
                key = f"validation_{row['scenario']}_n_cases" if metric == "n_cases" else validation_metric_key(row["scenario"], metric, k)
                out[key] = float(value)
    return out


def validation_record(validation: Validation) -> dict[str, dict[str, float]]:
    """{scenario: {metric: value}} of a candidate's validation, for the hand-over record."""
    frame = validation.table.set_index("scenario")
    return {s: {m: float(v) for m, v in frame.loc[s].items() if pd.notna(v)} for s in frame.index}


def _params(values: dict) -> list[Param]:
    return [Param(str(k)[:250], tracking.param_value(v)) for k, v in values.items()]


def _trial_logger(client, experiment_id: str, tuning_run_id: str, algorithm: str, legal_entity: str, k: int):
    owner = tracking.owner_tags()  # who to ask whether the run is still alive (a killed run's are settled)
    def log(trial: Trial) -> None:
        tags = {"mlflow.parentRunId": tuning_run_id, tracking.KIND_TAG: "trial", "legal_entity": legal_entity,
                tracking.SETTINGS_TAGS["algorithm"]: algorithm, "workbench.window": "validation",
                "workbench.trial_state": trial.state, "workbench.trial_step": trial.step, **owner}
        run = client.create_run(experiment_id, run_name=f"{algorithm}-trial-{trial.number}", tags=tags)
        found = {"seconds": trial.seconds}
        if trial.validation is not None:
            found["objective"] = trial.objective
            found.update(tracking.evaluation_metrics(trial.validation.table, k))
        now = int(time.time() * 1000)
        client.log_batch(
            run.info.run_id,
            metrics=[Metric(key, float(v), now, 0) for key, v in found.items() if np.isfinite(v)],
            params=_params({"algorithm": algorithm, "trial": trial.number, **{f"hp.{n}": v for n, v in trial.params.items()}}),
            tags=[RunTag("workbench.error", trial.error[:5000])] if trial.error else [],
        )
        client.set_terminated(run.info.run_id, status="FINISHED" if trial.state == "COMPLETE" else "FAILED")

    return log


def _open_tuning_run(client, experiment: str, algorithm: str, *, parent_run_id: str, legal_entity: str, plan, fixed,
                     n_trials: int, wall_time: dict, seed: int) -> str:
    """The algorithm's `tuning` run; `wall_time` names its limit: {"timeout_s": its own} or
    {"budget_s": the one shared by every algorithm's search}."""
    tags = {"mlflow.parentRunId": parent_run_id, tracking.KIND_TAG: "tuning", "legal_entity": legal_entity,
            tracking.SETTINGS_TAGS["algorithm"]: algorithm, **tracking.owner_tags()}
    run = client.create_run(experiment, run_name=f"{algorithm}-tuning", tags=tags)
    space = {name: repr(spec) for name, spec in SEARCH_SPACES.get(algorithm, {}).items()}
    client.log_batch(
        run.info.run_id,
        params=_params({"algorithm": algorithm, "n_trials": n_trials, **wall_time, "seed": seed,
                        "fixed": json.dumps(fixed or {}, default=str), **({"plan": plan.describe()} if plan else {})}),
    )
    client.log_dict(run.info.run_id, space, "search_space.json")
    return run.info.run_id


def _close_tuning_run(client, run_id: str, result: SearchResult) -> None:
    now = int(time.time() * 1000)
    best = [Metric("best_objective", result.top.objective, now, 0), Metric("chosen_objective", result.best.objective(), now, 0),
            Metric("chosen_trial", result.chosen_trial, now, 0), Metric("trials", len(result.trials), now, 0)]
    guesses = {"first_guesses": json.dumps(result.first_guesses, default=str)} if result.first_guesses else {}  # only where taken
    client.log_batch(run_id, metrics=best, params=_params({**guesses, **{f"chosen.{n}": v for n, v in result.best_params.items()}}),
                     tags=[RunTag("workbench.chosen_by", result.chosen_by)])
    client.log_text(run_id, result.trials_table().to_csv(index=False), "trials.csv")
    client.set_terminated(run_id, status="FINISHED")


def tune_and_log(
    algorithm: str,
    folds: list[Fold],
    *,
    parent_run_id: str,
    legal_entity: str,
    plan: ValidationPlan | None = None,
    fixed: dict | None = None,
    n_trials: int = 20,
    timeout_s: float | None = None,
    seed: int = 0,
    k: int = 10,
    catalog=None,
    first_guesses: dict | None = None,
) -> tuple[SearchResult, str]:
    """`evaluation.search.search` with every trial an MLflow run; returns (result, tuning run id)."""
    client, experiment = tracking.mlflow_client(), tracking.experiment_id()
    run_id = _open_tuning_run(client, experiment, algorithm, parent_run_id=parent_run_id, legal_entity=legal_entity, plan=plan,
                              fixed=fixed, n_trials=n_trials, wall_time={"timeout_s": timeout_s}, seed=seed)
    try:
        result = search(
            algorithm, folds, fixed=fixed, n_trials=n_trials, timeout_s=timeout_s, seed=seed, k=k, catalog=catalog,
            on_trial=_trial_logger(client, experiment, run_id, algorithm, legal_entity, k), first_guesses=first_guesses,
        )
        _close_tuning_run(client, run_id, result)
    except BaseException:
        client.set_terminated(run_id, status="FAILED")
        raise
    return result, run_id


def tune_all(
    algorithms: list[str],
    folds: list[Fold],
    *,
    parent_run_id: str,
    legal_entity: str,
    plan: ValidationPlan | None = None,
    fixed: dict | None = None,
    n_trials: int = 20,
    budget_s: float | None = None,
    seed: int = 0,
    k: int = 10,
    catalog=None,
    progress=None,
    untuned: Iterable[str] = (),
) -> dict[str, tuple[SearchResult, str]]:
    """`evaluation.search.search_all` (its order: every algorithm's defaults, the searches that give
    the blend and the champion their first guesses, their probes and those guesses, then sampled
    trials in even shares of what is left of `budget_s`), with a `tuning` run per algorithm and every trial an
    MLflow run under it. The `untuned` ones are only validated at their given settings (one trial).
    `progress` (a tqdm bar) counts trials; where the budget stops the search, its total shrinks to the
    trials run, and the economy cuts of a tuned champion (`Search.economize`) add to it."""
    untuned = set(untuned)
    unknown = sorted(untuned - set(algorithms))
    if unknown:
        raise ValueError(f"untuned algorithm(s) {unknown} are not among the algorithms {list(algorithms)}")
    client, experiment = tracking.mlflow_client(), tracking.experiment_id()
    runs, loggers, closed = {}, {}, set()

    def on_trial(algorithm: str, trial: Trial) -> None:
        loggers[algorithm](trial)
        if progress is not None:
            if progress.total is not None and progress.n >= progress.total:  # an economy cut, after the trials counted
                progress.total = progress.n + 1
            progress.set_postfix_str(f"{algorithm} trial {trial.number}")
            progress.update(1)

    try:
        for algorithm in algorithms:
            trials = 1 if algorithm in untuned else n_trials
            runs[algorithm] = _open_tuning_run(client, experiment, algorithm, parent_run_id=parent_run_id, legal_entity=legal_entity,
                                               plan=plan, fixed=(fixed or {}).get(algorithm), n_trials=trials,
                                               wall_time={"budget_s": budget_s}, seed=seed)
            loggers[algorithm] = _trial_logger(client, experiment, runs[algorithm], algorithm, legal_entity, k)
        results = search_all(list(algorithms), folds, n_trials=n_trials, budget_s=budget_s, seed=seed, k=k, catalog=catalog,
                             fixed=fixed, untuned=untuned, on_trial=on_trial)
        for algorithm, result in results.items():
            _close_tuning_run(client, runs[algorithm], result)
            closed.add(algorithm)
    except BaseException:
        # every tuning run this call opened ends FAILED, not left RUNNING, unless it was closed already
        for algorithm, run_id in runs.items():
            if algorithm not in closed:
                client.set_terminated(run_id, status="FAILED")
        raise
    if progress is not None:
        progress.total = progress.n
        progress.refresh()
    return {algorithm: (results[algorithm], runs[algorithm]) for algorithm in algorithms}


# -- plots ---------------------------------------------------------------------------------------------
def plot_search(results: dict[str, SearchResult]) -> Figure:
    """The validation objective against the trial, one panel per algorithm, best so far as a line,
    the economy cuts of the chosen settings as triangles, the trial whose settings are kept circled
    (the defaults where the best is within the noise, a cut where one cost nothing measurable: an
    economy trial, or the trial that already ran the chosen settings with a costly switch off)."""
    n = len(results)
    cols = min(n, 3) or 1
    rows = int(np.ceil(n / cols)) or 1
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.0 * rows), squeeze=False)
    for ax, (algorithm, result) in zip(axes.ravel(), results.items()):
        table = result.trials_table()
        done = table[table["state"] == "COMPLETE"]
        cuts = done["step"] == "economy"  # the chosen settings made cheaper (Search.economize)
        ax.scatter(done.loc[~cuts, "trial"], done.loc[~cuts, "objective"], s=14, color="tab:blue", label="trial")
        ax.scatter(done.loc[cuts, "trial"], done.loc[cuts, "objective"], s=22, marker="v", color="tab:purple", label="economy cut")
        ax.plot(done["trial"], done["objective"].cummax(), color="tab:green", label="best so far")
        if len(done):
            ax.scatter([0], [done["objective"].iloc[0]], s=40, marker="s", color="tab:orange", label="defaults", zorder=3)
            kept = done[done["trial"] == result.chosen_trial]
            ax.scatter(kept["trial"], kept["objective"], s=120, facecolors="none", edgecolors="black", label="kept", zorder=4)
        ax.set_title(f"{algorithm} ({len(done)} trials)")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # trials are numbered, not measured
        ax.set_xlabel("trial")
        ax.set_ylabel("validation objective")
    for ax in axes.ravel()[n:]:
        ax.set_visible(False)
    axes.ravel()[0].legend(fontsize=7)
    fig.suptitle("Hyperparameter search on the validation windows\n(geometric mean of the pages' headline metrics)")
    fig.tight_layout()
    return fig


def parameter_importances(result: SearchResult, seed: int = 0) -> pd.Series:
    """fANOVA importance of each searched hyperparameter (empty where too few trials differ)."""
    import optuna

    study = result.study
    done = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE] if study is not None else []
    if len(done) < 3 or not any(len({str(t.params.get(p)) for t in done}) > 1 for p in done[0].params):
        return pd.Series(dtype=float)
    try:
        importances = optuna.importance.get_param_importances(study, evaluator=optuna.importance.FanovaImportanceEvaluator(seed=seed))
    except (RuntimeError, ValueError):
        return pd.Series(dtype=float)
    return pd.Series(importances, dtype=float).sort_values()


def plot_importances(results: dict[str, SearchResult], seed: int = 0) -> Figure:
    """Horizontal bars of each algorithm's hyperparameter importances."""
    importances = {a: parameter_importances(r, seed) for a, r in results.items()}
    importances = {a: s for a, s in importances.items() if len(s)}
    n = max(len(importances), 1)
    cols = min(n, 3)
    rows = int(np.ceil(n / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 2.6 * rows), squeeze=False)
    for ax, (algorithm, values) in zip(axes.ravel(), importances.items()):
        ax.barh(values.index, values.values, color="tab:purple")
        ax.set_title(algorithm)
        ax.set_xlim(0, 1)
    if not importances:
        axes[0, 0].text(0.5, 0.5, "too few trials for importances", ha="center", va="center")
        axes[0, 0].set_axis_off()
    for ax in axes.ravel()[len(importances):] if importances else []:
        ax.set_visible(False)
    fig.suptitle("Hyperparameter importance (fANOVA over the trials)")
    fig.tight_layout()
    return fig


def log_validation(run_id: str, result: SearchResult, tuning_run_id: str | None = None, k: int = 10) -> dict[str, float]:
    """Put the chosen trial's validation figures on an algorithm's run (`validation_*` metrics, which
    no test-window comparison reads) with a tag naming its tuning run."""
    client = tracking.mlflow_client()
    found = validation_metrics(result.best, k)
    found["validation_objective"] = result.best.objective()
    now = int(time.time() * 1000)
    tags = [RunTag("workbench.tuning_run_id", tuning_run_id)] if tuning_run_id else []
    client.log_batch(run_id, metrics=[Metric(key, v, now, 0) for key, v in found.items() if np.isfinite(v)], tags=tags)
    return found
