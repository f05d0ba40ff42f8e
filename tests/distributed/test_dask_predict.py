"""Prediction on a real Dask cluster (LocalCluster, two worker processes): sample blocks
predicted on the workers, written by one writer in order, the same file as one process;
and ``dgex train / predict --dask local:2`` end to end."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("distributed")

from dgex_core.distributed import use_client
from dgex_core.io import read, write
from dgex_core.matrix import ExpressionMatrix
from dgex_core.models.knn import KNNModel
from dgex_core.models.linear import LinearModel
from dgex_core.prediction import predict_file
from dgex_core.training import train_run

from ..helpers import linear_data


@pytest.fixture(scope="module")
def cluster():
    from distributed import Client, LocalCluster

    with LocalCluster(n_workers=2, processes=True, threads_per_worker=1, dashboard_address=":0") as lc, Client(lc) as c:
        yield c


@pytest.mark.parametrize(("family", "fmt", "gather"), [("linear", "gctx", False), ("knn", "gctx", False),
                                                     ("linear", "parquet", False), ("knn", "parquet", False),
                                                     ("linear", "gctx", True)])
def test_written_predictions_on_the_cluster_equal_one_process(cluster, tmp_path, family, fmt, gather, monkeypatch):
    """GCTX (uncompressed): the workers write their blocks' values into the file's allocated
    chunks themselves; Parquet: the blocks come back to one writer, in order."""
    ds = linear_data(n=300, seed=37)
    run = train_run(ds, LinearModel() if family == "linear" else KNNModel(k=5), "r")
    plate = write(ExpressionMatrix(ds.landmarks[:47].astype(np.float32), [f"P{i}" for i in range(47)],
                                   ds.landmark_ids), tmp_path / "plate.gctx")
    one = predict_file(run, plate, tmp_path / "one" / f"out.{fmt}", block_size=6)
    returned = []
    submit = cluster.submit
    monkeypatch.setattr(cluster, "submit", lambda fn, *a, **kw: returned.append(submit(fn, *a, **kw)) or returned[-1])
    with use_client(cluster):
        many = predict_file(run, plate, tmp_path / "dask" / f"out.{fmt}", block_size=6, gather=gather)
    widths = {f.result().values.shape[1] for f in returned}
    assert widths == ({0} if fmt == "gctx" and not gather else
                      {len(run.model.landmark_ids_) + len(run.model.target_ids_)})
    assert {k: v for k, v in one.items() if k != "output"} == {k: v for k, v in many.items() if k != "output"}
    a, b = read(tmp_path / "one" / f"out.{fmt}"), read(tmp_path / "dask" / f"out.{fmt}")
    assert list(a.sample_ids) == list(b.sample_ids) == [f"P{i}" for i in range(47)]  # in order
    np.testing.assert_allclose(b.values, a.values, rtol=1e-10, atol=0)
    pd.testing.assert_frame_equal(a.sample_meta, b.sample_meta)


def test_dgex_train_and_predict_with_dask_local_2_give_the_one_process_results(tmp_path):
    """``--dask local:2`` starts a cluster of two worker processes for the command, says where
    its dashboard is, and the run and the predictions equal those of one process."""
    from dgex_core.demo import DemoConfig, load_demo
    from dgex_core.store import load_run

    from ..helpers import cli

    runs = tmp_path / "runs"
    cli("train", "--data", "demo:600x50", "--model", "linear", "--runs-dir", runs, "--name", "one")
    res = cli("train", "--data", "demo:600x50", "--model", "linear", "--runs-dir", runs, "--name", "dask",
              "--dask", "local:2")
    assert "Dask: 2 workers at tcp://127.0.0.1:" in res.stderr and "dashboard http://127.0.0.1:" in res.stderr
    one, many = load_run(runs / "one").model, load_run(runs / "dask").model
    assert many.alpha_ == one.alpha_
    np.testing.assert_allclose(many.coef_, one.coef_, rtol=1e-10, atol=1e-12)

    ds = load_demo(DemoConfig(n_samples=600, n_targets=50)).dataset()
    plate = write(ExpressionMatrix(ds.landmarks[:40].astype(np.float32), [f"P{i}" for i in range(40)],
                                   ds.landmark_ids), tmp_path / "plate.gctx")
    cli("predict", "one", plate, "-o", tmp_path / "a.gctx", "--runs-dir", runs)
    res = cli("predict", "one", plate, "-o", tmp_path / "b.gctx", "--runs-dir", runs, "--dask", "local:2")
    assert "Dask: 2 workers" in res.stderr
    # float32 values: the client's two-thread BLAS and a one-thread worker may round the same
    # product differently in the last bit (one float32 ulp, 1.2e-7 relative), never more
    np.testing.assert_allclose(read(tmp_path / "b.gctx").values, read(tmp_path / "a.gctx").values, rtol=2.4e-7,
                               atol=0)


def test_zarr_written_by_the_workers_equals_one_process(cluster, tmp_path, monkeypatch):
    """``out.zarr`` with a cluster: each worker writes its blocks into the AnnData store itself;
    only the per-sample metadata come back, and the store equals the one-process one."""
    import anndata as ad

    ds = linear_data(n=300, seed=37)
    run = train_run(ds, LinearModel(), "r")
    plate = write(ExpressionMatrix(ds.landmarks[:47].astype(np.float32), [f"P{i}" for i in range(47)],
                                   ds.landmark_ids), tmp_path / "plate.gctx")
    one = predict_file(run, plate, tmp_path / "one.zarr", block_size=6)
    returned = []
    submit = cluster.submit

    def spy(fn, *a, **kw):
        fut = submit(fn, *a, **kw)
        returned.append(fut)
        return fut

    monkeypatch.setattr(cluster, "submit", spy)
    with use_client(cluster):
        many = predict_file(run, plate, tmp_path / "many.zarr", block_size=6)
    assert {k: v for k, v in one.items() if k != "output"} == {k: v for k, v in many.items() if k != "output"}
    assert len(returned) == 8 and all(f.result().values.shape[1] == 0 for f in returned)  # no values travelled
    a, b = ad.read_zarr(tmp_path / "one.zarr"), ad.read_zarr(tmp_path / "many.zarr")
    assert list(b.obs_names) == [f"P{i}" for i in range(47)]
    np.testing.assert_allclose(b.X, a.X, rtol=1e-10, atol=0)
    pd.testing.assert_frame_equal(a.obs, b.obs)
    pd.testing.assert_frame_equal(a.var, b.var)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["many.zarr", "one.zarr", "plate.gctx"]  # no temporaries
