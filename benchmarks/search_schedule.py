"""The search's order within the quality benchmark's budget, on validation windows only.

    .venv/bin/python benchmarks/search_schedule.py [--splits 2011-09-09,2011-10-09,2011-11-09] [--demo USRT,FRRT] [--budget 240]

`evaluation.search.search_all` runs, after every algorithm's defaults, the single searches that give the
blend and the champion their first guesses, then the champion's probes and those guesses, then the other
sampled trials. Until this benchmark's commit it ran the probes right after the defaults and the guesses
only after every single algorithm's share (`notebooks/research/tuning_budget` recorded that order's budgeted run:
`benchmarks/results/research/tuning_budget_earlier_order/*.csv`, "within budget"). This runs today's order with the
same budget, trials, seed and validation windows (nothing of a test window is read) and sets each
algorithm's kept trial and validation objective, and each page's route, beside that record.

Writes benchmarks/results/search_schedule.csv (one row per dataset and algorithm) and
search_schedule_routes.csv (one row per dataset and page).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import pandas as pd
from quality import CANDIDATES, DATA, research_datasets

from workbench.evaluation import folds
from workbench.evaluation.search import search_all
from workbench.evaluation.selection import choose_from

RESULTS = Path(__file__).resolve().parent / "results"
RESEARCH = RESULTS / "research"  # notebooks/research/tuning_budget's runs on today's order among the others
# the earlier order's budgeted runs, by notebooks/research/tuning_budget up to a1b3c16, kept apart from its later runs
EARLIER = RESEARCH / "tuning_budget_earlier_order"


def tuning_budget_record(folder: Path = EARLIER) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Every `tuning_budget` run's CSVs in `folder` as one table of what each search kept and one of routes."""
    runs = [p for p in sorted(folder.glob("tuning_budget_*.csv")) if not p.name.startswith("tuning_budget_routes_")]
    kept = pd.concat([pd.read_csv(p) for p in runs], ignore_index=True)
    routes = pd.concat([pd.read_csv(p) for p in sorted(folder.glob("tuning_budget_routes_*.csv"))], ignore_index=True)
    return kept, routes


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--splits", default="2011-09-09,2011-10-09,2011-11-09")
    parser.add_argument("--demo", default="USRT,FRRT", help="the demo retailer's legal entities")
    parser.add_argument("--budget", type=float, default=240.0, help="as benchmarks/quality.py")
    parser.add_argument("--trials", type=int, default=8)
    parser.add_argument("--max-baskets", type=int, default=1000, help="as benchmarks/quality.py")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    splits = [s for s in args.splits.split(",") if s] if DATA.exists() else []
    datasets, plans = research_datasets(DATA, splits, [e for e in args.demo.split(",") if e])
    earlier, earlier_routes = tuning_budget_record()
    rows, routes = [], []
    for name, (before, wish_lists, _) in datasets.items():
        made = folds(before, plans[name], wish_lists, seed=args.seed, max_baskets=args.max_baskets)
        started = time.perf_counter()
        searches = search_all(list(CANDIDATES), made, n_trials=args.trials, budget_s=args.budget, seed=args.seed,
                              on_trial=lambda a, t: print(f"[{name}] {a:>12} trial {t.number}: {t.objective:.4f} "
                                                          f"({t.seconds:.1f} s) {t.params}", flush=True))
        print(f"[{name}] searched in {time.perf_counter() - started:.0f} s", flush=True)
        for algorithm in CANDIDATES:
            found = searches[algorithm]
            was = earlier[(earlier["dataset"] == name) & (earlier["algorithm"] == algorithm)]
            rows.append({"dataset": name, "algorithm": algorithm, "trials": len(found.trials), "kept": found.chosen_trial,
                         "objective": round(found.best.objective(), 4), "why": found.chosen_by,
                         "earlier order: trials": int(was["trials within budget"].iloc[0]) if len(was) else None,
                         "earlier order: kept": int(was["kept within budget"].iloc[0]) if len(was) else None,
                         "earlier order: objective": float(was["objective within budget"].iloc[0]) if len(was) else None,
                         "settings": found.best_params})
        chosen = choose_from({a: r.best for a, r in searches.items()}).routes
        for page, route in chosen.items():
            was = earlier_routes[(earlier_routes["dataset"] == name) & (earlier_routes["page"] == page)]
            routes.append({"dataset": name, "page": page, "route": route,
                           "earlier order": was["within budget"].iloc[0] if len(was) else None})
        RESULTS.mkdir(parents=True, exist_ok=True)
        pd.DataFrame(rows).to_csv(RESULTS / "search_schedule.csv", index=False)  # rewritten as each dataset finishes
        pd.DataFrame(routes).to_csv(RESULTS / "search_schedule_routes.csv", index=False)
    table = pd.DataFrame(rows)
    print(table.drop(columns=["settings", "why"]).to_string())
    print(pd.DataFrame(routes).to_string())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
