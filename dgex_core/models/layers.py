"""The D-GEX network's building blocks: its layer stack, adaptive activations and the
linear path.

* :func:`build_network`: ``n_in -> [Linear -> activation -> Dropout] x k -> Linear(n_out)``,
  the fully connected body of D-GEX (Chen et al., 2016).
* :class:`AdaptiveActivation`: TAAF (Kunc & Kléma, PLoS One 2021), a learnable scale
  and shift per unit inside and outside the activation, ``a * f(c * h + d) + b``.
* :class:`ResidualNet`: the closed-form ridge prediction plus a gated non-linear
  residual, ``x W + w0 + gate * body(x)``, one gate per target (chosen on validation):
  a target whose gate is 0 gets exactly the ridge answer.

All work in standardized units, inputs samples x landmarks, outputs samples x targets.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

from ..errors import ModelError

__all__ = ["ACTIVATIONS", "AdaptiveActivation", "ResidualNet", "build_network", "linear_layer"]

ACTIVATIONS = {"tanh": nn.Tanh, "relu": nn.ReLU, "gelu": nn.GELU, "sigmoid": nn.Sigmoid, "elu": nn.ELU}


class AdaptiveActivation(nn.Module):
    """``out_scale * f(in_scale * h + in_shift) + out_shift``, four learnable numbers per unit.

    Starts as the plain activation (scales 1, shifts 0). Element-wise per unit, so the
    closed-form attributions of :mod:`dgex_core.attribution` still apply.
    """

    def __init__(self, base: nn.Module, width: int) -> None:
        super().__init__()
        self.base = base
        self.in_scale = nn.Parameter(torch.ones(width))
        self.in_shift = nn.Parameter(torch.zeros(width))
        self.out_scale = nn.Parameter(torch.ones(width))
        self.out_shift = nn.Parameter(torch.zeros(width))

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return self.out_scale * self.base(self.in_scale * h + self.in_shift) + self.out_shift

    def extra_repr(self) -> str:
        return f"{type(self.base).__name__}, width={self.in_scale.numel()}"


def build_network(n_in: int, n_out: int, hidden: Sequence[int], activation: str, dropout: float,
                  adaptive: bool = False, zero_output: bool = False, input_dropout: float = 0.0) -> nn.Sequential:
    """[Dropout(input_dropout)] -> [Linear -> activation -> Dropout] x len(hidden) -> Linear(n_out).

    ``adaptive`` wraps each activation in :class:`AdaptiveActivation`; ``zero_output``
    starts the output layer at zero (a residual that begins by adding nothing);
    ``input_dropout`` drops landmarks at random while training.
    """
    if activation not in ACTIVATIONS:
        raise ModelError(f"activation must be one of {sorted(ACTIVATIONS)}, got {activation!r}")
    layers: list[nn.Module] = [nn.Dropout(input_dropout)] if input_dropout > 0 else []
    width = n_in
    for h in hidden:
        act = ACTIVATIONS[activation]()
        layers += [nn.Linear(width, int(h)), AdaptiveActivation(act, int(h)) if adaptive else act]
        if dropout > 0:
            layers.append(nn.Dropout(dropout))
        width = int(h)
    out = nn.Linear(width, n_out)
    if zero_output:
        nn.init.zeros_(out.weight)
        nn.init.zeros_(out.bias)
    layers.append(out)
    return nn.Sequential(*layers)


def linear_layer(coef: np.ndarray, intercept: np.ndarray) -> nn.Linear:
    """A frozen-or-trainable ``nn.Linear`` computing ``x @ coef + intercept``
    (coef: landmarks x targets)."""
    layer = nn.Linear(coef.shape[0], coef.shape[1])
    with torch.no_grad():
        layer.weight.copy_(torch.from_numpy(np.ascontiguousarray(coef.T, np.float32)))
        layer.bias.copy_(torch.from_numpy(np.asarray(intercept, np.float32)))
    return layer


class ResidualNet(nn.Module):
    """``linear(x) + gate * body(x)``: ridge regression plus a gated non-linear residual.

    ``linear`` holds the closed-form ridge weights (frozen, or fine-tuned with the body);
    ``body`` is a :func:`build_network` stack whose output layer starts at zero;
    ``gate`` (a buffer, one value per target) scales the residual per target.
    """

    def __init__(self, linear: nn.Linear, body: nn.Sequential, gate: torch.Tensor | None = None) -> None:
        super().__init__()
        self.linear = linear
        self.body = body
        self.register_buffer("gate", torch.ones(linear.out_features) if gate is None else gate.clone())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(x) + self.gate * self.body(x)
