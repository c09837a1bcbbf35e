"""The POS serving contract, through the real path: log a PosRecommenderModel to MLflow, load it
with `mlflow.pyfunc.load_model` and call `predict` as the POS does."""

import mlflow
import pandas as pd
import pytest
from mlflow.exceptions import MlflowException

from helpers import scratch_home, tiny_interactions

from workbench import tracking
from workbench.models import TrainingData, make_model
from workbench.pos_model import OUTPUT_COLUMNS, PosRecommenderModel, disabled_reason, model_signature


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    with scratch_home(tmp_path_factory, "serving_home"):
        tracking.configure()
        yield


@pytest.fixture(scope="module")
def data():
    return TrainingData.from_interactions(tiny_interactions())


def _log(recommender, settings):
    with mlflow.start_run():
        uri = tracking.log_recommender(recommender, settings)
    return mlflow.pyfunc.load_model(uri)


@pytest.fixture(scope="module")
def served(store, data):
    return _log(make_model("sar").fit(data), {"legal_entity": "LE1"})


@pytest.fixture(scope="module")
def served_off(store, data):
    return _log(make_model("best_sellers").fit(data), {"legal_entity": "LE2", "enable_pos_recommendations": False})


def requests(**columns):
    return pd.DataFrame(columns)


def test_each_scenario_answers_k_ranked_items_with_reasons(served):
    answer = served.predict(
        requests(
            scenario=["product", "basket", "customer"],
            customer_id=[None, "C001", "C002"],
            product_ids=[["P000"], ["P002", "P010"], []],
            k=[5, 3, 10],
            store_id=[None, "S1", None],
        )
    )
    assert list(answer.columns) == list(OUTPUT_COLUMNS)
    assert answer.groupby("request").size().to_dict() == {0: 5, 1: 3, 2: 10}
    for _, group in answer.groupby("request"):
        assert group["rank"].tolist() == list(range(1, len(group) + 1))
        assert group["score"].is_monotonic_decreasing
        assert group["product_id"].is_unique
    assert answer["reason"].map(lambda r: isinstance(r, str) and len(r) > 3).all()
    # the viewed product's companion (bought in pairs) comes first, and says why
    product = answer[answer["request"] == 0]
    assert product.iloc[0]["product_id"] == "P001"
    assert "together" in product.iloc[0]["reason"]


def test_k_defaults_to_10_when_absent_or_null(served):
    assert len(served.predict(requests(scenario=["customer"], customer_id=["C003"]))) == 10
    answer = served.predict(requests(scenario=["basket", "basket"], product_ids=[["P004"], ["P006"]], k=[3, None]))
    assert answer.groupby("request").size().to_dict() == {0: 3, 1: 10}


@pytest.mark.parametrize("basket", [["P000"], ["P000", "P001", "P002", "P003"], ["P010", "P999"]])
def test_nothing_from_the_basket_or_the_viewed_product_comes_back(served, basket):
    answer = served.predict(
        requests(scenario=["basket", "product"], customer_id=["C001", None], product_ids=[basket, basket[:1]], k=[20, 20])
    )
    assert not set(answer.loc[answer["request"] == 0, "product_id"]) & set(basket)
    assert basket[0] not in set(answer.loc[answer["request"] == 1, "product_id"])


def test_unknown_customer_and_product_fall_back_to_best_sellers_and_say_so(served):
    answer = served.predict(
        requests(scenario=["customer", "product"], customer_id=["C999", None], product_ids=[[], ["NOPE"]], k=[4, 4])
    )
    customer = answer[answer["request"] == 0]
    assert len(customer) == 4
    assert customer["reason"].str.contains("best seller").all()
    assert customer["reason"].str.contains("customer C999 has no purchase history").all()
    product = answer[answer["request"] == 1]
    assert len(product) == 4
    assert product["reason"].str.contains("NOPE not in the trained catalog").all()


@pytest.mark.parametrize(
    "frame, message",
    [
        (dict(scenario=["checkout"], product_ids=[["P000"]]), r"request row 0: scenario 'checkout' is unknown"),
        (dict(scenario=["basket", "basket"], product_ids=[["P000"], ["P001"]], k=[5, 0]), r"request row 1: k must be a positive integer"),
        (dict(scenario=["basket"], product_ids=[["P000"]], k=[2.5]), r"request row 0: k must be a positive integer"),
        (dict(scenario=["customer"], customer_id=["C001"], k=["ten"]), r"request row 0: k must be a positive integer"),
        (dict(scenario=["product", "product"], product_ids=[["P000"], []]), r"request row 1: scenario 'product' needs product_ids"),
        (dict(scenario=["basket"], product_ids=["P000"]), r"product_ids.*Expected data to be list"),
        (dict(customer_id=["C001"], product_ids=[["P000"]]), r"missing inputs \['scenario'\]"),
    ],
)
def test_a_malformed_request_is_a_clear_invalid_parameter_error(served, frame, message):
    with pytest.raises(MlflowException, match=message) as error:
        served.predict(pd.DataFrame(frame))
    assert error.value.error_code == "INVALID_PARAMETER_VALUE"
    assert error.value.get_http_status_code() == 400


@pytest.mark.parametrize(
    "frame, message",
    [
        (dict(scenario=["customer", "customer"], customer_id=["C001", "C" * 100_000]), r"request row 1: customer_id is 100,000 characters long \('CCCC.*'\); ids are at most 128$"),
        (dict(scenario=["basket"], product_ids=[["P000", "P" * 129]]), r"request row 0: product_ids is 129 characters long .*at most 128$"),
        (dict(scenario=["basket"], product_ids=[["P000"]], store_id=["S" * 500]), r"request row 0: store_id is 500 characters long"),
        (dict(scenario=["basket"], product_ids=[[f"P{i}" for i in range(1001)]]), r"request row 0: product_ids holds 1,001 ids; at most 1,000"),
        (dict(scenario=["customer"], customer_id=["C001"], k=[101]), r"request row 0: k must be a positive integer \(at most 100\), got 101"),
    ],
)
def test_what_one_request_may_cost_is_bounded(served, frame, message):
    with pytest.raises(MlflowException, match=message) as error:
        served.predict(pd.DataFrame(frame))
    assert error.value.get_http_status_code() == 400
    assert len(error.value.message) < 200  # the offending value is never echoed whole


def test_the_batch_size_is_capped_with_a_clear_error(data):
    model = PosRecommenderModel(make_model("best_sellers").fit(data), {"legal_entity": "LE1"}, max_batch_rows=5)
    assert len(model.predict(None, [{"scenario": "customer", "k": 1}] * 5)) == 5
    with pytest.raises(MlflowException, match=r"the call holds 6 requests; at most 5 are answered per call") as error:
        model.predict(None, [{"scenario": "customer", "k": 1}] * 6)
    assert error.value.get_http_status_code() == 400
    with pytest.raises(ValueError, match="max_batch_rows"):
        PosRecommenderModel(None, {"legal_entity": "LE1"}, max_batch_rows=0)
    assert PosRecommenderModel(None, {"legal_entity": "LE1"}).max_batch_rows == 10_000


def test_a_legal_entity_champion_stays_when_another_entity_registers(store, data):
    """Registering FRRT's champion after USRT's moves `@champion`, never `@champion-USRT`: a server
    started for USRT (`make serve LEGAL_ENTITY=USRT`) keeps serving USRT's model."""
    from workbench import local_server

    with mlflow.start_run():
        usrt = tracking.log_recommender(make_model("sar").fit(data), {"legal_entity": "USRT"})
    usrt_version = tracking.register_champion(usrt)
    with mlflow.start_run():
        frrt = tracking.log_recommender(make_model("best_sellers").fit(data), {"legal_entity": "FRRT", "enable_pos_recommendations": False})
    tracking.register_champion(frrt)
    uri, settings = local_server.champion_uri("USRT")
    assert uri == "models:/pos-recommender@champion-USRT"
    assert settings["legal_entity"] == "USRT" and settings["version"] == usrt_version and settings["algorithm"] == "sar"
    served = mlflow.pyfunc.load_model(uri)
    answer = served.predict(requests(scenario=["product"], product_ids=[["P000"]], k=[3]))
    assert answer["rank"].tolist() == [1, 2, 3]  # USRT's recommendations, on; FRRT's model is turned off
    assert local_server.champion_uri(None)[1]["legal_entity"] == "FRRT"  # @champion: the last registered
    assert "legal entity FRRT" in local_server.describe(*local_server.champion_uri(None))
    with pytest.raises(SystemExit, match="No model registered as pos-recommender@champion-DERT for legal entity DERT"):
        local_server.champion_uri("DERT")


def test_a_turned_off_legal_entity_gets_one_row_per_request_saying_so(served_off):
    answer = served_off.predict(requests(scenario=["product", "customer"], customer_id=[None, "C001"], product_ids=[["P000"], []]))
    assert list(answer.columns) == list(OUTPUT_COLUMNS)
    assert answer["request"].tolist() == [0, 1]
    assert answer["rank"].tolist() == [0, 0]
    assert answer["product_id"].isna().all()
    assert answer["score"].tolist() == [None, None]  # null in JSON, never NaN
    assert (answer["reason"] == disabled_reason("LE2")).all()
    assert disabled_reason("LE2") == "POS recommendations are turned off for legal entity LE2"
    # malformed requests are still refused while turned off
    with pytest.raises(MlflowException, match="scenario 'x' is unknown"):
        served_off.predict(requests(scenario=["x"]))


def test_the_params_override_turns_recommendations_off_and_on(served, served_off):
    off = served.predict(requests(scenario=["product"], product_ids=[["P000"]]), params={"enable_pos_recommendations": False})
    assert off["reason"].tolist() == [disabled_reason("LE1")]
    on = served_off.predict(requests(scenario=["product"], product_ids=[["P000"]], k=[3]), params={"enable_pos_recommendations": True})
    assert on["rank"].tolist() == [1, 2, 3]
    assert "P000" not in set(on["product_id"])


def test_signature_input_example_and_settings_are_logged(served):
    meta = served.metadata
    inputs = {spec.name: spec for spec in meta.get_input_schema().inputs}
    assert set(inputs) == {"scenario", "customer_id", "product_ids", "k", "store_id"}
    assert inputs["scenario"].required and not inputs["customer_id"].required and not inputs["k"].required
    assert inputs["product_ids"].type.to_dict()["items"]["type"] == "string"
    assert [s.name for s in meta.get_output_schema().inputs] == list(OUTPUT_COLUMNS)
    assert meta.get_params_schema().params[0].name == "enable_pos_recommendations"
    assert meta.metadata["pos_settings"]["legal_entity"] == "LE1"
    assert meta.metadata["pos_settings"]["algorithm"] == "sar"
    example = served.input_example
    assert example is not None and set(example["scenario"]) == {"product", "basket", "customer"}
    assert len(served.predict(example)) > 0


def test_the_wrapper_works_in_process_without_mlflow_loading(data):
    model = PosRecommenderModel(make_model("repeat").fit(data), {"legal_entity": "LE1"})
    answer = model.predict(None, [{"scenario": "customer", "customer_id": "C001", "product_ids": [], "k": 3}])
    assert answer["rank"].tolist() == [1, 2, 3]
    assert model_signature(False).params.params[0].default is False
