"""The dashboard's table-building functions, and the app against a real registry.

`build_interim` / `register_models` are shared with the browser test (tests/test_dashboard.py):
a small hand-made retailer written as the cleansed stage, and real models trained, evaluated,
logged and registered through workbench.models / evaluation / tracking.
"""

from __future__ import annotations

import json
import re

import numpy as np
import pandas as pd
import pytest

from helpers import scratch_home

from workbench import paths
from workbench.dashboard import data as D
from workbench.dashboard import render as R

LEGAL_ENTITY = "DASHLE"
CATEGORIES = ["Kitchen", "Garden", "Toys", "Stationery"]


# -- a small retailer, as the cleansing stage writes it ---------------------------------------------
def make_frames(seed: int = 0, n_products: int = 32, n_customers: int = 16, n_baskets: int = 260) -> dict[str, pd.DataFrame]:
    rng = np.random.default_rng(seed)
    products = pd.DataFrame(
        {
            "product_id": [f"P{i:03d}" for i in range(n_products)],
            "name": [f"{['Red', 'Blue', 'Green', 'White'][i % 4]} {CATEGORIES[i % 4].lower()} item {i} & co" for i in range(n_products)],
            "category": [CATEGORIES[i % 4] for i in range(n_products)],
            "price": np.round(rng.uniform(1, 40, n_products), 2),
        }
    )
    customers = [f"C{i:02d}" for i in range(n_customers)]
    stores = ["S1", "S2"]
    start = pd.Timestamp("2024-01-01")
    lines, baskets = [], []
    for b in range(n_baskets):
        theme = b % 4
        pool = [i for i in range(n_products) if i % 4 == theme]
        items = rng.choice(pool, size=int(rng.integers(2, 5)), replace=False)
        customer = None if rng.random() < 0.2 else customers[int(rng.integers(n_customers))]
        store = stores[int(rng.random() < 0.4)]
        time = (start + pd.Timedelta(minutes=int(rng.integers(0, 90 * 24 * 60)))).as_unit("us")
        basket_id = f"B{b:04d}"
        amount = 0.0
        for i in items:
            qty = float(rng.integers(1, 4))
            price = float(products.loc[i, "price"])
            lines.append((customer, basket_id, products.loc[i, "product_id"], time, qty, qty * price, store, "store"))
            amount += qty * price
        baskets.append((basket_id, customer, store, "store", time, len(items), 0.0, amount))
    interactions = pd.DataFrame(
        lines, columns=["customer_id", "basket_id", "product_id", "time", "quantity", "amount", "store_id", "channel"]
    )
    baskets = pd.DataFrame(baskets, columns=["basket_id", "customer_id", "store_id", "channel", "time", "n_items", "n_units", "amount"])
    baskets["n_units"] = interactions.groupby("basket_id")["quantity"].sum().reindex(baskets["basket_id"]).to_numpy()
    counts = interactions.groupby("product_id")["basket_id"].nunique()
    catalog = products.assign(n_baskets=products["product_id"].map(counts).fillna(0).astype("int64"))
    wish_lists = pd.DataFrame(
        [(c, f"P{(3 * j + k) % n_products:03d}", start + pd.Timedelta(days=10 + k)) for j, c in enumerate(customers[:8]) for k in range(2)],
        columns=["customer_id", "product_id", "added_at"],
    )
    wish_lists["added_at"] = wish_lists["added_at"].astype("datetime64[us]")
    return {"interactions": interactions, "baskets": baskets, "catalog": catalog, "wish_lists": wish_lists}


def build_interim(legal_entity: str = LEGAL_ENTITY, enabled: bool = True, anonymous: bool = False) -> dict[str, pd.DataFrame]:
    """Write the frames to data/interim/<legal_entity>/ of the current WORKBENCH_HOME; `anonymous`: a
    retailer without loyalty members (no customer ids, no wish lists)."""
    frames = make_frames()
    if anonymous:
        for name in ("interactions", "baskets"):
            frames[name] = frames[name].assign(customer_id=pd.Series([None] * len(frames[name]), dtype=object))
        frames["wish_lists"] = frames["wish_lists"].iloc[:0]
    folder = paths.interim_dir(legal_entity)
    folder.mkdir(parents=True, exist_ok=True)
    for name, frame in frames.items():
        frame.to_parquet(folder / f"{name}.parquet", index=False)
    raw = paths.raw_dir(legal_entity)
    raw.mkdir(parents=True, exist_ok=True)
    (raw / "legal_entity.json").write_text(
        json.dumps({"legal_entity_id": legal_entity, "name": "Dashboard Test Retail", "currency": "EUR",
                    "pos_recommendations_enabled": enabled})
    )
    return frames


def register_models(frames: dict, legal_entity: str = LEGAL_ENTITY, name: str = "pos-recommender",
                    algorithms=("best_sellers", "sar"), champion: str = "sar", enabled: bool = True) -> dict:
    """A pipeline run as 03_train/04_evaluate would log it: every algorithm fitted on the training
    window, evaluated on the test window, logged; the champion registered under `name`, its run
    tagged with its test window and how sure its figures are (against the first other algorithm)."""
    from mlflow.tracking import MlflowClient

    from workbench import tracking
    from workbench.evaluation import HEADLINE, headline_uncertainty, protocol
    from workbench.models import TrainingData

    tracking.configure()
    interactions = frames["interactions"]
    split = interactions["time"].max() - pd.Timedelta(days=20)
    train, test = protocol.temporal_split(interactions, split)
    cases = protocol.build_cases(train, test, seed=0, wish_lists=frames["wish_lists"])
    data = TrainingData.from_interactions(train, wish_lists=frames["wish_lists"])
    settings = {"legal_entity": legal_entity, "enable_pos_recommendations": enabled}
    pipeline = tracking.start_pipeline_run(legal_entity)
    runs, per_case = {}, {}
    for algorithm in algorithms:
        run = tracking.train_and_log(algorithm, {}, data, settings=settings, parent_run_id=pipeline)
        results, per_case[algorithm] = protocol.evaluate_per_case(run["model"], cases, k=10)
        tracking.log_evaluation(run["run_id"], results)
        runs[algorithm] = run
    baseline = next((a for a in algorithms if a != champion), None)
    baselines = {page: (baseline, per_case[baseline][page]) for page in HEADLINE} if baseline else {}
    rows = headline_uncertainty(per_case[champion], baselines, dict.fromkeys(HEADLINE, champion))
    for tag, value in tracking.champion_figure_tags(split, False, rows).items():
        MlflowClient().set_tag(runs[champion]["run_id"], tag, value)
    tracking.end_pipeline_run(pipeline)
    version = tracking.register_champion(runs[champion]["model_uri"], name=name)
    return {"version": version, "runs": runs, "pipeline": pipeline}


@pytest.fixture(scope="module")
def frames():
    return make_frames()


@pytest.fixture(scope="module")
def data(frames):
    return D.prepare(LEGAL_ENTITY, frames["catalog"], frames["interactions"], frames["baskets"], frames["wish_lists"],
                     currency="EUR")


# -- search ------------------------------------------------------------------------------------------
def test_search_products_by_id_and_name(data):
    top = data.search_products("")
    assert len(top) == min(50, len(data.catalog))
    assert list(top["n_baskets"]) == sorted(top["n_baskets"], reverse=True)
    assert data.search_products("P005").iloc[0]["product_id"] == "P005"  # exact id first
    hits = data.search_products("GARDEN item")
    assert len(hits) and set(hits["category"]) == {"Garden"}
    assert data.search_products("no such thing").empty


def test_search_is_capped_and_fast_on_an_online_retail_sized_catalog():
    n = 4000
    catalog = pd.DataFrame({"product_id": [f"{85000 + i}" for i in range(n)],
                            "name": [f"WHITE HANGING HEART T-LIGHT HOLDER VARIANT NUMBER {i} WITH A LONG DESCRIPTION" for i in range(n)],
                            "category": ["HOME"] * n, "price": np.linspace(0.5, 20, n), "n_baskets": np.arange(n)[::-1]})
    empty = pd.DataFrame({"customer_id": pd.Series([], dtype=object), "basket_id": [], "product_id": [], "time": pd.Series([], dtype="datetime64[us]"),
                          "amount": [], "store_id": []})
    data = D.prepare("OR", catalog, empty, empty.drop(columns=["product_id"]), pd.DataFrame(columns=["customer_id", "product_id", "added_at"]))
    hits = data.search_products("heart holder")
    assert len(hits) == 50
    assert hits.iloc[0]["product_id"] == "85000"  # most popular first
    assert data.search_products("85123").iloc[0]["product_id"] == "85123"
    label = D.product_label(hits.iloc[0])
    assert len(label) < 100 and "…" in label


def test_search_customers(data):
    top = data.search_customers("")
    assert list(top["n_baskets"]) == sorted(top["n_baskets"], reverse=True)
    assert data.search_customers("c03").iloc[0]["customer_id"] == "C03"
    assert "baskets" in D.customer_label(top.iloc[0])


# -- customer page -------------------------------------------------------------------------------------
def test_customer_summary_matches_the_baskets(frames, data):
    customer = data.customers.index[0]
    summary = D.customer_summary(data, customer)
    mine = frames["baskets"][frames["baskets"]["customer_id"] == customer]
    assert summary["n_baskets"] == len(mine)
    assert summary["spend"] == pytest.approx(mine["amount"].sum())
    assert summary["last_visit"] == mine["time"].max()
    assert summary["favourite_store"] in {"S1", "S2"}
    assert summary["top_categories"]["share"].sum() <= 1.0 + 1e-9
    assert len(summary["top_items"]) <= 5 and summary["top_items"]["name"].notna().all()
    html = R.customer_summary_html(summary, "EUR")
    assert f"data-customer-id='{customer}'" in html and "EUR" in html and "top-categories" in html
    named = D.prepare(LEGAL_ENTITY, frames["catalog"], frames["interactions"], frames["baskets"], frames["wish_lists"],
                      customer_names=pd.DataFrame({"customer_id": [customer, "C99"], "name": [None, "Ann"]}))
    assert D.customer_summary(named, customer)["name"] is None and "(nan)" not in R.customer_summary_html(D.customer_summary(named, customer))
    unknown = D.customer_summary(data, "NOBODY")
    assert unknown["n_baskets"] == 0 and "no purchase history" in R.customer_summary_html(unknown)


def test_wish_list(frames, data):
    wishes = D.wish_list(data, "C00")
    expected = frames["wish_lists"][frames["wish_lists"]["customer_id"] == "C00"]
    assert set(wishes["product_id"]) == set(expected["product_id"])
    assert wishes["added_at"].is_monotonic_decreasing
    assert D.wish_list(data, "C15").empty
    assert "wish-list" in R.wish_list_html(wishes, "EUR")


# -- store panel -----------------------------------------------------------------------------------------
def test_store_best_sellers_and_trending(frames, data):
    best = D.store_top_items(data, "S1", k=5)
    lines = frames["interactions"][frames["interactions"]["store_id"] == "S1"]
    expected = lines.groupby("product_id")["basket_id"].nunique().sort_values(ascending=False)
    assert list(best["baskets"]) == list(expected.head(5).to_numpy())
    assert best.iloc[0]["product_id"] in set(expected[expected == expected.max()].index)
    trending = D.store_top_items(data, "S1", k=5, half_life_days=14)
    assert len(trending) == 5 and trending["score"].is_monotonic_decreasing
    assert D.store_top_items(data, "NOSTORE").empty
    html = R.store_top_html(trending, "trending", "S1", "EUR")
    assert "data-kind='trending'" in html and "data-store-id='S1'" in html
    assert [s for s, _ in data.stores] == ["S1", "S2"]


# -- recommendations ----------------------------------------------------------------------------------------
def test_recommendation_table_has_stable_hooks(data):
    output = pd.DataFrame({"request": [0, 0, 0, 1], "rank": [2, 1, 3, 1], "product_id": ["P002", "P001", "ZZZ", "P009"],
                           "score": [0.5, 0.9, 0.1, 0.3], "reason": ["bought together with P000", "best seller", "x", "y"]})
    rows = D.recommendation_rows(output, data, request=0)
    assert list(rows["product_id"]) == ["P001", "P002", "ZZZ"]
    assert rows.loc[2, "name"] == "(not in the catalog)"
    html = R.recommendations_table(rows, "basket", "EUR")
    assert '<table class="recommendations" data-page="basket" data-count="3" data-customer-id="" data-inputs="">' in html
    html2 = R.recommendations_table(rows, "basket", "EUR", "", "C1", ["P7", "P8"])
    assert 'data-customer-id="C1" data-inputs="P7,P8"' in html2
    assert html.index('data-product-id="P001" data-rank="1"') < html.index('data-product-id="P002" data-rank="2"')
    assert "&amp; co" in html  # names are escaped
    assert "bought together with P000" in html
    assert D.turned_off_reason(output) is None
    assert "no recommendations" in R.recommendations_table(rows.iloc[0:0], "product")


def test_a_catalog_without_names_or_prices_shows_ids(frames, data):
    """Cleansing keeps products without a name or price (an export of basket lines): the dashboard
    tells them from products it does not know, and its picker shows what there is."""
    bare = D.prepare(LEGAL_ENTITY, frames["catalog"].assign(name=None, category=None, price=np.nan), frames["interactions"],
                     frames["baskets"], frames["wish_lists"])
    output = pd.DataFrame({"request": [0, 0], "rank": [1, 2], "product_id": ["P001", "ZZZ"], "score": [0.9, 0.1], "reason": ["x", "y"]})
    assert D.recommendation_rows(output, bare, request=0)["name"].tolist() == ["", "(not in the catalog)"]
    assert D.product_label(bare.catalog.loc["P001"]) == "[P001]"
    assert D.product_label(data.catalog.loc["P001"], "EUR").endswith(" EUR [P001]") and " · " in D.product_label(data.catalog.loc["P001"])


def test_turned_off_answer_becomes_a_banner():
    output = pd.DataFrame({"request": [0], "rank": [0], "product_id": pd.Series([None], dtype=object), "score": [np.nan],
                           "reason": ["POS recommendations are turned off for legal entity X"]})
    assert D.turned_off_reason(output) == "POS recommendations are turned off for legal entity X"
    assert 'class="pos-off-banner recommendations-off" data-page="customer"' in R.turned_off_message(D.turned_off_reason(output), "customer")
    assert "turned off for legal entity X" in R.pos_off_banner("X")
    assert "re-run the pipeline" in R.pos_off_banner("X", stale_model=True)


def test_request_frame_is_what_the_pyfunc_parses():
    from workbench.pos_model import parse_requests

    frame = D.request_frame("basket", None, ["P1", "P2"], 7, None)
    (request,) = parse_requests(frame)
    assert request.scenario == "basket" and request.product_ids == ("P1", "P2") and request.k == 7
    assert request.customer_id is None and request.store_id is None
    (request,) = parse_requests(D.request_frame("customer", "C1", [], 10, "S1"))
    assert request.customer_id == "C1" and request.store_id == "S1" and request.product_ids == ()


# -- header and comparison -------------------------------------------------------------------------------------
def test_metrics_frame_accepts_nested_and_flat_metrics():
    nested = R.metrics_frame({"customer": {"ndcg": 0.3, "hr": 0.8}, "basket": {"hr": 0.2}})
    assert nested.loc["customer", "ndcg"] == 0.3 and nested.loc["basket", "hr"] == 0.2
    flat = R.metrics_frame({"customer_ndcg": 0.3, "product_hr": 0.6})
    assert flat.loc["product", "hr"] == 0.6
    html = R.model_header({"version": 3, "algorithm": "sar", "trained_at": "2024-03-01T10:00:00+00:00", "legal_entity": "X",
                           "enable_pos_recommendations": True, "metrics": {"customer": {"ndcg": 0.3, "n_cases": 12.0}}}, "pos-recommender")
    assert 'data-version="3"' in html and 'data-algorithm="sar"' in html and "2024-03-01 10:00" in html and "0.300" in html
    assert "served by" not in html
    # a per-page champion says which candidate serves each page (its routes, logged as a hyperparameter)
    routes = {"customer": "champion", "basket": "ease"}
    routed = R.model_header({"version": 4, "algorithm": "routing", "hyperparameters": {"routes": json.dumps(routes)},
                             "metrics": {"customer": {"ndcg": 0.3}, "basket": {"hr": 0.4}}}, "pos-recommender")
    assert "<th>served by</th>" in routed
    assert "<td>basket</td><td class='served-by'>ease</td>" in routed and "<td>customer</td><td class='served-by'>champion</td>" in routed


def test_header_says_which_window_its_figures_come_from_and_how_sure_they_are():
    metrics = {"basket": {"hr": 0.41}, "product": {"hr": 0.5}}
    plain = R.model_header({"version": 1, "algorithm": "sar", "metrics": metrics}, "pos-recommender")
    assert "Offline metrics per scenario (k = 10):" in plain and "champion-uncertainty" not in plain
    rows = [
        {"scenario": "basket", "page": "basket HR@10", "served by": "champion", "test": 0.412, "95% low": 0.392, "95% high": 0.433,
         "baseline (best other on validation)": "ease", "baseline test": 0.282, "ratio": 1.461, "ratio low": 1.4, "ratio high": 1.53,
         "significant": True},
        {"scenario": "product", "page": "product HR@10", "served by": "sar", "test": 0.5, "95% low": 0.45, "95% high": 0.55,
         "baseline (best other on validation)": "ease", "baseline test": 0.49, "ratio": 1.02, "ratio low": 0.97, "ratio high": 1.08,
         "significant": False},
        {"scenario": "customer", "page": "customer NDCG@10", "served by": "sar", "test": 0.3, "95% low": 0.28, "95% high": 0.32},
    ]
    info = {"version": 2, "algorithm": "champion", "metrics": metrics, "test_window_start": "2025-12-02 00:00:00",
            "refit_on_all_data": True, "test_uncertainty": rows}
    html = R.model_header(info, "pos-recommender")
    assert "Scored once on the test window from <b>2025-12-02</b>" in html and "refitted on every sale" in html
    table = html.split("champion-uncertainty")[1]
    basket = table.split("<tr data-scenario='basket'>")[1].split("</tr>")[0]
    assert "0.412 [0.392, 0.433]" in basket and "ease" in basket and "1.46x [1.40, 1.53]" in basket and "significant" in basket
    assert "within noise" in table.split("<tr data-scenario='product'>")[1].split("</tr>")[0]
    assert "no other candidate" in table.split("<tr data-scenario='customer'>")[1].split("</tr>")[0]
    kept = R.model_header({**info, "refit_on_all_data": False}, "pos-recommender")
    assert "the live model is that fit" in kept and "refitted" not in kept


def test_comparison_figure_has_one_chart_per_scenario():
    frame = pd.DataFrame({"algorithm": ["a", "a", "b", "b"], "scenario": ["customer", "basket"] * 2,
                          "n_cases": pd.array([5, 6, 5, 6], dtype="Int64"), "ndcg": [0.1, 0.2, 0.3, 0.4], "hr": [0.5, 0.6, 0.7, 0.8],
                          "fit_seconds": [0.1] * 4, "run_id": ["r"] * 4})
    assert R.comparison_metrics(frame) == ["ndcg", "hr", "n_cases"][:2]
    fig = R.comparison_figure(frame, "b")
    assert len(fig.axes) == 2 and [ax.get_title() for ax in fig.axes] == ["customer", "basket"]
    assert R.figure_png(fig).startswith(b"\x89PNG")
    table = R.comparison_table(frame, "b")
    assert "data-algorithm='b' style=" in table and "<td class='num'>5</td>" in table
    assert R.comparison_figure(frame.iloc[0:0]) is None


def test_no_model_message_says_how_to_run_the_pipeline():
    html = R.no_model_message("pos-recommender", "sqlite:///x.db", "No model registered", "USRT")
    assert "make demo" in html and "workbench run --config" in html and "legal_entity=USRT" in html and "no-model" in html
    assert "legal_entity=&lt;legal_entity&gt;" in R.no_model_message("pos-recommender", None, None, None)


# -- the app against a real registry -----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def home(tmp_path_factory):
    with scratch_home(tmp_path_factory, "dashboard-home") as root:
        yield root


def test_app_without_a_registered_model_shows_how_to_get_one(home):
    from workbench.dashboard import Dashboard

    app = Dashboard(LEGAL_ENTITY, "no-such-model")
    assert "no-model" in app.status.value and "make demo" in app.status.value
    assert len(app.widget.children) == 2  # title and the message, no pages


@pytest.mark.e2e
def test_app_with_recommendations_turned_off_shows_the_banner(home):
    from workbench.dashboard import Dashboard

    frames = build_interim(LEGAL_ENTITY, enabled=False)
    register_models(frames, name="pos-recommender-off", algorithms=("best_sellers",), champion="best_sellers", enabled=False)
    app = Dashboard(None, "pos-recommender-off")  # None: the champion's legal entity
    assert app.legal_entity == LEGAL_ENTITY
    assert "pos-off-banner" in app.status.value and f"turned off for legal entity {LEGAL_ENTITY}" in app.status.value
    assert "recommendations-off" in app.p_recs.value and 'class="recommendations"' not in app.p_recs.value
    assert "recommendations-off" in app.c_recs.value


@pytest.mark.e2e
def test_app_of_a_retailer_without_customers_says_so_on_the_customer_page(home):
    from workbench.dashboard import Dashboard

    frames = build_interim(LEGAL_ENTITY, anonymous=True)
    register_models(frames, name="pos-recommender-anonymous")
    app = Dashboard(LEGAL_ENTITY, "pos-recommender-anonymous")
    assert len(app.data.customers) == 0
    assert "no-customers" in app.c_summary.value and f"legal entity <b>{LEGAL_ENTITY}</b> name no customer" in app.c_summary.value
    # what the POS shows a shopper it does not know: best sellers
    reasons = re.findall(r"<td class='reason'>([^<]*)</td>", app.c_recs.value)
    assert len(reasons) == 10 and all(r.startswith(("best seller", "trending")) for r in reasons), reasons


@pytest.mark.e2e
def test_app_pages_show_what_the_model_returns(home):
    from workbench import tracking
    from workbench.dashboard import Dashboard

    frames = build_interim(LEGAL_ENTITY)
    register_models(frames)
    app = Dashboard(LEGAL_ENTITY, "pos-recommender")
    model = tracking.load_champion("pos-recommender")
    assert "pos-off-banner" not in app.status.value
    assert 'data-algorithm="sar"' in app.header.value
    # the figures beside the live model: their test window, that the live model is that fit, how sure
    assert "the live model is that fit" in app.header.value
    assert app.header.value.split("champion-uncertainty")[1].count("<tr data-scenario=") == 4

    def shown(html):
        import re

        return re.findall(r'<tr data-product-id="([^"]+)"', html)

    def expected(scenario, customer, products):
        out = model.predict(D.request_frame(scenario, customer, products, 10, None))
        return list(out.sort_values("rank")["product_id"])

    app.p_product.value = "P004"
    app.p_customer.value = "C01"
    assert app.p_product.value == "P004" and app.p_customer.value == "C01"
    assert "data-product-id='P004'" in app.p_card.value
    assert shown(app.p_recs.value) == expected("product", "C01", ["P004"]) and "P004" not in shown(app.p_recs.value)
    app.b_product.value = "P001"
    app._basket_add()
    app.b_product.value = "P005"
    app._basket_add()
    assert app.basket == ["P001", "P005"]
    assert shown(app.b_recs.value) == expected("basket", None, ["P001", "P005"])
    app.b_items.value = "P001"
    app._basket_remove()
    assert shown(app.b_recs.value) == expected("basket", None, ["P005"])
    app.c_customer.value = "C00"
    wishes = list(D.wish_list(app.data, "C00")["product_id"])
    assert shown(app.c_recs.value) == expected("customer", "C00", wishes)
    assert "wish-list" in app.c_wish.value and "customer-summary" in app.c_summary.value
    app.store.value = "S2"
    assert "data-store-id='S2'" in app.i_best.value and "data-kind='trending'" in app.i_trending.value
