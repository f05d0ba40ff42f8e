"""The models are scikit-learn estimators: scikit-learn's own estimator checks run over
the linear and KNN-GE models, the network at a tiny size (with and without its linear
path) and the per-gene choice. Every check expected to fail is listed in ``EXPECTED``
with its reason (by :func:`_expected`); scikit-learn itself skips its array-API checks unless
``SCIPY_ARRAY_API=1`` is set."""

from __future__ import annotations

from sklearn.utils.estimator_checks import parametrize_with_checks

from dgex_core.models.choice import ChoiceModel
from dgex_core.models.knn import KNNModel
from dgex_core.models.linear import LinearModel
from dgex_core.models.mlp import MLPModel

TINY_NET = {"hidden": (8,), "max_epochs": 3, "batch_size": 16, "device": "cpu"}
ESTIMATORS = [LinearModel(), LinearModel(alphas="auto"), KNNModel(k=3), KNNModel(k_grid="auto"),
              MLPModel(**TINY_NET), MLPModel(**TINY_NET, linear_path="off", adaptive=False),
              ChoiceModel(parts=("linear", "knn", "mlp"), mlp=TINY_NET)]

def _expected(estimator) -> dict[str, str]:
    """Check name -> why it does not hold for that estimator."""
    if isinstance(estimator, KNNModel) and estimator.k_grid is not None:
        return {"check_regressors_train": "k is chosen on a held-out tenth (20 samples) of the check's 200-sample "
                                          "linear problem; KNN-GE averaging up to 40 neighbours in 10 dimensions "
                                          "stays below the check's R² of 0.5 there (KNNModel(k=3) passes)"}
    if isinstance(estimator, MLPModel) and estimator.linear_path == "off":
        return {"check_regressors_train": "three epochs of a plain 8-unit network do not reach the check's R² of "
                                          "0.5; the same network with its linear path (the default) does"}
    return {}


@parametrize_with_checks(ESTIMATORS, expected_failed_checks=_expected)
def test_sklearn_estimator_checks(estimator, check):
    check(estimator)
