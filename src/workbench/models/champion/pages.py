"""The champion's vocabulary: its signals, the POS pages it tunes for, the re-ranker's features and
the defaults found on validation windows (see benchmarks/results/quality.md)."""

from __future__ import annotations

from workbench.models.base import Request
from workbench.models.cases import headline

COMPONENTS = (
    "repeat",  # the customer's own re-buys, recency-weighted
    "recent",  # what the customer bought in the last weeks
    "basket_copurchase",  # bought in the same basket as the basket's items / the viewed product
    "customer_copurchase",  # bought by the same customers as the basket's items / the viewed product
    "history_copurchase",  # bought by customers whose history looks like this customer's
    "recent_copurchase",  # the same from the customer's recent purchases: taste moves with the season
    "usual_with_basket",  # what the customer buys regularly and goes with this basket
    "recent_together",  # share of the input's recent baskets (30-day half-life) that also held the item
    "together",  # P(item | input item): share of all the input's baskets that also held it (favours popular complements)
    "similar_baskets",  # what completed the most similar past baskets (session k-nearest-neighbours)
    "own_baskets",  # what completed this customer's own past baskets like this one
    "trending",
    "store",  # the store's own recent best sellers
    "wish_list",
    "wish_category",  # popular items of the wish list's categories
    "history_category",  # popular items of the categories the customer buys, by their share of its purchases
    "similar_customers",  # what the customers who buy most like this one buy (customer pages only)
    "next_purchases",  # what customers with this history went on to buy in the next weeks (customer pages only)
)
# signals added after re-rankers were first registered: their feature columns come after
# EXTRA_FEATURES, so that a ranker pickled before reads its own first columns (ranker.rerank); the
# latest after CUSTOMER_PACE, for the same reason
LATER_COMPONENTS = ("history_category",)
LATEST_COMPONENTS = ("similar_customers", "next_purchases")
# the pages the weights are tuned for; "product_customer" = product page with a customer attached
PAGES = ("customer", "customer_new_items", "basket", "product", "product_customer")
# the learnt re-ranker of each page (a product page with a customer is a one-item basket)
RANKER_OF_PAGE = {"customer": "customer", "customer_new_items": "customer_new_items", "basket": "basket", "product": "product", "product_customer": "basket"}
REASONS = {
    "repeat": "you buy this regularly",
    "usual_with_basket": "you buy this regularly",
    "recent": "you bought this recently",
    "trending": "trending now",
    "store": "best seller",
    "wish_list": "on your wish list",
    "wish_category": "in your wish list's category",
    "history_category": "a best seller in a category you buy",
    "similar_customers": "customers who buy like you buy this",
    "next_purchases": "customers who bought what you buy bought this next",
}
# the POS page whose headline metric each tuning page is judged on: a product page with a customer
# attached is still the product page
SCENARIO_OF_PAGE = {"customer": "customer", "customer_new_items": "customer_new_items", "basket": "basket", "product": "product", "product_customer": "product"}
# the metric each page is tuned for: a lookup into the one definition, `workbench.models.cases.HEADLINE`
TUNING_METRIC = {page: headline(SCENARIO_OF_PAGE[page]) for page in PAGES}
GRID = (0.0, 0.03, 0.1, 0.2, 0.35, 0.5, 0.75, 1.0, 1.5, 2.5)

# the weights the coordinate search found on Online Retail (a good start anywhere)
DEFAULT_WEIGHTS = {
    "customer": {"repeat": 0.75, "history_copurchase": 0.2, "recent_copurchase": 0.1, "trending": 0.1, "store": 0.35, "wish_list": 0.5, "wish_category": 0.1},
    "customer_new_items": {"history_copurchase": 1.0, "recent_copurchase": 0.5, "trending": 0.5, "store": 0.03, "wish_list": 0.5, "wish_category": 0.2},
    "basket": {"basket_copurchase": 1.0, "customer_copurchase": 0.5, "repeat": 0.35, "usual_with_basket": 0.03, "own_baskets": 0.1},
    "product": {"basket_copurchase": 1.0, "customer_copurchase": 0.5, "similar_baskets": 2.5, "trending": 0.1, "store": 0.75},
    "product_customer": {"basket_copurchase": 0.75, "customer_copurchase": 0.5, "repeat": 1.0, "similar_baskets": 1.5, "own_baskets": 0.5, "trending": 0.1},
}
# what the re-ranker sees besides the signals (one column each)
EXTRA_FEATURES = (
    "blend",  # the page's linear blend
    "history_count",  # baskets of this customer holding the item
    "last_bought_days",  # days since this customer last bought it (-1: never)
    "rebuy_due",  # days since the last buy over the customer's usual interval between buys of it
    "customer_baskets",
    "basket_size",
    "has_customer",
    "item_popularity",  # log baskets holding the item
    "item_trend",  # recent share of its sales against its all-time share
    "item_repeat_rate",  # share of its buyers who bought it again
    "item_age_days",  # days since its first sale
    "item_idle_days",  # days since its last sale
    "item_basket_size",  # mean size of the baskets holding the item: big-basket items go with anything
    "input_popularity",  # how popular the viewed product / the basket's items are (mean log baskets)
    "basket_copurchase_raw",  # the co-purchase score before scaling: how sure the basket model is
    "together_raw",  # P(item | input item) before scaling
    "recent_together_raw",  # the same over recent baskets
    "together_lift",  # P(item | input) / P(item): together beyond popularity
    "together_reverse",  # P(input | item): how often the item comes with the input
    "together_rank",
    "similar_baskets_rank",
    "blend_rank",
    # the catalog's (`catalog_features`; 0 where off): names alike, by TF-IDF cosine, and the share
    # of the request's products (viewed, basket, wish list) in the candidate's category
    "name_similarity",
    "same_category",
)
# what the customer pages' re-rankers see of the customer's own pace (nothing on the other pages: on
# validation windows they lifted both customer pages and cost the demo retailer's basket page,
# notebooks/research/reranker_features). The last columns, for the reason of LATER_COMPONENTS.
# Trees split one column at a time: a ratio of two columns they see is a column of its own.
CUSTOMER_PACE = (
    "history_share",  # share of the customer's baskets holding the item
    "purchase_rate",  # baskets of the customer holding the item per day since the customer's first buy
    "customer_idle_days",  # days since the customer's last buy of anything (-1: no customer)
)
FEATURES = (tuple(c for c in COMPONENTS if c not in LATER_COMPONENTS + LATEST_COMPONENTS) + EXTRA_FEATURES
            + LATER_COMPONENTS + CUSTOMER_PACE + LATEST_COMPONENTS)
PRODUCT_ONLY = ("together", "together_raw", "recent_together_raw", "together_lift", "together_reverse", "together_rank")


def page_of(request: Request) -> str:
    if request.scenario == "customer":
        return "customer_new_items" if request.exclude_purchased else "customer"
    if request.scenario == "product" and request.customer_id is not None:
        return "product_customer"
    return request.scenario

