"""A server process on loopback (the POS server, `mlflow models serve`, Voila) for tests and
benchmarks: started in its own process group, waited for, and stopped by its process id with
everything it spawned.

`python -m workbench.local_server [--legal-entity USRT] [--port 5001]` (what `make serve` runs)
serves the champion of one legal entity, `models:/pos-recommender@champion-<legal entity>`, or
without one the last registered `@champion`, and says first which legal entity that is. It serves
with `workbench.pos_server` (`--server pos`, the default) or `mlflow models serve` (`--server mlflow`):
the same model and the same JSON protocol.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from contextlib import contextmanager
from pathlib import Path

BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _answers(port: int, ready_path: str | None) -> bool:
    if ready_path is None:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return True
        except OSError:
            return False
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{ready_path}", timeout=2) as response:
            return response.status == 200
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return False


def stop(process: subprocess.Popen) -> None:
    """SIGTERM to the process group (Voila shuts its kernels down, uvicorn its workers), then SIGKILL."""
    try:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=30)
    except ProcessLookupError:
        pass
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)


@contextmanager
def running(command: list[str], port: int, *, log_path: Path, env: dict | None = None, cwd=None,
            ready_path: str | None = None, timeout: float = 120):
    """Run `command` (which listens on 127.0.0.1:`port`) until the block ends; yields its base URL.
    `ready_path`: an HTTP path answering 200 once the server is ready (else: the port accepts)."""
    env = {**os.environ, **(env or {})}
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"  # mlflow runs `uvicorn` from PATH
    with open(log_path, "wb") as log:
        process = subprocess.Popen(command, env=env, cwd=cwd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            deadline = time.monotonic() + timeout
            while not _answers(port, ready_path):
                if process.poll() is not None:
                    raise RuntimeError(f"{command[0]} exited with {process.returncode}:\n{Path(log_path).read_text()[-3000:]}")
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{command[0]} did not answer on port {port} within {timeout:.0f} s:\n"
                                       f"{Path(log_path).read_text()[-3000:]}")
                time.sleep(0.5)
            yield f"http://127.0.0.1:{port}"
        finally:
            stop(process)


def default_workers() -> int:
    """One server process per core: scoring is CPU-bound Python, so threads of one process share one
    core (the GIL) and only processes add throughput; each process holds its own copy of the model."""
    return max(os.cpu_count() or 1, 1)


SERVERS = ("pos", "mlflow")


def serve_command(model_uri: str, port: int, host: str = "127.0.0.1", workers: int = 1, request_timeout_s: int | None = None,
                  server: str = "pos") -> list[str]:
    """The command serving `model_uri`: `workbench.pos_server` ("pos") or `mlflow models serve`
    ("mlflow"; its uvicorn reads each body whole with no size limit of its own, so the model bounds
    what a call may ask, see workbench.pos_model). `request_timeout_s`: past it a call is answered 504
    (default 60 s)."""
    if server == "pos":
        from workbench import pos_server

        return pos_server.command(model_uri, port, host, workers, request_timeout_s)
    if server != "mlflow":
        raise ValueError(f"server must be one of {SERVERS}, got {server!r}")
    command = [str(BIN / "mlflow"), "models", "serve", "-m", model_uri, "--env-manager", "local",
               "-h", host, "-p", str(port), "-w", str(workers)]
    return command + (["-t", str(int(request_timeout_s))] if request_timeout_s else [])


def model_server(model_uri: str, port: int, *, tracking_uri: str, log_path: Path, timeout: float = 180,
                 request_timeout_s: int | None = None, workers: int = 1, server: str = "pos"):
    """`model_uri` served on 127.0.0.1:`port` by `server` with `workers` processes, ready once /ping answers."""
    env = {"MLFLOW_TRACKING_URI": tracking_uri, "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false"}
    command = serve_command(model_uri, port, request_timeout_s=request_timeout_s, workers=workers, server=server)
    return running(command, port, log_path=log_path, env=env, ready_path="/ping", timeout=timeout)


def champion_uri(legal_entity: str | None = None, name: str | None = None) -> tuple[str, dict]:
    """(model URI, its serving settings) of the champion of `legal_entity` (its own alias,
    `@champion-<legal entity>`, which no other legal entity's run moves), or of the last registered
    `@champion` where none is given. A clear error where that alias does not exist."""
    import mlflow
    from mlflow.exceptions import MlflowException

    from workbench import tracking

    name = name or tracking.REGISTERED_MODEL_NAME
    alias = tracking.legal_entity_alias(legal_entity) if legal_entity else tracking.CHAMPION_ALIAS
    uri = f"models:/{name}@{alias}"
    tracking.configure()
    try:
        version = mlflow.MlflowClient().get_model_version_by_alias(name, alias)
        info = mlflow.models.get_model_info(uri)
    except MlflowException as error:
        what = f"legal entity {legal_entity}" if legal_entity else "any legal entity"
        raise SystemExit(f"No model registered as {name}@{alias} for {what}: run `workbench run` for it first ({error.message})") from error
    settings = dict((info.metadata or {}).get("pos_settings") or {})
    settings["version"] = int(version.version)
    if legal_entity and settings.get("legal_entity") not in (None, legal_entity):
        raise SystemExit(f"{uri} holds a model of legal entity {settings['legal_entity']}, not {legal_entity}")
    return uri, settings


def describe(uri: str, settings: dict) -> str:
    state = "on" if settings.get("enable_pos_recommendations", True) else "TURNED OFF"
    return (f"{uri}: version {settings.get('version')}, legal entity {settings.get('legal_entity', 'unknown')}, "
            f"algorithm {settings.get('algorithm', 'unknown')}, trained at {settings.get('trained_at', 'unknown')}, "
            f"POS recommendations {state}")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="Serve the champion of one legal entity over HTTP.")
    parser.add_argument("--legal-entity", default="", help="serve @champion-<legal entity>; empty: the last registered @champion")
    parser.add_argument("--port", type=int, default=5001)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--workers", type=int, default=0, help="server processes; 0: one per core")
    parser.add_argument("--server", choices=SERVERS, default="pos", help="pos: workbench.pos_server; mlflow: `mlflow models serve`")
    args = parser.parse_args(argv)
    uri, settings = champion_uri(args.legal_entity or None)
    print(f"Serving {describe(uri, settings)} on http://{args.host}:{args.port}", flush=True)
    if not args.legal_entity:
        print(f"(the last registered champion, whichever legal entity that is: `make serve LEGAL_ENTITY={settings.get('legal_entity', '<id>')}` "
              "keeps serving that legal entity's own champion)", flush=True)
    workers = args.workers or default_workers()
    print(f"{workers} worker process(es), each with its own copy of the model", flush=True)
    command = serve_command(uri, args.port, args.host, workers, server=args.server)
    os.environ["PATH"] = f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"  # mlflow runs `uvicorn` from PATH
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    import mlflow

    os.environ["MLFLOW_TRACKING_URI"] = mlflow.get_tracking_uri()  # the store the alias was read from
    os.execv(command[0], command)
    return 0


if __name__ == "__main__":
    sys.exit(main())
