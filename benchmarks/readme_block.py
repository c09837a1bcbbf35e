"""The README's generated blocks: each benchmark owns the lines between its two markers."""

from __future__ import annotations

from pathlib import Path


def replace_block(readme: Path, begin: str, end: str, lines: list[str]) -> None:
    """Put `lines` between the `begin` and `end` markers of `readme`; nothing else changes."""
    text = readme.read_text() if readme.exists() else ""
    if begin not in text or end not in text:
        print(f"{readme.name} has no {begin} ... {end} markers: not updated")
        return
    head, rest = text.split(begin, 1)
    _, tail = rest.split(end, 1)
    readme.write_text(head + "\n".join([begin, *lines, end]) + tail)
