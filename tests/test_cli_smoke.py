"""Each ``dgex`` command once as a user's shell runs it: the installed console script (or
``python -m dgex_core.cli`` where the package is not installed) in a separate process, its
exit status and output. Everything else about the commands is tested in-process through
``main`` (tests/test_cli.py and the others)."""

from __future__ import annotations

import os
import subprocess
import sys

import pandas as pd
import pytest

from dgex_core import __version__
from dgex_core.io import read, write

from .helpers import DGEX_SCRIPT, cli, linear_data

#: the console script pip install -e . puts beside this Python
DGEX = [str(DGEX_SCRIPT)] if DGEX_SCRIPT.exists() else [sys.executable, "-m", "dgex_core.cli"]


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    """A 120-sample GCT (L0-L7 -> T0-T5), its landmark list, a landmark-only plate, and
    two linear runs trained on it in-process (``a``: OLS, ``b``: ridge)."""
    root = tmp_path_factory.mktemp("smoke")
    ds = linear_data(n=120, p=8, t=6, seed=7)
    data = write(ds.to_matrix(), root / "train.gct")
    lm = root / "landmarks.txt"
    lm.write_text("\n".join(ds.landmark_ids) + "\n")
    plate = write(ds.to_matrix().subset(genes=list(ds.landmark_ids)).subset(samples=list(ds.sample_ids[:10])),
                  root / "plate.gct")
    env = {"DGEX_RUNS_DIR": str(root / "runs"), "DGEX_DATA_DIR": str(root / "data")}
    cli("train", "--data", data, "--landmarks", lm, "--name", "a", env=env)
    (root / "ridge.json").write_text('{"linear": {"alphas": [1.0, 10.0]}}')
    cli("train", "--data", data, "--landmarks", lm, "--name", "b", "--config", root / "ridge.json", env=env)
    return root, data, lm, plate, env


def _run(cmd, env=None):
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env={**os.environ, **(env or {})})
    assert "Traceback" not in out.stderr, out.stderr
    return out


def dgex(*args, env=None):
    """``dgex ARGS`` through the console script, in its own process."""
    return _run([*DGEX, *map(str, args)], env)


def test_python_m_dgex_core_cli_runs_main():
    out = _run([sys.executable, "-m", "dgex_core.cli", "--version"])
    assert (out.returncode, out.stdout, out.stderr) == (0, f"dgex {__version__}\n", "")


def test_demo(tmp_path):
    out = dgex("demo", "--samples", 300, "--targets", 20, env={"DGEX_DATA_DIR": str(tmp_path)})
    assert out.returncode == 0, out.stderr
    assert "300 samples" in out.stdout and "noise floor" in out.stdout
    assert len(list((tmp_path / "demo").iterdir())) == 1  # cached where $DGEX_DATA_DIR says


def test_inspect(project):
    _, data, lm, _, env = project
    out = dgex("inspect", data, "--landmarks", lm, env=env)
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines()[0] == f"{data}: gct, 120 samples x 14 genes (float32)"
    assert "8 of 8 landmarks present" in out.stdout


def test_train(project, tmp_path):
    _, data, lm, _, _ = project
    out = dgex("train", "--data", data, "--landmarks", lm, "--name", "smoke", env={"DGEX_RUNS_DIR": str(tmp_path)})
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith(f"run smoke (linear) saved to {tmp_path / 'smoke'}: 96 train, 12 validation, "
                                 "12 test samples; 8 landmarks -> 6 targets; fit ")
    assert "8 of 8 landmarks present" in out.stderr
    assert (tmp_path / "smoke" / "config.json").is_file()


def test_evaluate(project):
    root, data, _, _, env = project
    out = dgex("evaluate", "a", "--data", data, "--per-gene", root / "eval.csv", env=env)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("train.gct: mean per-gene MAE ")
    assert pd.read_csv(root / "eval.csv", index_col=0).index.tolist() == [f"T{j}" for j in range(6)]


def test_predict(project, tmp_path):
    _, _, _, plate, env = project
    out = dgex("predict", "a", plate, "-o", tmp_path / "p.gctx", env=env)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith(f"10 samples: 8 measured + 6 inferred genes written to {tmp_path / 'p.gctx'}")
    assert read(tmp_path / "p.gctx").shape == (10, 14)
    # a failure: one line on standard error, status 1, nothing on standard output
    out = dgex("predict", "nosuchrun", plate, "-o", tmp_path / "o.gctx", env=env)
    assert out.returncode == 1 and out.stdout == ""
    assert out.stderr.startswith("dgex predict: error: ") and "no such run folder" in out.stderr
    assert len(out.stderr.splitlines()) == 1


def test_runs(project):
    *_, env = project
    out = dgex("runs", env=env)
    assert out.returncode == 0, out.stderr
    table = out.stdout.splitlines()
    assert table[0].split()[:2] == ["name", "family"]
    assert [line.split()[:2] for line in table[1:]] == [["a", "linear"], ["b", "linear"]]


def test_compare(project):
    *_, env = project
    out = dgex("compare", "a", "b", env=env)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("b vs a on 6 common genes [mae_z]: mean ")


def test_explain(project, tmp_path):
    _, data, _, _, env = project
    out = dgex("explain", "a", "--target", "T0", "--data", data, "-o", tmp_path / "x.csv", env=env)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("T0 in run a (linear, gradient, standardized units, 120 samples): top landmarks ")
    assert sorted(pd.read_csv(tmp_path / "x.csv", index_col=0).index) == [f"L{i}" for i in range(8)]


def test_fetch():
    out = dgex("fetch", "--list")
    assert out.returncode == 0, out.stderr
    assert "lincs-gene-info" in out.stdout and out.stdout.splitlines()[-1].startswith("geo:GSEnnnnn")

