"""Saving and loading fitted models, without pickle, and the registry of families.

:class:`PersistenceMixin` gives :class:`~dgex_core.models.base.Model` its ``save`` /
``load``: ``model.json`` holds the family, settings, ordered gene ids and small
state; ``weights.safetensors`` the model's arrays (weights, training profiles);
``preprocess.npz`` the fitted preprocessing (read back with ``allow_pickle=False``).
Families make themselves loadable by name with :func:`register`; :func:`load_model`
loads a saved model of any family.
"""

from __future__ import annotations

import inspect
import json
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from ..errors import ModelError
from ..preprocess import step_from_state

if TYPE_CHECKING:
    from .base import Model

__all__ = ["PersistenceMixin", "load_model", "register"]

_FAMILIES: dict[str, type[Model]] = {}


def register(cls: type[Model]) -> type[Model]:
    """Class decorator: make a family loadable by its ``family`` name."""
    _FAMILIES[cls.family] = cls
    return cls


class PersistenceMixin:
    """``save`` / ``load`` of a fitted :class:`~dgex_core.models.base.Model`, and the hooks
    a family implements for them (``_state``, ``_set_state``, ``_save_files``)."""

    def _state(self) -> tuple[dict, dict[str, np.ndarray]]:
        """Family-specific (params, arrays) of the fitted state."""
        raise NotImplementedError

    def _set_state(self, params: dict, arrays: dict[str, np.ndarray]) -> None:
        raise NotImplementedError

    def save(self, folder: str | Path) -> Path:
        """Write the fitted model into ``folder`` (created), without pickle.

        ``model.json`` holds the family, settings, ordered gene ids and small state;
        ``weights.safetensors`` the model's arrays (weights, training profiles);
        ``preprocess.npz`` the fitted preprocessing (read back with ``allow_pickle=False``).
        """
        from safetensors.numpy import save_file

        self._check_fitted()
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        pp, pa = self.input_pipeline_.get_state()
        tp, ta = self.target_scaler_.get_state()
        fp, fa = self._state()
        self._save_files(folder)
        meta = {
            "family": self.family,
            "params": self.get_params(),
            "landmark_ids": self.landmark_ids_.tolist(),
            "target_ids": self.target_ids_.tolist(),
            "n_train": int(self.n_train_),
            "single_target": bool(getattr(self, "single_target_", False)),
            "input_pipeline": pp,
            "target_scaler": tp,
            "state": fp,
        }
        np.savez(folder / "preprocess.npz", **{f"input.{k}": v for k, v in pa.items()},
                 **{f"target.{k}": v for k, v in ta.items()})
        save_file({k: np.ascontiguousarray(v) for k, v in fa.items()}, str(folder / "weights.safetensors"))
        (folder / "model.json").write_text(json.dumps(meta, indent=1))
        return folder

    #: Files a saved model consists of.
    FILES = ("model.json", "preprocess.npz", "weights.safetensors")

    @classmethod
    def load(cls, folder: str | Path) -> Model:
        """Read a model written by :meth:`save` (any family when called on :class:`Model`)."""
        from safetensors import SafetensorError
        from safetensors.numpy import load_file

        from .base import Model  # here, not at the top: base imports this module

        folder = Path(folder)
        try:
            meta = json.loads((folder / "model.json").read_text())
            with np.load(folder / "preprocess.npz", allow_pickle=False) as z:
                arrays = {k: z[k] for k in z.files}
            weights = load_file(str(folder / "weights.safetensors"))
        except FileNotFoundError as e:
            raise ModelError(f"{folder}: not a complete saved model ({Path(e.filename).name} is missing)") from None
        except (ValueError, KeyError, json.JSONDecodeError, OSError, SafetensorError) as e:
            raise ModelError(f"{folder}: the saved model is damaged ({e})") from None
        family = meta.get("family")
        if family not in _FAMILIES:
            raise ModelError(f"{folder}: unknown model family {family!r}; known: {sorted(_FAMILIES)}")
        klass = _FAMILIES[family]
        if cls is not Model and klass is not cls:
            raise ModelError(f"{folder}: holds a {family} model, not a {cls.family} model")
        params = meta.get("params")
        if not isinstance(params, dict):
            raise ModelError(f"{folder}: model.json has no \"params\" object (the run is damaged; train it again)")
        known = set(inspect.signature(klass.__init__).parameters) - {"self"}
        unknown = sorted(set(params) - known)
        if unknown:
            raise ModelError(f"{folder}: model.json has settings a {family} model does not take: {unknown} "
                             f"(written by another dgex version, or edited; known: {sorted(known)})")
        try:
            model = klass(**_as_given(klass, params))
            model.landmark_ids_ = pd.Index(meta["landmark_ids"], dtype=object)
            model.target_ids_ = pd.Index(meta["target_ids"], dtype=object)
            model.n_train_ = meta.get("n_train", 0)
            model.n_features_in_ = len(model.landmark_ids_)
            model.single_target_ = bool(meta.get("single_target", False))  # fitted on a 1-D y

            def sub(prefix):
                return {k[len(prefix):]: v for k, v in arrays.items() if k.startswith(prefix)}

            model.input_pipeline_ = step_from_state(meta["input_pipeline"], sub("input."))
            model.target_scaler_ = step_from_state(meta["target_scaler"], sub("target."))
            for what, step, n in (("input preprocessing", model.input_pipeline_, len(model.landmark_ids_)),
                                  ("target scaler", model.target_scaler_, len(model.target_ids_))):
                for part in getattr(step, "steps", [step]):
                    fitted = getattr(part, "n_genes_", n)
                    if fitted != n:
                        raise ModelError(f"its {what} ({type(part).__name__}) holds {fitted} genes but the model "
                                         f"lists {n}: the run folder is inconsistent")
            model._missing_params_ = sorted(known - set(params))  # settings an older dgex did not write
            model._folder = folder  # families with arrays in files of their own read them from here
            model._set_state(meta["state"], weights)
        except ModelError as e:
            raise ModelError(f"{folder}: the saved model is damaged ({e}); train it again") from None
        except (KeyError, TypeError, ValueError, AttributeError) as e:
            raise ModelError(f"{folder}: the saved model is damaged ({type(e).__name__}: {e}); train it again") from None
        return model

    def _save_files(self, folder: Path) -> None:
        """Write family arrays too large for ``weights.safetensors`` as files of their own (default: none)."""
        return None


def _as_given(klass, params: dict) -> dict:
    """``params`` read back from JSON with the types the settings have: a list where the
    family's default is a tuple becomes a tuple (``hidden=(256,)``, a choice's ``parts``),
    also inside a choice's ``mlp`` settings, so a loaded model's ``get_params()`` equals the saved one's."""
    defaults = {k: p.default for k, p in inspect.signature(klass.__init__).parameters.items() if k != "self"}
    out = {}
    for k, v in params.items():
        if isinstance(v, list) and isinstance(defaults.get(k), tuple):
            v = tuple(v)
        elif k == "mlp" and isinstance(v, dict):
            from .mlp import MLPModel

            v = _as_given(MLPModel, v)
        out[k] = v
    return out


def load_model(folder: str | Path) -> Model:
    """Load a saved model of any family."""
    from . import choice, knn, linear, mlp  # noqa: F401  (registers the families)
    from .base import Model

    return Model.load(folder)
