"""Outputs never replace what they should not: devices, FIFOs, folders and the input
itself are refused; a symbolic link is written through; outputs and runs get the
user's umask; a taken run name is refused before the fit; FIFOs as inputs end at once."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from dgex_core._atomic import atomic_path, sweep_stale
from dgex_core.errors import OutputError
from dgex_core.io import write
from dgex_core.matrix import ExpressionMatrix
from dgex_core.models.linear import LinearModel
from dgex_core.store import save_run
from dgex_core.training import train_run

from .helpers import linear_data as _data
from .helpers import run_cli


def _dgex(*args, env, umask=None):
    return run_cli(*args, env=env, umask=umask)


@pytest.fixture
def setup(tmp_path):
    ds = _data(n=200, p=12, t=10, seed=5)
    save_run(train_run(ds, LinearModel(), "lin"), tmp_path / "runs")
    plate = tmp_path / "plate.gct"
    write(ExpressionMatrix(np.asarray(ds.landmarks[:20]), ds.sample_ids[:20], ds.landmark_ids), plate)
    env = {"DGEX_RUNS_DIR": str(tmp_path / "runs"), "DGEX_DATA_DIR": str(tmp_path / "data")}
    return tmp_path, plate, env


@pytest.mark.parametrize("special", ["/dev/null", "fifo", "folder"])
def test_a_special_file_as_output_is_refused_and_left_as_it_is(setup, special):
    tmp, plate, env = setup
    if special == "fifo":
        target = tmp / "out.fifo"
        os.mkfifo(target)
    elif special == "folder":
        target = tmp / "out.gctx"
        target.mkdir()
    else:
        target = Path(special)
    before = os.stat(target).st_mode
    out = _dgex("predict", "lin", plate, "-o", target, "--format", "csv", env=env)
    assert out.returncode == 1 and "Traceback" not in out.stderr
    assert "outputs are written to regular files only" in out.stderr and str(target) in out.stderr, out.stderr
    assert os.stat(target).st_mode == before  # still the device / FIFO / folder


def test_the_input_as_output_is_refused_and_the_input_kept(setup):
    tmp, plate, env = setup
    data = plate.read_bytes()
    link = tmp / "same.gct"
    link.symlink_to(plate)
    for name in (plate, link):
        out = _dgex("predict", "lin", plate, "-o", name, env=env)
        assert out.returncode == 1 and "is the input file" in out.stderr, out.stderr
    assert plate.read_bytes() == data


def test_a_symlink_as_output_writes_the_file_it_points_to(setup):
    tmp, plate, env = setup
    real = tmp / "real.csv"
    real.write_text("old\n")
    link = tmp / "link.csv"
    link.symlink_to(real)
    out = _dgex("predict", "lin", plate, "-o", link, env=env)
    assert out.returncode == 0, out.stderr
    assert link.is_symlink() and os.readlink(link) == str(real)
    assert real.read_text().splitlines()[0].startswith('"sample"')  # the predictions, through the link


def test_outputs_and_runs_take_the_users_umask(setup):
    tmp, plate, env = setup
    out = _dgex("predict", "lin", plate, "-o", tmp / "p.parquet", env=env, umask=0o022)
    assert out.returncode == 0, out.stderr
    assert stat.S_IMODE(os.stat(tmp / "p.parquet").st_mode) == 0o644
    out = _dgex("train", "--data", "demo:300x20", "--model", "linear", "--name", "u", env=env, umask=0o027)
    assert out.returncode == 0, out.stderr
    run = tmp / "runs" / "u"
    assert stat.S_IMODE(os.stat(run).st_mode) == 0o750
    assert stat.S_IMODE(os.stat(run / "config.json").st_mode) == 0o640


def test_a_taken_run_name_is_refused_before_the_fit(setup):
    _, _, env = setup
    out = _dgex("train", "--data", "demo:3000x300", "--model", "mlp", "--name", "lin", env=env)
    assert out.returncode == 1 and "already exists" in out.stderr, out.stderr
    assert "landmarks present" not in out.stderr  # refused before the data were even read
    out = _dgex("train", "--data", "demo:300x20", "--model", "linear", "--name", "../escape", env=env)
    assert out.returncode == 1 and "must be letters" in out.stderr


@pytest.mark.timeout(60)  # a FIFO opened for reading would wait for a writer forever
@pytest.mark.parametrize("what", ["data", "landmarks"])
def test_a_fifo_as_input_ends_at_once_with_a_reason(tmp_path, what):
    fifo = tmp_path / "in.fifo"
    os.mkfifo(fifo)
    env = {"DGEX_RUNS_DIR": str(tmp_path / "runs")}
    lm = tmp_path / "lm.txt"
    lm.write_text("L0\nL1\n")
    args = (["inspect", fifo] if what == "data" else ["inspect", lm, "--landmarks", fifo])
    if what == "landmarks":
        (tmp_path / "t.csv").write_text("gene,S0,S1\nL0,1,2\nL1,3,4\n")
        args = ["inspect", tmp_path / "t.csv", "--landmarks", fifo]
    out = _dgex(*args, env=env)
    assert out.returncode == 1 and "FIFO" in out.stderr and str(fifo) in out.stderr, out.stderr


def test_stale_temporaries_of_dead_processes_are_swept_live_ones_kept(tmp_path):
    target = tmp_path / "out.csv"
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    from dgex_core._atomic import _HOST

    dead = tmp_path / f".out.csv.{_HOST}-{proc.pid}.abc.tmp"
    dead.write_text("half")
    live = tmp_path / f".out.csv.{_HOST}-{os.getpid()}.xyz.tmp"
    live.write_text("mine")
    other = tmp_path / ".other.csv.h-1.tmp"
    other.write_text("not ours")
    assert sweep_stale(target) == [dead]
    with atomic_path(target) as tmp:
        tmp.write_text("done\n")
    assert target.read_text() == "done\n" and live.exists() and other.exists() and not dead.exists()
    with pytest.raises(OutputError, match="regular files only"), atomic_path(tmp_path):
        pass


def test_a_replaced_output_keeps_its_permissions(setup):
    tmp, plate, env = setup
    out = tmp / "private.csv"
    out.write_text("old\n")
    os.chmod(out, 0o600)
    res = _dgex("predict", "lin", plate, "-o", out, env=env, umask=0o022)
    assert res.returncode == 0, res.stderr
    assert stat.S_IMODE(os.stat(out).st_mode) == 0o600 and out.read_text() != "old\n"
