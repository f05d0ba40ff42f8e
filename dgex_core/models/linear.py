"""Linear regression, the LINCS baseline: ordinary least squares and ridge in closed form.

All targets are solved at once from the sums ``X'X`` (landmarks x landmarks) and
``X'Y`` (landmarks x targets), accumulated in float64 over sample blocks by
:class:`GramAccumulator`; the same code runs whether the data sit in memory or stream
from disk, so the result does not depend on it. A grid of ridge strengths costs about
one fit: ``X'X`` is eigendecomposed once, ``V' X'Y`` is formed once, and each alpha's
weights are a rescaling of it; the validation predictions of every alpha come from
the projected validation landmarks ``X_val V`` (formed once).

Everything happens in standardized units (each landmark and target centered and
scaled with training statistics, the D-GEX protocol). OLS predictions do not depend
on that scaling; ridge's penalty does, and it is the natural one here (every
landmark on the same footing). :meth:`LinearModel.coefficients` gives the weights
in standardized units or converted back to the original units.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy import linalg
from scipy.linalg import blas

from ..errors import ModelError
from ..lazy import block_rows, sample_positions
from ..preprocess import Pipeline, Standardizer
from .base import Model, Progress
from .persist import register

__all__ = ["DEFAULT_ALPHA_GRID", "GramAccumulator", "LinearModel", "accumulate_gram", "ridge_path"]

#: Default ridge grid, as multiples of the number of training samples (so it means the
#: same at any size, in standardized units); 0 is ordinary least squares.
DEFAULT_ALPHA_GRID = (0.0, 1e-4, 1e-3, 3e-3, 1e-2, 3e-2, 0.1, 0.3)

#: Most validation samples (evenly spaced) that score the ridge grid: 5,000 samples x
#: every target pin the mean MAE of each alpha far below the differences between
#: alphas, and keep the grid's cost below the fit's own X'Y at compendium scale.
MAX_GRID_SAMPLES = 5000


def _is_range(r: np.ndarray) -> bool:
    return bool(r.size) and int(r[-1]) - int(r[0]) + 1 == r.size


def _gram(Xc: np.ndarray) -> np.ndarray:
    """Xc' Xc with BLAS syrk (half the work of a general product), as a full symmetric matrix."""
    if Xc.dtype != np.float64 or not Xc.flags.c_contiguous:
        return Xc.T @ Xc
    upper = blas.dsyrk(1.0, Xc.T, trans=0)  # Xc.T is Fortran-ordered: no copy
    return np.triu(upper) + np.triu(upper, 1).T


class GramAccumulator:
    """Streaming sums for least squares: ``update`` per sample block, ``finalize`` once.

    Accumulates in float64, about a shift (the first block's column means) so that the
    centered cross-products lose no precision to large means. Blocks can come from
    memory, a memory map or an HDF5 file; the totals are the same.
    """

    def __init__(self) -> None:
        self.n = 0

    def update(self, X: np.ndarray, Y: np.ndarray) -> GramAccumulator:
        """Add a block: X (n_block, n_landmarks), Y (n_block, n_targets)."""
        X = np.asarray(X, dtype=np.float64)
        Y = np.asarray(Y, dtype=np.float64)
        if X.shape[0] != Y.shape[0]:
            raise ModelError(f"X has {X.shape[0]} samples but Y has {Y.shape[0]}")
        if X.shape[0] == 0:
            return self
        if self.n == 0:
            self.shift_x, self.shift_y = X.mean(axis=0), Y.mean(axis=0)
            self.sx = np.zeros(X.shape[1])
            self.sy = np.zeros(Y.shape[1])
            self.yy = np.zeros(Y.shape[1])
            self.xx = np.zeros((X.shape[1], X.shape[1]))
            self.xy = np.zeros((X.shape[1], Y.shape[1]))
        nb = X.shape[0]
        Xc = X - self.shift_x  # landmarks are few: center them
        xsum = Xc.sum(axis=0)
        # targets are many: never materialize Y - shift, correct the sums analytically
        ysum = Y.sum(axis=0)
        self.n += nb
        with np.errstate(invalid="ignore", over="ignore"):  # non-finite data are reported by fit
            self._add(Xc, Y, xsum, ysum, nb)
        return self

    def _add(self, Xc, Y, xsum, ysum, nb) -> None:
        self.sx += xsum
        self.sy += ysum - nb * self.shift_y
        self.yy += np.einsum("ij,ij->j", Y, Y) - 2 * self.shift_y * ysum + nb * self.shift_y**2
        self.xx += _gram(Xc)
        self.xy += Xc.T @ Y - np.outer(xsum, self.shift_y)

    def finalize(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """``(Sxx, Sxy, mean_x, mean_y)``: centered cross-products and the means."""
        if self.n == 0:
            raise ModelError("no samples were accumulated")
        mx, my = self.sx / self.n, self.sy / self.n
        Sxx = self.xx - self.n * np.outer(mx, mx)
        Sxy = self.xy - self.n * np.outer(mx, my)
        return Sxx, Sxy, self.shift_x + mx, self.shift_y + my

    def target_sum_of_squares(self) -> np.ndarray:
        """Centered sum of squares of each target (n_targets,): its variance times n."""
        my = self.sy / self.n
        return self.yy - self.n * my * my


def accumulate_gram(source, progress: Progress) -> GramAccumulator:
    """The sums of every sample block of ``source``: in this process, or per partition on the
    current Dask cluster (:func:`dgex_core.distributed.dask_client`) and tree-reduced there.
    ``progress(done, n_blocks + 1, info)`` as blocks (or partitions) finish."""
    from ..distributed import current_client

    client, total = current_client(), source.n_blocks + 1
    if client is not None:
        from ..distributed.sums import gram_on_cluster

        return gram_on_cluster(client, source, lambda done, n: progress(
            max(1, done * (total - 1) // n), total, {"stage": "accumulating X'X, X'Y on the cluster"}))
    from ..distributed.ddp import world

    rank, size = world()
    if size > 1:  # a rank of a torch DDP job (the network's linear path): its share, gathered
        import functools

        from ..distributed.ddp import all_gather_objects
        from ..distributed.sums import merge_gram, rank_blocks

        mine = GramAccumulator()
        for xb, yb in rank_blocks(source, rank, size):
            mine.update(xb, yb)
        acc = functools.reduce(merge_gram, all_gather_objects(mine))  # in rank order: the same on every rank
        progress(total - 1, total, {"stage": "accumulating X'X, X'Y over the ranks"})
        return acc
    acc = GramAccumulator()
    for i, (xb, yb) in enumerate(source.blocks()):
        acc.update(xb, yb)
        progress(i + 1, total, {"stage": "accumulating X'X, X'Y"})
    return acc


def solve_ridge(Sxx: np.ndarray, Sxy: np.ndarray, alpha: float) -> np.ndarray:
    """Weights (n_landmarks, n_targets) minimizing ||Yc - Xc W||^2 + alpha ||W||^2.

    Cholesky when ``Sxx + alpha I`` is positive definite; otherwise (OLS on collinear
    landmarks) the minimum-norm least-squares solution from an eigendecomposition.
    """
    A = Sxx + alpha * np.eye(Sxx.shape[0])
    try:
        c = linalg.cho_factor(A, lower=False, check_finite=False)
        W = linalg.cho_solve(c, Sxy, check_finite=False)
        if np.isfinite(W).all():
            return W
    except linalg.LinAlgError:
        pass
    evals, V = linalg.eigh(Sxx, check_finite=False)
    return ridge_path(evals, V, V.T @ Sxy, [alpha])[0]


def ridge_path(evals: np.ndarray, V: np.ndarray, VtSxy: np.ndarray, alphas: Sequence[float]) -> list[np.ndarray]:
    """Weights for each alpha from one eigendecomposition ``Sxx = V diag(evals) V'``.

    Eigenvalues that are zero to machine precision are dropped (minimum-norm solution).
    """
    tol = evals.max(initial=0.0) * _rcond(evals.shape[0])
    out = []
    for a in alphas:
        d = evals + a
        inv = np.where(d > tol, 1.0 / np.where(d > tol, d, 1.0), 0.0)
        out.append(V @ (inv[:, None] * VtSxy))
    return out


def _rcond(n: int) -> float:
    """Relative eigenvalue cut-off, as LAPACK's rcond default for a matrix of size n."""
    return n * np.finfo(np.float64).eps


def _standardizer(mean: np.ndarray, sd: np.ndarray) -> Standardizer:
    """A fitted :class:`Standardizer` from means and sds (constant genes get sd 1)."""
    const = ~(sd > 1e-12 * np.maximum(np.abs(mean), 1.0))
    return Standardizer.from_state({"n_constant": int(const.sum())},
                                   {"mean": mean, "scale": np.where(const, 1.0, sd)})


@register
class LinearModel(Model):
    """OLS or ridge regression from landmarks to all targets (the LINCS / D-GEX baseline).

    Parameters
    ----------
    alpha
        Ridge strength in standardized units (sum-of-squares penalty, as scikit-learn's
        ``Ridge``); 0 is OLS. Ignored when ``alphas`` is given.
    alphas
        A grid of strengths to choose from on the validation set (lowest mean per-gene
        MAE). ``"auto"`` uses :data:`DEFAULT_ALPHA_GRID` times the number of training
        samples. Without a validation set the grid cannot be used.
    input_transform
        Landmark preprocessing before standardization: ``none``, ``log2``, ``quantile``.
    block_size
        Samples per block when accumulating ``X'X`` and ``X'Y``.

    Attributes
    ----------
    coef_ : ndarray (n_landmarks, n_targets)
        Weights in standardized units.
    intercept_ : ndarray (n_targets,)
        Intercepts in standardized units.
    alpha_ : float
        The strength used.
    alpha_scores_ : dict
        Validation mean per-gene MAE (standardized units) of each alpha of the grid.
    """

    family = "linear"

    def __init__(
        self,
        alpha: float = 0.0,
        alphas: Sequence[float] | str | None = None,
        input_transform: str = "none",
        block_size: int = 8192,
    ) -> None:
        super().__init__(input_transform)
        self.alpha = alpha
        self.alphas = alphas
        self.block_size = block_size

    def _needs_validation(self) -> bool:
        return self.alphas is not None

    def fit_source(self, source, landmark_ids, target_ids, val=None, progress=None) -> LinearModel:
        """Fit from sample blocks; with no input transform, in **one pass** over the data.

        The per-gene means and standard deviations that standardize landmarks and
        targets fall out of the same sums as ``X'X`` and ``X'Y`` (their diagonals and
        column sums), so the data are read once and the cost is essentially the two
        matrix products. With a log2 / quantile input transform, the generic path of
        :meth:`Model.fit_source` is used (one more pass per transform).
        """
        if self.input_transform not in ("none", "", None):
            return super().fit_source(source, landmark_ids, target_ids, val, progress)
        progress = progress or (lambda *a: None)
        self.check_params()
        self._set_gene_ids(source, landmark_ids, target_ids)
        acc = accumulate_gram(source, progress)
        Sxx, Sxy, mx, my = acc.finalize()
        syy = acc.target_sum_of_squares()
        if not (np.isfinite(Sxx).all() and np.isfinite(Sxy).all() and np.isfinite(syy).all()):
            raise ModelError("the training data have missing or infinite values; impute or drop them before training")
        n = acc.n
        xs = _standardizer(mx, np.sqrt(np.maximum(np.diag(Sxx), 0) / n))
        ys = _standardizer(my, np.sqrt(np.maximum(syy, 0) / n))
        self.input_pipeline_ = Pipeline([xs])
        self.input_pipeline_.fitted_ = True
        self.target_scaler_ = ys
        self.n_train_ = n
        Xv, Yv = self._validation(val, lambda y: ys.transform(np.asarray(y, np.float64)), np.float64)
        Sxx_z = Sxx / np.outer(xs.scale_, xs.scale_)
        Sxy_z = Sxy / np.outer(xs.scale_, ys.scale_)
        zero_x, zero_y = np.zeros(Sxx.shape[0]), np.zeros(Sxy.shape[1])
        self.fit_from_sums(Sxx_z, Sxy_z, zero_x, zero_y, n, Xv, Yv)
        progress(source.n_blocks + 1, source.n_blocks + 1, {"stage": "solved", "alpha": self.alpha_})
        return self

    def _fit_standardized(self, source, Xv, Yv, progress: Progress) -> None:
        acc = accumulate_gram(source, progress)
        Sxx, Sxy, mx, my = acc.finalize()
        self.fit_from_sums(Sxx, Sxy, mx, my, acc.n, Xv, Yv)
        progress(source.n_blocks + 1, source.n_blocks + 1, {"stage": "solved", "alpha": self.alpha_})

    def fit_from_sums(
        self,
        Sxx: np.ndarray,
        Sxy: np.ndarray,
        mean_x: np.ndarray,
        mean_y: np.ndarray,
        n: int,
        Xv: np.ndarray | None = None,
        Yv: np.ndarray | None = None,
    ) -> None:
        """Solve from accumulated sums (standardized units); choose alpha on (Xv, Yv) if a grid is set."""
        grid = self._grid(n)
        if grid is None:
            W = solve_ridge(Sxx, Sxy, float(self.alpha))
            self.alpha_, self.alpha_scores_ = float(self.alpha), {}
        else:
            if Xv is None or Yv is None:
                raise ModelError("choosing alpha from a grid needs a validation set; pass val= or a single alpha")
            evals, V = linalg.eigh(Sxx, check_finite=False)
            VtSxy = V.T @ Sxy
            rows = sample_positions(Xv.shape[0], MAX_GRID_SAMPLES)
            # validation landmarks in the eigenbasis; the grid is scored in float32 (its error,
            # ~1e-6 relative, is far below the MAE differences between alphas) at twice the
            # float64 rate: 8 alphas x 5,000 samples x 21k targets is ~1.6 TFLOP of GEMM
            Pv = ((np.asarray(Xv, np.float64)[rows] - mean_x) @ V).astype(np.float32)
            tol = evals.max(initial=0.0) * _rcond(evals.shape[0])
            weights = {}
            for a in grid:
                d = evals + a
                inv = np.where(d > tol, 1.0 / np.where(d > tol, d, 1.0), 0.0)
                weights[float(a)] = (inv[:, None] * VtSxy).astype(np.float32)
            abs_sum = dict.fromkeys(weights, 0.0)
            mean_y32 = np.asarray(mean_y, np.float32)
            # validation targets in blocks (they may stay on disk), every alpha scored on each block
            bs = block_rows(Sxy.shape[1], itemsize=4)
            for s in range(0, rows.size, bs):
                r = rows[s:s + bs]
                Yvc = np.asarray(Yv[int(r[0]):int(r[-1]) + 1] if _is_range(r) else Yv[r], np.float32)
                Yvc = Yvc - mean_y32
                for a, W in weights.items():
                    res = Pv[s:s + bs] @ W
                    res -= Yvc
                    abs_sum[a] += float(np.abs(res, out=res).sum(dtype=np.float64))
            scores = {a: v / (rows.size * Sxy.shape[1]) for a, v in abs_sum.items()}
            best = min(scores, key=scores.get)
            W = ridge_path(evals, V, VtSxy, [best])[0]
            self.alpha_, self.alpha_scores_ = best, scores
        self.coef_ = W
        self.intercept_ = mean_y - mean_x @ W

    def _grid(self, n: int) -> list[float] | None:
        if self.alphas is None:
            return None
        if isinstance(self.alphas, str):
            if self.alphas != "auto":
                raise ModelError(f"alphas must be a list of numbers or 'auto', got {self.alphas!r}")
            return [a * n for a in DEFAULT_ALPHA_GRID]
        return [float(a) for a in self.alphas]

    def _predict_standardized(self, Xz: np.ndarray) -> np.ndarray:
        """Xz @ coef_ + intercept_; a float32 GEMM for float32 input (float64 otherwise).

        The float32 copy of the weights is made on first use and kept (not saved);
        it is rebuilt if ``coef_`` or ``intercept_`` are replaced.
        """
        if Xz.dtype == np.float32:
            cache = getattr(self, "_weights32", None)
            if cache is None or cache[0] is not self.coef_ or cache[1] is not self.intercept_:
                cache = (self.coef_, self.intercept_, np.ascontiguousarray(self.coef_, np.float32),
                         np.asarray(self.intercept_, np.float32))
                self._weights32 = cache
            out = Xz @ cache[2]
            out += cache[3]
            return out
        out = Xz.astype(np.float64, copy=False) @ self.coef_
        out += self.intercept_
        return out

    # ----------------------------------------------------------- coefficients
    def coefficients(self, units: str = "standardized") -> pd.DataFrame:
        """Landmark -> target weights as a (n_landmarks + 1) x n_targets table.

        Rows are landmark ids plus ``"(intercept)"``; columns are target ids.
        ``units="standardized"`` gives the change in a target's z-score per unit z-score of
        a landmark (comparable across genes); ``"original"`` gives them in the data's own
        units (after any log2 / quantile input transform), as LINCS publishes its weights.
        """
        self._check_fitted()
        W, b = self.coef_, self.intercept_
        if units == "original":
            std = self.input_pipeline_.steps[-1]
            sx, mux = std.scale_, std.mean_
            sy, muy = self.target_scaler_.scale_, self.target_scaler_.mean_
            W = W / sx[:, None] * sy[None, :]
            b = muy + sy * (b - (mux / sx) @ self.coef_)
        elif units != "standardized":
            raise ModelError(f"units must be 'standardized' or 'original', got {units!r}")
        return pd.DataFrame(np.vstack([W, b[None, :]]), index=[*self.landmark_ids_, "(intercept)"],
                            columns=self.target_ids_)

    # ---------------------------------------------------------------- saving
    def _state(self):
        return ({"alpha": self.alpha_, "alpha_scores": {str(k): v for k, v in self.alpha_scores_.items()}},
                {"coef": self.coef_, "intercept": self.intercept_})

    def _set_state(self, params, arrays):
        self.alpha_ = float(params["alpha"])
        self.alpha_scores_ = {float(k): v for k, v in params.get("alpha_scores", {}).items()}
        self.coef_ = np.asarray(arrays["coef"], np.float64)
        self.intercept_ = np.asarray(arrays["intercept"], np.float64)
        if self.coef_.shape != (len(self.landmark_ids_), len(self.target_ids_)):
            raise ModelError(f"saved weights have shape {self.coef_.shape} but the gene lists say "
                             f"{len(self.landmark_ids_)} x {len(self.target_ids_)}")
