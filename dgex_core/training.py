"""From a dataset to a stored, scored run: split, fit, evaluate, flag, check.

:func:`train_run` is what the CLI's ``dgex train`` and the dashboard's Train page
call. It keeps the science honest in one place:

- the split is made before anything is fitted; preprocessing and the model see the
  training samples only, settings (ridge alpha, k, epochs) are chosen on validation
  samples only, and the test samples are touched once, to score the final model;
- errors are reported per gene (and per sample), in D-GEX's standardized units and
  in original units, beside the noise floor when the data know it;
- each target gets a *well inferred* flag from the **validation** set (Pearson r of
  predicted vs measured above a threshold, as LINCS flags its "best inferred genes"),
  so the flag is not tuned on the test set it is reported on;
- an out-of-distribution check is fitted on training landmarks and calibrated on
  validation landmarks.
"""

from __future__ import annotations

import hashlib
import platform
import time

import numpy as np
import pandas as pd

from . import __version__
from .backends import DelegateBackend
from .dataset import Dataset, Split
from .errors import DatasetError, ModelError
from .evaluation.metrics import Evaluation, evaluate_model
from .lazy import LazyMatrix, LazyRows, block_rows, sample_positions
from .models.base import Model, Progress
from .preprocess import QuantileNormalizer, normalization_of
from .store import Run
from .trust import DistributionCheck

__all__ = ["WELL_INFERRED_R", "evaluate_external", "fit_split", "predict_with_run", "quantile_to_reference", "run_split", "train_run",
           "well_inferred_flags"]

#: Default Pearson r on validation above which a target counts as well inferred.
WELL_INFERRED_R = 0.5

#: ... and the one-sided p-value of that r (against no correlation) it must beat: with
#: few validation samples a pure-noise gene reaches r >= 0.5 by chance (a third of them
#: with 5 samples), so the flag also asks that r be significant; a noise gene then
#: passes with probability at most 1% at any validation size.
WELL_INFERRED_P = 0.01

#: Fewest validation samples for which the flag is computed (below it no target is
#: flagged, and the run says why).
MIN_WELL_INFERRED_SAMPLES = 5

#: Most training (and validation) samples, evenly spaced, that fit the out-of-distribution
#: check: a PCA of ~1,000 landmarks and a 99% quantile are settled long before that.
MAX_TRUST_SAMPLES = 20_000


def _rows(values, rows: np.ndarray) -> np.ndarray:
    """``values[rows]`` as an array (all of it without a copy when every row is asked)."""
    if rows.size == values.shape[0] and isinstance(values, np.ndarray):
        return values
    return np.asarray(values[rows])


def _ids_digest(ids) -> str:
    return hashlib.sha256("\n".join(map(str, ids)).encode()).hexdigest()[:16]


def well_inferred_flags(pearson: pd.Series, n_samples: int, r_min: float = WELL_INFERRED_R,
                        p_max: float = WELL_INFERRED_P) -> pd.Series:
    """Per target: validation Pearson r >= ``r_min`` and significantly above 0 (one-sided
    t-test on ``n_samples - 2`` degrees of freedom, p < ``p_max``); NaN r is False."""
    from scipy.stats import t as student_t

    r = pearson.to_numpy(np.float64)
    df = max(n_samples - 2, 1)
    with np.errstate(divide="ignore", invalid="ignore"):
        tstat = r * np.sqrt(df / np.maximum(1.0 - r * r, 1e-300))
    p = student_t.sf(np.nan_to_num(tstat, nan=-np.inf), df)
    return pd.Series((np.nan_to_num(r, nan=-1.0) >= r_min) & (p < p_max), index=pearson.index, name="well_inferred")


def missing_values_report(dataset: Dataset, split: Split) -> str:
    """Where the training and validation samples hold missing or infinite values: the
    file, how many samples and genes, the first of each; read block by block (called
    when a fit has failed on them, so the extra pass costs nothing otherwise)."""
    bad_samples: list[str] = []
    n_bad = 0
    genes = dataset.landmark_ids.append(dataset.target_ids)
    bad_genes = np.zeros(len(genes), bool)
    for part in (split.train, split.val):
        bs = block_rows(part.n_landmarks + part.n_targets)
        for s0 in range(0, part.n_samples, bs):
            sl = slice(s0, min(s0 + bs, part.n_samples))
            v = np.hstack([np.asarray(part.landmarks[sl]), np.asarray(part.targets[sl])])
            bad = ~np.isfinite(v)
            rows = bad.any(axis=1)
            n_bad += int(rows.sum())
            bad_samples.extend(part.sample_ids[sl][rows][: max(0, 5 - len(bad_samples))].tolist())
            bad_genes |= bad.any(axis=0)
    where = dataset.provenance.path or "the data"
    g = genes[bad_genes]
    return (f"{where}: missing (NaN) or infinite values in {n_bad:,} training / validation samples (e.g. "
            f"{', '.join(map(str, bad_samples))}) and {len(g):,} genes (e.g. {', '.join(map(str, g[:5]))}); "
            "drop those samples or genes, or fill them (e.g. with each gene's training mean) before training")


def fit_split(model: Model, dataset: Dataset, split: Split, progress: Progress | None = None) -> Model:
    """Fit ``model`` on the training samples of ``split`` (settings, early stopping on its
    validation samples); missing values are reported by sample and gene. Under torch
    DDP every rank calls this on the same split and trains on its own shard."""
    try:
        return model.fit(split.train, split.val if split.val.n_samples else None, progress=progress)
    except ModelError as e:
        if "missing" not in str(e):
            raise
        raise ModelError(missing_values_report(dataset, split)) from None


def train_run(
    dataset: Dataset,
    model: Model,
    name: str,
    *,
    split: Split | None = None,
    val: float = 0.1,
    test: float = 0.1,
    seed: int = 0,
    group_by: str | None = None,
    well_inferred_r: float = WELL_INFERRED_R,
    keep_predictions: bool = False,
    progress: Progress | None = None,
    dataset_name: str | None = None,
) -> Run:
    """Split ``dataset``, fit ``model`` on train (settings on validation), score it on test.

    Parameters
    ----------
    dataset
        Landmarks and targets of all samples.
    model
        An unfitted model of any family.
    name
        The run's name (its folder name once saved).
    split
        A ready split; otherwise ``dataset.split(val, test, seed, group_by)``.
    well_inferred_r
        Validation Pearson r above which a target is flagged well inferred (it must
        also be significant, :func:`well_inferred_flags`).
    keep_predictions
        Keep the test-set predictions in the run.
    progress
        ``progress(step, total, metrics)`` callback passed to ``model.fit``.

    Returns
    -------
    Run
        Not yet saved: pass it to :func:`dgex_core.store.save_run`.
    """
    split = split or dataset.split(val=val, test=test, seed=seed, group_by=group_by)
    t0 = time.perf_counter()
    fit_split(model, dataset, split, progress)
    fit_seconds = time.perf_counter() - t0

    metrics: dict = {"fit_seconds": fit_seconds}
    well = None
    if split.val.n_samples > 1:
        ev_val = evaluate_model(model, split.val, spearman=False)  # validation flags need Pearson r only
        metrics["val"] = ev_val.summary
    if split.val.n_samples >= MIN_WELL_INFERRED_SAMPLES:
        well = well_inferred_flags(ev_val.per_gene["pearson"], split.val.n_samples, well_inferred_r)
        metrics["n_well_inferred"] = int(well.sum())
    else:
        metrics["well_inferred_note"] = (f"not computed: {split.val.n_samples} validation samples, the flag needs "
                                         f"at least {MIN_WELL_INFERRED_SAMPLES}")
    per_gene = per_sample = preds = None
    if split.test.n_samples:
        ev = evaluate_model(model, split.test)
        metrics["test"] = ev.summary
        per_gene = ev.per_gene
        if well is not None:
            per_gene["well_inferred"] = well.reindex(per_gene.index).fillna(False).astype(bool)
        if hasattr(model, "choice_table"):  # a per-gene choice: which family each gene uses
            per_gene["uses"] = model.choice_table()["uses"].reindex(per_gene.index).to_numpy()
        per_sample = ev.per_sample.to_frame()
        if keep_predictions:
            preds = model.predict_dataset(split.test)

    trust = None
    if split.train.n_samples >= 3 and split.train.n_landmarks >= 2:  # calibrated on held-out samples
        tr = sample_positions(split.train.n_samples, MAX_TRUST_SAMPLES)
        va = sample_positions(split.val.n_samples, MAX_TRUST_SAMPLES)
        trust = DistributionCheck().fit(model.standardize_landmarks(_rows(split.train.landmarks, tr)),
                                        model.standardize_landmarks(_rows(split.val.landmarks, va))
                                        if split.val.n_samples else None)
        if per_sample is not None:
            score = np.empty(split.test.n_samples)
            bs = block_rows(split.test.n_landmarks)
            for s0 in range(0, split.test.n_samples, bs):
                sl = slice(s0, min(s0 + bs, split.test.n_samples))
                score[sl] = trust.score(model.standardize_landmarks(np.asarray(split.test.landmarks[sl])))
            per_sample["ood_score"] = score
    if per_sample is not None:
        meta = split.test.sample_meta
        for c in meta.columns[:20]:
            if c not in per_sample:
                per_sample[c] = meta[c].reindex(per_sample.index).to_numpy()

    # the training distribution over all genes, for quantile-normalizing external data later;
    # the mean of sorted profiles settles within a few thousand samples, so at most 2,000 are used
    # the same samples give the training targets' range, to which predictions are clipped by default
    reference = QuantileNormalizer()
    rows = np.unique(np.linspace(0, split.train.n_samples - 1, min(split.train.n_samples, 2000)).astype(int))
    low, high = np.inf, -np.inf
    for s in range(0, len(rows), 1000):
        r = rows[s:s + 1000]
        xb, yb = split.train.read_block(r)
        reference.partial_fit(np.hstack([xb, yb]))
        with np.errstate(invalid="ignore"):
            low, high = min(low, float(np.nanmin(yb, initial=np.inf))), max(high, float(np.nanmax(yb, initial=-np.inf)))
    target_range = ({"low": low, "high": high, "n_samples": len(rows),
                     "from": "training targets (every training sample, or 2,000 evenly spaced ones)"}
                    if np.isfinite(low) and np.isfinite(high) else None)

    import torch

    config = {
        "family": model.family,
        "params": model.get_params(),
        "dataset": {
            "name": dataset_name or dataset.provenance.path or dataset.provenance.format,
            "provenance": dataset.provenance.to_dict(),
            "n_samples": dataset.n_samples,
            "coverage": None if dataset.coverage is None else {
                "n_requested": dataset.coverage.n_requested, "n_present": dataset.coverage.n_present,
                "missing": dataset.coverage.missing},
        },
        "split": {
            "seed": split.seed, "group_by": split.group_by,
            "n_train": split.train.n_samples, "n_val": split.val.n_samples, "n_test": split.test.n_samples,
            "train_ids_sha": _ids_digest(split.train.sample_ids), "val_ids_sha": _ids_digest(split.val.sample_ids),
            "test_ids_sha": _ids_digest(split.test.sample_ids),
        },
        "normalize": normalization_of(dataset.provenance.transforms),
        "n_landmarks": len(model.landmark_ids_),
        "n_targets": len(model.target_ids_),
        "well_inferred_r": well_inferred_r,
        "well_inferred_p": WELL_INFERRED_P,
        "target_range": target_range,
        "versions": {"dgex": __version__, "numpy": np.__version__, "pandas": pd.__version__,
                     "torch": torch.__version__, "python": platform.python_version()},
    }
    return Run(name, model, config, metrics, per_gene, per_sample, trust, preds, reference=reference.reference_)


def predict_with_run(run: Run, data: Dataset) -> tuple[pd.DataFrame, pd.Series]:
    """Predict every target of ``run`` for the samples of ``data`` (landmarks matched by id).

    Returns
    -------
    predictions
        samples x targets DataFrame in original units.
    ood_score
        Per-sample out-of-distribution score (NaN when the run has no check); above 1
        means further from the training data than 99% of held-out training-like samples.
    """
    preds = run.model.predict_dataset(data)
    if run.trust is None:
        return preds, pd.Series(np.nan, index=data.sample_ids, name="ood_score")
    z = run.model.standardize_landmarks(data.landmarks[:, run.model.landmark_positions(data)])
    return preds, pd.Series(run.trust.score(z), index=data.sample_ids, name="ood_score")


def quantile_to_reference(data: Dataset, reference: np.ndarray) -> Dataset:
    """Quantile-normalize each sample (landmarks and targets together) onto a training distribution.

    This is how D-GEX carried its GEO microarray model to GTEx and 1000 Genomes RNA-seq:
    every external sample is given the training compendium's distribution of values,
    keeping its own ranks. ``reference`` is the sorted training distribution stored
    with a run; when the sample has fewer genes it is resampled to their number.
    """
    qn = QuantileNormalizer.from_state({}, {"reference": np.asarray(reference, np.float64)})
    prov = data.provenance.with_transform("quantile-normalized to the training distribution")
    if data.is_lazy:  # normalized block by block as it is read
        lmv, tgv = data.landmarks, data.targets
        m = lmv.matrix
        cols = np.concatenate([np.arange(m.n_genes) if lmv.cols is None else lmv.cols,
                               np.arange(m.n_genes) if tgv.cols is None else tgv.cols])

        def read(rows, sub):
            out = qn.map_rows(m.read(rows, cols).astype(np.float64)).astype(np.float32)
            return out if sub is None else out[:, sub]

        qm = LazyMatrix(DelegateBackend((m.n_samples, cols.size), np.float32, read), m.sample_ids,
                        pd.Index([f"c{i}" for i in range(cols.size)], dtype=object), provenance=prov)
        k = data.n_landmarks
        return Dataset(LazyRows(qm, lmv.rows, np.arange(k)), LazyRows(qm, lmv.rows, np.arange(k, cols.size)),
                       data.landmark_ids, data.target_ids, data.sample_ids, data.sample_meta,
                       data.landmark_meta, data.target_meta, prov, data.coverage)
    out = qn.map_rows(np.hstack([data.landmarks, data.targets]).astype(np.float64))
    out = out.astype(data.landmarks.dtype, copy=False)
    k = data.n_landmarks
    return Dataset(out[:, :k], out[:, k:], data.landmark_ids, data.target_ids, data.sample_ids, data.sample_meta,
                   data.landmark_meta, data.target_meta, prov, data.coverage)


def evaluate_external(run: Run, data: Dataset, *, quantile: bool = False, progress=None) -> Evaluation:
    """Score a run on an external dataset (another platform, another study).

    ``data`` is aligned to the run's genes by id (missing landmarks are an error;
    targets it lacks are skipped). With ``quantile``, its samples are first
    quantile-normalized to the run's training distribution.
    """
    from .evaluation.metrics import evaluate_model

    ref = Dataset(np.empty((0, len(run.model.landmark_ids_))), np.empty((0, len(run.model.target_ids_))),
                  run.model.landmark_ids_, run.model.target_ids_, [])
    aligned = data.align_like(ref)
    if not aligned.has_targets:
        raise ModelError("the external dataset measures none of the run's targets: nothing to score")
    if quantile:
        if run.reference is None:
            raise ModelError(f"run {run.name} has no stored training distribution; retrain it to use quantile normalization")
        aligned = quantile_to_reference(aligned, run.reference)
    ev = evaluate_model(run.model, aligned, progress=progress)
    ev.summary["quantile_normalized"] = quantile
    return ev


def run_split(run: Run, data: Dataset) -> Split:
    """The run's own split of ``data`` (same seed, sizes and grouping), checked by sample-id digest.

    Raises
    ------
    DatasetError
        If ``data`` does not give back the run's test samples (another dataset).
    """
    sp = run.config.get("split", {})
    n = data.n_samples
    if sp.get("n_train", 0) + sp.get("n_val", 0) + sp.get("n_test", 0) != n:
        raise DatasetError(f"run {run.name!r} was trained on {sp.get('n_train', 0) + sp.get('n_val', 0) + sp.get('n_test', 0)} "
                           f"samples, the current dataset has {n}: load the run's dataset (the Data page; --data on the command line)")
    split = data.split(val=sp.get("val", sp["n_val"] / n), test=sp.get("test", sp["n_test"] / n),
                       seed=sp.get("seed", 0), group_by=sp.get("group_by"))
    want = sp.get("test_ids_sha")
    if want and _ids_digest(split.test.sample_ids) != want:
        raise DatasetError(f"the current dataset does not give back the test samples of run {run.name!r}: "
                           "load the run's dataset (the Data page; --data on the command line)")
    return split
