"""One family factory for the CLI, the pages and the choice's parts: defaults, checks."""

from __future__ import annotations

import pytest

from dgex_core.errors import ModelError
from dgex_core.models.choice import ChoiceModel
from dgex_core.models.factory import DEFAULTS, FAMILIES, make_model
from dgex_core.models.factory import from_settings as page_model


def test_defaults_choose_settings_on_validation():
    assert make_model("linear").alphas == "auto" and make_model("knn").k_grid == "auto"
    assert make_model("linear", alphas=None).alphas is None
    assert set(FAMILIES) == set(DEFAULTS)
    part = ChoiceModel(parts=("linear", "knn")).make_part("knn")
    assert part.get_params() == make_model("knn").get_params()  # a part is what `--model knn` builds


@pytest.mark.parametrize("family,settings,message", [
    ("forest", {}, "must be one of"),
    ("mlp", {"hidden": (1, 2, 3, 4)}, "1 to 3"),
    ("mlp", {"nosuch": 1}, "bad mlp setting"),
    ("knn", {"metric": "manhattan"}, "euclidean"),
    ("choice", {"parts": ("linear", "forest")}, "distinct families"),
    ("choice", {"mlp": {"dropout": 2}}, "dropout"),
])
def test_bad_settings_are_refused_before_any_fit(family, settings, message):
    with pytest.raises(ModelError, match=message):
        make_model(family, **settings)


def test_the_pages_build_through_it():
    net = page_model("mlp", width=64, layers=2, max_epochs=3)
    assert net.hidden == (64, 64) and net.max_epochs == 3
    pick = page_model("choice", parts=["linear", "mlp"], width=32, layers=1)
    assert pick.mlp["hidden"] == (32,) and pick.parts == ["linear", "mlp"]
