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

All targets are computed at once, in sample batches. For a network with one hidden
layer ``y = W2 act(W1 x + b1) + b2`` the Jacobian of a sample is ``W2 diag(act'(h)) W1``
and its mean over samples is ``W2 diag(mean_s act'(h_s)) W1``: one forward pass and
one (landmarks x hidden) x (hidden x targets) product (the *closed form*). With two
hidden layers the mean is ``W3 (W2 * (D2' D1) / n) W1`` (``D`` the samples x units
matrices of activation slopes, ``*`` elementwise), still closed form. Any other
:class:`torch.nn.Sequential` goes through the generic path: ``torch.func.vjp`` vmapped
over chunks of output cotangents (one backward pass per target, batched, for a batch
of samples at a time), which costs as much as per-sample Jacobians. Both paths give the
same numbers (tested).

Beside these: attributions per group of samples (tissue, cluster) and a per-target
context-dependence score (:func:`group_attributions`, :func:`context_dependence`);
agreement with the linear weights (:func:`agreement`, :func:`summarize`); and, where
the truth is known (the demo), the precision at k of the top attributed landmarks
(:func:`precision_at_k`, :func:`random_precision`).
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence

import numpy as np
import pandas as pd
import torch
from scipy.stats import rankdata
from torch import nn

from ..errors import ModelError
from ..models.base import Model
from ..models.layers import AdaptiveActivation, ResidualNet

__all__ = [
    "agreement",
    "attributions",
    "closed_form_applies",
    "context_dependence",
    "context_dependence_scores",
    "group_attributions",
    "network_gradient",
    "network_integrated_gradients",
    "precision_at_k",
    "random_precision",
    "summarize",
]

METHODS = ("gradient", "integrated_gradients")
STATISTICS = ("mean", "mean_abs")

#: Element-wise activations: the closed form needs act'(h) to be diagonal.
_ELEMENTWISE = (nn.Identity, nn.ReLU, nn.Tanh, nn.Sigmoid, nn.GELU, nn.ELU, nn.LeakyReLU, nn.SiLU,
                nn.Softplus, nn.CELU, nn.SELU, nn.Hardtanh, nn.Mish, AdaptiveActivation)

#: Elements of one vmapped backward chunk (cotangents x rows x landmarks): bounds memory.
_CHUNK_ELEMENTS = 2**24


# ------------------------------------------------------------------ network level
def _layers(net: nn.Sequential) -> list[nn.Module] | None:
    """``[Linear, act, Linear, act, ..., Linear]`` with element-wise activations, or None.

    Dropout is dropped (identity in evaluation), two Linear layers in a row get an
    Identity between them.
    """
    if not isinstance(net, nn.Sequential):
        return None
    out: list[nn.Module] = []
    for m in net:
        if isinstance(m, nn.Dropout):
            continue
        if isinstance(m, nn.Linear):
            if out and isinstance(out[-1], nn.Linear):
                out.append(nn.Identity())
            out.append(m)
        elif isinstance(m, _ELEMENTWISE) and out and isinstance(out[-1], nn.Linear):
            out.append(m)
        else:
            return None
    if not out or not isinstance(out[-1], nn.Linear):
        return None
    return out


def _slope(act: nn.Module, h: torch.Tensor) -> torch.Tensor:
    """act'(h) for an element-wise activation, same shape as ``h``."""
    if isinstance(act, nn.Identity):
        return torch.ones_like(h)
    with torch.enable_grad():
        h = h.detach().requires_grad_(True)
        (g,) = torch.autograd.grad(act(h).sum(), h)
    return g


def _pick_method(net: nn.Sequential, method: str, max_hidden: int) -> list[nn.Module] | None:
    """The parsed layers when the closed form applies, None for the generic path."""
    if method not in ("auto", "closed_form", "autograd"):
        raise ModelError(f"method must be 'auto', 'closed_form' or 'autograd', got {method!r}")
    layers = _layers(net) if method != "autograd" else None
    ok = layers is not None and len(layers) // 2 <= max_hidden
    if method == "closed_form" and not ok:
        raise ModelError(f"the closed form needs Linear layers with element-wise activations and at most "
                         f"{max_hidden} hidden layer(s); this network is {net}")
    return layers if ok else None


class _eval_mode:
    """Put a module in evaluation mode (dropout off) for a block, then restore it."""

    def __init__(self, net: nn.Module) -> None:
        self.net, self.was = net, net.training

    def __enter__(self) -> nn.Module:
        self.net.eval()
        return self.net

    def __exit__(self, *exc) -> None:
        self.net.train(self.was)


def _as_tensor(Xz: np.ndarray, net: nn.Module) -> torch.Tensor:
    p = next(net.parameters())
    return torch.as_tensor(np.ascontiguousarray(Xz), dtype=p.dtype, device=p.device)


def _outputs(net: nn.Module, outputs: Sequence[int] | np.ndarray | None, Xz: np.ndarray) -> torch.Tensor:
    """Validated output positions; checks ``Xz`` is a non-empty samples x landmarks array."""
    if not isinstance(Xz, np.ndarray) or Xz.ndim != 2 or Xz.shape[0] == 0:
        raise ModelError(f"Xz must be a non-empty (n_samples, n_landmarks) array, got "
                         f"{getattr(Xz, 'shape', type(Xz).__name__)}")
    with _eval_mode(net), torch.no_grad():
        n_out = net(_as_tensor(Xz[:1], net)).shape[1]
    idx = np.arange(n_out) if outputs is None else np.asarray(outputs, dtype=np.int64)
    if idx.size and (idx.min() < 0 or idx.max() >= n_out):
        raise ModelError(f"output positions must be in [0, {n_out}), got {idx.min()}..{idx.max()}")
    return torch.as_tensor(idx)


def _vjp_rows(net: nn.Module, x: torch.Tensor, outs: torch.Tensor):
    """Yield (chunk slice, gradients (chunk, n_rows, n_landmarks)) of each output over the rows of ``x``.

    One forward pass, then ``torch.func.vjp`` vmapped over a chunk of output
    cotangents at a time, so that memory stays near ``_CHUNK_ELEMENTS``. When the
    network ends in a Linear layer the pull-back starts below it, from that layer's
    weight rows (the cotangent of output j at the last hidden layer), so each output
    costs one backward pass through the body and nothing through the wide output layer.
    """
    n, p = x.shape
    last = net[-1] if isinstance(net, nn.Sequential) and len(net) > 1 else None
    if isinstance(last, nn.Linear):
        h, vjp_fn = torch.func.vjp(net[:-1], x)
        rows = last.weight[outs.to(last.weight.device)]  # (outputs, hidden)
    else:
        h, vjp_fn = torch.func.vjp(net, x)
        rows = torch.zeros(len(outs), h.shape[1], dtype=h.dtype, device=h.device)
        rows[torch.arange(len(outs)), outs.to(h.device)] = 1
    chunk = max(1, _CHUNK_ELEMENTS // max(1, n * max(p, h.shape[1])))
    batched = torch.func.vmap(vjp_fn)
    for s in range(0, len(outs), chunk):
        ct = rows[s:s + chunk]
        (g,) = batched(ct[:, None, :].expand(ct.shape[0], n, h.shape[1]))
        yield slice(s, s + ct.shape[0]), g


def network_gradient(
    net: nn.Module,
    Xz: np.ndarray,
    *,
    outputs: Sequence[int] | np.ndarray | None = None,
    batch_size: int = 512,
    method: str = "auto",
    progress: Callable[[int, int], None] | None = None,
) -> np.ndarray:
    """Mean input gradient of a network over samples: its average local linear weights.

    Parameters
    ----------
    net
        A network mapping (n, n_landmarks) to (n, n_outputs); evaluated in eval mode.
    Xz
        Samples x landmarks (n_samples, n_landmarks), in the network's input units.
    outputs
        Positions of the outputs to explain (default all).
    batch_size
        Samples per batch.
    method
        ``"closed_form"`` (Linear layers with element-wise activations, 1 or 2 hidden
        layers: ``W2 diag(mean act') W1``), ``"autograd"`` (``torch.func`` on any
        network) or ``"auto"`` (the closed form when it applies).
    progress
        Called as ``progress(done, total)`` (samples) after each batch of the generic
        path (which costs one backward pass per output per sample), and once at the end.

    Returns
    -------
    numpy.ndarray
        (n_landmarks, n_outputs) float64: entry (i, j) is the mean over samples of
        ``d y_j / d x_i``.
    """
    outs = _outputs(net, outputs, Xz)
    layers = _pick_method(net, method, max_hidden=2)
    n = Xz.shape[0]
    with _eval_mode(net), torch.no_grad():
        if layers is not None:
            out = _closed_form_gradient(layers, Xz, outs, batch_size, net)
        else:
            out = np.zeros((Xz.shape[1], len(outs)))
            for s in range(0, n, batch_size):
                xb = _as_tensor(Xz[s:s + batch_size], net)
                for sl, g in _vjp_rows(net, xb, outs):
                    out[:, sl] += g.sum(dim=1).double().cpu().numpy().T
                if progress is not None and s + batch_size < n:
                    progress(s + batch_size, n)
            out /= n
    if progress is not None:
        progress(n, n)
    return out


def _closed_form_gradient(layers, Xz, outs, batch_size, net) -> np.ndarray:
    lins = layers[0::2]
    acts = layers[1::2]
    n = Xz.shape[0]
    if len(lins) == 1:  # a linear network
        W = lins[0].weight[outs]
        return W.double().cpu().numpy().T.copy()
    sums = None
    for s in range(0, n, batch_size):
        h = _as_tensor(Xz[s:s + batch_size], net)
        slopes = []
        for lin, act in zip(lins[:-1], acts, strict=True):
            h = lin(h)
            slopes.append(_slope(act, h))
            h = act(h)
        if len(slopes) == 1:
            part = slopes[0].double().sum(dim=0)
        else:  # D2' D1: (hidden2, hidden1)
            part = slopes[1].double().T @ slopes[0].double()
        sums = part if sums is None else sums + part
    mean = sums / n
    W1, W_last = lins[0].weight.double(), lins[-1].weight[outs].double()
    if len(lins) == 2:
        J = (W1.T * mean) @ W_last.T
    else:
        J = W1.T @ (lins[1].weight.double() * mean).T @ W_last.T
    return J.cpu().numpy()


def network_integrated_gradients(
    net: nn.Module,
    Xz: np.ndarray,
    *,
    steps: int = 32,
    statistic: str = "mean",
    outputs: Sequence[int] | np.ndarray | None = None,
    batch_size: int = 128,
    method: str = "auto",
) -> np.ndarray:
    """Integrated gradients of a network against the zero baseline (the training mean).

    ``IG_ij(x) = x_i * mean_k d y_j / d x_i (alpha_k x)``, ``alpha_k = (k + 1/2) / steps``.

    Parameters
    ----------
    net
        A network mapping (n, n_landmarks) to (n, n_outputs); evaluated in eval mode.
    Xz
        Samples x landmarks (n_samples, n_landmarks), in the network's (standardized)
        input units, where the training mean is 0.
    steps
        Points on the straight path from 0 to x (midpoint rule).
    statistic
        ``"mean"`` (signed mean over samples), ``"mean_abs"`` (mean absolute value) or
        ``"none"`` (every sample's matrix).
    outputs
        Positions of the outputs to explain (default all).
    batch_size
        Samples per batch (each is expanded to ``steps`` path points).
    method
        ``"closed_form"`` (one hidden layer of an element-wise activation), ``"autograd"``
        (``torch.func``, any network) or ``"auto"``.

    Returns
    -------
    numpy.ndarray
        (n_landmarks, n_outputs) float64 for ``"mean"`` / ``"mean_abs"``;
        (n_samples, n_landmarks, n_outputs) for ``"none"``.
    """
    if statistic not in (*STATISTICS, "none"):
        raise ModelError(f"statistic must be 'mean', 'mean_abs' or 'none', got {statistic!r}")
    if int(steps) < 1:
        raise ModelError(f"steps must be at least 1, got {steps}")
    outs = _outputs(net, outputs, Xz)
    # a linear path (ridge + gated residual): the closed form of its body, plus x * W of the ridge part
    res = net if isinstance(net, ResidualNet) and method != "autograd" else None
    layers = _pick_method(res.body if res is not None else net, method, max_hidden=1)
    if res is not None and layers is None:
        res = None  # a deeper body: the generic path over the whole network
    n, p = Xz.shape
    alphas = (torch.arange(int(steps), dtype=torch.float64) + 0.5) / int(steps)
    per_sample = np.empty((n, p, len(outs))) if statistic == "none" else None
    total = np.zeros((p, len(outs)))
    with _eval_mode(net), torch.no_grad():
        if layers is not None and len(layers) == 1:  # linear: the path gradient is the weight
            W = layers[0].weight[outs].double().cpu().numpy().T
            X = np.asarray(Xz, np.float64)
            if statistic == "none":
                return X[:, :, None] * W[None]
            if statistic == "mean":
                return X.mean(axis=0)[:, None] * W
            return np.abs(X).mean(axis=0)[:, None] * np.abs(W)
        for s in range(0, n, batch_size):
            xb = _as_tensor(Xz[s:s + batch_size], net)
            a = alphas.to(xb.dtype).to(xb.device)
            if layers is not None:
                lin1, act, lin2 = layers
                z = xb @ lin1.weight.T
                pre = a[:, None, None] * z[None] + lin1.bias  # (steps, batch, hidden)
                dbar = _slope(act, pre).mean(dim=0)  # path-averaged slopes (batch, hidden)
                W1t, W2t = lin1.weight.T, lin2.weight[outs].T
                Wl = None
                if res is not None:
                    W2t = W2t * res.gate[outs]
                    Wl = res.linear.weight[outs].T  # (p, outputs)
                if statistic == "mean":
                    total += ((W1t * (xb.T @ dbar)).double() @ W2t.double()).cpu().numpy()
                    if Wl is not None:
                        total += (xb.sum(dim=0)[:, None] * Wl).double().cpu().numpy()
                    continue
                # every sample's (p, outputs) matrix, a few samples at a time to bound memory
                sub = max(1, _CHUNK_ELEMENTS // (p * max(W1t.shape[1], W2t.shape[1])))
                for r in range(0, xb.shape[0], sub):
                    xr, dr = xb[r:r + sub], dbar[r:r + sub]
                    ig = (xr[:, :, None] * W1t[None] * dr[:, None, :]) @ W2t  # (sub, p, outputs)
                    if Wl is not None:
                        ig += xr[:, :, None] * Wl[None]
                    if statistic == "none":
                        per_sample[s + r:s + r + xr.shape[0]] = ig.double().cpu().numpy()
                    else:
                        total += ig.abs().sum(dim=0).double().cpu().numpy()
                continue
            path = (a[:, None, None] * xb[None]).reshape(-1, p)  # (steps * batch, p)
            for sl, g in _vjp_rows(net, path, outs):
                ig = g.reshape(g.shape[0], len(a), xb.shape[0], p).mean(dim=1) * xb  # (chunk, batch, p)
                if statistic == "none":
                    per_sample[s:s + xb.shape[0], :, sl] = ig.permute(1, 2, 0).double().cpu().numpy()
                elif statistic == "mean":
                    total[:, sl] += ig.sum(dim=1).double().cpu().numpy().T
                else:
                    total[:, sl] += ig.abs().sum(dim=1).double().cpu().numpy().T
    return per_sample if statistic == "none" else total / n


# -------------------------------------------------------------------- model level
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


# ---------------------------------------------------------------- sample groups
def group_attributions(
    model: Model,
    X,
    groups,
    method: str = "gradient",
    targets: Sequence[str] | None = None,
    *,
    min_size: int = 1,
    **kwargs,
) -> dict[Hashable, pd.DataFrame]:
    """:func:`attributions` restricted to each group of samples (tissue, cluster...).

    Parameters
    ----------
    model, X, method, targets
        As :func:`attributions`; ``X`` is samples x landmarks in original units.
    groups
        One label per sample (n_samples,): a Series (aligned to ``X``'s index when
        ``X`` is a DataFrame) or an array. Missing labels are left out.
    min_size
        Groups with fewer samples are left out.
    **kwargs
        ``statistic``, ``steps``, ``batch_size``, ``engine`` as :func:`attributions`.

    Returns
    -------
    dict
        Group label -> landmarks x targets DataFrame, in sorted label order; each
        frame's ``attrs["n_samples"]`` is the group's size.
    """
    Xz = _standardized(model, X)
    if isinstance(groups, pd.Series) and isinstance(X, pd.DataFrame):
        groups = groups.reindex(X.index)
    labels = pd.Series(np.asarray(groups, dtype=object))
    if len(labels) != Xz.shape[0]:
        raise ModelError(f"groups has {len(labels)} labels for {Xz.shape[0]} samples")
    pos = _target_positions(model, targets)
    out: dict[Hashable, pd.DataFrame] = {}
    for label, rows in sorted(labels.dropna().groupby(labels.dropna()).indices.items(), key=lambda kv: str(kv[0])):
        if len(rows) < min_size:
            continue
        A = _attributions_z(model, Xz[rows], method, pos, **{"statistic": "mean", "steps": 32,
                                                             "batch_size": None, "engine": "auto", **kwargs})
        df = pd.DataFrame(A, index=pd.Index(model.landmark_ids_, name="landmark"),
                          columns=pd.Index(model.target_ids_[pos], name="target"))
        df.attrs["n_samples"] = len(rows)
        out[label] = df
    if not out:
        raise ModelError(f"no group has at least {min_size} samples")
    return out


def context_dependence(group_attr: dict[Hashable, pd.DataFrame]) -> pd.Series:
    """How much each target's attribution vector changes from one group of samples to another.

    For target j with group attribution vectors ``a_g`` (over landmarks) and group sizes
    ``n_g``, the score is the size-weighted root-mean-square distance of the ``a_g`` from
    their weighted mean ``a`` (for mean gradients, the attribution over all the samples),
    relative to its norm::

        score_j = sqrt(sum_g n_g ||a_g - a||^2 / sum_g n_g) / ||a||

    a coefficient of variation of the vectors. It is 0 for a target the model treats
    as linear (same weights in every group) and does not change when the target is
    rescaled. Unlike ``1 - correlation(a_g, a)`` it also sees a change of *magnitude*
    with the same direction, e.g. a saturating response that is flat in one tissue and
    steep in another, which is the commonest kind of context dependence in expression
    (and in the demo's ``saturation`` / ``threshold`` targets). Weighting by size keeps
    a handful of samples from dominating.

    Parameters
    ----------
    group_attr
        Output of :func:`group_attributions`: label -> landmarks x targets, with
        ``attrs["n_samples"]`` (a missing size counts as 1).

    Returns
    -------
    pandas.Series
        Score per target (indexed by target id); NaN where ``||a|| = 0``.
    """
    frames = list(group_attr.values())
    if not frames:
        raise ModelError("no group attributions given")
    w = np.array([f.attrs.get("n_samples", 1) for f in frames], dtype=np.float64)
    w /= w.sum()
    stack = np.stack([f.to_numpy(np.float64) for f in frames])  # (groups, landmarks, targets)
    mean = np.tensordot(w, stack, axes=1)
    spread = np.sqrt(np.tensordot(w, ((stack - mean) ** 2).sum(axis=1), axes=1))
    norm = np.linalg.norm(mean, axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        score = np.where(norm > 0, spread / np.where(norm > 0, norm, 1.0), np.nan)
    return pd.Series(score, index=frames[0].columns, name="context_dependence")


def context_dependence_scores(
    model: Model,
    X,
    groups,
    method: str = "gradient",
    targets: Sequence[str] | None = None,
    *,
    min_size: int = 1,
    chunk_targets: int = 2048,
    progress: Callable[[int, int], None] | None = None,
    **kwargs,
) -> pd.Series:
    """:func:`context_dependence` of every target, computed a block of targets at a time.

    The same numbers as ``context_dependence(group_attributions(...))``, but memory
    stays near ``n_groups x n_landmarks x chunk_targets`` floats instead of holding every
    group's full landmarks x targets matrix (12 tissues x 978 x 20,000 would be 1.9 GB).

    Parameters
    ----------
    model, X, groups, method, targets, min_size, **kwargs
        As :func:`group_attributions`.
    chunk_targets
        Targets per block.
    progress
        Called as ``progress(done, total)`` (targets) after each block.

    Returns
    -------
    pandas.Series
        Score per target (indexed by target id), with ``attrs["n_groups"]`` and
        ``attrs["group_sizes"]`` (label -> samples) of the groups used.
    """
    pos = _target_positions(model, targets)
    ids = model.target_ids_[pos]
    step = max(1, int(chunk_targets))
    parts, sizes = [], {}
    for s in range(0, len(ids), step):
        by = group_attributions(model, X, groups, method, list(ids[s:s + step]), min_size=min_size, **kwargs)
        sizes = {k: int(v.attrs["n_samples"]) for k, v in by.items()}
        parts.append(context_dependence(by))
        if progress is not None:
            progress(min(s + step, len(ids)), len(ids))
    out = pd.concat(parts) if parts else pd.Series(dtype=np.float64, name="context_dependence")
    out.attrs["n_groups"] = len(sizes)
    out.attrs["group_sizes"] = sizes
    return out


# ---------------------------------------------------------------- comparisons
def _aligned(attr: pd.DataFrame, other, what: str) -> np.ndarray:
    if isinstance(other, pd.DataFrame):
        try:
            other = other.loc[attr.index, attr.columns]
        except KeyError:
            raise ModelError(f"{what} lacks some landmarks or targets of the attributions") from None
        return other.to_numpy()
    other = np.asarray(other)
    if other.shape != attr.shape:
        raise ModelError(f"{what} must be landmarks x targets of shape {attr.shape}, got {other.shape}")
    return other


def _top_k(values: np.ndarray, k: int) -> np.ndarray:
    """Row positions of the k largest |values| of each column (k, n_columns); ties by position."""
    return np.argsort(-np.abs(values), axis=0, kind="stable")[:k]


def _check_k(k: int, n: int) -> int:
    if not 1 <= int(k) <= n:
        raise ModelError(f"k must be in [1, {n}] (the number of landmarks), got {k}")
    return int(k)


def agreement(attr: pd.DataFrame, reference: pd.DataFrame, k: int = 20) -> pd.DataFrame:
    """Per target, how well two landmarks x targets attributions agree (e.g. network vs ``coef_``).

    Parameters
    ----------
    attr, reference
        Landmarks x targets; ``reference`` is aligned to ``attr`` by ids (or is an array
        of the same shape).
    k
        Size of the top lists.

    Returns
    -------
    pandas.DataFrame
        Indexed by target: ``spearman`` (rank correlation of the signed values over
        landmarks; NaN for a constant column) and ``top_k_overlap``, the fraction
        ``|top_k(attr) & top_k(reference)| / k`` of landmarks shared by the two top-k
        lists by absolute value (1 = same set, in any order).
    """
    A = attr.to_numpy(np.float64)
    B = _aligned(attr, reference, "reference").astype(np.float64)
    k = _check_k(k, A.shape[0])
    ra, rb = rankdata(A, axis=0), rankdata(B, axis=0)
    ra -= ra.mean(axis=0)
    rb -= rb.mean(axis=0)
    den = np.sqrt((ra**2).sum(axis=0) * (rb**2).sum(axis=0))
    with np.errstate(invalid="ignore", divide="ignore"):
        rho = np.where(den > 0, (ra * rb).sum(axis=0) / np.where(den > 0, den, 1.0), np.nan)
    ta, tb = _top_k(A, k), _top_k(B, k)
    ma = np.zeros(A.shape, bool)
    mb = np.zeros(A.shape, bool)
    cols = np.arange(A.shape[1])
    ma[ta, cols] = True
    mb[tb, cols] = True
    overlap = (ma & mb).sum(axis=0) / k
    return pd.DataFrame({"spearman": rho, "top_k_overlap": overlap}, index=attr.columns)


def summarize(values: pd.Series | pd.DataFrame) -> pd.DataFrame | pd.Series:
    """Mean, median and quartiles over targets (NaN left out) of a per-target score or scores."""
    frame = values.to_frame() if isinstance(values, pd.Series) else values
    out = pd.DataFrame({"mean": frame.mean(), "q25": frame.quantile(0.25), "median": frame.median(),
                        "q75": frame.quantile(0.75), "n": frame.count()})
    return out.iloc[0] if isinstance(values, pd.Series) else out


def precision_at_k(attr: pd.DataFrame, truth, k: int) -> pd.Series:
    """Per target, the fraction of its k top attributed landmarks (by |value|) that are true drivers.

    Parameters
    ----------
    attr
        Landmarks x targets attributions.
    truth
        Bool landmarks x targets: a DataFrame (aligned by ids) or an array in
        ``attr``'s order, e.g. :attr:`~dgex_core.demo.DemoData.driver_matrix`.
    k
        Number of top landmarks; ties are broken by landmark position.

    Returns
    -------
    pandas.Series
        Precision in [0, 1] per target (indexed by target id). A random ranking scores
        :func:`random_precision` on average.
    """
    T = _aligned(attr, truth, "truth").astype(bool)
    k = _check_k(k, T.shape[0])
    top = _top_k(attr.to_numpy(np.float64), k)
    hits = np.take_along_axis(T, top, axis=0).sum(axis=0)
    return pd.Series(hits / k, index=attr.columns, name=f"precision_at_{k}")


def random_precision(truth: pd.DataFrame | np.ndarray, target_ids: Sequence[str] | None = None) -> pd.Series:
    """Expected precision at any k of a random ranking: each target's share of driver landmarks.

    Parameters
    ----------
    truth
        Bool landmarks x targets.
    target_ids
        Ids for the result when ``truth`` is an array.
    """
    if isinstance(truth, pd.DataFrame):
        return truth.astype(bool).mean(axis=0).rename("random_precision")
    T = np.asarray(truth, bool)
    return pd.Series(T.mean(axis=0), index=target_ids, name="random_precision")
