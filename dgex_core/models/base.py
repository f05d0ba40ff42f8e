"""The protocol every model family follows, and what they share.

A model learns landmark -> target expression. ``fit(train, val=None, progress=None)``
takes :class:`~dgex_core.dataset.Dataset` objects and returns ``self``;
``predict(landmarks)`` takes a (n_samples, n_landmarks) array in the original units,
columns in the order of ``landmark_ids_``, and returns (n_samples, n_targets) in the
original units, columns in the order of ``target_ids_``; ``predict_dataset`` does the
same for any dataset by gene id. ``save(dir)`` / ``load(dir)`` write and read the
fitted state without pickle (JSON + npz / safetensors; see
:mod:`dgex_core.models.persist`).

Every model works in standardized units inside: landmarks and targets are each
standardized per gene with the training mean and sd (the D-GEX protocol), so a
fitted model carries those two :class:`~dgex_core.preprocess.Standardizer` objects
(and any input transform such as log2 or quantile normalization) and applies to a
new file without the training data.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import ClassVar

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, RegressorMixin
from sklearn.exceptions import NotFittedError

from ..dataset import Dataset
from ..errors import ModelError
from ..lazy import block_rows
from ..preprocess import Log2Transform, Pipeline, QuantileNormalizer, Standardizer
from .persist import PersistenceMixin
from .sources import ArraySource, StandardizedRows, StandardizedSource

__all__ = ["Model", "NotFittedModelError", "Progress"]


class NotFittedModelError(ModelError, NotFittedError):
    """A model used before it was fitted (scikit-learn's ``NotFittedError`` too)."""

#: A progress callback: ``progress(step, total, metrics)``; the CLI turns it into a bar,
#: the dashboard into a live chart. ``metrics`` is a small dict (epoch losses, k, alpha...).
Progress = Callable[[int, int, dict], None]


def _noop(step: int, total: int, metrics: dict) -> None:
    return None


def input_pipeline(transform: str) -> Pipeline:
    """The landmark preprocessing for a setting: ``"none"``, ``"log2"`` (auto-detected
    log2(x+1)), ``"quantile"`` or ``"log2+quantile"``; always ending in standardization."""
    steps = []
    parts = [] if transform in ("none", "", None) else transform.split("+")
    for p in parts:
        if p == "log2":
            steps.append(Log2Transform("auto"))
        elif p == "quantile":
            steps.append(QuantileNormalizer())
        else:
            raise ModelError(f"unknown input transform {p!r}; use none, log2, quantile or log2+quantile")
    return Pipeline([*steps, Standardizer()])


class Model(PersistenceMixin, RegressorMixin, BaseEstimator):
    """Base class: settings in ``__init__``, learned state in attributes ending in ``_``.

    A scikit-learn estimator: ``__init__`` only stores its arguments (they are checked
    by :meth:`check_params` when fitting), ``get_params`` / ``set_params`` / ``clone``
    work. Subclasses implement ``_fit_standardized(source, Xz_val, Yz_val, progress)``
    (``source`` yields standardized sample blocks) and ``_predict_standardized(Xz)``,
    plus ``_state()`` / ``_set_state()`` for saving.
    """

    family: ClassVar[str] = "base"

    def __init__(self, input_transform: str = "none") -> None:
        self.input_transform = input_transform

    # --------------------------------------------------------------- settings
    def check_params(self) -> None:
        """Raise :class:`ModelError` naming the first setting that is out of range (called
        by ``fit``; the CLI and the dashboard call it before loading any data)."""
        input_pipeline(self.input_transform)

    @property
    def is_fitted(self) -> bool:
        return hasattr(self, "target_ids_")

    def _check_fitted(self) -> None:
        if not self.is_fitted:
            raise NotFittedModelError(f"this {type(self).__name__} is not fitted yet: call fit(train, val) first")

    # -------------------------------------------------------------------- fit
    def fit(self, X, Y=None, val=None, progress: Progress | None = None) -> Model:
        """Learn landmarks -> targets; ``val`` picks settings / stops early.

        Parameters
        ----------
        X
            The training samples: a :class:`~dgex_core.dataset.Dataset` (its targets
            inside; ``fit(train, val)`` with two datasets also works), an AnnData
            (``var["role"]`` says landmark / target, or ``Y`` is a second AnnData), or
            samples x landmarks as an array, scipy-sparse matrix or DataFrame (columns
            gene ids) with ``Y`` samples x targets (a 1-D ``Y``: one target).
        val
            Validation samples of the same kind (for arrays: ``(X_val, Y_val)``). When a
            family needs them (the network; a ridge or k grid) and none are given, a
            seeded tenth of ``X`` is held out (:data:`~dgex_core.models.inputs.VALIDATION_FRACTION`).

        The preprocessing (input transform, per-gene standardization of landmarks and
        targets) is fitted on the training samples only and then applied to ``val``.

        Raises
        ------
        ModelError
            If there are no targets, missing values, or ``val`` does not have the same genes.
        """
        from .inputs import as_training_data

        if isinstance(X, Dataset) and isinstance(Y, Dataset) and val is None:
            Y, val = None, Y  # fit(train, val)
        train, val, one_d = as_training_data(self, X, Y, val)
        if not train.has_targets:
            raise ModelError("the training set has no target genes: nothing to learn")
        if val is not None and val.n_samples and not (
            val.landmark_ids.equals(train.landmark_ids) and val.target_ids.equals(train.target_ids)
        ):
            raise ModelError("validation and training sets must have the same landmarks and targets, in the same order")
        source = ArraySource(train.landmarks, train.targets, block_size=getattr(self, "block_size", 8192))
        has_val = val is not None and val.n_samples > 0
        self.fit_source(
            source, train.landmark_ids, train.target_ids,
            (val.landmarks, val.targets) if has_val else None, progress,
        )
        self.single_target_ = one_d
        return self

    def _needs_validation(self) -> bool:
        """Whether fitting needs validation samples (early stopping, a grid of settings)."""
        return False

    def __sklearn_is_fitted__(self) -> bool:
        return self.is_fitted

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        tags.target_tags.single_output = True
        tags.input_tags.sparse = True
        return tags

    def fit_source(
        self,
        source: ArraySource,
        landmark_ids,
        target_ids,
        val: tuple[np.ndarray, np.ndarray] | None = None,
        progress: Progress | None = None,
    ) -> Model:
        """Fit from training data read in sample blocks (memory, memory map or HDF5).

        ``val`` is (landmarks, targets) of the validation samples in original units,
        columns in the order of ``landmark_ids`` / ``target_ids``. Preprocessing is
        fitted by streaming passes over ``source``; the model then reads standardized
        blocks. The result is the same as :meth:`fit` on the same samples.
        """
        self.check_params()
        self._set_gene_ids(source, landmark_ids, target_ids)
        pipeline = input_pipeline(self.input_transform)
        self.target_scaler_ = Standardizer()
        if len(pipeline.steps) == 1:  # standardization only: both scalers from one pass over the data
            _fit_scalers(source, pipeline.steps[0], self.target_scaler_)
            pipeline.fitted_ = True
            self.input_pipeline_ = pipeline
        else:
            self.input_pipeline_ = pipeline.fit_blocks(lambda: (x for x, _ in source.blocks()))
            for _, y in source.blocks():
                self.target_scaler_.partial_fit(y)
        dtype = np.float64 if np.asarray(source.X[:1]).dtype == np.float64 else np.float32
        zsource = StandardizedSource(source, self.input_pipeline_.transform, self.target_scaler_.transform, dtype)
        Xv, Yv = self._validation(val, self.target_scaler_.transform, dtype)
        self.n_train_ = source.n_samples
        self._fit_standardized(zsource, Xv, Yv, progress or _noop)
        return self

    def _validation(self, val, target_transform, dtype):
        """Validation landmarks (standardized, in memory: samples x landmarks is small) and
        targets: standardized in memory, or a :class:`StandardizedRows` read by blocks when
        they stay on disk (a validation set of a large compendium is ~1 GB of targets)."""
        if val is None:
            return None, None
        Xv = self.standardize_landmarks(np.asarray(val[0])).astype(dtype, copy=False)
        if np.isnan(Xv).any():
            raise ModelError("the validation data have missing values (NaN); impute or drop them first")
        if isinstance(val[1], np.ndarray) and not isinstance(val[1], np.memmap):
            Yv = np.asarray(target_transform(val[1])).astype(dtype, copy=False)
            if np.isnan(Yv).any():
                raise ModelError("the validation data have missing values (NaN); impute or drop them first")
        else:
            Yv = StandardizedRows(val[1], target_transform, dtype)
        return Xv, Yv

    def _set_gene_ids(self, source: ArraySource, landmark_ids, target_ids) -> None:
        if len(landmark_ids) != source.n_landmarks or len(target_ids) != source.n_targets:
            raise ModelError(f"{len(landmark_ids)} landmark ids and {len(target_ids)} target ids given for data "
                             f"of {source.n_landmarks} landmarks and {source.n_targets} targets")
        self.landmark_ids_ = pd.Index([str(i) for i in landmark_ids], dtype=object)
        self.target_ids_ = pd.Index([str(i) for i in target_ids], dtype=object)
        self.n_features_in_ = len(self.landmark_ids_)

    def standardize_landmarks(self, landmarks: np.ndarray) -> np.ndarray:
        """Landmarks (n_samples, n_landmarks, original units) through the fitted input
        transforms into the model's standardized units."""
        X = self.input_pipeline_.transform(np.asarray(landmarks))
        return X.astype(np.float32 if X.dtype == np.float32 else np.float64, copy=False)

    def _fit_standardized(self, source: StandardizedSource, Xz_val, Yz_val, progress: Progress) -> None:
        raise NotImplementedError

    # ---------------------------------------------------------------- predict
    def predict(self, X, missing: str = "refuse"):
        """Targets in original units for the samples of ``X``.

        ``X``: samples x landmarks as an array or scipy-sparse matrix (columns in
        ``landmark_ids_`` order; returns an array, float64 for float64 input, 1-D when
        fitted on one 1-D target), a DataFrame (columns gene ids, matched by id; returns
        a samples x targets DataFrame; other column names count as positions, as in
        scikit-learn), a :class:`~dgex_core.dataset.Dataset` (a
        DataFrame) or an AnnData (an AnnData of the measured landmarks and the inferred
        targets, :func:`dgex_core.api.predict`).

        Parameters
        ----------
        missing
            What to do with missing (NaN) landmark values: ``"refuse"`` (raise
            :class:`ModelError`, the default) or ``"impute"`` (replace each by the
            landmark's training mean, i.e. 0 in standardized units).
        """
        from .inputs import is_anndata

        self._check_fitted()
        if isinstance(X, Dataset):
            return self.predict_dataset(X)
        if is_anndata(X):
            from ..api import predict

            return predict(self, X, missing=missing)
        if isinstance(X, pd.DataFrame) and all(isinstance(c, str) for c in X.columns):  # gene ids: by id
            pred = self.predict_landmarks(self.landmarks_of(X).to_numpy(), missing)
            if getattr(self, "single_target_", False):
                return pd.Series(pred[:, 0], index=X.index, name=self.target_ids_[0])
            return pd.DataFrame(pred, index=X.index, columns=self.target_ids_)
        from sklearn.utils.validation import validate_data

        Xa = validate_data(self, X, reset=False, accept_sparse=("csr", "csc"), dtype=(np.float64, np.float32),
                           ensure_all_finite=False)
        import scipy.sparse as sp

        Xa = Xa.toarray() if sp.issparse(Xa) else Xa
        pred = self.predict_landmarks(Xa, missing)
        pred = pred.astype(np.float64, copy=False) if Xa.dtype == np.float64 else pred
        return pred[:, 0] if getattr(self, "single_target_", False) else pred

    def landmarks_of(self, X: pd.DataFrame) -> pd.DataFrame:
        """The model's landmark columns of a samples x genes DataFrame (columns gene ids),
        in ``landmark_ids_`` order; raises :class:`ModelError` naming any that is absent."""
        pos = self.positions_in(X.columns, "are not columns of the data", "(columns must be gene ids)")
        return X.iloc[:, pos].set_axis(self.landmark_ids_, axis=1)

    def positions_in(self, ids, absent: str = "are absent from the data", hint: str = "") -> np.ndarray:
        """Position in ``ids`` (gene ids, matched as text) of each of the model's landmarks.

        Raises
        ------
        ModelError
            ``"<n> of the model's <m> landmarks <absent>, e.g. [...] <hint>"`` when some are missing.
        """
        pos = pd.Index(pd.Index(ids).astype(str)).get_indexer(self.landmark_ids_.astype(str))
        if (pos < 0).any():
            miss = self.landmark_ids_[pos < 0]
            raise ModelError(f"{len(miss)} of the model's {len(pos)} landmarks {absent}, e.g. {miss[:5].tolist()}"
                             + (f" {hint}" if hint else ""))
        return pos

    def predict_landmarks(self, landmarks: np.ndarray, missing: str = "refuse") -> np.ndarray:
        """Targets (n_samples, n_targets) in original units from landmarks (n_samples,
        n_landmarks, original units, columns in ``landmark_ids_`` order), unchecked
        beyond the shape: the fast path the pipeline uses; ``missing`` as in :meth:`predict`."""
        self._check_fitted()
        landmarks = np.asarray(landmarks)
        if landmarks.ndim != 2 or landmarks.shape[1] != len(self.landmark_ids_):
            raise ModelError(
                f"expected a samples x {len(self.landmark_ids_)} landmarks array, got shape {landmarks.shape}"
            )
        return self.target_scaler_.inverse_transform(self.predict_standardized(landmarks, missing))

    def predict_standardized(self, landmarks: np.ndarray, missing: str = "refuse") -> np.ndarray:
        """Predictions in standardized target units (n_samples, n_targets); ``missing`` as in :meth:`predict`."""
        self._check_fitted()
        if missing not in ("refuse", "impute"):
            raise ModelError(f"missing must be 'refuse' or 'impute', got {missing!r}")
        nan = ~np.isfinite(landmarks)  # infinite values count as missing
        if nan.any():
            if missing == "refuse":
                bad = np.flatnonzero(nan.any(axis=1))
                raise ModelError(
                    f"{int(nan.sum())} landmark values are missing (NaN) or infinite in {len(bad)} samples (e.g. sample "
                    f"positions {bad[:5].tolist()}); impute them with the training means (missing='impute', "
                    "--missing impute) or drop those samples"
                )
            z = self.standardize_landmarks(np.where(nan, np.nan, landmarks))
            z = np.where(np.isnan(z), 0.0, z).astype(z.dtype, copy=False)  # 0 = the training mean
            return self._predict_standardized(z)
        return self._predict_standardized(self.standardize_landmarks(landmarks))

    def _predict_standardized(self, Xz: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def predict_dataset(self, data: Dataset, block_size: int = 4096) -> pd.DataFrame:
        """Predict every target for every sample of ``data`` (matched by landmark id).

        Returns a samples x targets DataFrame in original units. Predicts in blocks of
        ``block_size`` samples.
        """
        self._check_fitted()
        out = np.empty((data.n_samples, len(self.target_ids_)), dtype=np.float32)
        for sl, pred in self.iter_predictions(data, block_size):
            out[sl] = pred
        return pd.DataFrame(out, index=data.sample_ids, columns=self.target_ids_)

    def landmark_positions(self, data: Dataset) -> np.ndarray:
        """Positions in ``data``'s landmarks of each of the model's landmarks (by id)."""
        return self.positions_in(data.landmark_ids)

    def iter_predictions(self, data: Dataset, block_size: int | None = None, *, with_targets: bool = False):
        """``(sample_slice, predictions)`` per block of samples of ``data`` (original units,
        float32, columns in ``target_ids_`` order); with ``with_targets`` also the block's
        measured targets: ``(slice, predictions, targets)``. A lazy dataset is read block by block."""
        self._check_fitted()
        pos = self.landmark_positions(data)
        bs = block_size or block_rows(data.n_landmarks + data.n_targets + len(self.target_ids_))
        for start in range(0, data.n_samples, bs):
            sl = slice(start, min(start + bs, data.n_samples))
            if with_targets:
                x, y = data.read_block(sl)
            else:
                x = np.asarray(data.landmarks[sl])
            pred = self.predict_landmarks(x[:, pos]).astype(np.float32, copy=False)
            yield (sl, pred, y) if with_targets else (sl, pred)


def _fit_scalers(source, x_scaler, y_scaler) -> None:
    """Fit the landmark and target standardizers in one pass over ``source``'s blocks;
    under torch DDP each rank passes over its own share of the blocks and the ranks'
    sums are merged in rank order (the same statistics on every rank)."""
    from ..distributed import ddp

    rank, world = ddp.world()
    if world == 1:
        for x, y in source.blocks():
            x_scaler.partial_fit(x)
            y_scaler.partial_fit(y)
        return
    from ..distributed.sums import rank_blocks

    for x, y in rank_blocks(source, rank, world):
        x_scaler.partial_fit(x)
        y_scaler.partial_fit(y)
    parts = ddp.all_gather_objects((x_scaler, y_scaler))
    fresh_x, fresh_y = type(x_scaler)(), type(y_scaler)()
    for px, py in parts:
        fresh_x.merge(px)
        fresh_y.merge(py)
    x_scaler.__dict__.update(fresh_x.__dict__)
    y_scaler.__dict__.update(fresh_y.__dict__)
