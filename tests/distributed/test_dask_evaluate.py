"""Evaluation on a real Dask cluster (LocalCluster, two worker processes): each block
predicted and scored on a worker, per-gene sums added at the client in block order: the
same per-gene and per-sample metrics as one process, for data in memory and for a
lazily read file the workers open themselves."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("distributed")

from dgex_core.dataset import Dataset
from dgex_core.distributed import use_client
from dgex_core.evaluation.metrics import GeneErrorAccumulator, evaluate_model
from dgex_core.io import open_matrix, write
from dgex_core.models.knn import KNNModel
from dgex_core.models.linear import LinearModel

from ..helpers import linear_data


@pytest.fixture(scope="module")
def cluster():
    from distributed import Client, LocalCluster

    with LocalCluster(n_workers=2, processes=True, threads_per_worker=1, dashboard_address=":0") as lc, Client(lc) as c:
        yield c


def _same(one, many) -> None:
    pd.testing.assert_frame_equal(many.per_gene, one.per_gene, rtol=1e-10, atol=1e-12)
    pd.testing.assert_series_equal(many.per_sample, one.per_sample, rtol=1e-10, atol=1e-12)
    assert many.summary.keys() == one.summary.keys()


@pytest.mark.parametrize("family", ["linear", "knn"])
def test_scores_on_the_cluster_equal_one_process_in_memory(cluster, family):
    ds = linear_data(n=260, seed=41)
    train, test = ds.subset(np.arange(200)), ds.subset(np.arange(200, 260))
    model = (LinearModel() if family == "linear" else KNNModel(k=5)).fit(train, test)
    one = evaluate_model(model, test, block_size=7)
    with use_client(cluster):
        many = evaluate_model(model, test, block_size=7)
    _same(one, many)
    assert np.isfinite(many.per_gene["spearman"]).all()


def test_scores_on_the_cluster_equal_one_process_from_a_file_the_workers_read(cluster, tmp_path, monkeypatch):
    sent = []
    submit = cluster.submit
    monkeypatch.setattr(cluster, "submit", lambda fn, *a, **kw: sent.append(a) or submit(fn, *a, **kw))
    ds = linear_data(n=240, seed=43)
    model = LinearModel().fit(ds.subset(np.arange(180)), ds.subset(np.arange(180, 240)))
    m = ds.to_matrix()
    path = write(m, tmp_path / "held_out.gctx")
    lazy = Dataset.from_matrix(open_matrix(path), list(ds.landmark_ids))
    assert lazy.is_lazy
    one = evaluate_model(model, lazy, block_size=50)
    with use_client(cluster):
        many = evaluate_model(model, lazy, block_size=50, spearman=False)
        with_ranks = evaluate_model(model, lazy, block_size=50)
    pd.testing.assert_frame_equal(many.per_gene, one.per_gene.drop(columns="spearman"), rtol=1e-10, atol=1e-12)
    _same(one, with_ranks)
    assert len(sent) == 2 * 5  # five blocks of 50, twice
    # no block of samples travelled from the client: the workers read the file
    assert not any(isinstance(a, np.ndarray) and a.ndim == 2 for args in sent for a in args)


def test_partial_sums_merged_equal_one_accumulator():
    rng = np.random.default_rng(0)
    t, p = rng.normal(size=(50, 6)), rng.normal(size=(50, 6))
    whole = GeneErrorAccumulator(6).update(t[:20], p[:20]).update(t[20:], p[20:])
    merged = GeneErrorAccumulator(6).merge(GeneErrorAccumulator(6).update(t[:20], p[:20]))
    merged.merge(GeneErrorAccumulator(6).update(t[20:], p[20:]))
    pd.testing.assert_frame_equal(merged.compute(), whole.compute(), rtol=0, atol=0)
