"""What applying a run to a matrix in memory gives: a preview, and a downloadable file.

The dashboard's Predict page shows :func:`predict_preview` (landmark coverage, OOD
scores, clipped counts, the first inferred values) and offers :func:`predictions_file`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from ..matrix import ExpressionMatrix
from ..store import Run
from .apply import landmark_columns, output_gene_meta, predict_matrix_block

__all__ = ["EXPORT_SUFFIX", "PredictPreview", "in_run_units", "predict_preview", "predictions_file"]


@dataclass
class PredictPreview:
    """What applying a run to a file would give: landmark coverage, OOD scores, a preview."""

    n_samples: int
    n_present: int
    n_needed: int
    missing: list
    ood: pd.DataFrame | None
    preview: pd.DataFrame | None
    n_clipped: pd.Series | None = None  # per sample: inferred values clipped to the training range
    clip_range: tuple[float, float] | None = None


def in_run_units(run: Run, matrix: ExpressionMatrix) -> ExpressionMatrix:
    """``matrix`` normalized per sample as the run's training data were (log2 CPM for a
    run trained on counts, log2(x+1) for one trained on TPM); unchanged otherwise."""
    from ..preprocess import NORMALIZATIONS

    name = run.config.get("normalize")
    if name not in NORMALIZATIONS or NORMALIZATIONS[name][1] in matrix.provenance.transforms:
        return matrix
    fn, label = NORMALIZATIONS[name]
    return matrix.with_values(fn(matrix.values), label)


def predict_preview(run: Run, matrix: ExpressionMatrix, n_preview: int = 20, clip: bool = True) -> PredictPreview:
    """Coverage of the run's landmarks in ``matrix`` and, when complete, OOD scores, clipped
    counts (``n_clipped``, with ``clip``: inferred values clipped to the training range) and a preview."""
    from ..landmarks import LandmarkList, match_landmarks

    want = run.model.landmark_ids_
    matrix = in_run_units(run, matrix)
    cov = match_landmarks(LandmarkList.from_ids(list(want)), matrix.gene_ids, matrix.gene_meta)
    if cov.missing:
        return PredictPreview(matrix.n_samples, cov.n_present, len(want), cov.missing, None, None)
    pos = landmark_columns(run, matrix.gene_ids, matrix.gene_meta, matrix.provenance.path or "input")
    clip_range = run.target_range() if clip else None
    out = predict_matrix_block(run, matrix, pos, clip=clip_range)
    cols = [c for c in ("ood_score", "ood_flag") if c in out.sample_meta]
    ood = out.sample_meta[cols] if cols and run.trust is not None else None  # no check: nothing to show
    k = min(n_preview, out.n_samples)
    prev = pd.DataFrame(out.values[:k, len(want):len(want) + 12], index=out.sample_ids[:k],
                        columns=out.gene_ids[len(want):len(want) + 12])
    return PredictPreview(matrix.n_samples, cov.n_present, len(want), [], ood, prev,
                          out.sample_meta["n_clipped"] if clip_range else None, clip_range)


EXPORT_SUFFIX = {"csv": ".csv", "parquet": ".parquet", "gct": ".gct", "gctx": ".gctx"}


def predictions_file(run: Run, matrix: ExpressionMatrix, folder: str | os.PathLike, fmt: str,
                     block_size: int = 4096, clip: bool = True) -> Path:
    """Write measured landmarks + inferred targets of ``matrix`` to ``folder`` in ``fmt``
    (inferred values clipped to the training range with ``clip``, counted in ``n_clipped``).

    Returns the written file (``<run>_predictions.<fmt>``), complete.
    """
    from ..export import open_block_writer

    if fmt not in EXPORT_SUFFIX:
        raise ValueError(f"format must be one of {sorted(EXPORT_SUFFIX)}, got {fmt!r}")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{run.name}_predictions{EXPORT_SUFFIX[fmt]}"
    matrix = in_run_units(run, matrix)
    pos = landmark_columns(run, matrix.gene_ids, matrix.gene_meta, matrix.provenance.path or "input")
    genes = run.model.landmark_ids_.append(run.model.target_ids_)
    clip_range = run.target_range() if clip else None
    writer = open_block_writer(path, genes, output_gene_meta(run, clip_range), fmt)
    with writer:
        for s in range(0, matrix.n_samples, block_size):
            sl = slice(s, s + block_size)
            block = ExpressionMatrix(matrix.values[sl], matrix.sample_ids[sl], matrix.gene_ids,
                                     matrix.sample_meta.iloc[sl], matrix.gene_meta, matrix.provenance)
            writer.append(predict_matrix_block(run, block, pos, clip=clip_range))
    return path
