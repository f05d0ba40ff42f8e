"""`ExpressionMatrix`: what every reader returns and every writer takes.

One matrix of expression values, **samples x genes** (the AnnData orientation, the
transpose of a GCT file), with its sample ids, gene ids, per-sample and per-gene
metadata and where it came from. Ids are always strings: integer ids (Entrez ids in
a GCTX) are turned into their decimal text, so matching is by id, never by position
or type.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd

from .errors import DatasetError

__all__ = ["ExpressionMatrix", "Provenance", "as_id_index"]


@dataclass(frozen=True)
class Provenance:
    """Where a matrix came from and what was done to it.

    Attributes
    ----------
    path
        The file it was read from (``None`` for generated data).
    format
        The format name the reader used (``"gct"``, ``"gctx"``, ``"demo"``...).
    transforms
        The transforms applied since, in order (``"log2(x+1)"``, ``"collapse probes -> genes (mean)"``...).
    notes
        Anything else worth keeping (platform id, series accession, ...), JSON-friendly.
    """

    path: str | None
    format: str
    transforms: tuple[str, ...] = ()
    notes: dict = field(default_factory=dict)

    def with_transform(self, description: str) -> Provenance:
        """A copy with ``description`` appended to :attr:`transforms`."""
        return replace(self, transforms=(*self.transforms, description))

    def to_dict(self) -> dict:
        return {
            "path": self.path,
            "format": self.format,
            "transforms": list(self.transforms),
            "notes": dict(self.notes),
        }

    @classmethod
    def from_dict(cls, d: dict) -> Provenance:
        return cls(d.get("path"), d.get("format", "unknown"), tuple(d.get("transforms", ())), dict(d.get("notes", {})))


def as_id_index(ids: Sequence | np.ndarray | pd.Index, name: str | None = None) -> pd.Index:
    """Ids as a string :class:`pandas.Index` (bytes decoded as UTF-8, numbers as text)."""
    if isinstance(ids, pd.Index) and ids.dtype == object and (len(ids) == 0 or pd.api.types.infer_dtype(ids) == "string"):
        return ids.rename(name) if ids.name != name else ids
    arr = np.asarray(ids)
    if arr.dtype.kind == "S":
        out = [b.decode("utf-8", "replace") for b in arr.tolist()]
    elif arr.dtype.kind in "iu":
        out = [str(int(v)) for v in arr.tolist()]
    elif arr.dtype.kind == "f":
        out = [str(int(v)) if float(v).is_integer() else repr(float(v)) for v in arr.tolist()]
    else:
        out = [v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v) for v in arr.tolist()]
    return pd.Index(out, dtype=object, name=name)


def _duplicates(index: pd.Index, limit: int = 5) -> list[str]:
    return index[index.duplicated()].unique()[:limit].tolist()


class ExpressionMatrix:
    """Expression values of ``n_samples`` samples x ``n_genes`` genes, with their ids.

    Parameters
    ----------
    values
        Array of shape (n_samples, n_genes); float32 or float64; NaN marks a missing value.
    sample_ids, gene_ids
        Unique ids, one per row / column of ``values``.
    sample_meta
        Per-sample metadata, one row per sample (indexed by sample id); optional.
    gene_meta
        Per-gene metadata (symbol, Entrez id, description...), indexed by gene id; optional.
    provenance
        Where the values came from.

    Raises
    ------
    DatasetError
        If shapes disagree or ids repeat.
    """

    def __init__(
        self,
        values: np.ndarray,
        sample_ids: Sequence | pd.Index,
        gene_ids: Sequence | pd.Index,
        sample_meta: pd.DataFrame | None = None,
        gene_meta: pd.DataFrame | None = None,
        provenance: Provenance | None = None,
    ) -> None:
        values = np.asarray(values)
        if values.ndim != 2:
            raise DatasetError(f"values must be a 2-D samples x genes array, got shape {values.shape}")
        if values.dtype.kind not in "f":
            values = values.astype(np.float64)
        self.values = values
        self.sample_ids = as_id_index(sample_ids, "sample")
        self.gene_ids = as_id_index(gene_ids, "gene")
        if len(self.sample_ids) != values.shape[0] or len(self.gene_ids) != values.shape[1]:
            raise DatasetError(
                f"values are {values.shape[0]} samples x {values.shape[1]} genes but "
                f"{len(self.sample_ids)} sample ids and {len(self.gene_ids)} gene ids were given"
            )
        for what, idx in (("sample", self.sample_ids), ("gene", self.gene_ids)):
            if not idx.is_unique:
                raise DatasetError(f"duplicate {what} ids: {_duplicates(idx)}; ids must be unique")
        self.sample_meta = self._meta(sample_meta, self.sample_ids, "sample")
        self.gene_meta = self._meta(gene_meta, self.gene_ids, "gene")
        self.provenance = provenance or Provenance(None, "memory")

    @staticmethod
    def _meta(meta: pd.DataFrame | None, ids: pd.Index, what: str) -> pd.DataFrame:
        if meta is None:
            return pd.DataFrame(index=ids.copy())
        if meta.index is ids or (len(meta) == len(ids) and meta.index.equals(ids)):
            meta = meta.copy()
            meta.index = ids
            return meta
        meta = meta.copy()
        meta.index = as_id_index(meta.index, what)
        if len(meta) != len(ids) or not meta.index.equals(ids):
            try:
                meta = meta.reindex(ids)
            except ValueError as e:
                raise DatasetError(f"{what} metadata index does not match the {what} ids: {e}") from None
        return meta

    # ------------------------------------------------------------------ shape
    @property
    def shape(self) -> tuple[int, int]:
        """(n_samples, n_genes)."""
        return self.values.shape  # type: ignore[return-value]

    @property
    def n_samples(self) -> int:
        return self.values.shape[0]

    @property
    def n_genes(self) -> int:
        return self.values.shape[1]

    def __repr__(self) -> str:
        src = self.provenance.path or self.provenance.format
        return f"<ExpressionMatrix {self.n_samples} samples x {self.n_genes} genes, {self.values.dtype}, from {src}>"

    # ---------------------------------------------------------------- subset
    def subset(self, samples: Sequence | None = None, genes: Sequence | None = None) -> ExpressionMatrix:
        """Select samples and/or genes **by id**, in the order given.

        Raises
        ------
        DatasetError
            If an id is not present (the message lists a few).
        """
        si = np.arange(self.n_samples) if samples is None else self._positions(self.sample_ids, samples, "sample")
        gi = np.arange(self.n_genes) if genes is None else self._positions(self.gene_ids, genes, "gene")
        return ExpressionMatrix(
            self.values[np.ix_(si, gi)],
            self.sample_ids[si],
            self.gene_ids[gi],
            self.sample_meta.iloc[si],
            self.gene_meta.iloc[gi],
            self.provenance,
        )

    @staticmethod
    def _positions(index: pd.Index, ids: Sequence, what: str) -> np.ndarray:
        wanted = as_id_index(ids)
        pos = index.get_indexer(wanted)
        if (pos < 0).any():
            missing = wanted[pos < 0][:5].tolist()
            raise DatasetError(f"{int((pos < 0).sum())} {what} ids not found, e.g. {missing}")
        return pos

    def with_values(self, values: np.ndarray, transform: str | None = None) -> ExpressionMatrix:
        """The same ids and metadata with new values (same shape); records ``transform``."""
        prov = self.provenance.with_transform(transform) if transform else self.provenance
        return ExpressionMatrix(values, self.sample_ids, self.gene_ids, self.sample_meta, self.gene_meta, prov)

    # ---------------------------------------------------------- conversions
    def to_frame(self, orientation: str = "samples_x_genes") -> pd.DataFrame:
        """Values as a DataFrame, ``"samples_x_genes"`` (default) or ``"genes_x_samples"``."""
        df = pd.DataFrame(self.values, index=self.sample_ids, columns=self.gene_ids)
        if orientation == "genes_x_samples":
            return df.T
        if orientation != "samples_x_genes":
            raise ValueError(f"orientation must be 'samples_x_genes' or 'genes_x_samples', got {orientation!r}")
        return df

    @classmethod
    def from_frame(
        cls,
        df: pd.DataFrame,
        orientation: str = "genes_x_samples",
        provenance: Provenance | None = None,
        sample_meta: pd.DataFrame | None = None,
        gene_meta: pd.DataFrame | None = None,
    ) -> ExpressionMatrix:
        """Build from a numeric DataFrame; ``orientation`` says what its rows are."""
        if orientation == "genes_x_samples":
            df = df.T
        elif orientation != "samples_x_genes":
            raise ValueError(f"orientation must be 'samples_x_genes' or 'genes_x_samples', got {orientation!r}")
        return cls(df.to_numpy(), df.index, df.columns, sample_meta, gene_meta, provenance)

    def equals(self, other: ExpressionMatrix, *, meta: bool = True) -> bool:
        """True when ids, values (NaN == NaN) and, if ``meta``, metadata are the same."""
        if not (self.sample_ids.equals(other.sample_ids) and self.gene_ids.equals(other.gene_ids)):
            return False
        if not np.array_equal(self.values, other.values, equal_nan=True):
            return False
        if meta:
            return _frames_equal(self.sample_meta, other.sample_meta) and _frames_equal(self.gene_meta, other.gene_meta)
        return True


def _frames_equal(a: pd.DataFrame, b: pd.DataFrame) -> bool:
    if list(a.columns) != list(b.columns):
        return False
    return all(
        a[c].astype(str).tolist() == b[c].astype(str).tolist() for c in a.columns
    )
