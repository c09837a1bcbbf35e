"""The champion's fit time under two commits' code on one machine, with the settings the quality
benchmark kept, against its slowest single algorithm's (issue 9's 5x target).

A machine's pace moves a fit more than many code changes do, and from day to day: to tell them
apart, each round fits under the baseline commit's code and under this checkout's, each in a process
of its own (`PYTHONPATH`), alternating, and the figures are medians over the rounds.

    .venv/bin/python benchmarks/fit_ab.py --baseline <commit> [--datasets or-2011-10-09,demo-USRT] [--rounds 3]
        [--busy N] [--results DIR]

Datasets are the quality benchmark's (`or-<split>`, `demo-<legal entity>`), each its lines before
the split, prepared once by this checkout; the champion's and BPR's settings are the ones
`results/quality.json` kept for it (BPR is the slowest single algorithm on every dataset there).
Each side also reports what its champion learnt (blend weights, re-ranker rows): a change meant
only to make the fit faster must learn the same. With `--baseline-settings` the baseline side fits
with the settings its own commit's record kept instead: for a change to what the search keeps, whose
fit then differs by those settings alone. A worktree of the baseline goes in a temporary
folder and is removed afterwards. `--busy N` keeps N other processes busy on the machine meanwhile
(a scheduled run on a shared server), with a Python loop or linear algebra (`--busy-work`).
Writes fit_ab.{json,md} to `--results` (default benchmarks/results).
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
SLOWEST_SINGLE = "bpr"


def prepare(datasets: list[str], folder: Path, baseline_record: Path | None = None) -> dict[str, str]:
    """Each dataset's training lines (and wish lists) as parquet files in `folder`, with the settings
    results/quality.json kept for it (`<dataset>.checkout.json`) and those `baseline_record` kept
    (`<dataset>.baseline.json`; the same where None): {dataset: its name in the record}."""
    import pandas as pd
    import polars as pl

    sys.path.insert(0, str(ROOT / "benchmarks"))
    from quality import DATA, _before, _key, demo_split, load_demo, load_online_retail

    record = {_key(r): r for r in json.loads((RESULTS / "quality.json").read_text())["datasets"]}
    theirs = {_key(r): r for r in json.loads(baseline_record.read_text())["datasets"]} if baseline_record else record
    names, online_retail, demo = {}, None, None
    for dataset in datasets:
        kept = record[dataset]
        if dataset.startswith("or-"):
            online_retail = online_retail if online_retail is not None else load_online_retail(DATA)
            frame, wish_lists, split = online_retail, None, pd.Timestamp(dataset[3:])
        else:
            demo = demo if demo is not None else load_demo(1.0, seed=42)
            frame, wish_lists = demo[dataset[len("demo-"):]]
            split = demo_split(frame)
        frame.filter(pl.col("time") < split.to_pydatetime()).write_parquet(folder / f"{dataset}.parquet")
        wish_lists = _before(wish_lists, split)
        if wish_lists is not None:
            wish_lists.write_parquet(folder / f"{dataset}.wish_lists.parquet")
        for side, chosen in (("checkout", kept), ("baseline", theirs[dataset])):
            (folder / f"{dataset}.{side}.json").write_text(json.dumps({"champion": chosen["best_params"]["champion"],
                                                                       SLOWEST_SINGLE: chosen["best_params"][SLOWEST_SINGLE]}))
        names[dataset] = f"{kept['dataset']} ({kept['split']})"
    return names


# what the models import on first use (the catalog's TF-IDF, the re-rankers' trees under either
# commit, implicit's solvers): loaded before the clock starts, as in a pipeline's process where an
# earlier fit has loaded them. Otherwise the champion, fitted first, paid them alone: about 0.8 s of a
# demo legal entity's 2-3 s fit in a fresh process (the records of fit_ab before 7 December 2026 hold it)
LOADED_FIRST = ("lightgbm", "sklearn.feature_extraction.text", "sklearn.ensemble", "scipy.linalg",
                "implicit.cpu.als", "implicit.cpu.bpr", "implicit.nearest_neighbours")


def child(dataset: str, folder: Path, side: str) -> None:
    """One round on one side: the champion's fit and the slowest single algorithm's, printed as JSON."""
    import importlib

    import polars as pl

    from workbench.models import TrainingData, make_model

    for module in LOADED_FIRST:
        importlib.import_module(module)

    wish_file = folder / f"{dataset}.wish_lists.parquet"
    data = TrainingData.from_interactions(pl.read_parquet(folder / f"{dataset}.parquet"),
                                          wish_lists=pl.read_parquet(wish_file) if wish_file.exists() else None)
    settings = json.loads((folder / f"{dataset}.{side}.json").read_text())
    started = time.perf_counter()
    champion = make_model("champion", **settings["champion"]).fit(data)
    champion_s = time.perf_counter() - started
    started = time.perf_counter()
    make_model(SLOWEST_SINGLE, **settings[SLOWEST_SINGLE]).fit(data)
    single_s = time.perf_counter() - started
    learnt = json.dumps({"weights": champion.weights, "rows": {k: v for k, v in (champion.tuning_report or {}).items() if k.endswith(".ranker_rows")}},
                        sort_keys=True, default=str)
    print(json.dumps({"champion_s": champion_s, "single_s": single_s, "learnt": hashlib.sha256(learnt.encode()).hexdigest()[:16]}))


def one_round(source: Path, dataset: str, folder: Path, side: str) -> dict:
    env = {**os.environ, "PYTHONPATH": str(source / "src")}
    done = subprocess.run([sys.executable, __file__, "--child", dataset, "--folder", str(folder), "--side", side], env=env, cwd=ROOT,
                          check=True, capture_output=True, text=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def summary(runs: list[dict]) -> dict:
    champion, single = statistics.median(r["champion_s"] for r in runs), statistics.median(r["single_s"] for r in runs)
    return {"champion_s": round(champion, 2), "single_s": round(single, 2), "ratio": round(champion / single, 2),
            "runs": [{k: round(v, 2) if isinstance(v, float) else v for k, v in r.items()} for r in runs]}


def markdown(record: dict) -> str:
    lines = [
        "# The champion's fit under two commits, back to back",
        "",
        f"Generated by `benchmarks/fit_ab.py --baseline {record['baseline']}{' --baseline-settings' if record.get('baseline_settings') else ''}` against `{record['checkout']}`: {record['rounds']} rounds,",
        "each fitting under the baseline's code and then this checkout's, each in a process of its own (medians). The",
        (f"settings are the ones `results/quality.json` kept for each dataset; {SLOWEST_SINGLE.upper()} is the slowest single algorithm"
         if not record.get("baseline_settings") else
         f"checkout's settings are the ones its `results/quality.json` kept for each dataset, the baseline's those of {record['baseline']}'s "
         f"record; {SLOWEST_SINGLE.upper()} is the slowest single algorithm"),
        "there. \"Same model\": both sides' champions learnt the same blend weights and re-ranker rows in every round"
        + (" (not to be expected where the settings differ)." if record.get("baseline_settings") else "."),
        "",
        "| dataset | champion fit, baseline | champion fit, this checkout | this checkout / baseline | ratio to "
        f"{SLOWEST_SINGLE.upper()}, baseline | ratio to {SLOWEST_SINGLE.upper()}, this checkout | same model |",
        "| --- | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    for name, r in record["datasets"].items():
        old, new = r["baseline"], r["checkout"]
        lines.append(f"| {name} | {old['champion_s']:.2f} s | {new['champion_s']:.2f} s | {new['champion_s'] / old['champion_s']:.2f}x | "
                     f"{old['ratio']:.1f}x | {new['ratio']:.1f}x | {'yes' if r['same_model'] else 'no'} |")
    busy = record.get("busy", 0)
    load = record.get("load_average")
    lines += ["", f"Run {record['run_at']} on {record['cpus']} cores"
              + (f", with {busy} other process{'es' if busy > 1 else ''} on the machine meanwhile, running "
                 f"{'linear algebra on BLAS threads' if record.get('busy_work') == 'blas' else 'a Python loop'}" if busy else "")
              + (f" (1-minute load average {load['start']:.1f} at the start, {load['end']:.1f} at the end)" if load else "") + "."]
    return "\n".join(lines) + "\n"


# the other work of a shared server: a Python loop, or linear algebra on numpy's default threads
# (BLAS's own pool, one thread per core), as another legal entity's fit would run
BUSY_WORK = {
    "python": "while True: pass",
    "blas": "import numpy as np\na = np.random.default_rng(0).random((600, 600), dtype=np.float32)\nwhile True: a @ a",
}


@contextlib.contextmanager
def busy_processes(n: int, work: str = "python"):
    """n processes busy with `work` (BUSY_WORK) while inside (none for 0)."""
    spinning = [subprocess.Popen([sys.executable, "-c", BUSY_WORK[work]]) for _ in range(n)]
    try:
        yield
    finally:
        for process in spinning:
            process.kill()
            process.wait()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", help="the commit to compare this checkout's code with")
    parser.add_argument("--datasets", default="or-2011-10-09,demo-USRT,demo-FRRT")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--busy", type=int, default=0, help="other processes kept busy on the machine meanwhile")
    parser.add_argument("--busy-work", choices=sorted(BUSY_WORK), default="python", help="what they do (BUSY_WORK)")
    parser.add_argument("--results", type=Path, default=RESULTS, help="where fit_ab.json and .md go")
    parser.add_argument("--baseline-settings", action="store_true",
                        help="the baseline side fits with the settings its own commit's results/quality.json kept")
    parser.add_argument("--side", default="checkout", help=argparse.SUPPRESS)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--folder", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        child(args.child, args.folder, args.side)
        return 0
    if not args.baseline:
        parser.error("--baseline is required")
    baseline = subprocess.run(["git", "rev-parse", "--short", args.baseline], cwd=ROOT, check=True, capture_output=True, text=True).stdout.strip()
    checkout = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, check=True, capture_output=True, text=True).stdout.strip()
    if subprocess.run(["git", "status", "--porcelain", "src"], cwd=ROOT, check=True, capture_output=True, text=True).stdout.strip():
        checkout += " with uncommitted changes in src/"
    datasets = [d for d in args.datasets.split(",") if d]
    load = {"start": round(os.getloadavg()[0], 2)}
    with tempfile.TemporaryDirectory(prefix="fit-ab-") as scratch, busy_processes(args.busy, args.busy_work):
        scratch = Path(scratch)
        worktree, folder = scratch / "baseline", scratch / "data"
        folder.mkdir()
        subprocess.run(["git", "worktree", "add", "--detach", str(worktree), baseline], cwd=ROOT, check=True, capture_output=True)
        try:
            names = prepare(datasets, folder, worktree / "benchmarks" / "results" / "quality.json" if args.baseline_settings else None)
            results = {}
            for dataset in datasets:
                runs = {"baseline": [], "checkout": []}
                for round_ in range(args.rounds):
                    for side, source in (("baseline", worktree), ("checkout", ROOT)):
                        runs[side].append(one_round(source, dataset, folder, side))
                        print(f"{dataset} round {round_ + 1} {side}: {runs[side][-1]}", flush=True)
                learnt = {r["learnt"] for side in runs.values() for r in side}
                results[names[dataset]] = ({side: summary(r) for side, r in runs.items()} | {"same_model": len(learnt) == 1}
                                           | {"settings": json.loads((folder / f"{dataset}.checkout.json").read_text())}
                                           | ({"baseline_settings": json.loads((folder / f"{dataset}.baseline.json").read_text())}
                                              if args.baseline_settings else {}))
        finally:
            subprocess.run(["git", "worktree", "remove", "--force", str(worktree)], cwd=ROOT, check=False, capture_output=True)
        load["end"] = round(os.getloadavg()[0], 2)
    record = {"baseline": baseline, "checkout": checkout, "rounds": args.rounds, "run_at": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
              "cpus": len(os.sched_getaffinity(0)), "baseline_settings": args.baseline_settings, "busy": args.busy, "busy_work": args.busy_work, "load_average": load, "datasets": results}
    args.results.mkdir(parents=True, exist_ok=True)
    (args.results / "fit_ab.json").write_text(json.dumps(record, indent=2) + "\n")
    (args.results / "fit_ab.md").write_text(markdown(record))
    print(markdown(record))
    return 0


if __name__ == "__main__":
    sys.exit(main())
