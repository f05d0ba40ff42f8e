"""Preprocessing steps: values against hand computations and scikit-learn, fit on train only,
and state round trips through files without pickle."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from scipy.stats import rankdata
from sklearn.preprocessing import StandardScaler

from dgex_core.errors import DatasetError, ModelError
from dgex_core.matrix import ExpressionMatrix
from dgex_core.preprocess import (
    Log2Transform,
    Pipeline,
    QuantileNormalizer,
    Standardizer,
    collapse_probes,
    looks_unlogged,
    step_from_state,
)

rng = np.random.default_rng(0)


def _roundtrip(step, tmp_path):
    """Save a fitted step's state as JSON + npz (no pickle) and rebuild it."""
    params, arrays = step.get_state()
    (tmp_path / "p.json").write_text(json.dumps(params))
    np.savez(tmp_path / "a.npz", **arrays)
    with np.load(tmp_path / "a.npz", allow_pickle=False) as z:
        return step_from_state(json.loads((tmp_path / "p.json").read_text()), dict(z))


def test_looks_unlogged_separates_counts_from_log2_microarray():
    counts = rng.negative_binomial(5, 0.01, size=(20, 500)).astype(float)
    log2 = rng.uniform(2, 14, size=(20, 500))
    assert looks_unlogged(counts)
    assert not looks_unlogged(log2)
    assert not looks_unlogged(np.log2(counts + 1))
    assert not looks_unlogged(rng.normal(0, 1, size=(5, 50)))


def test_log2_applies_to_counts_only_and_is_decided_at_fit():
    counts = rng.poisson(300, size=(10, 200)).astype(np.float32)
    step = Log2Transform().fit(counts)
    assert step.apply_
    np.testing.assert_allclose(step.transform(counts), np.log2(counts + 1), rtol=1e-6)
    logged = Log2Transform().fit(np.log2(counts + 1))
    assert not logged.apply_
    # decided on training data, applied as decided to anything afterwards
    small = np.ones((2, 200), np.float32)
    np.testing.assert_allclose(step.transform(small), 1.0)
    np.testing.assert_allclose(step.inverse_transform(step.transform(counts)), counts, rtol=1e-4)


def test_log2_refuses_negative_values():
    step = Log2Transform("always").fit(np.ones((2, 3)))
    with pytest.raises(DatasetError, match="negative values"):
        step.transform(np.array([[-5.0, 1.0, 2.0]]))


def test_standardizer_equals_sklearn_and_handles_constant_genes(tmp_path):
    X = rng.normal(5, 2, size=(50, 30)).astype(np.float32)
    X[:, 3] = 7.0
    st = Standardizer().fit(X)
    ref = StandardScaler().fit(X.astype(np.float64))
    np.testing.assert_allclose(st.mean_, ref.mean_, rtol=1e-6)
    np.testing.assert_allclose(st.transform(X), ref.transform(X.astype(np.float64)), atol=1e-5)
    assert st.n_constant_ == 1
    assert np.all(st.transform(X)[:, 3] == 0)
    assert st.transform(X).dtype == np.float32
    np.testing.assert_allclose(st.inverse_transform(st.transform(X)), X, atol=1e-5)
    back = _roundtrip(st, tmp_path)
    np.testing.assert_array_equal(back.transform(X), st.transform(X))


def test_standardizer_ignores_missing_values():
    X = np.array([[1.0, np.nan], [3.0, 4.0], [np.nan, 6.0]])
    st = Standardizer().fit(X)
    np.testing.assert_allclose(st.mean_, [2.0, 5.0])
    np.testing.assert_allclose(st.scale_, [1.0, 1.0])
    assert np.isnan(st.transform(X)[0, 1])


def test_standardizer_is_fitted_on_train_only():
    train, test = rng.normal(0, 1, (100, 5)), rng.normal(10, 3, (100, 5))
    st = Standardizer().fit(train)
    z = st.transform(test)
    # test data are not re-centred: their own mean survives
    assert np.all(z.mean(axis=0) > 5)


def test_unfitted_step_says_so():
    with pytest.raises(ModelError, match="not fitted"):
        Standardizer().transform(np.ones((2, 2)))


def test_wrong_gene_count_is_refused():
    st = Standardizer().fit(np.ones((3, 4)))
    with pytest.raises(DatasetError, match="fitted on 4 genes but got 5"):
        st.transform(np.ones((3, 5)))


def _quantile_reference_impl(train, X):
    """Textbook quantile normalization: mean of sorted training columns, mapped by average rank."""
    ref = np.sort(train, axis=1).mean(axis=0)
    out = np.empty_like(X, dtype=float)
    for i, row in enumerate(X):
        r = rankdata(row, method="average") - 1  # 0-based, ties averaged
        lo, hi = np.floor(r).astype(int), np.ceil(r).astype(int)
        out[i] = (ref[lo] + ref[hi]) / 2  # ties of 2 average two quantiles exactly
    return out


def test_quantile_normalizer_matches_textbook_without_ties(tmp_path):
    train = rng.lognormal(2, 1, size=(40, 100))
    qn = QuantileNormalizer().fit(train)
    out = qn.transform(train)
    # every training sample now has exactly the reference distribution, in its own order
    np.testing.assert_allclose(np.sort(out, axis=1), np.tile(qn.reference_, (40, 1)))
    np.testing.assert_array_equal(np.argsort(out, axis=1), np.argsort(train, axis=1))
    new = rng.normal(0, 1, size=(5, 100))
    np.testing.assert_allclose(qn.transform(new), _quantile_reference_impl(train, new))
    back = _roundtrip(qn, tmp_path)
    np.testing.assert_array_equal(back.transform(new), qn.transform(new))


def test_quantile_normalizer_averages_ties():
    qn = QuantileNormalizer().fit(np.array([[1.0, 2.0, 3.0, 4.0]]))
    out = qn.transform(np.array([[5.0, 5.0, 1.0, 9.0]]))
    np.testing.assert_allclose(out, [[2.5, 2.5, 1.0, 4.0]])


def test_quantile_normalizer_keeps_missing_values_missing():
    qn = QuantileNormalizer().fit(np.array([[1.0, 2.0, 3.0, 4.0, 5.0]]))
    out = qn.transform(np.array([[10.0, np.nan, 30.0, 20.0, 40.0]]))
    assert np.isnan(out[0, 1])
    # four values mapped onto the reference resampled to four quantiles: 1, 2.33, 3.67, 5
    np.testing.assert_allclose(out[0, [0, 3, 2, 4]], [1, 7 / 3, 11 / 3, 5])


def test_pipeline_round_trip_and_inverse(tmp_path):
    counts = rng.poisson(200, size=(30, 50)).astype(float)
    pipe = Pipeline([Log2Transform(), Standardizer()]).fit(counts[:20])
    z = pipe.transform(counts[20:])
    back = _roundtrip(pipe, tmp_path)
    np.testing.assert_array_equal(back.transform(counts[20:]), z)
    np.testing.assert_allclose(pipe.inverse_transform(z), counts[20:], rtol=1e-6)
    assert "Standardizer" in repr(back)


def test_unknown_step_in_state_is_refused():
    with pytest.raises(ModelError, match="unknown preprocessing step"):
        step_from_state({"step": "magic"}, {})


def test_collapse_probes_averages_probes_of_each_gene():
    m = ExpressionMatrix(
        np.array([[1.0, 3.0, 10.0, 7.0, 5.0], [2.0, np.nan, 20.0, 8.0, 6.0]], np.float32),
        ["s1", "s2"], ["p1", "p2", "p3", "p4", "p5"],
        gene_meta=pd.DataFrame({"sym": ["A", "A", "B", "A /// C", None]}, index=["p1", "p2", "p3", "p4", "p5"]),
    )
    out = collapse_probes(m, "sym")
    assert out.gene_ids.tolist() == ["A", "B"]
    np.testing.assert_allclose(out.values, [[2.0, 10.0], [2.0, 20.0]])  # NaN probe ignored
    assert out.gene_meta.loc["A", "n_probes"] == 2
    assert out.gene_meta.loc["A", "probes"] == "p1,p2"
    assert "2 probes dropped" in out.provenance.transforms[-1]
    with pytest.raises(DatasetError, match="several"):
        collapse_probes(m, "sym", drop_ambiguous=False)


def test_collapse_real_gpl96_to_dgex_genes(gpl96_bladder, real_dir):
    """D-GEX's setup: landmark probes and target probes collapsed to genes, each with its own map."""
    from dgex_core.io import read
    from dgex_core.io.sheets import read_gene_map

    probes = read(gpl96_bladder)
    lm_map = read_gene_map(real_dir / "dgex_landmarks_gpl96.tsv", gene_key="ensembl")
    tg_map = read_gene_map(real_dir / "dgex_targets_gpl96.tsv", gene_key="ensembl")
    landmarks = collapse_probes(probes.subset(genes=lm_map.index), lm_map)
    targets = collapse_probes(probes.subset(genes=tg_map.index), tg_map)
    assert (landmarks.n_samples, landmarks.n_genes, targets.n_genes) == (57, 943, 9520)
    # a gene's value is the mean of its probes, checked by hand for one multi-probe gene
    multi = targets.gene_meta.index[targets.gene_meta["n_probes"] > 1][0]
    its = targets.gene_meta.loc[multi, "probes"].split(",")
    np.testing.assert_allclose(targets.subset(genes=[multi]).values[:, 0],
                               probes.subset(genes=its).values.mean(axis=1), rtol=1e-5)


def test_streaming_fit_over_blocks_equals_one_shot():
    X = rng.lognormal(2, 1, size=(500, 20))
    one = Pipeline([Log2Transform(), QuantileNormalizer(), Standardizer()]).fit(X)
    blocks = Pipeline([Log2Transform(), QuantileNormalizer(), Standardizer()]).fit_blocks(
        lambda: (X[s:s + 64] for s in range(0, 500, 64)))
    new = rng.lognormal(2, 1, size=(7, 20))
    np.testing.assert_allclose(blocks.transform(new), one.transform(new), rtol=1e-9, atol=1e-12)


def test_standardizer_merge_of_two_shares_equals_one_fit():
    """Two ranks' statistics (each fitted on its own share, about its own shift) merged
    give the mean and sd of all the samples, missing values included."""
    from dgex_core.preprocess import Standardizer

    rng = np.random.default_rng(7)
    X = rng.normal(50, 3, size=(300, 6))
    X[rng.random(X.shape) < 0.05] = np.nan
    X[:, 5] = 2.0  # a constant gene
    whole = Standardizer().fit(X)
    a, b = Standardizer().partial_fit(X[:120]).partial_fit(X[120:200]), Standardizer().fit(X[200:])
    merged = Standardizer().merge(a).merge(Standardizer()).merge(b)
    np.testing.assert_allclose(merged.mean_, whole.mean_, rtol=1e-13)
    np.testing.assert_allclose(merged.scale_, whole.scale_, rtol=1e-11)
    assert merged.n_constant_ == whole.n_constant_ == 1
