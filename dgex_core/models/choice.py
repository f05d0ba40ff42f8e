"""Per-gene choice on validation: each target takes the family, or convex blend of
families, with the lowest validation error.

The parts (by default ridge regression and the D-GEX network; KNN-GE on request) are
fitted on the same training samples with the same preprocessing. Every candidate
blend ``sum_k w_k * prediction_k`` with weights on a simplex grid (step
``blend_step``; the pure parts first) is scored per target on the **validation**
samples, and each target keeps the candidate with the lowest validation MAE, ties going
to the earlier (purer) candidate. The pure parts are candidates, so on validation a
target is never worse than the better of its parts. Test samples play no part: the
choice is the model's, made inside :meth:`fit` from training and validation data only.
"""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import ModelError
from ..lazy import block_rows
from .base import Model, Progress
from .persist import register

__all__ = ["PART_FAMILIES", "ChoiceModel", "blend_grid"]

#: Families a choice can be made among.
PART_FAMILIES = ("linear", "knn", "mlp")


def blend_grid(n_parts: int, step: float) -> np.ndarray:
    """Convex weights (candidates x parts) on a simplex grid of ``step``: the pure parts
    first, then blends of two parts, then of three..., each group in a fixed order."""
    if not 0 < step <= 1 or abs(round(1 / step) - 1 / step) > 1e-9:
        raise ModelError(f"blend_step must divide 1 (1, 0.5, 0.25, 0.2, 0.1...), got {step!r}")
    m = round(1 / step)
    combos = [c for c in itertools.product(range(m + 1), repeat=n_parts) if sum(c) == m]
    combos.sort(key=lambda c: (sum(v > 0 for v in c), [-v for v in c]))
    return np.asarray(combos, np.float64) / m


@register
class ChoiceModel(Model):
    """A run that picks, per target, among model families on validation.

    Parameters
    ----------
    parts
        Families to choose among, from :data:`PART_FAMILIES` (default ridge regression
        and the network).
    blend_step
        Step of the convex-weight grid (0.25: pure parts, 75/25, 50/50 and 50/25/25
        blends); 1 picks one family per target, no blends.
    linear, knn, mlp
        Settings of each part (a dict of its ``__init__`` arguments); by default what
        ``dgex train --model FAMILY`` uses (ridge and k chosen on validation).
    input_transform
        Landmark preprocessing, shared by the parts.

    Attributes
    ----------
    parts_ : dict of str -> Model
        The fitted parts used by at least one target.
    weights_ : numpy.ndarray
        (n_targets, n_parts) convex weights per target, columns in ``part_names_`` order.
    part_names_ : list of str
    part_validation_mae_ : dict of str -> numpy.ndarray
        Each part's validation MAE per target (standardized units).
    validation_mae_ : numpy.ndarray
        The chosen blend's validation MAE per target.
    """

    family = "choice"

    def __init__(self, parts=("linear", "mlp"), blend_step: float = 0.25, linear: dict | None = None,
                 knn: dict | None = None, mlp: dict | None = None, input_transform: str = "none") -> None:
        super().__init__(input_transform)
        self.parts = parts
        self.blend_step = blend_step
        self.linear, self.knn, self.mlp = linear, knn, mlp

    # ------------------------------------------------------------------ parts
    def check_params(self) -> None:
        super().check_params()
        parts = self._part_list()
        bad = [p for p in parts if p not in PART_FAMILIES]
        if bad or not parts or len(set(parts)) != len(parts):
            raise ModelError(f"parts must name distinct families from {PART_FAMILIES}, got {self.parts}")
        blend_grid(len(parts), float(self.blend_step))
        for fam in parts:
            self.make_part(fam)  # checks its settings

    def _part_list(self) -> list[str]:
        return [self.parts] if isinstance(self.parts, str) else list(self.parts)

    def _needs_validation(self) -> bool:
        return True  # the choice is made on validation samples

    def make_part(self, family: str) -> Model:
        """An unfitted part with this model's settings for it (over the family's defaults,
        :data:`~dgex_core.models.factory.DEFAULTS`: what ``dgex train --model FAMILY`` uses)."""
        from .factory import make_model

        settings = dict(getattr(self, family) or {})
        if settings.pop("input_transform", self.input_transform) != self.input_transform:
            raise ModelError("set input_transform on the choice, not on a part: the parts share the preprocessing")
        return make_model(family, **settings)

    def _adopt(self, part: Model) -> Model:
        """Give a part this model's gene ids and fitted preprocessing."""
        part.landmark_ids_, part.target_ids_ = self.landmark_ids_, self.target_ids_
        part.input_pipeline_, part.target_scaler_ = self.input_pipeline_, self.target_scaler_
        part.n_train_ = self.n_train_
        return part

    # -------------------------------------------------------------------- fit
    def _fit_standardized(self, source, Xv, Yv, progress: Progress) -> None:
        if Xv is None or Yv is None:
            raise ModelError("a per-gene choice needs a validation set to choose on; pass val=")
        fitted = {}
        parts = self._part_list()
        for i, fam in enumerate(parts):
            part = self._adopt(self.make_part(fam))

            def step(s, total, metrics, i=i, fam=fam):
                return progress(s, total, {**(metrics or {}), "part": fam, "part_index": i, "n_parts": len(parts)})

            part._fit_standardized(source, Xv, Yv, step)
            fitted[fam] = part
        self.part_names_ = list(fitted)
        grid = blend_grid(len(parts), float(self.blend_step))
        scores, part_scores = self._score(fitted, grid, Xv, Yv)
        best = scores.argmin(axis=0)  # first minimum: the purer candidate on ties
        self.weights_ = grid[best]
        self.validation_mae_ = scores[best, np.arange(scores.shape[1])]
        self.part_validation_mae_ = dict(zip(self.part_names_, part_scores, strict=True))
        used = self.weights_.max(axis=0) > 0
        self.parts_ = {f: fitted[f] for f, u in zip(self.part_names_, used, strict=True) if u}

    def _score(self, fitted: dict, grid: np.ndarray, Xv, Yv) -> tuple[np.ndarray, np.ndarray]:
        """Validation MAE per candidate and target (candidates x targets), and per part."""
        n, t = Xv.shape[0], len(self.target_ids_)
        abs_sum = np.zeros((grid.shape[0], t))
        bs = max(1, block_rows(t * (len(fitted) + 2)))
        for s in range(0, n, bs):
            y = np.asarray(Yv[s:s + bs], np.float64)
            preds = [np.asarray(p._predict_standardized(Xv[s:s + bs]), np.float64) for p in fitted.values()]
            for c, w in enumerate(grid):
                blend = sum(wk * pk for wk, pk in zip(w, preds, strict=True) if wk)
                abs_sum[c] += np.abs(blend - y).sum(axis=0)
        scores = abs_sum / n
        return scores, scores[: len(fitted)]  # the pure parts lead the grid

    # ---------------------------------------------------------------- predict
    def _predict_standardized(self, Xz: np.ndarray) -> np.ndarray:
        out = None
        for fam, part in self.parts_.items():
            w = self.weights_[:, self.part_names_.index(fam)]
            p = np.asarray(part._predict_standardized(Xz), np.float64) * w
            out = p if out is None else out + p
        return out.astype(Xz.dtype if Xz.dtype in (np.float32, np.float64) else np.float64, copy=False)

    # ---------------------------------------------------------------- reading
    def choice_table(self) -> pd.DataFrame:
        """Per target: the weight of each part and ``uses``, the family (or blend, e.g.
        ``"linear 0.25 + mlp 0.75"``) it takes; index target ids."""
        self._check_fitted()
        df = pd.DataFrame(self.weights_, index=pd.Index(self.target_ids_, name="target"),
                          columns=[f"weight_{p}" for p in self.part_names_])
        df["uses"] = [" + ".join(p if w == 1 else f"{p} {w:g}" for p, w in zip(self.part_names_, row, strict=True)
                                 if w > 0) for row in self.weights_]
        return df

    def choice_summary(self) -> dict:
        """How many targets use each family or blend."""
        return self.choice_table()["uses"].value_counts().to_dict()

    # ------------------------------------------------------------------ saving
    def _state(self):
        state = {"part_names": self.part_names_, "parts": {},
                 "part_validation_mae": {k: v.tolist() for k, v in self.part_validation_mae_.items()},
                 "validation_mae": self.validation_mae_.tolist()}
        arrays = {"weights": np.asarray(self.weights_, np.float64)}
        for fam, part in self.parts_.items():
            params, arr = part._state()
            state["parts"][fam] = {"params": part.get_params(), "state": params}
            arrays.update({f"{fam}.{k}": v for k, v in arr.items()})
        return state, arrays

    def _save_files(self, folder: Path) -> None:
        for part in self.parts_.values():  # a KNN-GE part streamed from disk writes its training arrays
            part._save_files(folder)

    def _set_state(self, params, arrays):
        self.part_names_ = list(params["part_names"])
        self.weights_ = np.asarray(arrays["weights"], np.float64)
        if self.weights_.shape != (len(self.target_ids_), len(self.part_names_)):
            raise ModelError(f"saved choice weights have shape {self.weights_.shape}, expected "
                             f"({len(self.target_ids_)}, {len(self.part_names_)})")
        self.part_validation_mae_ = {k: np.asarray(v) for k, v in params.get("part_validation_mae", {}).items()}
        self.validation_mae_ = np.asarray(params.get("validation_mae", []))
        from .factory import family_class

        self.parts_ = {}
        for fam, saved in params["parts"].items():
            if fam not in PART_FAMILIES:
                raise ModelError(f"unknown part family {fam!r}")
            part = self._adopt(family_class(fam)(**saved["params"]))
            part._folder = getattr(self, "_folder", None)
            part._set_state(saved["state"], {k[len(fam) + 1:]: v for k, v in arrays.items()
                                             if k.startswith(f"{fam}.")})
            self.parts_[fam] = part
