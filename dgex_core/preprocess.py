"""Preprocessing steps, each a small object fitted on **training samples only**.

Every step follows one protocol: ``fit(X)`` learns from a training matrix
(samples x genes) and returns ``self``; ``transform(X)`` applies what was learned to
any matrix with the same genes; ``inverse_transform`` undoes it where that makes
sense; ``get_state()`` returns ``(params, arrays)`` (JSON-friendly dict, dict of
numpy arrays) and :func:`step_from_state` rebuilds the fitted step, so a step is saved
with a model without pickle.

Steps
-----
:class:`Log2Transform`
    Detects unlogged data (counts, TPM, MAS5 intensities) and applies log2(x + 1).
:class:`QuantileNormalizer`
    Maps each sample's values onto a reference distribution learned from the
    training samples (D-GEX used it to carry a GEO microarray model to GTEx RNA-seq).
:class:`Standardizer`
    Per-gene centering and scaling (the D-GEX evaluation units).
:func:`collapse_probes`
    Averages the probes of each gene into one value per gene (as D-GEX did).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping

import numpy as np
import pandas as pd
from scipy import sparse

from .errors import DatasetError, ModelError
from .matrix import ExpressionMatrix

__all__ = [
    "AS_GIVEN",
    "LOG2",
    "LOG2CPM",
    "NORMALIZATIONS",
    "Log2Transform",
    "Pipeline",
    "QuantileNormalizer",
    "Standardizer",
    "collapse_probes",
    "log2_cpm",
    "log2_plus1",
    "looks_unlogged",
    "matrix_scale_problem",
    "normalization_of",
    "scale_problem",
    "step_from_state",
]


#: How the per-sample counts normalization is recorded in a matrix's provenance and a run.
LOG2CPM = "log2(CPM+1)"

#: How the plain log transform (TPM, FPKM, linear-scale intensities) is recorded.
LOG2 = "log2(x+1)"


def log2_plus1(values: np.ndarray) -> np.ndarray:
    """log2(x + 1) of a samples x genes block (TPM, FPKM, linear intensities); float32 out."""
    X = np.asarray(values, dtype=np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.log2(X + 1.0).astype(np.float32)


#: Recorded when the user chose to take values as they are although they look unlogged
#: (``--normalize none``): the run then expects such values when it predicts.
AS_GIVEN = "values as given (not logged)"


def normalization_of(transforms) -> str | None:
    """The normalization name (``log2cpm``, ``log2``, or ``none`` for values explicitly
    taken as they are) a matrix's provenance records, or None when nothing was chosen."""
    for name, (_, label) in NORMALIZATIONS.items():
        if label in transforms:
            return name
    return "none" if AS_GIVEN in transforms else None


def scale_problem(values: np.ndarray) -> str | None:
    """Why ``values`` (a sample of a file's samples x genes values) look unlogged, in
    words with the quantiles (:func:`looks_unlogged`'s rule), or None when they look
    log-scaled."""
    if not looks_unlogged(values):
        return None
    v = _finite_sample(values)
    q50, q99, q100 = np.quantile(v, [0.5, 0.99, 1.0])
    counts = bool(np.all(v >= 0) and np.all(v == np.round(v)))
    return (f"the values look unlogged (median {q50:,.4g}, 99th percentile {q99:,.4g}, max {q100:,.4g}"
            + (", whole numbers: counts" if counts else "") + "), while log2 expression lies within ~0-20")


def log2_cpm(counts: np.ndarray) -> np.ndarray:
    """log2(counts per million + 1) of each sample (row) of a samples x genes count block.

    The library size is the sample's own total over the genes given (all genes of the
    file when applied on reading), so it needs no training statistics; the per-gene
    standardization fitted on training samples comes after. float32 out; missing
    counts stay missing and do not add to the total; an all-zero sample stays 0.
    """
    X = np.asarray(counts, dtype=np.float64)
    lib = np.nansum(X, axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        out = np.log2(X * (1e6 / np.where(lib > 0, lib, 1.0)) + 1.0)
    return out.astype(np.float32)


#: The per-sample normalizations a file can be read through: name -> (function on a
#: samples x genes block, the transform recorded in its provenance and in a run).
NORMALIZATIONS = {"log2cpm": (log2_cpm, LOG2CPM), "log2": (log2_plus1, LOG2)}


def _finite_sample(X, n: int = 1_000_000) -> np.ndarray:
    """At most ``n`` finite values of ``X`` at a fixed stride, as float64; the stride is
    taken before the cast, so a large block is never copied whole."""
    v = np.asarray(X).ravel()
    if v.size > n:  # a fixed-stride subsample is plenty for quantiles
        v = v[:: v.size // n]
    v = v.astype(np.float64)
    return v[np.isfinite(v)]


def looks_unlogged(X: np.ndarray) -> bool:
    """Whether values look like linear-scale expression (counts, TPM, intensities).

    The rule GEO2R uses: quantiles (0, 25, 50, 75, 99, 100 %) of the non-missing values;
    unlogged when the 99th percentile exceeds 100, or the spread from the 0th to the
    99th percentile exceeds 50 with a positive 25th percentile. Log2 microarray data
    (values 2-16) never trigger it.
    """
    v = _finite_sample(X)
    if v.size == 0:
        return False
    q0, q25, _, _, q99, _ = np.quantile(v, [0, 0.25, 0.5, 0.75, 0.99, 1.0])
    return bool(q99 > 100 or (q99 - q0 > 50 and q25 > 0))


def matrix_scale_problem(matrix, n: int = 400, leading: bool = False) -> str | None:
    """:func:`scale_problem` on ``n`` samples of a (lazy) samples x genes matrix: spread
    evenly over it, or its first ``n`` (``leading``: one contiguous read, for a start-up
    path); only those rows are read."""
    if matrix.n_samples == 0:
        return None
    k = min(matrix.n_samples, n)
    rows = np.arange(k) if leading else np.unique(np.linspace(0, matrix.n_samples - 1, k).astype(int))
    return scale_problem(matrix.read(rows))


class _Step:
    """Shared plumbing: fitted-check, fit_transform, state round trip."""

    name = "step"
    _fitted_attr = "n_genes_"

    def _check_fitted(self) -> None:
        if not hasattr(self, self._fitted_attr):
            raise ModelError(f"{type(self).__name__} is not fitted: call fit(X_train) first")

    def _check_genes(self, X: np.ndarray) -> np.ndarray:
        X = np.asarray(X)
        if X.ndim != 2:
            raise DatasetError(f"{type(self).__name__} expects a 2-D samples x genes array, got shape {X.shape}")
        if X.shape[1] != self.n_genes_:
            raise DatasetError(
                f"{type(self).__name__} was fitted on {self.n_genes_} genes but got {X.shape[1]}; "
                "align the data to the model's genes first"
            )
        return X

    def fit_transform(self, X: np.ndarray) -> np.ndarray:
        return self.fit(X).transform(X)

    def get_state(self) -> tuple[dict, dict[str, np.ndarray]]:
        raise NotImplementedError

    def __repr__(self) -> str:
        params, _ = self.get_state() if hasattr(self, self._fitted_attr) else ({}, {})
        return f"{type(self).__name__}({', '.join(f'{k}={v!r}' for k, v in params.items() if k != 'step')})"


class Log2Transform(_Step):
    """log2(x + pseudocount), applied when the training data look unlogged (or always / never).

    Parameters
    ----------
    mode
        ``"auto"`` (apply when :func:`looks_unlogged` says so on the training data),
        ``"always"`` or ``"never"``.
    pseudocount
        Added before the log (1 by default, as for counts and TPM).

    Attributes
    ----------
    apply_ : bool
        Whether the transform is applied (decided at fit time, then fixed).
    """

    name = "log2"
    _fitted_attr = "apply_"

    def __init__(self, mode: str = "auto", pseudocount: float = 1.0) -> None:
        if mode not in ("auto", "always", "never"):
            raise ValueError(f"mode must be 'auto', 'always' or 'never', got {mode!r}")
        self.mode = mode
        self.pseudocount = pseudocount

    def fit(self, X: np.ndarray) -> Log2Transform:
        self.apply_ = self.mode == "always" or (self.mode == "auto" and looks_unlogged(X))
        return self

    def partial_fit(self, X: np.ndarray) -> Log2Transform:
        """Streaming fit: the decision is taken on the first block seen, then kept."""
        return self if hasattr(self, "apply_") else self.fit(X)

    def transform(self, X: np.ndarray) -> np.ndarray:
        self._check_fitted()
        X = np.asarray(X)
        if not self.apply_:
            return X
        if np.nanmin(X, initial=0.0) < -self.pseudocount:
            raise DatasetError(
                f"cannot take log2(x + {self.pseudocount}) of values below {-self.pseudocount}: "
                "the data hold negative values, so they are probably already on a log scale (use mode='never')"
            )
        return np.log2(X + X.dtype.type(self.pseudocount)) if X.dtype.kind == "f" else np.log2(X + self.pseudocount)

    def inverse_transform(self, X: np.ndarray) -> np.ndarray:
        self._check_fitted()
        return np.exp2(X) - self.pseudocount if self.apply_ else X

    def get_state(self):
        return {"step": self.name, "mode": self.mode, "pseudocount": self.pseudocount, "apply": self.apply_}, {}

    @classmethod
    def from_state(cls, params: dict, arrays: Mapping[str, np.ndarray]) -> Log2Transform:
        step = cls(params["mode"], params["pseudocount"])
        step.apply_ = bool(params["apply"])
        return step


class QuantileNormalizer(_Step):
    """Quantile normalization of each sample onto a reference distribution.

    ``fit`` learns the reference: the mean, over training samples, of each sample's
    sorted values (n_genes quantiles). ``transform`` replaces each sample's values by
    the reference quantiles at their ranks (ties share the mean of their quantiles;
    NaN stays NaN and the sample's non-missing values are mapped onto the reference
    interpolated to their count). A sample of the training set comes out with exactly
    the reference's values, in its own order.

    Attributes
    ----------
    reference_ : ndarray of shape (n_genes,)
        The reference distribution, sorted ascending.
    """

    name = "quantile"
    _fitted_attr = "reference_"

    def fit(self, X: np.ndarray) -> QuantileNormalizer:
        for attr in ("_sum", "_count"):
            self.__dict__.pop(attr, None)
        return self.partial_fit(X)

    def partial_fit(self, X: np.ndarray) -> QuantileNormalizer:
        """Streaming fit over sample blocks: accumulates the sum of sorted samples."""
        X = np.asarray(X, dtype=np.float64)
        if X.ndim != 2 or X.shape[0] == 0:
            raise DatasetError(f"QuantileNormalizer.fit needs a non-empty samples x genes array, got {X.shape}")
        if np.isnan(X).any():
            # each sample's sorted non-missing values, stretched onto n_genes quantiles
            srt = np.array([_resample_sorted(np.sort(r[~np.isnan(r)]), X.shape[1]) for r in X])
        else:
            srt = np.sort(X, axis=1)
        if not hasattr(self, "_sum"):
            self._sum, self._count = np.zeros(X.shape[1]), 0
        elif X.shape[1] != self._sum.shape[0]:
            raise DatasetError(f"blocks disagree on the number of genes ({self._sum.shape[0]} then {X.shape[1]})")
        self._sum += srt.sum(axis=0)
        self._count += X.shape[0]
        self.reference_ = self._sum / self._count
        self.n_genes_ = X.shape[1]
        return self

    def transform(self, X: np.ndarray) -> np.ndarray:
        self._check_fitted()
        return self.map_rows(self._check_genes(X))

    def map_rows(self, X: np.ndarray) -> np.ndarray:
        """Like :meth:`transform`, for samples over *any* set of genes: each sample is mapped
        onto the reference resampled to its number of non-missing values (used to bring an
        external dataset with fewer genes to the training distribution)."""
        self._check_fitted()
        X = np.asarray(X)
        out = np.empty(X.shape, dtype=X.dtype if X.dtype.kind == "f" else np.float64)
        for i, row in enumerate(X):
            out[i] = self._map_row(np.asarray(row, dtype=np.float64))
        return out

    def _map_row(self, row: np.ndarray) -> np.ndarray:
        ok = ~np.isnan(row)
        n = int(ok.sum())
        out = np.full(row.shape, np.nan)
        if n == 0:
            return out
        ref = self.reference_ if n == self.reference_.shape[0] else _resample_sorted(self.reference_, n)
        vals = row[ok]
        order = np.argsort(vals, kind="stable")
        sorted_vals = vals[order]
        mapped = np.empty(n)
        # average the reference over runs of tied values
        starts = np.flatnonzero(np.r_[True, sorted_vals[1:] != sorted_vals[:-1]])
        ends = np.r_[starts[1:], n]
        csum = np.r_[0.0, np.cumsum(ref)]
        run_means = (csum[ends] - csum[starts]) / (ends - starts)
        mapped[order] = np.repeat(run_means, ends - starts)
        out[ok] = mapped
        return out

    def get_state(self):
        return {"step": self.name}, {"reference": self.reference_}

    @classmethod
    def from_state(cls, params, arrays) -> QuantileNormalizer:
        step = cls()
        step.reference_ = np.asarray(arrays["reference"], dtype=np.float64)
        step.n_genes_ = step.reference_.shape[0]
        return step


def _resample_sorted(values: np.ndarray, n: int) -> np.ndarray:
    """A sorted vector resampled to ``n`` evenly spaced quantiles (linear interpolation)."""
    if values.size == n:
        return values
    if values.size == 1:
        return np.repeat(values, n)
    return np.interp(np.linspace(0, 1, n), np.linspace(0, 1, values.size), values)


class Standardizer(_Step):
    """Per-gene standardization: (x - mean) / sd with the training mean and sd.

    Genes constant on the training set (sd = 0) get sd = 1, so they map to 0 and never
    divide by zero; their count is in ``n_constant_``. Missing values are ignored in
    the statistics and stay NaN.

    Attributes
    ----------
    mean_, scale_ : ndarray of shape (n_genes,)
        Training mean and standard deviation (ddof=0) per gene, float64.
    """

    name = "standardize"
    _fitted_attr = "mean_"

    def fit(self, X: np.ndarray) -> Standardizer:
        for attr in ("_shift", "_n", "_s", "_ss"):
            self.__dict__.pop(attr, None)
        return self.partial_fit(X)

    def partial_fit(self, X: np.ndarray) -> Standardizer:
        """Streaming fit over sample blocks (float64 sums about the first block's mean)."""
        X = np.asarray(X)
        if X.ndim != 2 or X.shape[0] == 0:
            raise DatasetError(f"Standardizer.fit needs a non-empty samples x genes array, got {X.shape}")
        has_nan = X.dtype.kind == "f" and bool(np.isnan(np.add.reduce(X, axis=None)))
        # float32 data stay float32 (their own precision) with float64 accumulators;
        # anything else is computed in float64
        if X.dtype != np.float32 or has_nan:
            X = X.astype(np.float64, copy=False)
        ok = ~np.isnan(X) if has_nan else None
        if not hasattr(self, "_shift"):
            with np.errstate(all="ignore"):
                shift = np.nanmean(X, axis=0) if has_nan else X.mean(axis=0)
            self._shift = np.where(np.isnan(shift), 0.0, shift)
            self._n = np.zeros(X.shape[1])
            self._s = np.zeros(X.shape[1])
            self._ss = np.zeros(X.shape[1])
        elif X.shape[1] != self._shift.shape[0]:
            raise DatasetError(f"blocks disagree on the number of genes ({self._shift.shape[0]} then {X.shape[1]})")
        with np.errstate(invalid="ignore", over="ignore"):  # infinite values: reported by the caller
            Xc = X - self._shift.astype(X.dtype)
        if has_nan:
            Xc[~ok] = 0.0
            self._n += ok.sum(axis=0)
        else:
            self._n += X.shape[0]
        self._s += Xc.sum(axis=0, dtype=np.float64)
        Xc *= Xc
        self._ss += Xc.sum(axis=0, dtype=np.float64)
        return self._finish()

    def merge(self, other: Standardizer) -> Standardizer:
        """Add the sums of ``other`` (the same genes, other samples, e.g. another rank's
        share) into these, shifting them to this one's reference first; the mean and sd
        are then those of both sets of samples. An unfitted side is skipped."""
        if not hasattr(other, "_shift"):
            return self
        if not hasattr(self, "_shift"):
            self._shift, self._n, self._s, self._ss = (a.copy() for a in (other._shift, other._n, other._s, other._ss))
            return self._finish()
        if other._shift.shape != self._shift.shape:
            raise DatasetError(f"cannot merge statistics of {other._shift.shape[0]} and {self._shift.shape[0]} genes")
        d = other._shift - self._shift  # other's sums about this shift: s + n d, ss + 2 d s + n d^2
        self._ss = self._ss + other._ss + 2 * d * other._s + other._n * d * d
        self._s = self._s + other._s + other._n * d
        self._n = self._n + other._n
        return self._finish()

    def _finish(self) -> Standardizer:
        """The mean, sd and constant genes from the running sums."""
        n = np.maximum(self._n, 1)
        m = self._s / n
        sd = np.sqrt(np.maximum(self._ss / n - m * m, 0.0))
        # relative cut-off: an sd at rounding level of the values is a constant gene
        const = ~(sd > 1e-12 * np.maximum(np.abs(self._shift + m), 1.0))
        self.mean_ = self._shift + m
        self.scale_ = np.where(const, 1.0, sd)
        self.n_constant_ = int(const.sum())
        self.n_genes_ = self._shift.shape[0]
        return self

    def transform(self, X: np.ndarray) -> np.ndarray:
        """(X - mean) / sd, samples x genes, in the data's own precision (float32 stays float32)."""
        self._check_fitted()
        X = self._check_genes(X)
        dt = X.dtype if X.dtype.kind == "f" else np.float64
        out = np.subtract(X, self.mean_.astype(dt), dtype=dt)  # one new array, then in place
        out /= self.scale_.astype(dt)
        return out

    def inverse_transform(self, Z: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """Z * sd + mean, samples x genes; float32 stays float32 (never upcast to float64).

        ``out`` (same shape, float dtype) receives the result, e.g. a slice of a
        preallocated output block; it may be ``Z`` itself.
        """
        self._check_fitted()
        Z = self._check_genes(Z)
        dt = Z.dtype if Z.dtype.kind == "f" else np.float64
        if out is None:
            out = np.multiply(Z, self.scale_.astype(dt), dtype=dt)
        else:
            np.multiply(Z, self.scale_.astype(out.dtype), out=out)
        out += self.mean_.astype(out.dtype)
        return out

    def get_state(self):
        return {"step": self.name, "n_constant": self.n_constant_}, {"mean": self.mean_, "scale": self.scale_}

    @classmethod
    def from_state(cls, params, arrays) -> Standardizer:
        step = cls()
        step.mean_ = np.asarray(arrays["mean"], dtype=np.float64)
        step.scale_ = np.asarray(arrays["scale"], dtype=np.float64)
        step.n_constant_ = int(params.get("n_constant", 0))
        step.n_genes_ = step.mean_.shape[0]
        return step


_STEPS = {cls.name: cls for cls in (Log2Transform, QuantileNormalizer, Standardizer)}


def step_from_state(params: dict, arrays: Mapping[str, np.ndarray]) -> _Step:
    """Rebuild a fitted step from :meth:`get_state` output (no pickle involved)."""
    try:
        cls = _STEPS[params["step"]]
    except KeyError:
        raise ModelError(f"unknown preprocessing step {params.get('step')!r}; known: {sorted(_STEPS)}") from None
    return cls.from_state(params, arrays)


class Pipeline(_Step):
    """Steps applied in order; fitted step by step on the training data.

    ``inverse_transform`` undoes the invertible steps in reverse order (quantile
    normalization is skipped: it is not invertible).
    """

    name = "pipeline"
    _fitted_attr = "fitted_"

    def __init__(self, steps: list[_Step]) -> None:
        self.steps = list(steps)

    def fit(self, X: np.ndarray) -> Pipeline:
        for step in self.steps:
            X = step.fit(X).transform(X)
        self.fitted_ = True
        return self

    def fit_blocks(self, blocks: Callable[[], Iterable[np.ndarray]]) -> Pipeline:
        """Streaming fit: ``blocks()`` returns a fresh iterator of sample blocks each call.

        One pass per step, each step fitted on the blocks transformed by the steps
        before it, so the result equals :meth:`fit` on the concatenated blocks (up to
        floating-point rounding of the sums).
        """
        for i, step in enumerate(self.steps):
            for b in blocks():
                for prev in self.steps[:i]:
                    b = prev.transform(b)
                step.partial_fit(b)
        self.fitted_ = True
        return self

    def transform(self, X: np.ndarray) -> np.ndarray:
        self._check_fitted()
        for step in self.steps:
            X = step.transform(X)
        return X

    def inverse_transform(self, X: np.ndarray) -> np.ndarray:
        self._check_fitted()
        for step in reversed(self.steps):
            if hasattr(step, "inverse_transform"):
                X = step.inverse_transform(X)
        return X

    def get_state(self):
        params, arrays = {"step": self.name, "steps": []}, {}
        for i, step in enumerate(self.steps):
            p, a = step.get_state()
            params["steps"].append(p)
            arrays.update({f"{i}.{k}": v for k, v in a.items()})
        return params, arrays

    @classmethod
    def from_state(cls, params, arrays) -> Pipeline:
        steps = []
        for i, p in enumerate(params["steps"]):
            prefix = f"{i}."
            steps.append(step_from_state(p, {k[len(prefix):]: v for k, v in arrays.items() if k.startswith(prefix)}))
        pipe = cls(steps)
        pipe.fitted_ = True
        return pipe

    def __repr__(self) -> str:
        return f"Pipeline({self.steps!r})"


_STEPS[Pipeline.name] = Pipeline


def collapse_probes(
    matrix: ExpressionMatrix,
    probe_to_gene: Mapping[str, str] | pd.Series | str,
    *,
    drop_ambiguous: bool = True,
) -> ExpressionMatrix:
    """Average the probes of each gene into one column per gene, as D-GEX did.

    Parameters
    ----------
    matrix
        Probe-level data, samples x probes.
    probe_to_gene
        Probe id -> gene id, as a mapping / Series, or the name of a gene-metadata
        column holding the gene of each probe (e.g. ``"Description"``, ``"symbol"``).
    drop_ambiguous
        Drop probes annotated to several genes (GPL annotations write ``A /// B``) and
        probes without a gene; otherwise an error names them.

    Returns
    -------
    ExpressionMatrix
        samples x genes, genes in order of first appearance, gene_meta with
        ``n_probes`` and the comma-separated ``probes`` of each gene. The mean ignores
        NaN (a gene is NaN in a sample only when all its probes are).
    """
    if isinstance(probe_to_gene, str):
        if probe_to_gene not in matrix.gene_meta:
            raise DatasetError(f"no gene-metadata column {probe_to_gene!r}; columns: {list(matrix.gene_meta.columns)}")
        mapping = matrix.gene_meta[probe_to_gene]
    else:
        mapping = pd.Series(probe_to_gene, dtype=object)
    genes = pd.Series([mapping.get(p) for p in matrix.gene_ids], index=matrix.gene_ids, dtype=object)
    genes = genes.map(lambda g: None if g is None or (isinstance(g, float) and np.isnan(g)) or not str(g).strip()
                      else str(g).strip())
    ambiguous = genes.map(lambda g: g is None or "///" in g)
    if ambiguous.any() and not drop_ambiguous:
        raise DatasetError(f"{int(ambiguous.sum())} probes have no gene or several (e.g. "
                           f"{genes.index[ambiguous][:5].tolist()}); drop them with drop_ambiguous=True")
    keep = genes[~ambiguous]
    if keep.empty:
        raise DatasetError("no probe maps to exactly one gene: check the probe -> gene mapping")
    codes, uniq = pd.factorize(keep.to_numpy())
    cols = matrix.gene_ids.get_indexer(keep.index)
    X = matrix.values[:, cols].astype(np.float64)
    ok = ~np.isnan(X)
    # probes x genes indicator: one sparse product sums each gene's probes per sample
    member = sparse.csr_matrix((np.ones(len(codes)), (np.arange(len(codes)), codes)), shape=(len(codes), len(uniq)))
    sums = np.asarray((member.T @ np.where(ok, X, 0.0).T).T)
    counts = np.asarray((member.T @ ok.T.astype(np.float64)).T)
    with np.errstate(invalid="ignore", divide="ignore"):
        values = (sums / counts).astype(matrix.values.dtype)
    probes = keep.groupby(codes).apply(lambda s: ",".join(s.index)).to_numpy()
    gene_meta = pd.DataFrame({"n_probes": np.bincount(codes), "probes": probes}, index=pd.Index(uniq, dtype=object))
    n_drop = int(ambiguous.sum())
    return ExpressionMatrix(
        values, matrix.sample_ids, pd.Index(uniq, dtype=object), matrix.sample_meta, gene_meta,
        matrix.provenance.with_transform(
            f"collapse probes -> genes (mean of {len(keep)} probes into {len(uniq)} genes; {n_drop} probes dropped)"),
    )
