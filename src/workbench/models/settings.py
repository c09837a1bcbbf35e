"""Each algorithm's constructor arguments, as a notebook gives them: 03_train's flat parameters
(`sar_half_life_days`, `ease_lambda`, ...), the run's seed, and per-algorithm overrides, checked
against what the algorithm's constructor takes (a misspelt argument is an error, not a no-op)."""

from __future__ import annotations

import inspect

# 03_train's flat notebook parameters -> (algorithm or algorithms, constructor argument names it may go by)
FLAT_HYPERPARAMETERS = {
    "sar_similarity": ("sar", ("similarity",)),
    "sar_half_life_days": ("sar", ("half_life_days",)),
    "als_factors": ("als", ("factors",)),
    "als_iterations": ("als", ("iterations",)),
    "bpr_factors": ("bpr", ("factors",)),
    "bpr_iterations": ("bpr", ("iterations",)),
    "item_knn_neighbours": ("item_knn", ("neighbours", "neighbors", "k")),
    "ease_lambda": ("ease", ("lambda_", "l2", "regularization", "lam", "lambda")),
    "repeat_half_life_days": ("repeat", ("half_life_days",)),
    "trending_half_life_days": ("trending", ("half_life_days",)),
    # the champion's settings hold for its blend alone too (the same fit, less its re-rankers)
    "validation_days": (("champion", "blend"), ("validation_days",)),
    # the champion's own validation windows are no longer than the test window they imitate
    "test_days": (("champion", "blend"), ("max_validation_days",)),
    "tune_champion": (("champion", "blend"), ("tune",)),
}


def _signature(algorithm: str) -> inspect.Signature:
    from workbench.models import MODELS  # the registry imports every model; this module is below none

    if algorithm not in MODELS:
        raise ValueError(f"unknown algorithm {algorithm!r}; known: {sorted(MODELS)}")
    return inspect.signature(MODELS[algorithm])


def accepted_arguments(algorithm: str) -> tuple[set[str], bool]:
    """(the named constructor arguments of `algorithm`, whether it also takes any keyword)."""
    parameters = _signature(algorithm).parameters.values()
    names = {p.name for p in parameters if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)}
    return names, any(p.kind == p.VAR_KEYWORD for p in parameters)


def defaults(algorithm: str) -> dict:
    """The constructor's default of each argument that has one."""
    return {n: p.default for n, p in _signature(algorithm).parameters.items() if p.default is not inspect.Parameter.empty}


def algorithm_hyperparameters(
    algorithms: list[str], flat: dict | None = None, overrides: dict | None = None, seed: int | None = None
) -> dict[str, dict]:
    """Each algorithm's constructor arguments: the flat notebook parameters (`sar_half_life_days`,
    `ease_lambda`, ...) where the algorithm takes them, the seed (`seed` / `random_state`), then
    `overrides` ({"sar": {"similarity": "lift"}}), which must name arguments the algorithm takes."""
    overrides = dict(overrides or {})
    unknown = sorted(set(overrides) - set(algorithms))
    if unknown:
        raise ValueError(f"hyperparameters given for {unknown}, which are not among algorithms {list(algorithms)}")
    result = {}
    for algorithm in algorithms:
        accepted, takes_any = accepted_arguments(algorithm)
        params = {}
        for flat_name, value in (flat or {}).items():
            targets, candidates = FLAT_HYPERPARAMETERS.get(flat_name, ((), ()))
            if algorithm not in ((targets,) if isinstance(targets, str) else targets) or value is None:
                continue
            argument = next((c for c in candidates if c in accepted), None)
            if argument is not None:
                params[argument] = value
        if seed is not None:
            for argument in ("seed", "random_state"):
                if argument in accepted:
                    params[argument] = seed
                    break
        extra = dict(overrides.get(algorithm) or {})
        bad = sorted(set(extra) - accepted) if not takes_any else []
        if bad:
            raise ValueError(f"hyperparameters {bad} are not arguments of {algorithm!r}; it takes {sorted(accepted)}")
        params.update(extra)
        result[algorithm] = params
    return result
