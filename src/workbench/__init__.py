"""POS recommendations workbench: retail sales data to point-of-sale recommendations."""

__version__ = "0.1.0"
