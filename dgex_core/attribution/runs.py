"""Attributions of finished runs side by side: a network (or a per-gene choice) and a linear
regression explained on the same samples, on the genes both share.

What the dashboard's Interpret page shows, as plain functions over runs (no Streamlit):
:func:`explain_runs` picks the samples and computes every target's mean gradient once;
:func:`target_attributions` one target's attributions of each model by any method.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import pandas as pd

from ..dataset import Dataset
from ..store import Run
from .drivers import common_genes
from .gradients import attributions, closed_form_applies
from .samples import explain_samples

__all__ = ["RunAttributions", "explain_runs", "explainable", "target_attributions"]

#: Samples explained when the network's mean gradient has a closed form, and when it has
#: not (one backward pass per target and sample: a network with three hidden layers).
MAX_SAMPLES_CLOSED_FORM = 2000
MAX_SAMPLES_AUTOGRAD = 200


@dataclass(frozen=True)
class RunAttributions:
    """Mean-gradient attributions of one or two runs over the same samples.

    Attributes
    ----------
    X
        Samples x landmarks explained on (original units); ``X.attrs["n_incomplete"]``
        counts samples left out for missing landmark values.
    meta
        Their sample metadata (same index).
    attrs
        ``{"network": A, "linear": B}`` (``"linear"`` only with a linear run): landmarks x
        targets in standardized units, restricted to the genes both models share.
    closed_form
        Whether the network's gradient had a closed form (else fewer samples).
    """

    X: pd.DataFrame
    meta: pd.DataFrame
    attrs: dict
    closed_form: bool


def explainable(run: Run) -> bool:
    """A network, or a per-gene choice whose parts all have attributions (KNN-GE has none)."""
    model = run.model
    return hasattr(model, "networks_") or (hasattr(model, "parts_") and set(model.parts_) <= {"linear", "mlp"})


def explain_runs(net: Run, lin: Run | None, data: Dataset, which: str = "test", *,
                 progress: Callable[[int, int], None] | None = None, seed: int = 0) -> RunAttributions:
    """Every target's mean gradient of ``net`` (and the linear weights of ``lin``) over the
    samples ``which`` of ``data`` (see :func:`~dgex_core.attribution.explain_samples`):
    at most :data:`MAX_SAMPLES_CLOSED_FORM` samples, :data:`MAX_SAMPLES_AUTOGRAD` where the
    network has no closed form.

    Raises
    ------
    DatasetError
        If ``data`` is not the run's dataset (for a split part) or lacks its landmarks.
    ModelError
        If the two runs share no landmark or target.
    """
    fast = closed_form_applies(net.model)
    X, meta = explain_samples(net, data, which, max_samples=MAX_SAMPLES_CLOSED_FORM if fast else MAX_SAMPLES_AUTOGRAD,
                              seed=seed)
    attrs = {"network": attributions(net.model, X, "gradient", progress=progress)}
    if lin is not None:
        attrs["linear"] = attributions(lin.model, X, "gradient")
        lms, tgs = common_genes(attrs["network"], attrs["linear"])
        attrs = {m: A.loc[lms, tgs] for m, A in attrs.items()}
    return RunAttributions(X, meta, attrs, fast)


def target_attributions(models: Mapping[str, object], X: pd.DataFrame, target: str, method: str,
                        landmarks: pd.Index) -> dict[str, pd.Series]:
    """One target's attributions by each of ``models`` (name -> fitted model) over ``X``:
    the signed mean gradient, or mean |integrated gradients| for ``"integrated_gradients"``;
    each a Series over ``landmarks``."""
    kw = {"statistic": "mean_abs"} if method == "integrated_gradients" else {}
    return {m: attributions(model, X, method, [target], **kw)[target].reindex(landmarks)
            for m, model in models.items()}
