"""Small matplotlib helpers for the notebooks.

Each returns a `matplotlib.figure.Figure` made through pyplot, so a notebook cell `fig = ...`
shows it once (inline backend); scripts and tests should `plt.close(fig)` when done.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import polars as pl
from matplotlib.figure import Figure

KEPT_COLOR = "#2e7d32"
QUARANTINED_COLOR = "#e65100"


def plot_cleansing_report(report: pl.DataFrame, *, log_scale: bool | None = None, show_zero: bool = False) -> Figure:
    """Horizontal bars of rows per rule for each table: kept (green) vs quarantined per rule (orange).

    `report` is `CleansingResult.report` (columns table, rule, rows; rules `rows_in` and `rows_kept`
    frame each table). One panel per table, the rules in the order they apply, each bar labelled
    with its count. `log_scale` defaults to on when counts span more than two orders of magnitude.
    Rules that rejected nothing are left out unless `show_zero`.
    """
    missing = {"table", "rule", "rows"} - set(report.columns)
    if missing:
        raise ValueError(f"report is missing column(s) {sorted(missing)}; expected table, rule, rows")
    panels = []
    for table in report["table"].unique(maintain_order=True).to_list():
        part = report.filter(pl.col("table") == table)
        rows_in = part.filter(pl.col("rule") == "rows_in")["rows"].sum()
        bars = [("kept", int(part.filter(pl.col("rule") == "rows_kept")["rows"].sum()), KEPT_COLOR)]
        rejected = part.filter(~pl.col("rule").is_in(["rows_in", "rows_kept"]))
        for rule, rows in rejected.select("rule", "rows").iter_rows():
            if rows or show_zero:
                bars.append((rule.replace("_", " "), int(rows), QUARANTINED_COLOR))
        panels.append((table, int(rows_in), bars))

    counts = [n for _, _, bars in panels for _, n, _ in bars if n > 0]
    if log_scale is None:
        log_scale = bool(counts) and max(counts) / max(min(counts), 1) > 100
    heights = [max(len(bars), 1) * 0.38 + 0.7 for _, _, bars in panels]
    fig = plt.figure(figsize=(9, max(sum(heights), 2.5)))
    # a log axis is shared by the panels: one scale to compare tables, and sane ticks on tiny tables
    axes = fig.subplots(len(panels), 1, squeeze=False, sharex=log_scale, gridspec_kw={"height_ratios": heights})
    top = max(counts + [1])
    for ax, (table, rows_in, bars) in zip(axes[:, 0], panels):
        labels = [label for label, _, _ in bars][::-1]
        values = [n for _, n, _ in bars][::-1]
        colors = [color for _, _, color in bars][::-1]
        positions = range(len(bars))
        ax.barh(list(positions), values, color=colors)
        ax.set_yticks(list(positions), labels, fontsize=9)
        if log_scale:
            ax.set_xscale("log")
        share = (lambda v: f" ({v / rows_in:.1%})") if rows_in else (lambda v: "")
        for y, value in zip(positions, values):
            ax.annotate(f" {value:,}{share(value)}", (max(value, 0.7) if log_scale else value, y),
                        va="center", fontsize=8)
        if log_scale:
            ax.set_xlim(0.7, top * 8)
        else:
            ax.set_xlim(0, max(values + [1]) * 1.35)
        ax.set_title(f"{table}: {rows_in:,} row{'' if rows_in == 1 else 's'} in", loc="left", fontsize=10)
        ax.spines[["top", "right"]].set_visible(False)
    axes[-1, 0].set_xlabel("rows" + (" (log scale)" if log_scale else ""))
    fig.suptitle("Cleansing: rows kept and quarantined per rule", fontsize=11)
    fig.tight_layout()
    return fig


def plot_gains_per_page(table, labels, *, pages, xlabel: str, title: str, panel_width: float = 4.0,
                        row_height: float = 0.5, ticks: int | None = None) -> Figure:
    """One panel per page in `pages`, one horizontal bar per label: a variant's paired gain on the
    validation cases with its 95% interval (1.96 standard errors), green where it gains, red where it
    loses; a label with no row on a page is left blank there. The research notebooks' figure.

    `table` is a pandas frame with columns page, gain and standard error, one row per label and
    page; `labels` (a column or list as long as `table`) names each row's bar, in the order shown.
    `ticks` caps the x axis' tick count where long tick labels would overlap.
    """
    missing = {"page", "gain", "standard error"} - set(table.columns)
    if missing:
        raise ValueError(f"table is missing column(s) {sorted(missing)}; expected page, gain, standard error")
    table = table.assign(label=list(labels))
    order = list(dict.fromkeys(table["label"]))
    fig, axes = plt.subplots(1, len(pages), figsize=(panel_width * len(pages), row_height * len(order) + 1.6),
                             sharey=True, squeeze=False)
    for ax, page in zip(axes[0], pages):
        part = table[table["page"] == page].set_index("label").reindex(order)
        colours = ["tab:green" if g > 0 else "tab:red" for g in part["gain"].fillna(0)]
        ax.barh(order, part["gain"], xerr=1.96 * part["standard error"], color=colours, ecolor="gray")
        ax.axvline(0, color="black", linewidth=0.8)
        ax.set_title(f"validation {page}", fontsize=10)
        ax.set_xlabel(xlabel)
        if ticks:
            ax.xaxis.set_major_locator(plt.MaxNLocator(ticks))
    axes[0, 0].invert_yaxis()
    fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    return fig
