"""Where the champion's fit goes on a small legal entity, against its slowest single algorithm (the
5x target of benchmarks/results/quality.md). The champion is fitted with its work on one thread
(`fit_threads=1`), so its parts add up to its fit: the signals (`fit_state`), the validation
window's inner fit and cases, the weight search, the re-rankers' rows and their training. Median of
`--repeat` runs each; BPR (the demo retailer's slowest single algorithm) in the same run. Each legal
entity twice: with the defaults, and with the champion's and BPR's settings that the quality
benchmark's search kept there (results/quality.json), the fits of its fit-time table.

    .venv/bin/python benchmarks/champion_fit_parts.py [--repeat 3]

Datasets: the demo retailer's legal entities before their last 30 days (what the quality benchmark
fits). Writes benchmarks/results/champion_fit_parts.{json,md}.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from collections import defaultdict
from contextlib import contextmanager
from pathlib import Path

import polars as pl
from provenance import described  # benchmarks/ is on the path of a benchmark run

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
README = ROOT / "README.md"
README_BEGIN, README_END = "<!-- champion-fit-parts:begin -->", "<!-- champion-fit-parts:end -->"
KEPT = ", the quality benchmark's settings"
# champion.tuning's steps, timed where the fit calls them (the name each is looked up by there)
PARTS = {
    "_validation_window": "validation window: inner fit and cases",
    "_search": "weight search",
    "_ranker_rows": "re-rankers' rows (candidates and features)",
    "train_ranker": "re-rankers' training (gradient-boosted trees)",
}


@contextmanager
def timed_parts(seconds: dict, data):
    """Add each PARTS step's wall time, and the signals' (`fit_state` on `data` itself: the validation
    window's inner fit is that part's), to `seconds` while inside."""
    from workbench.models.champion import model as champion_model, tuning

    originals = {name: getattr(tuning, name) for name in PARTS}
    original_state = champion_model.fit_state

    def wrap(name, function, only_on=None):
        def timed(*args, **kwargs):
            started = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                if only_on is None or args[0] is only_on:
                    seconds[name] += time.perf_counter() - started
        return timed

    for name, function in originals.items():
        setattr(tuning, name, wrap(name, function))
    champion_model.fit_state = wrap("fit_state", original_state, only_on=data)
    try:
        yield
    finally:
        for name, function in originals.items():
            setattr(tuning, name, function)
        champion_model.fit_state = original_state


def measure(data, repeat: int, champion: dict | None = None, bpr_settings: dict | None = None) -> dict:
    """The champion's parts and BPR's fit, each with the given settings (default: the defaults)."""
    from workbench.models import make_model

    runs, bpr = [], []
    for _ in range(repeat):
        seconds = defaultdict(float)
        with timed_parts(seconds, data):
            started = time.perf_counter()
            model = make_model("champion", **{**(champion or {}), "fit_threads": 1}).fit(data)
            seconds["total"] = time.perf_counter() - started
        runs.append(dict(seconds))
        started = time.perf_counter()
        make_model("bpr", **(bpr_settings or {})).fit(data)
        bpr.append(time.perf_counter() - started)
    parts = {name: round(statistics.median(r.get(name, 0.0) for r in runs), 3) for name in ["fit_state", *PARTS, "total"]}
    rows = {page: int(n) for page, n in (model.tuning_report or {}).items() if page.endswith(".ranker_rows")}
    return {"champion_s": parts, "bpr_s": round(statistics.median(bpr), 3), "ranker_rows": rows,
            "ranker_trees": {page: int(r.max_iter) for page, r in model.rankers.items()},
            "switches": {name: bool(model.params[name]) for name in switches()},
            "max_training_rows": int(model.params["max_training_rows"])}


def switches() -> list[str]:
    """The champion's probed switches (`evaluation.search`): what a retailer's own search may turn on."""
    from workbench.evaluation.spaces import SEARCH_SPACES, probed_switches

    return probed_switches(SEARCH_SPACES["champion"])


def registered_settings(entity: str, quality_record: Path = RESULTS / "quality.json") -> tuple[dict, dict] | None:
    """(champion's, BPR's) settings the quality benchmark kept for this demo legal entity, or None."""
    if not quality_record.exists():
        return None
    for result in json.loads(quality_record.read_text()).get("datasets", []):
        if result["dataset"] == f"demo retailer {entity}":
            return result["best_params"]["champion"], result["best_params"]["bpr"]
    return None


def readme_block(record: dict) -> list[str]:
    """The README's paragraph on where the champion's fit goes, from the record (copied between the
    README's champion-fit-parts markers): the re-rankers' training against the whole fit and BPR's,
    on the defaults' rows and on those the search kept, and the weight search where the search kept
    `search_every_page` on."""
    results, on = record["datasets"], record["measured_on"]

    def span(values, unit=" s"):
        low, high = min(values), max(values)
        return f"{low:.2f}{unit}" if f"{low:.2f}" == f"{high:.2f}" else f"{low:.2f}-{high:.2f}{unit}"

    kept = {name.split()[2].rstrip(","): r for name, r in results.items() if name.endswith(KEPT)}
    defaults = sorted({r["max_training_rows"] for name, r in results.items() if not name.endswith(KEPT)})
    rows = " and ".join(f"{r['max_training_rows']:,} ({entity})" for entity, r in kept.items())
    lines = [f"Where the champion's fit misses 5x furthest (the demo retailer's legal entities, whose single algorithms fit in well under a second), "
             f"`benchmarks/champion_fit_parts.py` (→ `results/champion_fit_parts.md`) times its parts on one thread at {on['commit']}, "
             "with the defaults and with the settings the quality record's search kept there (`results/quality.json`): "
             f"the re-rankers' training takes {span([r['champion_s']['train_ranker'] for r in results.values()])} of the "
             f"{span([r['champion_s']['total'] for r in results.values()])} fit, on the defaults' {' / '.join(f'{d:,}' for d in defaults)} rows per page "
             f"as on the {rows} that the search kept, where BPR fits in {span([r['bpr_s'] for r in results.values()])}."]
    wide = [(entity, r) for entity, r in kept.items() if r["switches"].get("search_every_page")]
    for entity, r in wide:
        c = r["champion_s"]
        lines[0] += (f" On {entity} the weight search over every page (`search_every_page`, which the search kept there) takes "
                     f"{c['_search']:.2f} s of its {c['total']:.2f} s fit.")
    return lines


def markdown(record: dict) -> str:
    results, repeat, on = record["datasets"], record["repeat"], record.get("measured_on")
    at = f" {described(on)}" if on else ""
    lines = [
        "# Where the champion's fit goes on a small legal entity",
        "",
        f"Generated by `benchmarks/champion_fit_parts.py`{at}; median of {repeat} runs, the champion's work on one thread",
        "(`fit_threads=1`: its parts add up to its fit; the quality benchmark's fit uses two). Against BPR, the",
        "slowest single algorithm there, in the same run. Each legal entity with the defaults, and with the settings",
        "the quality benchmark's search kept there (`results/quality.json`: the champion's and BPR's), which are",
        "the fits its fit-time table sets side by side.",
        "",
        "| dataset | switches on | re-ranker rows at most | signals | validation window | weight search | re-rankers' rows | re-rankers' training | champion fit | BPR fit | ratio |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for name, r in results.items():
        c = r["champion_s"]
        switches = ", ".join(f"`{s}`" for s, on in r.get("switches", {}).items() if on) or "none"
        lines.append(f"| {name} | {switches} | {r['max_training_rows']:,} | {c['fit_state']:.2f} s | {c['_validation_window']:.2f} s | {c['_search']:.2f} s | {c['_ranker_rows']:.2f} s | "
                     f"{c['train_ranker']:.2f} s | {c['total']:.2f} s | {r['bpr_s']:.2f} s | {c['total'] / max(r['bpr_s'], 1e-9):.1f}x |")
    lines += ["", "Re-rankers' training rows and trees per page:", ""]
    for name, r in results.items():
        pages = ", ".join(f"{page.split('.')[0]} {rows:,} rows / {r['ranker_trees'].get(page.split('.')[0], 0)} trees"
                          for page, rows in r["ranker_rows"].items())
        lines.append(f"- {name}: {pages}")
    if record.get("run_at"):
        lines += ["", f"Run {record['run_at']} (1-minute load average {record['load_average_end']:.1f} at the end)."]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--report-only", action="store_true", help="rewrite the report and the README's paragraph from the committed record")
    args = parser.parse_args(argv)
    sys.path.insert(0, str(ROOT / "benchmarks"))
    if args.report_only:
        write_report(json.loads((RESULTS / "champion_fit_parts.json").read_text()))
        return 0
    from provenance import measured_on
    from quality import _before, demo_split, load_demo

    from workbench.models import TrainingData

    on, results = measured_on(), {}
    for entity, (frame, wish_lists) in load_demo(1.0, seed=42).items():
        split = demo_split(frame)
        train = frame.filter(pl.col("time") < split.to_pydatetime())
        data = TrainingData.from_interactions(train, wish_lists=_before(wish_lists, split))
        name = f"demo retailer {entity}, before {split.date()} ({train.height:,} lines)"
        results[name] = measure(data, args.repeat)
        print(name, results[name], flush=True)
        registered = registered_settings(entity)
        if registered:
            # what the quality benchmark timed: the settings its search kept there, against its tuned BPR
            results[name + KEPT] = measure(data, args.repeat, *registered)
            print(results[name + KEPT], flush=True)
    RESULTS.mkdir(parents=True, exist_ok=True)
    record = {"repeat": args.repeat, "measured_on": on, "run_at": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
              "load_average_end": round(os.getloadavg()[0], 2), "datasets": results}
    (RESULTS / "champion_fit_parts.json").write_text(json.dumps(record, indent=2))
    write_report(record)
    return 0


def write_report(record: dict) -> None:
    """champion_fit_parts.md and the README's paragraph, from the record."""
    from readme_block import replace_block  # benchmarks/ is on the path of a benchmark run

    (RESULTS / "champion_fit_parts.md").write_text(markdown(record))
    print((RESULTS / "champion_fit_parts.md").read_text())
    replace_block(README, README_BEGIN, README_END, readme_block(record))


if __name__ == "__main__":
    sys.exit(main())
