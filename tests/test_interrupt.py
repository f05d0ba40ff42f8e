"""Killing a training (SIGTERM, SIGKILL) and running the same command again resumes from the
last per-epoch checkpoint and ends with the same network as an uninterrupted run. These
commands run as separate processes: a signal must reach the command, not pytest, and the
trainings compared start alike (a fresh process's thread pools and random state)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from dgex_core.store import load_run

from .helpers import cli


def _cmd(name, ckpt, cfg):
    return [sys.executable, "-m", "dgex_core.cli", "train", "--data", "demo:3000x500", "--model", "mlp",
            "--config", str(cfg), "--checkpoint-dir", str(ckpt), "--name", name]


def _checkpoint_epoch(ckpt) -> int:
    from safetensors import safe_open

    path = ckpt / "checkpoint-group0.safetensors"
    if not path.exists():
        return 0
    try:
        with safe_open(str(path), framework="pt") as f:
            return json.loads(f.metadata()["state"])["epoch"]
    except Exception:  # being replaced at this instant
        return 0


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM])
def test_killed_training_resumes_to_the_same_result(tmp_path, sig):
    env = {**os.environ, "DGEX_DATA_DIR": str(tmp_path / "data"), "DGEX_RUNS_DIR": str(tmp_path / "runs")}
    cfg = tmp_path / "mlp.json"
    cfg.write_text(json.dumps({"hidden": [1024], "max_epochs": 10, "dropout": 0.2}))
    subprocess.run(_cmd("whole", tmp_path / "ck-whole", cfg), env=env, check=True, capture_output=True, timeout=600)

    ck = tmp_path / "ck-killed"
    proc = subprocess.Popen(_cmd("killed", ck, cfg), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while _checkpoint_epoch(ck) < 3 and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    proc.send_signal(sig)
    proc.wait(timeout=60)
    at_kill = _checkpoint_epoch(ck)
    assert 3 <= at_kill < 10, f"the kill came at epoch {at_kill}: make the training slower"
    assert not (tmp_path / "runs" / "killed").exists()  # no half-written run

    out = subprocess.run(_cmd("killed", ck, cfg), env=env, check=True, capture_output=True, text=True, timeout=600)
    assert "run killed (mlp) saved" in out.stdout
    whole, resumed = load_run(tmp_path / "runs" / "whole"), load_run(tmp_path / "runs" / "killed")
    assert [h["epoch"] for h in resumed.model.history_] == list(range(1, 11))
    for a, b in zip(whole.model.networks_[0].state_dict().values(), resumed.model.networks_[0].state_dict().values(),
                    strict=True):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-5, atol=1e-6)
    assert resumed.metrics["test"]["mean_mae"] == pytest.approx(whole.metrics["test"]["mean_mae"], rel=1e-5)


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM, signal.SIGINT])
def test_killed_predict_leaves_no_output_that_looks_complete(tmp_path, sig):
    """SIGKILL leaves a hidden temporary at most, which the next write of that output
    removes (its process is gone); SIGTERM and Ctrl-C leave nothing at all."""
    from dgex_core.io.gctx_write import GCTXWriter
    from dgex_core.matrix import ExpressionMatrix
    from dgex_core.models.linear import LinearModel
    from dgex_core.store import save_run
    from dgex_core.training import train_run

    from .helpers import linear_data as _data

    ds = _data(n=300, p=20, t=30, seed=41)
    save_run(train_run(ds, LinearModel(), "lin"), tmp_path / "runs")
    rng = np.random.default_rng(0)
    with GCTXWriter(tmp_path / "big.gctx", ds.landmark_ids) as w:
        for b in range(40):
            ids = [f"P{b}_{i}" for i in range(5000)]
            w.append(ExpressionMatrix(rng.normal(8, 2, (5000, 20)).astype(np.float32), ids, ds.landmark_ids))
    out = tmp_path / "pred.gctx"
    env = {**os.environ, "DGEX_RUNS_DIR": str(tmp_path / "runs")}
    proc = subprocess.Popen([sys.executable, "-m", "dgex_core.cli", "predict", "lin", str(tmp_path / "big.gctx"),
                             "-o", str(out), "--block-size", "200"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 60
    while not list(tmp_path.glob(".pred.gctx*")) and time.time() < deadline and proc.poll() is None:
        time.sleep(0.02)
    time.sleep(0.5)
    assert proc.poll() is None, "prediction finished before it could be killed"
    proc.send_signal(sig)
    rc = proc.wait(timeout=60)
    assert not out.exists()  # only a hidden temporary file may remain, never pred.gctx
    left = [p for p in tmp_path.iterdir() if "pred" in p.name]
    assert all(p.name.startswith(".pred.gctx") for p in left)
    if sig == signal.SIGKILL:
        assert left, "SIGKILL cannot clean up: the test expects a leftover to sweep"
        small = tmp_path / "small.gctx"
        with GCTXWriter(small, ds.landmark_ids) as w:
            w.append(ExpressionMatrix(rng.normal(8, 2, (10, 20)).astype(np.float32),
                                      [f"Q{i}" for i in range(10)], ds.landmark_ids))
        cli("predict", "lin", small, "-o", out, env={"DGEX_RUNS_DIR": str(tmp_path / "runs")})
        assert out.exists()
        assert [p.name for p in tmp_path.iterdir() if "pred" in p.name] == ["pred.gctx"]  # the dead one's swept
    else:
        assert rc == (143 if sig == signal.SIGTERM else 130)
        assert not left  # removed on the way out
