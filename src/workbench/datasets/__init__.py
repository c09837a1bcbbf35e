"""Where the workbench's data comes from: the embedded demo retailer, extraction of an
operational database into the entity store, and the UCI Online Retail file."""

from workbench.datasets.demo import generate_demo_retailer
from workbench.datasets.extract import ExtractionError, extract_entity_store, read_sales_lines
from workbench.datasets.online_retail import extract_online_retail, read_online_retail

__all__ = [
    "ExtractionError",
    "extract_entity_store",
    "extract_online_retail",
    "generate_demo_retailer",
    "read_online_retail",
    "read_sales_lines",
]
