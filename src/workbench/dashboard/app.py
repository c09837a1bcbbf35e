"""The merchandisers' dashboard: three POS pages and a model panel, as one ipywidgets app.

`show_dashboard(legal_entity, registered_model_name)` is what notebooks/dashboard.ipynb calls
(served by Voila). Loading problems (no registered champion, no cleansed data) become a plain
message on the page, never a traceback.
"""

from __future__ import annotations

import functools
import logging
import traceback
from typing import Callable

import ipywidgets as W
import pandas as pd

from workbench.dashboard import data as D
from workbench.dashboard import render as R

_logger = logging.getLogger(__name__)

NO_CUSTOMER = ""  # the value of the "no customer" choice of the optional customer pickers
ALL_STORES = ""


def _html(body: str, css: str | None = None) -> W.HTML:
    widget = W.HTML(R.wrap(body))
    if css:
        widget.add_class(css)
    return widget


def _guarded(target: Callable[[], W.HTML]):
    """Widget callbacks run outside any cell: show an exception on the page instead of losing it."""

    def decorate(fn):
        @functools.wraps(fn)
        def wrapper(self, *args, **kwargs):
            try:
                return fn(self, *args, **kwargs)
            except Exception as error:  # noqa: BLE001 - shown to the user, logged for us
                _logger.error("dashboard callback %s failed:\n%s", fn.__name__, traceback.format_exc())
                target(self).value = R.wrap(R.error_message(error))

        return wrapper

    return decorate


class Picker:
    """A search box and a short list of the best matches (at most 50, most popular first), so a
    picker stays responsive with thousands of products or customers."""

    def __init__(self, search, label, description: str, placeholder: str, css: str, rows: int = 6,
                 optional: str | None = None, dropdown: bool = False):
        self._search, self._label, self._optional = search, label, optional
        self.text = W.Text(placeholder=placeholder, description=description, continuous_update=True,
                           layout=W.Layout(width="420px"))
        self.text.add_class(f"{css}-search")
        cls = W.Dropdown if dropdown else W.Select
        kwargs = {} if dropdown else {"rows": rows}
        self.select = cls(options=[], description="", layout=W.Layout(width="620px"), **kwargs)
        self.select.add_class(f"{css}-select")
        self.widget = W.VBox([self.text, self.select])
        self.widget.add_class(css)
        self._callbacks: list[Callable[[str | None], None]] = []
        self._updating = False
        self._refresh()
        self.text.observe(lambda _: self._refresh(), names="value")
        self.select.observe(self._changed, names="value")

    @property
    def value(self) -> str | None:
        return self.select.value or None

    @value.setter
    def value(self, value: str | None) -> None:
        if value is not None and value not in [v for _, v in self.select.options]:
            self.text.value = value  # search for it: an exact id comes first
        if value is None or value not in [v for _, v in self.select.options]:
            value = NO_CUSTOMER if self._optional is not None else None
        self.select.value = value

    def on_change(self, callback: Callable[[str | None], None]) -> None:
        self._callbacks.append(callback)

    def _changed(self, change) -> None:
        if not self._updating:
            for callback in self._callbacks:
                callback(self.value)

    def _refresh(self) -> None:
        matches = self._search(self.text.value)
        options = [(self._label(row), str(key)) for key, row in matches.iterrows()]
        if self._optional is not None:
            options = [(self._optional, NO_CUSTOMER)] + options
        keep = self.select.value
        self._set_options(options, keep if keep in [v for _, v in options] else None)

    def _set_options(self, options, keep) -> None:
        before = self.select.value
        self._updating = True
        try:
            self.select.options = options
            if keep is not None:
                self.select.value = keep
            elif self._optional is not None:
                self.select.value = NO_CUSTOMER
            elif options and self._optional is None and isinstance(self.select, W.Select):
                self.select.index = None  # a search does not pick a product by itself
        finally:
            self._updating = False
        if self.select.value != before:
            self._changed(None)


class Dashboard:
    """The app. `widget` is what the notebook displays."""

    def __init__(self, legal_entity: str | None = None, registered_model_name: str = "pos-recommender", k: int = 10):
        self.model_name = registered_model_name
        self.k = k
        self.model = None
        self.info: dict = {}
        self.tracking_uri: str | None = None
        self.data: D.DashboardData | None = None
        self.legal_entity = legal_entity
        self.status = _html("", "wb-status")
        self.widget = W.VBox([_html("<h2 style='margin:4px 0'>POS recommendations workbench</h2>"), self.status])
        self.widget.add_class("wb-dashboard")
        if not self._load_model() or not self._load_data():
            return
        self._build()

    # -- loading -------------------------------------------------------------------------------
    def _load_model(self) -> bool:
        from workbench import tracking

        try:
            self.tracking_uri = tracking.configure()
            self.model = tracking.load_champion(self.model_name)
            self.info = dict(tracking.champion_info(self.model_name) or {})
        except Exception as error:  # noqa: BLE001 - no registered model is an expected state
            self.status.value = R.wrap(R.no_model_message(self.model_name, self.tracking_uri, str(error), self.legal_entity))
            return False
        if not self.legal_entity:
            self.legal_entity = self.info.get("legal_entity")
        if not self.legal_entity:
            self.status.value = R.wrap(
                R.no_data_message("?", "no legal_entity given and the champion does not name one: set legal_entity")
            )
            return False
        return True

    def _load_data(self) -> bool:
        try:
            self.data = D.load(self.legal_entity)
        except (D.DataNotFound, ValueError) as error:
            self.status.value = R.wrap(R.no_data_message(str(self.legal_entity), str(error)))
            return False
        return True

    @property
    def pos_enabled(self) -> bool:
        enabled = self.info.get("enable_pos_recommendations")
        return True if enabled is None else bool(enabled)

    # -- layout --------------------------------------------------------------------------------
    def _build(self) -> None:
        data = self.data
        notices = []
        if not self.pos_enabled:
            notices.append(R.pos_off_banner(self.info.get("legal_entity") or self.legal_entity))
        elif data.pos_recommendations_enabled is False:
            notices.append(R.pos_off_banner(self.legal_entity, stale_model=True))
        model_entity = self.info.get("legal_entity")
        if model_entity and str(model_entity) != str(self.legal_entity):
            notices.append(R.entity_mismatch(model_entity, self.legal_entity))
        self.status.value = R.wrap("".join(notices)) if notices else ""
        self.header = _html(R.model_header(self.info, self.model_name, self.pos_enabled), "wb-header")

        store_options = [("all stores", ALL_STORES)] + [(f"{s} ({n} baskets)", s) for s, n in data.stores]
        self.store = W.Dropdown(options=store_options, description="Store", layout=W.Layout(width="320px"))
        self.store.add_class("wb-store")
        self.store.observe(lambda _: self._refresh_all(), names="value")

        tabs = W.Tab(children=[self._product_page(), self._basket_page(), self._customer_page(), self._insights_page()])
        for i, title in enumerate(["Product details", "Transaction", "Customer details", "Model & stores"]):
            tabs.set_title(i, title)
        tabs.add_class("wb-tabs")
        self.tabs = tabs
        entity = f"{self.legal_entity}" + (f" · {data.entity_name}" if data.entity_name else "")
        self.widget.children = [
            _html(f"<h2 style='margin:4px 0'>POS recommendations workbench <span class='muted'>· {entity}</span></h2>"),
            self.status,
            self.header,
            W.HBox([self.store, W.HTML(R.wrap("<span class='muted'>the POS store the pages below are for</span>"))]),
            tabs,
        ]
        self._refresh_all()

    def _customer_picker(self, css: str, optional: bool) -> Picker:
        return Picker(
            self.data.search_customers,
            D.customer_label,
            "Customer",
            "search customers by id or name",
            css,
            optional="— no customer (anonymous) —" if optional else None,
            dropdown=optional,
            rows=6,
        )

    def _product_picker(self, css: str) -> Picker:
        return Picker(
            self.data.search_products,
            lambda row: D.product_label(row, self.data.currency),
            "Product",
            "search products by name or id",
            css,
            rows=8,
        )

    def _product_page(self) -> W.Widget:
        self.p_product = self._product_picker("wb-product")
        self.p_card = _html(R.product_card(None), "wb-product-card")
        self.p_customer = self._customer_picker("wb-product-customer", optional=True)
        self.p_recs = _html("", "wb-product-recs")
        intro = _html("<div class='page-intro'>The product page of the POS: what is frequently bought together with it; "
                      "attach a customer to make the list personal.</div>")
        if len(self.data.catalog):  # start on the best seller (refreshed with the others in _build)
            self.p_product.value = str(self.data.catalog.index[0])
            self.p_card.value = R.wrap(R.product_card(self.data.product(self.p_product.value), self.data.currency))
        self.p_product.on_change(lambda _: self._product_changed())
        self.p_customer.on_change(lambda _: self._refresh_product())
        return W.VBox([intro, self.p_product.widget, self.p_card, self.p_customer.widget, self.p_recs])

    def _basket_page(self) -> W.Widget:
        self.basket: list[str] = []
        self.b_product = self._product_picker("wb-basket-product")
        self.b_card = _html(R.product_card(None), "wb-basket-card")
        self.b_product.on_change(
            lambda value: setattr(self.b_card, "value", R.wrap(R.product_card(self.data.product(value), self.data.currency)))
        )
        self.b_add = W.Button(description="Add to basket", icon="plus", button_style="primary")
        self.b_add.add_class("wb-basket-add")
        self.b_items = W.Select(options=[], rows=5, description="Basket", layout=W.Layout(width="620px"))
        self.b_items.add_class("wb-basket-items")
        self.b_remove = W.Button(description="Remove selected", icon="minus")
        self.b_remove.add_class("wb-basket-remove")
        self.b_clear = W.Button(description="Clear basket", icon="trash")
        self.b_clear.add_class("wb-basket-clear")
        self.b_summary = _html(R.basket_html([], self.data), "wb-basket-summary")
        self.b_customer = self._customer_picker("wb-basket-customer", optional=True)
        self.b_recs = _html("", "wb-basket-recs")
        intro = _html("<div class='page-intro'>The transaction page of the POS: build a basket; the recommendations "
                      "follow it. Attach a customer to see them change.</div>")
        self.b_add.on_click(lambda _: self._basket_add())
        self.b_remove.on_click(lambda _: self._basket_remove())
        self.b_clear.on_click(lambda _: self._basket_set([]))
        self.b_customer.on_change(lambda _: self._refresh_basket())
        return W.VBox([
            intro,
            self.b_product.widget,
            W.HBox([self.b_card, self.b_add], layout=W.Layout(align_items="center", gap="16px")),
            W.HBox([self.b_items, W.VBox([self.b_remove, self.b_clear])]),
            self.b_summary,
            self.b_customer.widget,
            self.b_recs,
        ])

    def _customer_page(self) -> W.Widget:
        self.c_customer = self._customer_picker("wb-customer", optional=False)
        self.c_summary = _html("", "wb-customer-summary")
        self.c_wish = _html("", "wb-customer-wish-list")
        self.c_recs = _html("", "wb-customer-recs")
        intro = _html("<div class='page-intro'>The customer page of the POS: history, wish list and what to suggest.</div>")
        if len(self.data.customers):  # start on the most frequent customer
            self.c_customer.value = str(self.data.customers.index[0])
        self.c_customer.on_change(lambda _: self._refresh_customer())
        return W.VBox([intro, self.c_customer.widget, self.c_summary, self.c_wish,
                       _html("<b>Recommendations</b>"), self.c_recs])

    def _insights_page(self) -> W.Widget:
        from workbench import tracking

        self.i_best = _html("", "wb-store-best-sellers")
        self.i_trending = _html("", "wb-store-trending")
        algorithm = self.info.get("algorithm")
        try:
            comparison = tracking.last_pipeline_comparison()
        except Exception as error:  # noqa: BLE001 - no pipeline run logged yet is fine
            comparison, note = None, f"<div class='muted'>No pipeline comparison available ({error}).</div>"
        else:
            note = ""
        children = [_html("<h3 style='margin:4px 0'>Algorithms of the last pipeline run</h3>"
                          "<div class='muted'>each fitted on the sales before the split and scored once on the test window "
                          "after it; the live model was chosen on the validation windows before the split, not on these figures"
                          "</div>" + note)]
        fig = R.comparison_figure(comparison, algorithm) if comparison is not None else None
        if fig is not None:
            image = W.Image(value=R.figure_png(fig), format="png", layout=W.Layout(max_width="100%"))
            image.add_class("wb-comparison-chart")
            children.append(image)
        if comparison is not None:
            children.append(_html(R.comparison_table(comparison, algorithm), "wb-comparison-table"))
        children.append(_html("<h3 style='margin:4px 0'>Best sellers and trending items</h3>"
                              "<div class='muted'>for the store chosen above, from the cleansed sales</div>"))
        children.append(W.HBox([self.i_best, self.i_trending], layout=W.Layout(gap="24px", flex_flow="row wrap")))
        return W.VBox(children)

    # -- behaviour -------------------------------------------------------------------------------
    @property
    def store_id(self) -> str | None:
        return self.store.value or None

    def recommend(self, scenario: str, customer_id: str | None, product_ids) -> pd.DataFrame:
        request = D.request_frame(scenario, customer_id, product_ids, self.k, self.store_id)
        return self.model.predict(request)

    def _recommendations_html(self, page: str, scenario: str, customer_id, product_ids, caption: str) -> str:
        output = self.recommend(scenario, customer_id, product_ids)
        off = D.turned_off_reason(output)
        if off:
            if "pos-off-banner" not in self.status.value:  # the model says so though its tags did not
                self.status.value = R.wrap(R.pos_off_banner(self.legal_entity))
            return R.wrap(R.turned_off_message(off, page))
        rows = D.recommendation_rows(output, self.data, request=0)
        return R.wrap(R.recommendations_table(rows, page, self.data.currency, caption, customer_id, product_ids))

    def _refresh_all(self) -> None:
        self._refresh_product()
        self._refresh_basket()
        self._refresh_customer()
        self._refresh_store()

    def _product_changed(self) -> None:
        self.p_card.value = R.wrap(R.product_card(self.data.product(self.p_product.value), self.data.currency))
        self._refresh_product()

    @_guarded(lambda self: self.p_recs)
    def _refresh_product(self) -> None:
        product = self.p_product.value
        if not product:
            self.p_recs.value = R.wrap("<div class='muted'>Pick a product to see what goes with it.</div>")
            return
        customer = self.p_customer.value
        caption = "Frequently bought together" + (f", for customer {customer}" if customer else "")
        self.p_recs.value = self._recommendations_html("product", "product", customer, [product], caption)

    def _basket_add(self) -> None:
        product = self.b_product.value
        if product and product not in self.basket:
            self._basket_set(self.basket + [product])

    def _basket_remove(self) -> None:
        if self.b_items.value:
            self._basket_set([p for p in self.basket if p != self.b_items.value])

    def _basket_set(self, items: list[str]) -> None:
        self.basket = list(items)
        labels = [(D.product_label(self.data.catalog.loc[p], self.data.currency) if p in self.data.catalog.index else p, p)
                  for p in self.basket]
        self.b_items.options = labels
        self.b_items.index = None
        self.b_summary.value = R.wrap(R.basket_html(self.basket, self.data))
        self._refresh_basket()

    @_guarded(lambda self: self.b_recs)
    def _refresh_basket(self) -> None:
        if not self.basket:
            self.b_recs.value = R.wrap("<div class='muted'>Add products to the basket to see recommendations.</div>")
            return
        customer = self.b_customer.value
        caption = "Complete the basket" + (f", for customer {customer}" if customer else "")
        self.b_recs.value = self._recommendations_html("basket", "basket", customer, self.basket, caption)

    @_guarded(lambda self: self.c_recs)
    def _refresh_customer(self) -> None:
        customer = self.c_customer.value
        if not customer and not len(self.data.customers):
            # a retailer without loyalty members: nobody to pick; the POS page shows what it shows a stranger
            self.c_summary.value = R.wrap(R.no_customers_message(self.legal_entity))
            self.c_wish.value = ""
            self.c_recs.value = self._recommendations_html("customer", "customer", None, [], "For a shopper the POS does not know")
            return
        if not customer:
            self.c_summary.value = R.wrap("<div class='muted'>Pick a customer.</div>")
            self.c_wish.value = ""
            self.c_recs.value = ""
            return
        currency = self.data.currency
        self.c_summary.value = R.wrap(R.customer_summary_html(D.customer_summary(self.data, customer), currency))
        wishes = D.wish_list(self.data, customer)
        self.c_wish.value = R.wrap(R.wish_list_html(wishes, currency))
        caption = f"For customer {customer}" + (f", with their wish list of {len(wishes)}" if len(wishes) else "")
        self.c_recs.value = self._recommendations_html("customer", "customer", customer, list(wishes["product_id"]), caption)

    @_guarded(lambda self: self.i_best)
    def _refresh_store(self) -> None:
        store, currency = self.store_id, self.data.currency
        best = D.store_top_items(self.data, store, k=10)
        trending = D.store_top_items(self.data, store, k=10, half_life_days=D.TRENDING_HALF_LIFE_DAYS)
        self.i_best.value = R.wrap(R.store_top_html(best, "best_sellers", store, currency))
        self.i_trending.value = R.wrap(R.store_top_html(trending, "trending", store, currency))


def show_dashboard(legal_entity: str | None = None, registered_model_name: str = "pos-recommender", k: int = 10) -> W.Widget:
    """Build the dashboard; the notebook displays the returned widget."""
    return Dashboard(legal_entity, registered_model_name, k).widget
