"""One battery over every model family (the scikit-learn checks run over them in
test_sklearn.py): fit on a training split with a validation split, predict by gene id
whatever the column order, save and load to the same predictions, clone to the same
settings unfitted, and refuse data that lack a landmark, naming how many."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone

from dgex_core.errors import ModelError
from dgex_core.models.factory import FAMILIES, make_model
from dgex_core.models.persist import load_model

from ..helpers import linear_data

#: Small settings per family (the network and its part in the choice: a few epochs).
SMALL = {"linear": {}, "knn": {"k_grid": [1, 3, 5]},
         "mlp": {"hidden": (16,), "max_epochs": 3, "device": "cpu", "batch_size": 64},
         "choice": {"parts": ("linear", "mlp"), "mlp": {"hidden": (16,), "max_epochs": 3, "device": "cpu"}}}


@pytest.fixture(scope="module")
def split():
    return linear_data(n=400, p=12, t=9, seed=3, nonlinear=True).split(seed=0)


@pytest.fixture(scope="module", params=FAMILIES)
def fitted(request, split):
    return request.param, make_model(request.param, **SMALL[request.param]).fit(split.train, split.val)


def test_every_family_is_in_the_battery():
    assert set(SMALL) == set(FAMILIES)


def test_predictions_cover_every_target_in_order(fitted, split):
    _family, model = fitted
    pred = model.predict_dataset(split.test)
    assert pred.shape == (split.test.n_samples, 9) and list(pred.columns) == list(split.test.target_ids)
    assert list(pred.index) == list(split.test.sample_ids) and np.isfinite(pred.to_numpy()).all()


def test_a_dataframe_is_matched_by_gene_id_whatever_its_column_order(fitted, split):
    _family, model = fitted
    X = pd.DataFrame(split.test.landmarks, index=split.test.sample_ids, columns=split.test.landmark_ids)
    shuffled = X[X.columns[::-1]].assign(extra_gene=1.0)  # reversed, and a gene the model does not use
    np.testing.assert_allclose(np.asarray(model.predict(shuffled)), np.asarray(model.predict(X)), rtol=0, atol=0)


def test_save_and_load_give_the_same_predictions(fitted, split, tmp_path):
    family, model = fitted
    back = load_model(model.save(tmp_path / family))
    assert type(back) is type(model) and back.get_params() == model.get_params()
    np.testing.assert_array_equal(back.predict_dataset(split.test).to_numpy(),
                                  model.predict_dataset(split.test).to_numpy())


def test_clone_keeps_the_settings_and_drops_the_fit(fitted):
    _family, model = fitted
    twin = clone(model)
    assert twin.get_params() == model.get_params() and not twin.is_fitted


def test_data_without_a_landmark_are_refused_naming_how_many(fitted, split):
    _family, model = fitted
    X = pd.DataFrame(split.test.landmarks, columns=split.test.landmark_ids).drop(columns=["L3", "L7"])
    with pytest.raises(ModelError, match="2 of the model's 12 landmarks are not columns of the data"):
        model.predict(X)
