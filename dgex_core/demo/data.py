"""The demo compendium as users hold it: :class:`DemoData`, the expression matrix
(samples x genes, landmarks then targets) beside the truth that made it, with views of its
parts and the landmarks x targets driver matrix.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

import numpy as np
import pandas as pd

from ..errors import DatasetError
from ..matrix import ExpressionMatrix
from .config import DemoConfig
from .truth import TARGET_KINDS, DemoTruth

__all__ = ["DemoData"]


@dataclass(frozen=True, eq=False)
class DemoData:
    """A demo compendium: the expression matrix and the truth behind it.

    Attributes
    ----------
    config
        The config it was generated from.
    matrix
        Samples x genes (landmarks first, then targets), float32, original log2 units.
        ``gene_meta`` columns: ``symbol`` (made up), ``role`` (``"landmark"`` /
        ``"target"``), ``program`` (landmarks: their program, -1 for housekeeping;
        targets: their primary driver program), ``kind`` (landmarks: ``"program"`` /
        ``"housekeeping"``; targets: one of :data:`TARGET_KINDS`), ``nonlinear``
        (bool), ``noise_sd`` (sd of the gene's own noise, original units),
        ``noise_floor_mae`` (targets: ``E|noise|``, the best achievable MAE in original
        units; NaN for landmarks), ``nonlinear_strength`` (targets: variance no linear
        model of the program scores explains, in units of the noise variance),
        ``drivers`` (targets: driver programs joined by ``;``, primary first) and
        ``direct_landmark`` (targets: the landmark id it depends on directly, or
        ``""``). ``sample_meta`` has ``tissue`` (``"tissue-03"``...).
    landmark_ids, target_ids
        The landmark (input) and target (output) gene ids, in matrix column order.
    truth
        The generating model: :meth:`true_targets` uses it.
    from_cache
        Whether :func:`load_demo` read it from the cache.
    """

    config: DemoConfig
    matrix: ExpressionMatrix
    landmark_ids: pd.Index
    target_ids: pd.Index
    truth: DemoTruth = field(repr=False)
    from_cache: bool = False

    # ------------------------------------------------------------------ views
    @property
    def landmark_values(self) -> np.ndarray:
        """Array (n_samples, n_landmarks), a view of :attr:`matrix`."""
        return self.matrix.values[:, : len(self.landmark_ids)]

    @property
    def target_values(self) -> np.ndarray:
        """Array (n_samples, n_targets), a view of :attr:`matrix`."""
        return self.matrix.values[:, len(self.landmark_ids) :]

    @property
    def target_meta(self) -> pd.DataFrame:
        """``gene_meta`` of the targets (indexed by target id)."""
        return self.matrix.gene_meta.loc[self.target_ids]

    @property
    def landmark_meta(self) -> pd.DataFrame:
        """``gene_meta`` of the landmarks (indexed by landmark id)."""
        return self.matrix.gene_meta.loc[self.landmark_ids]

    @property
    def nonlinear_targets(self) -> pd.Index:
        """Ids of the targets with a non-linear dependence on the landmarks."""
        meta = self.target_meta
        return self.target_ids[meta["nonlinear"].to_numpy(dtype=bool)]

    @property
    def noise_floor(self) -> pd.Series:
        """Best achievable MAE of each target in original log2 units (``E|noise|``), by target id."""
        return self.target_meta["noise_floor_mae"]

    @cached_property
    def driver_matrix(self) -> np.ndarray:
        """Bool array (n_landmarks, n_targets): True where the landmark feeds the target.

        A landmark feeds a target when it belongs to one of the target's driver
        programs (it enters that program's score) or is its direct landmark: exactly
        the landmarks on which the target's expected value has a non-zero partial
        derivative.
        """
        return _driver_matrix(self.truth)

    # ------------------------------------------------------------- for users
    def dataset(self):
        """The compendium as a :class:`~dgex_core.dataset.Dataset` (landmarks -> targets by id),
        with the truth columns (``noise_floor_mae``, ``nonlinear``, ``kind``...) in its
        target metadata."""
        from ..dataset import Dataset

        return Dataset.from_matrix(self.matrix, list(self.landmark_ids), targets=list(self.target_ids))

    def describe(self) -> str:
        """A few lines for people: size, value range, noise floor, kinds of targets."""
        v = self.landmark_values
        meta = self.target_meta
        floor = meta["noise_floor_mae"].astype(float)
        kinds = meta["kind"].value_counts()
        lines = [
            f"dgex demo (synthetic, seed {self.config.seed}){' from cache' if self.from_cache else ''}: "
            f"{self.matrix.n_samples:,} samples, {len(self.landmark_ids):,} landmarks, {len(self.target_ids):,} targets, "
            f"{self.config.n_tissues} tissues, {self.config.n_programs} programs",
            f"values (log2): 0.1%-99.9% range {np.quantile(v, 0.001):.1f}-{np.quantile(v, 0.999):.1f}",
            "targets: " + ", ".join(f"{kinds.get(k, 0):,} {k}" for k in TARGET_KINDS),
            f"noise floor (best achievable MAE, log2 units): mean {floor.mean():.3f}, "
            f"range {floor.min():.3f}-{floor.max():.3f}",
        ]
        return "\n".join(lines)

    # ---------------------------------------------------------------- truth
    def true_targets(self, landmarks: np.ndarray | None = None) -> np.ndarray:
        """Noiseless target values ``f(landmarks)``: the Bayes-optimal prediction.

        Parameters
        ----------
        landmarks
            Array (n_samples, n_landmarks) in original units, columns in
            :attr:`landmark_ids` order; default: this compendium's own landmarks.

        Returns
        -------
        numpy.ndarray
            Array (n_samples, n_targets), float64, columns in :attr:`target_ids` order.
            ``target_values - true_targets()`` is the noise that was drawn.

        Raises
        ------
        DatasetError
            If ``landmarks`` has the wrong number of columns.
        """
        x = self.landmark_values if landmarks is None else np.asarray(landmarks)
        if x.ndim != 2 or x.shape[1] != len(self.landmark_ids):
            raise DatasetError(
                f"landmarks must be an (n_samples, {len(self.landmark_ids)}) array in landmark order, got shape {x.shape}"
            )
        return self.truth.predict(x)


def _driver_matrix(truth: DemoTruth) -> np.ndarray:
    t, program = truth.targets, truth.landmarks.program
    k = truth.score_weights.shape[1]
    member = program[:, None] == np.arange(k)  # (n_landmarks, n_programs)
    uses = np.zeros((k, truth.n_targets), dtype=bool)
    for g, progs in enumerate(t.drivers):
        uses[list(progs), g] = True
    out = (member.astype(np.int32) @ uses.astype(np.int32)) > 0
    direct = np.flatnonzero(t.direct_landmark >= 0)
    out[t.direct_landmark[direct], direct] = True
    out.setflags(write=False)
    return out

