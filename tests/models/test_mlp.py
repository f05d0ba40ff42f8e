"""The D-GEX network: learns what linear regression cannot, early stopping, determinism,
checkpoint resume, target groups, save/load."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from dgex_core.dataset import Dataset
from dgex_core.errors import ModelError
from dgex_core.matrix import ExpressionMatrix
from dgex_core.models.linear import LinearModel
from dgex_core.models.mlp import MLPModel, build_network
from dgex_core.models.persist import load_model


def _nonlinear(n=1500, p=12, t=6, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(0, 1, size=(n, p))
    Y = np.column_stack([np.tanh(2 * X[:, j % p]) * 2 + X[:, (j + 1) % p] ** 2 for j in range(t)])
    Y += rng.normal(0, 0.1, size=Y.shape)
    genes = [f"L{i}" for i in range(p)] + [f"T{j}" for j in range(t)]
    m = ExpressionMatrix(np.hstack([X + 8, Y + 6]).astype(np.float32), [f"S{i}" for i in range(n)], genes)
    return Dataset.from_matrix(m, genes[:p])


# 12 landmarks, each carrying its own signal: no landmark dropout (the default's 35% suits
# ~1,000 redundant landmarks)
SMALL = dict(hidden=(64,), max_epochs=60, patience=10, batch_size=64, lr=3e-3, dropout=0.0, device="cpu",
             input_dropout=0.0)


def _mae(model, ds):
    return np.abs(model.predict(ds.landmarks) - ds.targets).mean()


def test_network_beats_linear_on_nonlinear_targets():
    sp = _nonlinear().split(seed=0)
    net = MLPModel(**SMALL).fit(sp.train, sp.val)
    lin = LinearModel().fit(sp.train)
    assert _mae(net, sp.test) < 0.6 * _mae(lin, sp.test)
    assert net.history_ and net.best_epochs_[0] >= 1
    # the kept epoch is the best validation epoch
    best = min(h["val_mae"] for h in net.history_)
    assert next(h for h in net.history_ if h["epoch"] == net.best_epochs_[0])["val_mae"] == best


def test_training_is_deterministic_on_cpu():
    sp = _nonlinear(n=400).split(seed=1)
    a = MLPModel(**{**SMALL, "max_epochs": 5}).fit(sp.train, sp.val)
    b = MLPModel(**{**SMALL, "max_epochs": 5}).fit(sp.train, sp.val)
    np.testing.assert_array_equal(a.predict(sp.test.landmarks), b.predict(sp.test.landmarks))
    c = MLPModel(**{**SMALL, "max_epochs": 5, "seed": 1}).fit(sp.train, sp.val)
    assert not np.array_equal(a.predict(sp.test.landmarks), c.predict(sp.test.landmarks))


def test_resume_from_checkpoint_equals_uninterrupted(tmp_path):
    sp = _nonlinear(n=400).split(seed=2)
    settings = {**SMALL, "max_epochs": 6, "dropout": 0.1}
    full = MLPModel(**settings).fit(sp.train, sp.val)
    ck = tmp_path / "ck"

    class Interrupt(Exception):
        pass

    def stop_at_3(epoch, total, metrics):
        if epoch == 3:
            raise Interrupt

    with pytest.raises(Interrupt):
        MLPModel(**settings, checkpoint_dir=str(ck)).fit(sp.train, sp.val, progress=stop_at_3)
    assert (ck / "checkpoint-group0.safetensors").exists()
    resumed = MLPModel(**settings, checkpoint_dir=str(ck)).fit(sp.train, sp.val)
    assert [h["epoch"] for h in resumed.history_] == [1, 2, 3, 4, 5, 6]
    np.testing.assert_allclose(resumed.predict(sp.test.landmarks), full.predict(sp.test.landmarks), rtol=1e-6, atol=1e-6)


def test_checkpoint_with_other_settings_is_refused(tmp_path):
    sp = _nonlinear(n=300).split(seed=3)
    MLPModel(**{**SMALL, "max_epochs": 1}, checkpoint_dir=str(tmp_path)).fit(sp.train, sp.val)
    with pytest.raises(ModelError, match="other settings"):
        MLPModel(**{**SMALL, "max_epochs": 2, "lr": 0.1}, checkpoint_dir=str(tmp_path)).fit(sp.train, sp.val)


def test_target_groups_train_separate_networks(tmp_path):
    sp = _nonlinear(n=400, t=5).split(seed=4)
    m = MLPModel(**{**SMALL, "max_epochs": 3}, target_groups=2).fit(sp.train, sp.val)
    assert len(m.networks_) == 2 and m.target_groups_ == [[0, 1, 2], [3, 4]]
    assert m.networks_[1].body[-1].out_features == 2 and m.networks_[1].linear.out_features == 2
    back = load_model(m.save(tmp_path / "m"))
    np.testing.assert_array_equal(back.predict(sp.test.landmarks), m.predict(sp.test.landmarks))
    assert (tmp_path / "m" / "weights.safetensors").exists()


def test_progress_can_stop_training():
    sp = _nonlinear(n=300).split(seed=5)
    m = MLPModel(**SMALL).fit(sp.train, sp.val, progress=lambda e, t, m: e >= 2)
    assert len(m.history_) == 2


def test_linear_network_architecture():
    net = build_network(10, 3, [7, 5], "relu", 0.25)
    shapes = [tuple(p.shape) for p in net.parameters()]
    assert shapes == [(7, 10), (7,), (5, 7), (5,), (3, 5), (3,)]
    assert any(isinstance(m, torch.nn.Dropout) for m in net)


def test_bad_settings_are_refused():
    with pytest.raises(ModelError, match="1 to 3"):  # checked when fitting, as scikit-learn wants
        MLPModel(hidden=(1, 2, 3, 4)).fit(_nonlinear(n=100))
    with pytest.raises(ModelError, match="n_samples = 1"):  # nothing to hold out for early stopping
        MLPModel(**SMALL).fit(_nonlinear(n=1))
