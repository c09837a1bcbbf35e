"""A throwaway PostgreSQL server for tests and benchmarks: initdb into a fresh folder, pg_ctl start on
a free loopback port, trust authentication, and everything removed on exit.

Debian's `postgresql` package provides the binaries (`make postgres` installs it; `make test` depends
on it). PostgreSQL refuses to run as root, so where the tests run as root (CI) the server runs as the
`postgres` system user the package creates, through runuser.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import subprocess
import tempfile
from pathlib import Path

from workbench.local_server import free_port

SUPERUSER = "workbench"


def binaries() -> Path | None:
    """The folder of initdb and pg_ctl: on PATH, else Debian's versioned folder (newest first)."""
    found = shutil.which("pg_ctl")
    if found:
        return Path(os.path.realpath(found)).parent
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"), key=lambda p: int(p.split("/")[4]), reverse=True)
    return Path(candidates[0]).parent if candidates else None


@contextlib.contextmanager
def postgres_server(database: str = "pos") -> str:
    """Yield a SQLAlchemy URL (psycopg 3) of a fresh server with an empty `database`."""
    bindir = binaries()
    if bindir is None:
        raise RuntimeError("PostgreSQL is not installed: run `make postgres` (Debian's postgresql package)")
    as_root = os.geteuid() == 0
    runas = ["runuser", "-u", "postgres", "--"] if as_root else []
    root = Path(tempfile.mkdtemp(prefix="workbench-pg-"))
    data = root / "data"
    if as_root:
        user = pwd.getpwnam("postgres")
        os.chown(root, user.pw_uid, user.pw_gid)
    port = free_port()
    log = root / "server.log"

    def run(*cmd):
        done = subprocess.run([*runas, *cmd], capture_output=True, text=True)
        if done.returncode:
            raise RuntimeError(f"{' '.join(cmd)} failed ({done.returncode}): {done.stdout}\n{done.stderr}")

    try:
        run(str(bindir / "initdb"), "-D", str(data), "-U", SUPERUSER, "--auth=trust", "-E", "UTF8",
            "--locale=C", "--no-sync")
        options = f"-p {port} -h 127.0.0.1 -k {root} -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        run(str(bindir / "pg_ctl"), "-D", str(data), "-l", str(log), "-o", options, "-w", "-t", "60", "start")
        try:
            run(str(bindir / "createdb"), "-h", "127.0.0.1", "-p", str(port), "-U", SUPERUSER, database)
            yield f"postgresql+psycopg://{SUPERUSER}@127.0.0.1:{port}/{database}"
        finally:
            subprocess.run([*runas, str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop"],
                           capture_output=True)
    finally:
        shutil.rmtree(root, ignore_errors=True)


# The demo retailer in a schema that is not ours: other table and column names, integer keys where the
# demo has coded text ids, native booleans, dates and timestamps with time zone (tests/sources/demo_postgres.yml
# maps it back).
RETAIL_DDL = """
CREATE SCHEMA retail;
CREATE TABLE retail.company (code text PRIMARY KEY, display_name text NOT NULL, currency_code char(3) NOT NULL,
                             country text, recommendations_on boolean NOT NULL);
CREATE TABLE retail.shop (shop_code text PRIMARY KEY, company text NOT NULL, shop_name text NOT NULL, kind text NOT NULL,
                          town text, country text);
CREATE TABLE retail.item_group (group_no integer PRIMARY KEY, group_code text NOT NULL, group_name text NOT NULL);
CREATE TABLE retail.item (item_code text PRIMARY KEY, title text NOT NULL, group_no integer, list_price double precision,
                          item_kind text NOT NULL);
CREATE TABLE retail.client (client_no integer PRIMARY KEY, company text NOT NULL, full_name text, tier text,
                            home_shop text, joined_on date);
CREATE TABLE retail.receipt (company text NOT NULL, receipt_no bigint NOT NULL, shop_code text NOT NULL, client_no integer,
                             sold_at timestamptz NOT NULL, state text NOT NULL, PRIMARY KEY (company, receipt_no));
CREATE TABLE retail.receipt_line (company text NOT NULL, receipt_no bigint NOT NULL, line_no integer NOT NULL,
                                  item_code text, line_text text, qty double precision NOT NULL,
                                  price double precision NOT NULL, kind text NOT NULL);
CREATE TABLE retail.wish (client_no integer NOT NULL, item_code text NOT NULL, added timestamptz NOT NULL);
CREATE INDEX receipt_time ON retail.receipt (company, sold_at);
CREATE INDEX receipt_line_receipt ON retail.receipt_line (company, receipt_no);
"""


def _client_no(customer_id):
    return None if customer_id is None else int(customer_id[1:])


def load_demo_retailer(sqlite_path, url: str) -> dict[str, int]:
    """Copy the demo retailer's operational database into PostgreSQL, in the `retail` schema above."""
    import sqlite3

    import psycopg

    src = sqlite3.connect(sqlite_path)
    q = lambda sql: src.execute(sql).fetchall()  # noqa: E731
    groups = {code: n for n, (code,) in enumerate(q("SELECT id FROM product_categories ORDER BY id"), start=1)}
    utc = lambda t: None if t is None else f"{t}+00"  # noqa: E731 - the demo's naive times are UTC
    rows = {
        "company": [(i, n, c, k, bool(e)) for i, n, c, k, e in
                    q("SELECT id, name, currency, country, pos_recommendations_enabled FROM legal_entities")],
        "shop": q("SELECT id, legal_entity_id, name, channel, city, country FROM stores"),
        "item_group": [(groups[i], i, n) for i, n in q("SELECT id, name FROM product_categories")],
        "item": [(i, n, groups.get(c), p, t) for i, n, c, p, t in
                 q("SELECT id, name, category_id, list_price, product_type FROM products")],
        "client": [(_client_no(i), e, n, t, h, d) for i, e, n, t, h, d in
                   q("SELECT id, legal_entity_id, name, loyalty_tier, home_store_id, signup_date FROM customers")],
        "receipt": [(i[:4], int(i[5:]), s, _client_no(c), utc(t), st) for i, s, c, t, st in
                    q("SELECT id, store_id, customer_id, transaction_time, status FROM sales_transactions")],
        "receipt_line": [(t[:4], int(t[5:]), n, p, d, qty, price, k) for t, n, p, d, qty, price, k in
                         q("SELECT transaction_id, line_number, product_id, description, quantity, unit_price, line_type "
                           "FROM sales_lines")],
        "wish": [(_client_no(c), p, utc(a)) for c, p, a in
                 q("SELECT wl.customer_id, wi.product_id, wi.added_at FROM wish_list_items wi "
                   "JOIN wish_lists wl ON wl.id = wi.wish_list_id")],
    }
    src.close()
    with psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://")) as conn:
        conn.execute(RETAIL_DDL)
        for table, data in rows.items():
            with conn.cursor().copy(f"COPY retail.{table} FROM STDIN") as copy:
                for row in data:
                    copy.write_row(row)
        conn.execute("ANALYZE")
    return {table: len(data) for table, data in rows.items()}
