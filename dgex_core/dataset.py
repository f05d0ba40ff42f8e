"""The :class:`Dataset`: landmark genes (model inputs) and target genes (outputs) by id.

A Dataset holds two matrices over the same samples: ``landmarks`` (samples x
landmarks) and ``targets`` (samples x targets; zero columns for landmark-only profiles
such as an L1000 plate), each addressed by gene id, with sample ids, sample metadata,
per-gene metadata and provenance. It is built from any expression matrix plus a
landmark list (:meth:`Dataset.from_matrix`), which reports the landmark coverage;
split deterministically into train / validation / test (:meth:`Dataset.split`); and
aligned to another dataset's genes to serve as an external test set
(:meth:`Dataset.align_like`).

Built from a :class:`~dgex_core.lazy.LazyMatrix` (``dgex_core.io.open_matrix``), the
two matrices are :class:`~dgex_core.lazy.LazyRows` views of the file: subsets and
splits are index arrays, nothing is read until a block is asked for
(:meth:`Dataset.read_block`, :meth:`Dataset.iter_blocks`), so a compendium larger
than memory trains and evaluates in bounded memory.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from .errors import DatasetError, LandmarkCoverageError
from .landmarks import Coverage, LandmarkList, match_landmarks
from .lazy import LazyMatrix, LazyRows, block_rows, read_pair, select_cols, take_rows
from .matrix import ExpressionMatrix, Provenance, as_id_index

__all__ = ["Dataset", "Split", "sample_values"]


class Dataset:
    """Landmark and target expression of the same samples.

    Parameters
    ----------
    landmarks
        (n_samples, n_landmarks) float array.
    targets
        (n_samples, n_targets) float array; may have zero columns.
    landmark_ids, target_ids, sample_ids
        Unique string ids of the columns and rows.
    sample_meta
        Per-sample metadata indexed by sample id (optional).
    landmark_meta, target_meta
        Per-gene metadata indexed by gene id (optional). On the demo, ``target_meta``
        carries ``noise_floor_mae`` (the irreducible per-gene MAE, original units) and
        ``nonlinear``.
    provenance
        Where the values came from and what was done to them.
    coverage
        The landmark coverage report when built from a landmark list.
    """

    def __init__(
        self,
        landmarks: np.ndarray,
        targets: np.ndarray,
        landmark_ids: Sequence,
        target_ids: Sequence,
        sample_ids: Sequence,
        sample_meta: pd.DataFrame | None = None,
        landmark_meta: pd.DataFrame | None = None,
        target_meta: pd.DataFrame | None = None,
        provenance: Provenance | None = None,
        coverage: Coverage | None = None,
    ) -> None:
        # Reuse ExpressionMatrix's validation of shapes, ids and metadata (a lazy view is
        # validated on a zero-memory stand-in of its shape: nothing is read).
        lazy = isinstance(landmarks, LazyRows)
        if targets is None:
            targets = np.empty((landmarks.shape[0], 0), np.float32 if lazy else np.asarray(landmarks).dtype)
        lm = ExpressionMatrix(_stand_in(landmarks), sample_ids, landmark_ids, sample_meta, landmark_meta)
        tg = ExpressionMatrix(_stand_in(targets), lm.sample_ids, target_ids, None, target_meta)
        overlap = lm.gene_ids.intersection(tg.gene_ids)
        if len(overlap):
            raise DatasetError(f"{len(overlap)} genes are both landmark and target, e.g. {overlap[:5].tolist()}")
        self.landmarks = landmarks if isinstance(landmarks, LazyRows) else lm.values
        self.targets = targets if isinstance(targets, LazyRows) else tg.values
        self.landmark_ids = lm.gene_ids
        self.target_ids = tg.gene_ids
        self.sample_ids = lm.sample_ids
        self.sample_meta = lm.sample_meta
        self.landmark_meta = lm.gene_meta
        self.target_meta = tg.gene_meta
        self.provenance = provenance or Provenance(None, "memory")
        self.coverage = coverage

    # --------------------------------------------------------------- building
    @classmethod
    def from_matrix(
        cls,
        matrix: ExpressionMatrix,
        landmarks: LandmarkList | Sequence[str],
        *,
        targets: Sequence[str] | None = None,
        allow_missing: bool = False,
    ) -> Dataset:
        """Split a genes table into landmarks and targets by matching a landmark list.

        Parameters
        ----------
        matrix
            Any expression matrix (samples x genes), in memory or lazy (a
            :class:`~dgex_core.lazy.LazyMatrix`: the dataset then reads it by blocks).
        landmarks
            A :class:`LandmarkList` or plain ids (their kind is guessed).
        targets
            Gene ids to use as targets; by default every gene that is not a landmark.
        allow_missing
            Proceed with the landmarks present when some are missing. Without it a
            missing landmark raises :class:`LandmarkCoverageError` (whose ``coverage``
            says which), so nobody trains on fewer landmarks without knowing.

        Raises
        ------
        DatasetError
            If no landmark is present at all, or a requested target is absent.
        LandmarkCoverageError
            If some landmarks are missing and ``allow_missing`` is false.
        """
        lm_list = landmarks if isinstance(landmarks, LandmarkList) else LandmarkList.from_ids(list(landmarks))
        cov = match_landmarks(lm_list, matrix.gene_ids, matrix.gene_meta)
        src = matrix.provenance.path or matrix.provenance.format
        if cov.n_present == 0:
            raise DatasetError(
                f"{src}: none of the {cov.n_requested} landmark genes ({lm_list.source}) was found among its "
                f"{matrix.n_genes} gene ids or gene metadata (ids look like {matrix.gene_ids[:3].tolist()}, "
                f"landmarks like {lm_list.labels[:3]}); check the landmark list matches this platform, "
                "or that the table is not transposed"
            )
        if cov.missing and not allow_missing:
            raise LandmarkCoverageError(
                f"{src}: {cov.summary()}. Proceed with the {cov.n_present} present landmarks by allowing "
                "missing landmarks (allow_missing=True, --allow-missing-landmarks in the CLI)", cov
            )
        lm_ids = pd.Index(cov.gene_ids)
        if targets is None:
            tg_ids = matrix.gene_ids.difference(lm_ids, sort=False)
        else:
            tg_ids = as_id_index(targets)
            absent = tg_ids.difference(matrix.gene_ids)
            if len(absent):
                raise DatasetError(f"{src}: {len(absent)} requested targets are absent, e.g. {absent[:5].tolist()}")
            tg_ids = tg_ids.difference(lm_ids, sort=False)
        lm_pos = matrix.gene_ids.get_indexer(lm_ids)
        tg_pos = matrix.gene_ids.get_indexer(tg_ids)
        lm_meta = matrix.gene_meta.iloc[lm_pos].copy()
        lm_meta["landmark"] = cov.present
        if isinstance(matrix, LazyMatrix):
            if matrix.in_memory:
                values = matrix.backend.values
                lm_vals, tg_vals = values[:, lm_pos], values[:, tg_pos]
            else:
                lm_vals, tg_vals = LazyRows(matrix, None, lm_pos), LazyRows(matrix, None, tg_pos)
        else:
            lm_vals, tg_vals = matrix.values[:, lm_pos], matrix.values[:, tg_pos]
        return cls(
            lm_vals, tg_vals, lm_ids, tg_ids, matrix.sample_ids,
            matrix.sample_meta, lm_meta, matrix.gene_meta.iloc[tg_pos], matrix.provenance, cov,
        )

    # ------------------------------------------------------------------ shape
    @property
    def n_samples(self) -> int:
        return self.landmarks.shape[0]

    @property
    def n_landmarks(self) -> int:
        return self.landmarks.shape[1]

    @property
    def n_targets(self) -> int:
        return self.targets.shape[1]

    @property
    def has_targets(self) -> bool:
        return self.n_targets > 0

    @property
    def is_lazy(self) -> bool:
        """True when the values stay on disk and are read by blocks."""
        return isinstance(self.landmarks, LazyRows)

    def read_block(self, rows: slice | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Landmarks and targets of some samples (positions), read together: ((n, landmarks), (n, targets))."""
        return read_pair(self.landmarks, self.targets, rows)

    def default_block_size(self) -> int:
        """Samples per block so that a block of landmarks and targets fits the block budget."""
        return block_rows(self.n_landmarks + self.n_targets)

    def iter_blocks(self, block_size: int | None = None):
        """``(sample_slice, landmarks, targets)`` for consecutive blocks of samples."""
        bs = block_size or self.default_block_size()
        for s in range(0, self.n_samples, bs):
            sl = slice(s, min(s + bs, self.n_samples))
            x, y = self.read_block(sl)
            yield sl, x, y

    @property
    def noise_floor(self) -> pd.Series | None:
        """Per-target irreducible MAE in original units, when the data know it (the demo)."""
        if "noise_floor_mae" in self.target_meta:
            return self.target_meta["noise_floor_mae"].astype(float)
        return None

    def __repr__(self) -> str:
        src = self.provenance.path or self.provenance.format
        return (f"<Dataset {self.n_samples} samples, {self.n_landmarks} landmarks, "
                f"{self.n_targets} targets, from {src}>")

    def summary(self) -> dict:
        """A JSON-friendly description (sizes, provenance, coverage)."""
        return {
            "n_samples": self.n_samples,
            "n_landmarks": self.n_landmarks,
            "n_targets": self.n_targets,
            "provenance": self.provenance.to_dict(),
            "coverage": None if self.coverage is None else self.coverage.to_dict(),
            "has_noise_floor": self.noise_floor is not None,
        }

    # ---------------------------------------------------------------- subsets
    def subset(
        self,
        samples: Sequence | np.ndarray | None = None,
        landmarks: Sequence | None = None,
        targets: Sequence | None = None,
    ) -> Dataset:
        """Select samples (ids, or a boolean mask / integer positions as a numpy array),
        landmarks and targets (ids), in the order given."""
        si = self._sample_positions(samples)
        li = _positions(self.landmark_ids, landmarks, "landmark")
        ti = _positions(self.target_ids, targets, "target")
        if self.is_lazy:
            lm_vals = take_rows(self.landmarks, si)
            tg_vals = take_rows(self.targets, si)
            lm_vals = lm_vals if landmarks is None else select_cols(lm_vals, li)
            tg_vals = tg_vals if targets is None else select_cols(tg_vals, ti)
            if isinstance(tg_vals, LazyRows) and isinstance(lm_vals, LazyRows):
                tg_vals.rows = lm_vals.rows  # the same samples: one array, so blocks read both at once
        else:
            lm_vals, tg_vals = self.landmarks[np.ix_(si, li)], self.targets[np.ix_(si, ti)]
        return Dataset(
            lm_vals, tg_vals,
            self.landmark_ids[li], self.target_ids[ti], self.sample_ids[si],
            self.sample_meta.iloc[si], self.landmark_meta.iloc[li], self.target_meta.iloc[ti],
            self.provenance, self.coverage,
        )

    def _sample_positions(self, samples) -> np.ndarray:
        if samples is None:
            return np.arange(self.n_samples)
        if isinstance(samples, np.ndarray) and samples.dtype == bool:
            if samples.shape != (self.n_samples,):
                raise DatasetError(f"a sample mask needs {self.n_samples} entries, got {samples.shape}")
            return np.flatnonzero(samples)
        if isinstance(samples, np.ndarray) and samples.dtype.kind in "iu":
            return samples
        return _positions(self.sample_ids, samples, "sample")

    def align_like(self, other: Dataset, *, allow_missing: bool = False) -> Dataset:
        """This dataset with the landmarks and targets of ``other``, in ``other``'s order, by id.

        Use it to make an external test set match the genes a model was trained on.
        Landmarks absent here raise :class:`DatasetError` unless ``allow_missing``, when
        they become NaN columns (to be imputed by the caller); absent targets are dropped.
        """
        if self.is_lazy:
            return self._align_lazy(other, allow_missing)
        pool = self.to_matrix()
        lm_pos = pool.gene_ids.get_indexer(other.landmark_ids)
        if (lm_pos < 0).any() and not allow_missing:
            miss = other.landmark_ids[lm_pos < 0]
            raise DatasetError(
                f"{len(miss)} of {other.n_landmarks} landmarks of the reference are absent here, "
                f"e.g. {miss[:5].tolist()}; allow missing landmarks to fill them as NaN"
            )
        lm = np.full((self.n_samples, other.n_landmarks), np.nan, dtype=pool.values.dtype)
        lm[:, lm_pos >= 0] = pool.values[:, lm_pos[lm_pos >= 0]]
        tg_ids = other.target_ids[pool.gene_ids.get_indexer(other.target_ids) >= 0]
        tg = pool.values[:, pool.gene_ids.get_indexer(tg_ids)]
        return Dataset(
            lm, tg, other.landmark_ids, tg_ids, self.sample_ids, self.sample_meta,
            other.landmark_meta, other.target_meta.loc[tg_ids], self.provenance, self.coverage,
        )

    def _align_lazy(self, other: Dataset, allow_missing: bool) -> Dataset:
        """:meth:`align_like` for a lazy dataset: new column positions, nothing read."""
        lmv, tgv = self.landmarks, self.targets
        if lmv.matrix is not tgv.matrix:
            raise DatasetError("cannot align a dataset whose landmarks and targets come from different files")
        m = lmv.matrix
        cols = np.concatenate([np.arange(m.n_genes) if lmv.cols is None else lmv.cols,
                               np.arange(m.n_genes) if tgv.cols is None else tgv.cols])
        pool_ids = self.landmark_ids.append(self.target_ids)
        lm_pos = pool_ids.get_indexer(other.landmark_ids)
        if (lm_pos < 0).any():
            miss = other.landmark_ids[lm_pos < 0]
            raise DatasetError(
                f"{len(miss)} of {other.n_landmarks} landmarks of the reference are absent here, "
                f"e.g. {miss[:5].tolist()}" + ("" if allow_missing else "; allow missing landmarks to fill them as NaN")
                + (" (a file read by blocks cannot hold NaN columns: add the landmarks to the file)"
                   if allow_missing else "")
            )
        tg_all = pool_ids.get_indexer(other.target_ids)
        tg_ids = other.target_ids[tg_all >= 0]
        tg_pos = tg_all[tg_all >= 0]
        rows = lmv.rows
        return Dataset(
            LazyRows(m, rows, cols[lm_pos]), LazyRows(m, rows, cols[tg_pos]), other.landmark_ids, tg_ids,
            self.sample_ids, self.sample_meta, other.landmark_meta, other.target_meta.loc[tg_ids],
            self.provenance, self.coverage,
        )

    @classmethod
    def from_anndata(cls, adata, landmarks, *, layer: str | None = None, targets: Sequence[str] | None = None,
                     gene_id_column: str | None = None, allow_missing: bool = False) -> Dataset:
        """A dataset from an AnnData (samples x genes): ``X`` or ``layers[layer]``, dense,
        scipy-sparse CSR / CSC or backed (read by blocks from its file); ``obs`` and
        ``var`` become the sample and gene metadata. See :mod:`dgex_core.adata`."""
        from .adata import dataset_from_anndata

        return dataset_from_anndata(adata, landmarks, layer=layer, targets=targets, gene_id_column=gene_id_column,
                                    allow_missing=allow_missing)

    def to_anndata(self):
        """This dataset as an AnnData: ``X`` landmarks then targets, ``var["role"]``."""
        from .adata import dataset_to_anndata

        return dataset_to_anndata(self)

    def to_matrix(self) -> ExpressionMatrix:
        """All genes as one matrix, landmarks first (samples x (landmarks + targets)); reads a lazy dataset whole."""
        meta = pd.concat([self.landmark_meta.assign(role="landmark"), self.target_meta.assign(role="target")])
        return ExpressionMatrix(
            np.concatenate([self.landmarks, self.targets.astype(self.landmarks.dtype, copy=False)], axis=1),
            self.sample_ids, self.landmark_ids.append(self.target_ids), self.sample_meta, meta, self.provenance,
        )

    # ----------------------------------------------------------------- splits
    def split(
        self,
        val: float = 0.1,
        test: float = 0.1,
        seed: int = 0,
        group_by: str | None = None,
    ) -> Split:
        """Deterministic seeded split into train / validation / test (80/10/10 by default, as D-GEX).

        Parameters
        ----------
        val, test
            Fractions of samples (each in [0, 1), summing below 1).
        seed
            The same seed always gives the same split of the same sample ids.
        group_by
            A sample-metadata column; whole groups go to one split (e.g. a GEO series, a
            donor), so near-duplicate samples never sit on both sides.

        Raises
        ------
        DatasetError
            If a fraction is out of range, a split would be empty, or the column is absent.
        """
        if not (0 <= val < 1 and 0 <= test < 1 and val + test < 1):
            raise DatasetError(f"val={val} and test={test} must be fractions in [0, 1) summing below 1")
        rng = np.random.default_rng(seed)
        if group_by is None:
            order = rng.permutation(self.n_samples)
            n_test = round(test * self.n_samples)
            n_val = round(val * self.n_samples)
            parts = order[:n_test], order[n_test:n_test + n_val], order[n_test + n_val:]
        else:
            parts = self._group_split(rng, group_by, val, test)
        test_i, val_i, train_i = (np.sort(p) for p in parts)
        for name, idx, frac in (("train", train_i, 1), ("validation", val_i, val), ("test", test_i, test)):
            if frac > 0 and len(idx) == 0:
                raise DatasetError(
                    f"the {name} split is empty ({self.n_samples} samples, val={val}, test={test}); "
                    "use more samples or larger fractions"
                )
        return Split(self.subset(train_i), self.subset(val_i), self.subset(test_i), seed, group_by)

    def _group_split(self, rng, group_by, val, test):
        if group_by not in self.sample_meta:
            raise DatasetError(f"cannot split by {group_by!r}: not a sample-metadata column "
                               f"(columns: {list(self.sample_meta.columns)})")
        groups = self.sample_meta[group_by].astype(str).to_numpy()
        uniq = np.array(sorted(set(groups)))
        rng.shuffle(uniq)
        sizes = pd.Series(groups).value_counts()
        test_g, val_g, n_test, n_val = set(), set(), 0, 0
        for g in uniq:
            if n_test < test * self.n_samples:
                test_g.add(g)
                n_test += sizes[g]
            elif n_val < val * self.n_samples:
                val_g.add(g)
                n_val += sizes[g]
        is_test = np.isin(groups, list(test_g))
        is_val = np.isin(groups, list(val_g))
        return np.flatnonzero(is_test), np.flatnonzero(is_val), np.flatnonzero(~is_test & ~is_val)


@dataclass(frozen=True)
class Split:
    """Train / validation / test datasets from one :meth:`Dataset.split` call."""

    train: Dataset
    val: Dataset
    test: Dataset
    seed: int
    group_by: str | None = None

    def sample_ids(self) -> dict[str, list[str]]:
        """The sample ids of each part (stored with a run so the split can be checked)."""
        return {k: getattr(self, k).sample_ids.tolist() for k in ("train", "val", "test")}


def _stand_in(values) -> np.ndarray:
    """The array to validate shapes against: a lazy view becomes a zero-memory broadcast of its shape."""
    if isinstance(values, LazyRows):
        return np.broadcast_to(np.zeros((), values.dtype), values.shape)
    return values


def _positions(index: pd.Index, ids, what: str) -> np.ndarray:
    if ids is None:
        return np.arange(len(index))
    wanted = as_id_index(ids)
    pos = index.get_indexer(wanted)
    if (pos < 0).any():
        raise DatasetError(f"{int((pos < 0).sum())} {what} ids not found, e.g. {wanted[pos < 0][:5].tolist()}")
    return pos


def sample_values(data: Dataset, n: int = 200_000, seed: int = 0) -> np.ndarray:
    """Up to ``n`` finite expression values of ``data`` (landmarks and targets of a random
    subset of samples), for a histogram; never copies the whole matrix."""
    rng = np.random.default_rng(seed)
    n_genes = max(data.n_landmarks + data.n_targets, 1)
    rows = np.sort(rng.choice(data.n_samples, size=min(data.n_samples, max(1, n // n_genes)), replace=False))
    v = np.concatenate([np.asarray(data.landmarks[rows], dtype=np.float64).ravel(),
                        np.asarray(data.targets[rows], dtype=np.float64).ravel()])
    v = v[np.isfinite(v)]
    return v if v.size <= n else rng.choice(v, size=n, replace=False)
