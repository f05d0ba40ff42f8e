"""Which training samples each rank of a torch DDP job reads, epoch by epoch.

A distributed sampler over sample blocks: every rank draws the same epoch order of
*units* (single samples for data in memory; runs of samples that sit together on disk,
a storage chunk of an HDF5 file or 256 rows of a sample-major cache, otherwise) from the
epoch's seed, lays the units end to end into one stream of sample positions, and takes
its own contiguous share of that stream. Every rank gets exactly ``ceil(n / world)``
samples (the stream is padded by wrapping around to its start, as
``torch.utils.data.DistributedSampler`` pads), so every rank takes the same number of
steps of the same size, and the mean of the ranks' batch losses is the loss of their
combined batch: one step of ``world`` ranks is one step of one process on the union
of their batches. Each sample is read once per epoch (bar the padding), by one rank.

Pure functions of positions: nothing here talks to other processes.
"""

from __future__ import annotations

import numpy as np

__all__ = ["rank_batch_size", "rank_range", "shard_stream", "split_groups", "steps_per_epoch"]


def rank_batch_size(batch_size: int, world: int) -> int:
    """Samples per step on each rank: ``ceil(batch_size / world)``, so the ranks' combined
    batch is at least ``batch_size`` (equal to it when ``world`` divides it)."""
    return max(1, -(-int(batch_size) // max(1, int(world))))


def steps_per_epoch(n_samples: int, batch_size: int, world: int = 1) -> int:
    """Optimizer steps in one epoch of ``n_samples`` on ``world`` ranks (the same on every rank)."""
    if world <= 1:
        return max(1, -(-int(n_samples) // int(batch_size)))
    per_rank = -(-int(n_samples) // int(world))
    return max(1, -(-per_rank // rank_batch_size(batch_size, world)))


def shard_stream(order: np.ndarray, bounds: np.ndarray | None, world: int, rank: int) -> np.ndarray:
    """Sample positions of ``rank``'s share of one epoch (``ceil(n / world)`` of them).

    Parameters
    ----------
    order
        The epoch's order of units (a permutation of ``range(n_units)``, the same on every rank).
    bounds
        ``n_units + 1`` sample offsets: unit ``u`` is samples ``bounds[u]..bounds[u+1]``;
        None when every unit is one sample.
    world, rank
        Number of ranks and this one (0-based).
    """
    order = np.asarray(order, dtype=np.int64)
    if bounds is None:
        stream = order
    else:
        bounds = np.asarray(bounds, dtype=np.int64)
        lengths = bounds[order + 1] - bounds[order]
        starts = np.repeat(bounds[order] - np.concatenate([[0], np.cumsum(lengths)[:-1]]), lengths)
        stream = starts + np.arange(int(lengths.sum()), dtype=np.int64)
    n = stream.size
    per_rank = -(-n // world)
    stream = np.resize(stream, per_rank * world)  # wrapped around to its start, as DistributedSampler pads
    return stream[rank * per_rank:(rank + 1) * per_rank]


def split_groups(positions: np.ndarray, group_samples: int) -> list[np.ndarray]:
    """``positions`` cut into consecutive groups of about ``group_samples``, each sorted
    (so that a group is read from disk in file order)."""
    n_groups = max(1, -(-positions.size // max(1, int(group_samples))))
    return [np.sort(g) for g in np.array_split(positions, n_groups) if g.size]


def rank_range(n: int, world: int, rank: int) -> slice:
    """Rank ``rank``'s contiguous share of ``n`` rows (validation samples): the first
    ``n % world`` ranks take one more."""
    base, extra = divmod(n, world)
    start = rank * base + min(rank, extra)
    return slice(start, start + base + (1 if rank < extra else 0))
