"""Importing a published linear model laid out like GSE92743_Broad_OLS_WEIGHTS_n979x11350.gctx."""

from __future__ import annotations

import numpy as np
import pytest

from dgex_core.errors import DataFormatError
from dgex_core.evaluation import evaluate_model
from dgex_core.io import write
from dgex_core.matrix import ExpressionMatrix
from dgex_core.models.lincs import import_linear_weights
from dgex_core.models.persist import load_model

from ..helpers import linear_data as _data


def _weights_file(tmp_path, ds, W, b, transpose=False, name="OLS_WEIGHTS_n41x25.gctx"):
    # the Broad layout: columns = 40 landmarks + OFFSET, rows = inferred genes (Entrez-like ids)
    cols = [*ds.landmark_ids, "OFFSET"]
    table = np.vstack([W, b[None, :]])  # (landmarks + 1) x targets = file columns x file rows
    m = ExpressionMatrix(table.astype(np.float64), cols, ds.target_ids)
    if transpose:
        m = ExpressionMatrix(table.T.astype(np.float64), ds.target_ids, cols)
    return write(m, tmp_path / name)


@pytest.mark.parametrize("transpose", [False, True])
def test_imported_weights_predict_like_the_formula(tmp_path, transpose):
    ds = _data(n=300, seed=21)
    rng = np.random.default_rng(0)
    W = rng.normal(0, 0.1, size=(ds.n_landmarks, ds.n_targets))
    b = rng.normal(5, 1, size=ds.n_targets)
    path = _weights_file(tmp_path, ds, W, b, transpose, name="w.gctx")
    model = import_linear_weights(path)
    # landmark order in the data differs from the file: predict_dataset matches by id
    shuffled = ds.subset(landmarks=ds.landmark_ids[::-1])
    want = ds.landmarks @ W + b
    np.testing.assert_allclose(model.predict_dataset(shuffled).to_numpy(), want, rtol=1e-5)
    coef = model.coefficients("original")
    np.testing.assert_allclose(coef.loc["(intercept)"].to_numpy(), b, rtol=1e-9)
    np.testing.assert_allclose(coef.drop(index="(intercept)").to_numpy(), W, rtol=1e-9, atol=1e-12)


def test_reference_gives_standardized_units_without_changing_predictions(tmp_path):
    ds = _data(n=300, seed=22)
    rng = np.random.default_rng(1)
    W, b = rng.normal(0, 0.1, size=(ds.n_landmarks, ds.n_targets)), rng.normal(5, 1, size=ds.n_targets)
    path = _weights_file(tmp_path, ds, W, b)
    plain, ref = import_linear_weights(path), import_linear_weights(path, reference=ds)
    np.testing.assert_allclose(ref.predict(ds.landmarks), plain.predict(ds.landmarks), rtol=1e-6)
    ev = evaluate_model(ref, ds)
    sd = ds.targets.std(axis=0)
    np.testing.assert_allclose(ev.per_gene["mae_z"], ev.per_gene["mae"] / sd, rtol=1e-6)
    back = load_model(ref.save(tmp_path / "run"))
    np.testing.assert_allclose(back.predict(ds.landmarks), plain.predict(ds.landmarks), rtol=1e-6)


def test_no_intercept_is_a_clear_error(tmp_path):
    m = ExpressionMatrix(np.ones((3, 2)), ["1", "2", "3"], ["10", "11"])
    path = write(m, tmp_path / "w.gct")
    with pytest.raises(DataFormatError, match="intercept"):
        import_linear_weights(path)
