"""The extraction code as it was before source mappings (commit b1fa35e), frozen: the reference that
tests/test_sources.py compares the mapped extraction with, row for row. Never used outside the tests."""
