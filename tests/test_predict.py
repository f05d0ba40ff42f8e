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
from dgex_core.prediction import predict_file
from dgex_core.training import train_run

from .helpers import linear_data as _data


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


# ------------------------------------------------------------------ float32 arithmetic, writer thread, outputs
def test_float32_linear_prediction_is_a_float32_gemm_matching_float64():
    ds = _data(n=400, seed=34)
    model = LinearModel(alpha=1.0).fit(ds)
    x64 = ds.landmarks[:50]
    y64 = model.predict(x64)
    y32 = model.predict(x64.astype(np.float32))
    assert y64.dtype == np.float64 and y32.dtype == np.float32
    assert np.max(np.abs(y32 - y64)) / np.max(np.abs(y64)) < 1e-5
    w32 = model._weights32[2]
    assert w32.dtype == np.float32 and model.coef_.dtype == np.float64  # a lazy copy beside the float64 weights
    model.coef_ = model.coef_ * 2  # replaced weights are not served from the stale copy
    np.testing.assert_allclose(model.predict_standardized(x64[:3].astype(np.float32)),
                               model.predict_standardized(x64[:3]), rtol=1e-4, atol=1e-4)


def test_the_float32_weights_are_not_saved(tmp_path):
    from safetensors.numpy import load_file

    from dgex_core.models.persist import load_model

    ds = _data(n=300, seed=35)
    model = LinearModel().fit(ds)
    x = ds.landmarks[:5].astype(np.float32)
    before = model.predict(x)
    model.save(tmp_path / "m")
    assert sorted(load_file(str(tmp_path / "m" / "weights.safetensors"))) == ["coef", "intercept"]
    np.testing.assert_array_equal(load_model(tmp_path / "m").predict(x), before)


def test_standardizer_keeps_float32_and_writes_into_a_given_block():
    from dgex_core.preprocess import Standardizer

    rng = np.random.default_rng(0)
    X = rng.normal(5, 2, (40, 6))
    s = Standardizer().fit(X)
    z = s.transform(X.astype(np.float32))
    assert z.dtype == np.float32
    back = s.inverse_transform(z)
    assert back.dtype == np.float32
    np.testing.assert_allclose(back, X, rtol=1e-5)
    block = np.zeros((40, 9), np.float32)
    s.inverse_transform(z, out=block[:, 3:])
    np.testing.assert_array_equal(block[:, 3:], back)
    assert s.inverse_transform(z.astype(np.float64)).dtype == np.float64


@pytest.mark.parametrize("family", [LinearModel, KNNModel])
@pytest.mark.parametrize("nan_at", [None, (3, 2)])
def test_an_output_block_holds_the_landmarks_and_what_predict_gives(family, nan_at):
    from dgex_core.prediction import predict_matrix_block

    ds = _data(n=300, seed=36)
    run = train_run(ds, family(), "r")
    x = ds.landmarks[:20].astype(np.float32)
    if nan_at:
        x[nan_at] = np.nan
    block = ExpressionMatrix(x, [f"P{i}" for i in range(20)], ds.landmark_ids)
    out = predict_matrix_block(run, block, np.arange(ds.n_landmarks), missing="impute")
    assert out.values.dtype == np.float32 and out.values.flags.c_contiguous
    np.testing.assert_array_equal(out.values[:, :ds.n_landmarks], x)
    np.testing.assert_allclose(out.values[:, ds.n_landmarks:], run.model.predict(x, missing="impute"),
                               rtol=1e-5, atol=1e-5)
    assert out.gene_ids.tolist() == ds.landmark_ids.tolist() + ds.target_ids.tolist()


@pytest.fixture(scope="module")
def linear_run():
    ds = _data(n=300, seed=37)
    return ds, train_run(ds, LinearModel(), "r")


@pytest.mark.parametrize("fmt", ["gctx", "parquet", "csv", "tsv", "gct"])
def test_predict_file_writes_the_same_file_with_and_without_the_writer_thread(tmp_path, linear_run, fmt):
    ds, run = linear_run
    plate = _plate(tmp_path, ds, n=23)
    a = predict_file(run, plate, tmp_path / "bg" / f"out.{fmt}", block_size=5)
    b = predict_file(run, plate, tmp_path / "sync" / f"out.{fmt}", block_size=5, background=False)
    assert a["samples"] == b["samples"] == 23 and a["block_size"] == 5
    if fmt in ("parquet", "csv", "tsv"):
        assert (tmp_path / "bg" / f"out.{fmt}").read_bytes() == (tmp_path / "sync" / f"out.{fmt}").read_bytes()
    else:
        ma, mb = read(tmp_path / "bg" / f"out.{fmt}"), read(tmp_path / "sync" / f"out.{fmt}")
        np.testing.assert_array_equal(ma.values, mb.values)
        pd.testing.assert_frame_equal(ma.sample_meta, mb.sample_meta)


@pytest.mark.parametrize("compression", ["none", "gzip", "lzf"])
def test_gctx_predictions_read_back_equal_whatever_the_compression(tmp_path, linear_run, compression):
    ds, run = linear_run
    plate = _plate(tmp_path, ds, n=30)
    s = predict_file(run, plate, tmp_path / "out.gctx", block_size=7, compression=compression)
    assert s["compression"] == compression
    out = read(tmp_path / "out.gctx")
    x = ds.landmarks[:30].astype(np.float32)
    np.testing.assert_array_equal(out.values[:, :ds.n_landmarks], x)
    np.testing.assert_allclose(out.values[:, ds.n_landmarks:], run.model.predict(x), rtol=1e-5, atol=1e-5)
    assert out.gene_meta["role"].value_counts().to_dict() == {"inferred": ds.n_targets, "measured": ds.n_landmarks}


def test_csv_predictions_carry_role_and_well_inferred_in_the_side_file(tmp_path, linear_run):
    ds, run = linear_run
    plate = _plate(tmp_path, ds, n=12)
    s = predict_file(run, plate, tmp_path / "out.csv")
    assert s["gene_meta"] == str(tmp_path / "out.genes.csv")
    table = pd.read_csv(tmp_path / "out.csv", index_col="sample")
    genes = pd.read_csv(s["gene_meta"], index_col="gene")
    gene_cols = [c for c in table.columns if c not in ("n_imputed", "n_clipped", "ood_score", "ood_flag")]
    assert genes.index.tolist() == gene_cols == ds.landmark_ids.tolist() + ds.target_ids.tolist()
    assert (genes.loc[ds.landmark_ids, "role"] == "measured").all()
    assert (genes.loc[ds.target_ids, "role"] == "inferred").all()
    assert genes.loc[ds.target_ids, "well_inferred"].tolist() == run.well_inferred().tolist()
    # joined by column name, as a user would
    inferred_well = genes.index[(genes["role"] == "inferred") & genes["well_inferred"]]
    assert table[inferred_well].shape == (12, int(run.well_inferred().sum()))


def test_a_writer_thread_failure_in_predict_file_surfaces_and_leaves_no_output(tmp_path, linear_run, monkeypatch):
    from dgex_core.export.rows import _Rows

    ds, run = linear_run
    plate = _plate(tmp_path, ds, n=40)
    calls = []

    def failing(self, block):
        calls.append(1)
        if len(calls) == 3:
            raise OSError(28, "No space left on device")

    monkeypatch.setattr(_Rows, "append", failing)
    with pytest.raises(OSError, match="No space left"):
        predict_file(run, plate, tmp_path / "out.csv", block_size=4)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["plate.gctx"]


def test_the_default_block_is_sized_in_bytes_and_block_size_overrides_it(tmp_path, linear_run, monkeypatch):
    from dgex_core.prediction import default_block_size

    assert default_block_size(978 + 21_305) == 1310  # 5 GCTX chunks of 262 samples, ~117 MB of float32
    assert default_block_size(978 + 21_305) * (978 + 21_305) * 4 <= 128 * 2**20
    monkeypatch.setenv("DGEX_BLOCK_MB", "1")
    assert default_block_size(978 + 21_305) == 11  # under one chunk: no rounding
    ds, run = linear_run
    plate = _plate(tmp_path, ds, n=10)
    assert predict_file(run, plate, tmp_path / "a.gctx")["block_size"] == default_block_size(ds.n_landmarks + ds.n_targets)
    assert predict_file(run, plate, tmp_path / "b.gctx", block_size=3)["block_size"] == 3


def test_a_compression_the_format_does_not_take_is_refused_before_any_work(tmp_path, linear_run):
    ds, run = linear_run
    plate = _plate(tmp_path, ds, n=5)
    with pytest.raises(ValueError, match="csv output takes compression none"):
        predict_file(run, plate, tmp_path / "out.csv", compression="gzip")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["plate.gctx"]


def test_an_unreadable_input_surfaces_from_the_reader_thread_and_leaves_no_output(tmp_path, linear_run):
    from dgex_core.errors import DgexError

    _, run = linear_run
    bad = tmp_path / "bad.gctx"
    bad.write_bytes(b"\x89HDF\r\n\x1a\n" + b"\0" * 64)  # an HDF5 signature and nothing behind it
    with pytest.raises(DgexError):
        predict_file(run, bad, tmp_path / "out.gctx")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.gctx"]


def test_the_reader_thread_stops_and_closes_its_input_when_the_caller_stops():
    from dgex_core.prediction.apply import _Prefetch

    closed = []

    def items():
        try:
            yield from range(100)
        finally:
            closed.append(True)

    reader = _Prefetch(items())
    got = []
    for i in reader:
        got.append(i)
        if i == 3:
            break
    reader.close()
    assert got == [0, 1, 2, 3] and closed == [True]


def test_inferred_values_are_clipped_to_the_training_range_and_counted(tmp_path, linear_run):
    ds, run = linear_run
    lo, hi = run.target_range()
    assert lo == pytest.approx(ds.targets.min()) and hi == pytest.approx(ds.targets.max())  # 240 training rows < 2,000
    x = (ds.landmarks[:20] * 4).astype(np.float32)  # far outside the training landmarks: extrapolates
    from dgex_core.io import write

    plate = write(ExpressionMatrix(x, [f"P{i}" for i in range(20)], ds.landmark_ids), tmp_path / "far.gctx")
    # x 4 looks unlogged to the scale check, which would refuse it: asked for as it is
    s = predict_file(run, plate, tmp_path / "clip.gctx", block_size=6, normalize="none")
    raw = predict_file(run, plate, tmp_path / "raw.gctx", clip=False, normalize="none")
    assert raw["values_clipped"] == 0 and raw["clip_range"] is None
    m, r = read(tmp_path / "clip.gctx"), read(tmp_path / "raw.gctx")
    want = run.model.predict(x)
    np.testing.assert_allclose(r.values[:, ds.n_landmarks:], want, rtol=1e-5, atol=1e-4)
    outside = (want < lo) | (want > hi)
    assert outside.any() and s["values_clipped"] == int(outside.sum())
    assert s["samples_clipped"] == int(outside.any(axis=1).sum()) and s["clip_range"] == (lo, hi)
    np.testing.assert_array_equal(m.sample_meta["n_clipped"].to_numpy(), outside.sum(axis=1))
    got = m.values[:, ds.n_landmarks:]
    np.testing.assert_allclose(got, np.clip(r.values[:, ds.n_landmarks:], lo, hi), rtol=1e-6)  # other blocks: BLAS rounding
    assert got.min() == np.float32(lo) and got.max() == np.float32(hi)
    np.testing.assert_array_equal(m.values[:, :ds.n_landmarks], x)  # measured values never clipped
    assert m.gene_meta["clip_low"].isna().sum() == ds.n_landmarks
    assert (m.gene_meta.loc[ds.target_ids, "clip_low"] == lo).all()
    assert "clip_low" not in r.gene_meta


def test_a_run_without_a_recorded_range_is_not_clipped(tmp_path, linear_run):
    ds, run = linear_run
    import copy

    old = copy.copy(run)
    old.config = {k: v for k, v in run.config.items() if k != "target_range"}
    assert old.target_range() is None
    s = predict_file(old, _plate(tmp_path, ds, n=5), tmp_path / "o.gctx")
    assert s["clip_range"] is None and s["values_clipped"] == 0


def test_a_run_trained_on_counts_predicts_from_counts_normalized_as_it_was_trained(tmp_path):
    """A run trained with log2 CPM (ARCHS4 counts) applies it to the input too: counts in,
    the same predictions as from the normalized profiles; the measured landmarks come
    out in log2 CPM. normalize="none" would feed raw counts to the model (the old bug)."""
    from dgex_core.dataset import Dataset
    from dgex_core.io import write
    from dgex_core.preprocess import LOG2CPM, log2_cpm

    rng = np.random.default_rng(9)
    lib = rng.uniform(5e5, 5e6, size=(200, 1))
    share = rng.dirichlet(np.ones(40), size=200)
    counts = np.round(lib * share).astype(np.float32)
    genes = [f"L{i}" for i in range(15)] + [f"T{i}" for i in range(25)]
    m = ExpressionMatrix(counts, [f"S{i}" for i in range(200)], genes)
    normed = m.with_values(log2_cpm(m.values), LOG2CPM)
    run = train_run(Dataset.from_matrix(normed, genes[:15]), LinearModel(), "counts")
    assert run.config["normalize"] == "log2cpm"
    # the input file holds every gene's counts (the library size is the sample's own total)
    write(m, tmp_path / "counts.gct")
    write(normed, tmp_path / "normed.gct")
    predict_file(run, tmp_path / "counts.gct", tmp_path / "a.parquet")
    predict_file(run, tmp_path / "normed.gct", tmp_path / "b.parquet", normalize="none")
    a, b = read(tmp_path / "a.parquet"), read(tmp_path / "b.parquet")
    np.testing.assert_allclose(a.values, b.values, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(a.values[:, :15], normed.values[:, :15], rtol=1e-4, atol=1e-4)


@pytest.mark.slow
def test_a_real_l1000_plate_predicted_by_a_gpl96_run_stays_in_the_training_range(tmp_path, gpl96_bladder,
                                                                                  l1000_plate):
    """The README's workflow: linear regression on 57 GPL96 arrays (2.8-14), applied to the
    A375 L1000 plate, inferred -5.0 to 20.2 before clipping; now every inferred value lies
    in the training targets' range and each sample counts its clipped values."""
    from dgex_core.dataset import Dataset
    from dgex_core.landmarks import read_landmarks

    ds = Dataset.from_matrix(read(gpl96_bladder), read_landmarks(l1000_plate))
    run = train_run(ds, LinearModel(), "gpl96")
    lo, hi = run.target_range()
    s = predict_file(run, l1000_plate, tmp_path / "inf.parquet")
    m = read(tmp_path / "inf.parquet")
    inferred = m.values[:, ds.n_landmarks:]
    assert m.n_samples == 371 and inferred.min() >= np.float32(lo) and inferred.max() <= np.float32(hi)
    assert s["values_clipped"] == int(m.sample_meta["n_clipped"].sum()) > 0
    raw = predict_file(run, l1000_plate, tmp_path / "raw.parquet", clip=False)
    r = read(tmp_path / "raw.parquet").values[:, ds.n_landmarks:]
    assert raw["values_clipped"] == 0 and (r.min() < lo or r.max() > hi)
    assert int(((r < lo) | (r > hi)).sum()) == s["values_clipped"]
