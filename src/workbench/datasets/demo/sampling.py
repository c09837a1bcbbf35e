"""The demo's random draws: one seeded generator per stage, and the vectorised sampling helpers
every stage shares."""

from __future__ import annotations

import numpy as np

DAY = 86_400


def rng_for(seed: int, stage: int) -> np.random.Generator:
    """The generator of one stage: each stage draws from its own, so the catalog does not depend on
    `scale` and a change to one stage leaves the others' draws alone."""
    return np.random.default_rng([seed, stage])


def sample_from_rows(rng, weights: np.ndarray, rows: np.ndarray, chunk: int = 200_000) -> np.ndarray:
    """One column index per entry of `rows`, drawn with probability proportional to weights[rows]."""
    out = np.empty(len(rows), dtype=np.int64)
    for lo in range(0, len(rows), chunk):
        w = weights[rows[lo : lo + chunk]]
        cum = np.cumsum(w, axis=1)
        u = rng.random(len(w)) * cum[:, -1]
        out[lo : lo + chunk] = np.minimum((cum < u[:, None]).sum(axis=1), w.shape[1] - 1)
    return out


def group_rank(keys: np.ndarray) -> np.ndarray:
    """0-based position of each row inside its run of equal (sorted) keys."""
    n = len(keys)
    if n == 0:
        return np.empty(0, dtype=np.int64)
    starts = np.r_[0, np.flatnonzero(keys[1:] != keys[:-1]) + 1]
    lengths = np.diff(np.r_[starts, n])
    return np.arange(n) - np.repeat(starts, lengths)


def first_by_group(values: np.ndarray, group: np.ndarray, n_groups: int) -> np.ndarray:
    """The smallest of `values` in each of `n_groups` groups (inf for an empty one)."""
    out = np.full(n_groups, np.inf)
    np.minimum.at(out, group, values)
    return out
