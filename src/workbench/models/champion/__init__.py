"""The champion: the signals each POS page needs, blended per page, then re-ranked by a learnt model.

Repeat purchases rule the customer page (retail customers re-buy), co-purchase structure rules the
transaction and product pages, and what is selling right now fills the rest; where the catalog has
categories, the categories a customer buys point to their best sellers (research:
notebooks/research/history_category.ipynb). Each signal is scaled to [0, 1] per request.

Two stages, both learnt on the last `validation_days` of the training data (the protocol of
EVALUATION.md one period earlier, never the test window):

1. a linear blend per page (weights: DEFAULT_WEIGHTS, or a deterministic coordinate search over GRID
   when `second_stage=False`); it ranks the long tail and gives every item its human reason;
2. candidates (the union of every signal's top `candidates_per_signal`) re-ranked per page by a
   gradient-boosted classifier over the signals plus what a linear blend cannot use: how often and
   how long ago the customer bought the item, the item's popularity, trend, repeat rate and age, the
   basket's size; on the customer pages also the customer's own pace (the share of their baskets
   holding the item, their rate of buying it, the days since their last buy). One model per page,
   trained pointwise on the validation cases. The product page's model also sees P(item | viewed
   item) (all baskets and recent ones), its lift and P(viewed | item), draws candidates from
   P(item | viewed item) too, and gets `product_ranker_iterations` trees.
   With `catalog_features`, every page's model also sees how alike the names and categories are.

Every default here was picked on validation windows before the evaluation split, never on the test
window: notebooks/research/champion_settings.ipynb compares the defaults with their alternatives on
the validation windows before Online Retail's 2011-11-09 split (`make research`; its figure and
table are benchmarks/results/research/champion_settings_2011-11-09.*). The signals are then
refitted on all the data.

The parts, each a pure function of (fitted state, batch of requests):

============== =================================================================================
pages          the vocabulary: signals (COMPONENTS), pages, FEATURES, default weights
state          ChampionState, the immutable fitted state, and `fit_state`
signals        every signal of a batch
candidates     the (request, item) pairs the re-ranker scores
features       what the re-ranker sees of each pair
ranker         the per-page blend, the re-ranking, and training a re-ranker
explanations   the reason behind each recommended item
tuning         weights and re-rankers learnt on validation windows
model          `Champion`, the Recommender, and `Blend`, its first stage alone
============== =================================================================================
"""

from workbench.models.champion.model import Blend, Champion
from workbench.models.champion.pages import COMPONENTS, DEFAULT_WEIGHTS, FEATURES, PAGES, PRODUCT_ONLY, page_of
from workbench.models.champion.state import ChampionState

__all__ = ["COMPONENTS", "DEFAULT_WEIGHTS", "FEATURES", "PAGES", "PRODUCT_ONLY", "Blend", "Champion", "ChampionState", "page_of"]
