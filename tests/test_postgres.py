"""A real PostgreSQL source: the demo retailer loaded into a server (tests/postgres_server.py) in a
schema that is not ours, extracted through a mapping, equals the SQLite demo's entity store row for row."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import polars as pl
import pytest
import sqlalchemy as sa

from postgres_server import load_demo_retailer, postgres_server
from test_sources import assert_same_store
from workbench.datasets import extract as ex
from workbench.datasets import sources
from workbench.datasets.store import read_tables

MAPPING = Path(__file__).parent / "sources" / "demo_postgres.yml"


@pytest.fixture(scope="module")
def retail_pg(demo_db):
    """A PostgreSQL server holding the session's demo retailer in the `retail` schema."""
    with postgres_server() as url:
        counts = load_demo_retailer(demo_db, url)
        assert counts["receipt_line"] > 10_000
        yield url


@pytest.mark.parametrize("legal_entity", ["USRT", "FRRT"])
def test_postgres_source_gives_the_sqlite_demo_store(retail_pg, demo_db_url, workbench_home, legal_entity):
    ex.extract_source("demo", legal_entity, source=demo_db_url, out_dir=workbench_home / "sqlite", progress=False)
    summary = ex.extract_source(MAPPING, legal_entity, source=retail_pg, progress=False)
    assert summary["mapping"] == "demo_postgres" and summary["source"].startswith("postgresql+psycopg://workbench@")
    assert_same_store(read_tables(legal_entity), read_tables(legal_entity, out_dir=workbench_home / "sqlite"))


def test_a_window_is_pushed_down_to_the_server(retail_pg, demo_db_url, workbench_home):
    window = dict(start="2025-03-01", end="2025-04-01")
    ex.extract_source("demo", "USRT", source=demo_db_url, out_dir=workbench_home / "sqlite", progress=False, **window)
    summary = ex.extract_source(MAPPING, "USRT", source=retail_pg, progress=False, **window)
    lines = read_tables("USRT")["sales_lines"]
    assert summary["window_lines"] == lines.height > 0
    assert lines["transaction_time"].min() >= datetime(2025, 3, 1) and lines["transaction_time"].max() < datetime(2025, 4, 1)
    assert_same_store(read_tables("USRT"), read_tables("USRT", out_dir=workbench_home / "sqlite"))


def test_large_results_are_streamed_in_chunks(retail_pg, monkeypatch):
    """A server-side cursor: the rows arrive in chunks of CHUNK_ROWS, never one fetch of the whole table."""
    monkeypatch.setattr(sources, "CHUNK_ROWS", 1000)
    engine, _ = sources.open_database(retail_pg)
    seen = []
    real = pl.DataFrame

    def counting(data=None, *args, **kwargs):
        if isinstance(data, list):
            seen.append(len(data))
        return real(data, *args, **kwargs)

    monkeypatch.setattr(sources.pl, "DataFrame", counting)
    with engine.connect() as conn:
        frame = sources.sql_frame(conn, sa.text("SELECT * FROM retail.receipt_line"), {})
    engine.dispose()
    assert frame.height == sum(seen) > 10_000 and max(seen) == 1000 and len(seen) > 10
