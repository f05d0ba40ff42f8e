"""The GCT block writer: GCT cannot be appended to, so the blocks are kept in memory
and the whole file is written at close (with :func:`dgex_core.io.write`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from ..matrix import ExpressionMatrix
from .base import BlockWriter


class _Whole(BlockWriter):
    """Formats written in one go (GCT): blocks are kept until close."""

    retains_blocks = True

    def __init__(self, path: Path, gene_ids, gene_meta, fmt: str) -> None:
        self.path, self.gene_ids, self.gene_meta, self.fmt = path, gene_ids, gene_meta, fmt
        self.blocks: list[ExpressionMatrix] = []

    def append(self, block: ExpressionMatrix) -> None:
        self.blocks.append(block)

    def close(self) -> Path:
        from ..io import write

        values = np.vstack([b.values for b in self.blocks])
        sids = pd.Index([s for b in self.blocks for s in b.sample_ids], dtype=object)
        smeta = pd.concat([b.sample_meta for b in self.blocks])
        m = ExpressionMatrix(values, sids, self.gene_ids, smeta, self.gene_meta, self.blocks[0].provenance)
        write(m, self.path, format=self.fmt)
        return self.path

    def discard(self) -> None:
        self.blocks = []
