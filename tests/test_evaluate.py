"""Per-gene metrics against scipy, streaming equals in-memory, summaries and comparisons."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.stats import pearsonr, spearmanr

from dgex_core.evaluation import (
    GeneErrorAccumulator,
    compare,
    per_gene_metrics,
    per_sample_mae,
    summarize,
)

rng = np.random.default_rng(0)


def test_per_gene_metrics_match_scipy_and_hand_computation():
    t = rng.normal(size=(200, 6))
    p = t + rng.normal(scale=0.5, size=t.shape)
    scale = np.array([1.0, 2.0, 0.5, 1.0, 3.0, 1.0])
    df = per_gene_metrics(t, p, list("abcdef"), scale=scale, noise_floor=np.full(6, 0.1))
    np.testing.assert_allclose(df["mae"], np.abs(t - p).mean(0))
    np.testing.assert_allclose(df["mae_z"], np.abs(t - p).mean(0) / scale)
    np.testing.assert_allclose(df["rmse"], np.sqrt(((t - p) ** 2).mean(0)))
    for j, g in enumerate("abcdef"):
        assert df.loc[g, "pearson"] == pytest.approx(pearsonr(t[:, j], p[:, j])[0], abs=1e-10)
        assert df.loc[g, "spearman"] == pytest.approx(spearmanr(t[:, j], p[:, j])[0], abs=1e-10)
    np.testing.assert_allclose(df["floor_z"], 0.1 / scale)


def test_accumulator_over_blocks_equals_one_shot():
    t, p = rng.normal(size=(333, 4)), rng.normal(size=(333, 4))
    acc = GeneErrorAccumulator(4)
    for s in range(0, 333, 50):
        acc.update(t[s:s + 50], p[s:s + 50])
    one = GeneErrorAccumulator(4).update(t, p)
    pd.testing.assert_frame_equal(acc.compute(), one.compute(), rtol=1e-10)


def test_constant_gene_has_no_correlation():
    t = np.column_stack([np.ones(10), np.arange(10.0)])
    df = per_gene_metrics(t, t + 0.1, ["flat", "ramp"])
    assert np.isnan(df.loc["flat", "pearson"]) and df.loc["ramp", "pearson"] == pytest.approx(1.0)


def test_summary_groups_and_floor():
    df = pd.DataFrame({"mae": [1.0, 2.0, 3.0, 4.0], "mae_z": [0.1, 0.2, 0.3, 0.4], "pearson": [0.9, 0.8, 0.7, 0.6],
                       "floor_z": [0.1, 0.1, 0.2, 0.2]}, index=list("abcd"))
    s = summarize(df, by=pd.Series([True, True, False, False], index=list("abcd")))
    assert s["mean_mae"] == pytest.approx(0.25) and s["mean_floor"] == pytest.approx(0.15)
    assert s["ratio_to_floor"] == pytest.approx(0.25 / 0.15)
    assert s["groups"]["True"]["mean_mae"] == pytest.approx(0.15)
    assert s["groups"]["False"]["ratio_to_floor"] == pytest.approx(0.35 / 0.2)


def test_compare_matches_genes_by_id():
    base = pd.DataFrame({"mae_z": [0.4, 0.4, 0.4]}, index=["a", "b", "c"])
    other = pd.DataFrame({"mae_z": [0.3, 0.5, 0.2, 9.9]}, index=["c", "b", "a", "zzz"])
    c = compare(base, other)
    assert c["n_genes"] == 3
    assert c["share_genes_improved"] == pytest.approx(2 / 3)
    assert c["relative_improvement"] == pytest.approx((0.4 - (0.2 + 0.5 + 0.3) / 3) / 0.4)


def test_per_sample_mae():
    s = per_sample_mae(np.zeros((2, 2)), np.array([[1.0, 3.0], [2.0, 2.0]]), ["x", "y"], scale=np.array([1.0, 3.0]))
    assert s.tolist() == [1.0, pytest.approx(4 / 3)]


def test_spearman_by_sorted_rows_equals_scipy_with_ties_nan_and_constants():
    from scipy.stats import rankdata

    from dgex_core.evaluation.metrics import _spearman_columns

    rng = np.random.default_rng(4)
    t = np.round(rng.normal(size=(300, 70)), 1)  # many ties
    p = rng.normal(size=(300, 70)) + t
    t[5, 7] = np.nan
    t[:, 9] = 3.0
    p[:, 11] = np.round(p[:, 11])
    rt, rp = rankdata(t, axis=0), rankdata(p, axis=0)
    rt -= rt.mean(0)
    rp -= rp.mean(0)
    with np.errstate(invalid="ignore", divide="ignore"):
        want = (rt * rp).sum(0) / np.sqrt((rt * rt).sum(0) * (rp * rp).sum(0))
    got = _spearman_columns(t, p, block=16)
    np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
    assert np.isnan(got[[7, 9]]).all()
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-12, equal_nan=True)
