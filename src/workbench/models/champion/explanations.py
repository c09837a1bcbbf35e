"""The champion's reason for each recommended item, in the retailer's words: the signal that put the
item on the list, and where it names one, the product of the basket or history behind it."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from workbench.models.base import Batch, entry_positions, row_items
from workbench.models.champion.pages import COMPONENTS, REASONS
from workbench.models.champion.ranker import Scored


def explain(state, batch: Batch, scored: Scored, r: int, items: np.ndarray) -> list[str]:
    """The reasons for `items` of request `r` of `batch`, scored as `scored`."""
    model, request = batch.model, batch[r]
    signals = scored.signals
    inputs, history = batch.inputs(), batch.history(state.presence)
    # the signal that contributes most to the page's blend; where the page's weights give the
    # item nothing (the re-ranker found it), the strongest signal behind it
    unweighted = np.stack([signals[c][r, items] for c in COMPONENTS])
    weighted = scored.weights[:, r] * unweighted
    winners = np.where(weighted.max(axis=0) > 0, weighted.argmax(axis=0), unweighted.argmax(axis=0))
    no_signal = (weighted.max(axis=0) <= 0) & (unweighted.max(axis=0) <= 0)
    reasons = []
    for item, winner, nothing in zip(items, winners, no_signal):
        component = COMPONENTS[winner]
        if nothing:
            reasons.append("best seller")
        elif component in ("basket_copurchase", "recent_together", "together"):
            matrix = {"basket_copurchase": state.basket_similarity, "recent_together": state.recent_together, "together": state.together}[component]
            source = _top_source(row_items(inputs, r), matrix, item)
            reasons.append(f"bought together with {model.item_label(source)}" if source >= 0 else "bought together")
        elif component == "customer_copurchase":
            source = _top_source(row_items(inputs, r), state.customer_similarity, item)
            reasons.append(f"customers who buy {model.item_label(source)} also buy this" if source >= 0 else "bought together")
        elif component in ("similar_baskets", "own_baskets"):
            reasons.append("often in baskets like yours" if component == "similar_baskets" else "you bought this with these items before")
        elif component in ("history_copurchase", "recent_copurchase"):
            source = _top_source(row_items(history, r), state.customer_similarity, item)
            reasons.append(f"customers who buy {model.item_label(source)} also buy this" if source >= 0 else "for you")
        elif component == "wish_list":
            on_list = request.scenario == "customer" and model.item_ids[item] in request.product_ids
            if on_list:
                reasons.append("on your wish list")
            else:
                source = _top_source(row_items(inputs, r), state.basket_similarity, item)
                reasons.append(f"goes with {model.item_label(source)} on your wish list" if source >= 0 else "goes with your wish list")
        elif component in ("repeat", "usual_with_basket", "recent") or (component == "next_purchases" and _bought(model, request, item)):
            bought = _bought(model, request, item)
            # next_purchases' own items are re-buys it expects: said as the repeat signal says them
            reason = REASONS["repeat" if component == "next_purchases" else component]
            reasons.append(reason if bought >= 2 or component == "recent" else "you bought this before")
        elif component == "history_category" and state.category_names is not None:
            category = state.category_names[state.category_of[item].indices]
            reasons.append(f"a best seller in {category[0]}, a category you buy" if len(category) else REASONS[component])
        elif component == "store" and request.store_id is not None:
            reasons.append(f"best seller at {request.store_id}")
        else:
            reasons.append(REASONS[component])
    return reasons


def _bought(model, request, item: int) -> float:
    """Baskets of the request's customer holding `item` (0 for none, or no customer)."""
    c = model.customer_index.get(request.customer_id)
    return model.history[c, item] if c is not None else 0


def _top_source(sources: np.ndarray, similarity, item: int) -> int:
    """Which of `sources` gives `item` the most (`similarity` dense or sparse items x items); -1 for none."""
    if len(sources) == 0:
        return -1
    if not sp.issparse(similarity):
        return int(sources[np.argmax(np.asarray(similarity[sources, item]).ravel())])
    # read straight from the CSR rows: scipy's fancy indexing builds two matrices per call, ~0.2 ms,
    # and a POS list explains ten items
    similarity = similarity.tocsr()
    starts = similarity.indptr[sources]
    lengths = similarity.indptr[np.asarray(sources) + 1] - starts
    take, _ = entry_positions(starts, lengths)
    hit = similarity.indices[take] == item
    column = np.zeros(len(sources), dtype=np.float64)
    np.add.at(column, np.repeat(np.arange(len(sources)), lengths)[hit], similarity.data[take[hit]])  # duplicates sum, as scipy's
    return int(sources[np.argmax(column)])
