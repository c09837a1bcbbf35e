"""A server process on loopback (`mlflow models serve`, Voila) for tests and benchmarks: started in
its own process group, waited for, and stopped by its process id with everything it spawned."""

from __future__ import annotations

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


def model_server(model_uri: str, port: int, *, tracking_uri: str, log_path: Path, timeout: float = 180):
    """`mlflow models serve` of `model_uri` on 127.0.0.1:`port`, ready once /ping answers."""
    command = [str(BIN / "mlflow"), "models", "serve", "-m", model_uri, "--env-manager", "local",
               "-h", "127.0.0.1", "-p", str(port), "-w", "1"]
    env = {"MLFLOW_TRACKING_URI": tracking_uri, "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false"}
    return running(command, port, log_path=log_path, env=env, ready_path="/ping", timeout=timeout)
