"""The bad-input corpus (tests/data/bad, described by expected.tsv) through every entry point:
the library reader, `dgex inspect` and `dgex train`. Each bad file gets a clear message naming
what is wrong, nothing crashes, and nothing partial is written."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from dgex_core.errors import DataFormatError
from dgex_core.io import read

from .helpers import run_cli

BAD = Path(__file__).resolve().parent / "data" / "bad"
ROWS = list(csv.DictReader((BAD / "expected.tsv").read_text().splitlines(), delimiter="\t"))


def _words(row) -> list[str]:
    return [w for w in row["words"].split("|") if w != "-"]


def _matches(message: str, row) -> bool:
    """Every one of the '|'-separated words is in the message (case aside)."""
    return all(w.lower() in message.lower() for w in _words(row))


#: What the Data page shows for the files it reads but a training refuses (the reader's
#: errors are the same as the command's): (errors, warnings, how the one shown begins)
ON_THE_DATA_PAGE = {
    "nan_inf.gct": (0, 0, ""),  # refused when a model is trained on it, not before
    "no_landmarks.csv": (1, 0, "None of the 6 landmarks of landmarks.txt is in no_landmarks.csv: the file's "
                               "genes are gene symbols (or other names) (e.g. X0, X1, X2)"),
    "half_landmarks.txt": (0, 1, "Some landmarks are missing: tick the box to proceed with the present ones."),
    "one_id_landmarks.txt": (1, 0, "one_id_landmarks.txt: the list holds 1 landmark (L0), a model needs at "
                                   "least 2"),
}


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
    return run_cli(*args, env={"DGEX_RUNS_DIR": str(tmp_path / "runs"), "DGEX_DATA_DIR": str(tmp_path / "data")})


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
        assert "r (linear) saved to" in out.stdout
        assert "40 train, 0 validation, 0 test samples; 6 landmarks -> 4 targets" in out.stdout, out.stdout
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
    else:
        n_errors, n_warnings, start = ON_THE_DATA_PAGE[row["file"]]
        assert (len(at.error), len(at.warning)) == (n_errors, n_warnings), shown
        assert shown.startswith(start) and bool(shown) == bool(start), shown


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
        n = 3 if row["file"] == "nan_inf.gct" else 40
        assert out.stdout.startswith(f"{n} samples: 6 measured + 4 inferred genes written to {out_dir / 'p.parquet'}")
        assert read(out_dir / "p.parquet").shape == (n, 10)
        return
    assert out.returncode == 1, (out.stdout, out.stderr)
    assert len(out.stderr.strip().splitlines()) == 1, out.stderr
    assert list(out_dir.iterdir()) == []
