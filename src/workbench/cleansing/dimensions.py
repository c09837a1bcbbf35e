"""Cleansing of the dimension tables: products (the catalog), customers, stores, wish lists."""

from __future__ import annotations

import polars as pl

from workbench.cleansing.frames import Splitter, blank, fmt
from workbench.cleansing.rules import CleansingRules


def non_merchandise_code(rules: CleansingRules, column: str = "product_id") -> pl.Expr:
    """True where the code is one of `rules.non_merchandise_codes` (exact, or prefix for 'xxx*')."""
    expr = pl.col(column).is_in(rules.exact_non_merchandise_codes)
    for prefix in rules.non_merchandise_prefixes:
        expr = expr | pl.col(column).str.starts_with(prefix)
    return expr


def first_of_each(keys: str | list[str]) -> pl.Expr:
    """True on the first row of each key (in frame order)."""
    keys = [keys] if isinstance(keys, str) else keys
    return (pl.struct(keys) if len(keys) > 1 else pl.col(keys[0])).is_first_distinct()


def cleanse_products(products: pl.DataFrame, rules: CleansingRules) -> Splitter:
    """The catalog. A product without a name or a catalog price is kept: its sales still teach the
    recommenders (an export of basket lines, or of orders, often names neither), and the POS and the
    dashboard show its id; a price that cannot be one (NaN, negative) is rejected."""
    s = Splitter("products", products, products.columns)
    s.reject("missing_product_id", blank("product_id"), "The product has no product id.")
    s.reject(
        "invalid_price",
        pl.col("price").is_nan() | (pl.col("price") < 0),
        fmt("Product {} has a price that cannot be one ({}).", "product_id", "price"),
    )
    s.reject(
        "duplicate_product_id",
        ~first_of_each("product_id"),
        fmt("Product id {} appears more than once in products; the first valid row is kept.", "product_id"),
    )
    s.reject(
        "non_merchandise",
        non_merchandise_code(rules) | (pl.col("product_type") != "merchandise") | pl.col("product_type").is_null(),
        pl.when(non_merchandise_code(rules))
        .then(fmt("Product {} is a non-merchandise code (fee, postage, voucher or adjustment).", "product_id"))
        .otherwise(fmt("Product {} has product_type '{}', not 'merchandise'.", "product_id", "product_type")),
        enabled=rules.drop_non_merchandise,
    )
    return s


def _cleanse_by_id(table: str, frame: pl.DataFrame, id_column: str, noun: str) -> Splitter:
    """A dimension keyed by one id: rows without it, then repeats of it (the first row is kept)."""
    s = Splitter(table, frame, frame.columns)
    s.reject(f"missing_{id_column}", blank(id_column), f"The {noun} has no {noun} id.")
    s.reject(
        f"duplicate_{id_column}",
        ~first_of_each(id_column),
        fmt(f"{noun.capitalize()} id {{}} appears more than once in {table}; the first row is kept.", id_column),
    )
    return s


def cleanse_customers(customers: pl.DataFrame) -> Splitter:
    return _cleanse_by_id("customers", customers, "customer_id", "customer")


def cleanse_stores(stores: pl.DataFrame) -> Splitter:
    return _cleanse_by_id("stores", stores, "store_id", "store")


def cleanse_wish_lists(wish_lists: pl.DataFrame, customer_ids: pl.Series, product_ids: pl.Series) -> Splitter:
    """`customer_ids` / `product_ids`: the kept customers and the cleansed catalog."""
    s = Splitter("wish_lists", wish_lists, wish_lists.columns)
    s.reject(
        "missing_value",
        blank("customer_id") | blank("product_id") | pl.col("added_at").is_null(),
        fmt("Wish list item misses its customer, product or time (customer {}, product {}, added {}).",
            "customer_id", "product_id", "added_at"),
    )
    s.reject(
        "unknown_customer",
        ~pl.col("customer_id").is_in(customer_ids.implode()),
        fmt("Customer {} is not a known (cleansed) customer.", "customer_id"),
    )
    s.reject(
        "unknown_product",
        ~pl.col("product_id").is_in(product_ids.implode()),
        fmt("Product {} is not in the cleansed catalog.", "product_id"),
    )
    s.reject(
        "duplicate_wish_list_item",
        ~first_of_each(["customer_id", "product_id"]),
        fmt("Customer {} has product {} on the wish list more than once; the first is kept.",
            "customer_id", "product_id"),
    )
    return s
