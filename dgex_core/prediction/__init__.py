"""Applying a run to landmark-only samples: one block in memory, a whole file streamed
block by block to a file, or a preview for the dashboard.

:mod:`.apply` holds the block computation and :func:`predict_file`; :mod:`.preview`
what the Predict page shows and downloads.
"""

from .apply import (
    MAX_IMPUTED_SHARE,
    OUTPUT_BLOCK_BYTES,
    default_block_size,
    landmark_columns,
    missing_landmarks_message,
    output_gene_meta,
    predict_file,
    predict_matrix_block,
)
from .preview import EXPORT_SUFFIX, PredictPreview, in_run_units, predict_preview, predictions_file

__all__ = [
    "EXPORT_SUFFIX",
    "MAX_IMPUTED_SHARE",
    "OUTPUT_BLOCK_BYTES",
    "PredictPreview",
    "default_block_size",
    "in_run_units",
    "landmark_columns",
    "missing_landmarks_message",
    "output_gene_meta",
    "predict_file",
    "predict_matrix_block",
    "predict_preview",
    "predictions_file",
]
