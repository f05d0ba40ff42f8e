"""Linear regression's sums on a Dask cluster: per partition of the training samples, tree-reduced.

Each partition (a range of training samples, a whole number of the source's blocks) is
read by a worker, block by block, into a :class:`~dgex_core.models.linear.GramAccumulator`
exactly as one machine accumulates the whole set; the partial sums (``X'X``, ``X'Y``,
column sums and target sums of squares, each about its partition's own shift) are then
merged pairwise up a tree, shifting each to the left operand's reference first, so the
totals equal the one-machine sums up to rounding. The ridge solve and its alpha grid
stay on the client. A worker lost mid-task is replaced and its partition recomputed by
the scheduler; the result does not change.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence

import numpy as np

from ..models.linear import GramAccumulator

__all__ = ["gram_on_cluster", "gram_partition", "merge_gram", "partition_ranges", "range_blocks", "rank_blocks"]

#: Partial sums merged per node of the reduction tree.
SPLIT_EVERY = 4


def partition_ranges(n_samples: int, block_size: int, n_partitions: int) -> list[tuple[int, int]]:
    """``n_partitions`` (or fewer) contiguous sample ranges covering ``n_samples``, each a
    whole number of ``block_size`` blocks (the last one may be short)."""
    n_blocks = -(-n_samples // block_size)
    per = -(-n_blocks // max(1, min(n_partitions, n_blocks)))
    return [(b * block_size, min(n_samples, (b + per) * block_size)) for b in range(0, n_blocks, per)]


def range_blocks(source, start: int, stop: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """(X, Y) blocks of training samples ``start..stop`` of ``source``, a block at a time."""
    bs = int(source.block_size)
    for s in range(start, stop, bs):
        yield source.read(slice(s, min(stop, s + bs)))


def rank_blocks(source, rank: int, world: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """(X, Y) blocks of rank ``rank``'s share of ``source`` in a job of ``world`` ranks (torch
    DDP): the ``rank``-th of :func:`partition_ranges` (nothing when there are fewer blocks than ranks)."""
    ranges = partition_ranges(source.n_samples, int(source.block_size), world)
    if rank < len(ranges):
        yield from range_blocks(source, *ranges[rank])


def gram_partition(source, start: int, stop: int) -> GramAccumulator:
    """The sums of training samples ``start..stop`` of ``source``, read a block at a time (runs on a worker)."""
    acc = GramAccumulator()
    for xb, yb in range_blocks(source, start, stop):
        acc.update(xb, yb)
    return acc


def merge_gram(a: GramAccumulator, b: GramAccumulator) -> GramAccumulator:
    """One accumulator holding the sums of both, about ``a``'s shift (``a`` and ``b`` unchanged).

    With ``d = shift_b - shift_a`` the sums of ``b`` about ``a``'s shift are
    ``Σ(x-a) = s_b + n_b d`` and ``Σ(x-a)(y-a)' = S_b + s_xb d_y' + d_x s_yb' + n_b d_x d_y'``.
    """
    if b.n == 0:
        return a
    if a.n == 0:
        return b
    dx, dy = b.shift_x - a.shift_x, b.shift_y - a.shift_y
    out = GramAccumulator()
    out.n = a.n + b.n
    out.shift_x, out.shift_y = a.shift_x, a.shift_y
    out.sx = a.sx + b.sx + b.n * dx
    out.sy = a.sy + b.sy + b.n * dy
    out.yy = a.yy + b.yy + 2 * dy * b.sy + b.n * dy * dy
    out.xx = a.xx + b.xx + np.outer(dx, b.sx) + np.outer(b.sx, dx) + b.n * np.outer(dx, dx)
    out.xy = a.xy + b.xy + np.outer(dx, b.sy) + np.outer(b.sx, dy) + b.n * np.outer(dx, dy)
    return out


def _merge_many(*accs: GramAccumulator) -> GramAccumulator:
    out = accs[0]
    for acc in accs[1:]:
        out = merge_gram(out, acc)
    return out


def _tree(client, futures: Sequence, split_every: int):
    """Reduce ``futures`` with :func:`_merge_many` in a tree of fan-in ``split_every``, in order."""
    level = list(futures)
    while len(level) > 1:
        level = [client.submit(_merge_many, *level[i:i + split_every], pure=False) if len(level[i:i + split_every]) > 1
                 else level[i] for i in range(0, len(level), split_every)]
    return level[0]


def gram_on_cluster(client, source, progress: Callable[[int, int], None] | None = None, *,
                    n_partitions: int | None = None) -> GramAccumulator:
    """The sums of every training sample of ``source``, computed per partition on ``client``'s
    workers and tree-reduced there; ``progress(done, total)`` as partitions finish.

    ``n_partitions`` defaults to four per worker (at most one per block), so a lost
    worker costs a small share of the pass.
    """
    from distributed import as_completed

    n_workers = max(1, len(client.scheduler_info().get("workers", {})))
    ranges = partition_ranges(source.n_samples, int(source.block_size), n_partitions or 4 * n_workers)
    parts = [client.submit(gram_partition, *_task_input(source, a, b), pure=False) for a, b in ranges]
    for i, _ in enumerate(as_completed(parts), 1):
        if progress is not None:
            progress(i, len(parts))
    return _tree(client, parts, SPLIT_EVERY).result()


def _task_input(source, start: int, stop: int) -> tuple:
    """What a partition's task carries: the samples themselves for a source in memory (so
    the task can be rerun on any worker), else the source (its file is reopened by the
    worker that reads it) and the range."""
    if getattr(source, "in_memory", False):
        from ..models.sources import ArraySource

        X, Y = source.read(slice(start, stop))
        return ArraySource(X, Y, source.block_size), 0, stop - start
    return source, start, stop
