"""Every research notebook still runs on today's code, end to end, and writes the figure it justifies.

The research notebooks (`notebooks/research/`, `make research`) take minutes to tens of minutes on
the whole of Online Retail and are not run by CI as such; a change to the package can break one
without a test noticing (they call the champion's internals step by step). Here each runs through
papermill on a sample of Online Retail (`online_retail_sample`), with its lists cut to one or two entries
and its budgets to seconds (`SMALL`): what is checked is that it runs and saves its figure and a table of
the committed record's columns (`benchmarks/results/research/`: a notebook whose table changed shape
since its record was made is a record no longer of that notebook), not what they say. Skipped where
../shared's Online Retail file is absent.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
RESEARCH = ROOT / "notebooks" / "research"
NOTEBOOKS = sorted(p.stem for p in RESEARCH.glob("*.ipynb"))
# the widest line of a research notebook's prose
MARKDOWN_WIDTH = 110
# the committed records of the research notebooks (`make research`)
RECORDS = ROOT / "benchmarks" / "results" / "research"
# The sample: of Online Retail's customers, and of its anonymous invoices, the share kept; and of
# its products, the best sellers kept (an item-item model's fit grows with the catalog, not the lines)
SAMPLE_SHARE = 1 / 10
SAMPLE_PRODUCTS = 400
# A parameter a notebook declares is given this small value instead of its own (a name means the same
# in every research notebook): one split, Online Retail only (the demo retailer's entities are built
# through the CLI, 20 s a notebook: only WITH_DEMO takes one), few cases, seconds of budget. Any other
# list or mapping a notebook takes is cut to its first two entries (`smaller`); the rest keep their defaults.
SMALL = {
    "splits": ["2011-11-09"],
    "split": "2011-11-09",
    "demo_legal_entities": [],
    "max_baskets": 60,
    "n_trials": 2,
    "budget_s": 10.0,
    "depth": 50,  # the deepest place page_headroom's table reads
}
# the one notebook that also runs a demo legal entity (`quality.research_datasets`' demo path): a cheap
# notebook, the demo retailer's smaller entity
WITH_DEMO = ("customer_page_margin", ["FRRT"])

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def online_retail_sample(online_retail_file, tmp_path_factory) -> Path:
    """A seeded sample of Online Retail in its own format: the lines of the `SAMPLE_PRODUCTS` best
    sellers and of every code not a product number (postage, manual lines: cleansing still meets
    them), of `SAMPLE_SHARE` of the customers and of the anonymous invoices."""
    import numpy as np
    import pandas as pd

    lines = pd.read_csv(online_retail_file, dtype={"InvoiceNo": str, "StockCode": str})
    rng = np.random.default_rng(0)
    customers = lines["CustomerID"].dropna().unique()
    anonymous = lines.loc[lines["CustomerID"].isna(), "InvoiceNo"].unique()
    kept_customers = rng.choice(customers, size=int(len(customers) * SAMPLE_SHARE), replace=False)
    kept_invoices = rng.choice(anonymous, size=int(len(anonymous) * SAMPLE_SHARE), replace=False)
    products = lines["StockCode"].value_counts().index[:SAMPLE_PRODUCTS]
    kept = lines["CustomerID"].isin(kept_customers) | lines["InvoiceNo"].isin(kept_invoices)
    kept &= lines["StockCode"].isin(products) | ~lines["StockCode"].str[0].str.isdigit()
    path = tmp_path_factory.mktemp("research") / "online_retail_sample.csv.gz"
    lines[kept].to_csv(path, index=False)
    return path


def test_research_notebooks_are_papermill_ready():
    import nbformat
    import papermill

    assert NOTEBOOKS
    for name in NOTEBOOKS:
        path = RESEARCH / f"{name}.ipynb"
        cells = nbformat.read(path, as_version=4).cells
        assert "parameters" in cells[0].metadata.get("tags", []), path.name
        assert all(not c.get("outputs") for c in cells if c.cell_type == "code"), f"{path.name} has outputs"
        assert "data_file" in papermill.inspect_notebook(str(path))
        assert "fig" in cells[-1].source  # each ends in the figure it justifies
        # read as text as well as in JupyterLab (a diff, a terminal): prose wrapped, tables as they are
        long = [line[:60] for c in cells if c.cell_type == "markdown" for line in c.source.splitlines()
                if len(line) > MARKDOWN_WIDTH and not line.startswith("|")]
        assert not long, f"{path.name}: markdown lines over {MARKDOWN_WIDTH} characters: {long}"


def table_kind(path: Path) -> str:
    """A research table's name without the splits and legal entities it was run on
    (`tuning_budget_routes_2011-11-09_FRRT.csv` -> `tuning_budget_routes`)."""
    return re.sub(r"(_(\d{4}-\d{2}-\d{2}|[A-Z]{2,}))+$", "", path.stem)


def header(path: Path) -> tuple[str, ...]:
    """A table's columns, its numbers as # and a run of columns alike in all else as one: a column per
    value of a list parameter (seed_spread's "seed 0", "seed 1", ...) is one column of the table's kind,
    however many values a run took (the smoke run takes two)."""
    with path.open() as f:
        columns = [re.sub(r"\d+", "#", column) for column in f.readline().rstrip("\n").split(",")]
    return tuple(c for i, c in enumerate(columns) if i == 0 or c != columns[i - 1])


def test_table_kind_drops_splits_and_legal_entities_only():
    assert table_kind(Path("tuning_budget_routes_2011-09-09_2011-10-09_USRT.csv")) == "tuning_budget_routes"
    assert table_kind(Path("basket_size_weighting_alone.csv")) == "basket_size_weighting_alone"
    assert table_kind(Path("page_headroom_2011-10-09.csv")) == "page_headroom"


def test_a_column_per_value_of_a_list_parameter_is_one_column_of_the_kind(tmp_path):
    five, two, other = tmp_path / "five.csv", tmp_path / "two.csv", tmp_path / "other.csv"
    five.write_text("dataset,seed 0,seed 1,seed 2,seed 3,seed 4,seed sd\n")
    two.write_text("dataset,seed 0,seed 1,seed sd\n")
    other.write_text("dataset,seed 0,seed 1,seed range\n")
    assert header(five) == header(two) != header(other)


def smaller(name: str, default: str):
    """The value `name` gets here: SMALL's, or its default (the cell's literal) cut to two entries
    where it is a list or a mapping; None: its default as it stands."""
    if name in SMALL:
        return SMALL[name]
    try:
        value = ast.literal_eval(default)
    except (ValueError, SyntaxError):
        return None
    if isinstance(value, list) and len(value) > 2:
        return value[:2]
    if isinstance(value, dict) and len(value) > 2:
        return dict(list(value.items())[:2])
    return None


@pytest.mark.parametrize("notebook", NOTEBOOKS)
def test_research_notebook_runs_and_saves_its_figure(notebook, online_retail_sample, tmp_path):
    import papermill

    path = RESEARCH / f"{notebook}.ipynb"
    declared = papermill.inspect_notebook(str(path))
    figures = tmp_path / "figures"
    parameters = {name: smaller(name, spec["default"]) for name, spec in declared.items()}
    parameters = {name: value for name, value in parameters.items() if value is not None}
    if notebook == WITH_DEMO[0]:
        parameters["demo_legal_entities"] = WITH_DEMO[1]
    papermill.execute_notebook(
        str(path), str(tmp_path / path.name), cwd=str(RESEARCH), kernel_name="pos-workbench", progress_bar=False,
        parameters={**parameters, "data_file": str(online_retail_sample), "figure_dir": str(figures)},
    )
    saved = {p.suffix for p in figures.iterdir()} if figures.exists() else set()
    assert {".png", ".csv"} <= saved, f"{notebook} saved {sorted(p.name for p in figures.glob('*'))}"
    assert all(p.stat().st_size > 0 for p in figures.iterdir())
    records = {}
    for record in RECORDS.glob("*.csv"):
        records.setdefault(table_kind(record), set()).add(header(record))
    for table in figures.glob("*.csv"):
        assert table_kind(table) in records, f"{notebook} saved {table.name}, of which nothing is committed in {RECORDS}"
        assert records[table_kind(table)] == {header(table)}, f"{table.name}'s columns are not its committed record's"
    if notebook == WITH_DEMO[0]:
        assert all(any(entity in p.read_text() for p in figures.glob("*.csv")) for entity in WITH_DEMO[1])
