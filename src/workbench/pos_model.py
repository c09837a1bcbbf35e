"""The POS serving contract: any fitted recommender as an MLflow pyfunc model.

The POS calls::

    model = mlflow.pyfunc.load_model("models:/pos-recommender@champion")
    model.predict(requests_df)                                      # or POST /invocations

with one row per request:

=============== ============================= ==================================================
column          type                          meaning
=============== ============================= ==================================================
``scenario``    str, required                 ``product`` | ``basket`` | ``customer``
``customer_id`` str or null, optional         the identified customer, if any
``product_ids`` list of str, optional         viewed product / basket items / wish list
``k``           int or null, optional         list length; 10 when absent or null
``store_id``    str or null, optional         the store (best sellers per store)
=============== ============================= ==================================================

and answers one row per recommended item: ``request`` (row position of the request in the
input), ``rank`` (1..k), ``product_id``, ``score`` and ``reason`` (a short sentence for the
cashier, e.g. "bought together with 85123A", "you buy this regularly", "best seller").

What one call may cost is bounded: at most ``max_batch_rows`` requests (10,000 by default), ``k``
at most 100, ids at most 128 characters and 1,000 product ids per request; anything beyond is an
error naming the row and the column (HTTP 400). Every answer is strict JSON: a score that is not a
number (a turned-off legal entity's row) is null, never NaN.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import pickle
import tempfile
from numbers import Integral
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pandas as pd
import threadpoolctl
from mlflow.exceptions import MlflowException
from mlflow.models import ModelSignature
from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE
from mlflow.types.schema import AnyType, Array, ColSpec, ParamSchema, ParamSpec, Schema

from workbench.models.base import SCENARIOS, Recommender, Request
from workbench.parameters import TRUE

_logger = logging.getLogger(__name__)

DEFAULT_K = 10
MAX_K = 100  # a POS panel shows a handful; a list of 100 is already a report, not a request
MAX_ID_LENGTH = 128  # a customer, product or store id; longer ones are an error, never echoed
MAX_PRODUCTS = 1000  # product ids per request (a basket, a wish list)
MAX_BATCH_ROWS = 10_000  # requests per call
INPUT_COLUMNS = ("scenario", "customer_id", "product_ids", "k", "store_id")
OUTPUT_COLUMNS = ("request", "rank", "product_id", "score", "reason")
SETTINGS_KEYS = ("legal_entity", "enable_pos_recommendations", "algorithm", "trained_at")
RECOMMENDER_ARTIFACT = "recommender"
# reasons that only say "popular": an unknown customer / product note is appended to them
_POPULARITY_REASONS = ("best seller", "trending")


def disabled_reason(legal_entity: str) -> str:
    return f"POS recommendations are turned off for legal entity {legal_entity}"


def normalize_settings(settings: dict | None, recommender: Recommender | None = None) -> dict:
    """The legal entity's serving settings, with defaults; `algorithm` defaults to the model's name."""
    settings = dict(settings or {})
    if "legal_entity" not in settings or not settings["legal_entity"]:
        raise ValueError("settings need a 'legal_entity'")
    enabled = settings.get("enable_pos_recommendations", True)
    if not isinstance(enabled, (bool, np.bool_)):
        raise ValueError(f"settings['enable_pos_recommendations'] must be a bool, got {enabled!r}")
    settings["legal_entity"] = str(settings["legal_entity"])
    settings["enable_pos_recommendations"] = bool(enabled)
    settings.setdefault("algorithm", getattr(recommender, "name", None) or "unknown")
    settings.setdefault("trained_at", pd.Timestamp.now(tz="UTC").isoformat(timespec="seconds"))
    settings["trained_at"] = str(settings["trained_at"])
    return settings


def _invalid(message: str) -> MlflowException:
    # INVALID_PARAMETER_VALUE: `mlflow models serve` answers 400 with this message
    return MlflowException(message, error_code=INVALID_PARAMETER_VALUE)


def _is_null(value) -> bool:
    if value is None or value is pd.NA or value is pd.NaT:
        return True
    return isinstance(value, float) and math.isnan(value)


def _records(model_input, max_rows: int | None = None) -> tuple[dict[str, list], int]:
    """Columns of the request frame as plain Python lists (no per-row pandas access)."""
    if isinstance(model_input, dict):
        model_input = [model_input]
    if isinstance(model_input, list):
        if not all(isinstance(r, dict) for r in model_input):
            raise _invalid("requests must be a DataFrame or a list of records (dicts)")
        model_input = pd.DataFrame.from_records(model_input) if model_input else pd.DataFrame()
    if not isinstance(model_input, pd.DataFrame):
        raise _invalid(f"requests must be a pandas DataFrame, not {type(model_input).__name__}")
    columns = {c: model_input[c].tolist() for c in INPUT_COLUMNS if c in model_input.columns}
    return _checked_columns(columns, len(model_input), list(model_input.columns), max_rows), len(model_input)


def _checked_columns(columns: dict[str, list], n: int, given: list, max_rows: int | None) -> dict[str, list]:
    if "scenario" not in columns:
        raise _invalid(
            "requests lack the column 'scenario' (one of 'product', 'basket', 'customer'); "
            f"columns given: {[quoted(c) for c in given[:20]]}"
        )
    if max_rows is not None and n > max_rows:
        raise _invalid(f"the call holds {n:,} requests; at most {max_rows:,} are answered per call: split it")
    return columns


def _as_id(value, row: int, column: str) -> str | None:
    if _is_null(value):
        return None
    if isinstance(value, (str, Integral)) and not isinstance(value, bool):
        return _checked_length(str(value), row, column)
    raise _invalid(f"request row {row}: {column} must be a string or null, got {quoted(value)}")


def _checked_length(value: str, row: int, column: str) -> str:
    if len(value) > MAX_ID_LENGTH:
        raise _invalid(f"request row {row}: {column} is {len(value):,} characters long ({quoted(value)}); ids are at most {MAX_ID_LENGTH}")
    return value


def quoted(value) -> str:
    """A value as an error message quotes it: never more than a few dozen characters."""
    text = repr(value)
    return text if len(text) <= 40 else f"{text[:32]}...{text[-5:]}"


def parse_requests(model_input, max_rows: int | None = MAX_BATCH_ROWS) -> list[Request]:
    """Validate the request frame and turn it into model Requests.

    Raises an MlflowException (INVALID_PARAMETER_VALUE, so HTTP 400) naming the first bad row, or
    the call's size where it holds more than `max_rows` requests.
    """
    columns, n = _records(model_input, max_rows)
    return _requests_from_columns(columns, n)


def parse_columns(columns: dict[str, list], n: int, max_rows: int | None = MAX_BATCH_ROWS) -> list[Request]:
    """`parse_requests` of requests given as columns (name -> list of n values), as the POS server
    reads them from JSON without building a DataFrame; columns other than INPUT_COLUMNS are ignored."""
    given = list(columns)
    columns = {c: columns[c] for c in INPUT_COLUMNS if c in columns}
    for name, values in columns.items():
        if not isinstance(values, list) or len(values) != n:
            raise _invalid(f"column {name} holds {len(values) if isinstance(values, list) else quoted(values)} values; the call has {n:,} requests")
    return _requests_from_columns(_checked_columns(columns, n, given, max_rows), n)


def _requests_from_columns(columns: dict[str, list], n: int) -> list[Request]:
    none = [None] * n
    scenarios = columns["scenario"]
    customers = columns.get("customer_id", none)
    products = columns.get("product_ids", none)
    ks = columns.get("k", none)
    stores = columns.get("store_id", none)
    requests = []
    for row in range(n):
        scenario = scenarios[row]
        if scenario not in SCENARIOS:
            raise _invalid(
                f"request row {row}: scenario {quoted(scenario)} is unknown; use one of {', '.join(SCENARIOS)}"
            )
        product_ids = products[row]
        if _is_null(product_ids):
            product_ids = ()
        elif isinstance(product_ids, np.ndarray):
            product_ids = product_ids.tolist()
        if not isinstance(product_ids, (list, tuple)):
            raise _invalid(
                f"request row {row}: product_ids must be a list of product ids, got "
                f"{type(product_ids).__name__} {quoted(product_ids)}"
            )
        if len(product_ids) > MAX_PRODUCTS:
            raise _invalid(f"request row {row}: product_ids holds {len(product_ids):,} ids; at most {MAX_PRODUCTS:,}")
        bad = [p for p in product_ids if _is_null(p) or not isinstance(p, (str, Integral)) or isinstance(p, bool)]
        if bad:
            raise _invalid(f"request row {row}: product_ids must hold product id strings, got {quoted(bad[0])}")
        product_ids = [_checked_length(str(p), row, "product_ids") for p in product_ids]
        if scenario in ("product", "basket") and not product_ids:
            what = "the viewed product" if scenario == "product" else "the basket's items"
            raise _invalid(f"request row {row}: scenario {scenario!r} needs product_ids ({what})")
        k = ks[row]
        if _is_null(k):
            k = DEFAULT_K
        elif isinstance(k, float) and k.is_integer():
            k = int(k)  # JSON nulls beside ints turn the column into floats
        if not isinstance(k, Integral) or isinstance(k, (bool, np.bool_)) or not 1 <= int(k) <= MAX_K:
            raise _invalid(f"request row {row}: k must be a positive integer (at most {MAX_K}), got {quoted(k)}")
        requests.append(
            Request(
                scenario=scenario,
                customer_id=_as_id(customers[row], row, "customer_id"),
                product_ids=tuple(product_ids),
                k=int(k),
                store_id=_as_id(stores[row], row, "store_id"),
            )
        )
    return requests


def _json_numbers(values: np.ndarray):
    """The scores as they are where every one is a number, else with null where one is not (JSON
    has no NaN or infinity, and strict clients reject the answer that holds one)."""
    finite = np.isfinite(values)
    if finite.all():
        return values
    return pd.Series([float(v) if ok else None for v, ok in zip(values, finite)], dtype="object")


class PosRecommenderModel(mlflow.pyfunc.PythonModel):
    """A fitted recommender with its legal entity's settings, served to the POS.

    ``settings``: ``legal_entity`` (str), ``enable_pos_recommendations`` (bool, default True),
    ``algorithm`` (default: the model's name), ``trained_at`` (ISO time, default now).

    ``predict(context, requests, params=None)`` takes one row per request (columns
    ``scenario``, ``customer_id``, ``product_ids``, ``k``, ``store_id``; see the module docstring)
    and returns one row per recommended item: ``request``, ``rank`` (1..k), ``product_id``,
    ``score``, ``reason``.

    * Items of the basket / the viewed product are never recommended back.
    * An unknown customer or product falls back to best sellers and the reason says so, e.g.
      ``"best seller (customer C9 has no purchase history)"``.
    * A malformed request raises an ``MlflowException`` with ``INVALID_PARAMETER_VALUE`` (HTTP 400
      from ``mlflow models serve``) naming the row and the problem.
    * **Turned off**: when ``enable_pos_recommendations`` is False (the legal entity's setting, or
      the predict param ``{"enable_pos_recommendations": false}``, which overrides the setting
      for that call), requests are still validated, and each request gets exactly one row with
      ``rank`` 0, ``product_id`` null, ``score`` null (None) and ``reason``
      ``"POS recommendations are turned off for legal entity <X>"``.
    """

    def __init__(self, recommender: Recommender | None = None, settings: dict | None = None, *, max_batch_rows: int = MAX_BATCH_ROWS):
        self.recommender = recommender
        self.settings = normalize_settings(settings, recommender)
        if not isinstance(max_batch_rows, Integral) or max_batch_rows < 1:
            raise ValueError(f"max_batch_rows must be a positive integer, got {max_batch_rows!r}")
        self.max_batch_rows = int(max_batch_rows)

    # the recommender travels as its own artifact (recommender.pkl), not inside python_model.pkl
    def __getstate__(self):
        state = dict(self.__dict__)
        state["recommender"] = None
        return state

    def load_context(self, context):
        if self.recommender is None and context is not None and RECOMMENDER_ARTIFACT in context.artifacts:
            with open(context.artifacts[RECOMMENDER_ARTIFACT], "rb") as f:
                self.recommender = pickle.load(f)
        # One request is a few thousand floats: BLAS/OpenMP thread pools only add wake-up latency
        # there, and on a busy till server their spinning threads turn milliseconds into hundreds.
        # BLAS takes this limit process-wide; OpenMP's binds only this thread, not the server's
        # request threads, so the champion's trees choose their own (models/champion/ranker.py).
        threadpoolctl.threadpool_limits(1)

    # -- the contract ------------------------------------------------------------------------------
    def enabled(self, params: dict | None = None) -> bool:
        override = (params or {}).get("enable_pos_recommendations")
        if override is None:
            return self.settings["enable_pos_recommendations"]
        if isinstance(override, str):
            override = override.strip().lower() in TRUE
        return bool(override)

    # `pd.DataFrame` as the type hint: MLflow infers nothing from it and validates against the
    # explicit signature (type hints cannot express optional columns)
    def predict(self, context, model_input: pd.DataFrame, params: dict | None = None) -> pd.DataFrame:
        requests = parse_requests(model_input, max_rows=getattr(self, "max_batch_rows", MAX_BATCH_ROWS))
        answer = self.answer(requests, params)
        return pd.DataFrame(
            {
                "request": np.asarray(answer["request"], dtype=np.int64),
                "rank": np.asarray(answer["rank"], dtype=np.int64),
                "product_id": pd.Series(answer["product_id"], dtype="object"),
                # null, not NaN: JSON has no NaN, and strict parsers (JSON.parse, Jackson, Go) reject it
                "score": _json_numbers(np.asarray(answer["score"], dtype=np.float64)),
                "reason": pd.Series(answer["reason"], dtype="object"),
            }
        )

    def answer_columns(self, columns: dict[str, list], n: int, params: dict | None = None) -> dict[str, list]:
        """`answer` to n requests given as columns (see `parse_columns`): the POS server's call."""
        return self.answer(parse_columns(columns, n, max_rows=getattr(self, "max_batch_rows", MAX_BATCH_ROWS)), params)

    def answer(self, requests: list[Request], params: dict | None = None) -> dict[str, list]:
        """The answer to parsed `requests` as columns (OUTPUT_COLUMNS -> list): what `predict`
        returns as a DataFrame and the POS server writes as JSON records without one. A score that
        is not a number (a turned-off legal entity's row) is nan here; both writers make it null."""
        if not self.enabled(params):
            n = len(requests)
            reason = disabled_reason(self.settings["legal_entity"])
            return {"request": list(range(n)), "rank": [0] * n, "product_id": [None] * n, "score": [math.nan] * n, "reason": [reason] * n}
        answer = {column: [] for column in OUTPUT_COLUMNS}
        if not requests:
            return answer
        if self.recommender is None:
            raise MlflowException("PosRecommenderModel has no fitted recommender (load_context not run?)")
        results = self.recommender.recommend(requests)
        request_col, rank_col, product_col, score_col, reason_col = (answer[c] for c in OUTPUT_COLUMNS)
        for r, (request, rec) in enumerate(zip(requests, results)):
            blocked = set(request.product_ids) if request.excludes_input else ()
            notes = "; ".join(rec.notes)
            rank = 0
            for item, score, reason in zip(rec.item_ids, rec.scores, rec.reasons):
                if item in blocked:  # the models never do this; the POS must never see it
                    _logger.warning("model %s recommended input item %s back: dropped", self.settings["algorithm"], item)
                    continue
                if notes and reason.startswith(_POPULARITY_REASONS) and "(" not in reason:
                    reason = f"{reason} ({notes})"
                rank += 1
                if rank > request.k:
                    break
                request_col.append(r)
                rank_col.append(rank)
                product_col.append(item)
                score_col.append(float(score))
                reason_col.append(reason)
        return answer

    # -- MLflow metadata -----------------------------------------------------------------------------
    def signature(self) -> ModelSignature:
        return model_signature(self.settings["enable_pos_recommendations"])

    def input_example(self) -> pd.DataFrame:
        return input_example(self.recommender)


def model_signature(enable_default: bool = True) -> ModelSignature:
    """Input: one row per request; output: one row per recommended item; param: the on/off override.

    ``k`` is declared ``Any``: an integer column, a column of nulls and integers (which pandas turns
    into floats) and a missing column must all pass; the model itself checks it is a positive
    integer and names the row when it is not.
    """
    inputs = Schema(
        [
            ColSpec("string", "scenario"),
            ColSpec("string", "customer_id", required=False),
            ColSpec(Array("string"), "product_ids", required=False),
            ColSpec(AnyType(), "k", required=False),
            ColSpec("string", "store_id", required=False),
        ]
    )
    outputs = Schema(
        [
            ColSpec("long", "request"),
            ColSpec("long", "rank"),
            ColSpec("string", "product_id", required=False),
            ColSpec("double", "score", required=False),
            ColSpec("string", "reason"),
        ]
    )
    params = ParamSchema([ParamSpec("enable_pos_recommendations", "boolean", bool(enable_default))])
    return ModelSignature(inputs=inputs, outputs=outputs, params=params)


def input_example(recommender: Recommender | None = None) -> pd.DataFrame:
    """One request per scenario, with real ids of the model where it has them."""
    items = [str(i) for i in getattr(recommender, "item_ids", [])[:3]] or ["P1", "P2", "P3"]
    customers = [str(c) for c in getattr(recommender, "customer_index", {})][:1] or ["C1"]
    return pd.DataFrame(
        {
            "scenario": ["product", "basket", "customer"],
            "customer_id": [None, customers[0], customers[0]],
            "product_ids": [items[:1], items[:2], items[2:3]],
            "k": [5, 5, 5],
            "store_id": [None, None, None],
        }
    )


def workbench_code_path() -> str:
    """src/workbench, shipped with the model so it loads in a fresh process / `mlflow models serve`."""
    return str(Path(__file__).resolve().parent)


def log_pos_model(recommender: Recommender, settings: dict, *, name: str = "pos_model", **kwargs):
    """`mlflow.pyfunc.log_model` of a PosRecommenderModel into the active run; returns ModelInfo."""
    wrapper = PosRecommenderModel(recommender, settings)
    with tempfile.TemporaryDirectory(prefix="workbench-model-") as tmp:
        path = os.path.join(tmp, "recommender.pkl")
        with open(path, "wb") as f:
            pickle.dump(recommender, f, protocol=pickle.HIGHEST_PROTOCOL)
        with _quiet_logging():
            return mlflow.pyfunc.log_model(
                name=name,
                python_model=wrapper,
                artifacts={RECOMMENDER_ARTIFACT: path},
                code_paths=[workbench_code_path()],
                signature=wrapper.signature(),
                input_example=wrapper.input_example(),
                metadata={"pos_settings": wrapper.settings},
                pip_requirements=kwargs.pop("pip_requirements", None) or pip_requirements(),
                **kwargs,
            )


@contextlib.contextmanager
def _quiet_logging():
    """MLflow's cloudpickle notice on every log_model is noise here: the wrapper is our own class."""
    logger = logging.getLogger("mlflow.pyfunc")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


def pip_requirements() -> list[str]:
    """The model's runtime pins, from this environment (skips MLflow's slow requirement inference)."""
    from importlib.metadata import PackageNotFoundError, version

    pins = []
    for package in ("mlflow", "numpy", "pandas", "polars", "pyarrow", "scipy", "scikit-learn", "lightgbm", "implicit", "threadpoolctl"):
        try:
            pins.append(f"{package}=={version(package)}")
        except PackageNotFoundError:
            pass
    return pins


def predict_records(model, records: list[dict[str, Any]], params: dict | None = None) -> pd.DataFrame:
    """Convenience for notebooks: predict from a list of request dicts."""
    frame = pd.DataFrame.from_records(records)
    return model.predict(frame, params=params) if params else model.predict(frame)
