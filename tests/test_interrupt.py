"""Killing a training (SIGTERM, SIGKILL) and running the same command again resumes from the
last per-epoch checkpoint and ends with the same network as an uninterrupted run."""

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


def _cmd(name, ckpt, cfg):
    return [sys.executable, "-m", "dgex_core.cli", "train", "--data", "demo:2000x200", "--model", "mlp",
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
    cfg.write_text(json.dumps({"hidden": [384], "max_epochs": 10, "dropout": 0.2}))
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
