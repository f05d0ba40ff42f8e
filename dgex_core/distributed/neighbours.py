"""KNN-GE's neighbour search on a Dask cluster: per partition of the training samples, merged exactly.

The training landmarks are cut into contiguous partitions (scattered to the workers
once when they sit in memory; read by the workers from the sample-major file when they
were streamed to disk). For each chunk of queries every partition returns its own
``k`` nearest (indices into the whole training set, squared distances); the client
keeps, per query, the ``k`` smallest of the candidates ordered by distance then
index, the order :func:`~dgex_core.models.knn.nearest_neighbours` gives on one machine.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from ..models.knn import nearest_neighbours
from .sums import partition_ranges

__all__ = ["QUERY_CHUNK", "local_neighbours", "merge_neighbours", "neighbours_on_cluster"]

#: Queries sent to the workers per round (their candidates come back as queries x k x partitions).
QUERY_CHUNK = 8192


def local_neighbours(Q: np.ndarray, X, start: int, stop: int, k: int, query_block: int,
                     train_block: int) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` nearest of training rows ``start..stop`` of ``X`` (an array holding just
    those rows when ``start`` is 0 and it is that long, else the whole training set) for each
    query: ``(indices into the whole set, squared distances)``, each (n_queries, k')."""
    part = X if X.shape[0] == stop - start else _rows(X, start, stop)
    idx, dist = [], []
    for _, i, d in nearest_neighbours(Q, part, k, query_block, train_block):
        idx.append(i + start)
        dist.append(d)
    return np.vstack(idx), np.vstack(dist)


def _rows(X, start: int, stop: int) -> np.ndarray:
    return X[start:stop] if isinstance(X, np.ndarray) else X._slice(start, stop, None)


def merge_neighbours(parts: list[tuple[np.ndarray, np.ndarray]], k: int) -> tuple[np.ndarray, np.ndarray]:
    """Per query, the ``k`` smallest candidates of all partitions, by distance then index."""
    idx = np.concatenate([p[0] for p in parts], axis=1)
    dist = np.concatenate([p[1] for p in parts], axis=1)
    order = np.lexsort((idx, dist), axis=1)[:, :k]
    return np.take_along_axis(idx, order, axis=1), np.take_along_axis(dist, order, axis=1)


def neighbours_on_cluster(client, Q: np.ndarray, X, k: int, query_block: int,
                          train_block: int) -> Iterator[tuple[slice, np.ndarray, np.ndarray]]:
    """Like :func:`~dgex_core.models.knn.nearest_neighbours`, computed on ``client``'s workers:
    yields ``(query_slice, indices, sq_distances)`` per chunk of :data:`QUERY_CHUNK` queries."""
    n = int(X.shape[0])
    k = min(k, n)
    n_workers = max(1, len(client.scheduler_info().get("workers", {})))
    ranges = partition_ranges(n, max(1, train_block), 2 * n_workers)
    if isinstance(X, np.ndarray):
        held = client.scatter([X[a:b] for a, b in ranges], hash=False)  # fresh keys: never shared with an earlier search
    else:  # a sample-major file: every worker reads its own rows
        held = [X] * len(ranges)
    for qs in range(0, Q.shape[0], QUERY_CHUNK):
        q = np.ascontiguousarray(Q[qs:qs + QUERY_CHUNK])
        remote_q = client.scatter(q, broadcast=True, hash=False)  # sent once per worker, not once per task
        futures = [client.submit(local_neighbours, remote_q, h, a, b, k, query_block, train_block, pure=False)
                   for h, (a, b) in zip(held, ranges, strict=True)]
        idx, dist = merge_neighbours(client.gather(futures), k)
        yield slice(qs, qs + len(q)), idx, dist
