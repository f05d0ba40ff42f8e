"""Attributions of one torch network over samples, in its own input and output units:
the mean input gradient (:func:`network_gradient`) and integrated gradients against the
zero baseline (:func:`network_integrated_gradients`), each in closed form where the
architecture allows and through ``torch.func`` otherwise. Matrices are landmarks x
outputs.

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
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch
from torch import nn

from ..errors import ModelError
from ..models.layers import AdaptiveActivation, ResidualNet

__all__ = [
    "METHODS",
    "STATISTICS",
    "network_gradient",
    "network_integrated_gradients",
]

METHODS = ("gradient", "integrated_gradients")
STATISTICS = ("mean", "mean_abs")

#: Element-wise activations: the closed form needs act'(h) to be diagonal.
_ELEMENTWISE = (nn.Identity, nn.ReLU, nn.Tanh, nn.Sigmoid, nn.GELU, nn.ELU, nn.LeakyReLU, nn.SiLU,
                nn.Softplus, nn.CELU, nn.SELU, nn.Hardtanh, nn.Mish, AdaptiveActivation)

#: Elements of one vmapped backward chunk (cotangents x rows x landmarks): bounds memory.
_CHUNK_ELEMENTS = 2**24


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
