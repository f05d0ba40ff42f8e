"""Applying a run to new profiles: missing-value policy, block writers, nothing partial on failure."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from dgex_core.errors import ModelError
from dgex_core.export import open_block_writer, read_gene_meta_from_parquet
from dgex_core.io import read
from dgex_core.matrix import ExpressionMatrix
from dgex_core.models.knn import KNNModel
from dgex_core.models.linear import LinearModel
from dgex_core.predict import predict_file
from dgex_core.training import train_run

from .models.test_linear import _data


@pytest.mark.parametrize("family", [LinearModel, KNNModel])
def test_missing_landmarks_are_refused_or_imputed_with_training_means(family):
    ds = _data(n=300, seed=31)
    model = family().fit(ds)
    x = ds.landmarks[:5].copy()
    x[1, 3] = np.nan
    x[4, [0, 7]] = np.nan
    with pytest.raises(ModelError, match=r"missing .* in 2 samples"):
        model.predict(x)
    filled = x.copy()
    means = ds.landmarks.mean(axis=0)
    filled[np.isnan(x)] = np.broadcast_to(means, x.shape)[np.isnan(x)]
    np.testing.assert_allclose(model.predict(x, missing="impute"), model.predict(filled), rtol=1e-5, atol=1e-6)


def _plate(tmp_path, ds, n=25, nan_at=None):
    x = ds.landmarks[:n].astype(np.float32).copy()
    if nan_at is not None:
        x[nan_at] = np.nan
    m = ExpressionMatrix(x, [f"P{i}" for i in range(n)], ds.landmark_ids)
    from dgex_core.io import write

    return write(m, tmp_path / "plate.gctx")


def test_predict_file_records_imputation_and_flags(tmp_path):
    ds = _data(n=300, seed=32)
    run = train_run(ds, LinearModel(), "r")
    plate = _plate(tmp_path, ds, nan_at=(2, 4))
    with pytest.raises(ModelError, match="--missing impute"):
        predict_file(run, plate, tmp_path / "out.gctx")
    assert not (tmp_path / "out.gctx").exists()
    s = predict_file(run, plate, tmp_path / "out.gctx", missing="impute", block_size=7)
    assert s["samples"] == 25 and s["samples_imputed"] == 1
    out = read(tmp_path / "out.gctx")
    assert out.sample_meta["n_imputed"].tolist() == [0, 0, 1] + [0] * 22
    assert np.isnan(out.values[2, 4])  # the measured value stays missing; targets are inferred
    assert np.isfinite(out.values[2, ds.n_landmarks:]).all()


@pytest.mark.parametrize("fmt", ["parquet", "csv", "tsv", "gct", "gctx"])
def test_block_writers_write_every_block_and_the_gene_metadata(tmp_path, fmt):
    genes = pd.Index(["g1", "g2", "g3"])
    meta = pd.DataFrame({"role": ["measured", "inferred", "inferred"], "well_inferred": [True, True, False]},
                        index=genes)
    blocks = [ExpressionMatrix(np.full((2, 3), i, np.float32), [f"s{2 * i}", f"s{2 * i + 1}"], genes,
                               pd.DataFrame({"ood_score": [0.5, 2.0]}, index=[f"s{2 * i}", f"s{2 * i + 1}"]))
              for i in range(3)]
    path = tmp_path / f"out.{fmt}"
    with open_block_writer(path, genes, meta) as w:
        for b in blocks:
            w.append(b)
    if fmt in ("gct", "gctx"):
        m = read(path)
        assert m.shape == (6, 3) and m.values[5, 0] == 2
        assert m.gene_meta["role"].tolist() == meta["role"].tolist()
    elif fmt == "parquet":
        df = pd.read_parquet(path)
        assert df["sample"].tolist() == [f"s{i}" for i in range(6)] and df["g3"].tolist() == [0, 0, 1, 1, 2, 2]
        assert read_gene_meta_from_parquet(path)["well_inferred"].tolist() == [True, True, False]
    else:
        df = pd.read_csv(path, sep="\t" if fmt == "tsv" else ",")
        assert df.shape == (6, 5) and df["ood_score"].tolist() == [0.5, 2.0] * 3
        side = pd.read_csv(tmp_path / f"out.genes.{fmt}", sep="\t" if fmt == "tsv" else ",")
        assert side["role"].tolist() == meta["role"].tolist()


@pytest.mark.parametrize("fmt", ["parquet", "csv", "gctx"])
def test_a_failure_mid_write_leaves_no_output(tmp_path, fmt):
    genes = pd.Index(["g1", "g2"])
    path = tmp_path / f"out.{fmt}"
    with pytest.raises(RuntimeError), open_block_writer(path, genes) as w:
        w.append(ExpressionMatrix(np.ones((2, 2), np.float32), ["a", "b"], genes))
        raise RuntimeError("killed mid-write")
    assert list(tmp_path.iterdir()) == []


def test_infinite_values_are_refused_in_training_and_treated_as_missing_in_prediction():
    ds = _data(n=200, seed=33)
    bad = ds.subset()
    bad.targets[3, 2] = np.inf
    with pytest.raises(ModelError, match="infinite"):
        KNNModel().fit(bad)
    with pytest.raises(ModelError, match="infinite"):
        LinearModel().fit(bad)
    model = LinearModel().fit(ds)
    x = ds.landmarks[:2].copy()
    x[0, 1] = -np.inf
    with pytest.raises(ModelError, match="infinite"):
        model.predict(x)
    y = x.copy()
    y[0, 1] = np.nan
    np.testing.assert_array_equal(model.predict(x, missing="impute"), model.predict(y, missing="impute"))
