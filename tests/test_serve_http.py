"""The POS's HTTP path to models:/pos-recommender@champion, on loopback only: the same contract
tests against `workbench.pos_server` (what `make serve` runs) and `mlflow models serve`."""

import contextlib
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
def registered(tmp_path_factory):
    with scratch_home(tmp_path_factory, "serve_home") as home:
        uri = tracking.configure()
        model = make_model("sar").fit(TrainingData.from_interactions(_interactions()))
        import mlflow

        with mlflow.start_run(run_name="http-test"):
            model_uri = tracking.log_recommender(model, {"legal_entity": "LE1"})
        tracking.register_champion(model_uri)
        yield {"home": home, "tracking_uri": uri}


@pytest.fixture(scope="module")
def servers(registered):
    """kind -> base URL; each server started the first time a test asks for it, stopped at the end."""
    started, stack = {}, contextlib.ExitStack()

    def start(kind: str) -> str:
        if kind not in started:
            started[kind] = stack.enter_context(local_server.model_server(
                "models:/pos-recommender@champion", local_server.free_port(), server=kind, tracking_uri=registered["tracking_uri"],
                log_path=registered["home"] / f"serve_{kind}.log", timeout=120))
        return started[kind]

    with stack:
        yield start


@pytest.fixture(params=local_server.SERVERS)
def server(request, servers):
    return servers(request.param)


@pytest.fixture
def pos_server(servers):
    """workbench.pos_server alone: its own limits (`mlflow models serve` has none of its own)."""
    return servers("pos")


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
        # MLflow's schema enforcement refuses it before the model sees it; the POS server's model names the row
        ([{"scenario": "basket", "product_ids": "A"}], ("Expected data to be list", "request row 0: product_ids must be a list of product ids")),
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
    assert any(m in payload["message"] for m in ((message,) if isinstance(message, str) else message)), payload["message"]
    assert len(payload["message"]) < 2000  # a 100 KB id is named, never echoed (MLflow adds the frame, truncated)


def test_make_serve_serves_one_legal_entity_and_says_so(registered, tmp_path):
    """What `make serve LEGAL_ENTITY=LE1` runs: the legal entity's own alias, named before serving."""
    import sys

    port, log = local_server.free_port(), tmp_path / "serve_le1.log"
    command = [sys.executable, "-m", "workbench.local_server", "--legal-entity", "LE1", "--port", str(port)]
    with local_server.running(command, port, log_path=log, env={"MLFLOW_TRACKING_URI": tracking.configure()}, ready_path="/ping") as base:
        status, payload = _post(f"{base}/invocations", {"dataframe_records": [{"scenario": "product", "product_ids": ["A"], "k": 2}]})
        assert status == 200 and [row["product_id"] for row in payload["predictions"]][0] == "B"
    first = log.read_text().splitlines()[0]
    assert first.startswith("Serving models:/pos-recommender@champion-LE1: version 1, legal entity LE1, algorithm sar"), first


RECORDS = [
    {"scenario": "product", "customer_id": None, "product_ids": ["A"], "k": 3},
    {"scenario": "basket", "customer_id": "C1", "product_ids": ["A", "C"], "k": 4, "store_id": "S1"},
    {"scenario": "customer", "customer_id": "C1", "product_ids": [], "k": None, "store_id": None},
]


def test_both_json_layouts_of_the_protocol_get_the_same_answer(server):
    status, expected = _post(f"{server}/invocations", {"dataframe_records": RECORDS})
    assert status == 200, expected
    names = list(RECORDS[2])
    status, payload = _post(f"{server}/invocations", {"dataframe_split": {"columns": names, "data": [[r.get(c) for c in names] for r in RECORDS]}})
    assert status == 200, payload
    assert payload["predictions"] == expected["predictions"]


def _raw(url: str, data: bytes, content_type: str = "application/json") -> tuple[int, dict]:
    request = urllib.request.Request(url, data=data, headers={"Content-Type": content_type})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def test_the_pos_server_refuses_what_it_cannot_read_and_says_why(pos_server):
    url = f"{pos_server}/invocations"
    status, payload = _raw(url, b"{not json")
    assert status == 400 and payload["message"].startswith("the body is not JSON"), payload
    status, payload = _raw(url, b"scenario,product_ids\nproduct,A", "text/csv")
    assert status == 415 and "application/json" in payload["message"], payload
    status, payload = _raw(url, json.dumps({"records": RECORDS}).encode())
    assert status == 400 and "dataframe_records" in payload["message"], payload
    status, payload = _raw(url, json.dumps({"dataframe_records": RECORDS, "params": {"enable_pos_recommendations": "maybe"}}).encode())
    assert status == 400 and "enable_pos_recommendations must be true or false" in payload["message"], payload
    status, payload = _raw(url, json.dumps({"dataframe_records": [RECORDS[0], ["product", None, ["A"]]]}).encode())
    assert status == 400 and "dataframe_records row 1 must be an object" in payload["message"], payload


def test_the_pos_server_caps_the_body_and_keeps_serving(pos_server):
    from workbench import pos_server as module

    huge = json.dumps({"dataframe_records": [RECORDS[0]] * (module.MAX_BODY_BYTES // 40)}).encode()
    assert len(huge) > module.MAX_BODY_BYTES
    status, payload = _raw(f"{pos_server}/invocations", huge)
    assert status == 413 and f"at most {module.MAX_BODY_BYTES:,}" in payload["message"], payload
    status, payload = _post(f"{pos_server}/invocations", {"dataframe_records": RECORDS[:1]})
    assert status == 200 and len(payload["predictions"]) == 3


def test_the_pos_server_says_what_it_serves(pos_server):
    with urllib.request.urlopen(f"{pos_server}/version", timeout=30) as response:
        version = json.loads(response.read())
    assert version["model_uri"] == "models:/pos-recommender@champion"
    assert version["legal_entity"] == "LE1" and version["algorithm"] == "sar" and version["enable_pos_recommendations"] is True
