"""The cleansing parameters (`CleansingRules`) and the catalogue of rules, in the order they apply.

Every rejected row is attributed to exactly one rule: the first one, in the order below, that
rejects it. The order is deliberate:

sales_lines
 1. ``missing_value``        structural: null transaction_id, transaction_time, quantity or unit_price
                             (always on: such a line cannot become an interaction)
 2. ``invalid_value``        quantity, unit price or their product not finite (inf, NaN from overflow), or
                             quantity above `max_line_quantity` (a typo or a corrupt export, not a sale)
 3. ``future_time``          dated after the extraction that read it (`as_of`): a clock or typing error that
                             would otherwise move the test window and the recency of every model
 4. ``cancellation``         the whole transaction is not a sale (type cancellation/void/adjustment, or an
                             id with one of `cancellation_id_prefixes`); checked before the line-level
                             rules so that a cancellation line is counted as a cancellation, not as a return
 5. ``return``               type return, or quantity <= 0
 6. ``non_positive_price``   unit_price <= 0
 7. ``missing_product``      null product_id
 8. ``non_merchandise``      stock code in `non_merchandise_codes`, or catalog product_type != merchandise
 9. ``unknown_product``      product id not in the cleansed catalog (absent from products, or quarantined there)
10. ``duplicate_line``       exact duplicate of an earlier line (all columns but line_number equal)
11. ``merged_duplicate_product_line``  a further line of the same (transaction, product): merged into the
                             first line of that pair, quantities and amounts summed (always on: the
                             interactions hold one row per basket and product)
12. ``max_basket_size``      the basket has more distinct products than `max_basket_size` (B2B-like outlier)
13. ``min_item_support``     the product is in fewer than `min_item_support` baskets
14. ``min_customer_baskets`` the (identified) customer has fewer than `min_customer_baskets` baskets;
                             anonymous baskets are not affected
Rules 12-14 are applied together, repeatedly, until nothing more is removed (dropping a basket can
lower a product's support and the other way round), so that cleansing cleansed data changes nothing.

Reconciliation of sales_lines: rows in = interactions out + rows quarantined under rules 1-14,
where rule 11 counts the lines merged away (each interaction is the first line of its pair).

The dimension tables are cleansed first (the sales-line rules 8 and 9 look at the cleansed catalog):
products  ``missing_product_id``, ``invalid_price`` (NaN or negative; a product without a name or a
          price is kept: its sales still teach the recommenders, and its id is shown),
          ``duplicate_product_id`` (among the valid rows; the first is kept), ``non_merchandise``
customers ``missing_customer_id``, ``duplicate_customer_id`` (first kept)
stores    ``missing_store_id``, ``duplicate_store_id`` (first kept)
wish_lists ``missing_value`` (null customer, product or time), ``unknown_customer``, ``unknown_product``,
          ``duplicate_wish_list_item`` (same customer and product; first kept)
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Mapping

#: Extra product codes to treat as non-merchandise, none by default: which products are postage, fees,
#: vouchers or adjustments is the source's to say, in the entity store's product_type (a retailer's
#: source mapping declares it, e.g. configs/sources/online_retail.yml). A trailing '*' makes an entry a prefix.
DEFAULT_NON_MERCHANDISE_CODES: tuple[str, ...] = ()

#: transaction_type values meaning the transaction is not a sale at all.
CANCELLATION_TYPES: tuple[str, ...] = ("cancellation", "void", "adjustment")

#: Rule names per table, in the order they apply (see the module docstring).
RULES: dict[str, tuple[str, ...]] = {
    "sales_lines": (
        "missing_value", "invalid_value", "future_time", "cancellation", "return", "non_positive_price", "missing_product",
        "non_merchandise", "unknown_product", "duplicate_line", "merged_duplicate_product_line",
        "max_basket_size", "min_item_support", "min_customer_baskets",
    ),
    "products": (
        "missing_product_id", "invalid_price", "duplicate_product_id", "non_merchandise",
    ),
    "customers": ("missing_customer_id", "duplicate_customer_id"),
    "stores": ("missing_store_id", "duplicate_store_id"),
    "wish_lists": ("missing_value", "unknown_customer", "unknown_product", "duplicate_wish_list_item"),
}

TABLES: tuple[str, ...] = tuple(RULES)


def _check_bool(name: str, value: Any) -> None:
    if not isinstance(value, bool):
        raise ValueError(f"CleansingRules.{name} must be True or False, got {value!r}")


def _check_count(name: str, value: Any, *, optional: bool) -> None:
    if optional and value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        none = " or None (off)" if optional else ""
        raise ValueError(f"CleansingRules.{name} must be an integer >= 1{none}, got {value!r}")


@dataclass(frozen=True)
class CleansingRules:
    """Parameters of the cleansing notebook; with an entity store whose mapping types its transactions and
    products (as the shipped ones do), the defaults reproduce ../shared/EVALUATION.md."""

    #: drop transactions of type cancellation/void/adjustment (the source mapping sets the type); where a
    #: store's types cannot be trusted, also ids made of one of `cancellation_id_prefixes` followed by
    #: digits, on data whose transaction ids are mostly numeric (none by default)
    drop_cancellations: bool = True
    cancellation_id_prefixes: tuple[str, ...] = ()
    #: drop lines of type return and lines with quantity <= 0
    drop_returns: bool = True
    #: drop lines with unit_price <= 0
    drop_non_positive_price: bool = True
    #: drop fees, postage, vouchers: codes below (exact, or prefix when ending with '*') and catalog
    #: products whose product_type is not 'merchandise'
    drop_non_merchandise: bool = True
    non_merchandise_codes: tuple[str, ...] = DEFAULT_NON_MERCHANDISE_CODES
    #: drop exact duplicate lines (lines are then merged to one per basket and product in any case)
    drop_duplicates: bool = True
    #: drop lines whose product id is not in the cleansed catalog
    drop_unknown_products: bool = True
    #: drop lines without a product id
    drop_missing_product: bool = True
    #: drop products bought in fewer than N baskets (1 = off)
    min_item_support: int = 1
    #: drop baskets with more than N distinct products (B2B-like outliers; None = off)
    max_basket_size: int | None = None
    #: drop the baskets of identified customers with fewer than N baskets (None = off)
    min_customer_baskets: int | None = None
    #: lines with more units than this are corrupt, not sales (None = only non-finite values are rejected);
    #: no till sells a million units of one product on one line, while wholesale lines of tens of
    #: thousands are real (Online Retail has one of 80,995)
    max_line_quantity: float | None = 1_000_000.0

    def __post_init__(self) -> None:
        # papermill and YAML hand lists over; keep the dataclass hashable and immutable
        for name in ("cancellation_id_prefixes", "non_merchandise_codes"):
            value = getattr(self, name)
            if isinstance(value, str) or not isinstance(value, (list, tuple)):
                raise ValueError(f"CleansingRules.{name} must be a list of strings, got {value!r}")
            bad = [v for v in value if not isinstance(v, str) or not v or not v.rstrip("*")]
            if bad:
                raise ValueError(f"CleansingRules.{name} must hold non-empty strings, got {bad!r}")
            object.__setattr__(self, name, tuple(value))
        misplaced = [c for c in self.non_merchandise_codes if "*" in c.rstrip("*") or c.endswith("**")]
        if misplaced:
            raise ValueError(
                "CleansingRules.non_merchandise_codes: '*' is only allowed once, at the end of a code "
                f"(a prefix pattern), got {misplaced!r}"
            )
        for name in ("drop_cancellations", "drop_returns", "drop_non_positive_price", "drop_non_merchandise",
                     "drop_duplicates", "drop_unknown_products", "drop_missing_product"):
            _check_bool(name, getattr(self, name))
        _check_count("min_item_support", self.min_item_support, optional=False)
        _check_count("max_basket_size", self.max_basket_size, optional=True)
        _check_count("min_customer_baskets", self.min_customer_baskets, optional=True)
        if self.max_line_quantity is not None and (
            isinstance(self.max_line_quantity, bool) or not isinstance(self.max_line_quantity, (int, float))
            or not self.max_line_quantity > 0 or self.max_line_quantity == float("inf")
        ):
            raise ValueError(
                f"CleansingRules.max_line_quantity must be a positive finite number or None (off), "
                f"got {self.max_line_quantity!r}"
            )

    @classmethod
    def from_mapping(cls, params: Mapping[str, Any] | None = None, **overrides: Any) -> "CleansingRules":
        """Build from notebook parameters; unknown names are an error naming them."""
        merged = {**(params or {}), **overrides}
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(merged) - known)
        if unknown:
            raise TypeError(f"unknown cleansing parameter(s) {unknown}; known: {sorted(known)}")
        return cls(**merged)

    def replace(self, **overrides: Any) -> "CleansingRules":
        return CleansingRules.from_mapping(self.to_dict(), **overrides)

    def to_dict(self) -> dict[str, Any]:
        """Plain values (lists for tuples), e.g. to log as MLflow params."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()}

    @property
    def exact_non_merchandise_codes(self) -> list[str]:
        return [c for c in self.non_merchandise_codes if not c.endswith("*")]

    @property
    def non_merchandise_prefixes(self) -> list[str]:
        return [c.rstrip("*") for c in self.non_merchandise_codes if c.endswith("*")]

