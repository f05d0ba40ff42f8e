"""One place that turns a family name and settings into an unfitted model: the CLI
(``dgex train --model``), the dashboard's Train page and the per-gene choice's parts all
build models here, with the same defaults."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..errors import ModelError

if TYPE_CHECKING:  # the module stays light: the CLI reads FAMILIES before any model is needed
    from .base import Model

__all__ = ["DEFAULTS", "FAMILIES", "family_class", "from_settings", "make_model"]

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


def from_settings(family: str, **settings) -> Model:
    """An unfitted model of ``family`` from the Train page's settings, checked (:func:`make_model`).

    ``linear``: ``alphas`` ("auto" or a list); ``knn``: ``k_grid``, ``metric``;
    ``mlp``: ``width`` and ``layers`` (``hidden = (width,) * layers``) and any other
    :class:`~dgex_core.models.mlp.MLPModel` setting; ``choice``: ``parts`` (families) and
    the ``mlp`` settings for its network part.
    """
    s = dict(settings)
    if family not in ("mlp", "choice"):
        return make_model(family, **s)
    parts = s.pop("parts", ("linear", "mlp"))
    width, layers = int(s.pop("width", 1000)), int(s.pop("layers", 1))
    net = {**s, "hidden": (width,) * layers}
    if family == "mlp":
        return make_model("mlp", **net)
    return make_model("choice", parts=parts, mlp=net if "mlp" in parts else None)
