"""report.html as people see it: opened in a real headless browser (Chromium), every plot must load and nothing
may make the page wider than the window (wide tables scroll inside their own box). Skips, saying why, where
no browser is installed (.ci/run installs Debian's chromium)."""

from __future__ import annotations

import html
import json
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from pixel_spotter import cli
from pixel_spotter.run_folder import Results, RunFolder

BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
BROWSER = next((path for name in BROWSERS if (path := shutil.which(name))), None)
pytestmark = pytest.mark.skipif(BROWSER is None, reason=f"no headless browser found (looked for {', '.join(BROWSERS)}"
                                "; `apt-get install chromium` provides one)")

# Runs after the page has loaded and writes what it found into the DOM, which --dump-dom prints.
CHECK = """<script>
window.addEventListener("load", () => {
  const width = document.documentElement.clientWidth;
  const wide = [...document.body.querySelectorAll("*")]
    .filter(el => !el.closest(".scroll") && el.getBoundingClientRect().right > width + 0.5)
    .map(el => el.tagName + ": " + el.textContent.slice(0, 80));
  const result = {
    images: [...document.images].map(img => ({alt: img.alt, complete: img.complete, width: img.naturalWidth})),
    scrollWidth: document.documentElement.scrollWidth, clientWidth: width, innerWidth: window.innerWidth, wide,
  };
  const out = document.createElement("pre");
  out.id = "browser-check";
  out.textContent = JSON.stringify(result);
  document.body.appendChild(out);
});
</script>"""


def _sweep(folder: Path) -> Path:
    """A sweep on disk without training: two finished models at two learning rates with test predictions,
    and a failed job with a long unbroken error (long words must wrap, not widen the page)."""
    rng = np.random.default_rng(0)
    positions = np.array([(x, y) for x in range(12) for y in range(12)])
    for job, (model, lr) in enumerate([("cnn", 1e-3), ("cnn", 1e-2), ("heatmap", 1e-3), ("heatmap", 1e-2)]):
        run = RunFolder(folder / f"{job}_model={model},model.lr={lr}")
        true = positions[rng.permutation(len(positions))[:40]]
        pred = true + rng.normal(0, 0.2 + job * 0.3, true.shape)
        run.write_predictions([(*t, *p) for t, p in zip(true, pred)])
        error = float(np.hypot(*(pred - true).T).mean())
        run.write(Results(status="ok", model=model, lr=lr, max_epochs=2, seed=0, weights_used="random init",
                          data={"height": 12, "width": 12, "split": "position"}, test_overlap=0.0,
                          test={"euclid_px": error, "rmse_px": error, "exact_acc": 0.5, "within1_acc": 0.7},
                          overrides=[f"model={model}", f"model.lr={lr}", "data.some_very_long_override_name="
                                     + "x" * 60]))
    failed = RunFolder(folder / ("4_model=resnet18,model.net.weights=/" + "deeply/" * 12 + "missing.pth"))
    failed.write(Results(status="failed", model="resnet18", error="weights file /" + "deeply/" * 12 + "missing.pth "
                         + "not found: " + "unbroken_" * 30))
    return folder


def _open(page: Path, width: int) -> dict:
    probe = page.with_name(f"browser_check_{width}.html")
    probe.write_text(page.read_text().replace("</body>", CHECK + "</body>"))
    cmd = [BROWSER, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--hide-scrollbars",
           f"--window-size={width},900", "--virtual-time-budget=10000", "--dump-dom", probe.as_uri()]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    found = re.search(r'<pre id="browser-check">(.*?)</pre>', proc.stdout, re.S)
    assert found, f"the browser printed no result (exit {proc.returncode}):\n{proc.stderr[-2000:]}"
    return json.loads(html.unescape(found.group(1)))


@pytest.fixture(scope="module")
def report_html(tmp_path_factory) -> tuple[Path, int]:
    base = tmp_path_factory.mktemp("browser")
    out = base / "report"
    assert cli.main(["report", str(_sweep(base / "sweep")), "--out", str(out)]) == 0
    return out / "report.html", len(list((out / "plots").glob("*.png")))


@pytest.mark.parametrize("width", [1280, 800])
def test_every_plot_loads_and_nothing_overflows(report_html, width):
    page, n_plots = report_html
    result = _open(page, width)
    assert n_plots >= 6 and len(result["images"]) == n_plots
    broken = [img["alt"] for img in result["images"] if not (img["complete"] and img["width"] > 0)]
    assert not broken, f"plots that did not load: {broken}"
    assert result["scrollWidth"] <= result["clientWidth"], f"the page is wider than the window: {result['wide']}"
    assert not result["wide"]
