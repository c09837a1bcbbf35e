"""The operational database of the demo retailer: its DDL.

The demo generator writes these tables; extraction reads them through the `demo` source mapping
(configs/sources/demo.yml); `docs/schema.md` explains every column in the retailer's words.
"""

from __future__ import annotations

# Times are stored as ISO text ('YYYY-MM-DD HH:MM:SS', naive UTC) because SQLite has no
# datetime type; text in that shape sorts like time, so window filters work in SQL.
DDL: dict[str, str] = {
    "legal_entities": """
        CREATE TABLE legal_entities (
            id                          TEXT PRIMARY KEY,
            name                        TEXT NOT NULL,
            currency                    TEXT NOT NULL,
            country                     TEXT NOT NULL,
            pos_recommendations_enabled INTEGER NOT NULL
        )""",
    "stores": """
        CREATE TABLE stores (
            id              TEXT PRIMARY KEY,
            legal_entity_id TEXT NOT NULL REFERENCES legal_entities(id),
            name            TEXT NOT NULL,
            channel         TEXT NOT NULL,
            city            TEXT,
            country         TEXT,
            opened_on       TEXT
        )""",
    "product_categories": """
        CREATE TABLE product_categories (
            id         TEXT PRIMARY KEY,
            name       TEXT NOT NULL,
            department TEXT NOT NULL,
            season     TEXT
        )""",
    "products": """
        CREATE TABLE products (
            id           TEXT PRIMARY KEY,
            name         TEXT NOT NULL,
            category_id  TEXT NOT NULL REFERENCES product_categories(id),
            brand        TEXT,
            list_price   REAL NOT NULL,
            product_type TEXT NOT NULL,
            is_active    INTEGER NOT NULL
        )""",
    "customers": """
        CREATE TABLE customers (
            id              TEXT PRIMARY KEY,
            legal_entity_id TEXT NOT NULL REFERENCES legal_entities(id),
            name            TEXT,
            email           TEXT,
            loyalty_tier    TEXT,
            home_store_id   TEXT REFERENCES stores(id),
            signup_date     TEXT
        )""",
    "sales_transactions": """
        CREATE TABLE sales_transactions (
            id               TEXT PRIMARY KEY,
            legal_entity_id  TEXT NOT NULL REFERENCES legal_entities(id),
            store_id         TEXT NOT NULL REFERENCES stores(id),
            customer_id      TEXT REFERENCES customers(id),
            transaction_time TEXT NOT NULL,
            status           TEXT NOT NULL,
            total_amount     REAL
        )""",
    # No primary key on purpose: the real systems this imitates let exact duplicate lines
    # through (double-posted batches), and extraction must carry them to cleansing.
    "sales_lines": """
        CREATE TABLE sales_lines (
            transaction_id           TEXT NOT NULL,
            line_number              INTEGER NOT NULL,
            product_id               TEXT,
            description              TEXT,
            quantity                 REAL NOT NULL,
            unit_price               REAL NOT NULL,
            line_type                TEXT NOT NULL,
            return_of_transaction_id TEXT,
            return_of_line_number    INTEGER
        )""",
    "wish_lists": """
        CREATE TABLE wish_lists (
            id          TEXT PRIMARY KEY,
            customer_id TEXT NOT NULL REFERENCES customers(id),
            name        TEXT NOT NULL,
            created_at  TEXT NOT NULL
        )""",
    "wish_list_items": """
        CREATE TABLE wish_list_items (
            wish_list_id TEXT NOT NULL REFERENCES wish_lists(id),
            product_id   TEXT NOT NULL,
            added_at     TEXT NOT NULL
        )""",
}

INDEXES: tuple[str, ...] = (
    "CREATE INDEX ix_transactions_entity_time ON sales_transactions (legal_entity_id, transaction_time)",
    "CREATE INDEX ix_lines_transaction ON sales_lines (transaction_id)",
    "CREATE INDEX ix_customers_entity ON customers (legal_entity_id)",
    "CREATE INDEX ix_wish_list_items_list ON wish_list_items (wish_list_id)",
)

# What extraction reads from these tables, and how their statuses and line types become the entity
# store's transaction_type, is the demo source mapping's: configs/sources/demo.yml.

TIME_FORMAT = "%Y-%m-%d %H:%M:%S"
