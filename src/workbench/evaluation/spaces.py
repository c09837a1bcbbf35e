"""What the per-retailer search searches: per algorithm, per constructor argument, the range and
why (`SEARCH_SPACES`), the switches tried before any sampled trial (`Choice.probe`), the settings
the single algorithms' searches give the blend as first guesses (`SEEDED_BY`), and the settings that
buy quality with fit time (`ECONOMIES`: amounts and switches), tried cheaper once the search has
chosen. Data and small helpers only; `evaluation.search` runs the search.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from workbench.models.settings import defaults


@dataclass(frozen=True)
class FloatRange:
    low: float
    high: float
    log: bool = False
    why: str = ""


@dataclass(frozen=True)
class IntRange:
    low: int
    high: int
    log: bool = False
    why: str = ""


@dataclass(frozen=True)
class Choice:
    """One of `options`. A `probe`d choice is also tried before any sampled trial: the best trial so
    far with only this argument changed (to its first other option), a switch that a short budget
    must not leave to the sampler's luck; it is kept by the same rule as any trial (search.choose_trial)."""

    options: tuple
    why: str = ""
    probe: bool = False


# the signals the champion's blend is made of (the blend alone and the champion search them alike)
BLEND_SPACE = {
    "basket_lambda": FloatRange(5.0, 2000.0, log=True, why="EASE on baskets (transaction / product pages)"),
    "customer_lambda": FloatRange(5.0, 5000.0, log=True, why="EASE on customers (customer page)"),
    "repeat_half_life_days": FloatRange(7.0, 730.0, log=True),
    "trending_half_life_days": FloatRange(1.0, 180.0, log=True),
}

# The blend's signals are single algorithms of their own, searched on the same windows: what a
# single algorithm's search kept for one of them is the blend's (and the champion's) first guess for
# it, its first trial after the probes. blend argument -> (single algorithm, its argument, the
# settings that argument needs to mean the same: EASE's lambda is the customer or the basket one).
SEEDED_BY = {
    "repeat_half_life_days": ("repeat", "half_life_days", {}),
    "trending_half_life_days": ("trending", "half_life_days", {}),
    "customer_lambda": ("ease", "lambda_", {"matrix": "customer"}),
    "basket_lambda": ("ease", "lambda_", {"matrix": "basket"}),
}

# algorithm -> constructor argument -> range. Ranges are wide (orders of magnitude where the
# argument is a scale) because other retailers are not Online Retail.
SEARCH_SPACES: dict[str, dict[str, Any]] = {
    "best_sellers": {
        "per_store": Choice((True, False), "a store's own best sellers help where stores differ, hurt where few sell"),
    },
    "trending": {
        "half_life_days": FloatRange(1.0, 365.0, log=True, why="how fast the assortment turns over"),
        "per_store": Choice((True, False)),
    },
    "repeat": {
        "half_life_days": FloatRange(3.0, 730.0, log=True, why="how long a habit lasts; long = frequency"),
        "use_quantity": Choice((False, True), "whether bulk buys signal loyalty"),
    },
    "sar": {
        "level": Choice(("basket", "customer"), "bought together in one basket, or by one customer"),
        "similarity": Choice(("jaccard", "lift", "count"), "popular complements (count) or specific ones (lift)"),
        "half_life_days": FloatRange(3.0, 730.0, log=True, why="decay of the customer's history"),
        "support": IntRange(1, 5, why="co-occurrences below this are noise"),
    },
    "item_knn": {
        "neighbours": IntRange(5, 400, log=True, why="how many similar items each item keeps"),
        "matrix": Choice(("customer", "basket")),
    },
    "ease": {
        "lambda_": FloatRange(5.0, 5000.0, log=True, why="L2 strength; grows with the number of users per item"),
        "matrix": Choice(("customer", "basket")),
    },
    "als": {
        "factors": IntRange(8, 128, log=True),
        "iterations": IntRange(5, 40),
        "regularization": FloatRange(1e-3, 1.0, log=True),
        "alpha": FloatRange(0.1, 40.0, log=True, why="confidence per purchase"),
        "bm25": Choice((True, False)),
    },
    "bpr": {
        "factors": IntRange(8, 128, log=True),
        "iterations": IntRange(20, 300, log=True),
        "learning_rate": FloatRange(1e-3, 0.1, log=True),
        "regularization": FloatRange(1e-4, 0.1, log=True),
    },
    "blend": BLEND_SPACE,
    "champion": {
        **BLEND_SPACE,
        "candidates_per_signal": IntRange(20, 100, log=True),
        "ranker_iterations": IntRange(20, 150, log=True),
        "catalog_features": Choice((False, True), "names and categories alike: a series bought together, or substitutes", probe=True),
        "search_every_page": Choice((False, True), "the basket and new-items pages' blends from this retailer's "
                                    "validation too, or from the defaults", probe=True),
    },
}


@dataclass(frozen=True)
class Economy:
    """A setting that buys validation quality with fit time. It is not searched: once the search has
    chosen, the chosen value is cut by `factor` up to `steps` times (`Search.economize`), and each cut
    is kept while its validation objective stays within one standard error of the difference below
    the chosen trial's (the one-standard-error rule, pointed at fit cost: Breiman et al. keep the
    simplest model within one SE of the best; here the cheapest fit). The first cut that loses more
    ends it, and a retailer whose data needs the setting keeps it."""

    factor: float = 0.5
    steps: int = 2
    why: str = ""

    def cuts(self, value: float) -> list:
        """The values tried after `value`, cheapest last (ints stay ints)."""
        values = []
        for _ in range(self.steps):
            value = round(value * self.factor) if isinstance(value, int) else value * self.factor
            values.append(value)
        return values


@dataclass(frozen=True)
class CostlySwitch:
    """A switch that buys validation quality with fit time. Searched like any switch; once the search
    has chosen it on, it is tried off (one cut, `Search.economize`) and kept off while that stays
    within one standard error of the choice: the switch must earn its fit time by more than the
    luck of the validation cases, against the chosen trial with only this switch changed."""

    why: str = ""
    steps: int = 1

    def cuts(self, value: bool) -> list:
        """The values tried after `value`: off, where it is on."""
        return [False] if value else []


# algorithm -> constructor argument -> Economy or CostlySwitch, cut in this order. The switch first:
# its cut is often a trial the search already ran (its probe's starting point). Every page's blend
# searched (`search_every_page`): the weight search took 3.8x as long on the demo retailer's USRT
# (results/champion_fit_parts.md) and its validation trials about a fifth longer on Online Retail
# (results/quality.json); at Online Retail (2011-09-09), where it gained 0.0004 (SE 0.0017) over its
# absence, the champion's fit went past 5x the slowest single algorithm's with it and back under 5x
# without (results/costly_switch/). The re-rankers' rows: on Online Retail's validation windows
# 12,500 cost more than one standard error at every split and 25,000 at one of three, on the demo
# retailer's legal entities nothing measurable while the fit took 0.76-0.84x as long (beside another
# notebook: 0.56-0.74x alone, before the case weights) (notebooks/research/reranker_rows): what a
# retailer needs is its own data's answer.
ECONOMIES: dict[str, dict[str, Economy | CostlySwitch]] = {
    "champion": {
        "search_every_page": CostlySwitch("every page's blend weights searched on validation, not only the customer and product pages'"),
        "max_training_rows": Economy(0.5, 2, "rows each page's re-ranker learns from; its training time grows with them"),
    },
}


def search_space(algorithm: str, fixed: dict | None = None) -> dict[str, Any]:
    """The space searched for `algorithm`, less the arguments `fixed` by the user; every name must
    be an argument of the algorithm (a renamed argument is an error, not a silent no-op)."""
    space = {k: v for k, v in SEARCH_SPACES.get(algorithm, {}).items() if k not in (fixed or {})}
    accepted = defaults(algorithm)
    unknown = sorted(set(space) - set(accepted))
    if unknown:
        raise ValueError(f"search space of {algorithm!r} names {unknown}, which it does not take; it takes {sorted(accepted)}")
    return space


def probed_switches(space: dict[str, Any]) -> list[str]:
    """The arguments of `space` that are probed switches (`Choice.probe`), in the space's order."""
    return [name for name, spec in space.items() if isinstance(spec, Choice) and spec.probe]


def within(spec, value) -> bool:
    if isinstance(spec, Choice):
        return value in spec.options
    return value is not None and not isinstance(value, bool) and spec.low <= value <= spec.high


def first_guesses_for(space: dict, guesses: dict) -> dict:
    """The `guesses` (e.g. `seeded_settings`) a search of `space` takes: those it searches."""
    return {name: value for name, value in guesses.items() if name in space}


def seeded_last(algorithms) -> list[str]:
    """`algorithms` with the ones that take first guesses (SEEDED_BY) after the ones that give them."""
    takes = [a for a in algorithms if first_guesses_for(SEARCH_SPACES.get(a, {}), SEEDED_BY)]
    return [a for a in algorithms if a not in takes] + takes


def seeded_settings(kept: dict[str, dict]) -> dict:
    """The blend's first guesses (SEEDED_BY) from what the single algorithms' searches kept
    (`kept`: algorithm -> its kept settings)."""
    seeds = {}
    for name, (single, argument, needs) in SEEDED_BY.items():
        settings = kept.get(single)
        if settings is not None and argument in settings and all(settings.get(k) == v for k, v in needs.items()):
            seeds[name] = settings[argument]
    return seeds


def starting_point(algorithm: str, space: dict) -> dict:
    """The algorithm's defaults, for the arguments searched (None, e.g. no decay, is left out:
    TPE cannot start from it, and the sampler then draws that one)."""
    given = defaults(algorithm)
    start = {}
    for name, spec in space.items():
        value = given.get(name)
        if value is not None and within(spec, value):
            start[name] = value
    return start




def economies(algorithm: str, fixed: dict | None = None) -> dict[str, Economy | CostlySwitch]:
    """The economies of `algorithm` (ECONOMIES) less the arguments `fixed` by the user; every name
    must be an argument of the algorithm."""
    found = {k: v for k, v in ECONOMIES.get(algorithm, {}).items() if k not in (fixed or {})}
    unknown = sorted(set(found) - set(defaults(algorithm)))
    if unknown:
        raise ValueError(f"economies of {algorithm!r} name {unknown}, which it does not take")
    return found
