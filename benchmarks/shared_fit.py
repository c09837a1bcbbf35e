"""A per-page champion served by the champion and its blend alone: one fit for both
(`Champion.fit_with_blend`, what `Routing.fit` does) against the two fits each on its own, in the
same run. Time: median of `--repeat` runs of each; memory: the pickled registered model (what MLflow
stores and every POS worker loads), the shared one against the two models pickled apart.

    .venv/bin/python benchmarks/shared_fit.py [--repeat 3]

Datasets: Online Retail before its 2011-11-09 split (skipped where ../shared is absent) and the
demo retailer's USRT before its last 30 days, both with the default settings. Writes
benchmarks/results/shared_fit.{json,md} and the README's block.
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import statistics
import sys
import time
from pathlib import Path

import pandas as pd
import polars as pl

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
README = ROOT / "README.md"
README_BEGIN, README_END = "<!-- shared-fit:begin -->", "<!-- shared-fit:end -->"
ROUTES = {"customer": "champion", "customer_new_items": "blend", "basket": "champion", "product": "blend"}


def datasets() -> dict[str, pl.DataFrame]:
    from quality import DATA, TEST_DAYS, load_demo, load_online_retail

    found = {}
    if DATA.exists():
        frame = load_online_retail(DATA)
        found["Online Retail, before 2011-11-09"] = frame.filter(pl.col("time") < pd.Timestamp("2011-11-09").to_pydatetime())
    frame, _ = load_demo(1.0, seed=42)["USRT"]
    split = pd.Timestamp(frame["time"].max()).normalize() + pd.Timedelta(days=1) - pd.Timedelta(days=TEST_DAYS)
    found[f"demo retailer USRT, before {split.date()}"] = frame.filter(pl.col("time") < split.to_pydatetime())
    return found


def measure(frame: pl.DataFrame, repeat: int) -> dict:
    from workbench.models import TrainingData, make_model

    data = TrainingData.from_interactions(frame)
    candidates = {name: {"algorithm": name, "params": {}} for name in ("champion", "blend")}
    apart, shared, apart_bytes, shared_bytes = [], [], 0, 0
    for _ in range(repeat):
        started = time.perf_counter()
        models = [make_model("champion").fit(data), make_model("blend").fit(data)]
        apart.append(time.perf_counter() - started)
        started = time.perf_counter()
        routing = make_model("routing", routes=ROUTES, candidates=candidates).fit(data)
        shared.append(time.perf_counter() - started)
        apart_bytes = sum(len(pickle.dumps(m)) for m in models)
        shared_bytes = len(pickle.dumps(routing))
        print(f"  apart {apart[-1]:.1f} s, one pass {shared[-1]:.1f} s", flush=True)
    return {
        "lines": frame.height, "products": data.n_items, "apart_s": apart, "shared_s": shared,
        "apart_median_s": statistics.median(apart), "shared_median_s": statistics.median(shared),
        "time_ratio": statistics.median(shared) / statistics.median(apart),
        "apart_mb": apart_bytes / 2**20, "shared_mb": shared_bytes / 2**20, "memory_ratio": shared_bytes / apart_bytes,
    }


def readme_block(record: dict) -> list[str]:
    lines = [
        f"The champion and its blend alone, fitted for a per-page champion that serves both: one pass against two fits, "
        f"median of {record['repeat']} runs each in the same run; memory: the pickled model the registry stores. "
        f"Load average {record['load'][0]:.1f} at the start, {record['load'][1]:.1f} at the end.",
        "",
        "| dataset | lines | two fits s | one pass s | time ratio | two models MiB | one model MiB | memory ratio |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for name, r in record["datasets"].items():
        lines.append(f"| {name} | {r['lines']:,} | {r['apart_median_s']:.1f} | {r['shared_median_s']:.1f} | {r['time_ratio']:.2f} "
                     f"| {r['apart_mb']:.0f} | {r['shared_mb']:.0f} | {r['memory_ratio']:.2f} |")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from readme_block import replace_block

    load_start = os.getloadavg()[0]
    results = {}
    for name, frame in datasets().items():
        print(name, flush=True)
        results[name] = measure(frame, args.repeat)
    record = {"repeat": args.repeat, "cpus": os.cpu_count(), "load": [load_start, os.getloadavg()[0]],
              "run_at": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "datasets": results}
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "shared_fit.json").write_text(json.dumps(record, indent=2))
    block = readme_block(record)
    (RESULTS / "shared_fit.md").write_text("\n".join(["# One fit for the champion and its blend", "",
                                                       f"Generated by `benchmarks/shared_fit.py` ({record['run_at']}, {record['cpus']} CPUs); do not edit by hand.", "", *block]) + "\n")
    replace_block(README, README_BEGIN, README_END, block)
    print("\n".join(block))
    return 0


if __name__ == "__main__":
    sys.exit(main())
