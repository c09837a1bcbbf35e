"""Extraction from export files: peak memory and time of a whole read against the streamed one.

    .venv/bin/python benchmarks/extract_files.py [--scales 5,20]

For each `--scale` the demo retailer is generated, and its USRT sales lines are exported as a retailer
would send them: one gzipped CSV in latin-1, with products and customers left to be derived from the
lines (the mapping of tests/test_extract.py's export). Then, each in its own fresh process (so its
peak RSS is its own), three runs read it:

- baseline: a bare `polars.read_csv` of the file (decompressed whole, as a one-off script would);
- whole: `extract_source` with the streamed read turned off (`sources.file_batches` answering None),
  the path every file source took before;
- streamed: `extract_source` as it is (block-by-block decoding, a streaming scan, chunks mapped and
  written to scratch).

Each run is repeated `--repeats` times; the medians are reported, and the streamed run's peak as a
ratio of the whole read's measured in the same run. Writes benchmarks/results/extract_files.json and
.md, and the README block between the extract-files markers.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
README = ROOT / "README.md"
README_BEGIN, README_END = "<!-- extract-files:begin -->", "<!-- extract-files:end -->"

CHILD = r"""
import gzip, json, sqlite3, sys, time
import polars as pl
task, folder = sys.argv[1], sys.argv[2]
def peak():
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmHWM:")) / 1024
out = {}
started = time.perf_counter()
if task == "generate":
    from workbench.datasets.demo import generate_demo_retailer
    generate_demo_retailer(f"{folder}/demo.sqlite", seed=42, scale=float(sys.argv[3]), progress=False)
    query = ("SELECT l.transaction_id, l.line_number, t.store_id, t.customer_id, l.product_id, l.description AS Description, "
             "l.quantity, l.unit_price, t.transaction_time FROM sales_lines l JOIN sales_transactions t ON l.transaction_id = t.id "
             "WHERE t.legal_entity_id = 'USRT'")
    rows = 0
    with gzip.open(f"{folder}/lines.csv.gz", "wb", compresslevel=3) as f:
        for i, batch in enumerate(pl.read_database(query, sqlite3.connect(f"{folder}/demo.sqlite"), iter_batches=True,
                                                   batch_size=200_000, infer_schema_length=None)):
            f.write(batch.write_csv(include_header=i == 0).encode("latin-1", errors="replace"))
            rows += batch.height
    out["lines"] = rows
elif task == "baseline":
    out["lines"] = pl.read_csv(f"{folder}/lines.csv.gz", infer_schema=False, encoding="utf8-lossy").height
else:
    from workbench.datasets import sources
    from workbench.datasets.extract import extract_source
    if task == "whole":
        sources.file_batches = lambda *args, **kwargs: None
    mapping = json.loads(sys.argv[3])
    summary = extract_source(mapping, "EXP", out_dir=f"{folder}/stores/{task}", progress=False)
    out["lines"] = int(summary["rows"]["sales_lines"]) if isinstance(summary.get("rows"), dict) else None
out["seconds"] = time.perf_counter() - started
out["peak_mib"] = peak()
print(json.dumps(out))
"""

MAPPING = {
    "name": "export", "kind": "files", "source": "",
    "legal_entity": {"name": "Export retailer", "currency": "USD", "pos_recommendations_enabled": True},
    "entities": {
        "sales_lines": {"files": "{source}/lines.csv.gz", "encoding": "latin-1", "columns": {
            "transaction_id": "transaction_id", "line_number": {"column": "line_number", "cast": "int"},
            "store_id": "store_id", "customer_id": "customer_id", "product_id": "product_id", "description": "Description",
            "quantity": {"column": "quantity", "cast": "float"}, "unit_price": {"column": "unit_price", "cast": "float"},
            "transaction_time": {"column": "transaction_time", "format": ["%Y-%m-%d %H:%M:%S", "%Y-%m-%d %H:%M:%S%.f"]}}},
        "products": {"from": "sales_lines", "group_by": "product_id", "columns": {
            "product_id": "product_id", "name": {"agg": "mode", "of": "Description"},
            "price": {"agg": "median", "of": "unit_price", "where": "unit_price > 0"}, "product_type": {"constant": "merchandise"}}},
        "customers": {"from": "sales_lines", "group_by": "customer_id", "rows": "customer_id IS NOT NULL",
                      "columns": {"customer_id": "customer_id"}},
    },
}


def run_child(folder: Path, *args: str) -> dict:
    env = {**os.environ, "WORKBENCH_HOME": str(folder), "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}
    env.pop("MLFLOW_TRACKING_URI", None)
    out = subprocess.run([sys.executable, "-c", CHILD, args[0], str(folder), *args[1:]], env=env, capture_output=True, text=True)
    if out.returncode:
        raise RuntimeError(f"{args[0]}: exit {out.returncode}: {out.stderr.strip()[-600:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def bench(scale: float, repeats: int, scratch: Path) -> dict:
    folder = scratch / f"scale{scale:g}"
    folder.mkdir()
    generated = run_child(folder, "generate", str(scale))
    mapping = json.dumps({**MAPPING, "source": str(folder)})
    row = {"scale": scale, "lines": generated["lines"], "file_mib": (folder / "lines.csv.gz").stat().st_size / 2**20}
    runs: dict[str, list[dict]] = {"baseline": [], "whole": [], "streamed": []}
    for repeat in range(repeats):  # interleaved, so the machine's drift falls on all three alike
        for task in runs:
            runs[task].append(run_child(folder, task, mapping) if task != "baseline" else run_child(folder, task))
            print(f"  scale {scale:g} {task:9s} {runs[task][-1]['seconds']:7.1f} s {runs[task][-1]['peak_mib']:8.0f} MiB", flush=True)
            shutil.rmtree(folder / "stores", ignore_errors=True)
    for task, measured in runs.items():
        row[task] = {"seconds": statistics.median(r["seconds"] for r in measured),
                     "peak_mib": statistics.median(r["peak_mib"] for r in measured),
                     "peak_range_mib": [min(r["peak_mib"] for r in measured), max(r["peak_mib"] for r in measured)]}
    row["streamed_peak_over_whole"] = row["streamed"]["peak_mib"] / row["whole"]["peak_mib"]
    return row


def readme_block(results: dict) -> list[str]:
    lines = [
        "Extraction from an export file (the demo retailer's USRT lines as one gzipped latin-1 CSV, products and customers "
        f"derived from the lines; medians of {results['repeats']} interleaved runs, each in a fresh process; "
        "`benchmarks/extract_files.py`):",
        "",
        "| lines | file MiB | bare `read_csv` s / peak MiB | whole read s / peak MiB | streamed s / peak MiB | streamed peak / whole |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for row in results["rows"]:
        cell = lambda r: f"{r['seconds']:.1f} / {r['peak_mib']:,.0f}"  # noqa: E731
        lines.append(f"| {row['lines']:,} | {row['file_mib']:.0f} | {cell(row['baseline'])} | {cell(row['whole'])} | "
                     f"{cell(row['streamed'])} | {row['streamed_peak_over_whole']:.2f} |")
    return lines


def write(results: dict) -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "extract_files.json").write_text(json.dumps(results, indent=2))
    text = ["# Extraction from export files", "", f"Measured {results['measured']} on {results['cpus']} CPUs.", "",
            *readme_block(results), ""]
    for row in results["rows"]:
        text.append(f"- {row['lines']:,} lines: peak range over the runs (MiB): "
                    + ", ".join(f"{task} {row[task]['peak_range_mib'][0]:,.0f}-{row[task]['peak_range_mib'][1]:,.0f}"
                                for task in ("baseline", "whole", "streamed")))
    (RESULTS / "extract_files.md").write_text("\n".join(text) + "\n")
    from readme_block import replace_block  # benchmarks/ is on the path of a benchmark run

    replace_block(README, README_BEGIN, README_END, readme_block(results))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scales", default="5,20", help="demo retailer --scale values, comma-separated")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--report-only", action="store_true", help="rewrite the .md and the README block from the .json")
    args = parser.parse_args(argv)
    if args.report_only:
        write(json.loads((RESULTS / "extract_files.json").read_text()))
        return 0
    results = {"measured": time.strftime("%Y-%m-%d %H:%M:%S"), "cpus": os.cpu_count(), "repeats": args.repeats, "rows": []}
    with tempfile.TemporaryDirectory(prefix="extract-files-") as scratch:
        for scale in (float(s) for s in args.scales.split(",")):
            results["rows"].append(bench(scale, args.repeats, Path(scratch)))
            write(results)
    print(f"written: {RESULTS / 'extract_files.md'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
