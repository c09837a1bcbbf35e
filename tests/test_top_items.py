"""The POS list's cut (`base._top`): a partition of the row for a few more than n candidates must give
exactly what sorting the whole catalog would, ties, infinities, NaNs and blocked items included."""

import numpy as np
import pytest

from workbench.models.base import _top


def by_sorting_everything(row, n, blocked, positive):
    usable = np.isfinite(row) & ((row > 0) if positive else True)
    usable[np.asarray(blocked, dtype=np.int64)] = False
    items = np.flatnonzero(usable)
    return items[np.lexsort((items, -row[items]))][:n]


@pytest.mark.parametrize("seed", range(4))
def test_top_equals_sorting_the_whole_row(seed):
    rng = np.random.default_rng(seed)
    for trial in range(1500):
        size = int(rng.integers(1, 400 if trial % 5 == 0 else 40))
        # small integers: many ties at the cut; normals: none
        row = (rng.integers(-3, 6, size) if trial % 2 else rng.normal(size=size)).astype(np.float32)
        if trial % 3 == 0:
            for value in (np.inf, np.nan, -np.inf):
                row[rng.random(size) < 0.1] = value
        blocked = rng.choice(size, size=int(rng.integers(0, size + 1)) // 2, replace=False)
        if len(blocked) and trial % 4 == 0:
            blocked = np.concatenate([blocked, blocked[:2]])  # an item named twice is blocked once
        n, positive = int(rng.integers(0, 15)), bool(trial % 2)
        got = _top(row, n, blocked, positive=positive)
        assert np.array_equal(got, by_sorting_everything(row, n, blocked, positive)), (row, n, blocked, positive)


def test_ties_at_the_cut_go_to_the_lowest_index_even_outside_the_partition():
    row = np.zeros(10_000, dtype=np.float32)
    row[[9_000, 5, 7_777]] = 1.0  # three tied items, two places
    assert _top(row, 2, positive=True).tolist() == [5, 7_777]
    assert _top(row, 2, np.array([5]), positive=True).tolist() == [7_777, 9_000]
