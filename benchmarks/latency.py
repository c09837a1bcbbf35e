"""Serving latency of the registered champion, one request at a time, as the POS calls it.

* in process: `mlflow.pyfunc.load_model("models:/pos-recommender@champion").predict(one_row_df)`,
  per scenario (product, basket, customer), `--requests` timed calls after `--warmup` untimed ones;
  budget p50 <= 5 ms, p99 <= 20 ms;
* over HTTP: the server `make serve` runs (`workbench.pos_server`; `--server mlflow`: `mlflow models
  serve --env-manager local`) on 127.0.0.1, the same requests posted one by one to /invocations as
  {"dataframe_records": [...]}; budget p99 <= 50 ms.
* concurrent, over HTTP: 1, 4 and 16 clients (`--clients`), each on its own keep-alive connection,
  sending single requests of all three pages at once to the same server (`make serve`'s one worker
  process per core, `--workers`); throughput, p50, p99, errors and wrong answers (an answer that
  differs from the one the same request got from a lone client before). The 1-client numbers are
  the same-run baseline; unless `--no-compare`, the same section also runs against the other server
  (`mlflow models serve` for the POS server), interleaved round by round, as a second baseline.
  Budget: no error and no wrong answer at any level, p99 <= 50 ms at 4 clients.

The model comes from the current tracking store (`workbench.paths.tracking_uri()`, so run it after
`make demo` / `workbench run`). `--synthetic N` instead registers `--algorithm` (default: the
champion blend) fitted on a generated retailer with N products in a throw-away WORKBENCH_HOME (to
measure before any pipeline ran); `--online-retail` registers the champion fitted on all of the real
Online Retail file (../shared, cleansed as EVALUATION.md says) in a throw-away WORKBENCH_HOME.
Requests use real ids of the model: random products, baskets of 1-5 products, known customers.
Results: benchmarks/results/latency.{json,md}.

    python benchmarks/latency.py [--requests 1000] [--warmup 50] [--no-http] [--synthetic 3000 | --online-retail]
                                 [--clients 1,4,16] [--concurrent-requests 1200] [--concurrent-only]
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import threading
import os
import sys
import tempfile
import time
import urllib.error
import urllib.request
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd
from provenance import measured_on  # benchmarks/ is on the path of a benchmark run

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
README = ROOT / "README.md"
README_BEGIN, README_END = "<!-- latency:begin -->", "<!-- latency:end -->"
BUDGET = {"in_process": {"p50_ms": 5.0, "p99_ms": 20.0}, "http": {"p99_ms": 50.0}}
CONCURRENT_BUDGET = {"clients": 4, "p99_ms": 50.0}  # and no error, no wrong answer at any level


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


def online_retail_champion() -> None:
    """Register the champion fitted on all of Online Retail (EVALUATION.md's cleansing) in the current store."""
    import mlflow

    sys.path.insert(0, str(ROOT / "benchmarks"))
    from quality import DATA, load_online_retail

    from workbench import tracking
    from workbench.models import TrainingData, make_model

    started = time.perf_counter()
    frame = load_online_retail(DATA)
    model = make_model("champion").fit(TrainingData.from_interactions(frame))
    print(f"champion fitted on {frame.height:,} Online Retail lines in {time.perf_counter() - started:.0f} s")
    tracking.configure()
    with mlflow.start_run(run_name="latency-online-retail"):
        uri = tracking.log_recommender(model, {"legal_entity": "online_retail"})
    tracking.register_champion(uri, description="champion on all of Online Retail (latency benchmark)")


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


def over_http(base: str, requests: dict[str, list[dict]], warmup: int) -> dict:
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


def concurrent_http(bases: dict[str, str], requests: dict[str, list[dict]], levels: list[int], per_level: int, repeats: int = 3,
                    seed: int = 0) -> dict[str, dict]:
    """Single requests of all three pages from 1, 4, 16... clients at once (see the docstring), against
    each server of `bases` (name -> base URL) in turn, round by round."""
    pool = [r for triple in zip(*requests.values()) for r in triple]  # product, basket, customer, product...
    bodies = [json.dumps({"dataframe_records": [r]}).encode() for r in pool]
    headers = {"Content-Type": "application/json"}

    def address(base: str) -> tuple[str, int]:
        host, port = base.removeprefix("http://").split(":")
        return host, int(port)

    def post(connection: http.client.HTTPConnection, body: bytes) -> tuple[int, bytes]:
        connection.request("POST", "/invocations", body=body, headers=headers)
        response = connection.getresponse()
        return response.status, response.read()

    # the answers of a lone client: what every concurrent answer must equal
    expected = {}
    for server, base in bases.items():
        connection = http.client.HTTPConnection(*address(base), timeout=60)
        expected[server] = []
        for body in bodies:
            status, answer = post(connection, body)
            if status != 200:
                raise SystemExit(f"{server}: HTTP {status} for {body!r}: {answer[:300]!r}")
            expected[server].append(json.loads(answer))
        connection.close()

    def one_round(base: str, expected: list, clients: int, order: np.ndarray) -> dict:
        host, port = address(base)
        shares = np.array_split(order, clients)
        timings: list[list[float]] = [[] for _ in range(clients)]
        errors, wrong = [0] * clients, [0] * clients
        start = threading.Barrier(clients + 1)

        def client(c: int) -> None:
            connection = http.client.HTTPConnection(host, port, timeout=60)
            post(connection, bodies[int(shares[c][0])])  # connect and warm up, untimed
            start.wait()
            for i in shares[c]:
                started = time.perf_counter()
                try:
                    status, answer = post(connection, bodies[i])
                except (OSError, http.client.HTTPException):
                    errors[c] += 1
                    connection.close()
                    connection = http.client.HTTPConnection(host, port, timeout=60)
                    continue
                timings[c].append(time.perf_counter() - started)
                if status != 200:
                    errors[c] += 1
                elif json.loads(answer) != expected[i]:
                    wrong[c] += 1
            connection.close()

        threads = [threading.Thread(target=client, args=(c,)) for c in range(clients)]
        for thread in threads:
            thread.start()
        start.wait()
        began = time.perf_counter()
        for thread in threads:
            thread.join()
        wall = time.perf_counter() - began
        stats = summarize([t for ts in timings for t in ts])
        stats.update(seconds=round(wall, 3), throughput_rps=round(len(order) / wall, 1), errors=int(sum(errors)), wrong_answers=int(sum(wrong)))
        return stats

    # every level `repeats` times, interleaved (1, 4, 16, 1, 4, 16, ..., each server in turn) so that a
    # noisy spell of the machine does not fall on one level or one server; a level reports the median
    # of its rounds, the p99's range, and all of its rounds' errors and wrong answers
    rounds = {server: {clients: [] for clients in levels} for server in bases}
    rng = np.random.default_rng(seed)
    for _ in range(repeats):
        for clients in levels:
            order = rng.permutation(np.arange(per_level) % len(pool))
            for server, base in bases.items():
                rounds[server][clients].append(one_round(base, expected[server], clients, order))
                print(f"{server}: concurrent {clients:>3} clients, round {len(rounds[server][clients])}: {rounds[server][clients][-1]}")
    agree = all(answers == next(iter(expected.values())) for answers in expected.values())
    out = {}
    for server in bases:
        results = {}
        for clients in levels:
            runs = rounds[server][clients]
            stats = {key: round(float(np.median([run[key] for run in runs])), 3) for key in ("p50_ms", "p90_ms", "p99_ms", "mean_ms", "throughput_rps")}
            stats.update(clients=clients, requests=int(per_level), rounds=len(runs), max_ms=max(run["max_ms"] for run in runs),
                         p99_range_ms=[min(run["p99_ms"] for run in runs), max(run["p99_ms"] for run in runs)],
                         errors=sum(run["errors"] for run in runs), wrong_answers=sum(run["wrong_answers"] for run in runs))
            results[str(clients)] = stats
            print(f"{server}: concurrent {clients:>3} clients, median of {len(runs)} rounds: {stats}")
        base_level = results[str(levels[0])]
        for stats in results.values():
            stats["p99_vs_baseline"] = round(stats["p99_ms"] / max(base_level["p99_ms"], 1e-9), 2)
            stats["throughput_vs_baseline"] = round(stats["throughput_rps"] / max(base_level["throughput_rps"], 1e-9), 2)
        out[server] = {"levels": results, "distinct_requests": len(pool), "baseline_clients": levels[0], "servers_agree": agree}
    return out


def verdict(results: dict) -> list[str]:
    lines = []
    for where, budget in BUDGET.items():
        for scenario, stats in results.get(where, {}).items():
            for key, limit in budget.items():
                ok = stats[key] <= limit
                lines.append(f"{'ok  ' if ok else 'OVER'} {where} {scenario} {key} {stats[key]:.2f} ms (budget {limit:g} ms)")
    for clients, stats in results.get("concurrent", {}).get("levels", {}).items():
        for key in ("errors", "wrong_answers"):
            lines.append(f"{'ok  ' if stats[key] == 0 else 'FAIL'} concurrent {clients} clients {key} {stats[key]} (budget 0)")
        if int(clients) == CONCURRENT_BUDGET["clients"]:
            ok = stats["p99_ms"] <= CONCURRENT_BUDGET["p99_ms"]
            lines.append(f"{'ok  ' if ok else 'OVER'} concurrent {clients} clients p99_ms {stats['p99_ms']:.2f} ms (budget {CONCURRENT_BUDGET['p99_ms']:g} ms)")
    compare = results.get("concurrent_compare")
    if compare:
        lines.append(f"{'ok  ' if compare['servers_agree'] else 'FAIL'} {SERVER_NAMES[results['server']]} and {SERVER_NAMES[compare['server']]} "
                     "give the same answers")
    return lines


def write_results(record: dict, results: Path = RESULTS) -> None:
    results.mkdir(parents=True, exist_ok=True)
    (results / "latency.json").write_text(json.dumps(record, indent=2))
    champion = record["champion"]
    lines = [
        "# Serving latency of the champion",
        "",
        f"Measured {record['measured_at']}{' at ' + record['commit'] if record.get('commit') else ''} on "
        f"{record.get('processor') or record['machine']} (Python {record['python']}, {record['cpus']} CPUs), "
        f"model `{champion['name']}` version {champion['version']} ({champion['algorithm']}, legal entity "
        f"{champion['legal_entity']}, {record['n_items']:,} products){' - synthetic' if record['synthetic'] else ''}"
        f"{' - fitted on all of Online Retail by this benchmark' if record.get('online_retail_fit') else ''}.",
        f"One request per call, k = 10; {record['requests']:,} timed requests per scenario after {record['warmup']} warm-up calls.",
        "",
        "| path | scenario | p50 ms | p90 ms | p99 ms | max ms | budget |",
        "| --- | --- | ---: | ---: | ---: | ---: | --- |",
    ]
    for where, label in (("in_process", "in process (`pyfunc.predict`)"), ("http", f"HTTP ({SERVER_NAMES[record.get('server', 'mlflow')]}, loopback)")):
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
    if "concurrent" in record:
        levels = record["concurrent"]["levels"]
        lines += ["", f"Concurrent clients over HTTP ({_workers(record)}, as `make serve`): single requests of the three "
                  f"pages, {next(iter(levels.values()))['requests']:,} per level and round drawn from {record['concurrent']['distinct_requests']} "
                  "distinct requests, each client on its own keep-alive connection. A wrong answer differs from the answer the "
                  f"same request got from a lone client; the {record['concurrent']['baseline_clients']}-client row is the baseline. "
                  f"{_rounds(levels)}".rstrip(), "",
                  "| clients | throughput req/s | p50 ms | p99 ms | p99 range ms | max ms | errors | wrong answers | p99 / baseline | throughput / baseline |",
                  "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
        for clients, stats in levels.items():
            lines.append(f"| {clients} | {stats['throughput_rps']:.0f} | {stats['p50_ms']:.2f} | {stats['p99_ms']:.2f} | {_range(stats)} | {stats['max_ms']:.2f} | "
                         f"{stats['errors']} | {stats['wrong_answers']} | {stats['p99_vs_baseline']:.2f} | {stats['throughput_vs_baseline']:.2f} |")
        lines += _compare_lines(record)
    load = record.get("load_average", {})
    lines += ["", f"Load average (1 min) at the start {load.get('start')}, at the end {load.get('end')}.",
              "", "```", *record["verdict"], "```", ""]
    (results / "latency.md").write_text("\n".join(lines))


def _rounds(levels: dict) -> str:
    rounds = next(iter(levels.values())).get("rounds", 1)
    return (f"Each level ran {rounds} rounds, interleaved; throughput, p50 and p99 are the medians of the rounds, the range is the "
            "rounds' lowest and highest p99, errors and wrong answers count every round. " if rounds > 1 else "")


def _range(stats: dict) -> str:
    low_high = stats.get("p99_range_ms")
    return f"{low_high[0]:.1f}-{low_high[1]:.1f}" if low_high else "-"


SERVER_NAMES = {"pos": "`workbench.pos_server`", "mlflow": "`mlflow models serve`"}


def _workers(record: dict, server: str | None = None) -> str:
    workers = record.get("workers", 1)  # records before `--workers` served with one
    server = server or record.get("server", "mlflow")  # records before `--server` served with mlflow
    return f"{workers} {SERVER_NAMES[server]} worker process{'es' if workers != 1 else ''}"


def _compare_lines(record: dict) -> list[str]:
    """The same-run comparison with the other server: its concurrent rows and the ratio of p99s."""
    compare = record.get("concurrent_compare")
    if not compare:
        return []
    ours, theirs = record["concurrent"]["levels"], compare["levels"]
    lines = ["", f"The same rounds against {_workers(record, compare['server'])} in the same run, interleaved round by round "
             f"(same requests, same clients); the answers of the two servers to a lone client were "
             f"{'identical' if compare.get('servers_agree') else 'DIFFERENT'}.", "",
             f"| clients | throughput req/s | p50 ms | p99 ms | p99 range ms | errors | wrong answers | {SERVER_NAMES[record['server']]} p99 / this p99 |",
             "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for clients, stats in theirs.items():
        ratio = ours[clients]["p99_ms"] / max(stats["p99_ms"], 1e-9) if clients in ours else float("nan")
        lines.append(f"| {clients} | {stats['throughput_rps']:.0f} | {stats['p50_ms']:.2f} | {stats['p99_ms']:.2f} | {_range(stats)} | "
                     f"{stats['errors']} | {stats['wrong_answers']} | {ratio:.2f} |")
    return lines


def readme_block(record: dict) -> list[str]:
    """The README's latency tables, from the record (copied between the README's latency markers)."""
    champion = record["champion"]
    load = record.get("load_average") or {}
    shared = (f" (load average {load['start']:.1f} at the start, {load['end']:.1f} at the end: other work shared the machine)"
              if "start" in load and "end" in load else "")
    lines = [
        f"The registered {champion['algorithm']} of legal entity {champion['legal_entity']} ({record['n_items']:,} products"
        f"{', fitted on all of Online Retail by the benchmark' if record.get('online_retail_fit') else ''}"
        f"{', synthetic' if record.get('synthetic') else ''}), measured {record['measured_at'][:10]} on {record['cpus']} CPUs"
        f"{shared}. One request per call, k = 10.",
        "",
    ]
    if "in_process" in record:
        lines += [f"Single requests, {record['requests']:,} timed calls per page after {record['warmup']} warm-up calls; the baseline is "
                  "the same model's bare `recommend`, measured in the same run.", "",
                  "| page | bare model p50 ms | pyfunc p50 ms | pyfunc p99 ms | HTTP p99 ms | targets: p50 ≤ 5, p99 ≤ 20, HTTP p99 ≤ 50 |",
                  "| --- | ---: | ---: | ---: | ---: | --- |"]
        for scenario, served in record["in_process"].items():
            http = record.get("http", {}).get(scenario)
            met = served["p50_ms"] <= BUDGET["in_process"]["p50_ms"] and served["p99_ms"] <= BUDGET["in_process"]["p99_ms"] and (
                http is None or http["p99_ms"] <= BUDGET["http"]["p99_ms"])
            lines.append(f"| {scenario} | {record['baseline_recommend'][scenario]['p50_ms']:.2f} | {served['p50_ms']:.2f} | {served['p99_ms']:.2f} | "
                         f"{http['p99_ms'] if http else float('nan'):.2f} | {'met' if met else 'not met'} |")
        lines.append("")
    if "concurrent" in record:
        levels = record["concurrent"]["levels"]
        lines += [f"Concurrent clients over HTTP ({_workers(record)}, as `make serve`), single requests of the three pages, "
                  f"{next(iter(levels.values()))['requests']:,} per client count; a wrong answer differs from what a lone client got "
                  f"for the same request. The {record['concurrent']['baseline_clients']}-client row is the baseline. {_rounds(levels)}"
                  f"Targets: no error and no wrong answer; p99 ≤ {CONCURRENT_BUDGET['p99_ms']:g} ms at {CONCURRENT_BUDGET['clients']} clients.", "",
                  "| clients | throughput req/s | p50 ms | p99 ms | p99 range ms | errors | wrong answers | p99 / baseline | throughput / baseline |",
                  "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
        for clients, stats in levels.items():
            lines.append(f"| {clients} | {stats['throughput_rps']:.0f} | {stats['p50_ms']:.2f} | {stats['p99_ms']:.2f} | {_range(stats)} | {stats['errors']} | "
                         f"{stats['wrong_answers']} | {stats['p99_vs_baseline']:.2f} | {stats['throughput_vs_baseline']:.2f} |")
        lines += _compare_lines(record)
        lines.append("")
    verdict_lines = record["verdict"]
    missed = [line[5:] for line in verdict_lines if not line.startswith("ok")]
    lines.append(f"{len(verdict_lines) - len(missed)} of {len(verdict_lines)} targets met" + (f"; missed: {'; '.join(missed)}." if missed else "."))
    return lines


def update_readme(record: dict) -> None:
    """Copy the tables into README.md between the latency markers (nothing else changes)."""
    from readme_block import replace_block  # benchmarks/ is on the path of a benchmark run

    replace_block(README, README_BEGIN, README_END, readme_block(record))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--warmup", type=int, default=50)
    parser.add_argument("--name", default="pos-recommender", help="registered model name")
    parser.add_argument("--no-http", action="store_true", help="in process only")
    parser.add_argument("--synthetic", type=int, metavar="N_ITEMS", help="register a model on N generated products in a tmp store")
    parser.add_argument("--algorithm", default="champion", help="the algorithm of --synthetic")
    parser.add_argument("--online-retail", action="store_true", help="register the champion fitted on Online Retail in a tmp store")
    parser.add_argument("--clients", default="1,4,16", help="client counts of the concurrent section (first: the baseline)")
    parser.add_argument("--concurrent-requests", type=int, default=1200, help="requests per client count and round")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of every client count (the median is reported)")
    parser.add_argument("--concurrent-only", action="store_true", help="only the concurrent section")
    parser.add_argument("--workers", type=int, default=0, help="server processes over HTTP; 0: one per core, as `make serve`")
    parser.add_argument("--server", choices=("pos", "mlflow"), default="pos", help="the HTTP server measured (pos: what `make serve` runs)")
    parser.add_argument("--no-compare", action="store_true", help="skip the concurrent section against the other server")
    parser.add_argument("--results", type=Path, default=RESULTS, help="where latency.md/json go")
    args = parser.parse_args(argv)
    levels = [int(c) for c in args.clients.split(",") if c.strip()]

    scratch = None
    if args.synthetic or args.online_retail:
        scratch = tempfile.TemporaryDirectory(prefix="latency-")
        os.environ["WORKBENCH_HOME"] = scratch.name
        os.environ.pop("MLFLOW_TRACKING_URI", None)
    from workbench import tracking

    try:
        uri = tracking.configure()
        if args.synthetic:
            synthetic_champion(args.synthetic, args.algorithm)
        elif args.online_retail:
            online_retail_champion()
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
            **measured_on(),  # machine, python and cpus as before, and the commit, processor and libraries
            "synthetic": bool(args.synthetic),
            "online_retail_fit": bool(args.online_retail),
            "champion": {k: info.get(k) for k in ("name", "version", "algorithm", "legal_entity", "run_id", "trained_at")},
            "n_items": int(recommender.n_items),
            "requests": args.requests,
            "warmup": args.warmup,
            "budget": BUDGET,
            "concurrent_budget": CONCURRENT_BUDGET,
            "load_average": {"start": round(os.getloadavg()[0], 2)},
        }
        if not args.concurrent_only:
            record["baseline_recommend"] = bare_recommend(recommender, requests, args.warmup)
            record["in_process"] = in_process(model, requests, args.warmup)
        if not args.no_http:
            from workbench import local_server

            record["workers"] = args.workers or local_server.default_workers()
            record["server"] = args.server
            servers = [args.server] + ([] if args.no_compare else [other for other in local_server.SERVERS if other != args.server])
            with contextlib.ExitStack() as stack:
                bases = {}
                for server in servers:
                    log = stack.enter_context(tempfile.NamedTemporaryFile(suffix=f"-{server}.log"))
                    bases[server] = stack.enter_context(local_server.model_server(
                        f"models:/{args.name}@champion", local_server.free_port(), tracking_uri=uri, log_path=Path(log.name),
                        workers=record["workers"], server=server))
                if not args.concurrent_only:
                    record["http"] = over_http(bases[args.server], requests, args.warmup)
                measured = concurrent_http(bases, requests, levels, args.concurrent_requests, args.rounds)
            record["concurrent"] = measured.pop(args.server)
            if measured:
                other, result = measured.popitem()
                record["concurrent_compare"] = {"server": other, **result}
        record["load_average"]["end"] = round(os.getloadavg()[0], 2)
        record["verdict"] = verdict(record)
        print("\n".join(record["verdict"]))
        write_results(record, args.results)
        print(f"written to {args.results / 'latency.md'} and latency.json")
        if args.results == RESULTS and not args.concurrent_only:
            update_readme(record)
        return 0
    finally:
        if scratch is not None:
            scratch.cleanup()


if __name__ == "__main__":
    sys.exit(main())
