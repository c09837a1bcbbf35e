"""Large catalogs and large retailers: time and memory of every stage as products and lines grow.

    .venv/bin/python benchmarks/scale.py [--sizes 600x1M,10000x1M,50000x5M,100000x20M] [--quality]
                                         [--algorithms sar,item_knn,ease,als,bpr,...] [--requests 300]

For each size (products x sales lines) the demo retailer is generated with `--products` and a
`--scale` giving about that many lines, then each stage runs in its own fresh process in a scratch
WORKBENCH_HOME (so its peak RSS is its own): the same-run baseline (a bare polars read of the
sales_lines table, streamed in chunks), extract, cleanse, and per algorithm: fit on all but the last 30 days, model size
on disk (pickle), load time, in-process latency of single requests per POS page (p50 / p99), and
evaluation on the last 30 days (the protocol's four scenarios). Exponents of time and memory against
lines (at a fixed catalog) and against products (at fixed lines) are least-squares slopes in log-log.

`--quality` adds the dense vs scalable comparison on small catalogs: every item-item model fitted
exactly (dense where it fits) and with the large-catalog path forced on (dense_item_limit=0), scored
on a validation window (the 30 days before Online Retail's 2011-11-09 split; the demo retailer's
last 30 days before 2025-12-01), never on a test window.

Writes benchmarks/results/scale.json and scale.md (rewritten after every size, so a long grid
leaves what it finished).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from provenance import described, measured_on  # benchmarks/ is on the path of a benchmark run
from workbench.evaluation import HEADLINE, MAX_CUSTOMERS  # the one definition of each page's metric, of the case draw

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
ONLINE_RETAIL = ROOT.parent / "shared" / "data" / "online_retail" / "online_retail.csv.gz"
README = ROOT / "README.md"
README_BEGIN, README_END = "<!-- scale:begin -->", "<!-- scale:end -->"
ENTITY = "USRT"
LINES_PER_SCALE = 100_000  # the demo retailer writes ~100k sales lines per unit of --scale
ALGORITHMS = ("best_sellers", "repeat", "sar", "item_knn", "ease", "als", "bpr", "champion")
TARGETS = {"whole_pipeline_s": 1800, "peak_mib": 16 * 1024, "p99_ms": 20.0}
CHILD_TIMEOUT_S = 1800

# One stage in a child process; prints a JSON line last (peak RSS in MiB included).
CHILD = r"""
import json, os, pickle, resource, sys, time
import numpy as np
task, arg = sys.argv[1], sys.argv[2]
out = {}
def peak():
    # VmHWM, not ru_maxrss: Linux keeps ru_maxrss across execve, so a child would report its parent's peak
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmHWM:")) / 1024
started = time.perf_counter()
if task == "generate":
    from workbench.datasets.demo import generate_demo_retailer
    products, scale = int(sys.argv[3]), float(sys.argv[4])
    out["counts"] = generate_demo_retailer(arg, seed=42, scale=scale, products=None if products == 600 else products, progress=False)
elif task == "baseline":
    # streamed, in the chunks extraction reads (sources.CHUNK_ROWS): a whole-table read would need
    # ~1.1 GB per 1M lines, ~20 GB at 20M, and measure the machine rather than the workbench
    import sqlite3, polars as pl
    from workbench.datasets.sources import CHUNK_ROWS
    out["rows"] = sum(batch.height for batch in pl.read_database(
        "select * from sales_lines", sqlite3.connect(arg), iter_batches=True, batch_size=CHUNK_ROWS, infer_schema_length=None))
    out["kind"] = "streamed"
elif task == "extract":
    from workbench.datasets.extract import extract_entity_store
    extract_entity_store(f"sqlite:///{arg}", sys.argv[3], progress=False)
elif task == "cleanse":
    from workbench.cleanse import cleanse_entity_store
    cleanse_entity_store(arg)
elif task == "train":
    import polars as pl
    from workbench import paths
    from workbench.evaluation import build_cases, evaluate, temporal_split
    from workbench.models import Request, TrainingData, make_model
    name, n_requests = sys.argv[3], int(sys.argv[4])
    interactions = pl.read_parquet(paths.interim_dir(arg) / "interactions.parquet")
    split = interactions["time"].max() - __import__("datetime").timedelta(days=30)
    train, test = temporal_split(interactions, split)
    t = time.perf_counter()
    data = TrainingData.from_interactions(train)
    out["prepare_s"] = time.perf_counter() - t
    out["n_items"], out["n_lines"] = data.n_items, int(train.height)
    t = time.perf_counter()
    # "champion:customer_neighbours=0;ranker_iterations=30": an algorithm and its settings (JSON values)
    algorithm, _, given = name.partition(":")
    settings = {key: json.loads(value) for key, value in (part.split("=", 1) for part in given.split(";") if part)}
    model = make_model(algorithm, **settings).fit(data)
    out["fit_s"] = time.perf_counter() - t
    out["fit_peak_mib"] = peak()
    path = os.path.join(sys.argv[5], "model.pkl")
    with open(path, "wb") as f:
        pickle.dump(model, f, protocol=pickle.HIGHEST_PROTOCOL)
    out["size_mib"] = os.path.getsize(path) / 2**20
    del model
    t = time.perf_counter()
    with open(path, "rb") as f:
        model = pickle.load(f)
    out["load_s"] = time.perf_counter() - t
    os.remove(path)
    # single POS requests, as the till sends them: a known customer, a basket, a viewed product
    rng = np.random.default_rng(0)
    customers = rng.choice(data.customer_ids, n_requests) if data.n_customers else [None] * n_requests
    lines = rng.integers(0, len(data.item), n_requests)
    pages = {
        "product": [Request("product", None, (str(data.item_ids[data.item[i]]),)) for i in lines],
        "basket": [Request("basket", c, tuple(str(data.item_ids[j]) for j in data.item[data.basket == data.basket[i]][:8]))
                   for c, i in zip(customers, lines)],
        "customer": [Request("customer", c) for c in customers],
    }
    latency = {}
    for page, requests in pages.items():
        model.recommend(requests[:5], k=10)  # warm-up
        times = []
        for request in requests:
            t = time.perf_counter()
            model.recommend([request], k=10)
            times.append((time.perf_counter() - t) * 1000)
        latency[page] = {"p50_ms": float(np.percentile(times, 50)), "p99_ms": float(np.percentile(times, 99))}
    out["latency"] = latency
    t = time.perf_counter()
    result = evaluate(model, build_cases(train, test, seed=0, max_baskets=1000), k=10).set_index("scenario")
    out["evaluate_s"] = time.perf_counter() - t
    from workbench.evaluation import HEADLINE
    out["metrics"] = {s: float(result.loc[s, m]) for s, m in HEADLINE.items() if s in result.index}
out["seconds"] = time.perf_counter() - started
out["peak_mib"] = peak()
print(json.dumps(out, default=str))
"""


def run_child(home: Path, *args: str, timeout: float = CHILD_TIMEOUT_S) -> dict:
    env = {**os.environ, "WORKBENCH_HOME": str(home), "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}
    env.pop("MLFLOW_TRACKING_URI", None)
    try:
        out = subprocess.run([sys.executable, "-c", CHILD, *args], env=env, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"error": f"not finished in {timeout:.0f} s"}
    if out.returncode:
        last = (out.stderr.strip().splitlines() or ["?"])[-1]
        return {"error": f"exit {out.returncode}: {last[:300]}"}
    return json.loads(out.stdout.strip().splitlines()[-1])


def parse_sizes(text: str) -> list[tuple[int, int]]:
    """'600x1M,10000x500k' -> [(600, 1_000_000), (10_000, 500_000)]"""
    sizes = []
    for part in text.split(","):
        products, lines = part.lower().split("x")
        factor = {"k": 1_000, "m": 1_000_000}.get(lines[-1], 1)
        sizes.append((int(products), int(float(lines.rstrip("km")) * factor)))
    return sizes


def bench_size(products: int, lines: int, algorithms: list[str], n_requests: int, scratch: Path) -> dict:
    home = scratch / f"p{products}_l{lines}"
    shutil.rmtree(home, ignore_errors=True)
    home.mkdir(parents=True)
    database = home / "operational.sqlite"
    row = {"products": products, "lines_target": lines, "scale": lines / LINES_PER_SCALE}
    print(f"\n== {products} products x {lines:,} lines", flush=True)
    row["generate"] = run_child(home, "generate", str(database), str(products), str(lines / LINES_PER_SCALE))
    if "error" in row["generate"]:
        return row
    row["lines"] = row["generate"]["counts"]["sales_lines"]
    row["baseline"] = run_child(home, "baseline", str(database))
    row["extract"] = run_child(home, "extract", str(database), ENTITY)
    row["cleanse"] = run_child(home, "cleanse", ENTITY)
    for stage in ("generate", "baseline", "extract", "cleanse"):
        print(f"  {stage:10s} {row[stage].get('seconds', float('nan')):8.1f} s {row[stage].get('peak_mib', float('nan')):8.0f} MiB {row[stage].get('error', '')}", flush=True)
    row["algorithms"] = {}
    models = home / "models"
    models.mkdir()
    for name in algorithms:
        result = run_child(home, "train", ENTITY, name, str(n_requests), str(models))
        row["algorithms"][name] = result
        if "error" in result:
            print(f"  {name:12s} {result['error']}", flush=True)
        else:
            lat = result["latency"]
            print(f"  {name:12s} fit {result['fit_s']:7.1f} s  peak {result['peak_mib']:6.0f} MiB  size {result['size_mib']:7.1f} MiB  "
                  f"load {result['load_s']:5.2f} s  p99 " + "/".join(f"{lat[p]['p99_ms']:.1f}" for p in ("product", "basket", "customer"))
                  + f" ms  evaluate {result['evaluate_s']:6.1f} s", flush=True)
    shutil.rmtree(home, ignore_errors=True)
    return row


def whole_pipeline(row: dict) -> tuple[float, float]:
    """(seconds, peak MiB) of extract + cleanse + every algorithm's fit and evaluation, each stage run once."""
    seconds = row["extract"].get("seconds", np.nan) + row["cleanse"].get("seconds", np.nan)
    peak = max(row["extract"].get("peak_mib", np.nan), row["cleanse"].get("peak_mib", np.nan))
    for result in row.get("algorithms", {}).values():
        seconds += result.get("prepare_s", np.nan) + result.get("fit_s", np.nan) + result.get("evaluate_s", np.nan)
        peak = max(peak, result.get("peak_mib", np.nan))
    return seconds, peak


def exponent(xs, ys) -> float | None:
    """Least-squares slope of log y on log x (None with fewer than two distinct x)."""
    xs, ys = np.asarray(xs, float), np.asarray(ys, float)
    ok = np.isfinite(xs) & np.isfinite(ys) & (xs > 0) & (ys > 0)
    if len(np.unique(xs[ok])) < 2:
        return None
    return float(np.polyfit(np.log(xs[ok]), np.log(ys[ok]), 1)[0])


def exponents(rows: list[dict], algorithms: list[str]) -> list[dict]:
    """Per stage: exponent of time and peak memory against lines (per catalog with >= 2 line counts)
    and against products (per line count with >= 2 catalogs)."""
    stages = ["extract", "cleanse"] + algorithms
    out = []

    def value(row, stage, key):
        part = row.get(stage) if stage in ("extract", "cleanse") else row.get("algorithms", {}).get(stage)
        if not part or "error" in part:
            return np.nan
        return part["seconds"] if key == "time" and stage in ("extract", "cleanse") else part["fit_s"] if key == "time" else part["peak_mib"]

    for axis, fixed, varying in (("lines", "products", "lines"), ("products", "lines_target", "products")):
        groups: dict = {}
        for row in rows:
            if "lines" in row:
                groups.setdefault(row[fixed], []).append(row)
        for key_value, group in sorted(groups.items()):
            if len({r[varying] for r in group}) < 2:
                continue
            for stage in stages:
                xs = [r[varying] for r in group]
                out.append({
                    "against": axis, "at": f"{fixed.replace('_target', '')} = {key_value:,}", "stage": stage,
                    "time": exponent(xs, [value(r, stage, "time") for r in group]),
                    "memory": exponent(xs, [value(r, stage, "memory") for r in group]),
                })
    return out


# -- dense vs scalable quality on small catalogs -------------------------------------------------------------
QUALITY_MODELS = [
    ("sar jaccard, customers, 30 d", "sar", {"level": "customer", "half_life_days": 30}),
    ("sar jaccard, baskets", "sar", {}),
    ("item_knn cosine", "item_knn", {}),
    ("ease lambda 250", "ease", {"lambda_": 250.0}),
    ("ease lambda 50", "ease", {"lambda_": 50.0}),
    ("ease lambda 100, baskets", "ease", {"lambda_": 100.0, "matrix": "basket"}),
]


def quality(scratch: Path) -> list[dict]:
    import polars as pl

    from workbench.evaluation import build_cases, evaluate, temporal_split, validation_split
    from workbench.models import TrainingData, make_model

    datasets = []
    if ONLINE_RETAIL.exists():
        sys.path.insert(0, str(ROOT / "benchmarks"))
        from quality import load_online_retail

        train, _ = temporal_split(load_online_retail(ONLINE_RETAIL), "2011-11-09")
        datasets.append(("Online Retail, 30 days before 2011-11-09", train))
    else:
        print(f"skipping Online Retail: {ONLINE_RETAIL} is absent")
    home = scratch / "demo_quality"
    home.mkdir(parents=True, exist_ok=True)
    database = home / "operational.sqlite"
    run_child(home, "generate", str(database), "600", "1")
    run_child(home, "extract", str(database), ENTITY)
    run_child(home, "cleanse", ENTITY)
    demo = pl.read_parquet(home / "data" / "interim" / ENTITY / "interactions.parquet")
    train, _ = temporal_split(demo, "2025-12-01")
    datasets.append((f"demo retailer {ENTITY}, 30 days before 2025-12-01", train))

    rows = []
    for label, train in datasets:
        fit_part, validation = validation_split(train, 30)
        cases = build_cases(fit_part, validation, seed=0, max_baskets=2000)
        data = TrainingData.from_interactions(fit_part)
        for model_label, name, params in QUALITY_MODELS:
            row = {"dataset": label, "n_items": data.n_items, "model": model_label}
            for path, limit in (("exact", 10**9), ("scalable", 0)):
                t = time.perf_counter()
                model = make_model(name, **params, dense_item_limit=limit).fit(data)
                fit_s = time.perf_counter() - t
                result = evaluate(model, cases, k=10).set_index("scenario")
                row[path] = {f"{s}.{m}": float(result.loc[s, m]) for s, m in HEADLINE.items()}
                row[path]["fit_s"] = fit_s
            row["change"] = {k: (row["scalable"][k] - row["exact"][k]) / row["exact"][k] if row["exact"][k] else None
                             for k in row["exact"] if k != "fit_s"}
            rows.append(row)
            print(f"  {label[:20]} {model_label:30s} " + "  ".join(f"{k} {v:+.1%}" for k, v in row["change"].items() if v is not None), flush=True)
    return rows


# -- report --------------------------------------------------------------------------------------------------
def fmt(value, spec=".1f", missing="–"):
    return missing if value is None or (isinstance(value, float) and not np.isfinite(value)) else format(value, spec)


def machine(results: dict) -> str:
    """Where the record was measured: its `measured_on` (the commit, the processor), or the cores and
    Python that records older than it named."""
    if results.get("measured_on"):
        return described(results["measured_on"])
    return f"{results['machine']['cpus']} cores, Python {results['machine']['python']}"


def markdown(results: dict) -> str:
    rows, algorithms = results["sizes"], results["algorithms"]
    lines = [
        "# Scale: large catalogs and large retailers",
        "",
        "Generated by `benchmarks/scale.py`; do not edit by hand. "
        f"Machine: {machine(results)}, shared with other work "
        "(single runs: expect +-20% on times).",
        "The retailer is the demo retailer generated with `workbench demo-data --products N --scale S` (legal entity "
        f"{ENTITY}, ~80% of the lines); each stage runs in a fresh process, peak = its peak RSS.",
        "",
        "## Extract and cleanse against the same-run baseline (a bare polars read of the sales_lines table)",
        "",
        "The baseline reads the table in the chunks extraction reads (`sources.CHUNK_ROWS` rows), so its memory stays flat; "
        "rows marked (whole) were measured before, with one whole-table read (~1.1 GB per 1M lines).",
        "",
        "| products | lines | generate s | baseline s | baseline MiB | extract s | extract MiB | cleanse s | cleanse MiB | (extract + cleanse) / baseline |",
        "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for row in rows:
        if "lines" not in row:
            lines.append(f"| {row['products']:,} | {row['lines_target']:,} | {row['generate'].get('error', '')} | | | | | | | |")
            continue
        b, e, c = row["baseline"], row["extract"], row["cleanse"]
        ratio = (e.get("seconds", np.nan) + c.get("seconds", np.nan)) / b.get("seconds", np.nan) if "seconds" in b else np.nan
        whole = "" if b.get("kind") == "streamed" else " (whole)"
        lines.append(f"| {row['products']:,} | {row['lines']:,} | {fmt(row['generate'].get('seconds'))} | {fmt(b.get('seconds'))} | {fmt(b.get('peak_mib'), '.0f')}{whole} | "
                     f"{fmt(e.get('seconds'))} | {fmt(e.get('peak_mib'), '.0f')} | {fmt(c.get('seconds'))} | {fmt(c.get('peak_mib'), '.0f')} | {fmt(ratio)} |")
    lines += [
        "",
        "## Train, store, load, serve, evaluate (per algorithm)",
        "",
        "Fitted on all but the last 30 days; p50 / p99 of single in-process `recommend` calls (k = 10) per page: "
        "product / basket / customer; evaluate = the four scenarios on the last 30 days (up to 1,000 basket cases and, "
        f"as the pipeline's evaluation, {MAX_CUSTOMERS:,} customers drawn at random where more bought).",
        "",
        "| products | lines | algorithm | fit s | peak MiB | on disk MiB | load s | p50 ms | p99 ms | evaluate s |",
        "| ---: | ---: | --- | ---: | ---: | ---: | ---: | --- | --- | ---: |",
    ]
    for row in rows:
        for name in algorithms:
            r = row.get("algorithms", {}).get(name)
            if r is None:
                continue
            if "error" in r:
                lines.append(f"| {row['products']:,} | {row.get('lines', row['lines_target']):,} | {name} | {r['error']} | | | | | | |")
                continue
            lat = r["latency"]
            lines.append(
                f"| {row['products']:,} | {row['lines']:,} | {name} | {fmt(r['fit_s'])} | {fmt(r['peak_mib'], '.0f')} | {fmt(r['size_mib'])} | {fmt(r['load_s'], '.2f')} | "
                + " / ".join(fmt(lat[p]["p50_ms"]) for p in ("product", "basket", "customer")) + " | "
                + " / ".join(fmt(lat[p]["p99_ms"]) for p in ("product", "basket", "customer")) + f" | {fmt(r['evaluate_s'])} |"
            )
    mixed = [f"{row['products']:,} x {row['lines']:,}: " + "; ".join(f"{name} {when}" for when, name in sorted(
                 (r.get("measured") or row.get("measured", "?"), name) for name, r in row.get("algorithms", {}).items()))
             for row in rows if "lines" in row and len({r.get("measured") for r in row.get("algorithms", {}).values()}) > 1]
    if mixed:
        lines += ["", "Rows measured in more than one run (`--append` of some algorithms; extract and cleanse from the latest): "
                  + " | ".join(mixed) + "."]
    lines += ["", "## Whole pipeline and the targets", "", *targets_table(results)]
    growth = growth_with_lines(results)
    if growth:
        lines += ["", *growth]
    fits = results.get("exponents", [])
    if fits:
        lines += ["", "## Growth exponents (slope of log time / log peak memory)", "",
                  "1 = linear. Against lines at a fixed catalog; against products at a fixed number of lines. Few points: read as indicative.", "",
                  "| against | at | stage | time exponent | memory exponent |", "| --- | --- | --- | ---: | ---: |"]
        for f in fits:
            lines.append(f"| {f['against']} | {f['at']} | {f['stage']} | {fmt(f['time'], '.2f')} | {fmt(f['memory'], '.2f')} |")
    quality_rows = results.get("quality")
    if quality_rows:
        lines += ["", "## Quality: exact against the large-catalog path forced on (small catalogs)", "",
                  "Relative change of each headline metric when `dense_item_limit=0` forces the sparse path (SAR: top "
                  "neighbours per product; EASE: per-product ridge regression on its 64 nearest products), on validation "
                  "windows (never the test window). Catalogs up to `dense_item_limit` (8,000 products) keep the exact path.", "",
                  "| dataset | model | customer NDCG | new-items NDCG | basket HR | product HR | fit s exact / scalable |",
                  "| --- | --- | --- | --- | --- | --- | --- |"]
        for q in quality_rows:
            cells = [f"{q['exact'][f'{s}.{m}']:.3f} -> {q['scalable'][f'{s}.{m}']:.3f} ({fmt(q['change'][f'{s}.{m}'] * 100 if q['change'][f'{s}.{m}'] is not None else None, '+.1f')}%)"
                     for s, m in HEADLINE.items()]
            lines.append(f"| {q['dataset']} ({q['n_items']:,} products) | {q['model']} | " + " | ".join(cells)
                         + f" | {q['exact']['fit_s']:.1f} / {q['scalable']['fit_s']:.1f} |")
        lines += ["", quality_verdict(quality_rows)]
    if results.get("not_run"):
        lines += ["", "## Not run", "", results["not_run"]]
    return "\n".join(lines) + "\n"


def targets_table(results: dict) -> list[str]:
    lines = ["Whole pipeline = extract + cleanse + every algorithm's preparation, fit and evaluation, run one after the other "
             "(what `workbench run` does, without MLflow logging); peak = the largest stage's; p50 / p99 = the worst page of the "
             "worst algorithm, single in-process requests.", "",
             "| products | lines | whole pipeline s | peak MiB | worst p50 ms | worst p99 ms | pipeline <= 30 min | peak <= 16 GB | p99 <= 20 ms |",
             "| ---: | ---: | ---: | ---: | --- | --- | --- | --- | --- |"]
    for row in results["sizes"]:
        if "lines" not in row:
            continue
        seconds, peak = whole_pipeline(row)
        timed = {n: r["latency"] for n, r in row["algorithms"].items() if "latency" in r}
        p50 = max(((max(v["p50_ms"] for v in lat.values()), n) for n, lat in timed.items()), default=(np.nan, "–"))
        p99 = max(((max(v["p99_ms"] for v in lat.values()), n) for n, lat in timed.items()), default=(np.nan, "–"))
        failed = [n for n, r in row["algorithms"].items() if "error" in r]
        note = f" ({', '.join(failed)} did not finish)" if failed else ""
        lines.append(f"| {row['products']:,} | {row['lines']:,} | {fmt(seconds, '.0f')}{note} | {fmt(peak, '.0f')} | {fmt(p50[0])} ({p50[1]}) | "
                     f"{fmt(p99[0])} ({p99[1]}) | {'yes' if seconds <= TARGETS['whole_pipeline_s'] and not failed else 'no'} | "
                     f"{'yes' if peak <= TARGETS['peak_mib'] else 'no'} | {'yes' if p99[0] <= TARGETS['p99_ms'] else 'no'} |")
    return lines


def quality_verdict(quality_rows: list[dict]) -> str:
    worst = min(v for q in quality_rows for v in q["change"].values() if v is not None)
    return (f"Large-catalog path forced on small catalogs: worst change {worst:+.1%} on a headline metric. "
            + ("Every model is within 2% of exact." if worst >= -0.02 else
               "Not within 2% on every metric, so catalogs that fit keep the exact path (`dense_item_limit`, default "
               "8,000 products); the sparse path is used only past it."))


def growth_with_lines(results: dict) -> list[str]:
    """Per catalog measured at two or more line counts: the exponent of the whole pipeline's time and of
    its peak memory against lines (1 = linear), the target being time no worse than linear."""
    groups: dict = {}
    for row in results["sizes"]:
        if "lines" in row:
            groups.setdefault(row["products"], []).append(row)
    out = []
    for products, group in sorted(groups.items()):
        if len({r["lines"] for r in group}) < 2:
            continue
        pipelines = [whole_pipeline(r) for r in group]
        xs = [r["lines"] for r in group]
        time_exp, memory_exp = exponent(xs, [p[0] for p in pipelines]), exponent(xs, [p[1] for p in pipelines])
        span = f"{min(xs):,} to {max(xs):,} lines"
        out.append(f"Growth with lines at {products:,} products ({span}): whole pipeline time exponent {fmt(time_exp, '.2f')}, "
                   f"peak memory exponent {fmt(memory_exp, '.2f')} (1 = linear; time no worse than linear: "
                   f"{'yes' if time_exp is not None and time_exp <= 1.0 else 'no'}).")
    return out


def readme_block(results: dict) -> list[str]:
    """The targets table and the quality verdict, as the README shows them between the scale markers."""
    block = targets_table(results)
    growth = growth_with_lines(results)
    if growth:
        block += ["", *growth]
    if results.get("quality"):
        block += ["", quality_verdict(results["quality"])]
    if results.get("not_run"):
        block += ["", results["not_run"]]
    return block


def update_readme(results: dict) -> None:
    """Copy readme_block into README.md between the scale markers."""
    from readme_block import replace_block  # benchmarks/ is on the path of a benchmark run

    replace_block(README, README_BEGIN, README_END, readme_block(results))


def write(results: dict) -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "scale.json").write_text(json.dumps(results, indent=2, default=str))
    (RESULTS / "scale.md").write_text(markdown(results))
    update_readme(results)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="600x1M,10000x1M,50000x1M,50000x5M,100000x20M",
                        help="products x lines, comma-separated (k and M suffixes)")
    parser.add_argument("--algorithms", default=",".join(ALGORITHMS),
                        help="comma-separated; settings after a colon, as JSON values: champion:customer_neighbours=0;ranker_iterations=30")
    parser.add_argument("--requests", type=int, default=300, help="single requests timed per page")
    parser.add_argument("--quality", action="store_true", help="also compare exact and scalable paths on small catalogs")
    parser.add_argument("--not-run", default="", help="a sentence for the report: which sizes were left out and why")
    parser.add_argument("--report-only", action="store_true", help="rewrite scale.md and the README block from scale.json")
    parser.add_argument("--append", action="store_true",
                        help="keep the sizes of the last run (scale.json) and add these; a size run again gets new extract and "
                             "cleanse figures and new results for --algorithms, and keeps the earlier results of the others")
    args = parser.parse_args(argv)
    if args.report_only:
        write(json.loads((RESULTS / "scale.json").read_text()))
        return 0
    algorithms = args.algorithms.split(",")
    results = {"measured_on": measured_on(), "algorithms": algorithms,
               "sizes": [], "not_run": args.not_run, "started": time.strftime("%Y-%m-%d %H:%M:%S")}
    kept, rerun = [], {}
    if args.append and (RESULTS / "scale.json").exists():
        earlier = json.loads((RESULTS / "scale.json").read_text())
        asked = set(parse_sizes(args.sizes))
        kept = [row for row in earlier.get("sizes", []) if (row["products"], row["lines_target"]) not in asked]
        rerun = {(row["products"], row["lines_target"]): row for row in earlier.get("sizes", []) if (row["products"], row["lines_target"]) in asked}
        results["algorithms"] = list(dict.fromkeys(earlier.get("algorithms", []) + algorithms))
        results["started"] = f"{earlier.get('started')} (sizes added {results['started']})"
        results["not_run"] = args.not_run or earlier.get("not_run", "")  # what the grid still lacks stays said
    with tempfile.TemporaryDirectory(prefix="scale-") as scratch:
        scratch = Path(scratch)
        if args.quality:
            results["quality"] = quality(scratch)
            write(results)
        elif (RESULTS / "scale.json").exists():  # the last comparison stays in the report
            results["quality"] = json.loads((RESULTS / "scale.json").read_text()).get("quality")
        results["sizes"] = kept
        for products, lines in parse_sizes(args.sizes):
            row = bench_size(products, lines, algorithms, args.requests, scratch)
            row["measured"] = time.strftime("%Y-%m-%d %H:%M:%S")
            row["algorithms_run"] = algorithms
            for result in row.get("algorithms", {}).values():
                result["measured"] = row["measured"]
            earlier_row = rerun.get((products, lines), {})
            for name, result in earlier_row.get("algorithms", {}).items():  # the algorithms this run left out
                if name not in row.get("algorithms", {}):
                    row.setdefault("algorithms", {})[name] = {**result, "measured": result.get("measured") or earlier_row.get("measured")}
            # rows in order of products, then lines: the earlier run's beside this one's
            results["sizes"] = sorted(results["sizes"] + [row], key=lambda r: (r["products"], r["lines_target"]))
            results["exponents"] = exponents(results["sizes"], results["algorithms"])  # the kept algorithms' too
            write(results)
    print(f"\nwritten: {RESULTS / 'scale.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
