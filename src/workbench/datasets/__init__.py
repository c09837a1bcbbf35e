"""Where the workbench's data comes from: source mappings (configs/sources/) read a retailer's database
or files into the entity store; the embedded demo retailer; the shipped Online Retail and exchange formats."""

from workbench.datasets.demo import generate_demo_retailer
from workbench.datasets.extract import ExtractionError, extract_entity_store, extract_source, read_sales_lines
from workbench.datasets.mapping import MappingError, load_mapping
from workbench.datasets.online_retail import extract_online_retail, read_online_retail

__all__ = [
    "ExtractionError",
    "MappingError",
    "extract_source",
    "extract_entity_store",
    "extract_online_retail",
    "generate_demo_retailer",
    "load_mapping",
    "read_online_retail",
    "read_sales_lines",
]
