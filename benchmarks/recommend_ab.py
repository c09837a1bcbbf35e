"""Bare champion `recommend` latency of the code on PYTHONPATH, for an A/B of two commits on one machine.

A machine's speed moves latency more than most code changes: to tell them apart, run this once per
commit, back to back, on the same machine (fit on all of Online Retail, then 400 single requests per
page after 30 warm-up calls, one BLAS thread; prints the p50 per page):

    git worktree add /tmp/old <commit>
    PYTHONPATH=/tmp/old/src .venv/bin/python benchmarks/recommend_ab.py old
    PYTHONPATH=src          .venv/bin/python benchmarks/recommend_ab.py new
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np
import polars as pl
from threadpoolctl import threadpool_limits

from workbench.models import Request, TrainingData, make_model

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "online_retail" / "online_retail.csv.gz"


def online_retail_interactions() -> pl.DataFrame:
    """EVALUATION.md's cleansing of Online Retail, by this checkout's quality benchmark (both commits see the same lines)."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from quality import load_online_retail

    return load_online_retail(DATA)


def main(label: str, n: int = 400, seed: int = 0) -> None:
    frame = online_retail_interactions()
    started = time.perf_counter()
    model = make_model("champion").fit(TrainingData.from_interactions(frame))
    print(f"{label} fit {time.perf_counter() - started:.1f} s", flush=True)
    rng = np.random.default_rng(seed)
    items, customers = list(model.item_ids), list(model.customer_index)
    pages = {
        "product": [Request("product", product_ids=(items[i],)) for i in rng.integers(0, len(items), n)],
        "basket": [Request("basket", customer_id=customers[c], product_ids=tuple(items[j] for j in rng.integers(0, len(items), 3)))
                   for c in rng.integers(0, len(customers), n)],
        "customer": [Request("customer", customer_id=customers[c]) for c in rng.integers(0, len(customers), n)],
    }
    with threadpool_limits(1):
        for page, requests in pages.items():
            for request in requests[:30]:
                model.recommend([request])
            times = []
            for request in requests:
                start = time.perf_counter()
                model.recommend([request])
                times.append(time.perf_counter() - start)
            print(f"{label} {page} p50 {1000 * np.median(times):.2f} ms", flush=True)


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "this")
