"""The Voila dashboard in a real browser, on a real registered champion.

A small retailer is written as the cleansed stage of a scratch WORKBENCH_HOME, real models are
trained, evaluated and registered (tests/test_dashboard_logic.py: build_interim, register_models),
Voila serves notebooks/dashboard.ipynb, and headless Chromium drives the three POS pages. Each
page's recommendation table must hold exactly what the registered model returns for that request.
Screenshots land in a scratch folder, so `make test` leaves the tracked tree unchanged;
`make screenshots` retakes the README's (WORKBENCH_SCREENSHOTS=docs/screenshots).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pandas as pd
import pytest

from helpers import home_store
from test_dashboard_logic import LEGAL_ENTITY, build_interim, register_models

from workbench import local_server

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
SCREENSHOTS = Path(os.environ.get("WORKBENCH_SCREENSHOTS") or tempfile.mkdtemp(prefix="dashboard-screenshots-"))
TIMEOUT_MS = 120_000

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """A scratch home with cleansed data and a registered champion, in this process's env too
    (the test loads the same champion to know what the page must show)."""
    home = tmp_path_factory.mktemp("dashboard-e2e")
    uri = home_store(home)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("WORKBENCH_HOME", str(home))
        mp.setenv("MLFLOW_TRACKING_URI", uri)
        frames = build_interim(LEGAL_ENTITY)
        register_models(frames)
        from workbench import tracking

        model = tracking.load_champion("pos-recommender")
        yield {"home": home, "uri": uri, "frames": frames, "model": model}


@pytest.fixture(scope="module")
def voila(setup):
    port = local_server.free_port()
    env = {"WORKBENCH_HOME": str(setup["home"]), "MLFLOW_TRACKING_URI": setup["uri"]}
    command = [str(local_server.BIN / "voila"), str(ROOT / "notebooks" / "dashboard.ipynb"), "--no-browser",
               "--Voila.ip=127.0.0.1", f"--port={port}"]
    # stopped by its process id (SIGTERM to its group: Voila shuts its kernels down) when the module ends
    with local_server.running(command, port, log_path=setup["home"] / "voila.log", env=env, cwd=ROOT / "notebooks",
                              timeout=120) as base:
        yield f"{base}/"


@pytest.fixture(scope="module")
def page(voila):
    if not Path(CHROMIUM).exists():
        pytest.skip(f"{CHROMIUM} is missing (apt-get install -y chromium): the browser test needs it")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1300, "height": 900})
        page.set_default_timeout(TIMEOUT_MS)
        page.goto(voila, timeout=TIMEOUT_MS)
        page.wait_for_selector("table.recommendations[data-page='product']", state="attached", timeout=TIMEOUT_MS)
        yield page
        browser.close()


# -- helpers -------------------------------------------------------------------------------------------
def expected_ids(model, scenario, customer_id, product_ids) -> list[str]:
    request = pd.DataFrame({"scenario": [scenario], "customer_id": pd.Series([customer_id], dtype=object),
                            "product_ids": pd.Series([list(product_ids)], dtype=object), "k": [10],
                            "store_id": pd.Series([None], dtype=object)})
    out = model.predict(request)
    return list(out.sort_values("rank")["product_id"])


def pick(page, css: str, query: str, starts: str | None = None, ends: str | None = None) -> None:
    """Type into a picker's search box, then choose the matching option of its list."""
    page.locator(f".{css}-search input").fill(query)
    select = page.locator(f".{css}-select select")
    test = (f"o.value.endsWith({ends!r})" if ends else f"o.value.startsWith({starts!r})")
    # the list is synced by index: wait until the kernel has filtered it before choosing
    page.wait_for_function(
        f"""() => {{ const opts = [...document.querySelectorAll('.{css}-select select option')]
                     .filter(o => !o.value.startsWith('\u2014'));
                   return opts.some(o => {test}) && opts.every(o => o.value.toLowerCase().includes({query.lower()!r})); }}"""
    )
    value = select.evaluate(f"s => [...s.options].find(o => {test}).value")
    select.select_option(value=value)


def shown_ids(page, page_name: str, customer_id: str, inputs: list[str]) -> list[str]:
    """The product ids of the page's recommendation table, once it shows this request."""
    table = page.locator(
        f"table.recommendations[data-page='{page_name}'][data-customer-id='{customer_id or ''}']"
        f"[data-inputs='{','.join(inputs)}']"
    )
    table.wait_for(state="visible", timeout=TIMEOUT_MS)
    return table.locator("tr[data-product-id]").evaluate_all("rows => rows.map(r => r.dataset.productId)")


def screenshot(page, name: str) -> Path:
    """Full page: Voila scrolls inside #rendered_cells, so grow the viewport to the content first."""
    height = page.evaluate("() => { const c = document.querySelector('#rendered_cells');"
                           " return Math.max(document.body.scrollHeight, c ? c.scrollHeight + 40 : 0); }")
    page.set_viewport_size({"width": 1300, "height": min(int(height), 6000)})
    page.wait_for_timeout(300)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    page.set_viewport_size({"width": 1300, "height": 900})
    return path


def open_tab(page, title: str) -> None:
    page.locator(".lm-TabBar-tab", has_text=title).click()


# -- the pages ---------------------------------------------------------------------------------------------
def test_header_shows_the_live_model(page):
    header = page.locator(".model-header")
    assert header.get_attribute("data-version") == "1"
    assert header.get_attribute("data-algorithm") == "sar"
    assert page.locator(".pos-off-banner").count() == 0
    assert page.locator("table.champion-metrics tr[data-scenario='basket']").count() == 1
    assert page.locator("table.champion-uncertainty tr[data-scenario]").count() == 4


def test_product_page(page, setup):
    model = setup["model"]
    open_tab(page, "Product details")
    pick(page, "wb-product", "P004", ends="[P004]")
    assert shown_ids(page, "product", "", ["P004"]) == expected_ids(model, "product", None, ["P004"])
    assert "Kitchen" in page.locator(".wb-product-card .product-card").inner_text()
    # attach a customer: the list becomes personal
    pick(page, "wb-product-customer", "C01", starts="C01 ")
    shown = shown_ids(page, "product", "C01", ["P004"])
    assert shown == expected_ids(model, "product", "C01", ["P004"])
    assert "P004" not in shown and len(shown) == 10
    screenshot(page, "product")


def test_basket_page(page, setup):
    model = setup["model"]
    open_tab(page, "Transaction")
    for product in ("P001", "P005"):
        pick(page, "wb-basket-product", product, ends=f"[{product}]")
        page.locator(f".wb-basket-card .product-card[data-product-id='{product}']").wait_for(state="visible")
        page.locator("button.wb-basket-add").click()
        page.locator(f".basket[data-count='{1 if product == 'P001' else 2}']").wait_for(state="visible")
    shown = shown_ids(page, "basket", "", ["P001", "P005"])
    assert shown == expected_ids(model, "basket", None, ["P001", "P005"])
    assert not {"P001", "P005"} & set(shown)
    screenshot(page, "basket")
    # remove an item: the list follows the basket
    page.locator(".wb-basket-items select").select_option(index=0)
    page.locator("button.wb-basket-remove").click()
    assert shown_ids(page, "basket", "", ["P005"]) == expected_ids(model, "basket", None, ["P005"])


def test_customer_page(page, setup):
    model, frames = setup["model"], setup["frames"]
    wishes = frames["wish_lists"]
    customer = "C03"
    mine = wishes[wishes["customer_id"] == customer].sort_values(["added_at", "product_id"], ascending=[False, True])
    wish_ids = list(mine["product_id"])
    assert wish_ids
    open_tab(page, "Customer details")
    pick(page, "wb-customer", customer, starts=f"{customer} ")
    assert shown_ids(page, "customer", customer, wish_ids) == expected_ids(model, "customer", customer, wish_ids)
    summary = page.locator(f".customer-summary[data-customer-id='{customer}']")
    n_baskets = int((frames["baskets"]["customer_id"] == customer).sum())
    assert f"baskets {n_baskets}" in summary.inner_text()
    assert set(page.locator("table.wish-list tr[data-product-id]").evaluate_all("r => r.map(x => x.dataset.productId)")) == set(wish_ids)
    screenshot(page, "customer")


def test_model_and_stores_page(page):
    open_tab(page, "Model & stores")
    page.locator(".wb-comparison-chart").wait_for(state="visible")
    algorithms = set(page.locator("table.pipeline-comparison tr[data-algorithm]").evaluate_all("r => r.map(x => x.dataset.algorithm)"))
    assert algorithms == {"best_sellers", "sar"}
    page.locator(".wb-store select").select_option(index=2)  # S2
    page.locator("table.store-top[data-kind='trending'][data-store-id='S2'] tr[data-product-id]").first.wait_for(state="visible")
    screenshot(page, "model")
