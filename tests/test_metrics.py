import math

import numpy as np
import pytest

from workbench.evaluation import metrics

RECOMMENDED = [["a", "b", "c"], ["x", "y"]]
TRUTH = [{"a", "c"}, {"z"}]


def test_precision_recall_hit_rate_by_hand():
    assert metrics.precision_at_k(RECOMMENDED, TRUTH, k=3) == pytest.approx((2 / 3 + 0) / 2)
    assert metrics.recall_at_k(RECOMMENDED, TRUTH, k=3) == pytest.approx((2 / 2 + 0) / 2)
    assert metrics.hit_rate_at_k(RECOMMENDED, TRUTH, k=3) == pytest.approx(0.5)


def test_ndcg_uses_ideal_over_min_truth_k():
    dcg = 1 + 1 / math.log2(4)  # hits at ranks 1 and 3
    ideal = 1 + 1 / math.log2(3)  # two relevant items at the top
    assert metrics.ndcg_at_k(RECOMMENDED, TRUTH, k=3) == pytest.approx(dcg / ideal / 2)
    # more relevant items than k: the ideal is k hits, so a perfect list scores 1
    assert metrics.ndcg_at_k([["a", "b"]], [{"a", "b", "c"}], k=2) == pytest.approx(1.0)


def test_map_divides_by_min_truth_k():
    assert metrics.map_at_k(RECOMMENDED, TRUTH, k=3) == pytest.approx((1 + 2 / 3) / 2 / 2)
    assert metrics.map_at_k([["q", "a"]], [{"a", "b", "c"}], k=2) == pytest.approx((1 / 2) / 2)


def test_k_cuts_the_list():
    assert metrics.hit_rate_at_k([["x", "a"]], [{"a"}], k=1) == 0.0
    assert metrics.hit_rate_at_k([["x", "a"]], [{"a"}], k=2) == 1.0


def test_coverage_and_novelty():
    assert metrics.catalog_coverage(RECOMMENDED, n_items=10, k=3) == pytest.approx(0.5)
    assert metrics.novelty([["a", "b"]], {"a": 50, "b": 25}, n_baskets=100) == pytest.approx(1.5)


def test_empty_truth_is_refused():
    with pytest.raises(ValueError):
        metrics.recall_at_k([["a"]], [set()], k=1)


def test_hits_matrix_pads_short_lists():
    hits = metrics.hits_matrix([["a"]], [{"a"}], k=3)
    assert hits.tolist() == [[True, False, False]]
    assert hits.dtype == np.bool_
