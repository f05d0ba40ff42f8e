"""The dashboard in a real browser: ``streamlit run app.py`` driven by headless Chromium.

Walks every page on a small demo (upload of a malformed file, train a linear model and
a network, errors, coefficients, interpret with a download, predict and a download) and
saves a screenshot of each page (to a temporary folder; ``DGEX_SCREENSHOTS=docs/screenshots``
refreshes the README's pictures). Skips when Chromium or Playwright is missing.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

CHROMIUM = "/usr/bin/chromium"
REPO = Path(__file__).resolve().parents[2]
#: where the pictures go: the README's folder only when asked, so a test run leaves the
#: tracked files as they were
SHOTS = Path(os.environ.get("DGEX_SCREENSHOTS") or Path(os.environ.get("TMPDIR", "/tmp")) / "dgex-screenshots")

if not Path(CHROMIUM).exists():
    pytest.skip(f"{CHROMIUM} is not installed (Debian's chromium drives the browser test)", allow_module_level=True)
sync_api = pytest.importorskip("playwright.sync_api", reason="the playwright Python package is not installed")
if shutil.which("streamlit", path=str(Path(sys.executable).parent)) is None:
    pytest.skip("streamlit is not installed beside this Python", allow_module_level=True)

#: one pytest-xdist worker runs them all: they share the module's server and browser
pytestmark = pytest.mark.xdist_group("browser")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def _streamlit(tmp: Path, *extra: str):
    """``streamlit run app.py`` on a free loopback port; yields its URL."""
    port = _free_port()
    env = {**os.environ, "DGEX_DEMO_SIZE": "1500x200", "DGEX_DATA_DIR": str(tmp / "data"),
           "DGEX_RUNS_DIR": str(tmp / "runs")}
    with open(tmp / "streamlit.log", "w") as log:
        proc = subprocess.Popen(
            [str(Path(sys.executable).parent / "streamlit"), "run", "app.py", "--server.port", str(port),
             "--server.address", "127.0.0.1", "--server.headless", "true", "--browser.gatherUsageStats", "false",
             "--server.fileWatcherType", "none", *extra],
            cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT,
        )
        url = f"http://127.0.0.1:{port}"
        try:
            for _ in range(120):
                try:
                    if urllib.request.urlopen(url + "/_stcore/health", timeout=1).status == 200:
                        break
                except OSError:
                    time.sleep(0.25)
            else:
                pytest.fail("streamlit did not start: " + (tmp / "streamlit.log").read_text()[-2000:])
            yield url
        finally:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("browser")
    with _streamlit(tmp) as url:
        yield url, tmp


@pytest.fixture(scope="module")
def page(server):
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=[
            "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"])
        pg = browser.new_page(viewport={"width": 1400, "height": 1000})
        pg.set_default_timeout(60_000)
        yield pg
        browser.close()


def _settle(page) -> None:
    """Wait until Streamlit has finished running the script."""
    page.wait_for_timeout(300)
    page.wait_for_function("!document.querySelector('[data-testid=\"stStatusWidget\"]')", timeout=60_000)


def _see(root, text: str) -> None:
    """Wait until ``text`` is visible under ``root`` (a page or a locator): Streamlit renders
    in steps, so reading the page at once can miss what arrives a moment later."""
    root.get_by_text(text, exact=False).first.wait_for(state="visible", timeout=60_000)


def _goto(page, title: str) -> None:
    page.locator('[data-testid="stSidebarNav"]').get_by_text(title, exact=True).click()
    page.get_by_role("heading", name=title).first.wait_for()
    _settle(page)


def _shot(page, name: str, height: int | None = None) -> None:
    """Save ``SHOTS/<name>.png``; Streamlit scrolls inside its own container, so
    a long page is shown whole by a taller window (``height`` pixels) for the picture."""
    SHOTS.mkdir(parents=True, exist_ok=True)
    size = page.viewport_size
    if height:
        page.set_viewport_size({"width": size["width"], "height": height})
        _settle(page)
        page.wait_for_timeout(1500)  # plotly re-lays out its figures
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)
    if height:
        page.set_viewport_size(size)


def test_every_page_in_a_browser(server, page, tmp_path):
    url, tmp = server
    page.goto(url)
    page.get_by_role("heading", name="Data").first.wait_for()
    page.get_by_text("Landmark coverage").first.wait_for()
    _settle(page)
    sidebar = page.locator('[data-testid="stSidebar"]')
    _see(sidebar, "demo-1500x200")
    _see(page, "978 of 978")
    _shot(page, "data")
    _shot(page, "home")  # the README's picture of the first page

    # a malformed upload: the reader's message, and the app stays usable
    bad = tmp_path / "bad.gct"
    bad.write_text("#1.2\n2\t2\nName\tDescription\tS1\tS2\nG1\tx\t1.0\thigh\nG2\ty\t2.0\t3.0\n")
    page.get_by_text("A file", exact=True).click()
    _settle(page)
    page.locator('input[type="file"]').first.set_input_files(str(bad))
    page.get_by_text("bad.gct: line 4, column 4: 'high' is not a number").first.wait_for()
    assert "dgex-session" not in page.inner_text("body")  # the private temp folder is not shown
    _settle(page)
    _shot(page, "data_error")
    page.get_by_text("Built-in demo", exact=True).click()
    _settle(page)

    _goto(page, "Train")
    page.get_by_role("button", name="Train", exact=True).click()
    page.get_by_text("trained in").first.wait_for(timeout=90_000)
    _settle(page)
    _see(sidebar, "demo-1500x200-linear (linear)")
    _shot(page, "train")

    # the network: live epoch counter and curve while it trains in the background
    page.get_by_label("Model family").click()
    page.get_by_role("option", name="D-GEX network (PyTorch)").click()
    _settle(page)
    page.get_by_label("Hidden width").fill("64")
    page.get_by_label("Epochs").fill("300")
    page.get_by_label("Epochs").press("Enter")
    _settle(page)
    page.get_by_role("button", name="Train", exact=True).click()
    try:
        page.get_by_text(re.compile(r"epoch \d+ of 300")).first.wait_for(timeout=60_000)
    finally:
        _shot(page, "train_mlp")
    page.locator(".js-plotly-plot").first.wait_for()
    _shot(page, "train_mlp")  # the curve while it trains
    page.get_by_role("button", name="Stop").click()
    page.get_by_text("trained in").first.wait_for(timeout=90_000)
    _settle(page)
    _see(sidebar, "demo-1500x200-mlp (mlp)")
    page.locator(".js-plotly-plot").first.wait_for()
    _see(page, "validation MAE")

    _goto(page, "Errors")
    page.get_by_text("Per-gene error on the test samples").wait_for()
    page.locator(".js-plotly-plot").first.wait_for()
    _see(page, "noise floor")
    _shot(page, "errors")

    _goto(page, "Coefficients")
    page.get_by_text("The strongest weights, clustered").wait_for()
    page.locator(".js-plotly-plot").first.wait_for()
    _see(page, "Download the coefficient table")
    _shot(page, "coefficients")

    # the network's attributions beside the linear weights, per tissue, and a download
    _goto(page, "Interpret")
    page.get_by_text("Does the network read the landmarks like the linear model?").wait_for()
    for text in ("Median Spearman r over targets", "Network: precision at 20", "Context dependence of TG00001",
                 "Targets a landmark drives"):
        _see(page, text)
    page.locator(".js-plotly-plot").nth(4).wait_for()  # agreement, target bars, group heatmap, context, landmark bars
    _settle(page)
    _shot(page, "interpret", height=3400)
    with page.expect_download() as dl:
        page.get_by_role("button", name=re.compile(r"TG00001: every landmark, both models and groups")).click()
    saved = tmp_path / "TG00001.csv"
    dl.value.save_as(saved)
    import numpy as np
    import pandas as pd

    from dgex_core.store import load_run

    table = pd.read_csv(saved, index_col="landmark")
    lin = load_run(tmp / "runs" / "demo-1500x200-linear").model
    coef = pd.Series(lin.coef_[:, list(lin.target_ids_).index("TG00001")], index=lin.landmark_ids_)
    assert len(table) == 978 and {"network", "linear", "true_driver"} <= set(table.columns)
    assert any(c.startswith("tissue=") for c in table.columns)
    np.testing.assert_allclose(table["linear"].to_numpy(), coef.reindex(table.index).to_numpy(), rtol=1e-6, atol=1e-9)

    from dgex_core.demo import app_demo_config, load_demo

    demo = load_demo(app_demo_config("1500x200"), cache_dir=tmp / "data" / "demo")
    plate = tmp_path / "plate.csv"
    pd.DataFrame(demo.landmark_values[:30], index=[f"P{i}" for i in range(30)], columns=demo.landmark_ids).to_csv(plate)
    _goto(page, "Predict")
    page.locator('input[type="file"]').first.set_input_files(str(plate))
    page.get_by_text("Preview (first samples, first inferred genes)").wait_for()
    _settle(page)
    _see(page, "978 of 978")
    page.get_by_role("button", name="Build the predictions file").click()
    button = page.get_by_role("button", name=re.compile(r"Download demo-1500x200-mlp_predictions\.csv"))
    button.wait_for()
    _settle(page)
    with page.expect_download() as dl:
        button.click()
    saved = tmp_path / "predictions.csv"
    dl.value.save_as(saved)
    assert "P29" in saved.read_text()
    _shot(page, "predict")


def test_upload_ten_times_the_limit_is_refused_and_the_app_stays_usable(tmp_path, page):
    """The limit comes from the server config (here 1 MB instead of 500 MB, to keep the
    test small): a 10 MB file is refused in the page, and the demo stays in use."""
    big = tmp_path / "big.gct"
    big.write_bytes(b"#1.2\n" + b"x" * (10 * 2**20))
    with _streamlit(tmp_path, "--server.maxUploadSize", "1") as url:
        pg = page.context.browser.new_page(viewport={"width": 1400, "height": 1000})  # the module's browser
        pg.set_default_timeout(60_000)
        pg.goto(url)
        pg.get_by_text("Landmark coverage").first.wait_for()
        pg.get_by_text("A file", exact=True).click()
        pg.locator('input[type="file"]').first.set_input_files(str(big))
        pg.get_by_text(re.compile(r"must be 1(\.0)?\s*MB or smaller")).first.wait_for()
        pg.get_by_text("Built-in demo", exact=True).click()
        pg.get_by_text("978 of 978").first.wait_for()
        _see(pg.locator('[data-testid="stSidebar"]'), "demo-1500x200")
        pg.close()


def test_a_reload_mid_training_shows_the_job_again(server, page):
    """A network trains; the page is reloaded (and the app opened in a second tab at the
    plain address): both show its live progress, its settings and Stop, and no second
    Train; Stop ends it and the run is listed once."""
    url, _ = server
    ctx = page.context.browser.new_context(viewport={"width": 1400, "height": 1000})  # a new user: own cookies
    try:
        pg = ctx.new_page()
        pg.set_default_timeout(60_000)
        pg.goto(url)
        pg.get_by_text("Landmark coverage").first.wait_for()
        _settle(pg)
        _goto(pg, "Train")
        pg.get_by_label("Model family").click()
        pg.get_by_role("option", name="D-GEX network (PyTorch)").click()
        _settle(pg)
        pg.get_by_label("Hidden width").fill("64")
        pg.get_by_label("Epochs").fill("500")
        pg.get_by_label("Epochs").press("Enter")
        _settle(pg)
        sync_api.expect(pg.get_by_label("Run name")).to_have_value(re.compile(r"-mlp(-\d+)?$"))
        name = pg.get_by_label("Run name").input_value()
        pg.get_by_role("button", name="Train", exact=True).click()
        epoch = re.compile(r"epoch \d+ of 500")
        pg.get_by_text(epoch).first.wait_for(timeout=60_000)
        assert "user=" in pg.url
        assert any(c["name"] == "dgex_user" for c in ctx.cookies())

        pg.reload()
        second = ctx.new_page()  # the same browser, the address the server prints
        second.set_default_timeout(60_000)
        second.goto(url)
        second.get_by_role("heading", name="Data").first.wait_for()
        _goto(second, "Train")
        for tab in (pg, second):
            tab.get_by_role("heading", name="Train").first.wait_for()
            tab.get_by_text(epoch).first.wait_for(timeout=30_000)
            tab.get_by_role("button", name="Stop").wait_for()
            sync_api.expect(tab.get_by_role("button", name="Train", exact=True)).to_be_disabled()
            _see(tab, f"{name} is training")
            _see(tab.locator('[data-testid="stSidebar"]'), f"Training {name}")
            assert tab.get_by_label("Hidden width").input_value() == "64"
            assert tab.get_by_label("Epochs").input_value() == "500"
            family = tab.locator('[data-testid="stSelectbox"]').filter(has_text="Model family").first
            shown = family.evaluate("e => e.innerText + ' ' + [...e.querySelectorAll('input')].map(i => i.value).join(' ')")
            assert "D-GEX network (PyTorch)" in shown, shown
        pg.get_by_role("button", name="Stop").click()
        for tab in (pg, second):
            tab.get_by_text("trained in").first.wait_for(timeout=90_000)
            _settle(tab)
            sidebar = tab.locator('[data-testid="stSidebar"]')
            _see(sidebar, f"{name} (mlp)")
            assert sidebar.get_by_text(f"{name} (mlp)").count() == 1
            # the rerun that redraws the page with Train enabled can still be under way
            # (the sidebar is drawn first): wait for it rather than read the page at once
            sync_api.expect(tab.get_by_role("button", name="Train", exact=True)).to_be_enabled(timeout=30_000)
    finally:
        ctx.close()
