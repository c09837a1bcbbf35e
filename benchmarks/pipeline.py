"""Wall time and peak memory of the pipeline stages, on the real Online Retail file and on a generated
retailer of 10x the default size; extraction from a PostgreSQL server (the demo retailer in a foreign
schema, tests/sources/demo_postgres.yml) against a bare pandas.read_sql of the same query; optionally
the whole pipeline (`--full`) through `workbench run`.

Each measurement runs in a fresh subprocess (so peak RSS is that stage's own) in a scratch
WORKBENCH_HOME; repeated `--repeat` times, the median is reported. Results go to
benchmarks/results/pipeline.{json,md}.

    python benchmarks/pipeline.py [--repeat 3] [--scale 10] [--full] [--no-postgres]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from provenance import described, measured_on  # benchmarks/ is on the path of a benchmark run

ROOT = Path(__file__).resolve().parents[1]
ONLINE_RETAIL = ROOT.parent / "shared" / "data" / "online_retail" / "online_retail.csv.gz"
RESULTS = ROOT / "benchmarks" / "results"
README = ROOT / "README.md"
README_BEGIN, README_END = "<!-- pipeline:begin -->", "<!-- pipeline:end -->"
PG_MAPPING = ROOT / "tests" / "sources" / "demo_postgres.yml"

# One stage in a child process; prints its own peak RSS (MiB) last, as JSON.
CHILD = r"""
import json, resource, sys, time
task, arg, entity = sys.argv[1], sys.argv[2], sys.argv[3]
started = time.perf_counter()
if task == "generate":
    from workbench.datasets.demo import generate_demo_retailer
    generate_demo_retailer(arg, seed=42, scale=float(sys.argv[4]), progress=False)
elif task == "extract_sql":
    from workbench.datasets.extract import extract_entity_store
    extract_entity_store(f"sqlite:///{arg}", entity, progress=False)
elif task == "extract_online_retail":
    from workbench.datasets.online_retail import extract_online_retail
    extract_online_retail(arg, entity)
elif task == "baseline_read_csv":
    # the least any pipeline does with the file: one pandas read
    import pandas as pd
    pd.read_csv(arg, dtype={"InvoiceNo": str, "StockCode": str})
elif task == "baseline_read_sql":
    import pandas as pd, sqlite3
    pd.read_sql("select * from sales_lines", sqlite3.connect(arg))
elif task == "extract_postgres":
    from workbench.datasets.extract import extract_source
    summary = extract_source(sys.argv[4], entity, source=arg, progress=False)
    print(json.dumps({"lines": summary["rows"]["sales_lines"]}))
elif task == "baseline_read_sql_postgres":
    # the same query as the mapping's sales lines, one bare pandas read through the same driver
    import pandas as pd, sqlalchemy as sa, yaml
    query = yaml.safe_load(open(sys.argv[4]))["entities"]["sales_lines"]["query"]
    frame = pd.read_sql(sa.text(query), sa.create_engine(arg), params={"legal_entity": entity})
    print(json.dumps({"lines": len(frame)}))
elif task == "cleanse":
    from workbench.cleanse import cleanse_entity_store
    cleanse_entity_store(entity).check_reconciles()
seconds = time.perf_counter() - started
print(json.dumps({"seconds": seconds, "peak_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def run_child(home: Path, *args: str) -> dict:
    env = {**os.environ, "WORKBENCH_HOME": str(home)}
    env.pop("MLFLOW_TRACKING_URI", None)
    out = subprocess.run([sys.executable, "-c", CHILD, *args], env=env, capture_output=True, text=True)
    if out.returncode:
        raise SystemExit(f"benchmark step {args} failed:\n{out.stderr[-3000:]}")
    result = {}
    for line in out.stdout.strip().splitlines():
        if line.startswith("{"):
            result.update(json.loads(line))
    return result


def median_of(runs: list[dict]) -> dict:
    return {
        "seconds_median": round(statistics.median(r["seconds"] for r in runs), 2),
        "peak_mib_median": round(statistics.median(r["peak_mib"] for r in runs), 1),
        "seconds_all": [round(r["seconds"], 2) for r in runs],
    }


def bench_stages(name: str, home: Path, extract_args: tuple, entity: str, repeat: int, baseline: str) -> dict:
    extract_runs, cleanse_runs, baseline_runs = [], [], []
    for _ in range(repeat):
        baseline_runs.append(run_child(home, baseline, extract_args[1], entity))
        # a fresh entity store each time, so the extraction is a full one, not an empty increment
        subprocess.run(["rm", "-rf", str(home / "data" / "raw"), str(home / "data" / "interim")], check=True)
        extract_runs.append(run_child(home, *extract_args, entity))
        cleanse_runs.append(run_child(home, "cleanse", "-", entity))
    row = {"dataset": name, "extract": median_of(extract_runs), "cleanse": median_of(cleanse_runs),
           "baseline": {"what": baseline, **median_of(baseline_runs)}}
    row["ratio_to_baseline"] = round(
        (row["extract"]["seconds_median"] + row["cleanse"]["seconds_median"]) / max(row["baseline"]["seconds_median"], 1e-9), 2)
    return row


def bench_full_pipeline(home: Path, repeat: int) -> dict:
    env = {**os.environ, "WORKBENCH_HOME": str(home)}
    env.pop("MLFLOW_TRACKING_URI", None)
    runs = []
    for _ in range(repeat):
        for folder in ("data", "mlruns"):
            subprocess.run(["rm", "-rf", str(home / folder)], check=True)
        started = time.perf_counter()
        subprocess.run(
            [str(Path(sys.executable).parent / "workbench"), "run", "--config", str(ROOT / "configs" / "online_retail.yml"),
             "-p", f"source={ONLINE_RETAIL}", "--no-progress"],
            env=env, check=True, capture_output=True,
        )
        runs.append({"seconds": time.perf_counter() - started, "peak_mib": float("nan")})
    return {"dataset": "online_retail", "whole_pipeline_seconds_median": round(statistics.median(r["seconds"] for r in runs), 1),
            "seconds_all": [round(r["seconds"], 1) for r in runs]}


def bench_postgres(home: Path, scale: float, repeat: int) -> dict:
    """Extraction from PostgreSQL (streamed, server-side cursor) against pandas.read_sql of the same query."""
    sys.path.insert(0, str(ROOT / "tests"))
    from postgres_server import load_demo_retailer, postgres_server

    database = home / f"demo_pg_x{scale:g}.sqlite"
    run_child(home, "generate", str(database), "-", str(scale))
    with postgres_server() as url:
        loaded = load_demo_retailer(database, url)
        extract_runs, baseline_runs = [], []
        for _ in range(repeat):
            baseline_runs.append(run_child(home, "baseline_read_sql_postgres", url, "USRT", str(PG_MAPPING)))
            subprocess.run(["rm", "-rf", str(home / "data" / "raw")], check=True)
            extract_runs.append(run_child(home, "extract_postgres", url, "USRT", str(PG_MAPPING)))
    lines = extract_runs[0]["lines"]
    row = {"dataset": f"demo retailer x{scale:g} in PostgreSQL (USRT)", "source_lines_all_entities": loaded["receipt_line"],
           "lines": lines, "extract": median_of(extract_runs), "baseline": {"what": "pandas.read_sql", **median_of(baseline_runs)}}
    row["extract"]["lines_per_second"] = round(lines / row["extract"]["seconds_median"])
    row["baseline"]["lines_per_second"] = round(lines / row["baseline"]["seconds_median"])
    row["ratio_to_baseline"] = round(row["extract"]["seconds_median"] / row["baseline"]["seconds_median"], 2)
    row["peak_ratio_to_baseline"] = round(row["extract"]["peak_mib_median"] / row["baseline"]["peak_mib_median"], 2)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--scale", type=float, default=10.0)
    parser.add_argument("--full", action="store_true", help="also time the whole pipeline on Online Retail")
    parser.add_argument("--no-postgres", action="store_true", help="leave out the PostgreSQL extraction")
    args = parser.parse_args()
    results = {"measured_on": measured_on(), "datasets": [], "repeat": args.repeat,
               "load_average": {"start": round(os.getloadavg()[0], 2)}}
    with tempfile.TemporaryDirectory() as scratch:
        home = Path(scratch)
        if ONLINE_RETAIL.exists():
            results["datasets"].append(
                bench_stages("online_retail (541,909 lines)", home, ("extract_online_retail", str(ONLINE_RETAIL)), "online_retail", args.repeat,
                             "baseline_read_csv")
            )
        else:
            print(f"skipping Online Retail: {ONLINE_RETAIL} is absent")
        for scale in (1.0, args.scale):
            database = home / f"demo_x{scale:g}.sqlite"
            generated = run_child(home, "generate", str(database), "-", str(scale))
            row = bench_stages(f"demo retailer x{scale:g}", home, ("extract_sql", str(database)), "USRT", args.repeat, "baseline_read_sql")
            row["generate"] = {"seconds": round(generated["seconds"], 2), "peak_mib": round(generated["peak_mib"], 1)}
            results["datasets"].append(row)
        if not args.no_postgres:
            results["postgres"] = bench_postgres(home, args.scale, args.repeat)
        if args.full and ONLINE_RETAIL.exists():
            results["whole_pipeline"] = bench_full_pipeline(home, 1)
    results["load_average"]["end"] = round(os.getloadavg()[0], 2)
    write_results(results)


def write_results(results: dict) -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "pipeline.json").write_text(json.dumps(results, indent=2))
    on = results["measured_on"]
    lines = ["# Pipeline wall time and memory", "", f"Generated by `benchmarks/pipeline.py` {described(on)}; the README copies this.", "",
             *readme_block(results)]
    (RESULTS / "pipeline.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    from readme_block import replace_block  # benchmarks/ is on the path of a benchmark run

    replace_block(README, README_BEGIN, README_END, readme_block(results))


def readme_block(results: dict) -> list[str]:
    """The README's pipeline tables, from the record (copied between the README's pipeline markers)."""
    load = results.get("load_average") or {}
    lines = [f"Extract + cleanse, each stage in a fresh process, median of {results.get('repeat', 3)} runs; the baseline is one bare "
             "read of the same source in the same run (`read_csv` of the file, `read_sql` of the sales lines)"
             + (f"; load average {load['start']:.1f} at the start, {load['end']:.1f} at the end." if load else "."), "",
             "| dataset | extract s | extract peak MiB | cleanse s | cleanse peak MiB | baseline s | (extract + cleanse) / baseline |",
             "| --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for row in results["datasets"]:
        e, c = row["extract"], row["cleanse"]
        lines.append(f"| {row['dataset']} | {e['seconds_median']:.2f} | {e['peak_mib_median']:.0f} | {c['seconds_median']:.2f} | "
                     f"{c['peak_mib_median']:.0f} | {row['baseline']['seconds_median']:.2f} | {row['ratio_to_baseline']:.1f} |")
    if "postgres" in results:
        pg = results["postgres"]
        e, b = pg["extract"], pg["baseline"]
        lines += ["", "Extraction from **PostgreSQL** (a throwaway Debian server on loopback; the demo retailer in a foreign schema, "
                  "`tests/sources/demo_postgres.yml`), checked against the data contract and published, against one bare "
                  "`pandas.read_sql` of the same query through the same driver (psycopg 3), in the same run:", "",
                  "| source | lines | extract s | lines/s | peak MiB | `read_sql` s | `read_sql` lines/s | `read_sql` peak MiB | time ratio | memory ratio |",
                  "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
                  f"| {pg['dataset']} | {pg['lines']:,} | {e['seconds_median']:.2f} | {e['lines_per_second']:,} | {e['peak_mib_median']:.0f} | "
                  f"{b['seconds_median']:.2f} | {b['lines_per_second']:,} | {b['peak_mib_median']:.0f} | {pg['ratio_to_baseline']:.2f} | "
                  f"{pg['peak_ratio_to_baseline']:.2f} |"]
    if "whole_pipeline" in results:
        lines += ["", "The whole pipeline on Online Retail (extract, cleanse, tune and train every algorithm, evaluate, refit and register "
                  f"the champion) through `workbench run` with its default settings: **{results['whole_pipeline']['whole_pipeline_seconds_median']:.0f} s** "
                  "(target: under 10 minutes)."]
    return lines


if __name__ == "__main__":
    main()
