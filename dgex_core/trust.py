"""How far a new profile lies from the training data: an out-of-distribution score.

A model is only as good as the landmark profiles it was trained on: a sample from
another platform, a failed array or an unseen cell type can get confident but wrong
predictions. :class:`DistributionCheck` fits a PCA of the training landmarks (in the
model's standardized units) and scores each new sample by two classic statistics:

- Hotelling's T^2: Mahalanobis distance inside the PCA subspace (an unusual
  combination of the usual programs);
- Q (squared prediction error): the residual outside it (a pattern never seen).

Each is divided by its 99th percentile on the **validation** samples (which were not
used to fit the PCA, so the threshold is honest), and the score is the larger ratio:
``score > 1`` means "further out than 99% of held-out in-distribution samples" and
flags the sample.
"""

from __future__ import annotations

import numpy as np

from .errors import ModelError

__all__ = ["DistributionCheck"]


class DistributionCheck:
    """Out-of-distribution score of landmark profiles (samples x landmarks, standardized).

    Parameters
    ----------
    n_components
        PCA components kept; by default the fewest explaining ``variance`` of the
        training variance, at most 100.
    variance
        Share of variance the default number of components explains.
    quantile
        Validation quantile that maps to score 1 (the flag threshold).
    """

    def __init__(self, n_components: int | None = None, variance: float = 0.9, quantile: float = 0.99) -> None:
        self.n_components = n_components
        self.variance = variance
        self.quantile = quantile

    def fit(self, Xz_train: np.ndarray, Xz_val: np.ndarray) -> DistributionCheck:
        """Fit the PCA on training landmarks and the thresholds on validation landmarks."""
        X = np.asarray(Xz_train, np.float64)
        if X.shape[0] < 3 or np.asarray(Xz_val).shape[0] < 1:
            raise ModelError("the distribution check needs at least 3 training and 1 validation samples")
        self.mean_ = X.mean(axis=0)
        # PCA from the landmark covariance (landmarks x landmarks: small whatever the sample count)
        C = np.cov(X - self.mean_, rowvar=False)
        evals, evecs = np.linalg.eigh(C)
        order = np.argsort(evals)[::-1]
        evals, evecs = np.maximum(evals[order], 0), evecs[:, order]
        if self.n_components is None:
            share = np.cumsum(evals) / max(evals.sum(), 1e-300)
            k = int(np.searchsorted(share, self.variance) + 1)
        else:
            k = self.n_components
        k = max(1, min(k, 100, X.shape[0] - 1, X.shape[1]))
        self.components_ = evecs[:, :k]
        self.explained_variance_ = np.maximum(evals[:k], 1e-12)
        t2, q = self._stats(Xz_val)
        self.t2_threshold_ = max(float(np.quantile(t2, self.quantile)), 1e-12)
        self.q_threshold_ = max(float(np.quantile(q, self.quantile)), 1e-12)
        return self

    def _stats(self, Xz: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        Xc = np.asarray(Xz, np.float64) - self.mean_
        proj = Xc @ self.components_
        t2 = ((proj * proj) / self.explained_variance_).sum(axis=1)
        # squared residual off the (orthonormal) components: |x|^2 - |projection|^2, without
        # forming the residual (a samples x landmarks product and temporary per block)
        q = np.einsum("ij,ij->i", Xc, Xc) - np.einsum("ij,ij->i", proj, proj)
        return t2, np.maximum(q, 0.0)

    def score(self, Xz: np.ndarray) -> np.ndarray:
        """(n_samples,) score; above 1 = outside the validation samples' 99% range."""
        if not hasattr(self, "components_"):
            raise ModelError("DistributionCheck is not fitted: call fit(train, val) first")
        t2, q = self._stats(Xz)
        return np.maximum(t2 / self.t2_threshold_, q / self.q_threshold_)

    def flag(self, Xz: np.ndarray) -> np.ndarray:
        """(n_samples,) True where the profile is out of distribution."""
        return self.score(Xz) > 1.0

    def get_state(self) -> tuple[dict, dict[str, np.ndarray]]:
        return ({"n_components": self.n_components, "variance": self.variance, "quantile": self.quantile,
                 "t2_threshold": self.t2_threshold_, "q_threshold": self.q_threshold_},
                {"mean": self.mean_, "components": self.components_, "explained_variance": self.explained_variance_})

    @classmethod
    def from_state(cls, params: dict, arrays: dict[str, np.ndarray]) -> DistributionCheck:
        obj = cls(params["n_components"], params["variance"], params["quantile"])
        obj.mean_ = np.asarray(arrays["mean"], np.float64)
        obj.components_ = np.asarray(arrays["components"], np.float64)
        obj.explained_variance_ = np.asarray(arrays["explained_variance"], np.float64)
        obj.t2_threshold_ = float(params["t2_threshold"])
        obj.q_threshold_ = float(params["q_threshold"])
        return obj
