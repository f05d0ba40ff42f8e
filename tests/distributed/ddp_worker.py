"""One process of the DDP tests: fits the D-GEX network on a small fixed problem.

``python ddp_worker.py OUT DATA MODE SETTINGS_JSON``, with the process group described
by the environment (``RANK``, ``WORLD_SIZE``, ``MASTER_ADDR``, ``MASTER_PORT``) as
torchrun sets it. MODE:

- ``ddp``: join the group and fit; rank 0 writes the fitted weights to OUT (.npz);
- ``ddp-stop:E``: the same, rank 0's progress callback asking to stop after epoch E;
- ``one``: one process, as without DDP;
- ``combined``: one process, each step fed the union of what ranks 0 and 1 of a
  two-rank job read at that step (the single-process run on the combined batches).

DATA is a folder with ``x.npy``, ``y.npy``, ``xv.npy``, ``yv.npy``; with ``disk`` in
SETTINGS the training arrays are memory-mapped (the shuffled loader's from-disk path).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import torch

from dgex_core.distributed import ddp
from dgex_core.models.mlp import MLPModel
from dgex_core.models.sources import ArraySource


def main(out: str, data: str, mode: str, settings: str) -> None:
    torch.set_num_threads(1)
    kw = json.loads(settings)
    disk = kw.pop("disk", False)
    d = Path(data)
    X, Y = (np.load(d / f"{n}.npy", mmap_mode="r" if disk else None) for n in ("x", "y"))
    Xv, Yv = np.load(d / "xv.npy"), np.load(d / "yv.npy")
    model = MLPModel(device="cpu", **kw)
    ids = ([f"l{i}" for i in range(X.shape[1])], [f"t{i}" for i in range(Y.shape[1])])
    source = ArraySource(X, Y, block_size=kw.get("block_size", 16384))
    if mode == "combined":
        def combined(self, source, cache, targets, seed, dev):
            shards = [self._shard_batches(source, cache, targets, seed, dev, r, 2) for r in range(2)]
            for parts in zip(*shards, strict=True):
                yield torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts])

        MLPModel._batches = combined
        model.fit_source(source, *ids, (Xv, Yv))
        _write(out, model)
        return
    if mode == "one":  # one process, no group
        model.fit_source(source, *ids, (Xv, Yv))
        _write(out, model)
        return
    stop_at = int(mode.split(":")[1]) if mode.startswith("ddp-stop:") else None
    with ddp.process_group_from_env():
        model.fit_source(source, *ids, (Xv, Yv),
                         progress=lambda step, total, info: stop_at is not None and info.get("epoch") == stop_at)
        if ddp.is_main():
            _write(out, model)


def _write(out: str, model: MLPModel) -> None:
    arrays = {k: v.detach().numpy() for k, v in model.networks_[0].state_dict().items()}
    arrays["_history"] = np.array([[h["epoch"], h["train_loss"], h["val_mae"]] for h in model.history_])
    np.savez(out, **arrays)


if __name__ == "__main__":
    main(*sys.argv[1:5])
