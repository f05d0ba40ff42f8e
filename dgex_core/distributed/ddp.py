"""The D-GEX network under torch DistributedDataParallel: the process group and its collectives.

``dgex train --model mlp --nproc N`` starts N processes on this machine through
torch's own launcher (:func:`launch`, the engine behind ``torchrun``); ``torchrun ...
-m dgex_core.cli train ...`` does the same across machines. Each process finds its
rank in the environment torchrun sets (``RANK``, ``WORLD_SIZE``, ``MASTER_ADDR``...),
joins the group (:func:`process_group_from_env`: gloo for CPU tensors, NCCL for GPU
ones) and trains on its own shard of the training samples
(:mod:`.sampler`); the network's gradients are averaged by DDP at every step.

The helpers here are what the model needs from the group, on numpy arrays: a sum over
ranks, a broadcast from rank 0, a gather of small objects. Without a process group
(one process) they return their input: the single-process path never changes.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
from collections.abc import Callable, Iterator, Sequence
from datetime import timedelta

import numpy as np

__all__ = ["TIMEOUT_ENV", "WAIT_ENV", "all_gather_objects", "all_sum", "broadcast", "is_main", "launch", "launched",
           "local_rank", "process_group_from_env", "wait_for_all", "world"]

#: Seconds a rank waits for the others at a collective before giving up ($DGEX_DDP_TIMEOUT; default an hour).
TIMEOUT_ENV = "DGEX_DDP_TIMEOUT"


def world() -> tuple[int, int]:
    """``(rank, world_size)`` of this process: ``(0, 1)`` without a torch process group."""
    torch = sys.modules.get("torch")
    if torch is None:
        return 0, 1
    dist = torch.distributed
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def is_main() -> bool:
    """Whether this process is rank 0 (the one that reports, checkpoints and saves)."""
    return world()[0] == 0


def launched() -> bool:
    """Whether torchrun (or ``dgex train --nproc``) started this process as one rank of several."""
    try:
        return int(os.environ.get("WORLD_SIZE", "1")) > 1 and "RANK" in os.environ and "MASTER_ADDR" in os.environ
    except ValueError:
        return False


#: Seconds the other ranks wait for rank 0 outside training (caching the data, scoring and
#: saving the run) ($DGEX_DDP_WAIT; default a day).
WAIT_ENV = "DGEX_DDP_WAIT"


def local_rank() -> int:
    """This process's rank on its machine (``LOCAL_RANK``; 0 without torchrun)."""
    try:
        return int(os.environ.get("LOCAL_RANK", "0"))
    except ValueError:
        return 0


@contextlib.contextmanager
def process_group_from_env() -> Iterator[None]:
    """Join the process group torchrun describes in the environment, for the ``with`` block.

    gloo for tensors on the CPU and, when CUDA is available, NCCL for tensors on GPUs
    (rank ``LOCAL_RANK`` on GPU ``LOCAL_RANK``), so a network trained on either device
    averages its gradients with the right one; a rank that waits longer than
    ``$DGEX_DDP_TIMEOUT`` seconds (default 3,600) at a collective stops with an error
    instead of hanging.
    """
    import torch
    import torch.distributed as dist

    if dist.is_initialized():
        yield
        return
    cuda = torch.cuda.is_available()
    if cuda and local_rank() < torch.cuda.device_count():
        torch.cuda.set_device(local_rank())
    timeout = timedelta(seconds=float(os.environ.get(TIMEOUT_ENV, "3600")))
    dist.init_process_group("cpu:gloo,cuda:nccl" if cuda else "gloo", timeout=timeout)
    try:
        yield
        wait_for_all()  # every rank leaves together, once rank 0 has saved the run
    finally:
        import gc

        gc.collect()  # DDP wrappers left in reference cycles hold the group: free them before it goes
        dist.destroy_process_group()


def wait_for_all() -> None:
    """Wait until every rank gets here, for up to ``$DGEX_DDP_WAIT`` seconds (default a day):
    where the others wait for rank 0 to read the data or to score and save the run, longer
    than a collective of the training may take (nothing with one process)."""
    if world()[1] > 1:
        import torch.distributed as dist

        dist.monitored_barrier(timeout=timedelta(seconds=float(os.environ.get(WAIT_ENV, str(24 * 3600)))))


# The helpers below pass CPU tensors, so their collectives run on gloo whatever the network's device.
def all_sum(values: np.ndarray) -> np.ndarray:
    """The element-wise sum of ``values`` over all ranks (float64; ``values`` itself with one process)."""
    values = np.asarray(values, dtype=np.float64)
    if world()[1] == 1:
        return values
    import torch
    import torch.distributed as dist

    t = torch.tensor(values)  # a copy: the caller's array is left as it was
    dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t.numpy().reshape(values.shape)


def broadcast(values: np.ndarray, src: int = 0) -> np.ndarray:
    """Rank ``src``'s ``values`` on every rank (same shape and dtype on all ranks)."""
    values = np.asarray(values)
    if world()[1] == 1:
        return values
    import torch
    import torch.distributed as dist

    t = torch.tensor(values)  # a copy: the caller's array is left as it was
    dist.broadcast(t, src=src)
    return t.numpy().reshape(values.shape)


def all_gather_objects(obj) -> list:
    """Every rank's ``obj`` (picklable), in rank order; ``[obj]`` with one process."""
    if world()[1] == 1:
        return [obj]
    import torch.distributed as dist

    out = [None] * world()[1]
    dist.all_gather_object(out, obj)
    return out


def _signal_name(exitcode: int) -> str:
    if exitcode < 0:
        try:
            return f"signal {signal.Signals(-exitcode).name}"
        except ValueError:
            return f"signal {-exitcode}"
    return f"exit code {exitcode}"


def launch(nproc: int, argv: Sequence[str], resume_hint: Callable[[], str] | None = None) -> int:
    """Run ``python -m dgex_core.cli *argv`` as ``nproc`` ranks on this machine (gloo or NCCL).

    Each rank gets ``cores / nproc`` threads. Returns 0 when every rank finished; when
    one stops (killed, out of memory, an error), the others are stopped too and this
    prints which rank failed and how, plus ``resume_hint()`` (what a rerun does), and returns 1.
    """
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.run import get_args_parser, run

    threads = max(1, (os.cpu_count() or 1) // nproc)
    os.environ.setdefault("OMP_NUM_THREADS", str(threads))
    args = get_args_parser().parse_args([
        "--standalone", f"--nproc-per-node={int(nproc)}", "--max-restarts=0", "--monitor-interval=0.5",
        "--module", "dgex_core.cli", *argv,
    ])
    import logging

    logging.getLogger("torch.distributed.elastic").setLevel(logging.CRITICAL)  # the failure is reported below
    try:
        run(args)
    except ChildFailedError as e:
        failures = sorted(e.failures.items())
        # the cause: a rank killed by a signal (not the SIGTERM that stops the rest), else one that failed
        crashed = ([(r, f) for r, f in failures if f.exitcode < 0 and f.exitcode != -signal.SIGTERM]
                   or [(r, f) for r, f in failures if f.exitcode > 0] or [e.get_first_failure()])
        what = "; ".join(f"rank {r} of {nproc} (pid {f.pid}) stopped with {_signal_name(f.exitcode)}"
                         for r, f in crashed)
        print(f"dgex {argv[0] if argv else ''}: error: {what}; the other ranks were stopped"
              + (f"; {resume_hint()}" if resume_hint else ""), file=sys.stderr)
        return 1
    return 0
