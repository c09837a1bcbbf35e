"""The POS's HTTP server: one registered model (a legal entity's champion) behind POST /invocations.

It speaks the scoring protocol of `mlflow models serve` for JSON, so a POS written against either
works with both: a body with one of ``dataframe_records`` (a list of request objects) or
``dataframe_split`` (``{"columns": [...], "data": [[...], ...]}``; the two layouts in which
`mlflow models serve` reads this model's list column), and optional ``params``
(``{"enable_pos_recommendations": false}``); the answer is ``{"predictions": [records]}`` with the
columns of `workbench.pos_model` (request, rank, product_id, score, reason), strict JSON (null, never
NaN). A bad request is answered 400 ``{"error_code": "INVALID_PARAMETER_VALUE", "message": ...}``
naming the row and the column; a body over ``max_body_bytes`` 413; a call that waited longer than
``request_timeout_s`` 504.

Why not `mlflow models serve` itself: measured on a 2-core till server (benchmarks/latency.py),
its request path spent about two thirds of a single request's CPU around the model (JSON into
pandas, schema enforcement on the frame, pandas back to JSON, FastAPI middleware and a thread
hop), so four POS terminals calling at once queued behind each other. Here the JSON goes straight
into the columns the model validates itself (`PosRecommenderModel.answer_columns`, which names the
row and the column of a bad value) and the answer is written from lists. The model is the same
registered pyfunc, loaded from the registry with `mlflow.pyfunc.load_model`; `mlflow models serve`
still serves it unchanged (tests/test_serve_http.py runs the contract against both).

Each worker process scores on one thread, one call at a time: scoring is CPU-bound Python, so a
second scoring thread in the same process only contends for the GIL, and requests queue in arrival
order instead. Throughput comes from processes (`workers`, one per core by default).

    python -m workbench.pos_server --model-uri models:/pos-recommender@champion-USRT [--port 5001] [--workers 2]

(`make serve` runs it through `workbench.local_server`, which picks the legal entity's alias.)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import math
import os
import sys
from concurrent.futures import ThreadPoolExecutor

from workbench.parameters import FALSE, TRUE
from workbench.pos_model import OUTPUT_COLUMNS, quoted

_logger = logging.getLogger(__name__)

MAX_BODY_BYTES = 32 * 1024 * 1024  # a full batch (10,000 requests) of realistic baskets is a few MB
REQUEST_TIMEOUT_S = 60.0  # as `mlflow models serve`: past it the caller gets 504, not an endless wait
INPUT_KEYS = ("dataframe_records", "dataframe_split")
KNOWN_PARAMS = ("enable_pos_recommendations",)
_ENV = {"model_uri": "WORKBENCH_SERVE_MODEL_URI", "max_body_bytes": "WORKBENCH_SERVE_MAX_BODY_BYTES",
        "request_timeout_s": "WORKBENCH_SERVE_REQUEST_TIMEOUT_S"}


class CallError(Exception):
    """A call the server refuses, with its HTTP status and the message the caller reads."""

    def __init__(self, message: str, status: int = 400, error_code: str = "BAD_REQUEST"):
        super().__init__(message)
        self.status, self.error_code = status, error_code


def request_columns(payload) -> tuple[dict[str, list], int, dict | None]:
    """(columns, number of requests, params) of a parsed JSON body in the MLflow scoring protocol."""
    if not isinstance(payload, dict):
        raise CallError(f"the body must be a JSON object with one of {', '.join(INPUT_KEYS)}; got a {type(payload).__name__}")
    keys = [key for key in INPUT_KEYS if key in payload]
    unknown = [key for key in payload if key not in INPUT_KEYS and key != "params"]
    if len(keys) != 1 or unknown:
        raise CallError(f"the body needs exactly one of {', '.join(INPUT_KEYS)} (and optionally params); "
                         f"it holds {[quoted(key) for key in list(payload)[:10]]}")
    key, data = keys[0], payload[keys[0]]
    params = payload.get("params")
    if params is not None:
        if not isinstance(params, dict):
            raise CallError(f"params must be an object, got {quoted(params)}")
        extra = [name for name in params if name not in KNOWN_PARAMS]
        if extra:
            raise CallError(f"unknown params {[quoted(name) for name in extra[:5]]}; known: {', '.join(KNOWN_PARAMS)}")
        enable = params.get("enable_pos_recommendations")
        if enable is not None and not isinstance(enable, bool) and str(enable).strip().lower() not in TRUE | FALSE:
            raise CallError(f"params.enable_pos_recommendations must be true or false, got {quoted(enable)}")
    if key == "dataframe_split":
        if not isinstance(data, dict) or not isinstance(data.get("columns"), list) or not isinstance(data.get("data"), list):
            raise CallError('dataframe_split must be {"columns": [...], "data": [[...], ...]}')
        names, rows = data["columns"], data["data"]
        for r, row in enumerate(rows):
            if not isinstance(row, list) or len(row) != len(names):
                raise CallError(f"dataframe_split row {r} must be a list of {len(names)} values (one per column), got {quoted(row)}")
        return {str(name): [row[i] for row in rows] for i, name in enumerate(names)}, len(rows), params
    if not isinstance(data, list):
        raise CallError(f"{key} must be a list of request objects, got {type(data).__name__}")
    names: dict[str, None] = {}
    for r, record in enumerate(data):
        if not isinstance(record, dict):
            raise CallError(f"{key} row {r} must be an object (a request), got {quoted(record)}")
        names.update(dict.fromkeys(record))
    return {name: [record.get(name) for record in data] for name in names}, len(data), params


def answer_records(answer: dict[str, list]) -> list[dict]:
    """The model's answer columns (OUTPUT_COLUMNS) as JSON records; a score that is not a finite
    number is null."""
    columns = {**answer, "score": [s if math.isfinite(s) else None for s in answer["score"]]}
    return [dict(zip(OUTPUT_COLUMNS, row)) for row in zip(*(columns[c] for c in OUTPUT_COLUMNS))]


class PosServer:
    """An ASGI application serving `model_uri` (loaded once, at construction, from the registry)."""

    def __init__(self, model_uri: str, *, max_body_bytes: int = MAX_BODY_BYTES, request_timeout_s: float = REQUEST_TIMEOUT_S):
        import mlflow

        self.model_uri = model_uri
        self.max_body_bytes = int(max_body_bytes)
        self.request_timeout_s = float(request_timeout_s)
        pyfunc = mlflow.pyfunc.load_model(model_uri)
        model = pyfunc.unwrap_python_model()
        if not hasattr(model, "answer_columns"):
            raise SystemExit(f"{model_uri} is not a POS recommender model ({type(model).__name__}); "
                             f"serve it with `mlflow models serve` or register a workbench model")
        self.model = model  # a workbench.pos_model.PosRecommenderModel
        self.version = json.dumps({"model_uri": model_uri, **self.model.settings}).encode()
        self._scoring = ThreadPoolExecutor(max_workers=1, thread_name_prefix="pos-scoring")

    async def __call__(self, scope, receive, send):
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    self._scoring.shutdown(wait=False, cancel_futures=True)
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        if scope["type"] != "http":
            return
        path, method = scope["path"], scope["method"]
        if path in ("/ping", "/health") and method in ("GET", "HEAD"):
            return await _respond(send, 200, b"\n")
        if path == "/version" and method == "GET":
            return await _respond(send, 200, self.version)
        if path != "/invocations":
            return await _respond(send, 404, _error("NOT_FOUND", f"no {path}; POST /invocations, GET /ping, /health, /version"))
        if method != "POST":
            return await _respond(send, 405, _error("BAD_REQUEST", "POST a JSON body to /invocations"))
        try:
            body = await self._body(scope, receive)
            status, answer = 200, await asyncio.wait_for(
                asyncio.get_running_loop().run_in_executor(self._scoring, self._score, body), self.request_timeout_s)
        except CallError as error:
            status, answer = error.status, _error(error.error_code, str(error))
        except (asyncio.TimeoutError, TimeoutError):
            status, answer = 504, _error("REQUEST_TIMEOUT", f"the call waited longer than {self.request_timeout_s:g} s")
        await _respond(send, status, answer)

    async def _body(self, scope, receive) -> bytes:
        headers = dict(scope["headers"])
        content_type = headers.get(b"content-type", b"").split(b";")[0].strip().lower()
        if content_type != b"application/json":
            raise CallError(f"Content-Type must be application/json, got {quoted(content_type.decode('latin-1'))}", status=415)
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise CallError("the client went away before its body arrived")
            chunk = message.get("body", b"")
            size += len(chunk)
            if size <= self.max_body_bytes:
                chunks.append(chunk)
            else:
                chunks.clear()  # read to the end, keep nothing: the client then reads the 413, not a reset
            if not message.get("more_body", False):
                break
        if size > self.max_body_bytes:
            raise CallError(f"the body is {size:,} bytes; at most {self.max_body_bytes:,} are read per call: split it", status=413)
        return b"".join(chunks)

    def _score(self, body: bytes) -> bytes:
        """Parse, answer and write one call (on the scoring thread)."""
        from mlflow.exceptions import MlflowException

        try:
            payload = json.loads(body)
        except (ValueError, UnicodeDecodeError) as error:
            raise CallError(f"the body is not JSON: {error}") from None
        columns, n, params = request_columns(payload)
        try:
            answer = self.model.answer_columns(columns, n, params)
        except MlflowException as error:  # the model's own checks: the row and the column
            raise CallError(error.message, error_code="INVALID_PARAMETER_VALUE") from None
        except Exception:
            _logger.exception("scoring failed")
            raise CallError("the model failed on this call; the server log has the details", status=500, error_code="INTERNAL_ERROR") from None
        return json.dumps({"predictions": answer_records(answer)}, allow_nan=False, separators=(",", ":")).encode()


def _error(code: str, message: str) -> bytes:
    return json.dumps({"error_code": code, "message": message}).encode()


async def _respond(send, status: int, body: bytes) -> None:
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


def app_from_environment() -> PosServer:
    """The app of one worker process (uvicorn's factory): settings from the environment `main` set."""
    return PosServer(os.environ[_ENV["model_uri"]], max_body_bytes=int(os.environ.get(_ENV["max_body_bytes"], MAX_BODY_BYTES)),
                     request_timeout_s=float(os.environ.get(_ENV["request_timeout_s"], REQUEST_TIMEOUT_S)))


def command(model_uri: str, port: int, host: str = "127.0.0.1", workers: int = 1, request_timeout_s: float | None = None) -> list[str]:
    """The command line that serves `model_uri`."""
    line = [sys.executable, "-m", "workbench.pos_server", "--model-uri", model_uri, "--host", host, "--port", str(port), "--workers", str(workers)]
    return line + (["--request-timeout-s", str(request_timeout_s)] if request_timeout_s else [])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="Serve one registered POS model over HTTP (the MLflow scoring protocol, JSON).")
    parser.add_argument("--model-uri", required=True, help="e.g. models:/pos-recommender@champion-USRT")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=5001)
    parser.add_argument("--workers", type=int, default=1, help="worker processes (each loads its own copy of the model)")
    parser.add_argument("--max-body-bytes", type=int, default=MAX_BODY_BYTES)
    parser.add_argument("--request-timeout-s", type=float, default=REQUEST_TIMEOUT_S)
    args = parser.parse_args(argv)
    import uvicorn

    os.environ[_ENV["model_uri"]] = args.model_uri
    os.environ[_ENV["max_body_bytes"]] = str(args.max_body_bytes)
    os.environ[_ENV["request_timeout_s"]] = str(args.request_timeout_s)
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    # no access log: a store's terminals call many times a second, and the line costs as much as
    # the JSON; errors are still logged
    uvicorn.run("workbench.pos_server:app_from_environment", factory=True, host=args.host, port=args.port,
                workers=max(int(args.workers), 1), access_log=False, log_level="warning")
    return 0


if __name__ == "__main__":
    sys.exit(main())
