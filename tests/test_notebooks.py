"""`pytest --nbval-lax` over every notebook, in order, on a small generated retailer.

The stage notebooks run with their default parameters, as a data scientist opening them in
JupyterLab would; they need the demo database, so this runs nbval in a scratch WORKBENCH_HOME
prepared with `workbench demo-data`.
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ["01_extract.ipynb", "02_cleanse.ipynb", "03_train.ipynb", "04_evaluate.ipynb", "dashboard.ipynb"]

pytestmark = pytest.mark.e2e


def test_notebooks_pass_nbval(tmp_path):
    env = {**os.environ, "WORKBENCH_HOME": str(tmp_path)}
    env.pop("MLFLOW_TRACKING_URI", None)
    bin_dir = Path(sys.executable).parent
    subprocess.run([str(bin_dir / "workbench"), "demo-data", "--scale", "0.2", "--seed", "3"], env=env, check=True,
                   capture_output=True)
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "--nbval-lax", "--nbval-kernel-name", "pos-workbench", "-p", "no:cacheprovider",
         "-q", *[str(ROOT / "notebooks" / name) for name in NOTEBOOKS]],
        env=env, capture_output=True, text=True, cwd=ROOT / "notebooks", timeout=1200,
    )
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-2000:]
    assert " passed" in done.stdout and "failed" not in done.stdout.splitlines()[-1]
