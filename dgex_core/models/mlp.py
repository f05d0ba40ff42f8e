"""D-GEX: a fully connected network from landmarks to all targets (Chen et al., 2016).

The paper's networks had 1-3 hidden layers of 3,000-9,000 tanh units with dropout,
a linear output layer over all targets, trained with momentum SGD on mini-batches
and early stopping on the validation error; targets were split in
two halves trained as separate networks to fit GPU memory. This module follows that
recipe with every knob exposed, and goes beyond it where measured
(``bench/bench_accuracy.py``): the output is the closed-form ridge prediction plus the
network's residual (a *linear path*, gated per target on validation, so no target does
worse than ridge regression there), with adaptive activations (TAAF). Defaults: one
hidden layer of 1,000 adaptive ReLU units, 35% of landmarks and 10% of hidden units
dropped in training, MSE loss, Adam with a one-cycle learning-rate schedule (peak 6e-3)
over 30 epochs, batches of 200, keeping the epoch with the best validation MAE. A 978 ->
1,000 -> 4,000 network trains an epoch of 8,000 samples in about 1.3 seconds on two cores.

Training reads standardized sample blocks from a :class:`~.sources.StandardizedSource`,
so a compendium larger than memory trains from a memory map or HDF5 file (blocks are
visited in a shuffled order and shuffled within; in-memory data form one block, i.e.
a full shuffle). It is seeded and deterministic on CPU: each epoch's shuffling and
dropout draw from generators seeded by ``(seed, group, epoch)``, so a training
resumed from its per-epoch checkpoint ends with the same weights as one never
interrupted. On CUDA it uses bfloat16 autocast (mixed precision) when ``amp``.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import math
import os
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch import nn

from .._atomic import atomic_path
from ..distributed import ddp
from ..distributed.sampler import (
    rank_batch_size,
    rank_range,
    shard_stream,
    split_groups,
    steps_per_epoch,
)
from ..errors import ModelError
from ..lazy import block_rows
from .base import Model, Progress
from .layers import ACTIVATIONS, ResidualNet, build_network, linear_layer
from .persist import register

__all__ = ["GATE_GRID", "LINEAR_PATHS", "MLPModel", "build_network", "pick_device"]

#: Widest hidden layer accepted (D-GEX's widest: 9,000 units).
MAX_WIDTH = 20_000

#: Residual gates tried per target on validation: 0 (the ridge answer exactly) to 1.5 in
#: steps of 0.1; a gate above 1 undoes the shrinkage dropout leaves in the residual where
#: the validation samples say so.
GATE_GRID = tuple(round(0.1 * i, 1) for i in range(16))

LINEAR_PATHS = ("off", "frozen", "finetune")

_F32 = torch.float32  # the network computes in float32 whatever the data's dtype


def pick_device(device: str = "auto") -> torch.device:
    """``"auto"``: CUDA when available, else CPU; or any torch device string."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


class _GroupTargets:
    """What one group's network learns from a block of standardized targets: the group's
    columns, minus the frozen ridge prediction ``x @ coef + intercept`` when given."""

    def __init__(self, cols, coef: np.ndarray | None = None, intercept: np.ndarray | None = None) -> None:
        self.cols = cols
        self.coef = None if coef is None else np.ascontiguousarray(coef, np.float32)
        self.intercept = None if intercept is None else np.asarray(intercept, np.float32)

    def __call__(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        if not isinstance(self.cols, slice) and len(self.cols) < y.shape[1]:
            y = y[:, self.cols]
        if self.coef is not None:
            y = y - (x.astype(np.float32, copy=False) @ self.coef + self.intercept).astype(y.dtype, copy=False)
        return np.ascontiguousarray(y)

    def validation(self, xv: np.ndarray, Yv):
        """The validation targets: in memory at once, or rows read on demand when on disk."""
        if isinstance(Yv, np.ndarray):
            return self(xv, np.asarray(Yv)).astype(np.float32, copy=False)
        return _ValidationRows(self, xv, Yv)


class _ValidationRows:
    """Validation targets that stay on disk, read (and offset) by row slices."""

    def __init__(self, targets: _GroupTargets, xv: np.ndarray, values) -> None:
        self.targets, self.xv, self.values = targets, xv, values
        n_cols = values.shape[1] if isinstance(targets.cols, slice) else len(targets.cols)
        self.shape = (values.shape[0], n_cols)

    def __getitem__(self, rows: slice) -> np.ndarray:
        return self.targets(self.xv[rows], np.asarray(self.values[rows]))


def _data_key(model) -> str:
    """A digest of what the network is trained on (the training samples' count and the
    per-gene means and sds of their landmarks and targets): a checkpoint of other samples
    (another split, other data) is refused, not resumed."""
    import hashlib

    h = hashlib.sha1(str(model.n_train_).encode())
    for step in getattr(model.input_pipeline_, "steps", []):
        for name in ("mean_", "scale_"):
            if hasattr(step, name):
                h.update(np.ascontiguousarray(getattr(step, name), np.float64).tobytes())
    for name in ("mean_", "scale_"):
        h.update(np.ascontiguousarray(getattr(model.target_scaler_, name), np.float64).tobytes())
    return h.hexdigest()[:16]


def _epoch_seed(seed: int, group: int, epoch: int, rank: int | None = None) -> int:
    """A seed for one epoch of one target group (epoch 0: initialization); with ``rank``,
    that rank's own seed (its dropout masks) in a DDP job."""
    key = [seed, group, epoch] if rank is None else [seed, group, epoch, rank]
    return int(np.random.SeedSequence(key).generate_state(1)[0])


@register
class MLPModel(Model):
    """The D-GEX network.

    Parameters
    ----------
    hidden
        Widths of the hidden layers (1-3 in the paper, 3,000-9,000 units; default one
        layer of 1,000, which reaches within 6% of the demo's noise floor on a CPU).
    activation
        ``relu`` (default; the best measured on the demo), ``tanh`` (the paper's),
        ``sigmoid`` (TAAF's), ``gelu`` or ``elu``.
    dropout
        Dropout rate after each hidden layer (the paper: 0, 10% or 25%; default 10%).
    loss
        ``"mse"`` (default, as the paper) or ``"mae"`` (L1).
    optimizer
        ``"adam"`` or ``"sgd"`` (with momentum ``momentum``).
    lr
        Learning rate: the peak of the one-cycle schedule, or the constant rate.
    schedule
        ``"onecycle"`` (warm up over the first 15% of ``max_epochs``, then cosine decay;
        default) or ``"constant"``.
    momentum, weight_decay
        Optimizer settings.
    batch_size
        Samples per mini-batch.
    max_epochs, patience
        Stop after ``max_epochs``, or when the validation MAE has not improved for
        ``patience`` epochs; the weights of the epoch with the best validation MAE are
        kept (early stopping).
    max_seconds
        Optional wall-clock budget for the whole training (stops after the epoch that
        crosses it, keeping the best epoch).
    target_groups
        Split the targets into this many groups, each trained as a separate network
        (the paper trained two halves), to bound memory.
    seed
        Seeds initialization, shuffling and dropout.
    device
        ``"auto"`` (CUDA when present), ``"cpu"``, ``"cuda"``, ``"cuda:1"``...
    amp
        bfloat16 mixed precision on CUDA (ignored on CPU).
    block_size
        Samples per block read from the training source.
    checkpoint_dir
        If set, a checkpoint is written there after every epoch and an interrupted
        training resumes from it.
    input_transform
        Landmark preprocessing before standardization.
    linear_path
        ``"frozen"`` (default): the output is the closed-form ridge prediction (fitted
        first on the same training samples, alpha chosen on validation MAE) plus the
        network's residual, which starts at zero; each target's residual is then
        scaled by a gate from :data:`GATE_GRID` (0 to 1.5) chosen on validation, so a
        target the network cannot improve keeps the ridge answer. ``"finetune"``: the same, the
        ridge weights trained jointly with the body. ``"off"``: the plain D-GEX network.
    adaptive
        Adaptive activations (TAAF, Kunc & Kléma 2021): a learnable per-unit scale and
        shift inside and outside each activation.
    input_dropout
        Share of landmarks dropped at random in each training batch (0: none).

    Attributes
    ----------
    networks_ : list of torch.nn.Sequential
        One per target group, on the CPU after fitting.
    history_ : list of dict
        Per epoch: group, epoch, train loss, validation MAE (standardized), seconds.
    best_epochs_ : list of int
        The epoch kept for each group.
    linear_alpha_ : float
        The ridge strength of the linear path (standardized units; absent when off).
    """

    family = "mlp"

    def __init__(
        self,
        hidden: Sequence[int] = (1000,),
        activation: str = "relu",
        dropout: float = 0.1,
        loss: str = "mse",
        optimizer: str = "adam",
        lr: float = 6e-3,
        schedule: str = "onecycle",
        momentum: float = 0.9,
        weight_decay: float = 0.0,
        batch_size: int = 200,
        max_epochs: int = 30,
        patience: int = 30,
        max_seconds: float | None = None,
        target_groups: int = 1,
        seed: int = 0,
        device: str = "auto",
        amp: bool = True,
        block_size: int = 16384,
        checkpoint_dir: str | None = None,
        input_transform: str = "none",
        linear_path: str = "frozen",
        adaptive: bool = True,
        input_dropout: float = 0.35,
    ) -> None:
        super().__init__(input_transform)
        self.hidden = hidden
        self.activation = activation
        self.dropout = dropout
        self.loss = loss
        self.optimizer = optimizer
        self.lr = lr
        self.schedule = schedule
        self.momentum = momentum
        self.weight_decay = weight_decay
        self.batch_size = batch_size
        self.max_epochs = max_epochs
        self.patience = patience
        self.max_seconds = max_seconds
        self.target_groups = target_groups
        self.seed = seed
        self.device = device
        self.amp = amp
        self.block_size = block_size
        self.checkpoint_dir = checkpoint_dir
        self.linear_path = linear_path
        self.adaptive = adaptive
        self.input_dropout = input_dropout

    def check_params(self) -> None:
        super().check_params()
        if self.linear_path not in LINEAR_PATHS:
            raise ModelError(f"linear_path must be one of {LINEAR_PATHS}, got {self.linear_path!r}")
        hidden = list(self.hidden) if isinstance(self.hidden, (list, tuple, np.ndarray)) else None
        if hidden is None or not 1 <= len(hidden) <= 3:
            raise ModelError(f"hidden must list 1 to 3 layer widths, got {self.hidden!r}")
        for name, value, options in (("loss", self.loss, ("mae", "mse")), ("optimizer", self.optimizer, ("adam", "sgd")),
                                     ("schedule", self.schedule, ("onecycle", "constant")),
                                     ("activation", self.activation, tuple(sorted(ACTIVATIONS)))):
            if value not in options:
                raise ModelError(f"{name} must be one of {options}, got {value!r}")
        for name, value, low, high in (("hidden width", min(hidden), 1, MAX_WIDTH),
                                       ("hidden width", max(hidden), 1, MAX_WIDTH),
                                       ("batch_size", self.batch_size, 1, None), ("max_epochs", self.max_epochs, 1, None),
                                       ("patience", self.patience, 1, None),
                                       ("target_groups", self.target_groups, 1, None),
                                       ("block_size", self.block_size, 1, None)):
            if not isinstance(value, (int, np.integer)) or value < low or (high is not None and value > high):
                raise ModelError(f"{name} must be a whole number from {low}" + (f" to {high:,}" if high else " up")
                                 + f", got {value!r}")
        for name, value in (("dropout", self.dropout), ("input_dropout", self.input_dropout)):
            if not isinstance(value, (int, float, np.floating)) or not 0.0 <= float(value) < 1.0:
                raise ModelError(f"{name} must be in [0, 1), got {value!r}")
        if not isinstance(self.lr, (int, float, np.floating)) or not float(self.lr) > 0.0:
            raise ModelError(f"lr must be above 0, got {self.lr!r}")

    def _needs_validation(self) -> bool:
        return True  # early stopping

    # ------------------------------------------------------------------ fit
    def _check_memory(self, n_in: int, group_sizes: list[int], dev) -> None:
        """Refuse, before allocating, a network whose weights, gradients and Adam state
        (4 float32 copies of the group in training, the weights of the others) would not
        fit in the memory available now."""
        widths = [n_in, *self.hidden]
        hidden = sum(a * b + b for a, b in itertools.pairwise(widths))
        lin = n_in + 1 if self.linear_path != "off" else 0  # the ridge weights of the linear path
        per_group = [hidden + (self.hidden[-1] + lin) * g + g for g in group_sizes]
        params = sum(per_group)
        need = 4 * params + 12 * max(per_group)
        if dev.type == "cuda":
            import torch

            free = torch.cuda.mem_get_info(dev)[0]
        else:
            free = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else None
        if free and need > 0.8 * free:
            raise ModelError(f"a network of {params:,} weights ({n_in} -> {' -> '.join(map(str, self.hidden))} -> "
                             f"{sum(group_sizes):,}) needs ~{need / 2**30:.1f} GiB for its weights, gradients and "
                             f"optimizer state; {free / 2**30:.1f} GiB are free on {dev.type}: use narrower layers "
                             "(hidden) or more target_groups trained one after another")

    def _groups(self, n_targets: int) -> list[np.ndarray]:
        g = max(1, min(self.target_groups, n_targets))
        return [a for a in np.array_split(np.arange(n_targets), g)]

    def _fit_standardized(self, source, Xv, Yv, progress: Progress) -> None:
        if Xv is None or Yv is None:
            raise ModelError("the D-GEX network needs a validation set for early stopping; pass val=")
        dev = pick_device(self.device)
        world = ddp.world()[1]
        if world > 1 and dev.type == "cuda":  # under DDP: rank r of a machine on its GPU r
            local, n_gpus = ddp.local_rank(), torch.cuda.device_count()
            if local >= n_gpus:
                raise ModelError(f"{os.environ.get('LOCAL_WORLD_SIZE', local + 1)} ranks on this machine but "
                                 f"{n_gpus} GPU(s): one rank per GPU (--nproc {n_gpus}), or device cpu")
            dev = torch.device("cuda", local)
        self.device_used_ = str(dev)
        groups = self._groups(source.n_targets)
        problem = None
        try:
            self._check_memory(source.n_landmarks, [len(g) for g in groups], dev)
        except ModelError as e:
            problem = str(e)
        if world > 1:  # one rank short of memory stops every rank here, not at a later collective
            problem = next((p for p in ddp.all_gather_objects(problem) if p), None)
        if problem:
            raise ModelError(problem)
        # in-memory data: standardize once and keep it (one block = a full shuffle each epoch)
        cache = source.materialize() if getattr(source.source, "in_memory", False) else None
        ridge = self._fit_ridge(source, Xv, Yv, progress) if self.linear_path != "off" else None
        self.networks_, self.history_, self.best_epochs_ = [], [], []
        self.target_groups_ = [g.tolist() for g in groups]
        start = time.perf_counter()
        for gi, cols in enumerate(groups):
            lin = None if ridge is None else (ridge.coef_[:, cols], ridge.intercept_[cols])
            net, hist, best = self._train_group(gi, cols, source, cache, Xv, Yv, dev, progress, start, lin)
            self.networks_.append(net.cpu().eval())
            self.history_ += hist
            self.best_epochs_.append(best)

    def _fit_ridge(self, source, Xv, Yv, progress: Progress):
        """The linear path: closed-form ridge on the training blocks, alpha on validation MAE."""
        from .linear import LinearModel

        progress(0, self.max_epochs, {"stage": "fitting the linear path (ridge)"})
        ridge = LinearModel(alphas="auto")
        ridge._fit_standardized(source, Xv, Yv, lambda *a: None)  # sums sharded over ranks under DDP
        if ddp.world()[1] > 1:  # every rank solved the same sums; rank 0's answer, bit for bit, on all
            ridge.coef_ = ddp.broadcast(ridge.coef_)
            ridge.intercept_ = ddp.broadcast(ridge.intercept_)
            ridge.alpha_ = float(ddp.broadcast(np.array([ridge.alpha_], np.float64))[0])
        self.linear_alpha_ = float(ridge.alpha_)
        return ridge

    def _batches(self, source, cache, targets, epoch_seed: int, dev):
        """Mini-batches (X, Y) as tensors on ``dev`` for one epoch, shuffled reproducibly.

        In memory: one full permutation of the samples. From disk: the shuffled block
        loader (:meth:`_groups_from_disk`): groups of randomly chosen chunks of samples,
        each group read (in a background thread, while the previous one trains) and
        shuffled within; samples left over at the end of a group join the next group's
        first batch, so an epoch has ``ceil(n / batch_size)`` steps either way.
        ``targets(x, y)`` turns a block's standardized targets into what the network
        learns (its group's columns; minus the ridge prediction for a frozen linear path).
        """
        rng = np.random.default_rng(epoch_seed)
        groups = [cache] if cache is not None else self._groups_from_disk(source, rng)
        carry = None
        for xb, yb in groups:
            yb = targets(xb, yb)
            perm = rng.permutation(xb.shape[0])
            s = 0
            if carry is not None:
                need = self.batch_size - carry[0].shape[0]
                idx = perm[:need]
                x = np.concatenate([carry[0], xb[idx]])
                y = np.concatenate([carry[1], yb[idx]])
                s, carry = len(idx), None
                if x.shape[0] < self.batch_size:
                    carry = (x, y)
                else:
                    yield torch.from_numpy(x).to(dev, _F32), torch.from_numpy(y).to(dev, _F32)
            if carry is not None:
                continue
            xt = torch.from_numpy(np.ascontiguousarray(xb))
            yt = torch.from_numpy(np.ascontiguousarray(yb))
            for start in range(s, xb.shape[0], self.batch_size):
                idx = perm[start:start + self.batch_size]
                if cache is None and idx.size < self.batch_size:
                    carry = (xb[idx], yb[idx])
                    break
                it = torch.from_numpy(idx)
                yield xt[it].to(dev, _F32, non_blocking=True), yt[it].to(dev, _F32, non_blocking=True)
        if carry is not None:
            yield torch.from_numpy(carry[0]).to(dev, _F32), torch.from_numpy(carry[1]).to(dev, _F32)

    #: Samples per chunk of the shuffled block loader (contiguous on disk) when the file
    #: has no chunking of its own; in a chunked HDF5 file a chunk is the samples of one
    #: storage chunk, so that no chunk is read twice in an epoch.
    LOADER_CHUNK = 256

    def _chunk_bounds(self, source) -> np.ndarray:
        """``n_chunks + 1`` sample offsets of the loader's chunks (see :attr:`LOADER_CHUNK`)."""
        n = source.n_samples
        starts = source.chunk_starts(self.LOADER_CHUNK) if hasattr(source, "chunk_starts") else \
            np.arange(0, n, self.LOADER_CHUNK)
        return np.r_[starts, n]

    @staticmethod
    def _read_ahead(read, plan):
        """``read(p)`` for each item of ``plan`` in turn, the next one read in a background
        thread while the caller trains on this one."""
        from concurrent.futures import ThreadPoolExecutor

        if not plan:
            return
        with ThreadPoolExecutor(1, thread_name_prefix="dgex-loader") as pool:
            pending = pool.submit(read, plan[0])
            for i in range(len(plan)):
                group = pending.result()
                if i + 1 < len(plan):
                    pending = pool.submit(read, plan[i + 1])
                yield group

    def _groups_from_disk(self, source, rng):
        """Standardized (X, Y) groups of randomly chosen chunks, read one group ahead."""
        n = source.n_samples
        bounds = self._chunk_bounds(source)
        n_chunks = bounds.size - 1
        per_group = max(1, round(source.block_size * n_chunks / max(n, 1)))  # chunks per group
        if n_chunks <= per_group:  # everything in one group: a full shuffle, as in memory
            plan = [np.arange(n)]
        else:
            order = rng.permutation(n_chunks)
            plan = []
            for g in range(0, n_chunks, per_group):
                picked = np.sort(order[g:g + per_group])
                plan.append(np.concatenate([np.arange(bounds[c], bounds[c + 1]) for c in picked]))
        yield from self._read_ahead(source.read, plan)

    def _shard_batches(self, source, cache, targets, epoch_seed: int, dev, rank: int, world: int):
        """Rank ``rank``'s mini-batches of one epoch of a ``world``-rank DDP job.

        Every rank draws the same epoch order (of samples in memory, of storage chunks on
        disk) from ``epoch_seed`` and reads only its own share of it
        (:func:`~dgex_core.distributed.sampler.shard_stream`): ``ceil(n / world)`` samples
        in batches of ``ceil(batch_size / world)``, so the ranks' batches of one step
        together are one batch of the single-process recipe. From disk the share is read
        in groups of about ``block_size`` samples (file order within a group, one group
        ahead in a background thread), shuffled within with the rank's own generator.
        """
        b = rank_batch_size(self.batch_size, world)
        rng = np.random.default_rng(epoch_seed)
        if cache is not None:
            mine = shard_stream(rng.permutation(cache[0].shape[0]), None, world, rank)
            xt, yt = torch.from_numpy(cache[0]), torch.from_numpy(cache[1])
            for s in range(0, mine.size, b):
                it = torch.from_numpy(mine[s:s + b])
                yield xt[it].to(dev, _F32), yt[it].to(dev, _F32)
            return
        bounds = self._chunk_bounds(source)
        mine = shard_stream(rng.permutation(bounds.size - 1), bounds, world, rank)
        plan = split_groups(mine, source.block_size)
        local = np.random.default_rng(np.random.SeedSequence([epoch_seed, rank]))

        def read(positions):  # the padding may repeat a sample: read each once, in file order
            unique, inverse = np.unique(positions, return_inverse=True)
            xb, yb = source.read(unique)
            return xb[inverse], yb[inverse]

        carry = None
        for xb, yb in self._read_ahead(read, plan):
            yb = targets(xb, yb)
            perm = local.permutation(xb.shape[0])
            xb, yb = xb[perm], yb[perm]
            if carry is not None:
                xb, yb = np.concatenate([carry[0], xb]), np.concatenate([carry[1], yb])
                carry = None
            full = xb.shape[0] // b * b
            for s in range(0, full, b):
                yield torch.from_numpy(xb[s:s + b]).to(dev, _F32), torch.from_numpy(yb[s:s + b]).to(dev, _F32)
            if full < xb.shape[0]:
                carry = (xb[full:], yb[full:])
        if carry is not None:
            yield torch.from_numpy(carry[0]).to(dev, _F32), torch.from_numpy(carry[1]).to(dev, _F32)

    def _train_group(self, gi, cols, source, cache, Xv, Yv, dev, progress, start, lin=None):
        """Train one target group's network; ``lin`` (coef landmarks x group, intercept):
        the ridge weights of its linear path, or None for the plain network."""
        torch.manual_seed(_epoch_seed(self.seed, gi, 0))
        dtype = torch.float32
        body = build_network(source.n_landmarks, len(cols), self.hidden, self.activation, self.dropout,
                             adaptive=self.adaptive, zero_output=lin is not None, input_dropout=self.input_dropout)
        full, net, targets = body, body, _GroupTargets(cols)
        if lin is not None:
            full = ResidualNet(linear_layer(*lin), body)
            if self.linear_path == "frozen":  # the body learns the ridge residual; ridge stays as fitted
                full.linear.requires_grad_(False)
                targets = _GroupTargets(cols, *lin)
            else:
                net = full
        full.to(dev, dtype)
        opt = self._make_optimizer(net)
        sched = self._make_schedule(opt, source)
        loss_fn = nn.L1Loss() if self.loss == "mae" else nn.MSELoss()
        use_amp = self.amp and dev.type == "cuda"
        xv_np = np.ascontiguousarray(Xv, dtype=np.float32)
        xv = torch.from_numpy(xv_np)
        yv = targets.validation(xv_np, Yv)
        gcache = None if cache is None else (cache[0], targets(cache[0], cache[1]))  # once, not per epoch
        if gcache is not None:
            targets = _GroupTargets(slice(None))
        rank, world = ddp.world()
        state = {"epoch": 0, "best_score": math.inf, "best_epoch": 0, "bad_epochs": 0, "history": [],
                 "world": world, "data": _data_key(self)}
        best_weights = None
        ckpt = self._checkpoint_path(gi)
        resume = ckpt is not None and ckpt.exists()
        if world > 1 and len(set(ddp.all_gather_objects(resume))) > 1:
            raise ModelError(f"{ckpt}: the checkpoint is seen by some ranks and not others; under DDP the "
                             "checkpoint folder must be on a filesystem every machine shares")
        if resume:
            state, best_weights = self._load_checkpoint(ckpt, net, opt, sched, dev)
        trained = net  # what the optimizer steps: the module itself, or its DDP wrapper
        if world > 1:
            from torch.nn.parallel import DistributedDataParallel

            trained = DistributedDataParallel(net, device_ids=[dev.index] if dev.type == "cuda" else None)
        val_rows = rank_range(xv.shape[0], world, rank)
        while state["epoch"] < self.max_epochs and state["bad_epochs"] < self.patience:
            epoch = state["epoch"] + 1
            t0 = time.perf_counter()
            torch.manual_seed(_epoch_seed(self.seed, gi, epoch, rank if world > 1 else None))
            net.train()
            total, count = 0.0, 0
            seed = _epoch_seed(self.seed, gi, epoch)
            batches = (self._batches(source, gcache, targets, seed, dev) if world == 1
                       else self._shard_batches(source, gcache, targets, seed, dev, rank, world))
            for xb, yb in batches:
                opt.zero_grad(set_to_none=True)
                with torch.autocast("cuda", dtype=torch.bfloat16) if use_amp else contextlib.nullcontext():
                    loss = loss_fn(trained(xb), yb)
                loss.backward()
                opt.step()
                if sched is not None:
                    sched.step()
                total += float(loss.detach()) * xb.shape[0]
                count += xb.shape[0]
            if world > 1:  # every rank's share of the loss and of the validation error, summed
                total, count = ddp.all_sum(np.array([total, count])).tolist()
            val_mae = self._val_mae(net, xv, yv, dev, use_amp, val_rows)
            improved = val_mae < state["best_score"]
            if improved:
                state.update(best_score=val_mae, best_epoch=epoch, bad_epochs=0)
                best_weights = {k: v.detach().clone() for k, v in net.state_dict().items()}
            else:
                state["bad_epochs"] += 1
            rec = {"group": gi, "epoch": epoch, "train_loss": total / max(count, 1), "val_mae": val_mae,
                   "seconds": time.perf_counter() - t0}
            state["history"].append(rec)
            state["epoch"] = epoch
            if ckpt is not None and rank == 0:
                self._save_checkpoint(ckpt, net, opt, sched, state, best_weights)
            stop = progress(epoch, self.max_epochs, {**rec, "best_epoch": state["best_epoch"],
                                                     "best_val_mae": state["best_score"],
                                                     "n_groups": len(self.target_groups_)}) if rank == 0 else None
            stop = stop is True or (self.max_seconds is not None and time.perf_counter() - start > self.max_seconds)
            if world > 1:  # rank 0's clock and callback decide for all: every rank stops at the same epoch
                stop = bool(ddp.broadcast(np.array([stop]))[0])
            if stop:
                break
        if best_weights is not None:
            net.load_state_dict(best_weights)
        if lin is not None:
            gates = self._choose_gates(full, xv, _GroupTargets(cols).validation(xv_np, Yv), dev, use_amp, val_rows)
            full.gate.copy_(torch.from_numpy(ddp.broadcast(gates)))
        return full, state["history"], state["best_epoch"]

    @torch.no_grad()
    def _choose_gates(self, net: ResidualNet, xv, yv, dev, use_amp: bool, rows: slice | None = None) -> np.ndarray:
        """Per target, the gate of :data:`GATE_GRID` with the lowest validation MAE of
        ``ridge + gate * residual`` (ties go to the smaller gate: 0 is the ridge answer).
        Under DDP each rank scores its ``rows`` of the validation samples and the sums are added."""
        net.eval()
        rows = rows or slice(0, xv.shape[0])
        grid = torch.tensor(GATE_GRID, dtype=torch.float32)
        abs_sum = torch.zeros(len(GATE_GRID), yv.shape[1], dtype=torch.float64)
        bs = max(1, (4096 if isinstance(yv, np.ndarray) else block_rows(yv.shape[1])) // len(GATE_GRID))
        for s in range(rows.start, rows.stop, bs):
            e = min(s + bs, rows.stop)
            x = xv[s:e].to(dev)
            with torch.autocast("cuda", dtype=torch.bfloat16) if use_amp else contextlib.nullcontext():
                lin, res = net.linear(x).float().cpu(), net.body(x).float().cpu()
            err = torch.from_numpy(np.asarray(yv[s:e], np.float32)) - lin  # what the residual must explain
            abs_sum += (err[None] - grid[:, None, None] * res[None]).abs().sum(dim=1, dtype=torch.float64)
        total = torch.from_numpy(ddp.all_sum(abs_sum.numpy()))
        return np.asarray(GATE_GRID, np.float32)[total.argmin(dim=0).numpy()]

    def _make_optimizer(self, net: nn.Module) -> torch.optim.Optimizer:
        if self.optimizer == "adam":
            params = list(net.parameters())
            try:  # one fused kernel for the whole update: ~4x faster than the per-tensor loop on a CPU
                return torch.optim.Adam(params, lr=self.lr, weight_decay=self.weight_decay, fused=True)
            except (RuntimeError, TypeError, ValueError):  # a device or dtype without the fused kernel
                return torch.optim.Adam(params, lr=self.lr, weight_decay=self.weight_decay)
        return torch.optim.SGD(net.parameters(), lr=self.lr, momentum=self.momentum, weight_decay=self.weight_decay)

    def _steps_per_epoch(self, source) -> int:
        return steps_per_epoch(source.n_samples, self.batch_size, ddp.world()[1])

    def _make_schedule(self, opt, source):
        if self.schedule == "constant":
            return None
        total = max(1, self.max_epochs * self._steps_per_epoch(source))
        return torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=self.lr, total_steps=total, pct_start=0.15)

    @torch.no_grad()
    def _val_mae(self, net, xv, yv, dev, use_amp: bool, rows: slice | None = None) -> float:
        """Mean per-target validation MAE (standardized); under DDP each rank scores its
        ``rows`` and the per-target sums are added over ranks."""
        net.eval()
        rows = rows or slice(0, xv.shape[0])
        abs_sum = np.zeros(yv.shape[1])
        bs = 4096 if isinstance(yv, np.ndarray) else block_rows(yv.shape[1])  # targets on disk: by bytes
        for s in range(rows.start, rows.stop, bs):
            e = min(s + bs, rows.stop)
            with torch.autocast("cuda", dtype=torch.bfloat16) if use_amp else contextlib.nullcontext():
                p = net(xv[s:e].to(dev)).float().cpu().numpy()
            abs_sum += np.abs(p - yv[s:e]).sum(axis=0)
        abs_sum = ddp.all_sum(abs_sum)
        return float((abs_sum / xv.shape[0]).mean())

    # ---------------------------------------------------------- checkpoints
    def _checkpoint_path(self, group: int) -> Path | None:
        if not self.checkpoint_dir:
            return None
        return Path(self.checkpoint_dir) / f"checkpoint-group{group}.safetensors"

    def _save_checkpoint(self, path: Path, net, opt, sched, state: dict, best_weights) -> None:
        """Weights, optimizer moments and best weights as safetensors; counters as its metadata."""
        from safetensors.torch import save_file

        tensors = {f"net.{k}": v.detach().cpu().contiguous() for k, v in net.state_dict().items()}
        if best_weights is not None:
            tensors.update({f"best.{k}": v.cpu().contiguous() for k, v in best_weights.items()})
        osd = opt.state_dict()
        for pid, st in osd["state"].items():
            for name, v in st.items():
                tensors[f"opt.{pid}.{name}"] = (v if torch.is_tensor(v) else torch.tensor(v)).detach().cpu().contiguous()
        meta = {"state": json.dumps(state), "params": json.dumps(self.get_params()),
                "schedule": json.dumps(None if sched is None else sched.state_dict()),
                "param_groups": json.dumps(osd["param_groups"])}
        with atomic_path(path) as tmp:
            save_file(tensors, str(tmp), metadata=meta)

    def _load_checkpoint(self, path: Path, net, opt, sched, dev):
        from safetensors import safe_open

        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata()
            tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 (safe_open has no __iter__)
        saved = json.loads(meta["params"])
        mine = self.get_params()
        diff = [k for k in mine if k not in ("checkpoint_dir", "device", "max_seconds")
                and json.dumps(saved.get(k)) != json.dumps(mine[k])]
        if diff:
            raise ModelError(f"{path}: the checkpoint was written with other settings ({', '.join(diff)}); "
                             "remove it or train in another folder")
        state = json.loads(meta["state"])
        world = ddp.world()[1]
        if state.get("world", 1) != world:  # the steps per epoch (and the schedule) depend on it
            raise ModelError(f"{path}: the checkpoint was written by a job of {state.get('world', 1)} process(es), "
                             f"this one has {world}: resume it with the same number (--nproc), or remove it")
        if state.get("data") and state["data"] != _data_key(self):
            raise ModelError(f"{path}: the checkpoint was trained on other samples (another dataset or split); "
                             "remove it or train in another folder")
        net.load_state_dict({k[4:]: v.to(dev) for k, v in tensors.items() if k.startswith("net.")})
        best = {k[5:]: v.to(dev) for k, v in tensors.items() if k.startswith("best.")} or None
        osd = opt.state_dict()
        for key, v in tensors.items():
            if key.startswith("opt."):
                _, pid, name = key.split(".", 2)
                osd["state"].setdefault(int(pid), {})[name] = v.to(dev) if name != "step" else v
        if "param_groups" in meta:  # current lr / betas, as the schedule left them
            osd["param_groups"] = [
                {**saved, "params": mine["params"]}
                for saved, mine in zip(json.loads(meta["param_groups"]), osd["param_groups"], strict=True)
            ]
        opt.load_state_dict(osd)
        if sched is not None and meta.get("schedule") not in (None, "null"):
            sched.load_state_dict(json.loads(meta["schedule"]))
        return state, best

    # -------------------------------------------------------------- predict
    @torch.no_grad()
    def _predict_standardized(self, Xz: np.ndarray) -> np.ndarray:
        out = np.empty((Xz.shape[0], len(self.target_ids_)), dtype=np.float32)
        xt = torch.from_numpy(np.ascontiguousarray(Xz, dtype=np.float32))
        for net, cols in zip(self.networks_, self.target_groups_, strict=True):
            net.eval()
            for s in range(0, xt.shape[0], 4096):
                out[s:s + 4096, cols] = net(xt[s:s + 4096]).numpy()
        return out

    # -------------------------------------------------------------- saving
    def _state(self):
        arrays = {}
        for gi, net in enumerate(self.networks_):
            for k, v in net.state_dict().items():
                arrays[f"g{gi}.{k}"] = v.detach().cpu().numpy()
        meta = {"target_groups": self.target_groups_, "best_epochs": self.best_epochs_, "history": self.history_,
                "device_used": getattr(self, "device_used_", "cpu")}
        if hasattr(self, "linear_alpha_"):
            meta["linear_alpha"] = self.linear_alpha_
        return meta, arrays

    def _set_state(self, params, arrays):
        self.target_groups_ = params["target_groups"]
        self.best_epochs_ = params.get("best_epochs", [])
        self.history_ = params.get("history", [])
        self.networks_ = []
        # the arrays say what was trained (runs from before the linear path and adaptive
        # activations were options load as what they are)
        if self.linear_path != "off" and not any(".linear.weight" in k for k in arrays):
            self.linear_path = "off"
        self.adaptive = any(k.endswith(".in_scale") for k in arrays)
        if "input_dropout" in getattr(self, "_missing_params_", ()):
            self.input_dropout = 0.0  # written before landmark dropout existed: trained without it
        if "linear_alpha" in params:
            self.linear_alpha_ = float(params["linear_alpha"])
        for gi, cols in enumerate(self.target_groups_):
            net = build_network(len(self.landmark_ids_), len(cols), self.hidden, self.activation, self.dropout,
                                adaptive=self.adaptive, input_dropout=getattr(self, "input_dropout", 0.0))
            if self.linear_path != "off":
                net = ResidualNet(nn.Linear(len(self.landmark_ids_), len(cols)), net)
            sd = {k[len(f"g{gi}."):]: torch.from_numpy(np.array(v)) for k, v in arrays.items()
                  if k.startswith(f"g{gi}.")}
            try:
                net.load_state_dict(sd)
            except RuntimeError as e:
                raise ModelError(f"saved network weights do not fit the saved settings: {e}") from None
            self.networks_.append(net.eval())
