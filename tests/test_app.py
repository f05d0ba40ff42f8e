"""The dashboard's first page renders on the demo (Streamlit's AppTest, no browser)."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("streamlit")
from streamlit.testing.v1 import AppTest

APP = Path(__file__).resolve().parents[1] / "app.py"


def test_home_page_shows_the_demo(tmp_path, monkeypatch):
    monkeypatch.setenv("DGEX_DATA_DIR", str(tmp_path))
    at = AppTest.from_file(str(APP), default_timeout=120).run()
    assert not at.exception, at.exception
    assert "dgex" in at.title[0].value
    labels = {m.label: m.value for m in at.metric}
    assert labels["Landmarks (inputs)"] == "978"
    assert labels["Samples"] == "10,000"
    assert any("synthetic" in c.value for c in at.caption)
