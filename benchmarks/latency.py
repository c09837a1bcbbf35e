"""Serving latency of the registered champion, one request at a time, as the POS calls it.

* in process: `mlflow.pyfunc.load_model("models:/pos-recommender@champion").predict(one_row_df)`,
  per scenario (product, basket, customer), `--requests` timed calls after `--warmup` untimed ones;
  budget p50 <= 5 ms, p99 <= 20 ms;
* over HTTP: `mlflow models serve --env-manager local` on 127.0.0.1, the same requests posted one by
  one to /invocations as {"dataframe_records": [...]}; budget p99 <= 50 ms.

The model comes from the current tracking store (`workbench.paths.tracking_uri()`, so run it after
`make demo` / `workbench run`). `--synthetic N` instead registers `--algorithm` (default: the
champion blend) fitted on a generated retailer with N products in a throw-away WORKBENCH_HOME (to
measure before any pipeline ran).
Requests use real ids of the model: random products, baskets of 1-5 products, known customers.
Results: benchmarks/results/latency.{json,md}.

    python benchmarks/latency.py [--requests 1000] [--warmup 50] [--no-http] [--synthetic 3000]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
import urllib.error
import urllib.request
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
BUDGET = {"in_process": {"p50_ms": 5.0, "p99_ms": 20.0}, "http": {"p99_ms": 50.0}}


def synthetic_champion(n_items: int, algorithm: str = "champion", seed: int = 0) -> None:
    """Register `algorithm` fitted on a generated retailer (n_items products) in the current store."""
    import mlflow

    from workbench import tracking
    from workbench.models import TrainingData, make_model

    rng = np.random.default_rng(seed)
    n_customers, n_baskets = max(200, n_items // 2), n_items * 8
    popularity = 1.0 / (np.arange(n_items) + 20.0) ** 0.9  # a long tail, as in retail
    popularity = rng.permutation(popularity / popularity.sum())
    sizes = rng.integers(1, 8, size=n_baskets)
    items = rng.choice(n_items, size=int(sizes.sum()), p=popularity)
    basket = np.repeat(np.arange(n_baskets), sizes)
    customers = rng.integers(-n_customers // 4, n_customers, size=n_baskets)
    frame = pd.DataFrame(
        {
            "customer_id": [f"C{c}" if c >= 0 else None for c in customers[basket]],
            "basket_id": [f"B{b}" for b in basket],
            "product_id": [f"P{i}" for i in items],
            "time": (pd.Timestamp("2024-01-01") + pd.to_timedelta(basket * (365 * 86400 // n_baskets), unit="s")).astype("datetime64[us]"),
            "quantity": 1.0,
            "store_id": [f"S{b % 5}" for b in basket],
        }
    ).drop_duplicates(["basket_id", "product_id"])
    model = make_model(algorithm).fit(TrainingData.from_interactions(frame))
    tracking.configure()
    with mlflow.start_run(run_name="latency-synthetic"):
        uri = tracking.log_recommender(model, {"legal_entity": "SYNTHETIC"})
    tracking.register_champion(uri, description=f"synthetic {algorithm}, {n_items} products (latency benchmark)")


def build_requests(recommender, n: int, seed: int = 0) -> dict[str, list[dict]]:
    """n single requests per scenario, with the model's own product and customer ids."""
    rng = np.random.default_rng(seed)
    items = [str(i) for i in recommender.item_ids]
    customers = [str(c) for c in recommender.customer_index] or [None]
    weights = np.asarray(recommender.best_sellers, dtype=float) + 1e-3
    weights /= weights.sum()

    def products(size):
        return [items[i] for i in rng.choice(len(items), size=min(size, len(items)), replace=False, p=weights)]

    return {
        "product": [{"scenario": "product", "customer_id": None, "product_ids": products(1), "k": 10, "store_id": None} for _ in range(n)],
        "basket": [
            {"scenario": "basket", "customer_id": customers[rng.integers(len(customers))] if rng.random() < 0.6 else None,
             "product_ids": products(int(rng.integers(1, 6))), "k": 10, "store_id": None}
            for _ in range(n)
        ],
        "customer": [
            {"scenario": "customer", "customer_id": customers[rng.integers(len(customers))], "product_ids": [], "k": 10, "store_id": None}
            for _ in range(n)
        ],
    }


def summarize(seconds: list[float]) -> dict:
    ms = np.asarray(seconds) * 1000
    return {
        "n": int(len(ms)),
        "p50_ms": round(float(np.percentile(ms, 50)), 3),
        "p90_ms": round(float(np.percentile(ms, 90)), 3),
        "p99_ms": round(float(np.percentile(ms, 99)), 3),
        "max_ms": round(float(ms.max()), 3),
        "mean_ms": round(float(ms.mean()), 3),
    }


def time_each(label: str, inputs: dict[str, list], call, warmup: int) -> dict:
    """`call(x)` for every x of each scenario, one at a time, after `warmup` untimed calls."""
    results = {}
    for scenario, items in inputs.items():
        for x in items[:warmup]:
            call(x)
        timings = []
        for x in items:
            started = time.perf_counter()
            call(x)
            timings.append(time.perf_counter() - started)
        results[scenario] = summarize(timings)
        print(f"{label:<10} {scenario:>8}: {results[scenario]}")
    return results


def bare_recommend(recommender, requests: dict[str, list[dict]], warmup: int) -> dict:
    """The baseline, measured in the same run: the fitted model's own `recommend`, without the
    pyfunc wrapper, its schema check and the DataFrames (what the serving layer costs on top)."""
    from workbench.models import Request

    batches = {
        scenario: [[Request(r["scenario"], r["customer_id"], tuple(r["product_ids"]), r["k"], r["store_id"])] for r in records]
        for scenario, records in requests.items()
    }
    return time_each("baseline", batches, recommender.recommend, warmup)


def in_process(model, requests: dict[str, list[dict]], warmup: int) -> dict:
    frames = {scenario: [pd.DataFrame([r]) for r in records] for scenario, records in requests.items()}
    return time_each("in process", frames, model.predict, warmup)


def over_http(tracking_uri: str, name: str, requests: dict[str, list[dict]], warmup: int) -> dict:
    from workbench import local_server

    with tempfile.NamedTemporaryFile(suffix=".log") as log, local_server.model_server(
        f"models:/{name}@champion", local_server.free_port(), tracking_uri=tracking_uri, log_path=Path(log.name)
    ) as base:
        results = {}
        for scenario, records in requests.items():
            bodies = [json.dumps({"dataframe_records": [r]}).encode() for r in records]
            timings = []
            for i, body in enumerate(bodies[:warmup] + bodies):
                request = urllib.request.Request(f"{base}/invocations", data=body, headers={"Content-Type": "application/json"})
                started = time.perf_counter()
                with urllib.request.urlopen(request, timeout=30) as response:
                    response.read()
                    if response.status != 200:
                        raise SystemExit(f"HTTP {response.status} for {body!r}")
                if i >= warmup:
                    timings.append(time.perf_counter() - started)
            results[scenario] = summarize(timings)
            print(f"over HTTP  {scenario:>8}: {results[scenario]}")
        return results


def verdict(results: dict) -> list[str]:
    lines = []
    for where, budget in BUDGET.items():
        for scenario, stats in results.get(where, {}).items():
            for key, limit in budget.items():
                ok = stats[key] <= limit
                lines.append(f"{'ok  ' if ok else 'OVER'} {where} {scenario} {key} {stats[key]:.2f} ms (budget {limit:g} ms)")
    return lines


def write_results(record: dict) -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "latency.json").write_text(json.dumps(record, indent=2))
    champion = record["champion"]
    lines = [
        "# Serving latency of the champion",
        "",
        f"Measured {record['measured_at']} on {record['machine']} (Python {record['python']}, {os.cpu_count()} CPUs), "
        f"model `{champion['name']}` version {champion['version']} ({champion['algorithm']}, legal entity "
        f"{champion['legal_entity']}, {record['n_items']:,} products){' - synthetic' if record['synthetic'] else ''}.",
        f"One request per call, k = 10; {record['requests']:,} timed requests per scenario after {record['warmup']} warm-up calls.",
        "",
        "| path | scenario | p50 ms | p90 ms | p99 ms | max ms | budget |",
        "| --- | --- | ---: | ---: | ---: | ---: | --- |",
    ]
    for where, label in (("in_process", "in process (`pyfunc.predict`)"), ("http", "HTTP (`mlflow models serve`, loopback)")):
        budget = ", ".join(f"{k.split('_')[0]} <= {v:g} ms" for k, v in BUDGET[where].items())
        for scenario, stats in record.get(where, {}).items():
            lines.append(f"| {label} | {scenario} | {stats['p50_ms']:.2f} | {stats['p90_ms']:.2f} | {stats['p99_ms']:.2f} | {stats['max_ms']:.2f} | {budget} |")
    if "baseline_recommend" in record:
        lines += ["", "Baseline in the same run: the model's own `recommend` without the pyfunc wrapper; "
                  "ratio = pyfunc p50 / baseline p50 (what the serving layer adds).", "",
                  "| scenario | baseline p50 ms | baseline p99 ms | pyfunc p50 ms | ratio |", "| --- | ---: | ---: | ---: | ---: |"]
        for scenario, base in record["baseline_recommend"].items():
            served = record["in_process"][scenario]
            lines.append(f"| {scenario} | {base['p50_ms']:.2f} | {base['p99_ms']:.2f} | {served['p50_ms']:.2f} | "
                         f"{served['p50_ms'] / max(base['p50_ms'], 1e-9):.1f} |")
    lines += ["", "```", *record["verdict"], "```", ""]
    (RESULTS / "latency.md").write_text("\n".join(lines))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--warmup", type=int, default=50)
    parser.add_argument("--name", default="pos-recommender", help="registered model name")
    parser.add_argument("--no-http", action="store_true", help="in process only")
    parser.add_argument("--synthetic", type=int, metavar="N_ITEMS", help="register a model on N generated products in a tmp store")
    parser.add_argument("--algorithm", default="champion", help="the algorithm of --synthetic")
    args = parser.parse_args(argv)

    scratch = None
    if args.synthetic:
        scratch = tempfile.TemporaryDirectory(prefix="latency-")
        os.environ["WORKBENCH_HOME"] = scratch.name
        os.environ.pop("MLFLOW_TRACKING_URI", None)
    from workbench import tracking

    try:
        uri = tracking.configure()
        if args.synthetic:
            synthetic_champion(args.synthetic, args.algorithm)
        try:
            info = tracking.champion_info(args.name)
            model = tracking.load_champion(args.name)
        except tracking.NoChampionError as error:
            print(f"latency: {error}", file=sys.stderr)
            return 1
        recommender = model.unwrap_python_model().recommender
        requests = build_requests(recommender, args.requests)
        record = {
            "measured_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "machine": platform.platform(),
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
            "synthetic": bool(args.synthetic),
            "champion": {k: info.get(k) for k in ("name", "version", "algorithm", "legal_entity", "run_id", "trained_at")},
            "n_items": int(recommender.n_items),
            "requests": args.requests,
            "warmup": args.warmup,
            "budget": BUDGET,
            "baseline_recommend": bare_recommend(recommender, requests, args.warmup),
            "in_process": in_process(model, requests, args.warmup),
        }
        if not args.no_http:
            record["http"] = over_http(uri, args.name, requests, args.warmup)
        record["verdict"] = verdict(record)
        print("\n".join(record["verdict"]))
        write_results(record)
        print(f"written to {RESULTS / 'latency.md'} and latency.json")
        return 0
    finally:
        if scratch is not None:
            scratch.cleanup()


if __name__ == "__main__":
    sys.exit(main())
