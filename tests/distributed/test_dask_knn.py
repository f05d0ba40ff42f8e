"""KNN-GE's neighbour search on a real Dask cluster (LocalCluster, two worker processes):
the same neighbours and predictions as one process, from memory and from a file."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("distributed")

from dgex_core.distributed import use_client
from dgex_core.distributed.neighbours import merge_neighbours, neighbours_on_cluster
from dgex_core.lazy import NpyRows
from dgex_core.models.knn import KNNModel, nearest_neighbours
from dgex_core.models.sources import ArraySource


@pytest.fixture(scope="module")
def cluster():
    from distributed import Client, LocalCluster

    with LocalCluster(n_workers=2, processes=True, threads_per_worker=1, dashboard_address=":0") as lc, Client(lc) as c:
        yield c


def _data(n=2500, p=30, t=80, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, p))
    return X, np.tanh(X @ rng.normal(size=(p, t))) + 0.1 * rng.normal(size=(n, t))


def test_merging_partitions_keeps_the_k_smallest_by_distance_then_index():
    a = (np.array([[0, 1]]), np.array([[0.5, 2.0]]))
    b = (np.array([[7, 9]]), np.array([[0.5, 1.0]]))
    idx, dist = merge_neighbours([b, a], 3)
    assert idx.tolist() == [[0, 7, 9]] and dist.tolist() == [[0.5, 0.5, 1.0]]


@pytest.mark.parametrize("where", ["memory", "file"])
def test_neighbours_on_the_cluster_equal_one_process(cluster, tmp_path, where):
    X, _ = _data()
    X = X.astype(np.float32)
    Q = X[:300] + 0.01
    if where == "file":
        store = NpyRows.create(tmp_path / "x.npy", X.shape, np.float32)
        store.write_rows(0, X)
        X = NpyRows(tmp_path / "x.npy")
    want = list(nearest_neighbours(Q, X, 7, 128, 512))
    got = list(neighbours_on_cluster(cluster, Q, X, 7, 128, 512))
    w_idx, w_d = np.vstack([w[1] for w in want]), np.vstack([w[2] for w in want])
    g_idx, g_d = np.vstack([g[1] for g in got]), np.vstack([g[2] for g in got])
    np.testing.assert_array_equal(g_idx, w_idx)
    np.testing.assert_allclose(g_d, w_d, rtol=1e-10, atol=0)


@pytest.mark.parametrize("k_grid", [None, "auto"])
def test_knn_predictions_on_the_cluster_equal_one_process(cluster, k_grid):
    X, Y = _data()
    Xv, Yv = _data(n=300, seed=1)
    lm, tg = [f"L{i}" for i in range(X.shape[1])], [f"T{j}" for j in range(Y.shape[1])]
    kw = {"k": 5} if k_grid is None else {"k_grid": k_grid}
    val = None if k_grid is None else (Xv, Yv)
    local = KNNModel(train_block=512, **kw)
    local.fit_source(ArraySource(X, Y), lm, tg, val=val)
    with use_client(cluster):
        remote = KNNModel(train_block=512, **kw)
        remote.fit_source(ArraySource(X, Y), lm, tg, val=val)  # k chosen on the cluster's neighbours
        got = remote.predict(Xv)
    assert remote.k_ == local.k_ and remote.k_scores_ == pytest.approx(local.k_scores_, rel=1e-10)
    np.testing.assert_allclose(got, local.predict(Xv), rtol=1e-10, atol=1e-12)
