"""How sure a figure is: bootstrap intervals over cases, and paired margins between two models.

Both resample the cases (the POS requests) with replacement, seeded, so the same inputs always
give the same interval. A paired comparison resamples the same cases for both models, which is
what makes a small margin on a few thousand cases measurable at all.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from workbench.evaluation.metrics import HEADLINE, HEADLINE_LABELS

N_RESAMPLES = 1000


@dataclass(frozen=True)
class Interval:
    value: float
    low: float
    high: float
    n_cases: int

    def as_dict(self) -> dict:
        return asdict(self)

    def __str__(self) -> str:
        return f"{self.value:.3f} [{self.low:.3f}, {self.high:.3f}]"


@dataclass(frozen=True)
class Margin:
    """`model` against `baseline` on the same cases: the difference and the ratio of the means,
    each with its interval; significant where the difference's interval excludes zero."""

    model: float
    baseline: float
    difference: float
    difference_low: float
    difference_high: float
    ratio: float
    ratio_low: float
    ratio_high: float
    n_cases: int

    @property
    def significant(self) -> bool:
        return self.difference_low > 0 or self.difference_high < 0

    def as_dict(self) -> dict:
        return {**asdict(self), "significant": self.significant}

    def __str__(self) -> str:
        verdict = "significant" if self.significant else "within the noise"
        return f"{self.ratio:.2f}x [{self.ratio_low:.2f}, {self.ratio_high:.2f}] ({verdict})"


def _resample_index(n: int, n_resamples: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, n, size=(n_resamples, n))


def _bounds(samples: np.ndarray, confidence: float) -> tuple[float, float]:
    tail = (1.0 - confidence) / 2.0
    low, high = np.quantile(samples, [tail, 1.0 - tail])
    return float(low), float(high)


def bootstrap_interval(values, *, confidence: float = 0.95, n_resamples: int = N_RESAMPLES, seed: int = 0) -> Interval:
    """The mean of the per-case `values` with its percentile bootstrap interval."""
    values = np.asarray(values, dtype=np.float64)
    if len(values) == 0:
        return Interval(float("nan"), float("nan"), float("nan"), 0)
    means = values[_resample_index(len(values), n_resamples, seed)].mean(axis=1)
    low, high = _bounds(means, confidence)
    return Interval(float(values.mean()), low, high, len(values))


def paired(a, b, where: str = "") -> tuple[np.ndarray, np.ndarray]:
    """`a` and `b` as float arrays, refused unless they hold one value per case each, for the same
    cases: what every paired comparison here (and `selection.Validation.objective_gain`) checks."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.ndim != 1 or a.shape != b.shape:
        raise ValueError(f"{where + ': ' if where else ''}a paired comparison needs one value per case for the same cases, {a.shape} against {b.shape}")
    return a, b


def paired_bootstrap(model, baseline, *, confidence: float = 0.95, n_resamples: int = N_RESAMPLES, seed: int = 0) -> Margin:
    """`model` against `baseline`, both per-case values of the same cases in the same order."""
    a, b = paired(model, baseline)
    if len(a) == 0:
        nan = float("nan")
        return Margin(nan, nan, nan, nan, nan, nan, nan, nan, 0)
    index = _resample_index(len(a), n_resamples, seed)
    mean_a, mean_b = a[index].mean(axis=1), b[index].mean(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratios = np.where(mean_b > 0, mean_a / mean_b, np.nan)
        ratio = a.mean() / b.mean() if b.mean() > 0 else float("nan")
    d_low, d_high = _bounds(mean_a - mean_b, confidence)
    finite = ratios[np.isfinite(ratios)]
    r_low, r_high = _bounds(finite, confidence) if len(finite) else (float("nan"), float("nan"))
    return Margin(float(a.mean()), float(b.mean()), float(a.mean() - b.mean()), d_low, d_high, float(ratio), r_low, r_high, len(a))


def paired_standard_error(a, b) -> float:
    """The standard error of mean(a) - mean(b) over the same cases (a and b aligned case by case)."""
    a, b = paired(a, b)
    return float((a - b).std(ddof=1) / np.sqrt(len(a))) if len(a) > 1 else float("inf")


def headline_uncertainty(champion: dict, baselines: dict, routes: dict, *, n_resamples: int = N_RESAMPLES, seed: int = 0) -> list[dict]:
    """How sure the champion's test figures are, one row per POS page: its headline metric with a
    bootstrap 95% interval, and where the page has a baseline its paired margin over it.

    `champion`: {page: {metric: per-case values}} (`protocol.evaluate_per_case`'s second result);
    `baselines`: {page: (name, {metric: per-case values of the same cases})}, the pages without one
    left out; `routes`: {page: the candidate serving it}. The rows are 04_evaluate's table and, as
    `tracking.champion_figure_tags`, what the dashboard shows beside the live model."""
    rows = []
    for page, metric in HEADLINE.items():
        values = (champion.get(page) or {}).get(metric)
        if values is None or not len(values):
            continue
        ours = bootstrap_interval(values, n_resamples=n_resamples, seed=seed)
        row = {"scenario": page, "page": HEADLINE_LABELS[page], "served by": routes.get(page), "test": ours.value,
               "95% low": ours.low, "95% high": ours.high}
        if page in baselines:
            name, per_case = baselines[page]
            margin = paired_bootstrap(values, per_case[metric], n_resamples=n_resamples, seed=seed)
            row.update({"baseline (best other on validation)": name, "baseline test": margin.baseline, "ratio": margin.ratio,
                        "ratio low": margin.ratio_low, "ratio high": margin.ratio_high, "significant": margin.significant})
        rows.append(row)
    return rows
