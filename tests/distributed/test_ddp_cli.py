"""``dgex train --model mlp --nproc 2``: a run like any other, a rank killed mid-epoch
stops the job with a message naming it, and the rerun resumes from the checkpoint."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

pytestmark = [pytest.mark.xdist_group("ddp"), pytest.mark.skipif(not Path("/proc").is_dir(), reason="needs /proc")]

ROOT = Path(__file__).resolve().parents[2]
SETTINGS = {"hidden": [256], "max_epochs": 30, "device": "cpu"}
DATA = "demo:3000x500"


def _dgex(*args: str, cwd: Path) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR")}
    return subprocess.Popen([sys.executable, "-m", "dgex_core.cli", *args], cwd=cwd, text=True,
                            env={**env, "PYTHONPATH": str(ROOT)}, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def _train(tmp: Path, runs: str) -> subprocess.Popen:
    (tmp / "mlp.json").write_text(json.dumps(SETTINGS))
    return _dgex("train", "--data", DATA, "--model", "mlp", "--config", "mlp.json", "--nproc", "2",
                 "--runs-dir", runs, "--name", "ddp", cwd=tmp)


def _rank_pid(parent: int, rank: int) -> int | None:
    """The pid of the child of ``parent`` that torchrun started as ``rank``."""
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            ppid = int((proc / "stat").read_text().rsplit(")", 1)[1].split()[1])
            env = (proc / "environ").read_bytes().split(b"\0")
        except (OSError, IndexError, ValueError):
            continue
        if ppid == parent and f"RANK={rank}".encode() in env:
            return int(proc.name)
    return None


def _weights(run: Path) -> dict:
    from dgex_core.store import load_run

    net = load_run(run).model.networks_[0]
    return {k: v.numpy() for k, v in net.state_dict().items()}


def _checkpoint_history(path: Path) -> list:
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:
        return json.loads(f.metadata()["state"])["history"]


def test_killed_rank_is_named_and_the_rerun_resumes_to_the_uninterrupted_network(tmp_path):
    whole = _train(tmp_path, "whole")
    out, err = whole.communicate(timeout=300)
    assert whole.returncode == 0, err
    assert "run ddp (mlp) saved" in out and out.count("saved to") == 1  # rank 0 alone reports
    assert not (tmp_path / "whole" / ".checkpoints").exists()  # its checkpoints went with the saved run

    job = _train(tmp_path, "cut")
    ckpt = tmp_path / "cut" / ".checkpoints" / "ddp" / "checkpoint-group0.safetensors"
    deadline = time.monotonic() + 240
    while not ckpt.exists() and job.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    victim = _rank_pid(job.pid, 1)
    assert victim is not None and job.poll() is None, "the job ended before a checkpoint was written"
    os.kill(victim, signal.SIGKILL)
    _, err = job.communicate(timeout=120)
    assert job.returncode == 1
    assert "rank 1 of 2" in err and "SIGKILL" in err and "rerun the same command to resume" in err, err
    assert "Traceback" not in err
    assert not (tmp_path / "cut" / "ddp").exists()  # no run saved from a broken job
    before = _checkpoint_history(ckpt)
    assert 1 <= len(before) < SETTINGS["max_epochs"]

    rerun = _train(tmp_path, "cut")
    _, err = rerun.communicate(timeout=300)
    assert rerun.returncode == 0, err
    from dgex_core.store import load_run

    history = load_run(tmp_path / "cut" / "ddp").model.history_
    assert len(history) == SETTINGS["max_epochs"]
    # the epochs before the kill come from the checkpoint (their timings are the first attempt's)
    assert [h["seconds"] for h in history[:len(before)]] == [h["seconds"] for h in before]
    a, b = _weights(tmp_path / "cut" / "ddp"), _weights(tmp_path / "whole" / "ddp")
    for k in a:
        np.testing.assert_allclose(a[k], b[k], rtol=1e-5, atol=1e-6, err_msg=k)


def test_nproc_is_for_the_network(tmp_path):
    p = _dgex("train", "--data", "demo:300x50", "--model", "linear", "--nproc", "2", "--runs-dir", "r", cwd=tmp_path)
    _, err = p.communicate(timeout=60)
    assert p.returncode == 1 and "--nproc trains the network" in err and "--dask" in err


def test_only_training_runs_under_torchrun(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT), "RANK": "0", "WORLD_SIZE": "2", "MASTER_ADDR": "127.0.0.1"}
    r = subprocess.run([sys.executable, "-m", "dgex_core.cli", "runs", "--runs-dir", "r"], cwd=tmp_path, env=env,
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 1 and "torchrun starts ranks of a training" in r.stderr
