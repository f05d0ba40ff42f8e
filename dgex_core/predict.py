"""Apply a stored run to landmark-only profiles, block by block, and write the result.

The output carries, for every sample, the measured landmarks and the inferred
targets (like the LINCS level-3 "INF" files), per-gene metadata ``role``
(``measured`` / ``inferred``) and ``well_inferred`` (from the run's validation), and
per-sample ``ood_score`` / ``ood_flag`` (how far the profile lies from the training
data) and ``n_imputed`` (landmark values that were missing and imputed with the
training means, when the user chose to impute rather than refuse). Inputs are read in sample blocks when the format allows it (GCTX); other
formats are read whole and then processed in blocks.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pandas as pd

from .errors import ModelError
from .export import open_block_writer
from .landmarks import LandmarkList, match_landmarks
from .matrix import ExpressionMatrix
from .store import Run

__all__ = ["predict_file", "predict_matrix_block"]


def _landmark_columns(run: Run, gene_ids: pd.Index, gene_meta: pd.DataFrame | None, source: str) -> np.ndarray:
    """Positions in the input of each of the run's landmarks (matched by id, any id kind)."""
    want = run.model.landmark_ids_
    pos = gene_ids.get_indexer(want)
    if (pos >= 0).all():
        return pos
    cov = match_landmarks(LandmarkList.from_ids(list(want)), gene_ids, gene_meta)
    if cov.missing:
        raise ModelError(
            f"{source}: {len(cov.missing)} of the run's {len(want)} landmarks are not in the input "
            f"(e.g. {cov.missing[:5]}); the model needs every landmark it was trained on"
        )
    return gene_ids.get_indexer(pd.Index(cov.gene_ids))


def predict_matrix_block(
    run: Run, block: ExpressionMatrix, lm_pos: np.ndarray, missing: str = "refuse"
) -> ExpressionMatrix:
    """One output block: measured landmarks + inferred targets, with OOD columns in sample_meta.

    ``missing="impute"`` replaces missing landmark values by the training means and
    records per sample how many were imputed (``n_imputed``); ``"refuse"`` (default)
    stops with a message naming the samples.
    """
    x = block.values[:, lm_pos]
    nan = ~np.isfinite(x)
    if nan.any() and missing == "refuse":
        bad = block.sample_ids[nan.any(axis=1)][:5].tolist()
        raise ModelError(f"missing or infinite landmark values in samples {bad}; impute them with the training means "
                         "(--missing impute) or drop those samples")
    pred = run.model.predict(x, missing=missing).astype(np.float32, copy=False)
    meta = block.sample_meta.copy()
    meta["n_imputed"] = nan.sum(axis=1)
    if run.trust is not None:
        z = run.model.standardize_landmarks(np.where(nan, np.nan, x))
        score = run.trust.score(np.where(np.isnan(z), 0.0, z))
        meta["ood_score"] = score
        meta["ood_flag"] = score > 1.0
    values = np.hstack([x.astype(np.float32, copy=False), pred])
    genes = run.model.landmark_ids_.append(run.model.target_ids_)
    return ExpressionMatrix(values, block.sample_ids, genes, meta, None, block.provenance)


def output_gene_meta(run: Run) -> pd.DataFrame:
    lm, tg = run.model.landmark_ids_, run.model.target_ids_
    well = run.well_inferred()
    return pd.DataFrame({
        "role": ["measured"] * len(lm) + ["inferred"] * len(tg),
        "well_inferred": [True] * len(lm) + well.reindex(tg).fillna(False).astype(bool).tolist(),
    }, index=lm.append(tg))


def _blocks(path: Path, block_size: int) -> Iterator[tuple[ExpressionMatrix, pd.Index, pd.DataFrame]]:
    from .io import read, sniff

    if sniff(path) == "gctx":
        from .io.gctx import GCTXFile

        with GCTXFile(path) as f:
            for b in f.iter_sample_blocks(block_size):
                yield b, f.row_ids, f.row_meta()
        return
    m = read(path)
    for s in range(0, m.n_samples, block_size):
        sl = slice(s, s + block_size)
        yield (ExpressionMatrix(m.values[sl], m.sample_ids[sl], m.gene_ids, m.sample_meta.iloc[sl],
                                m.gene_meta, m.provenance), m.gene_ids, m.gene_meta)


def predict_file(
    run: Run,
    input_path: str | os.PathLike,
    output_path: str | os.PathLike,
    *,
    format: str | None = None,
    block_size: int = 10_000,
    missing: str = "refuse",
    progress: Callable[[int, int | None, dict], None] | None = None,
) -> dict:
    """Predict every target for every sample of ``input_path`` and write ``output_path``.

    Returns a summary: samples, genes written, samples flagged out of distribution.
    The output file appears only when complete.
    """
    input_path = Path(input_path)
    n_done, n_flagged, n_imputed, lm_pos, writer = 0, 0, 0, None, None
    total = None
    try:
        for block, gene_ids, gene_meta in _blocks(input_path, block_size):
            if lm_pos is None:
                lm_pos = _landmark_columns(run, gene_ids, gene_meta, str(input_path))
                writer = open_block_writer(output_path, run.model.landmark_ids_.append(run.model.target_ids_),
                                           output_gene_meta(run), format)
            out = predict_matrix_block(run, block, lm_pos, missing)
            writer.append(out)
            n_done += block.n_samples
            n_imputed += int((out.sample_meta["n_imputed"] > 0).sum())
            if "ood_flag" in out.sample_meta:
                n_flagged += int(out.sample_meta["ood_flag"].sum())
            if progress:
                progress(n_done, total, {"samples": n_done})
        if writer is None:
            raise ModelError(f"{input_path}: no samples to predict")
        writer.close()
    except BaseException:
        if writer is not None:
            writer.discard()
        raise
    return {"samples": n_done, "landmarks": len(run.model.landmark_ids_), "targets": len(run.model.target_ids_),
            "ood_flagged": n_flagged, "samples_imputed": n_imputed, "output": str(output_path)}
