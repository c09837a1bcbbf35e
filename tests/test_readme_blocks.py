"""The README's benchmark tables are the committed results, as each benchmark writes them: nobody
types a figure in."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pandas as pd
import pytest
from helpers import BENCHMARKS, load_benchmark

ROOT = Path(__file__).resolve().parents[1]


def _short(dataset: str) -> str:  # "Online Retail (2011-09-09)" -> "2011-09-09", "demo USRT" -> "USRT"
    return dataset[dataset.index("(") + 1 : -1] if "(" in dataset else dataset.split()[-1]


@pytest.mark.parametrize("name", ["latency", "pipeline", "scale", "extract_files", "shared_fit", "quality", "champion_fit_parts"])
def test_readme_block_is_the_committed_results(name):
    benchmark = load_benchmark(name)
    record = json.loads((BENCHMARKS / "results" / f"{name}.json").read_text())
    readme = (ROOT / "README.md").read_text()
    assert readme.count(benchmark.README_BEGIN) == 1 and readme.count(benchmark.README_END) == 1
    block = readme.split(benchmark.README_BEGIN, 1)[1].split(benchmark.README_END, 1)[0]
    assert block.strip("\n") == "\n".join(benchmark.readme_block(record)).strip("\n")


def test_quality_report_quotes_the_seed_spread_research(tmp_path):
    """The report's training-noise table is the research notebook's, read from its CSV: the pooled rows
    only, every seed counted; no table where the research has not been run."""
    quality = load_benchmark("quality")
    assert quality.seed_noise_table(tmp_path / "absent.csv") == []
    rows = [
        {"dataset": name, "page": page, "cases": cases, "seed 0": 0.70, "seed 1": 0.71, "seed 2": 0.66, "seed sd": sd,
         "seed range": 0.02, "paired case SE": 0.003, "seed sd / paired case SE": sd / 0.003}
        for name, cases in (("Online Retail (2011-09-09)", 2000), ("Online Retail, pooled", 6000), ("all datasets, pooled", 8725))
        for page, sd in (("product HR@10", 0.0061), ("basket HR@10", 0.0042))
    ]
    pd.DataFrame(rows).to_csv(tmp_path / "seed_spread.csv", index=False)
    table = quality.seed_noise_table(tmp_path / "seed_spread.csv")
    body = [line for line in table if line.startswith("| ") and "---" not in line][1:]
    assert len(body) == 4 and not any("2011-09-09" in line for line in body)
    assert "| Online Retail, pooled (6,000) | product HR@10 | 0.0061 | 0.0200 | 0.0030 | 2.03 | +0.0100 |" in body
    assert "3 seeds" in " ".join(table)
    # a run without the default seed says so rather than failing
    pd.DataFrame(rows).drop(columns="seed 0").to_csv(tmp_path / "other_seeds.csv", index=False)
    assert "| 2.03 | not among the seeds run |" in "\n".join(quality.seed_noise_table(tmp_path / "other_seeds.csv"))


def test_the_quality_report_says_which_of_issue_9s_targets_a_record_meets():
    """The verdict is counted from the record itself: a cell short of 1.10x is named with whether the
    target lies within its interval, a cell below its baseline is named, and a champion fit past 5x
    the slowest single algorithm's is a miss; the committed README says what the committed record meets."""
    quality = load_benchmark("quality")

    def margin(ratio, high):
        return {"ratio": ratio, "ratio_low": ratio - 0.04, "ratio_high": high, "significant": ratio - 0.04 > 1.0}

    def dataset(name, ratios, champion_s):
        return {"dataset": name, "split": "2020-01-01", "peer_fit_s": {}, "fit_s": {"champion": champion_s, "bpr": 1.0, "ease": 0.5},
                "test": {"no store id": {page: {"margin": margin(*ratios[page])} for page in quality.PAGES}}}

    fine = dict.fromkeys(quality.PAGES, (1.30, 1.40))
    record = [dataset("A", fine, 4.9),
              dataset("B", {**fine, "customer": (1.08, 1.12), "product": (1.05, 1.09), "basket": (0.97, 1.01)}, 5.2)]
    verdict = "\n".join(quality.targets_verdict(record))
    assert "5 of 8 cells; short of it:" in verdict
    assert "B (2020-01-01) customer NDCG@10: 1.08x [1.04, 1.12], significant; 1.10x within its interval" in verdict
    assert "B (2020-01-01) product HR@10: 1.05x [1.01, 1.09], significant; 1.10x above its interval" in verdict
    assert "below the best baseline: 1 of 8 cells:" in verdict and "basket HR@10: 0.97x [0.93, 1.01], within noise; 1.00x within" in verdict
    assert "1 of 2 datasets; missed: B (2020-01-01) 5.2x" in verdict
    assert "below the best baseline: none of 4 cells" in "\n".join(quality.targets_verdict(record[:1]))

    committed = json.loads((BENCHMARKS / "results" / "quality.json").read_text())["datasets"]
    assert "\n".join(quality.targets_verdict(committed)) in (ROOT / "README.md").read_text()


def test_quality_margins_figure_is_the_committed_results(tmp_path):
    """The README's picture of the quality margins is drawn from the committed quality.json: redrawn
    here, it is the committed PNG pixel for pixel (matplotlib is pinned, so the drawing is too)."""
    import matplotlib.image

    quality = load_benchmark("quality")
    record = json.loads((BENCHMARKS / "results" / "quality.json").read_text())
    drawn = quality.margins_figure(record["datasets"], tmp_path / "margins.png")
    committed = matplotlib.image.imread(BENCHMARKS / "results" / "quality_margins.png")
    assert (matplotlib.image.imread(drawn) == committed).all()
    assert "](benchmarks/results/quality_margins.png)" in (ROOT / "README.md").read_text()


def test_readme_quotes_the_tuning_budget_research():
    """The README's sentences on the tuning budget under the search's earlier order say what
    `notebooks/research/tuning_budget` wrote then (every run's CSVs, kept apart): which datasets kept
    every route and the blend's settings with no wall-time limit, each champion whose kept settings
    changed with its two validation objectives, and where the blend's and the champion's kept trial
    became their first guess (the first after the probes) and a page moved."""
    from workbench.evaluation.spaces import SEARCH_SPACES, probed_switches

    kept, routes = load_benchmark("search_schedule").tuning_budget_record()  # the earlier order's runs
    assert len(kept) and len(routes)
    readme = " ".join((ROOT / "README.md").read_text().split())

    moved = routes[~routes["same"]]
    blend = kept[kept["algorithm"] == "blend"].set_index("dataset")
    steady = [d for d in kept["dataset"].unique() if d not in set(moved["dataset"]) and blend.loc[d, "same settings kept"]]
    assert f"{', '.join(_short(d) for d in steady[:-1])} and {_short(steady[-1])} kept every page's route and the blend's settings" in readme
    words = dict(enumerate(("no", "one", "two", "three", "four", "five", "six", "seven", "eight")))
    assert f"held {words[moved['dataset'].nunique()]} of {words[kept['dataset'].nunique()]} datasets back" in readme
    for _, row in kept[(kept["algorithm"] == "champion") & ~kept["same settings kept"]].iterrows():
        assert f"validation objective {row['objective, no limit']:.4f} against {row['objective within budget']:.4f}" in readme
    for _, row in moved.iterrows():
        assert f"On {_short(row['dataset'])} the blend's and the champion's first guesses" in readme
        assert f"the {row['page']} page moved from the {row['within budget']} to the {row['no limit']}" in readme
        for algorithm in ("blend", "champion"):
            probes = len(probed_switches(SEARCH_SPACES[algorithm]))
            found = kept[(kept["dataset"] == row["dataset"]) & (kept["algorithm"] == algorithm)].iloc[0]
            assert found["kept, no limit"] == 1 + probes and not found["same settings kept"]


def test_readme_quotes_the_tuning_budget_research_in_todays_order():
    """The README says that in today's order a larger budget registers the same model: with no
    wall-time limit every dataset of `tuning_budget`'s records (every run's CSVs) kept each page's
    route and the served candidates' settings. It quotes the blend's trials within the budget on
    Online Retail and, per single algorithm that serves no page, on how many splits it kept other
    settings. A record where a page moved or a served candidate changed fails here until the README
    says so."""
    search_schedule = load_benchmark("search_schedule")
    kept, routes = search_schedule.tuning_budget_record(search_schedule.RESEARCH)
    assert len(kept) and len(routes)
    readme = " ".join((ROOT / "README.md").read_text().split())
    served = set(routes["within budget"]) | set(routes["no limit"])
    assert routes["same"].all(), routes[~routes["same"]]
    changed = kept[~kept["same settings kept"]]
    assert not changed["algorithm"].isin(served).any(), changed
    # Online Retail's splits, then the legal entities
    names = sorted(map(_short, kept["dataset"].unique()), key=lambda name: not name[0].isdigit())
    assert (f"{', '.join(names[:-1])} and {names[-1]} kept every page's route and the blend's and the champion's "
            "settings") in readme
    online = kept[kept["dataset"].str.startswith("Online Retail")]
    blend = online[online["algorithm"] == "blend"]
    low, high = blend["trials within budget"].min(), blend["trials within budget"].max()
    trials = f"{low}-{high}" if low != high else f"{low}"
    assert f"Online Retail's blend runs {trials} of its {blend['trials, no limit'].max()} trials" in readme
    assert not changed[~changed["dataset"].str.startswith("Online Retail")].size  # the demo retailer: none
    splits = online["dataset"].nunique()
    counts = changed.groupby("algorithm")["dataset"].nunique().sort_values(ascending=False, kind="stable")
    listed = [f"{a} on {n} of Online Retail's {splits} splits" if i == 0 else f"{a} on {n}"
              for i, (a, n) in enumerate(counts.items())]
    assert f"Only single algorithms that serve no page kept other settings: {', '.join(listed)}." in readme


def test_readme_quotes_the_search_order_benchmark():
    """The README's figures for the search's order (`benchmarks/search_schedule.py`) are its CSV's:
    every served candidate (the blend, the champion) whose kept validation objective differs from
    the earlier order's record is quoted with both, and the others said to be unchanged."""
    found = pd.read_csv(BENCHMARKS / "results" / "search_schedule.csv")
    readme = " ".join((ROOT / "README.md").read_text().split())
    served = found[found["algorithm"].isin(["blend", "champion"])]
    changed = served[served["objective"].round(4) != served["earlier order: objective"].round(4)]
    assert len(changed)
    for _, row in changed.iterrows():
        assert f"{row['objective']:.4f} against {row['earlier order: objective']:.4f}" in readme, row["dataset"]
    champion = served[(served["algorithm"] == "champion") & served["dataset"].str.startswith("Online Retail")]
    earlier = champion["earlier order: trials"].astype(int)
    assert (f"in {champion['trials'].min()}-{champion['trials'].max()} trials within the budget (the earlier order: "
            f"{earlier.min()} each)") in readme and earlier.min() == earlier.max()
    steady = sorted(set(served["dataset"]) - set(changed["dataset"]))
    assert all(d.startswith("Online Retail") for d in steady)
    if steady:
        assert "Online Retail's other splits kept what they kept before" in readme


def test_champion_fit_parts_timed_the_settings_of_todays_quality_record():
    """The README's paragraph on where the champion's fit goes (its block, written by
    benchmarks/champion_fit_parts.py) rests on today's quality record: the legal entities it names as
    missing 5x furthest are those the record's fit-time table misses, by more than any other dataset
    of the record, and the settings it timed as "the quality benchmark's settings" are the ones that
    record's search kept there (a quality rerun that keeps others leaves this record stale until it is
    rerun)."""
    readme = " ".join((ROOT / "README.md").read_text().split())
    found = json.loads((BENCHMARKS / "results" / "champion_fit_parts.json").read_text())["datasets"]
    record = json.loads((BENCHMARKS / "results" / "quality.json").read_text())["datasets"]
    ratios = {(r["dataset"], str(r["split"])[:10]): load_benchmark("quality").fit_ratio(r) for r in record}
    assert "Where the champion's fit misses 5x furthest (the demo retailer's legal entities, whose single algorithms fit in well under a second)" in readme
    demo = {key: ratio for key, ratio in ratios.items() if key[0].startswith("demo retailer")}
    missed = {name for (name, _), ratio in demo.items() if not ratio["met"]}
    assert missed == {"demo retailer USRT", "demo retailer FRRT"}
    assert min(r["ratio"] for r in demo.values()) > max(r["ratio"] for key, r in ratios.items() if key not in demo)
    quality = {r["dataset"]: r for r in record if r["dataset"] in missed}
    parts = load_benchmark("champion_fit_parts")
    kept = {name.split(",")[0]: r for name, r in found.items() if name.endswith(parts.KEPT)}
    assert set(kept) == missed
    from workbench.models import make_model

    for dataset, r in kept.items():
        params = make_model("champion", **quality[dataset]["best_params"]["champion"]).params
        assert r["switches"] == {s: bool(params[s]) for s in r["switches"]}, dataset
        assert r["max_training_rows"] == params["max_training_rows"], dataset


def test_readme_quotes_the_blas_thread_comparison_as_fit_ab_wrote_it():
    """The README's sentence on the champion's fit with BLAS on one thread quotes the fit_ab records
    of results/blas_threads/: each condition's range of (this checkout / baseline) over the datasets,
    every dataset the same model on both sides, and the conditions as the records name them."""
    readme = " ".join((ROOT / "README.md").read_text().split())
    records = {folder.name: json.loads((folder / "fit_ab.json").read_text()) for folder in (BENCHMARKS / "results" / "blas_threads").iterdir()}
    conditions = {"as long with nothing else running": [r for r in records.values() if not r["busy"]],
                  "beside one or two processes running a Python loop": [r for r in records.values() if r["busy"] and r["busy_work"] == "python"],
                  "beside one running linear algebra on BLAS threads": [r for r in records.values() if r["busy"] == 1 and r["busy_work"] == "blas"]}
    assert sum(len(r) for r in conditions.values()) == len(records) == 4
    assert sorted(r["busy"] for r in conditions["beside one or two processes running a Python loop"]) == [1, 2]
    for condition, runs in conditions.items():
        ratios = [d["checkout"]["champion_s"] / d["baseline"]["champion_s"] for r in runs for d in r["datasets"].values()]
        assert all(d["same_model"] for r in runs for d in r["datasets"].values())
        assert all(r["baseline"] == "7c388ba" and r["checkout"] == "3fd5604" and r["rounds"] == 3 for r in runs)
        assert f"{min(ratios):.2f}-{max(ratios):.2f}x {condition}" in readme, condition


def _comparison_summary(text: str) -> tuple[tuple, tuple, tuple]:
    """(cells, fits, moved) from the summary benchmarks/quality_compare.py writes: each count before and
    after, and the moved test figures' (count, of, mean, lowest, highest difference)."""
    cells = re.search(r"cells at 1.10x the best baseline or more: (\d+ of \d+) → (\d+ of \d+)", text).groups()
    fits = re.search(r"fits within 5x the slowest single algorithm: (\d+ of \d+) → (\d+ of \d+)", text).groups()
    moved = re.search(r"test figures that moved: (\d+) of (\d+), mean difference ([-+]\d\.\d+), from ([-+]\d\.\d+) "
                      r"to ([-+]\d\.\d+); widest half interval of a registered figure \d\.\d+", text).groups()
    return cells, fits, moved


def _champion_kept(text: str) -> dict[str, list[str]]:
    """{dataset: [kept before, kept after]}: the champion's kept settings in each record, from the
    first table benchmarks/quality_compare.py writes."""
    return {line.split(" | ")[0].lstrip("| "): line.split(" | ")[2].split(" → ") for line in text.splitlines()
            if " → " in line and line.count(" | ") == 4}


def _figure_rows(text: str) -> list[list[str]]:
    """The cells of each row of the test figures' table benchmarks/quality_compare.py writes (dataset,
    page, before, after, difference): the rows whose last cell is a signed difference."""
    return [line.strip("| ").split(" | ") for line in text.splitlines() if re.fullmatch(r"\| .* \| [-+]\d\.\d{4} \|", line.rstrip())]


def _within_half_interval(row: list[str]) -> bool:
    """Whether a `_figure_rows` row moved by at most half the width of its after-figure's interval."""
    low, high = (float(v) for v in re.search(r"\[(\d\.\d+), (\d\.\d+)\]", row[3]).groups())
    return abs(float(row[-1])) <= (high - low) / 2


def test_readme_quotes_the_economy_comparison_as_quality_compare_wrote_it():
    """The README's sentence on what the economy cuts did is the summary that benchmarks/quality_compare.py
    wrote from the two records, and every moved figure stayed within its interval's half width."""
    readme = " ".join((ROOT / "README.md").read_text().split())
    text = (BENCHMARKS / "results" / "economy" / "quality_compare.md").read_text()
    cells, fits, moved = _comparison_summary(text)
    assert (f"cells at 1.10x the best baseline {cells[0]} → {cells[1]}, fits within 5x {fits[0]} → {fits[1]}; the test figures "
            f"that moved, {moved[0]} of {moved[1]}, moved by {moved[2]} on average, none by more than its interval's half width") in readme
    rows = _figure_rows(text)
    assert len(rows) == int(moved[1])
    assert all(_within_half_interval(row) for row in rows)


def test_readme_quotes_the_case_weights_comparison_as_quality_compare_wrote_it():
    """The README's sentences on the re-rankers' case weights are quality_compare's summary of the two
    records, and where the search kept the same settings in both, what moved is what the change can
    move: the customer pages (the basket and product pages' weights are as they were)."""
    readme = " ".join((ROOT / "README.md").read_text().split())
    text = (BENCHMARKS / "results" / "case_weights" / "quality_compare.md").read_text()
    cells, fits, moved = _comparison_summary(text)
    assert (f"cells at 1.10x the best baseline {cells[0]} → {cells[1]}, fits within 5x {fits[0]} → {fits[1]}; the test figures "
            f"that moved, {moved[0]} of {moved[1]}, moved by {moved[2]} on average, from {moved[3]} to {moved[4]}") in readme
    kept = _champion_kept(text)
    same = [name for name, (before, after) in kept.items() if before == after]
    rows = _figure_rows(text)
    assert len(rows) == int(moved[1])
    differences = {(row[0], row[1]): row[-1] for row in rows}
    assert same and all(differences[(name, page)] == "+0.0000" for name in same for page in ("basket HR@10", "product HR@10"))
    assert (f"Where the search kept the same settings in both ({', '.join(same)}), only the customer pages moved: "
            f"customer NDCG@10 {', '.join(differences[(name, 'customer NDCG@10')] for name in same)}; "
            f"new-items NDCG@10 {', '.join(differences[(name, 'new-items NDCG@10')] for name in same)}.") in readme


def test_readme_quotes_the_weight_search_speed_up_as_fit_ab_and_quality_compare_wrote_it():
    """The README's sentence on the weight search's speed-up is benchmarks/fit_ab.py's record (the fit
    under both commits back to back, with the quality record's settings, the same model learnt in every
    round) and quality_compare's summary of the two quality records: the same settings kept on every
    dataset, and so the same test figures."""
    readme = " ".join((ROOT / "README.md").read_text().split())
    record = json.loads((BENCHMARKS / "results" / "fit_ab.json").read_text())
    assert all(r["same_model"] for r in record["datasets"].values())
    ratios = ", ".join(f"{r['checkout']['champion_s'] / r['baseline']['champion_s']:.2f}x on {name}" for name, r in record["datasets"].items())
    assert (f"the champion's fit under both commits back to back, with the settings the quality record then kept (`benchmarks/fit_ab.py` → "
            f"`results/fit_ab.md`), took {ratios} as long as before, and learnt the same model in every round") in readme
    text = (BENCHMARKS / "results" / "search_speed" / "quality_compare.md").read_text()
    assert text.splitlines()[0].endswith(f" against {record['baseline']}")  # the same code before
    cells, fits, moved = _comparison_summary(text)
    kept = _champion_kept(text)
    # the settings fit_ab fitted are the ones that quality record's champion kept
    compare = load_benchmark("quality_compare")
    assert all(compare._kept({"best_params": r["settings"]}) == kept[name][1] for name, r in record["datasets"].items())
    assert len(kept) == 5 and all(before == after for before, after in kept.values())
    assert (f"the search kept the same settings on every dataset, the test figures that moved: {moved[0]} of {moved[1]}; cells at 1.10x "
            f"the best baseline {cells[0]} → {cells[1]}, fits within 5x {fits[0]} → {fits[1]}") in readme
    # the same settings on the same test cases: the same model, the same figures
    assert moved[0] == "0"


def test_readme_puts_the_latency_record_beside_the_earlier_code_on_the_same_machine():
    """The README's reading of the latency record is its runs': the record, the earlier record's code
    and this record's code again, back to back on one machine (results/latency_machine/)."""
    readme = " ".join((ROOT / "README.md").read_text().split())
    results = BENCHMARKS / "results"
    runs = {"record": json.loads((results / "latency.json").read_text())}
    for path in sorted((results / "latency_machine").glob("latency_*.json")):
        runs[path.stem.split("_")[1]] = json.loads(path.read_text())
    earlier, again = "7d3b249", runs["record"]["commit"]
    assert set(runs) == {"record", earlier, again} and runs[again]["commit"] == again

    def p50s(run):
        return sorted(s["p50_ms"] for s in run["in_process"].values())

    def ratios(run):
        return sorted(run["in_process"][page]["p50_ms"] / run["baseline_recommend"][page]["p50_ms"] for page in run["in_process"])

    def span(values):
        return f"{min(values):.2f}-{max(values):.2f}"

    budget = load_benchmark("latency").BUDGET["in_process"]["p50_ms"]
    assert all(p50 > budget for p50 in p50s(runs["record"]))
    assert f"misses the {budget:g} ms in-process p50 on every page ({span(p50s(runs['record']))} ms)" in readme
    assert f"({earlier}, which met 17 of 17 targets on another machine on 6 December) measured {span(p50s(runs[earlier]))} ms" in readme
    assert f"and this code again {span(p50s(runs[again]))} ms" in readme
    assert (f"{span(ratios(runs['record']))} here, {span(ratios(runs[earlier]))} and {span(ratios(runs[again]))} in those two runs") in readme
    customer = {name: run["baseline_recommend"]["customer"]["p50_ms"] for name, run in runs.items()}
    assert (f"the bare model's customer page took {customer['record']:.2f} and {customer[again]:.2f} ms in this code's two runs, "
            f"{customer[earlier]:.2f} ms in {earlier}'s") in readme
    # "where its product and basket pages overlap between the codes": the earlier code's between this code's two runs
    for page in ("product", "basket"):
        mine = sorted(runs[name]["baseline_recommend"][page]["p50_ms"] for name in ("record", again))
        assert mine[0] <= runs[earlier]["baseline_recommend"][page]["p50_ms"] <= mine[1]
    one = {name: round(run["concurrent"]["levels"]["1"]["throughput_rps"]) for name, run in runs.items()}
    assert f"one client got {one['record']} and {one[again]} requests a second in this code's two runs, {one[earlier]} in {earlier}'s" in readme


def test_readme_quotes_the_lightgbm_trees_as_quality_compare_and_fit_ab_wrote_them():
    """The README's sentences on the re-rankers' LightGBM trees are quality_compare's summary of the two
    records and fit_ab's back-to-back fits (the same weights and rows learnt by both sides), and the
    Online Retail (2011-09-09) ratio it sets against the record's is both records' own."""
    readme = " ".join((ROOT / "README.md").read_text().split())
    research = BENCHMARKS / "results" / "research"
    table, pooled = (pd.read_csv(research / f"reranker_trees{suffix}.csv") for suffix in ("", "_pooled"))
    most = (pooled["pooled gain"].abs() / pooled["pooled standard error"]).max()
    assert (f"every page within {most:.1f} standard errors of scikit-learn's trees, the champion's fit "
            f"{table['fit ratio'].min():.2f}-{table['fit ratio'].max():.2f}x as long on one thread") in readme
    folder = BENCHMARKS / "results" / "reranker_trees"
    cells, fits, moved = _comparison_summary((folder / "quality_compare.md").read_text())
    assert (f"cells at 1.10x the best baseline {cells[0]} → {cells[1]}, fits within 5x {fits[0]} → {fits[1]}; the test figures "
            f"that moved, {moved[0]} of {moved[1]}, moved by {moved[2]} on average, from {moved[3]} to {moved[4]}") in readme
    record = json.loads((folder / "fit_ab.json").read_text())
    assert all(r["same_model"] for r in record["datasets"].values())
    ratios = [r["checkout"]["champion_s"] / r["baseline"]["champion_s"] for r in record["datasets"].values()]
    online_retail = [f"{x:.2f}x" for name, x in zip(record["datasets"], ratios) if name.startswith("Online Retail")]
    demo = [f"{x:.2f}x" for name, x in zip(record["datasets"], ratios) if name.startswith("demo retailer")]
    assert (f"the champion's fit took {', '.join(online_retail)} as long as before on Online Retail's three splits and "
            f"{', '.join(demo)} on the demo retailer's two legal entities") in readme
    assert "the trees shorten every fit (each of this checkout's rounds shorter than each of the baseline's)" in readme
    for r in record["datasets"].values():
        assert max(x["champion_s"] for x in r["checkout"]["runs"]) < min(x["champion_s"] for x in r["baseline"]["runs"])
    # the record the trees made (the comparison's "after"), which later records replace
    after = re.search(r"\| Online Retail \(2011-09-09\) \| [^|]+ \| [^|]+ \| [\d.]+x → ([\d.]+)x \|",
                      (folder / "quality_compare.md").read_text()).group(1)
    back_to_back = record["datasets"]["Online Retail (2011-09-09)"]["checkout"]["ratio"]
    assert f"came to {back_to_back:.1f}x BPR's fit, where that record says {after}x" in readme


def test_readme_quotes_the_repeat_pair_features_record():
    """The README's sentence on purchase quantities and visit order is the research record's pooled row
    over every dataset, and says "nothing" only where both gains are within two standard errors."""
    readme = " ".join((ROOT / "README.md").read_text().split())
    table = pd.read_csv(BENCHMARKS / "results" / "research" / "repeat_pair_features.csv")
    pooled = table[table["dataset"] == "all datasets, pooled"].set_index("features")
    quantities, visits = pooled.loc["+ purchase quantities"], pooled.loc["+ visit order"]
    assert all(abs(r["gain"]) < 2 * r["standard error"] for r in (quantities, visits))
    assert (f"re-buy NDCG@10 {quantities['gain']:+.4f} (standard error {quantities['standard error']:.4f}) and "
            f"{visits['gain']:+.4f} ({visits['standard error']:.4f})") in readme


def test_readme_quotes_the_reranker_objective_record():
    """The README's sentence on ranking objectives is the research record's pooled rows, and the
    new-items page learns the objective that gained there by more than two standard errors."""
    from workbench.models.champion.model import Champion

    readme = " ".join((ROOT / "README.md").read_text().split())
    table = pd.read_csv(BENCHMARKS / "results" / "research" / "reranker_objective.csv")
    pooled = table[table["dataset"] == "all datasets, pooled"].set_index(["objective", "page"])

    def gain(objective, page):
        row = pooled.loc[(objective, page)]
        return row["gain"], row["standard error"]

    (lc, lcs), (lp, lps) = gain("lambdarank", "customer NDCG@10"), gain("lambdarank", "product HR@10")
    (xc, xcs), (xp, xps) = gain("rank_xendcg", "customer NDCG@10"), gain("rank_xendcg", "product HR@10")
    new, new_se = gain("rank_xendcg", "new-items NDCG@10")
    assert (f"LambdaRank customer NDCG@10 {lc:+.4f} (standard error {lcs:.4f}) and product HR@10 {lp:+.4f} ({lps:.4f}), "
            f"XE-NDCG {xc:+.4f} ({xcs:.4f}) and {xp:+.4f} ({xps:.4f})); XE-NDCG lifted the new-items page, "
            f"{new:+.4f} ({new_se:.4f})") in readme
    assert new > 2 * new_se and max(lc, lp, xc, xp) <= 0
    assert Champion().params["new_items_objective"] == "rank_xendcg" and Champion().params["ranker_objective"] == "binary"


def test_readme_quotes_the_new_items_objective_as_quality_compare_and_fit_ab_wrote_them():
    """The README's paragraph on XE-NDCG for the new-items page is quality_compare's rows and summary
    and fit_ab's back-to-back fits; where it says the other pages scored the same, they did, and where
    it says the fits did not move, every dataset's rounds overlap."""
    readme = " ".join((ROOT / "README.md").read_text().split())
    folder = BENCHMARKS / "results" / "new_items_objective"
    text = (folder / "quality_compare.md").read_text()
    rows = {(r[0], r[1]): r for r in _figure_rows(text)}
    new_items = [rows[(d, "new-items NDCG@10")][-1] for d in ("Online Retail (2011-09-09)", "Online Retail (2011-10-09)",
                                                              "Online Retail (2011-11-09)", "demo retailer USRT (2025-12-02)",
                                                              "demo retailer FRRT (2025-12-02)")]
    assert (f"new-items NDCG@10 {new_items[0]}, {new_items[1]}, {new_items[2]} on Online Retail's three splits, "
            f"{new_items[3]} on USRT and {new_items[4]} on FRRT") in readme
    frrt = rows[("demo retailer FRRT (2025-12-02)", "new-items NDCG@10")]
    before, after = (float(cell.rsplit(", ", 1)[1].rstrip("x")) for cell in frrt[2:4])
    assert f"at {after:.2f}x the best baseline (the blend served it at {before:.2f}x, within noise)" in readme
    cells, fits, _ = _comparison_summary(text)
    assert f"cells at 1.10x the best baseline {cells[0]} → {cells[1]}, fits within 5x {fits[0]} → {fits[1]}" in readme
    kept = _champion_kept(text)
    for dataset in ("Online Retail (2011-10-09)", "Online Retail (2011-11-09)", "demo retailer USRT (2025-12-02)"):
        assert kept[dataset][0] == kept[dataset][1]
        assert all(float(rows[(dataset, page)][-1]) == 0 for page in ("customer NDCG@10", "basket HR@10", "product HR@10"))
    assert f"(basket HR@10 {rows[('Online Retail (2011-09-09)', 'basket HR@10')][-1]})" in readme
    frrt_basket, frrt_product = (rows[("demo retailer FRRT (2025-12-02)", page)] for page in ("basket HR@10", "product HR@10"))
    assert f"(basket HR@10 {frrt_basket[-1]}, product HR@10 {frrt_product[-1]}, each within its interval's half width)" in readme
    assert _within_half_interval(frrt_basket) and _within_half_interval(frrt_product)
    record = json.loads((folder / "fit_ab.json").read_text())
    ratios = [f"{r['checkout']['champion_s'] / r['baseline']['champion_s']:.2f}x" for r in record["datasets"].values()]
    assert f"the champion's fit took {', '.join(ratios)} as long as before, each dataset's rounds overlapping" in readme
    for r in record["datasets"].values():
        mine, theirs = ([x["champion_s"] for x in r[side]["runs"]] for side in ("checkout", "baseline"))
        assert min(mine) <= max(theirs) and min(theirs) <= max(mine)
    first = record["datasets"]["Online Retail (2011-09-09)"]
    assert (f"took {first['checkout']['ratio']:.1f}x BPR's fit there, and the code before {first['baseline']['ratio']:.1f}x: "
            "that miss of 5x is the kept setting's") in readme
    assert min(first["checkout"]["ratio"], first["baseline"]["ratio"]) > 5


def test_readme_quotes_the_costly_switch_as_quality_compare_and_fit_ab_wrote_them():
    """The README's paragraph on the weight search over every page as an economy is quality_compare's
    record of the two quality records (how each search chose, the summary, the moved figures) and
    fit_ab's back-to-back fits, each side with its own record's settings."""
    readme = " ".join((ROOT / "README.md").read_text().split())
    folder = BENCHMARKS / "results" / "costly_switch"
    text = (folder / "quality_compare.md").read_text()
    first, usrt = "Online Retail (2011-09-09)", "demo retailer USRT (2025-12-02)"
    after = {line.split(", b33e3b8: ")[0].lstrip(" -"): line.split(", b33e3b8: ")[1] for line in text.splitlines() if ", b33e3b8: " in line}
    off = re.search(r"search_every_page False \(trial \d+\) kept: ([-+]\d\.\d{4}) against the choice, within one standard error \((\d\.\d{4})\)",
                    after[first]).groups()
    on = re.search(r"search_every_page False \(trial \d+\) not kept: lost (\d\.\d{4}) to the choice, more than one standard error \((\d\.\d{4})\)",
                   after[usrt]).groups()
    assert f"it gained {-float(off[0]):.4f} over its absence against a standard error of {off[1]} and went off" in readme
    assert f"on USRT it gained {on[0]} against {on[1]} and stayed on" in readme
    kept = _champion_kept(text)
    assert kept[first] == ["catalog_features True, search_every_page True", "catalog_features True, search_every_page False"]
    assert kept[usrt][0] == kept[usrt][1] and "search_every_page True" in kept[usrt][1]
    rows = {(r[0], r[1]): r for r in _figure_rows(text)}
    assert (f"(basket HR@10 {rows[(first, 'basket HR@10')][-1]}, new-items NDCG@10 {rows[(first, 'new-items NDCG@10')][-1]} "
            "on the test window)") in readme
    # the switch moved nothing else: every other figure is the same in both records
    assert all(float(r[-1]) == 0 for (dataset, _), r in rows.items() if dataset != first)
    cells, fits, _ = _comparison_summary(text)
    assert f"fits within 5x {fits[0]} → {fits[1]}, cells at 1.10x the best baseline {cells[0]} → {cells[1]}" in readme
    noise = [float(x) for x in re.findall(r"fit (\d\.\d\d)x as long", text.split("run-to-run noise")[1].splitlines()[0])]
    assert f"the fits still moved {min(noise):.2f}x-{max(noise):.2f}x from one record to the next" in readme
    record = json.loads((folder / "fit_ab.json").read_text())
    assert record["baseline_settings"] and record["baseline"] == "167c227"
    r = record["datasets"][first]
    assert r["baseline_settings"]["champion"]["search_every_page"] and not r["settings"]["champion"]["search_every_page"]
    assert (f"the champion's fit took {r['checkout']['champion_s'] / r['baseline']['champion_s']:.2f}x as long as with the switch on, "
            f"each of its rounds shorter, {r['checkout']['ratio']:.1f}x BPR's fit against {r['baseline']['ratio']:.1f}x") in readme
    assert max(x["champion_s"] for x in r["checkout"]["runs"]) < min(x["champion_s"] for x in r["baseline"]["runs"])
    spans = [[x["champion_s"] / x["single_s"] for x in r[side]["runs"]] for side in ("checkout", "baseline")]
    assert "(round by round {:.1f}x-{:.1f}x against {:.1f}x-{:.1f}x)".format(*(f(v) for v in spans for f in (min, max))) in readme
