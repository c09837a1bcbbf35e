"""The UCI Online Retail file (csv, csv.gz or the original xlsx) as an entity store.

A UK online gift retailer, 2010-12 to 2011-12. Every row of the file becomes one sales line
(cancellations, adjustments, postage and duplicates included): cleansing, not reading,
decides what counts. The mapping is documented in `docs/schema.md`.
"""

from __future__ import annotations

import gzip
import io
import os
from pathlib import Path

import polars as pl

from workbench import paths
from legacy.extract_v1 import (
    CUSTOMERS_SCHEMA,
    PRODUCTS_SCHEMA,
    SALES_LINES_SCHEMA,
    STORES_SCHEMA,
    WISH_LISTS_SCHEMA,
    ExtractionError,
    parse_window,
    window_text,
    write_entity_store,
)

COLUMNS = ("InvoiceNo", "StockCode", "Description", "Quantity", "InvoiceDate", "UnitPrice", "CustomerID", "Country")
# ISO is what ../shared ships; the month-first layout is how other copies of the data set spell it.
DATE_FORMATS = ("%Y-%m-%d %H:%M:%S", "%Y-%m-%d %H:%M", "%m/%d/%Y %H:%M", "%m/%d/%Y %H:%M:%S")

# Stock codes that are not goods on a shelf, and what they are.
NON_MERCHANDISE_CODES = {
    "POST": "fee",  # postage
    "DOT": "fee",  # dotcom postage
    "C2": "fee",  # carriage
    "BANK CHARGES": "fee",
    "AMAZONFEE": "fee",
    "CRUK": "fee",  # charity commission
    "M": "adjustment",  # manual correction
    "B": "adjustment",  # bad debt
    "PADS": "adjustment",  # a 0.001 pseudo-item used to balance invoices
    "S": "sample",
    "D": "discount",
}
NON_MERCHANDISE_PREFIXES = {"GIFT_": "gift_card", "DCGS": "other"}  # vouchers; dotcom-shop one-offs and eBay lines

# A coarse category from the product name: the first rule with a word of the name wins.
CATEGORY_KEYWORDS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("Christmas", ("CHRISTMAS", "XMAS", "ADVENT", "SANTA", "REINDEER", "SNOWFLAKE", "BAUBLE", "NATIVITY")),
    ("Candles & lights", ("CANDLE", "CANDLES", "T-LIGHT", "T-LIGHTS", "TEALIGHT", "LANTERN", "LIGHT", "LIGHTS", "NIGHTLIGHT", "LAMP")),
    ("Jewellery", ("NECKLACE", "BRACELET", "EARRINGS", "RING", "CHARM", "BROOCH", "DIAMANTE", "HAIRCLIP", "HAIR")),
    ("Bags & purses", ("BAG", "BAGS", "SHOPPER", "PURSE", "TOTE", "RUCKSACK", "BACKPACK", "HANDBAG")),
    ("Textiles", ("CUSHION", "TOWEL", "BLANKET", "THROW", "SCARF", "GLOVES", "DOORMAT", "QUILT", "SLIPPERS", "WARMER", "APRON",
                  "HOT WATER BOTTLE")),
    ("Kitchen & dining", ("MUG", "MUGS", "CUP", "CUPS", "SAUCER", "BOWL", "BOWLS", "PLATE", "PLATES", "CUTLERY", "TEAPOT", "JUG",
                          "TRAY", "CAKE", "CAKES", "CAKESTAND", "BAKING", "LUNCH", "TIN", "TINS", "JAR", "JARS", "DISH", "SPOON",
                          "SPOONS", "GLASS", "COASTER", "COASTERS", "APRON", "TEA", "COFFEE", "STRAWS", "BOTTLE", "CUTTERS",
                          "NAPKINS", "PANTRY", "KITCHEN", "CASES")),
    ("Party & gift wrap", ("WRAP", "CARD", "CARDS", "RIBBON", "RIBBONS", "PARTY", "BALLOON", "BALLOONS", "BUNTING", "GARLAND",
                           "TISSUES", "CONFETTI", "GIFT", "ENVELOPE")),
    ("Stationery", ("NOTEBOOK", "PENCIL", "PENCILS", "PEN", "PENS", "STICKERS", "STICKER", "ERASER", "TAPE", "JOURNAL",
                    "NOTEPAD", "CALENDAR", "BOOK", "ORGANISER", "PAPER", "CRAYONS", "CHALK", "STATIONERY", "RULER")),
    ("Toys & games", ("TOY", "TOYS", "GAME", "GAMES", "DOLL", "DOLLY", "PUZZLE", "JIGSAW", "SKIPPING", "DOMINOES", "PLAYHOUSE",
                      "SPACEBOY", "SOLDIER", "TEDDY", "BLOCKS", "KIT")),
    ("Garden & outdoor", ("GARDEN", "PLANT", "PLANTER", "WATERING", "BIRD", "BIRDHOUSE", "SEED", "SEEDS", "HERB", "POT", "POTS",
                          "PICNIC", "PARASOL", "UMBRELLA")),
    ("Bath & beauty", ("SOAP", "BATH", "BATHROOM", "COMPACT", "MIRROR", "COSMETIC", "MAKE", "TOILETRY", "SPONGE")),
    ("Home decor", ("HOLDER", "FRAME", "SIGN", "CLOCK", "HOOK", "HOOKS", "VASE", "WREATH", "HANGER", "HANGERS", "CABINET",
                    "DRAWER", "DECORATION", "ORNAMENT", "HEART", "PLAQUE", "STAND", "SHELF", "DOORSTOP", "COVER", "BASKET",
                    "BOX", "BOXES", "CHALKBOARD", "MAGNET", "MAGNETS", "BELL", "BELLS", "DOORSIGN", "FLOWER", "FLOWERS",
                    "STORAGE", "CRATE", "DECORATIVE", "MOBILE", "WALL", "PHOTO")),
)
NON_MERCHANDISE_CATEGORY = "Non-merchandise"
OTHER_CATEGORY = "Other"
LEGAL_ENTITY_INFO = {"name": "UCI Online Retail (UK online gift retailer)", "currency": "GBP", "pos_recommendations_enabled": True}


# --------------------------------------------------------------------------- reading the file


def _read_raw(path: Path) -> pl.DataFrame:
    """All eight columns as text (so a bad value is reported by column, not guessed at)."""
    name = path.name.lower()
    if not path.exists():
        raise ExtractionError(f"Online Retail file {path} does not exist")
    if not path.is_file():
        raise ExtractionError(f"Online Retail file {path} is not a file")
    try:
        if name.endswith((".xlsx", ".xlsm")):
            import pandas as pd  # openpyxl through pandas copes with the original's mixed-type columns

            pdf = pd.read_excel(path, engine="openpyxl", dtype=object)
            df = pl.DataFrame({str(c): [None if pd.isna(v) else str(v) for v in pdf[c].tolist()] for c in pdf.columns},
                              schema={str(c): pl.String for c in pdf.columns})
        elif name.endswith(".gz"):
            # Decompressed here because gzip notices a truncated file, where a streaming reader
            # may quietly return the rows it got before the break.
            df = pl.read_csv(io.BytesIO(gzip.decompress(path.read_bytes())), infer_schema=False, encoding="utf8-lossy")
        elif name.endswith((".csv", ".txt")):
            df = pl.read_csv(path, infer_schema=False, encoding="utf8-lossy")
        else:
            raise ExtractionError(f"Online Retail file {path}: unknown format (expected .csv, .csv.gz or .xlsx)")
    except ExtractionError:
        raise
    except Exception as exc:  # polars, gzip, zip and openpyxl each raise their own kinds
        raise ExtractionError(f"cannot read Online Retail file {path}: {type(exc).__name__}: {exc}") from exc
    df = df.rename({c: c.strip().lstrip("\ufeff") for c in df.columns})
    missing = [c for c in COLUMNS if c not in df.columns]
    if missing:
        raise ExtractionError(
            f"Online Retail file {path} lacks column(s) {', '.join(missing)} (it has: {', '.join(df.columns) or 'none'})"
        )
    return df.select(pl.col(c).cast(pl.String) for c in COLUMNS)


def _typed(raw: pl.DataFrame, path: Path) -> pl.DataFrame:
    """Numbers and times typed; a value that does not parse is an error naming the column and the row."""
    s = pl.col
    typed = raw.with_row_index("_row").with_columns(
        InvoiceNo=s("InvoiceNo").str.strip_chars(),
        StockCode=s("StockCode").str.strip_chars(),
        Quantity=s("Quantity").str.strip_chars().cast(pl.Float64, strict=False),
        UnitPrice=s("UnitPrice").str.strip_chars().cast(pl.Float64, strict=False),
        InvoiceDate=_parse_dates(raw["InvoiceDate"]),
        # CustomerID comes as 17850.0 from spreadsheets; the id is 17850.
        CustomerID=s("CustomerID").str.strip_chars().str.replace(r"^(\d+)\.0*$", "${1}").replace("", None),
        Country=s("Country").str.strip_chars(),
        _raw_date=s("InvoiceDate"), _raw_qty=s("Quantity"), _raw_price=s("UnitPrice"),
    )
    for col, raw_col, required in (("InvoiceDate", "_raw_date", True), ("Quantity", "_raw_qty", True),
                                   ("UnitPrice", "_raw_price", True), ("InvoiceNo", "InvoiceNo", True)):
        bad = typed.filter(s(col).is_null() & (s(raw_col).is_not_null() | required))
        if bad.height:
            examples = ", ".join(f"row {r + 2}: {v!r}" for r, v in bad.select("_row", raw_col).head(3).iter_rows())
            raise ExtractionError(f"Online Retail file {path}: {bad.height} row(s) with an unreadable {col} ({examples})")
    return typed.drop("_raw_date", "_raw_qty", "_raw_price")


def _parse_dates(text: pl.Series) -> pl.Series:
    """The first layout in DATE_FORMATS that reads a value wins; only the leftovers try the next one."""
    text = text.str.strip_chars()
    out = text.str.strptime(pl.Datetime("us"), DATE_FORMATS[0], strict=False)
    for fmt in DATE_FORMATS[1:]:
        todo = out.is_null() & text.is_not_null()
        if not todo.any():
            break
        out = pl.select(pl.when(todo).then(text.str.strptime(pl.Datetime("us"), fmt, strict=False)).otherwise(out)).to_series()
    return out.alias("InvoiceDate")


def _slug(col: pl.Expr) -> pl.Expr:
    return col.fill_null("unspecified").str.to_lowercase().str.replace_all(r"[^a-z0-9]+", "-").str.strip_chars("-")


def _product_type(code: pl.Expr) -> pl.Expr:
    upper = code.str.to_uppercase()
    expr = pl.when(upper.is_in(list(NON_MERCHANDISE_CODES))).then(upper.replace(NON_MERCHANDISE_CODES))
    for prefix, kind in NON_MERCHANDISE_PREFIXES.items():
        expr = expr.when(upper.str.starts_with(prefix)).then(pl.lit(kind))
    return expr.otherwise(pl.lit("merchandise"))


def _category(name: pl.Expr) -> pl.Expr:
    upper = name.str.to_uppercase()
    expr = None
    for category, words in CATEGORY_KEYWORDS:
        pattern = r"(?:^|[^A-Z-])(?:" + "|".join(w.replace("-", r"\-") for w in words) + r")(?:$|[^A-Z-])"
        cond = upper.str.contains(pattern)
        expr = pl.when(cond).then(pl.lit(category)) if expr is None else expr.when(cond).then(pl.lit(category))
    return expr.otherwise(pl.lit(OTHER_CATEGORY))


def read_online_retail(path: str | os.PathLike) -> dict[str, pl.DataFrame]:
    """The file as entity-store tables: sales_lines (every row), products, customers, stores, wish_lists."""
    path = Path(path)
    df = _typed(_read_raw(path), path)
    s = pl.col
    sales_lines = df.select(
        transaction_id=s("InvoiceNo"),
        line_number=(pl.int_range(pl.len()).over("InvoiceNo") + 1).cast(pl.Int64),
        store_id=pl.lit("online-") + _slug(s("Country")),
        channel=pl.lit("online"),
        customer_id=s("CustomerID"),
        product_id=s("StockCode"),
        description=s("Description"),
        quantity=s("Quantity"),
        unit_price=s("UnitPrice"),
        transaction_time=s("InvoiceDate"),
        transaction_type=pl.when(s("InvoiceNo").str.starts_with("C")).then(pl.lit("cancellation"))
        .when(s("InvoiceNo").str.starts_with("A")).then(pl.lit("adjustment"))
        .otherwise(pl.lit("sale")),
    )

    described = df.select("StockCode", name=s("Description").str.strip_chars()).filter(s("name").is_not_null() & (s("name") != ""))
    names = (described.group_by("StockCode", "name").len()
             .sort(["StockCode", "len", "name"], descending=[False, True, False])
             .group_by("StockCode", maintain_order=True).first().select("StockCode", "name"))
    prices = df.filter(s("UnitPrice") > 0).group_by("StockCode").agg(price=s("UnitPrice").median())
    products = (
        df.select("StockCode").unique().sort("StockCode")
        .join(names, on="StockCode", how="left").join(prices, on="StockCode", how="left")
        .with_columns(name=s("name").fill_null(s("StockCode")), product_type=_product_type(s("StockCode")))
        .with_columns(category=pl.when(s("product_type") == "merchandise").then(_category(s("name")))
                      .otherwise(pl.lit(NON_MERCHANDISE_CATEGORY)))
        .select(product_id="StockCode", name="name", category="category", price="price", product_type="product_type")
    )

    country = df.select("CustomerID", "Country", store_id=pl.lit("online-") + _slug(s("Country")))
    customers = (
        country.filter(s("CustomerID").is_not_null())
        .group_by("CustomerID", "store_id").len()
        .sort(["CustomerID", "len", "store_id"], descending=[False, True, False])
        .group_by("CustomerID", maintain_order=True).first()
        .select(customer_id="CustomerID", name=pl.lit(None, pl.String), loyalty_tier=pl.lit(None, pl.String),
                home_store_id="store_id", signup_date=pl.lit(None, pl.Date))
    )
    stores = (
        country.group_by("store_id").agg(country=s("Country").drop_nulls().mode().sort().first())
        .sort("store_id")
        .select("store_id", name=pl.lit("Online store (") + s("country").fill_null("Unspecified") + pl.lit(")"),
                channel=pl.lit("online"), city=pl.lit(None, pl.String), country="country")
    )
    tables = {
        "sales_lines": sales_lines, "products": products, "customers": customers, "stores": stores,
        "wish_lists": pl.DataFrame(schema=WISH_LISTS_SCHEMA),
    }
    schemas = {"sales_lines": SALES_LINES_SCHEMA, "products": PRODUCTS_SCHEMA, "customers": CUSTOMERS_SCHEMA,
               "stores": STORES_SCHEMA, "wish_lists": WISH_LISTS_SCHEMA}
    return {name: df.select(pl.col(c).cast(t) for c, t in schemas[name].items()) for name, df in tables.items()}


def extract_online_retail(
    path: str | os.PathLike,
    legal_entity: str = "online_retail",
    *,
    start=None,
    end=None,
    incremental: bool = True,
    out_dir: str | os.PathLike | None = None,
) -> dict:
    """Write the file's entity store under `paths.raw_dir(legal_entity)`, like `extract_entity_store`.

    The window [start, end) filters sales lines on InvoiceDate; dimensions come from the whole file.
    """
    lo, hi = parse_window(start, end)
    paths.check_legal_entity(legal_entity)
    tables = read_online_retail(path)
    lines = tables.pop("sales_lines")
    t = pl.col("transaction_time")
    in_window = lines.filter((t >= lo) if lo is not None else pl.lit(True)).filter((t < hi) if hi is not None else pl.lit(True))
    if in_window.height == 0:
        first, last = lines["transaction_time"].min(), lines["transaction_time"].max()
        raise ExtractionError(
            f"legal entity {legal_entity!r} has no sales lines in {window_text(lo, hi)} in {path} "
            f"(its invoices span {first} to {last})"
        )
    return write_entity_store(
        legal_entity, sales_lines=in_window, legal_entity_info={"legal_entity_id": legal_entity, **LEGAL_ENTITY_INFO},
        source=str(Path(path)), window=(lo, hi), incremental=incremental, out_dir=out_dir, **tables,
    )
