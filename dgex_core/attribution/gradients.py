"""Which landmarks drive each target: attributions of the D-GEX network beside the linear weights.

Everything here is in the models' **standardized units** (each landmark and target
centred and scaled with its training mean and sd), so a network attribution reads like
:attr:`~dgex_core.models.linear.LinearModel.coef_`: the change in a target's z-score per
unit z-score of a landmark. Matrices are landmarks x targets (rows ``landmark_ids_``,
columns ``target_ids_``).

Two attributions of the network over a set of samples:

* **mean gradient** (``method="gradient"``): for each landmark i and target j, the mean
  over the samples of ``d yhat_j / d x_i``, the network's local linear weights
  averaged. For a linear model it is ``coef_`` exactly.
* **integrated gradients** (``method="integrated_gradients"``, Sundararajan et al.
  2017) against the training mean as baseline, which is the zero vector in
  standardized units: ``IG_ij(x) = x_i * mean_k d yhat_j / d x_i (alpha_k x)`` with
  ``alpha_k = (k + 1/2) / steps`` (midpoint rule). Completeness holds per sample:
  ``sum_i IG_ij(x) = yhat_j(x) - yhat_j(0)``. It is summarized over the samples by its
  mean (``statistic="mean"``: signed, it cancels where a landmark is as often above its
  mean as below, so on a centred sample set it mostly measures how the local slope
  co-varies with the landmark, i.e. non-linearity) or its mean absolute value
  (``statistic="mean_abs"``: a global importance, the usual choice for ranking, but it
  needs every sample's full landmarks x targets matrix, so it costs about
  ``2 n_samples n_landmarks n_hidden n_targets`` flops). For a linear model
  ``IG_ij(x) = coef_ij x_i``: the mean is ``coef_ * mean(x)`` and the mean absolute value
  ``|coef_| * mean|x|``, computed exactly.

The network-level computations (closed forms, the generic ``torch.func`` path) are in
:mod:`.network`; per-group attributions and context dependence in :mod:`.groups`;
agreement with the linear weights and precision against a known truth in :mod:`.scoring`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import pandas as pd

from ..errors import ModelError
from ..models.base import Model
from ..models.layers import ResidualNet
from .network import METHODS, STATISTICS, _layers, network_gradient, network_integrated_gradients

__all__ = ["attributions", "closed_form_applies"]


def _standardized(model: Model, X) -> np.ndarray:
    """Landmarks (samples x landmarks, original units; array or DataFrame by id) -> standardized."""
    model._check_fitted()
    if isinstance(X, pd.DataFrame):
        missing = pd.Index(model.landmark_ids_).difference(X.columns.astype(str))
        if len(missing):
            raise ModelError(f"X lacks {len(missing)} of the model's landmarks, e.g. {missing[:5].tolist()}")
        X = X.set_axis(X.columns.astype(str), axis=1)[list(model.landmark_ids_)].to_numpy()
    X = np.asarray(X)
    if X.ndim != 2 or X.shape[1] != len(model.landmark_ids_):
        raise ModelError(f"X must be a samples x {len(model.landmark_ids_)} landmarks array (original units, "
                         f"columns in landmark_ids_ order), got shape {X.shape}")
    if X.shape[0] == 0:
        raise ModelError("X has no samples to explain")
    if np.isnan(X).any():
        raise ModelError("X has missing landmark values (NaN); impute them first")
    return model.standardize_landmarks(X)


def _target_positions(model: Model, targets) -> np.ndarray:
    if targets is None:
        return np.arange(len(model.target_ids_))
    ids = pd.Index([str(t) for t in targets])
    if ids.has_duplicates:
        raise ModelError(f"targets lists some ids twice, e.g. {ids[ids.duplicated()][:5].tolist()}")
    pos = pd.Index(model.target_ids_).get_indexer(ids)
    if (pos < 0).any():
        raise ModelError(f"{int((pos < 0).sum())} requested targets are not the model's, e.g. "
                         f"{ids[pos < 0][:5].tolist()}")
    return pos


def closed_form_applies(model: Model) -> bool:
    """Whether the model's mean gradient has the fast closed form (a linear model, or
    networks of Linear layers with element-wise activations and at most two hidden
    layers); otherwise it costs one backward pass per target and sample."""
    if hasattr(model, "coef_"):
        return True
    if hasattr(model, "parts_"):  # a per-gene choice: the blend of its parts
        return all(closed_form_applies(p) for p in model.parts_.values())
    nets = [n.body if isinstance(n, ResidualNet) else n for n in getattr(model, "networks_", None) or []]
    return bool(nets) and all((lay := _layers(n)) is not None and len(lay) // 2 <= 2 for n in nets)


def _choice_attributions_z(model: Model, Xz: np.ndarray, method: str, pos: np.ndarray, *, statistic: str,
                           **kw) -> np.ndarray:
    """A per-gene choice: each target's blend of its parts' attributions (exact for the
    gradient and signed integrated gradients, both linear in the model)."""
    W = model.weights_[pos]
    names = model.part_names_
    no_attr = [f for f in names if f not in ("linear", "mlp")]
    for f in no_attr:
        uses = np.flatnonzero(W[:, names.index(f)] > 0)
        if uses.size:
            raise ModelError(f"{uses.size} of the requested targets use {f} (e.g. "
                             f"{model.target_ids_[pos[uses[:5]]].tolist()}), which has no landmark attributions; "
                             "leave them out (targets=) or choose without that family")
    if method != "gradient" and statistic == "mean_abs" and ((W > 0).sum(axis=1) > 1).any():
        raise ModelError("the mean absolute attribution of a blend is not the blend of its parts': use "
                         "statistic='mean' or the gradient for targets that blend families")
    out = np.zeros((Xz.shape[1], len(pos)))
    for f, part in model.parts_.items():
        w = W[:, names.index(f)]
        keep = np.flatnonzero(w > 0)
        if keep.size:
            out[:, keep] += w[keep] * _attributions_z(part, Xz, method, pos[keep], statistic=statistic, **kw)
    return out


def _residual_attributions(net: ResidualNet, Xz: np.ndarray, method: str, keep: np.ndarray, *, statistic: str,
                           steps: int, batch_size: int | None, engine: str, progress) -> np.ndarray:
    """Ridge path plus gated residual: the ridge part in closed form, the body as a network.

    The gradient and the signed integrated gradients are sums of the two parts'; the mean
    absolute integrated gradient is not, and goes through the whole network."""
    W = net.linear.weight.detach().double().cpu().numpy().T[:, keep]  # landmarks x outputs
    gate = net.gate.detach().double().cpu().numpy()[keep]
    if method == "gradient":
        return W + gate * network_gradient(net.body, Xz, outputs=keep, batch_size=batch_size or 512, method=engine,
                                           progress=progress)
    if statistic == "mean_abs":  # not a sum of the parts': the whole network (closed form for one hidden layer)
        return network_integrated_gradients(net, Xz, steps=steps, statistic=statistic, outputs=keep,
                                            batch_size=batch_size or 128, method=engine)
    return (np.asarray(Xz, np.float64).mean(axis=0)[:, None] * W
            + gate * network_integrated_gradients(net.body, Xz, steps=steps, statistic=statistic, outputs=keep,
                                                  batch_size=batch_size or 128, method=engine))


def _attributions_z(model: Model, Xz: np.ndarray, method: str, pos: np.ndarray, *, statistic: str,
                    steps: int, batch_size: int | None, engine: str,
                    progress: Callable[[int, int], None] | None = None) -> np.ndarray:
    """Landmarks x len(pos) attributions from standardized landmarks."""
    if method not in METHODS:
        raise ModelError(f"method must be one of {METHODS}, got {method!r}")
    if statistic not in STATISTICS:
        raise ModelError(f"statistic must be one of {STATISTICS}, got {statistic!r}")
    if hasattr(model, "coef_"):
        W = np.asarray(model.coef_, np.float64)[:, pos]
        if method == "gradient":
            return W.copy()
        X = np.asarray(Xz, np.float64)
        if statistic == "mean":
            return X.mean(axis=0)[:, None] * W
        return np.abs(X).mean(axis=0)[:, None] * np.abs(W)
    if hasattr(model, "parts_"):
        return _choice_attributions_z(model, Xz, method, pos, statistic=statistic, steps=steps,
                                      batch_size=batch_size, engine=engine, progress=progress)
    if not hasattr(model, "networks_"):
        raise ModelError(f"attributions need a linear model or a network, not a {type(model).__name__}")
    out = np.zeros((Xz.shape[1], len(pos)))
    where = pd.Series(np.arange(len(pos)), index=pos)
    n_nets = len(model.networks_)
    for i, (net, cols) in enumerate(zip(model.networks_, model.target_groups_, strict=True)):
        cols = np.asarray(cols)
        keep = np.flatnonzero(np.isin(cols, pos))
        if not keep.size:
            continue
        dest = where.loc[cols[keep]].to_numpy()
        if isinstance(net, ResidualNet):
            step = None if progress is None else (lambda d, n, i=i: progress(i * n + d, n_nets * n))
            out[:, dest] = _residual_attributions(net, Xz, method, keep, statistic=statistic, steps=steps,
                                                  batch_size=batch_size, engine=engine, progress=step)
        elif method == "gradient":
            step = None if progress is None else (lambda d, n, i=i: progress(i * n + d, n_nets * n))
            out[:, dest] = network_gradient(net, Xz, outputs=keep, batch_size=batch_size or 512, method=engine,
                                            progress=step)
        else:
            out[:, dest] = network_integrated_gradients(net, Xz, steps=steps, statistic=statistic, outputs=keep,
                                                        batch_size=batch_size or 128, method=engine)
    return out


def attributions(
    model: Model,
    X,
    method: str = "gradient",
    targets: Sequence[str] | None = None,
    *,
    statistic: str = "mean",
    steps: int = 32,
    batch_size: int | None = None,
    engine: str = "auto",
    progress: Callable[[int, int], None] | None = None,
) -> pd.DataFrame:
    """Landmark -> target attributions of a fitted model over samples, in standardized units.

    Parameters
    ----------
    model
        A fitted :class:`~dgex_core.models.mlp.MLPModel` (any number of target groups)
        or :class:`~dgex_core.models.linear.LinearModel`.
    X
        Landmarks of the samples to explain, samples x landmarks (n_samples,
        n_landmarks) in **original units**: an array with columns in ``landmark_ids_``
        order or a DataFrame with landmark ids as columns.
    method
        ``"gradient"`` (mean input gradient) or ``"integrated_gradients"`` (against the
        training mean; see the module docstring).
    targets
        Target ids to explain (default all).
    statistic
        For integrated gradients: ``"mean"`` (signed) or ``"mean_abs"`` over samples.
        Ignored for the gradient.
    steps
        Path points of integrated gradients.
    batch_size
        Samples per batch (default 512 for gradients, 128 for integrated gradients).
    engine
        ``"auto"``, ``"closed_form"`` or ``"autograd"`` (see :func:`network_gradient`).
    progress
        For the network's mean gradient: called as ``progress(done, total)`` as sample
        batches finish (slow only where the closed form does not apply, e.g. three
        hidden layers).

    Returns
    -------
    pandas.DataFrame
        Landmarks x targets (index ``landmark_ids_``, columns the target ids), float64.
        For a linear model the gradient is ``coef_`` exactly and integrated gradients
        are ``coef_ * mean(x)`` (``|coef_| * mean|x|`` for ``mean_abs``), ``x`` the
        standardized landmarks.

    Raises
    ------
    ModelError
        If the model is not fitted or of another family, ``X`` has the wrong shape or
        missing values, a target id is unknown, or a setting is invalid.

    Examples
    --------
    >>> A = attributions(mlp, test.landmarks, "gradient")          # doctest: +SKIP
    >>> A["TG00001"].abs().nlargest(10)                              # doctest: +SKIP
    """
    Xz = _standardized(model, X)
    pos = _target_positions(model, targets)
    A = _attributions_z(model, Xz, method, pos, statistic=statistic, steps=steps, batch_size=batch_size,
                        engine=engine, progress=progress)
    return pd.DataFrame(A, index=pd.Index(model.landmark_ids_, name="landmark"),
                        columns=pd.Index(model.target_ids_[pos], name="target"))
