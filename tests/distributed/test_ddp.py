"""The D-GEX network under torch DDP: world size 2 (gloo on CPU, spawned processes on a
free loopback port) against one process on the combined batches, checkpoint resume,
and the sampler's arithmetic."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from dgex_core.distributed.sampler import (
    rank_batch_size,
    rank_range,
    shard_stream,
    split_groups,
    steps_per_epoch,
)

pytestmark = pytest.mark.xdist_group("ddp")

WORKER = Path(__file__).with_name("ddp_worker.py")
ROOT = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _env(**extra) -> dict:
    torchrun = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")
    env = {k: v for k, v in os.environ.items() if k not in torchrun}
    return {**env, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT), **extra}


def _ddp(out: Path, data: Path, settings: dict, mode: str = "ddp", world: int = 2) -> dict:
    port = str(_free_port())
    procs = [subprocess.Popen([sys.executable, str(WORKER), str(out), str(data), mode, json.dumps(settings)],
                              env=_env(RANK=str(r), LOCAL_RANK=str(r), WORLD_SIZE=str(world),
                                       MASTER_ADDR="127.0.0.1", MASTER_PORT=port),
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
             for r in range(world)]
    logs = [p.communicate(timeout=240)[0] for p in procs]
    assert all(p.returncode == 0 for p in procs), "\n".join(logs)
    return dict(np.load(out))


def _single(out: Path, data: Path, settings: dict, mode: str = "combined") -> dict:
    r = subprocess.run([sys.executable, str(WORKER), str(out), str(data), mode, json.dumps(settings)],
                       env=_env(), capture_output=True, text=True, timeout=240)
    assert r.returncode == 0, r.stdout + r.stderr
    return dict(np.load(out))


@pytest.fixture(scope="module")
def problem(tmp_path_factory) -> Path:
    """400 training and 60 validation samples, 24 landmarks -> 40 targets, partly nonlinear."""
    d = tmp_path_factory.mktemp("ddp-data")
    rng = np.random.default_rng(3)
    W = rng.normal(size=(24, 40)) / 5
    for name, n in (("", 400), ("v", 60)):
        x = rng.normal(size=(n, 24)).astype(np.float32)
        y = (x @ W + 0.3 * np.tanh(x[:, :1] * x[:, 1:2]) + 0.1 * rng.normal(size=(n, 40))).astype(np.float32)
        np.save(d / f"x{name}.npy", x)
        np.save(d / f"y{name}.npy", y)
    return d


BASE = {"hidden": [32], "dropout": 0.0, "input_dropout": 0.0, "batch_size": 50, "max_epochs": 1, "seed": 5}


def _assert_same_network(a: dict, b: dict, atol: float = 2e-5) -> None:
    assert a.keys() == b.keys()
    for k in a:
        if k != "_history":
            np.testing.assert_allclose(a[k], b[k], rtol=1e-4, atol=atol, err_msg=k)


@pytest.mark.parametrize("settings", [
    {"linear_path": "off"},
    {"linear_path": "frozen", "disk": True, "block_size": 96},
    {"linear_path": "finetune", "target_groups": 2},
], ids=["plain-in-memory", "linear-path-from-disk", "finetuned-linear-path-two-groups"])
def test_one_epoch_on_two_ranks_equals_one_process_on_the_combined_batches(problem, tmp_path, settings):
    cfg = {**BASE, **settings}
    two = _ddp(tmp_path / "ddp.npz", problem, cfg)
    one = _single(tmp_path / "one.npz", problem, cfg)
    _assert_same_network(two, one)
    # the epoch's training loss and validation MAE are those of the whole set, not one rank's share
    np.testing.assert_allclose(two["_history"], one["_history"], rtol=1e-4)
    if settings["linear_path"] != "off":
        assert "gate" in two and two["gate"].mean() > 0


def test_checkpoint_resume_on_two_ranks_equals_an_uninterrupted_run(problem, tmp_path):
    cfg = {**BASE, "max_epochs": 3, "dropout": 0.1, "input_dropout": 0.2, "linear_path": "frozen"}
    whole = _ddp(tmp_path / "whole.npz", problem, cfg)
    ckpt = tmp_path / "ckpt"
    stopped = _ddp(tmp_path / "stopped.npz", problem, {**cfg, "checkpoint_dir": str(ckpt)}, mode="ddp-stop:2")
    assert stopped["_history"].shape[0] == 2 and (ckpt / "checkpoint-group0.safetensors").exists()
    resumed = _ddp(tmp_path / "resumed.npz", problem, {**cfg, "checkpoint_dir": str(ckpt)})
    assert resumed["_history"].shape[0] == 3
    _assert_same_network(resumed, whole, atol=1e-6)
    np.testing.assert_allclose(resumed["_history"], whole["_history"], rtol=1e-6)


def test_a_checkpoint_resumes_only_with_its_number_of_ranks_and_its_samples(problem, tmp_path):
    cfg = {**BASE, "max_epochs": 3, "checkpoint_dir": str(tmp_path / "ckpt")}
    _ddp(tmp_path / "two.npz", problem, cfg, mode="ddp-stop:1")
    r = subprocess.run([sys.executable, str(WORKER), str(tmp_path / "one.npz"), str(problem), "one", json.dumps(cfg)],
                       env=_env(), capture_output=True, text=True, timeout=240)
    assert r.returncode != 0 and "written by a job of 2 process(es), this one has 1" in r.stderr
    other = tmp_path / "other"  # the same shapes, other samples
    other.mkdir()
    for name in ("x", "y", "xv", "yv"):
        np.save(other / f"{name}.npy", np.load(problem / f"{name}.npy")[::-1] * 1.5)
    r = subprocess.run([sys.executable, str(WORKER), str(tmp_path / "o.npz"), str(other), "one",
                        json.dumps({**cfg, "checkpoint_dir": str(tmp_path / "ckpt1")})],
                       env=_env(), capture_output=True, text=True, timeout=240)
    assert r.returncode == 0, r.stderr
    r = subprocess.run([sys.executable, str(WORKER), str(tmp_path / "p.npz"), str(problem), "one",
                        json.dumps({**cfg, "checkpoint_dir": str(tmp_path / "ckpt1")})],
                       env=_env(), capture_output=True, text=True, timeout=240)
    assert r.returncode != 0 and "trained on other samples" in r.stderr


def test_early_stopping_is_decided_once_for_all_ranks(problem, tmp_path):
    """Rank 0's callback stops the job after epoch 1 of 4: rank 1 stops there too (else it hangs)."""
    got = _ddp(tmp_path / "early.npz", problem, {**BASE, "max_epochs": 4}, mode="ddp-stop:1")
    assert got["_history"].shape[0] == 1


# ------------------------------------------------------------------ the sampler
@pytest.mark.parametrize("n,world", [(10, 2), (11, 2), (7, 3), (1000, 4), (3, 4)])
def test_each_rank_gets_an_equal_share_and_every_sample_is_read(n, world):
    order = np.random.default_rng(0).permutation(n)
    shares = [shard_stream(order, None, world, r) for r in range(world)]
    assert len({s.size for s in shares}) == 1 and shares[0].size == -(-n // world)
    together = np.concatenate(shares)
    assert set(together.tolist()) == set(range(n))
    assert together.size - n < world  # padding: fewer than one sample per rank


def test_shard_stream_keeps_disk_chunks_together():
    bounds = np.array([0, 4, 8, 12, 15])  # chunks of 4, 4, 4, 3 samples
    order = np.array([2, 0, 3, 1])
    s0, s1 = (shard_stream(order, bounds, 2, r) for r in range(2))
    assert s0.tolist() == [8, 9, 10, 11, 0, 1, 2, 3]
    assert s1.tolist() == [12, 13, 14, 4, 5, 6, 7, 8]  # wrapped to the start: 15 samples, 8 per rank
    groups = split_groups(s1, 3)
    assert [g.tolist() for g in groups] == [[12, 13, 14], [4, 5, 6], [7, 8]]


def test_steps_and_batch_sizes_match_the_single_process_recipe():
    assert steps_per_epoch(400, 50, 1) == steps_per_epoch(400, 50, 2) == 8
    assert rank_batch_size(50, 2) == 25 and rank_batch_size(5, 4) == 2
    assert steps_per_epoch(11, 4, 1) == 3
    assert steps_per_epoch(1, 200, 8) == 1


def test_rank_range_splits_validation_rows_without_overlap():
    for n, world in ((10, 3), (2, 4), (0, 2), (100, 1)):
        rows = [rank_range(n, world, r) for r in range(world)]
        got = np.concatenate([np.arange(n)[r] for r in rows])
        assert got.tolist() == list(range(n))
