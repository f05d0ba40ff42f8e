"""Predictions as an AnnData-zarr store: what anndata reads, the same values as GCTX,
atomic (an interrupted write leaves nothing), and never over something that is not a store."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from dgex_core.errors import OutputError
from dgex_core.io import read, write
from dgex_core.matrix import ExpressionMatrix
from dgex_core.models.linear import LinearModel
from dgex_core.prediction import predict_file
from dgex_core.training import train_run

from .helpers import linear_data

ad = pytest.importorskip("anndata")


@pytest.fixture(scope="module")
def run_and_plate(tmp_path_factory):
    d = tmp_path_factory.mktemp("zarr")
    ds = linear_data(n=300, seed=5)
    run = train_run(ds, LinearModel(), "r")
    meta = pd.DataFrame({"pert_id": [f"BRD-{i % 4}" for i in range(53)]}, index=[f"P{i}" for i in range(53)])
    plate = write(ExpressionMatrix(ds.landmarks[:53].astype(np.float32), [f"P{i}" for i in range(53)],
                                   ds.landmark_ids, meta), d / "plate.gctx")
    return run, plate


@pytest.mark.parametrize("codec", ["lz4", "zstd", "none"])
def test_zarr_store_is_what_anndata_reads_with_the_gctx_values(run_and_plate, tmp_path, codec):
    run, plate = run_and_plate
    predict_file(run, plate, tmp_path / "out.gctx", block_size=10)
    res = predict_file(run, plate, tmp_path / "out.zarr", block_size=10, compression=codec)
    assert res["compression"] == codec and res["samples"] == 53
    a, g = ad.read_zarr(tmp_path / "out.zarr"), read(tmp_path / "out.gctx")
    assert a.shape == (53, len(run.model.landmark_ids_) + len(run.model.target_ids_))
    assert list(a.obs_names) == list(g.sample_ids) and list(a.var_names) == list(g.gene_ids)
    np.testing.assert_array_equal(a.X, g.values)
    assert {"pert_id", "ood_score", "ood_flag", "n_imputed", "n_clipped"} <= set(a.obs.columns)
    assert a.obs["pert_id"].tolist() == [f"BRD-{i % 4}" for i in range(53)]
    assert a.var["role"].value_counts().to_dict() == {"inferred": 25, "measured": 40}


def test_an_interrupted_zarr_write_leaves_nothing_and_an_old_store_stays(run_and_plate, tmp_path, monkeypatch):
    run, plate = run_and_plate
    predict_file(run, plate, tmp_path / "out.zarr", block_size=10)
    before = ad.read_zarr(tmp_path / "out.zarr").X.copy()
    import dgex_core.prediction.apply as apply

    real, calls = apply.predict_matrix_block, []

    def failing(*a, **kw):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real(*a, **kw)

    monkeypatch.setattr(apply, "predict_matrix_block", failing)
    with pytest.raises(KeyboardInterrupt):
        predict_file(run, plate, tmp_path / "out.zarr", block_size=10)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.zarr"]  # no temporary left
    np.testing.assert_array_equal(ad.read_zarr(tmp_path / "out.zarr").X, before)  # the old store untouched


def test_a_folder_that_is_not_a_zarr_store_is_refused(run_and_plate, tmp_path):
    run, plate = run_and_plate
    (tmp_path / "results.zarr").mkdir()
    (tmp_path / "results.zarr" / "notes.txt").write_text("mine")
    with pytest.raises(OutputError, match="not a zarr store"):
        predict_file(run, plate, tmp_path / "results.zarr")
    assert (tmp_path / "results.zarr" / "notes.txt").read_text() == "mine"


def test_a_zarr_store_replaces_the_previous_one(run_and_plate, tmp_path):
    run, plate = run_and_plate
    predict_file(run, plate, tmp_path / "out.zarr", block_size=7, clip=False)
    predict_file(run, plate, tmp_path / "out.zarr", block_size=13)
    a = ad.read_zarr(tmp_path / "out.zarr")
    assert a.shape[0] == 53 and np.isfinite(a.X).all()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.zarr"]


def test_a_worker_that_cannot_see_the_output_says_so_and_creates_nothing(tmp_path):
    """A Dask worker on a machine that does not share the output's folder is refused with
    what to do, instead of writing a store (or a file) of its own there."""
    from dgex_core.export import write_planned
    from dgex_core.export.gctx import RowsPlan
    from dgex_core.export.zarr import ZarrRows

    gone = tmp_path / "elsewhere" / ".out.zarr.tmp"
    with pytest.raises(OutputError, match=r"not visible here.*--gather"):
        write_planned(ZarrRows(str(gone), 0), np.zeros((2, 3), np.float32))
    with pytest.raises(OutputError, match=r"not visible here.*--gather"):
        write_planned(RowsPlan(str(tmp_path / "elsewhere" / ".out.gctx.tmp"), 0, 2, (2, 3), "<f4", {}),
                      np.zeros((2, 3), np.float32))
    assert not (tmp_path / "elsewhere").exists()
