"""`mlflow models serve` of models:/pos-recommender@champion: the POS's HTTP path, on loopback only."""

import json
import urllib.error
import urllib.request

import pandas as pd
import pytest

from helpers import scratch_home

from workbench import local_server, tracking
from workbench.models import TrainingData, make_model

pytestmark = pytest.mark.e2e

# three customers, products A..F; A and B are always bought together, C is C1's regular
BASKETS = [
    ("C1", ["A", "B", "C"]), ("C1", ["C", "D"]), ("C2", ["A", "B"]), (None, ["A", "B", "E"]),
    ("C2", ["E", "F"]), ("C3", ["A", "B", "D"]), ("C1", ["C"]), (None, ["B", "A"]), ("C3", ["F", "D"]),
]


def _interactions() -> pd.DataFrame:
    rows = []
    for b, (customer, items) in enumerate(BASKETS):
        for item in items:
            rows.append({"customer_id": customer, "basket_id": f"B{b}", "product_id": item,
                         "time": pd.Timestamp("2024-03-01") + pd.Timedelta(days=b), "quantity": 1.0, "store_id": "S1"})
    frame = pd.DataFrame(rows)
    frame["time"] = frame["time"].astype("datetime64[us]")
    return frame


def _reject_constant(name: str):
    raise ValueError(f"{name} is not JSON: strict parsers (JSON.parse, Jackson, Go) reject the whole answer")


def _post(url: str, body: dict) -> tuple[int, dict]:
    """POST the body; the answer parsed as strict JSON (NaN / Infinity refused)."""
    request = urllib.request.Request(url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read(), parse_constant=_reject_constant)
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"{}", parse_constant=_reject_constant)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with scratch_home(tmp_path_factory, "serve_home") as home:
        uri = tracking.configure()
        model = make_model("sar").fit(TrainingData.from_interactions(_interactions()))
        import mlflow

        with mlflow.start_run(run_name="http-test"):
            model_uri = tracking.log_recommender(model, {"legal_entity": "LE1"})
        tracking.register_champion(model_uri)

        with local_server.model_server("models:/pos-recommender@champion", local_server.free_port(),
                                       tracking_uri=uri, log_path=home / "serve.log", timeout=120) as base:
            yield base


def _answers(payload: dict) -> pd.DataFrame:
    predictions = payload["predictions"]
    return pd.DataFrame(predictions)


def test_the_three_pos_pages_over_http(server):
    status, payload = _post(
        f"{server}/invocations",
        {"dataframe_records": [
            {"scenario": "product", "customer_id": None, "product_ids": ["A"], "k": 3},
            {"scenario": "basket", "customer_id": "C1", "product_ids": ["A", "C"], "k": 4, "store_id": "S1"},
            {"scenario": "customer", "customer_id": "C1", "product_ids": [], "k": None},
        ]},
    )
    assert status == 200, payload
    answer = _answers(payload)
    assert list(answer.columns) == ["request", "rank", "product_id", "score", "reason"]
    assert answer.groupby("request").size().to_dict() == {0: 3, 1: 4, 2: 6}  # k null: 10, but only 6 products
    product = answer[answer["request"] == 0]
    assert product.iloc[0]["product_id"] == "B" and "together" in product.iloc[0]["reason"]
    assert "A" not in set(product["product_id"])
    assert not {"A", "C"} & set(answer.loc[answer["request"] == 1, "product_id"])
    assert answer[answer["request"] == 2]["rank"].tolist() == [1, 2, 3, 4, 5, 6]


def test_unknown_customer_over_http_falls_back(server):
    status, payload = _post(f"{server}/invocations", {"dataframe_records": [{"scenario": "customer", "customer_id": "C9", "k": 2}]})
    assert status == 200, payload
    reasons = _answers(payload)["reason"].tolist()
    assert len(reasons) == 2 and all("customer C9 has no purchase history" in r for r in reasons)


def test_turned_off_by_the_params_override(server):
    status, payload = _post(
        f"{server}/invocations",
        {"dataframe_records": [{"scenario": "product", "product_ids": ["A"]}], "params": {"enable_pos_recommendations": False}},
    )
    assert status == 200, payload
    (row,) = payload["predictions"]
    assert row["rank"] == 0 and row["product_id"] is None and row["score"] is None
    assert row["reason"] == "POS recommendations are turned off for legal entity LE1"


@pytest.mark.parametrize(
    "records, message",
    [
        ([{"scenario": "checkout", "product_ids": ["A"]}], "request row 0: scenario 'checkout' is unknown"),
        ([{"scenario": "basket", "product_ids": ["A"], "k": 5}, {"scenario": "basket", "product_ids": ["A"], "k": -2}],
         "request row 1: k must be a positive integer"),
        ([{"scenario": "basket", "product_ids": "A"}], "Expected data to be list"),
        ([{"scenario": "customer", "customer_id": "C1"}, {"scenario": "customer", "customer_id": "C" * 100_000}],
         "request row 1: customer_id is 100,000 characters long"),
        ([{"scenario": "basket", "product_ids": ["A", "B" * 200]}], "request row 0: product_ids is 200 characters long"),
        ([{"scenario": "customer", "customer_id": "C1", "k": 500}], "request row 0: k must be a positive integer (at most 100)"),
    ],
)
def test_a_malformed_request_is_a_400_with_the_reason(server, records, message):
    status, payload = _post(f"{server}/invocations", {"dataframe_records": records})
    assert status == 400, payload
    # the model's own checks answer INVALID_PARAMETER_VALUE; a type the signature refuses while the
    # server parses the JSON answers BAD_REQUEST: both 400 with the reason
    assert payload["error_code"] in ("INVALID_PARAMETER_VALUE", "BAD_REQUEST")
    assert message in payload["message"], payload["message"]
    assert len(payload["message"]) < 2000  # a 100 KB id is named, never echoed (MLflow adds the frame, truncated)


def test_make_serve_serves_one_legal_entity_and_says_so(server, tmp_path):
    """What `make serve LEGAL_ENTITY=LE1` runs: the legal entity's own alias, named before serving."""
    import sys

    port, log = local_server.free_port(), tmp_path / "serve_le1.log"
    command = [sys.executable, "-m", "workbench.local_server", "--legal-entity", "LE1", "--port", str(port)]
    with local_server.running(command, port, log_path=log, env={"MLFLOW_TRACKING_URI": tracking.configure()}, ready_path="/ping") as base:
        status, payload = _post(f"{base}/invocations", {"dataframe_records": [{"scenario": "product", "product_ids": ["A"], "k": 2}]})
        assert status == 200 and [row["product_id"] for row in payload["predictions"]][0] == "B"
    first = log.read_text().splitlines()[0]
    assert first.startswith("Serving models:/pos-recommender@champion-LE1: version 1, legal entity LE1, algorithm sar"), first
