"""The served champion under concurrent POS traffic, in process (one pyfunc model shared by threads)
and over HTTP (`mlflow models serve`, whose requests run on a thread pool): 8 clients sending the
same 60 mixed requests get exactly the sequential answers, and a 5,000-row batch running beside
single requests answers in full and correctly."""

from __future__ import annotations

import json
import random
import threading
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import mlflow
import pandas as pd
import pytest

from helpers import scratch_home, tiny_interactions

from workbench import local_server, tracking
from workbench.models import TrainingData, make_model

CLIENTS = 8
BIG_BATCH = 5_000


@pytest.fixture(scope="module")
def registered(tmp_path_factory):
    """USRT's champion (the blend with its re-rankers, fitted small), then FRRT's registered after it."""
    with scratch_home(tmp_path_factory, "concurrency_home") as home:
        uri = tracking.configure()
        data = TrainingData.from_interactions(tiny_interactions(seed=5, n_baskets=300))
        champion = make_model("champion", validation_days=20, max_tuning_cases=100, ranker_iterations=10, product_ranker_iterations=10).fit(data)
        assert champion.rankers, "the re-ranking stage must be part of what is served"
        with mlflow.start_run(run_name="USRT"):
            tracking.register_champion(tracking.log_recommender(champion, {"legal_entity": "USRT"}))
        with mlflow.start_run(run_name="FRRT"):
            tracking.register_champion(tracking.log_recommender(make_model("best_sellers").fit(data), {"legal_entity": "FRRT"}))
        model_uri, settings = local_server.champion_uri("USRT")
        assert settings["legal_entity"] == "USRT"
        yield {"home": home, "tracking_uri": uri, "model_uri": model_uri, "recommender": champion}


def pos_requests(recommender, n: int = 60, seed: int = 0) -> list[dict]:
    """The three pages, with and without a customer, a store, a wish list; an unknown id or two."""
    rng = random.Random(seed)
    items = [str(i) for i in recommender.item_ids]
    customers = sorted(str(c) for c in recommender.customer_index)
    records = []
    for i in range(n):
        scenario = ("product", "basket", "customer")[i % 3]
        customer = rng.choice(customers) if rng.random() < 0.6 else None
        products = {"product": rng.sample(items, 1), "basket": rng.sample(items, rng.randint(1, 5)),
                    "customer": rng.sample(items, rng.randint(0, 2))}[scenario]
        if i % 17 == 0:
            products = products + ["UNKNOWN"]
        records.append({"scenario": scenario, "customer_id": customer, "product_ids": products,
                        "k": rng.choice([5, 10]), "store_id": rng.choice(["S0", "S1", None])})
    return records


def per_request(rows: list[dict], n: int) -> list[list[dict]]:
    """The answer rows of each request of a call, without the `request` position."""
    answers = [[] for _ in range(n)]
    for row in rows:
        answers[row["request"]].append({k: v for k, v in row.items() if k != "request"})
    return answers


def hammer(call, records: list[dict], expected: list[list[dict]], clients: int = CLIENTS) -> tuple[int, list[str]]:
    """`clients` threads each send every request once, one per call, in their own order, all
    starting together; (answers, wrong ones)."""
    start = threading.Barrier(clients)

    def client(seed: int) -> list[str]:
        order = random.Random(seed).sample(range(len(records)), len(records))
        start.wait()
        wrong = []
        for i in order:
            (got,) = per_request(call([records[i]]), 1)
            if got != expected[i]:
                wrong.append(f"request {i} ({records[i]['scenario']})")
        return wrong

    with ThreadPoolExecutor(clients) as pool:
        wrong = [w for found in pool.map(client, range(clients)) for w in found]
    return clients * len(records), wrong


def big_batch_beside_singles(call, records: list[dict], expected: list[list[dict]]) -> list[str]:
    """A BIG_BATCH-row call while three POS terminals send single requests (one every few
    milliseconds, as a till does, not in a busy loop): every answer right."""
    batch = [records[i % len(records)] for i in range(BIG_BATCH)]
    done = threading.Event()

    def singles(seed: int) -> list[str]:
        rng, wrong = random.Random(seed), []
        while not done.is_set():
            i = rng.randrange(len(records))
            if per_request(call([records[i]]), 1)[0] != expected[i]:
                wrong.append(f"single request {i}")
            done.wait(0.005)
        return wrong

    with ThreadPoolExecutor(3) as pool:
        others = [pool.submit(singles, s) for s in range(3)]
        try:
            answers = per_request(call(batch), BIG_BATCH)
        finally:
            done.set()
        wrong = [w for f in others for w in f.result()]
    wrong += [f"batch row {r}" for r, got in enumerate(answers) if got != expected[r % len(records)]]
    return wrong


# -- in process: the pyfunc model the POS loads, shared by threads ----------------------------------
@pytest.fixture(scope="module")
def pyfunc(registered):
    return mlflow.pyfunc.load_model(registered["model_uri"])


def _predict(pyfunc):
    return lambda records: pyfunc.predict(pd.DataFrame(records)).to_dict("records")


def test_threads_sharing_the_pyfunc_model_get_the_sequential_answers(registered, pyfunc):
    records = pos_requests(registered["recommender"])
    call = _predict(pyfunc)
    expected = [per_request(call([r]), 1)[0] for r in records]
    assert all(expected)
    answered, wrong = hammer(call, records, expected)
    assert answered == CLIENTS * 60
    assert not wrong, f"{len(wrong)} of {answered} answers differ from the sequential ones: {wrong[:5]}"


def test_a_big_batch_beside_single_requests_in_process(registered, pyfunc):
    records = pos_requests(registered["recommender"], seed=1)
    call = _predict(pyfunc)
    expected = [per_request(call([r]), 1)[0] for r in records]
    wrong = big_batch_beside_singles(call, records, expected)
    assert not wrong, f"{len(wrong)} wrong answers: {wrong[:5]}"


# -- over HTTP: mlflow models serve of @champion-USRT ---------------------------------------------------
@pytest.fixture(scope="module")
def server(registered):
    with local_server.model_server(registered["model_uri"], local_server.free_port(), tracking_uri=registered["tracking_uri"],
                                   log_path=registered["home"] / "serve.log", timeout=120, request_timeout_s=300) as base:
        yield base


def _post(base: str):
    def call(records: list[dict]) -> list[dict]:
        body = json.dumps({"dataframe_records": records}).encode()
        request = urllib.request.Request(f"{base}/invocations", data=body, headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=300) as response:  # a shared 2-core CI box can be slow
            assert response.status == 200
            return json.loads(response.read(), parse_constant=lambda c: pytest.fail(f"{c} in the answer: not JSON"))["predictions"]

    return call


@pytest.mark.e2e
def test_concurrent_http_clients_get_the_sequential_answers(registered, server, pyfunc):
    records = pos_requests(registered["recommender"])
    call = _post(server)
    expected = [per_request(call([r]), 1)[0] for r in records]
    # the server serves USRT's champion: the same answers as the model loaded in process
    assert expected == [per_request(_predict(pyfunc)([r]), 1)[0] for r in records]
    answered, wrong = hammer(call, records, expected)
    assert not wrong, f"{len(wrong)} of {answered} answers differ from the sequential ones: {wrong[:5]}"


@pytest.mark.e2e
def test_a_big_batch_beside_single_requests_over_http(registered, server):
    records = pos_requests(registered["recommender"], seed=1)
    call = _post(server)
    expected = [per_request(call([r]), 1)[0] for r in records]
    wrong = big_batch_beside_singles(call, records, expected)
    assert not wrong, f"{len(wrong)} wrong answers: {wrong[:5]}"
