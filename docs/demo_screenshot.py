"""Retakes docs/screenshots/demo_product_page.png, the README's picture of the demo retailer's
product page: the Voila dashboard of this checkout (WORKBENCH_HOME = the repository, its mlruns/),
as `make demo` left it, in headless Chromium. Run by `make screenshots` after `make demo`.

The picture is the page as it opens: the live model's header and the product page of the first
product in the picker, which is the dashboard's own choice, so nothing here picks what to show.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "docs" / "screenshots"

# the browser test's own Chromium settings and full-page screenshot, so both kinds of picture match
os.environ.setdefault("WORKBENCH_SCREENSHOTS", str(OUT))
sys.path.insert(0, str(ROOT / "tests"))
from test_dashboard import CHROMIUM, CHROMIUM_ARGS, TIMEOUT_MS, screenshot  # noqa: E402

from workbench import local_server  # noqa: E402


def main() -> Path:
    if not (ROOT / "mlruns" / "mlflow.db").exists():
        raise SystemExit("no registered model in mlruns/: run `make demo` first")
    from playwright.sync_api import sync_playwright

    port = local_server.free_port()
    command = [str(local_server.BIN / "voila"), str(ROOT / "notebooks" / "dashboard.ipynb"), "--no-browser",
               "--Voila.ip=127.0.0.1", f"--port={port}"]
    env = {"WORKBENCH_HOME": str(ROOT), "MLFLOW_TRACKING_URI": f"sqlite:///{ROOT / 'mlruns' / 'mlflow.db'}"}
    log = Path(tempfile.mkdtemp(prefix="demo-screenshot-")) / "voila.log"
    with local_server.running(command, port, log_path=log, env=env, cwd=ROOT / "notebooks", timeout=120) as base, \
            sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1300, "height": 900})
        page.set_default_timeout(TIMEOUT_MS)
        page.goto(f"{base}/", timeout=TIMEOUT_MS)
        page.wait_for_selector("table.recommendations[data-page='product'] tr[data-product-id]", state="visible",
                               timeout=TIMEOUT_MS)
        page.wait_for_selector("table.champion-uncertainty tr[data-scenario]", state="attached", timeout=TIMEOUT_MS)
        path = screenshot(page, "demo_product_page")
        browser.close()
    return path


if __name__ == "__main__":
    print(main())
