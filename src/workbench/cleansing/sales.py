"""Cleansing of the sales lines into interactions (one row per basket and product) and baskets."""

from __future__ import annotations

import re
from datetime import datetime

import polars as pl

from workbench.cleansing.dimensions import non_merchandise_code
from workbench.cleansing.frames import Splitter, blank, fmt
from workbench.cleansing.rules import CANCELLATION_TYPES, CleansingRules

#: Rules 10-12 are repeated until stable; this many rounds is plenty in practice (each round only
#: removes rows, so the loop always ends; the bound just keeps a pathological input from looping long).
MAX_SUPPORT_ROUNDS = 50

_PAIR = ["transaction_id", "product_id"]


def online_retail_like(sales_lines: pl.DataFrame) -> bool:
    """Transaction ids mostly made of digits, as in the UCI Online Retail file (invoice numbers)."""
    if sales_lines.height == 0:
        return False
    share = sales_lines.select(pl.col("transaction_id").str.contains(r"^\d+$").mean()).item()
    return bool(share is not None and share >= 0.5)


def _cancellation(rules: CleansingRules, id_prefixes: bool) -> tuple[pl.Expr, pl.Expr]:
    by_type = pl.col("transaction_type").is_in(list(CANCELLATION_TYPES))
    mask, reason = by_type, fmt("Transaction {} is a {}, not a sale.", "transaction_id", "transaction_type")
    if id_prefixes and rules.cancellation_id_prefixes:
        alternatives = "|".join(re.escape(p) for p in rules.cancellation_id_prefixes)
        by_id = pl.col("transaction_id").str.contains(rf"^(?:{alternatives})\d+$")
        mask = by_type | by_id
        reason = pl.when(by_type).then(reason).otherwise(
            fmt("Transaction {} has an Online Retail cancellation/adjustment id (prefix {}), not a sale.",
                "transaction_id", pl.col("transaction_id").str.extract(rf"^({alternatives})", 1))
        )
    return mask, reason


def cleanse_sales_lines(
    sales_lines: pl.DataFrame,
    rules: CleansingRules,
    products: pl.DataFrame,
    products_quarantine: pl.DataFrame,
    catalog_ids: pl.Series,
    as_of: datetime | None = None,
) -> tuple[Splitter, pl.DataFrame]:
    """Returns the splitter (quarantine and counts) and the interactions.

    `products` is the raw products table (for product_type), `products_quarantine` its quarantine
    (to explain unknown products), `catalog_ids` the product ids of the cleansed catalog, `as_of`
    the time of the extraction that read the lines (naive UTC; lines dated later are quarantined).
    """
    columns = sales_lines.columns
    frame = prepare_lines(sales_lines.with_row_index("__row"), products, products_quarantine, catalog_ids)
    s = Splitter("sales_lines", frame, columns)
    line_rules(s, rules, as_of, online_retail_like(sales_lines))
    support_rules(s, rules)
    return s, interactions_of(s.rest)


def prepare_lines(lines: pl.DataFrame, products: pl.DataFrame, products_quarantine: pl.DataFrame,
                  catalog_ids: pl.Series) -> pl.DataFrame:
    """The lines (with their position `__row` in the entity store) in time order, with what the rules
    need to know of their product: its type, whether products has it and why it was quarantined."""
    return (
        lines.sort(["transaction_time", "transaction_id", "line_number", "__row"], nulls_last=True)
        .join(
            products.filter(pl.col("product_id").is_not_null())
            .unique("product_id", keep="first", maintain_order=True)
            .select("product_id", pl.col("product_type").alias("__product_type"), pl.lit(True).alias("__known")),
            on="product_id", how="left",
        )
        .join(
            products_quarantine.filter(pl.col("product_id").is_not_null())
            .unique("product_id", keep="first", maintain_order=True)
            .select("product_id", pl.col("rule").alias("__product_rule")),
            on="product_id", how="left",
        )
        .with_columns(pl.col("product_id").is_in(catalog_ids.implode()).alias("__in_catalog"))
    )


def line_rules(s: Splitter, rules: CleansingRules, as_of: datetime | None, id_prefixes: bool) -> None:
    """Rules 1-11 (`workbench.cleansing.rules`): each looks at one line, or at the lines of one transaction
    (`duplicate_line`, `merged_duplicate_product_line`), so any set of whole transactions can be cleansed
    apart from the rest. Leaves `s.rest` one line per (transaction, product), carrying the merged sums.
    `id_prefixes`: transaction ids read as Online Retail invoice numbers (`online_retail_like`)."""
    columns = s.columns
    s.reject(
        "missing_value",
        blank("transaction_id") | pl.col("transaction_time").is_null() | pl.col("quantity").is_null()
        | pl.col("quantity").is_nan() | pl.col("unit_price").is_null() | pl.col("unit_price").is_nan(),
        fmt("Line {} of transaction {} misses its transaction id, time, quantity or unit price.",
            "line_number", "transaction_id"),
    )
    _value_rules(s, rules, as_of)
    mask, reason = _cancellation(rules, id_prefixes)
    s.reject("cancellation", mask, reason, enabled=rules.drop_cancellations)
    s.reject(
        "return",
        (pl.col("transaction_type") == "return") | (pl.col("quantity") <= 0),
        pl.when(pl.col("transaction_type") == "return")
        .then(fmt("Transaction {} is a return.", "transaction_id"))
        .otherwise(fmt("Quantity {} is not positive (a return or a correction).", "quantity")),
        enabled=rules.drop_returns,
    )
    s.reject(
        "non_positive_price",
        pl.col("unit_price") <= 0,
        fmt("Unit price {} is not positive (free item or accounting correction).", "unit_price"),
        enabled=rules.drop_non_positive_price,
    )
    s.reject(
        "missing_product",
        blank("product_id"),
        fmt("Line {} of transaction {} has no product id.", "line_number", "transaction_id"),
        enabled=rules.drop_missing_product,
    )
    s.reject(
        "non_merchandise",
        non_merchandise_code(rules)
        | (pl.col("__known") & (pl.col("__product_type").is_null() | (pl.col("__product_type") != "merchandise"))),
        pl.when(non_merchandise_code(rules))
        .then(fmt("Product {} is a non-merchandise code (fee, postage, voucher or adjustment).", "product_id"))
        .otherwise(fmt("Product {} has product_type '{}', not 'merchandise'.", "product_id", "__product_type")),
        enabled=rules.drop_non_merchandise,
    )
    s.reject(
        "unknown_product",
        pl.col("product_id").is_not_null() & ~pl.col("__in_catalog"),
        pl.when(pl.col("__product_rule").is_not_null())
        .then(fmt("Product {} was quarantined from products ({}).", "product_id", "__product_rule"))
        .otherwise(fmt("Product {} is not in products.", "product_id")),
        enabled=rules.drop_unknown_products,
    )
    compared = [c for c in columns if c != "line_number"]
    s.reject(
        "duplicate_line",
        ~pl.struct(compared).is_first_distinct(),
        fmt("Exact duplicate of line {} of transaction {} (every column but line_number equal).",
            pl.col("line_number").first().over(pl.struct(compared)), "transaction_id"),
        enabled=rules.drop_duplicates, in_context=True,
    )

    # Merge to one line per (transaction, product): the first line stays and carries the sums.
    s.rest = s.rest.with_columns(
        pl.col("quantity").sum().over(_PAIR).alias("__quantity"),
        (pl.col("quantity") * pl.col("unit_price")).sum().over(_PAIR).alias("__amount"),
        pl.col("transaction_time").min().over(_PAIR).alias("__time"),
    )
    s.reject(
        "merged_duplicate_product_line",
        ~pl.struct(_PAIR).is_first_distinct(),
        fmt("Same product as line {} of transaction {}: merged into it (quantities and amounts summed).",
            pl.col("line_number").first().over(_PAIR), "transaction_id"),
        in_context=True,
    )


def interactions_of(rest: pl.DataFrame) -> pl.DataFrame:
    """The interactions of the lines kept (one per basket and product), in the order of `rest` (time order)."""
    return rest.select(
        "customer_id",
        pl.col("transaction_id").alias("basket_id"),
        "product_id",
        pl.col("__time").alias("time"),
        pl.col("__quantity").alias("quantity"),
        pl.col("__amount").alias("amount"),
        "store_id",
        "channel",
    )


def _value_rules(s: Splitter, rules: CleansingRules, as_of: datetime | None) -> None:
    """Values no sale can have: they would reach the interactions as amount=inf or move time to 2099."""
    amount = pl.col("quantity") * pl.col("unit_price")
    not_finite = ~pl.col("quantity").is_finite() | ~pl.col("unit_price").is_finite() | ~amount.is_finite()
    too_many = pl.lit(False) if rules.max_line_quantity is None else pl.col("quantity").abs() > rules.max_line_quantity
    s.reject(
        "invalid_value",
        not_finite | too_many,
        pl.when(not_finite)
        .then(fmt("Line {} of transaction {}: quantity {} or unit price {} is not a finite number.",
                  "line_number", "transaction_id", "quantity", "unit_price"))
        .otherwise(fmt(f"Line {{}} of transaction {{}}: quantity {{}} is above max_line_quantity="
                       f"{rules.max_line_quantity or 0:g} (a corrupt value, not a sale).",
                       "line_number", "transaction_id", "quantity")),
    )
    if as_of is not None:
        s.reject(
            "future_time",
            pl.col("transaction_time") > pl.lit(as_of, pl.Datetime("us")),
            fmt(f"Transaction {{}} is dated {{}}, after the extraction at {as_of:%Y-%m-%d %H:%M:%S} "
                "(a clock or typing error).", "transaction_id", "transaction_time"),
        )


def support_rules_on(rules: CleansingRules) -> bool:
    """Whether any of rules 12-14 is on (they count over all the interactions, not one transaction)."""
    return rules.max_basket_size is not None or rules.min_item_support > 1 or rules.min_customer_baskets is not None


def support_rules(s: Splitter, rules: CleansingRules) -> None:
    """max_basket_size, min_item_support, min_customer_baskets, repeated until nothing changes."""
    if not support_rules_on(rules):
        return
    for _ in range(MAX_SUPPORT_ROUNDS):
        removed = 0
        if rules.max_basket_size is not None:
            n_items = pl.len().over("transaction_id")
            removed += s.reject(
                "max_basket_size",
                n_items > rules.max_basket_size,
                fmt(f"Basket {{}} has {{}} distinct products, more than max_basket_size={rules.max_basket_size} "
                    "(a B2B-like outlier).", "transaction_id", n_items),
            )
        if rules.min_item_support > 1:
            n_baskets = pl.len().over("product_id")
            removed += s.reject(
                "min_item_support",
                n_baskets < rules.min_item_support,
                fmt(f"Product {{}} is in {{}} basket(s), fewer than min_item_support={rules.min_item_support}.",
                    "product_id", n_baskets),
            )
        if rules.min_customer_baskets is not None:
            n_customer = pl.col("transaction_id").n_unique().over("customer_id")
            removed += s.reject(
                "min_customer_baskets",
                pl.col("customer_id").is_not_null() & (n_customer < rules.min_customer_baskets),
                fmt(f"Customer {{}} has {{}} basket(s), fewer than min_customer_baskets={rules.min_customer_baskets}.",
                    "customer_id", n_customer),
            )
        if removed == 0:
            return


def baskets_of(interactions: pl.DataFrame) -> pl.DataFrame:
    return (
        interactions.group_by("basket_id", maintain_order=True)
        .agg(
            pl.col("customer_id").first(),
            pl.col("store_id").first(),
            pl.col("channel").first(),
            pl.col("time").min(),
            pl.col("product_id").n_unique().cast(pl.Int64).alias("n_items"),
            pl.col("quantity").sum().alias("n_units"),
            pl.col("amount").sum(),
        )
        .sort(["time", "basket_id"])
    )
