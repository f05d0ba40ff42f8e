"""Take a screenshot of the running dashboard with Debian's headless Chromium (Playwright).

    .venv/bin/python scripts/screenshot.py http://127.0.0.1:8501 docs/screenshots/home.png
"""

from __future__ import annotations

import sys

from playwright.sync_api import sync_playwright

URL, OUT = sys.argv[1], sys.argv[2]
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--no-first-run",
        "--disable-component-update", "--disable-sync"]

with sync_playwright() as p:
    browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=ARGS)
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.goto(URL)
    page.get_by_text("Noise floor per target").wait_for(timeout=120_000)
    page.wait_for_timeout(3000)
    page.screenshot(path=OUT, full_page=True)
    browser.close()
