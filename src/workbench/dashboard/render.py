"""HTML and charts of the dashboard, as strings and matplotlib figures (pure functions).

Stable hooks for the browser test and for anyone scraping the page:
`<table class="recommendations" data-page="product|basket|customer">` with one
`<tr data-product-id=... data-rank=...>` per recommended item; `div.pos-off-banner`,
`div.no-model`, `div.model-header` (its `td.served-by`: the candidate of each page, for a per-page champion;
`table.champion-uncertainty`: each page's test figure, interval and margin), `table.store-top[data-kind=best_sellers|trending]`.
"""

from __future__ import annotations

import io
import json
import math
from html import escape

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from workbench.dashboard.data import DashboardData, money, short

STYLE = """
<style>
.wb-dash { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; font-size: 13px; }
.wb-dash table { border-collapse: collapse; margin: 4px 0 10px 0; }
.wb-dash th, .wb-dash td { border-bottom: 1px solid #e3e3e3; padding: 3px 8px; text-align: left; vertical-align: top; }
.wb-dash th { background: #f4f6f8; font-weight: 600; }
.wb-dash td.num, .wb-dash th.num { text-align: right; font-variant-numeric: tabular-nums; }
.wb-dash td.reason { color: #4a5568; font-style: italic; max-width: 380px; }
.wb-dash .muted { color: #718096; }
.wb-dash .pos-off-banner { background: #fff4e5; border: 2px solid #dd6b20; color: #7b341e; padding: 10px 14px;
  border-radius: 6px; font-size: 15px; font-weight: 600; margin: 6px 0; }
.wb-dash .no-model, .wb-dash .no-data { background: #ebf8ff; border: 2px solid #3182ce; color: #1a365d; padding: 12px 16px;
  border-radius: 6px; font-size: 14px; margin: 6px 0; }
.wb-dash .dashboard-error { background: #fff5f5; border: 2px solid #e53e3e; color: #742a2a; padding: 8px 12px; border-radius: 6px; }
.wb-dash .entity-mismatch { background: #fffff0; border: 1px solid #d69e2e; padding: 6px 10px; border-radius: 6px; }
.wb-dash .model-header { background: #f7fafc; border: 1px solid #cbd5e0; border-radius: 6px; padding: 8px 12px; }
.wb-dash .model-header .title { font-size: 16px; font-weight: 700; }
.wb-dash .kpi { display: inline-block; margin-right: 18px; }
.wb-dash .kpi b { font-size: 15px; }
.wb-dash code { background: #edf2f7; padding: 1px 4px; border-radius: 3px; }
.wb-dash .page-intro { color: #4a5568; margin: 2px 0 6px 0; }
</style>
"""


def _num(value, digits: int = 3) -> str:
    if value is None or value is pd.NA:
        return ""
    try:
        value = float(value)
    except (TypeError, ValueError):
        return escape(str(value))
    return "" if math.isnan(value) else f"{value:.{digits}f}"


def _digits(column: str) -> int:
    return 0 if column in ("n_cases", "baskets", "units") else 2 if "seconds" in column else 3


def _date(value) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NaT:
        return ""
    try:
        return pd.Timestamp(value).strftime("%Y-%m-%d %H:%M")
    except (TypeError, ValueError):
        return escape(str(value))


def wrap(body: str) -> str:
    """Every HTML widget value carries the style, so each renders alike in Voila and JupyterLab."""
    return STYLE + f'<div class="wb-dash">{body}</div>'


def recommendations_table(rows: pd.DataFrame, page: str, currency: str | None = None, caption: str = "",
                          customer_id: str | None = None, product_ids=()) -> str:
    """The recommended items of one POS page: rank, product, category, price, score, reason. The
    table names its request (data-customer-id, data-inputs: the product ids, comma-separated)."""
    head = (
        "<thead><tr><th class='num'>#</th><th>product</th><th>name</th><th>category</th>"
        "<th class='num'>price</th><th class='num'>score</th><th>why</th></tr></thead>"
    )
    body = []
    for row in rows.itertuples(index=False):
        body.append(
            f'<tr data-product-id="{escape(str(row.product_id), quote=True)}" data-rank="{int(row.rank)}">'
            f"<td class='num'>{int(row.rank)}</td><td><code>{escape(str(row.product_id))}</code></td>"
            f"<td title='{escape(str(row.name), quote=True)}'>{escape(short(row.name))}</td>"
            f"<td>{escape(short(row.category, 30))}</td><td class='num'>{escape(money(row.price, currency))}</td>"
            f"<td class='num'>{_num(row.score)}</td><td class='reason'>{escape(str(row.reason))}</td></tr>"
        )
    caption_html = f"<caption style='caption-side: top; text-align: left'>{escape(caption)}</caption>" if caption else ""
    empty = "" if body else "<tr class='empty'><td colspan='7' class='muted'>no recommendations</td></tr>"
    request = (
        f' data-customer-id="{escape(customer_id or "", quote=True)}"'
        f' data-inputs="{escape(",".join(str(p) for p in product_ids), quote=True)}"'
    )
    return (
        f'<table class="recommendations" data-page="{escape(page, quote=True)}" data-count="{len(body)}"{request}>'
        f"{caption_html}{head}<tbody>{''.join(body)}{empty}</tbody></table>"
    )


def turned_off_message(reason: str, page: str) -> str:
    return f'<div class="pos-off-banner recommendations-off" data-page="{escape(page, quote=True)}">{escape(reason)}</div>'


def pos_off_banner(legal_entity: str, stale_model: bool = False) -> str:
    if stale_model:
        return (
            f'<div class="pos-off-banner stale-model" data-legal-entity="{escape(legal_entity, quote=True)}">'
            f"POS recommendations are turned off for legal entity {escape(legal_entity)} in its settings, but the live "
            "model was registered before and still serves them: re-run the pipeline to apply the setting.</div>"
        )
    return (
        f'<div class="pos-off-banner" data-legal-entity="{escape(legal_entity, quote=True)}">'
        f"POS recommendations are turned off for legal entity {escape(legal_entity)}. "
        "The tills show no recommendations until they are turned on again "
        "(<code>pos_recommendations_enabled</code> in the legal entity's settings) and the pipeline has re-registered the model."
        "</div>"
    )


def no_model_message(model_name: str, tracking_uri: str | None, error: str | None, legal_entity: str | None) -> str:
    entity = legal_entity or "<legal_entity>"
    detail = f"<div class='muted'>({escape(error)})</div>" if error else ""
    where = f" in the MLflow registry at <code>{escape(tracking_uri)}</code>" if tracking_uri else ""
    return (
        f'<div class="no-model"><b>No model is registered as <code>models:/{escape(model_name)}@champion</code> yet</b>{where}.'
        "<br>Run the pipeline first, then reload this page:"
        "<ul><li><code>make demo</code> builds the demo retailer and runs the whole pipeline on it;</li>"
        "<li><code>make online-retail</code> does the same on the UCI Online Retail file;</li>"
        "<li><code>workbench run --config configs/demo.yml</code> (add <code>-p legal_entity="
        f"{escape(entity)}</code> to choose the legal entity) runs extract, cleanse, train and evaluate.</li></ul>"
        f"{detail}</div>"
    )


def no_data_message(legal_entity: str, error: str) -> str:
    return (
        f'<div class="no-data"><b>No cleansed data for legal entity {escape(legal_entity)}.</b> '
        f"Run the pipeline for it (<code>workbench run -p legal_entity={escape(legal_entity)}</code>, or "
        f"<code>make demo</code> for the demo retailer), then reload this page.<div class='muted'>({escape(error)})</div></div>"
    )


def error_message(error: BaseException) -> str:
    return f'<div class="dashboard-error">Something went wrong: {escape(type(error).__name__)}: {escape(str(error))}</div>'


def no_customers_message(legal_entity: str) -> str:
    return (
        f'<div class="no-customers">The sales of legal entity <b>{escape(str(legal_entity))}</b> name no customer (no loyalty '
        "members), so there is nobody to pick here. The POS's customer page shows a shopper it does not know these:</div>"
    )


def entity_mismatch(model_entity: str, legal_entity: str) -> str:
    return (
        f'<div class="entity-mismatch">The champion was trained for legal entity <b>{escape(str(model_entity))}</b>; '
        f"this dashboard shows the data of <b>{escape(legal_entity)}</b>.</div>"
    )


# -- model header ------------------------------------------------------------------------------
def metrics_frame(metrics) -> pd.DataFrame:
    """Champion metrics as a scenario x metric table. Accepts {scenario: {metric: value}} or a flat
    {"<scenario>_<metric>" | "<scenario>/<metric>" | "<metric>_<scenario>": value} mapping."""
    if metrics is None:
        return pd.DataFrame()
    if isinstance(metrics, pd.DataFrame):
        frame = metrics.copy()
        return frame.set_index("scenario") if "scenario" in frame else frame
    if not isinstance(metrics, dict) or not metrics:
        return pd.DataFrame()
    if all(isinstance(v, dict) for v in metrics.values()):
        return pd.DataFrame({s: pd.Series(m, dtype=float) for s, m in metrics.items()}).T
    table: dict[str, dict[str, float]] = {}
    known = ("customer_new_items", "new_items", "customer", "basket", "product")
    for key, value in metrics.items():
        name = str(key).replace("/", "_").replace(".", "_")
        scenario = next((s for s in known if name.startswith(s + "_")), None)
        if scenario:
            metric = name[len(scenario) + 1 :]
        else:
            scenario = next((s for s in known if name.endswith("_" + s)), "all")
            metric = name[: -len(scenario) - 1] if scenario != "all" else name
        try:
            table.setdefault(scenario, {})[metric] = float(value)
        except (TypeError, ValueError):
            continue
    return pd.DataFrame(table).T


def served_by(info: dict) -> dict[str, str]:
    """{scenario: candidate} where the live model routes each POS page to its own candidate (04_evaluate's
    per-page champion logs its routes as a hyperparameter); {} for one algorithm on every page."""
    routes = (info.get("hyperparameters") or {}).get("routes")
    if isinstance(routes, str):
        try:
            routes = json.loads(routes)
        except ValueError:
            return {}
    return {str(k): str(v) for k, v in routes.items()} if isinstance(routes, dict) else {}


def model_header(info: dict, model_name: str, pos_enabled: bool | None = None) -> str:
    version = info.get("version")
    trained = _date(info.get("trained_at"))
    algorithm = info.get("algorithm") or "?"
    entity = info.get("legal_entity") or "?"
    enabled = info.get("enable_pos_recommendations", pos_enabled)
    status = "on" if enabled or enabled is None else "<b style='color:#c05621'>off</b>"
    metrics = metrics_frame(info.get("metrics"))
    routes = served_by(info)
    table = ""
    if not metrics.empty:
        cols = list(metrics.columns)
        head = (
            "<tr><th>scenario</th>" + ("<th>served by</th>" if routes else "")
            + "".join(f"<th class='num'>{escape(str(c))}</th>" for c in cols) + "</tr>"
        )
        body = "".join(
            f"<tr data-scenario='{escape(str(s), quote=True)}'><td>{escape(str(s))}</td>"
            + (f"<td class='served-by'>{escape(str(routes.get(s, '')))}</td>" if routes else "")
            + "".join(f"<td class='num'>{_num(row[c], _digits(c))}</td>" for c in cols)
            + "</tr>"
            for s, row in metrics.iterrows()
        )
        table = f"<table class='champion-metrics'>{head}{body}</table>"
    else:
        table = "<div class='muted'>no evaluation metrics logged for this version</div>"
    run = info.get("run_id")
    return (
        f'<div class="model-header" data-version="{escape(str(version), quote=True)}" '
        f'data-algorithm="{escape(str(algorithm), quote=True)}">'
        f"<div class='title'>Live model: <code>{escape(model_name)}@champion</code> version {escape(str(version))}</div>"
        f"<div><span class='kpi'>algorithm <b>{escape(str(algorithm))}</b></span>"
        f"<span class='kpi'>trained <b>{escape(trained or '?')}</b></span>"
        f"<span class='kpi'>legal entity <b>{escape(str(entity))}</b></span>"
        f"<span class='kpi'>POS recommendations {status}</span>"
        + (f"<span class='kpi muted'>run {escape(str(run)[:12])}</span>" if run else "")
        + f"</div><div class='metrics-caption'>{metrics_caption(info)}</div>{table}{how_sure(info.get('test_uncertainty'))}</div>"
    )


def metrics_caption(info: dict) -> str:
    """What the header's figures are: a champion registered by 04_evaluate names the test window they
    were scored on, once, and whether the live model is that fit or the same settings refitted since."""
    start = info.get("test_window_start")
    if not start:
        return "Offline metrics per scenario (k = 10):"
    try:
        day = pd.Timestamp(start).strftime("%Y-%m-%d")
    except (TypeError, ValueError):
        day = str(start)
    refit = info.get("refit_on_all_data")
    served = ("; the live model is the same settings refitted on every sale, the test window included" if refit
              else "; the live model is that fit" if refit is False else "")
    return (f"Scored once on the test window from <b>{escape(day)}</b> (k = 10) by the "
            f"settings fitted on the sales before it{served}:")


def how_sure(rows) -> str:
    """Each page's headline metric on the test window with its bootstrap 95% interval, and its margin
    over the best other candidate on validation (04_evaluate's table, `tracking.champion_info`'s
    `test_uncertainty`): `table.champion-uncertainty`, one `tr[data-scenario]` per page; "" without it."""
    if not rows:
        return ""

    def margin(row) -> str:
        if row.get("ratio") is None:
            return "<span class='muted'>no other candidate</span>"
        verdict = "significant" if row.get("significant") else "within noise"
        return (f"{_num(row['ratio'], 2)}x [{_num(row.get('ratio low'), 2)}, {_num(row.get('ratio high'), 2)}], "
                f"<span class='margin-verdict'>{verdict}</span>")

    body = "".join(
        f"<tr data-scenario='{escape(str(row.get('scenario', '')), quote=True)}'><td>{escape(str(row.get('page', '')))}</td>"
        f"<td class='served-by'>{escape(str(row.get('served by') or ''))}</td>"
        f"<td class='num'>{_num(row.get('test'))} [{_num(row.get('95% low'))}, {_num(row.get('95% high'))}]</td>"
        f"<td>{escape(str(row.get('baseline (best other on validation)') or ''))}</td>"
        f"<td class='num'>{_num(row.get('baseline test'))}</td><td>{margin(row)}</td></tr>"
        for row in rows
    )
    return ("<div>How sure (bootstrap 95% intervals over the test cases; the margin is paired, against the best other "
            "candidate on validation):</div><table class='champion-uncertainty'><tr><th>page</th><th>served by</th>"
            "<th class='num'>test [95%]</th><th>best other on validation</th><th class='num'>its test</th><th>margin</th></tr>"
            f"{body}</table>")


# -- customer page -----------------------------------------------------------------------------
def _items_table(frame: pd.DataFrame, css: str, currency: str | None, extra: list[tuple[str, str]] = ()) -> str:
    head = "<tr><th>product</th><th>name</th><th>category</th><th class='num'>price</th>" + "".join(
        f"<th class='num'>{escape(label)}</th>" for _, label in extra
    ) + "</tr>"
    body = []
    for _, row in frame.iterrows():
        cells = "".join(
            f"<td class='num'>{escape(_date(row[c]) if 'time' in c or c.endswith('_at') else _num(row[c], 0 if c in ('baskets', 'units') else 2))}</td>"
            for c, _ in extra
        )
        body.append(
            f"<tr data-product-id='{escape(str(row['product_id']), quote=True)}'><td><code>{escape(str(row['product_id']))}</code></td>"
            f"<td>{escape(short(row['name']))}</td><td>{escape(short(row['category'], 30))}</td>"
            f"<td class='num'>{escape(money(row['price'], currency))}</td>{cells}</tr>"
        )
    if not body:
        body = [f"<tr class='empty'><td colspan='{4 + len(extra)}' class='muted'>none</td></tr>"]
    return f"<table class='{css}'>{head}{''.join(body)}</table>"


def customer_summary_html(summary: dict, currency: str | None = None) -> str:
    name = f" ({escape(str(summary['name']))})" if summary.get("name") else ""
    if not summary["n_baskets"]:
        return (
            f"<div class='customer-summary' data-customer-id='{escape(summary['customer_id'], quote=True)}'>"
            f"<b>Customer {escape(summary['customer_id'])}{name}</b>: no purchase history in the cleansed data.</div>"
        )
    kpis = [
        ("baskets", str(summary["n_baskets"])),
        ("spend", money(summary["spend"], currency)),
        ("average basket", money(summary["average_basket"], currency)),
        ("distinct products", str(summary["n_products"])),
        ("first visit", _date(summary["first_visit"])),
        ("last visit", _date(summary["last_visit"])),
    ]
    if summary.get("favourite_store"):
        kpis.append(("favourite store", summary["favourite_store"]))
    cats = summary["top_categories"]
    cat_rows = "".join(
        f"<tr><td>{escape(short(r['category'], 40))}</td><td class='num'>{int(r['baskets'])}</td>"
        f"<td class='num'>{escape(money(r['spend'], currency))}</td><td class='num'>{float(r['share']):.0%}</td></tr>"
        for _, r in cats.iterrows()
    )
    return (
        f"<div class='customer-summary' data-customer-id='{escape(summary['customer_id'], quote=True)}'>"
        f"<div><b>Customer {escape(summary['customer_id'])}{name}</b></div><div>"
        + "".join(f"<span class='kpi'>{escape(k)} <b>{escape(v)}</b></span>" for k, v in kpis)
        + "</div><div style='display:flex; gap:24px; flex-wrap:wrap'>"
        "<div><div>Top categories</div><table class='top-categories'><tr><th>category</th><th class='num'>baskets</th>"
        f"<th class='num'>spend</th><th class='num'>share</th></tr>{cat_rows}</table></div>"
        "<div><div>Most bought items</div>"
        + _items_table(summary["top_items"], "top-items", currency, [("baskets", "baskets"), ("units", "units")])
        + "</div></div></div>"
    )


def wish_list_html(frame: pd.DataFrame, currency: str | None = None) -> str:
    extra = [("added_at", "added")] if "added_at" in frame else []
    return f"<div>Wish list ({len(frame)} items)</div>" + _items_table(frame, "wish-list", currency, extra)


def basket_html(items: list[str], data: DashboardData) -> str:
    if not items:
        return "<div class='basket muted' data-count='0'>The basket is empty: add products above.</div>"
    frame = data.catalog.reindex(items)[["name", "category", "price"]].assign(product_id=items)
    total = float(frame["price"].fillna(0).sum())
    return (
        f"<div class='basket' data-count='{len(items)}'>"
        + _items_table(frame, "basket-items", data.currency)
        + f"<div>{len(items)} items, list price total <b>{escape(money(total, data.currency))}</b></div></div>"
    )


def product_card(row: pd.Series | None, currency: str | None = None) -> str:
    if row is None:
        return "<div class='product-card muted'>Pick a product.</div>"
    return (
        f"<div class='product-card' data-product-id='{escape(str(row['product_id']), quote=True)}'>"
        f"<b>{escape(str(row['name']))}</b> <code>{escape(str(row['product_id']))}</code><br>"
        f"<span class='kpi'>category <b>{escape(str(row['category']))}</b></span>"
        f"<span class='kpi'>price <b>{escape(money(row['price'], currency))}</b></span>"
        f"<span class='kpi'>in <b>{int(row['n_baskets'])}</b> baskets</span></div>"
    )


# -- insights tab --------------------------------------------------------------------------------
def store_top_html(frame: pd.DataFrame, kind: str, store_id: str | None, currency: str | None = None) -> str:
    title = {"best_sellers": "Best sellers", "trending": "Trending (recent baskets weigh more)"}.get(kind, kind)
    where = f"store {store_id}" if store_id else "all stores"
    extra = [("baskets", "baskets")] + ([("score", "trend score")] if kind == "trending" else [])
    table = _items_table(frame, "store-top", currency, extra).replace(
        "<table class='store-top'>",
        f"<table class='store-top' data-kind='{kind}' data-store-id='{escape(store_id or '', quote=True)}'>",
    )
    return f"<div><b>{escape(title)}</b>, {escape(where)}</div>{table}"


def comparison_metrics(frame: pd.DataFrame, limit: int = 3) -> list[str]:
    """The metric columns to plot: ranking metrics first (NDCG, HR, MAP, ...), at most `limit`."""
    numeric = [c for c in frame.columns if c not in ("algorithm", "scenario") and pd.api.types.is_numeric_dtype(frame[c])]
    preferred = ("ndcg", "hr", "hit", "map", "precision", "recall")
    ranked = sorted(numeric, key=lambda c: next((i for i, p in enumerate(preferred) if p in c.lower()), len(preferred)))
    ranked = [c for c in ranked if not any(x in c.lower() for x in ("fit", "second", "time", "n_cases"))] or ranked
    return ranked[:limit]


def comparison_figure(frame: pd.DataFrame, champion_algorithm: str | None = None) -> Figure | None:
    """One bar chart per scenario: every algorithm of the last pipeline run, grouped metric bars."""
    if frame is None or frame.empty or "algorithm" not in frame or "scenario" not in frame:
        return None
    metrics = comparison_metrics(frame)
    if not metrics:
        return None
    scenarios = list(dict.fromkeys(frame["scenario"].astype(str)))
    fig = Figure(figsize=(min(4.2 * len(scenarios), 16), 3.6), dpi=90, layout="constrained")
    axes = fig.subplots(1, len(scenarios), squeeze=False)[0]
    for ax, scenario in zip(axes, scenarios):
        sub = frame[frame["scenario"].astype(str) == scenario]
        algorithms = list(dict.fromkeys(sub["algorithm"].astype(str)))
        x = np.arange(len(algorithms))
        width = 0.8 / len(metrics)
        for m, metric in enumerate(metrics):
            values = [float(sub.loc[sub["algorithm"].astype(str) == a, metric].mean()) for a in algorithms]
            ax.bar(x + (m - (len(metrics) - 1) / 2) * width, values, width, label=metric)
        ax.set_xticks(x, [a + (" ★" if a == champion_algorithm else "") for a in algorithms], rotation=35, ha="right", fontsize=8)
        ax.set_title(scenario, fontsize=10)
        ax.tick_params(axis="y", labelsize=8)
        ax.grid(axis="y", alpha=0.3)
    axes[0].legend(fontsize=7, loc="upper left")
    return fig


def figure_png(fig: Figure) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    return buffer.getvalue()


def comparison_table(frame: pd.DataFrame, champion_algorithm: str | None = None) -> str:
    if frame is None or frame.empty:
        return "<div class='muted'>No pipeline comparison logged yet.</div>"
    numeric = [c for c in frame.columns if c not in ("algorithm", "scenario") and pd.api.types.is_numeric_dtype(frame[c])]
    head = "<tr><th>algorithm</th><th>scenario</th>" + "".join(f"<th class='num'>{escape(c)}</th>" for c in numeric) + "</tr>"
    body = "".join(
        f"<tr data-algorithm='{escape(str(r['algorithm']), quote=True)}'"
        + (" style='font-weight:600; background:#f0fff4'" if str(r["algorithm"]) == champion_algorithm else "")
        + f"><td>{escape(str(r['algorithm']))}</td><td>{escape(str(r['scenario']))}</td>"
        + "".join(f"<td class='num'>{_num(r[c], _digits(c))}</td>" for c in numeric)
        + "</tr>"
        for _, r in frame.iterrows()
    )
    return f"<table class='pipeline-comparison'>{head}{body}</table>"

