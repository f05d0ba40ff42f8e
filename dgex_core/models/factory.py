"""One place that turns a family name and settings into an unfitted model: the CLI
(``dgex train --model``), the dashboard's Train page and the per-gene choice's parts all
build models here, with the same defaults."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..errors import ModelError

if TYPE_CHECKING:  # the module stays light: the CLI reads FAMILIES before any model is needed
    from .base import Model

__all__ = ["DEFAULTS", "FAMILIES", "family_class", "make_model"]

#: The families, in the order the CLI and the dashboard offer them.
FAMILIES = ("linear", "knn", "mlp", "choice")

#: What a family gets unless told otherwise: settings chosen on validation samples.
DEFAULTS: dict[str, dict] = {"linear": {"alphas": "auto"}, "knn": {"k_grid": "auto"}, "mlp": {}, "choice": {}}


def family_class(family: str) -> type[Model]:
    """The model class of a family of :data:`FAMILIES`."""
    return _classes()[family]


def _classes() -> dict[str, type[Model]]:
    from .choice import ChoiceModel
    from .knn import KNNModel
    from .linear import LinearModel
    from .mlp import MLPModel

    return {"linear": LinearModel, "knn": KNNModel, "mlp": MLPModel, "choice": ChoiceModel}


def make_model(family: str, **settings) -> Model:
    """An unfitted ``family`` model with ``settings`` over :data:`DEFAULTS`, its settings checked.

    Raises
    ------
    ModelError
        If the family is unknown, a setting is not one the family takes, or a value is out of range.
    """
    if family not in FAMILIES:
        raise ModelError(f"model family must be one of {FAMILIES}, got {family!r}")
    try:
        model = _classes()[family](**{**DEFAULTS[family], **settings})
    except TypeError as e:
        raise ModelError(f"bad {family} setting: {e}") from None
    model.check_params()
    return model
