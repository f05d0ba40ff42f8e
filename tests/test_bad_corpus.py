"""The bad-input corpus (tests/data/bad, described by expected.tsv) through every entry point:
the library reader, `dgex inspect` and `dgex train`. Each bad file gets a clear message naming
what is wrong, nothing crashes, and nothing partial is written."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from dgex_core.errors import DataFormatError
from dgex_core.io import read

BAD = Path(__file__).resolve().parent / "data" / "bad"
ROWS = list(csv.DictReader((BAD / "expected.tsv").read_text().splitlines(), delimiter="\t"))


def _words(row) -> list[str]:
    return [w for w in row["words"].split("|") if w != "-"]


def _matches(message: str, row) -> bool:
    """Any of the '|'-separated alternatives may describe the problem (a truncated gzip may
    surface as 'cut off' or as 'damaged', depending on where the stream breaks)."""
    words = _words(row)
    return not words or any(w.lower() in message.lower() for w in words)


@pytest.mark.parametrize("row", [r for r in ROWS if r["read"] != "-"], ids=lambda r: r["file"])
def test_library_reader(row):
    path = BAD / row["file"]
    if row["read"] == "ok":
        read(path)
        return
    with pytest.raises(DataFormatError) as err:
        read(path)
    assert row["file"] in str(err.value)
    assert _matches(str(err.value), row), str(err.value)


def _dgex(*args, tmp_path):
    env = {**os.environ, "DGEX_RUNS_DIR": str(tmp_path / "runs"), "DGEX_DATA_DIR": str(tmp_path / "data")}
    return subprocess.run([sys.executable, "-m", "dgex_core.cli", *map(str, args)], capture_output=True, text=True,
                          env=env, timeout=300)


@pytest.mark.parametrize("row", ROWS, ids=lambda r: r["file"])
def test_dgex_commands(row, tmp_path):
    path = BAD / row["file"]
    cfg = tmp_path / "lin.json"
    cfg.write_text(json.dumps({"linear": {"alphas": None}}))
    if row["file"].endswith("landmarks.txt"):  # a bad landmark list, with a good table
        args = ["train", "--data", BAD / "wrong_orientation.csv", "--landmarks", path]
    else:
        args = ["train", "--data", path, "--landmarks", BAD / "landmarks.txt"]
    out = _dgex(*args, "--val", 0, "--test", 0, "--config", cfg, "--name", "r", tmp_path=tmp_path)
    assert "Traceback" not in out.stderr
    if row["train"] == "ok":
        assert out.returncode == 0, out.stderr
        assert "6 landmarks -> 4 targets" in out.stdout
        return
    assert out.returncode == 1, (out.stdout, out.stderr)
    assert _matches(out.stderr, row), out.stderr
    assert not (tmp_path / "runs" / "r").exists()  # nothing partial
    if row["read"] == "error":
        out = _dgex("inspect", path, tmp_path=tmp_path)
        assert out.returncode == 1 and row["file"] in out.stderr and _matches(out.stderr, row), out.stderr
        assert len(out.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize("row", [r for r in ROWS if r["read"] == "error" or r["train"] == "error"],
                         ids=lambda r: r["file"])
def test_dashboard_data_page(row, tmp_path, monkeypatch):
    """The same files given to the dashboard's Data page (the server-path route, which uploads
    also take once saved to the session folder): one error naming the problem, no exception."""
    pytest.importorskip("streamlit")
    from streamlit.testing.v1 import AppTest

    monkeypatch.setenv("DGEX_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("DGEX_RUNS_DIR", str(tmp_path / "runs"))
    monkeypatch.setenv("DGEX_DEMO_SIZE", "1500x200")
    data, lm = BAD / row["file"], BAD / "landmarks.txt"
    if row["file"].endswith("landmarks.txt"):
        data, lm = BAD / "wrong_orientation.csv", BAD / row["file"]
    at = AppTest.from_file(str(Path(__file__).resolve().parents[1] / "app.py"), default_timeout=120).run()
    at.radio(key="data_source").set_value("A file").run()
    at.radio(key="data_file_how").set_value("Path on the server").run()
    at.radio(key="landmark_file_how").set_value("Path on the server").run()
    at.text_input(key="data_file_path").set_value(str(data)).run()
    at.text_input(key="landmark_file_path").set_value(str(lm)).run()
    assert not at.exception, at.exception
    shown = "\n".join(str(e.value) for kind in ("error", "warning") for e in getattr(at, kind))
    if row["read"] == "error":
        assert len(at.error) == 1 and row["file"] in shown and _matches(shown, row), shown
    elif row["file"] in ("no_landmarks.csv", "half_landmarks.txt"):
        assert _matches(shown, row) or "landmark" in shown.lower(), shown


@pytest.fixture(scope="module")
def corpus_run(tmp_path_factory):
    """A linear run on the corpus's good table (L0-L5 -> T0-T3), for `dgex predict`."""
    root = tmp_path_factory.mktemp("corpus-runs")
    cfg = root / "lin.json"
    cfg.write_text(json.dumps({"linear": {"alphas": None}}))
    out = _dgex("train", "--data", BAD / "wrong_orientation.csv", "--landmarks", BAD / "landmarks.txt", "--val", 0,
                "--test", 0, "--config", cfg, "--name", "good", tmp_path=root)
    assert out.returncode == 0, out.stderr
    return root


@pytest.mark.parametrize("row", [r for r in ROWS if r["predict"] != "-"], ids=lambda r: r["file"])
def test_dgex_predict(row, corpus_run, tmp_path):
    """Each data file of the corpus as the input of `dgex predict`: "ok" predicts (a NaN
    in a target, which predict does not read, included); "error" ends in one line,
    exit 1, and no output (not even a temporary)."""
    env_root = corpus_run
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    out = _dgex("predict", "good", BAD / row["file"], "-o", out_dir / "p.parquet", tmp_path=env_root)
    assert "Traceback" not in out.stderr
    if row["predict"] == "ok":
        assert out.returncode == 0, out.stderr
        assert (out_dir / "p.parquet").exists()
        return
    assert out.returncode == 1, (out.stdout, out.stderr)
    assert len(out.stderr.strip().splitlines()) == 1, out.stderr
    assert list(out_dir.iterdir()) == []
