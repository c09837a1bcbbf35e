"""Offline quality of every algorithm on the real UCI Online Retail data, against the peers.

    .venv/bin/python benchmarks/quality.py [--quick]

Follows ../shared/EVALUATION.md: cleanse, split at 2011-11-09, the four POS scenarios, k = 10. The
champion learns its re-rankers on the 30 days before the split (inside its own `fit`). Writes
benchmarks/results/quality.md and quality.json. Skips (exit 0) where the shared file is absent.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import polars as pl

from workbench.evaluation import build_cases, evaluate, temporal_split
from workbench.models import TrainingData, make_model

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "online_retail" / "online_retail.csv.gz"
RESULTS = ROOT / "benchmarks" / "results"
SPLIT = "2011-11-09"
ROBUSTNESS_SPLIT = "2011-11-10"  # the champion again, split one day later: are the margins real?
NON_MERCHANDISE = ["POST", "DOT", "M", "m", "C2", "D", "S", "B", "PADS", "BANK CHARGES", "AMAZONFEE", "CRUK"]

# (label, registry name, params): our algorithms, and the peers' usual settings
MODELS = [
    ("popular", "best_sellers", {"per_store": False}),
    ("best_sellers (per country)", "best_sellers", {}),
    ("trending (14-day half-life)", "trending", {}),
    ("personal top-frequency", "repeat", {"half_life_days": None}),
    ("repeat (90-day half-life)", "repeat", {}),
    ("sar jaccard, customers, 30 d (peer-like)", "sar", {"level": "customer", "half_life_days": 30}),
    ("sar count, customers, 30 d (peer-like)", "sar", {"level": "customer", "similarity": "count", "half_life_days": 30}),
    ("sar jaccard, baskets", "sar", {}),
    ("als 64 BM25 15 it (peer-like)", "als", {"factors": 64, "iterations": 15, "bm25": True}),
    ("bpr 64 (peer-like)", "bpr", {"factors": 64}),
    ("item_knn cosine (peer-like)", "item_knn", {}),
    ("ease lambda 250 (peer-like)", "ease", {"lambda_": 250.0}),
    ("ease lambda 50 (peer-like)", "ease", {"lambda_": 50.0}),
    ("ease lambda 100, baskets", "ease", {"lambda_": 100.0, "matrix": "basket"}),
    ("champion (blend + learnt re-ranker)", "champion", {}),
]

# EVALUATION.md's peer table: fit s, customer NDCG, customer HR, new NDCG, basket HR, basket MAP, product HR, product NDCG
PEERS = {
    "popular": (0.0, 0.089, 0.467, 0.032, 0.032, 0.013, 0.380, 0.073),
    "personal top-frequency": (0.0, 0.337, 0.826, 0.032, 0.166, 0.072, 0.380, 0.074),
    "SAR jaccard (recommenders)": (2.8, 0.308, 0.758, 0.077, 0.242, 0.122, 0.611, 0.191),
    "SAR co-occurrence (recommenders)": (1.0, 0.199, 0.671, 0.048, 0.125, 0.060, 0.633, 0.195),
    "implicit ALS": (0.7, 0.287, 0.769, 0.089, 0.226, 0.105, 0.611, 0.193),
    "implicit BPR": (4.1, 0.207, 0.651, 0.065, 0.189, 0.090, 0.590, 0.184),
    "implicit ItemKNN (cosine)": (0.2, 0.215, 0.633, 0.029, 0.174, 0.091, 0.575, 0.182),
    "EASE lambda 250": (5.2, 0.264, 0.722, 0.101, 0.308, 0.148, 0.640, 0.196),
    "EASE lambda 50": (5.0, 0.262, 0.737, 0.093, 0.319, 0.156, 0.620, 0.185),
}
COLUMNS = [
    ("customer", "ndcg"), ("customer", "hr"), ("customer_new_items", "ndcg"),
    ("basket", "hr"), ("basket", "map"), ("product", "hr"), ("product", "ndcg"),
]
TARGETS = {("customer", "ndcg"): 0.37, ("customer_new_items", "ndcg"): 0.11, ("basket", "hr"): 0.35, ("product", "hr"): 0.70}


def load_with_workbench(path: Path) -> pl.DataFrame | None:
    """The project's own reader and cleansing, where they exist and reproduce the protocol."""
    try:
        from workbench.cleanse import cleanse
        from workbench.datasets.online_retail import read_online_retail

        result = cleanse(read_online_retail(path))
        interactions = result["interactions"] if isinstance(result, dict) else result.interactions
        return interactions.select("customer_id", "basket_id", "product_id", "time", "quantity", "store_id", "channel")
    except Exception as error:  # the other stages are being written in parallel: fall back
        print(f"workbench cleansing not usable here ({type(error).__name__}: {error}); using the local loader")
        return None


def load_locally(path: Path) -> pl.DataFrame:
    """EVALUATION.md's cleansing, in a few lines of polars."""
    raw = pl.read_csv(
        path,
        schema_overrides={"InvoiceNo": pl.String, "StockCode": pl.String, "CustomerID": pl.String, "Description": pl.String},
    )
    code = pl.col("StockCode")
    kept = raw.filter(
        ~pl.col("InvoiceNo").str.starts_with("C")
        & ~pl.col("InvoiceNo").str.starts_with("A")
        & (pl.col("Quantity") > 0)
        & (pl.col("UnitPrice") > 0)
        & ~code.is_in(NON_MERCHANDISE)
        & ~code.str.starts_with("gift_")
        & ~code.str.starts_with("DCGS")
    ).with_columns(
        pl.col("InvoiceDate").str.to_datetime("%Y-%m-%d %H:%M:%S"),
        pl.col("CustomerID").str.replace(r"\.0$", ""),
    )
    return (
        kept.group_by("InvoiceNo", "StockCode")  # one line per (invoice, stock code)
        .agg(
            pl.col("CustomerID").first().alias("customer_id"),
            pl.col("InvoiceDate").min().alias("time"),
            pl.col("Quantity").sum().cast(pl.Float64).alias("quantity"),
            pl.col("Country").first().alias("store_id"),
            pl.col("Description").drop_nulls().first().alias("name"),
        )
        .rename({"InvoiceNo": "basket_id", "StockCode": "product_id"})
        .with_columns(pl.lit("online").alias("channel"))
        .sort("time", "basket_id", "product_id")
    )


def main(quick: bool = False) -> int:
    if not DATA.exists():
        print(f"skipped: {DATA} is absent")
        return 0
    started = time.perf_counter()
    local = load_locally(DATA)
    interactions = load_with_workbench(DATA)
    loader = "workbench.cleanse"
    if interactions is None or abs(interactions["basket_id"].n_unique() - local["basket_id"].n_unique()) > 0.01 * local["basket_id"].n_unique():
        if interactions is not None:
            print("workbench cleansing keeps a different set of invoices than EVALUATION.md; using the local loader")
        interactions, loader = local, "benchmarks/quality.py local loader"
    train, test = temporal_split(interactions, SPLIT)
    cases = build_cases(train, test, seed=0, max_baskets=3000)
    data = TrainingData.from_interactions(train)
    prepared = time.perf_counter() - started
    print(f"data ready in {prepared:.1f}s ({loader}); cases: " + ", ".join(f"{s} {len(c)}" for s, c in cases.items()))

    rows, tuned = [], {}
    for label, name, params in MODELS[-1:] if quick else MODELS:
        t = time.perf_counter()
        model = make_model(name, **params).fit(data)
        fit_s = time.perf_counter() - t
        t = time.perf_counter()
        result = evaluate(model, cases, k=10)
        eval_s = time.perf_counter() - t
        row = {"model": label, "algorithm": name, "params": params, "fit_s": round(fit_s, 2), "eval_s": round(eval_s, 2)}
        for _, r in result.iterrows():
            for metric in ("precision", "recall", "ndcg", "map", "hr", "coverage", "novelty"):
                row[f"{r['scenario']}.{metric}"] = round(float(r[metric]), 4)
            row[f"{r['scenario']}.n_cases"] = int(r["n_cases"])
        rows.append(row)
        if name == "champion":
            tuned = {"weights": model.weights, "validation": model.tuning_report}
        print(f"{label:45s} fit {fit_s:5.1f}s eval {eval_s:4.1f}s  " + "  ".join(f"{s[:12]} {m} {row[f'{s}.{m}']:.3f}" for s, m in COLUMNS))

    robustness = None
    if not quick:
        train, test = temporal_split(interactions, ROBUSTNESS_SPLIT)
        label, name, params = MODELS[-1]
        t = time.perf_counter()
        model = make_model(name, **params).fit(TrainingData.from_interactions(train))
        fit_s = time.perf_counter() - t
        result = evaluate(model, build_cases(train, test, seed=0, max_baskets=3000), k=10).set_index("scenario")
        robustness = {"model": f"{label}, split {ROBUSTNESS_SPLIT}", "algorithm": name, "params": params, "split": ROBUSTNESS_SPLIT, "fit_s": round(fit_s, 2)}
        robustness.update({f"{s}.{m}": round(float(result.loc[s, m]), 4) for s, m in COLUMNS})
        print(f"{robustness['model']:45s} fit {fit_s:5.1f}s  " + "  ".join(f"{s[:12]} {m} {robustness[f'{s}.{m}']:.3f}" for s, m in COLUMNS))

    total = time.perf_counter() - started
    champion = next(r for r in rows if r["algorithm"] == "champion")
    targets = {f"{s}.{m}": {"target": v, "champion": champion[f"{s}.{m}"], "met": champion[f"{s}.{m}"] >= v} for (s, m), v in TARGETS.items()}
    RESULTS.mkdir(parents=True, exist_ok=True)
    report = {"split": SPLIT, "k": 10, "loader": loader, "total_s": round(total, 1), "models": rows, "targets": targets, "champion": tuned, "robustness": robustness}
    (RESULTS / "quality.json").write_text(json.dumps(report, indent=2, default=str))
    (RESULTS / "quality.md").write_text(markdown(rows, targets, loader, total, robustness))
    print(f"done in {total:.0f}s; targets: " + ", ".join(f"{k} {v['champion']:.3f} >= {v['target']} {'met' if v['met'] else 'MISSED'}" for k, v in targets.items()))
    return 0


def markdown(rows, targets, loader, total, robustness=None) -> str:
    header = "| model | fit s | customer NDCG | customer HR | new items NDCG | basket HR | basket MAP | product HR | product NDCG |"
    lines = [
        "# Offline quality on UCI Online Retail",
        "",
        f"Protocol: ../shared/EVALUATION.md (split {SPLIT}, k = 10); data: {loader}; whole run {total:.0f} s on this machine.",
        "Generated by `benchmarks/quality.py`; do not edit by hand.",
        "",
        "## Ours",
        "",
        header,
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in rows:
        cells = [f"{r[f'{s}.{m}']:.3f}" for s, m in COLUMNS]
        if r["algorithm"] == "champion":
            cells = [f"**{c}**" for c in cells]
        lines.append(f"| {r['model']} | {r['fit_s']:.1f} | " + " | ".join(cells) + " |")
    if robustness is not None:
        lines += [
            "",
            f"Robustness check: the champion with the split one day later ({robustness['split']}; its own cases).",
            "",
            header,
            "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
            f"| {robustness['model']} | {robustness['fit_s']:.1f} | " + " | ".join(f"{robustness[f'{s}.{m}']:.3f}" for s, m in COLUMNS) + " |",
        ]
    lines += ["", "## Peers (EVALUATION.md)", "", header, "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for name, values in PEERS.items():
        lines.append(f"| {name} | {values[0]:.1f} | " + " | ".join(f"{v:.3f}" for v in values[1:]) + " |")
    lines += ["", "## Targets (best peer + 10%)", "", "| metric | target | champion | met |", "| --- | --- | --- | --- |"]
    for key, t in targets.items():
        lines.append(f"| {key} | {t['target']:.2f} | {t['champion']:.3f} | {'yes' if t['met'] else 'no'} |")
    lines += [
        "",
        "Fit seconds are single runs on a shared 2-core machine; the champion's include learning its",
        "per-page re-rankers (gradient-boosted trees over its signals' candidates) on the 30 days before",
        "the split, never on the test window. Basket cases: every test invoice with >= 2 known items",
        "(fewer than 3,000 exist).",
        "",
        "## How the settings were chosen",
        "",
        "Never on the test window: every champion default was picked by running this protocol one month",
        "earlier on the data before the split (validation split 2011-10-10, cases 2011-10-10..2011-11-08,",
        "the champion fitted and self-tuned on what came before) and, as a check, one more month earlier",
        "(split 2011-09-10 on the data before 2011-10-10); the test window only reports the final numbers.",
        "Picked this way (product HR on the two validation windows): the product page's extra",
        "P(item | viewed item) features (lift, P(viewed | item), recent co-purchase) kept to that page's",
        "re-ranker (0.702 -> 0.709; on the other pages they cost basket HR 0.344 -> 0.332, so they stay off",
        "there); 120 trees for the product re-ranker (0.709 / 0.734 against 0.701 / 0.734 with 60; 200 gave",
        "0.705), 60 for the others (120 cost customer and new-items NDCG); balance_cases on (product 0.701",
        "against 0.700 at 60 trees, 0.709 against 0.694 at 120); one validation window (two: product 0.708,",
        "basket 0.339 against 0.344, new items 0.120 against 0.125); 50 candidates per signal on the product",
        "page too (100: 0.711 / 0.729 against 0.709 / 0.734); the re-ranker rather than the linear blend on",
        "the product page (blend alone 0.703) and P(item | viewed item) kept out of the product blend",
        "(weight 1: 0.699, 2.5: 0.686).",
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main(quick="--quick" in sys.argv))
