"""How far a new profile lies from the training data: an out-of-distribution score.

A model is only as good as the landmark profiles it was trained on: a sample from
another platform, a failed array or an unseen cell type can get confident but wrong
predictions. :class:`DistributionCheck` scores each sample (standardized landmarks,
the model's units) by its Mahalanobis distance under a probabilistic PCA of the
training landmarks (Tipping & Bishop 1999): the covariance is the top ``k``
principal components plus an isotropic residual variance (the mean of the
discarded eigenvalues), so

    d^2 = sum_j p_j^2 / lambda_j  +  |x - projection|^2 / sigma^2

adds the classic two statistics, Hotelling's T^2 inside the subspace (an unusual
combination of the usual programs) and Q outside it (a pattern never seen), on one
scale. Unlike an unregularized covariance this stays finite and honest with fewer
samples than landmarks.

**Calibration on held-out samples only.** ``score = d^2 / threshold``, where the
threshold is the 99th percentile of ``d^2`` over samples the PCA did not see: the
validation samples and, by ``n_folds``-fold cross-fitting, every training sample
scored by a PCA fitted on the other folds. So ``score > 1`` means "further out than
99% of held-out in-distribution samples" and flags the sample, and a few validation
samples are never the whole calibration. A training sample scored by the final PCA
(one that saw it) lies closer than it would held out, so predicting a run's own
training data flags few of its samples. The folds' PCAs have ``(n_folds-1)/n_folds``
of the training samples, so their distances run slightly larger than the final
PCA's: the threshold errs towards flagging less.
"""

from __future__ import annotations

import numpy as np

from .errors import ModelError

__all__ = ["DistributionCheck"]

#: Largest number of principal components kept (the landmarks' structure in a large
#: compendium: D-GEX's 943 landmarks need ~100 for 90% of the variance).
MAX_COMPONENTS = 100


class DistributionCheck:
    """Out-of-distribution score of landmark profiles (samples x landmarks, standardized).

    Parameters
    ----------
    n_components
        PCA components kept; by default the fewest explaining ``variance`` of the
        training variance, at most :data:`MAX_COMPONENTS` and at most half the
        training samples (so the residual variance is estimated from as many).
    variance
        Share of variance the default number of components explains.
    quantile
        Held-out quantile that maps to score 1 (the flag threshold).
    n_folds
        Folds of the training samples scored out of fold for the calibration.
    seed
        Seed of the fold assignment.
    """

    def __init__(self, n_components: int | None = None, variance: float = 0.9, quantile: float = 0.99,
                 n_folds: int = 5, seed: int = 0) -> None:
        if int(n_folds) < 2:
            raise ModelError(f"n_folds must be at least 2 (training samples are scored out of fold), got {n_folds}")
        self.n_components = n_components
        self.variance = variance
        self.quantile = quantile
        self.n_folds = n_folds
        self.seed = seed

    def fit(self, Xz_train: np.ndarray, Xz_val: np.ndarray | None = None) -> DistributionCheck:
        """Fit the PCA on training landmarks (n_train x landmarks) and the threshold on
        held-out distances: ``Xz_val`` (n_val x landmarks, may be empty or None) and the
        training samples out of fold."""
        X = np.asarray(Xz_train, np.float64)
        n, d = X.shape
        if n < 3:
            raise ModelError(f"the distribution check needs at least 3 training samples, got {n}")
        if d < 2:
            raise ModelError(f"the distribution check needs at least 2 landmarks, got {d}")
        folds = np.random.default_rng(self.seed).permutation(n) % min(self.n_folds, n)
        parts = [np.flatnonzero(folds == f) for f in range(folds.max() + 1)]
        sums = [X[p].sum(axis=0) for p in parts]
        scatters = [X[p].T @ X[p] for p in parts]
        total_sum, total_scatter = np.sum(sums, axis=0), np.sum(scatters, axis=0)
        evals, evecs = _eigen(total_sum, total_scatter, n)
        if self.n_components is None:
            share = np.cumsum(evals) / max(evals.sum(), 1e-300)
            k = int(np.searchsorted(share, self.variance) + 1)
        else:
            k = int(self.n_components)
        self.n_components_ = max(1, min(k, MAX_COMPONENTS, (n - 1) // 2, d - 1))
        self.mean_ = total_sum / n
        self.components_, self.explained_variance_, self.residual_variance_ = _ppca(evals, evecs, self.n_components_)

        held_out = []
        for p, s, S in zip(parts, sums, scatters, strict=True):
            m = n - len(p)
            fe, fv = _eigen(total_sum - s, total_scatter - S, m)
            comps, lam, sigma2 = _ppca(fe, fv, min(self.n_components_, m - 1))
            held_out.append(_distance(X[p], (total_sum - s) / m, comps, lam, sigma2))
        if Xz_val is not None and len(Xz_val):
            held_out.append(self.distance(Xz_val))
        held_out = np.concatenate(held_out)
        self.n_calibration_ = int(held_out.size)
        self.threshold_ = max(float(np.quantile(held_out, self.quantile)), 1e-12)
        return self

    def distance(self, Xz: np.ndarray) -> np.ndarray:
        """(n_samples,) squared Mahalanobis distance under the training PCA."""
        if not hasattr(self, "components_"):
            raise ModelError("DistributionCheck is not fitted: call fit(train, val) first")
        if getattr(self, "legacy_", None) is not None:
            return self._legacy_score(Xz)
        return _distance(np.asarray(Xz, np.float64), self.mean_, self.components_, self.explained_variance_,
                         self.residual_variance_)

    def score(self, Xz: np.ndarray) -> np.ndarray:
        """(n_samples,) score; above 1 = further out than 99% of held-out samples."""
        d2 = self.distance(Xz)
        return d2 if getattr(self, "legacy_", None) is not None else d2 / self.threshold_

    def flag(self, Xz: np.ndarray) -> np.ndarray:
        """(n_samples,) True where the profile is out of distribution."""
        return self.score(Xz) > 1.0

    def get_state(self) -> tuple[dict, dict[str, np.ndarray]]:
        arrays = {"mean": self.mean_, "components": self.components_, "explained_variance": self.explained_variance_}
        if getattr(self, "legacy_", None) is not None:  # written back as it was read
            return ({"n_components": self.n_components, "variance": self.variance, "quantile": self.quantile,
                     "t2_threshold": self.legacy_[0], "q_threshold": self.legacy_[1]}, arrays)
        return ({"method": "ppca", "n_components": self.n_components, "variance": self.variance,
                 "quantile": self.quantile, "n_folds": self.n_folds, "seed": self.seed,
                 "threshold": self.threshold_, "residual_variance": self.residual_variance_,
                 "n_calibration": self.n_calibration_},
                {"mean": self.mean_, "components": self.components_, "explained_variance": self.explained_variance_})

    @classmethod
    def from_state(cls, params: dict, arrays: dict[str, np.ndarray]) -> DistributionCheck:
        """Rebuild a saved check; a run saved before the check was cross-fitted (its
        T^2 and Q thresholds from validation samples alone) keeps its own score."""
        obj = cls(params["n_components"], params["variance"], params["quantile"],
                  params.get("n_folds", 5), params.get("seed", 0))
        obj.mean_ = np.asarray(arrays["mean"], np.float64)
        obj.components_ = np.asarray(arrays["components"], np.float64)
        obj.explained_variance_ = np.asarray(arrays["explained_variance"], np.float64)
        obj.n_components_ = obj.components_.shape[1]
        if params.get("method") == "ppca":
            obj.threshold_ = float(params["threshold"])
            obj.residual_variance_ = float(params["residual_variance"])
            obj.n_calibration_ = int(params.get("n_calibration", 0))
        else:
            obj.legacy_ = (float(params["t2_threshold"]), float(params["q_threshold"]))
        return obj

    def _legacy_score(self, Xz: np.ndarray) -> np.ndarray:
        Xc = np.asarray(Xz, np.float64) - self.mean_
        proj = Xc @ self.components_
        t2 = ((proj * proj) / self.explained_variance_).sum(axis=1)
        q = np.maximum(np.einsum("ij,ij->i", Xc, Xc) - np.einsum("ij,ij->i", proj, proj), 0.0)
        return np.maximum(t2 / self.legacy_[0], q / self.legacy_[1])


def _eigen(total: np.ndarray, scatter: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Eigenvalues (descending, >= 0) and eigenvectors of the covariance of ``n`` samples
    given their sum (d,) and scatter matrix X'X (d x d)."""
    mean = total / n
    C = (scatter - n * np.outer(mean, mean)) / max(n - 1, 1)
    evals, evecs = np.linalg.eigh(C)
    order = np.argsort(evals)[::-1]
    return np.maximum(evals[order], 0.0), evecs[:, order]


def _ppca(evals: np.ndarray, evecs: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray, float]:
    """The top ``k`` components (d x k), their variances (k,) and the residual variance:
    the mean of the other eigenvalues (floored at a millionth of the mean eigenvalue, so
    data of rank <= k still give a finite distance)."""
    k = max(1, min(k, len(evals) - 1))
    floor = max(float(evals.mean()), 1e-12) * 1e-6
    sigma2 = max(float(evals[k:].mean()), floor) if k < len(evals) else floor
    return evecs[:, :k], np.maximum(evals[:k], floor), sigma2


def _distance(X: np.ndarray, mean: np.ndarray, comps: np.ndarray, lam: np.ndarray, sigma2: float) -> np.ndarray:
    Xc = X - mean
    proj = Xc @ comps
    t2 = ((proj * proj) / lam).sum(axis=1)
    # the residual off the orthonormal components: |x|^2 - |projection|^2, without forming it
    q = np.maximum(np.einsum("ij,ij->i", Xc, Xc) - np.einsum("ij,ij->i", proj, proj), 0.0)
    return t2 + q / sigma2
