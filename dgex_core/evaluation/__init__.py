"""Scoring a model on held-out samples, per gene: streaming metrics and the tables of runs.

:mod:`.metrics` holds the D-GEX protocol (per-gene MAE, RMSE, Pearson and Spearman r
accumulated over sample blocks; summaries; comparisons); :mod:`.tables` the per-gene
tables of finished runs that the dashboard plots and the CLI prints.
"""

from .metrics import (
    ColumnSpill,
    Evaluation,
    GeneErrorAccumulator,
    compare,
    evaluate_model,
    evaluate_predictions,
    per_gene_metrics,
    per_sample_mae,
    summarize,
)
from .tables import (
    error_long_table,
    floor_long_table,
    held_out_predictions,
    noise_floor,
    runs_table,
    wins,
)

__all__ = [
    "ColumnSpill",
    "Evaluation",
    "GeneErrorAccumulator",
    "compare",
    "error_long_table",
    "evaluate_model",
    "evaluate_predictions",
    "floor_long_table",
    "held_out_predictions",
    "noise_floor",
    "per_gene_metrics",
    "per_sample_mae",
    "runs_table",
    "summarize",
    "wins",
]
