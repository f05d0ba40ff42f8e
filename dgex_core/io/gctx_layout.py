"""Where things are in a GCTX file, and how its matrix is chunked: shared by the reader
(:mod:`dgex_core.io.gctx`) and the writer (:mod:`dgex_core.io.gctx_write`).

Layout (the Broad's, as cmapPy writes it)::

    /                      attrs: version = "GCTX1.0", src = <file name>
    /0/DATA/0/matrix       float32 (or float64), shape (n_samples, n_genes)
    /0/META/ROW/id         gene ids        (n_genes,)
    /0/META/ROW/<field>    gene metadata   (n_genes,)   one 1-D dataset per field
    /0/META/COL/id         sample ids      (n_samples,)
    /0/META/COL/<field>    sample metadata (n_samples,)

In GCT vocabulary rows are genes and columns samples, and the matrix is stored
**transposed**, so on disk it is already samples x genes, the orientation of
:class:`~dgex_core.matrix.ExpressionMatrix`.
"""

from __future__ import annotations

__all__ = ["CHUNK_BYTES", "CHUNK_MAX_GENES", "COL", "MATRIX", "ROW", "VERSION", "broad_chunks"]

VERSION = "GCTX1.0"
MATRIX = "/0/DATA/0/matrix"
ROW = "/0/META/ROW"
COL = "/0/META/COL"

#: Largest chunk cmapPy writes (``max_chunk_kb=1024``) and most genes per chunk.
CHUNK_BYTES = 1024 * 1024
CHUNK_MAX_GENES = 1000


def broad_chunks(n_samples: int | None, n_genes: int, itemsize: int = 4) -> tuple[int, int]:
    """The chunk shape (samples, genes) the Broad uses for a matrix of this size.

    cmapPy (``write_gctx.set_data_matrix_chunk_size``, for cmapM / cmapR compatibility)
    puts at most 1,000 genes in a chunk and as many samples as fit in 1 MiB. This is
    that rule in the on-disk (samples, genes) orientation: 978 float32 landmarks give
    chunks of 268 samples x 978 genes.

    Parameters
    ----------
    n_samples
        Number of samples, or ``None`` when not known yet (a resizable dataset): the
        sample extent is then not capped.
    n_genes
        Number of genes.
    itemsize
        Bytes per value (4 for float32, 8 for float64).
    """
    genes = max(1, min(n_genes, CHUNK_MAX_GENES))
    samples = max(1, CHUNK_BYTES // (genes * itemsize))
    if n_samples is not None:
        samples = max(1, min(samples, n_samples))
    return samples, genes
