"""Per-gene and per-sample errors, summaries and model comparisons (the D-GEX protocol).

The D-GEX paper scores a model by the **mean over target genes of each gene's mean
absolute error** on held-out samples, in standardized units (each gene divided by its
training-set standard deviation), and reports its spread across genes and the share
of genes on which one model beats another. Everything here follows that and always
keeps the per-gene table: an average hides the genes a model gets wrong.

Streaming: :class:`GeneErrorAccumulator` sums what MAE and Pearson need over sample
blocks (``update`` / ``compute``, as torchmetrics does), so a test set larger than
memory can be scored. Spearman correlation needs ranks of whole columns: the
measured and predicted values (float32) are kept gene-block-major — in memory when
small, else in a scratch file laid out so each block of genes is one contiguous read
(:class:`ColumnSpill`) — and ranked one block of genes at a time.
:func:`evaluate_model` scores any dataset, in memory or on disk, this way.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

__all__ = [
    "ColumnSpill",
    "Evaluation",
    "GeneErrorAccumulator",
    "compare",
    "evaluate_model",
    "evaluate_predictions",
    "per_gene_metrics",
    "per_sample_mae",
    "summarize",
]


class GeneErrorAccumulator:
    """Running per-gene sums for MAE, RMSE and Pearson r over sample blocks.

    ``update(y_true, y_pred)`` with (n_block, n_genes) arrays in original units;
    ``compute(scale)`` returns a per-gene DataFrame. Sums are float64.
    """

    def __init__(self, n_genes: int) -> None:
        self.n = 0
        z = np.zeros(n_genes)
        self.abs, self.sq = z.copy(), z.copy()
        self.st, self.sp, self.stt, self.spp, self.stp = z.copy(), z.copy(), z.copy(), z.copy(), z.copy()

    def update(self, y_true: np.ndarray, y_pred: np.ndarray) -> GeneErrorAccumulator:
        t = np.asarray(y_true, np.float64)
        p = np.asarray(y_pred, np.float64)
        if t.shape != p.shape:
            raise ValueError(f"y_true {t.shape} and y_pred {p.shape} differ in shape")
        e = p - t
        self.n += t.shape[0]
        self.abs += np.abs(e).sum(0)
        self.sq += (e * e).sum(0)
        self.st += t.sum(0)
        self.sp += p.sum(0)
        self.stt += (t * t).sum(0)
        self.spp += (p * p).sum(0)
        self.stp += (t * p).sum(0)
        return self

    def merge(self, other: GeneErrorAccumulator) -> GeneErrorAccumulator:
        """Add the sums of ``other`` (the same genes, other samples) into these."""
        self.n += other.n
        for name in ("abs", "sq", "st", "sp", "stt", "spp", "stp"):
            getattr(self, name).__iadd__(getattr(other, name))
        return self

    def compute(self, scale: np.ndarray | None = None) -> pd.DataFrame:
        """Per-gene ``mae``, ``rmse``, ``pearson`` (and ``mae_z`` = mae / scale when given)."""
        n = max(self.n, 1)
        cov = self.stp / n - (self.st / n) * (self.sp / n)
        vt = self.stt / n - (self.st / n) ** 2
        vp = self.spp / n - (self.sp / n) ** 2
        with np.errstate(invalid="ignore", divide="ignore"):
            r = cov / np.sqrt(vt * vp)
        out = {"mae": self.abs / n, "rmse": np.sqrt(self.sq / n), "pearson": np.clip(r, -1, 1)}
        if scale is not None:
            out["mae_z"] = out["mae"] / np.asarray(scale, np.float64)
        return pd.DataFrame(out)


class ColumnSpill:
    """Two samples x genes float32 matrices written by sample blocks, read back by gene blocks.

    Layout: gene block after gene block, each block ``n_rows x width`` C-ordered, so a
    block of genes over all samples is one contiguous read. In memory when both
    matrices fit ``memory_bytes``; otherwise in a scratch file removed by :meth:`close`.

    Parameters
    ----------
    n_rows, n_cols
        Samples and genes.
    budget
        Bytes one gene block may take when ranked (float64 ranks of both matrices).
    """

    def __init__(self, n_rows: int, n_cols: int, budget: int = 256 * 2**20, memory_bytes: int = 512 * 2**20,
                 folder: str | os.PathLike | None = None) -> None:
        self.n_rows, self.n_cols = n_rows, n_cols
        self.width = int(max(1, min(max(n_cols, 1), budget // max(1, n_rows * 8 * 4))))
        self._mem = 2 * n_rows * n_cols * 4 <= memory_bytes
        if self._mem:
            self._a = np.empty((n_rows, n_cols), np.float32)
            self._b = np.empty((n_rows, n_cols), np.float32)
            self._fd = None
        else:
            if folder is None:
                from ..io.cache import cache_dir

                folder = os.environ.get("DGEX_TMPDIR") or cache_dir().parent / "tmp"
            os.makedirs(folder, exist_ok=True)
            fd, self._path = tempfile.mkstemp(prefix="spill-", suffix=".bin", dir=folder)
            self._fd = fd
            os.unlink(self._path)  # gone when closed, even after a crash
            os.ftruncate(fd, 2 * n_rows * n_cols * 4)

    def _offset(self, which: int, g0: int, row: int) -> int:
        w = min(self.width, self.n_cols - g0)
        return (which * self.n_rows * self.n_cols + self.n_rows * g0 + row * w) * 4

    def write(self, row: int, a: np.ndarray, b: np.ndarray) -> None:
        """Rows ``row..row+len(a)`` of both matrices (n, n_cols)."""
        if self._mem:
            self._a[row:row + a.shape[0]] = a
            self._b[row:row + b.shape[0]] = b
            return
        for which, m in ((0, a), (1, b)):
            m = np.asarray(m, np.float32)
            for g0 in range(0, self.n_cols, self.width):
                part = np.ascontiguousarray(m[:, g0:g0 + self.width])
                os.pwrite(self._fd, part.data, self._offset(which, g0, row))

    def blocks(self):
        """``(g0, g1, a_block, b_block)``: all samples of each block of genes."""
        for g0 in range(0, self.n_cols, self.width):
            g1 = min(g0 + self.width, self.n_cols)
            if self._mem:
                yield g0, g1, self._a[:, g0:g1], self._b[:, g0:g1]
                continue
            out = []
            for which in (0, 1):
                n = self.n_rows * (g1 - g0) * 4
                buf = bytearray(n)
                os.preadv(self._fd, [buf], self._offset(which, g0, 0))
                out.append(np.frombuffer(buf, np.float32).reshape(self.n_rows, g1 - g0))
            yield g0, g1, out[0], out[1]

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        self._a = self._b = None

    def __del__(self):
        with contextlib.suppress(Exception):
            self.close()


def _average_ranks(x: np.ndarray) -> np.ndarray:
    """Average ranks (1-based, ties share their mean rank) along axis 1 of ``x`` (m, n).

    Rows holding a NaN rank as NaN throughout (scipy's ``rankdata`` propagates NaN the
    same way). Sorting contiguous rows is several times faster than ranking columns.
    """
    m, n = x.shape
    order = np.argsort(x, axis=1)
    xs = np.take_along_axis(x, order, axis=1)
    new = np.empty((m, n), dtype=bool)
    new[:, 0] = True
    np.not_equal(xs[:, 1:], xs[:, :-1], out=new[:, 1:])
    if new.all():
        ranks_sorted = np.broadcast_to(np.arange(1, n + 1, dtype=np.float64), (m, n))
    else:  # runs of equal values never cross rows (each row starts a run)
        flat = new.ravel()
        starts = np.flatnonzero(flat)
        ends = np.r_[starts[1:], flat.size] - 1
        mean_rank = (starts % n + ends % n) / 2 + 1
        ranks_sorted = mean_rank[np.cumsum(flat) - 1].reshape(m, n)
    ranks = np.empty((m, n), dtype=np.float64)
    np.put_along_axis(ranks, order, ranks_sorted, axis=1)
    nan_rows = np.isnan(xs[:, -1]) if n else np.zeros(m, bool)  # argsort puts NaN last
    ranks[nan_rows] = np.nan
    return ranks


def _spearman_columns(t: np.ndarray, p: np.ndarray, block: int = 1024) -> np.ndarray:
    """Spearman r of each column pair of ``t`` and ``p`` (samples x genes; average ranks
    for ties, NaN where a column has a NaN or is constant), in gene blocks."""
    out = np.empty(t.shape[1])
    for s in range(0, t.shape[1], block):
        rt = _average_ranks(np.ascontiguousarray(t[:, s:s + block].T, dtype=np.float64))
        rp = _average_ranks(np.ascontiguousarray(p[:, s:s + block].T, dtype=np.float64))
        rt -= rt.mean(1, keepdims=True)
        rp -= rp.mean(1, keepdims=True)
        with np.errstate(invalid="ignore", divide="ignore"):
            out[s:s + block] = np.einsum("ij,ij->i", rt, rp) / np.sqrt(
                np.einsum("ij,ij->i", rt, rt) * np.einsum("ij,ij->i", rp, rp))
    return out


def per_gene_metrics(
    y_true: np.ndarray,
    y_pred: np.ndarray,
    gene_ids: Sequence[str],
    scale: np.ndarray | None = None,
    noise_floor: np.ndarray | None = None,
    spearman: bool = True,
) -> pd.DataFrame:
    """Per-gene errors of predictions against measurements.

    Parameters
    ----------
    y_true, y_pred
        (n_samples, n_genes) in original units.
    gene_ids
        (n_genes,) ids, the index of the result.
    scale
        (n_genes,) training-set standard deviations: adds ``mae_z``, the D-GEX unit.
    noise_floor
        (n_genes,) irreducible MAE in original units (the demo knows it): adds
        ``floor`` and ``floor_z``.
    spearman
        Also compute Spearman r (needs ranks of whole columns).

    Returns
    -------
    DataFrame
        Index gene id; columns ``mae``, ``rmse``, ``pearson``, [``spearman``], [``mae_z``],
        [``floor``, ``floor_z``]. Genes constant in ``y_true`` have NaN correlations.
    """
    df = GeneErrorAccumulator(y_true.shape[1]).update(y_true, y_pred).compute(scale)
    if spearman:
        df["spearman"] = _spearman_columns(np.asarray(y_true, np.float64), np.asarray(y_pred, np.float64))
    if noise_floor is not None:
        df["floor"] = np.asarray(noise_floor, np.float64)
        if scale is not None:
            df["floor_z"] = df["floor"] / np.asarray(scale, np.float64)
    df.index = pd.Index(list(gene_ids), name="gene")
    return df


def per_sample_mae(
    y_true: np.ndarray, y_pred: np.ndarray, sample_ids: Sequence[str], scale: np.ndarray | None = None
) -> pd.Series:
    """Mean absolute error of each sample over all genes (standardized when ``scale`` is given)."""
    e = np.abs(np.asarray(y_pred, np.float64) - np.asarray(y_true, np.float64))
    if scale is not None:
        e = e / np.asarray(scale, np.float64)
    return pd.Series(e.mean(axis=1), index=pd.Index(list(sample_ids), name="sample"), name="mae_z" if scale is not None else "mae")


def summarize(per_gene: pd.DataFrame, by: pd.Series | None = None) -> dict:
    """Mean and spread over genes of each metric, the floor beside them, and per-group breakdowns.

    ``by`` (indexed by gene id) splits the genes into groups, e.g. the demo's
    ``nonlinear`` flag: each group gets its own summary under ``"groups"``.
    """
    out = _summary(per_gene)
    if by is not None:
        by = by.reindex(per_gene.index)
        out["groups"] = {str(k): _summary(per_gene[by == k]) for k in pd.unique(by.dropna())}
    return out


def _summary(df: pd.DataFrame) -> dict:
    s: dict = {"n_genes": len(df)}
    key = "mae_z" if "mae_z" in df else "mae"
    v = df[key].to_numpy()
    s["metric"] = key
    s["mean_mae"] = float(np.mean(v)) if len(v) else float("nan")
    s["sd_mae"] = float(np.std(v)) if len(v) else float("nan")
    if len(v):
        s["median_mae"], s["q25_mae"], s["q75_mae"] = (float(x) for x in np.quantile(v, [0.5, 0.25, 0.75]))
    s["mean_pearson"] = float(np.nanmean(df["pearson"])) if len(df) else float("nan")
    if "spearman" in df:
        s["mean_spearman"] = float(np.nanmean(df["spearman"])) if len(df) else float("nan")
    if "mae_z" in df:
        s["mean_mae_original"] = float(df["mae"].mean())
    fkey = "floor_z" if "floor_z" in df else ("floor" if "floor" in df else None)
    if fkey:
        s["mean_floor"] = float(df[fkey].mean())
        s["ratio_to_floor"] = s["mean_mae"] / s["mean_floor"] if s["mean_floor"] > 0 else float("nan")
        s["share_below_floor"] = float((df[key] < df[fkey]).mean())
    return s


def compare(baseline: pd.DataFrame, other: pd.DataFrame, metric: str = "mae_z") -> dict:
    """How ``other`` does against ``baseline`` on the genes both scored (matched by id).

    Returns the relative improvement of the mean (positive = ``other`` is better; D-GEX
    reports 15.33% on GEO), the share of genes where ``other`` has the lower error (D-GEX:
    99.97% vs linear regression), and the number of genes compared.
    """
    if metric not in baseline or metric not in other:
        metric = "mae"
    common = baseline.index.intersection(other.index)
    a, b = baseline.loc[common, metric], other.loc[common, metric]
    return {
        "metric": metric,
        "n_genes": len(common),
        "mean_baseline": float(a.mean()),
        "mean_other": float(b.mean()),
        "relative_improvement": float((a.mean() - b.mean()) / a.mean()) if len(common) else float("nan"),
        "share_genes_improved": float((b < a).mean()) if len(common) else float("nan"),
    }


@dataclass
class Evaluation:
    """The full score of one model on one dataset."""

    per_gene: pd.DataFrame
    per_sample: pd.Series
    summary: dict = field(default_factory=dict)


def evaluate_predictions(
    y_true: np.ndarray,
    y_pred: np.ndarray,
    gene_ids: Sequence[str],
    sample_ids: Sequence[str],
    scale: np.ndarray | None = None,
    noise_floor: np.ndarray | None = None,
    groups: pd.Series | None = None,
) -> Evaluation:
    """Per-gene table, per-sample errors and the summary, from predictions (original units)."""
    pg = per_gene_metrics(y_true, y_pred, gene_ids, scale, noise_floor)
    ps = per_sample_mae(y_true, y_pred, sample_ids, scale)
    return Evaluation(pg, ps, summarize(pg, groups))


def block_scores(y: np.ndarray, pred: np.ndarray, cols: np.ndarray, pcols: np.ndarray,
                 scale: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One block's scored columns and per-sample errors: ``(targets, predictions,
    per_sample_mae_z)``, the ``cols`` of the measured ``y`` against the ``pcols`` of
    ``pred`` (both n_block x genes, original units), each sample's MAE divided by the
    targets' training sd ``scale``."""
    t = y[:, cols] if cols.size != y.shape[1] or not np.array_equal(cols, np.arange(y.shape[1])) else y
    p = pred[:, pcols] if pcols.size != pred.shape[1] else pred
    return t, p, (np.abs(p.astype(np.float64) - t) / scale).mean(axis=1)


def evaluate_model(model, data, group_by: str | None = "auto", *, block_size: int | None = None,
                   progress=None, spearman: bool = True) -> Evaluation:
    """Score a fitted model on a dataset with targets, matching landmarks and targets by id.

    Errors are in the model's standardized units (``mae_z``: divided by the training sd
    of each target) and in original units (``mae``). Targets of the model missing from
    ``data`` are skipped (the summary says how many were scored). When the data know
    each target's noise floor (the demo), it is reported beside every figure.
    ``group_by="auto"`` breaks the summary down by the demo's ``nonlinear`` flag when
    present; pass a target-metadata column name, or ``None``.

    Streams: samples are predicted and scored block by block (a dataset opened
    lazily is read once), so memory is bounded by a block and one gene block of the
    Spearman ranks, not by samples x genes. ``spearman=False`` skips the ranks (and
    their scratch file) when MAE and Pearson r are all that is wanted. With a current
    Dask client (:func:`dgex_core.distributed.dask_client`) the blocks are predicted and
    scored on its workers (:mod:`dgex_core.distributed.scoring`).
    """
    from ..errors import ModelError

    if not data.has_targets:
        raise ModelError("the dataset has no measured targets to compare predictions with")
    tpos = data.target_ids.get_indexer(model.target_ids_)
    present = tpos >= 0
    if not present.any():
        raise ModelError("none of the model's targets is measured in this dataset")
    genes = model.target_ids_[present]
    cols = tpos[present]
    pcols = np.flatnonzero(present)
    scale = model.target_scaler_.scale_[present]
    floor = data.noise_floor
    floor = None if floor is None else floor.reindex(genes).to_numpy()
    if group_by == "auto":
        group_by = "nonlinear" if "nonlinear" in data.target_meta else None
    groups = None if group_by is None else data.target_meta[group_by].reindex(genes)

    acc = GeneErrorAccumulator(len(genes))
    spill = ColumnSpill(data.n_samples, len(genes)) if spearman else None
    per_sample = np.empty(data.n_samples)
    scale64 = np.asarray(scale, np.float64)
    from ..distributed import current_client

    client = current_client()
    try:
        if client is not None:
            from ..distributed.scoring import score_on_cluster
            from ..lazy import block_rows

            bs = block_size or block_rows(data.n_landmarks + data.n_targets + len(model.target_ids_))
            for sl, sums, ps, kept in score_on_cluster(client, model, data, bs, cols, pcols, scale64, spill is not None):
                acc.merge(sums)
                per_sample[sl] = ps
                if kept is not None:
                    spill.write(sl.start, *kept)
                if progress:
                    progress(sl.stop, data.n_samples, {"stage": "scoring on the cluster"})
        else:
            for sl, pred, y in model.iter_predictions(data, block_size, with_targets=True):
                t, p, per_sample[sl] = block_scores(y, pred, cols, pcols, scale64)
                acc.update(t, p)
                if spill is not None:
                    spill.write(sl.start, t, p)
                if progress:
                    progress(sl.stop, data.n_samples, {"stage": "scoring"})
        pg = acc.compute(scale)
        if spill is not None:
            rho = np.empty(len(genes))
            for g0, g1, t, p in spill.blocks():
                rho[g0:g1] = _spearman_columns(t, p)
            pg["spearman"] = rho
    finally:
        if spill is not None:
            spill.close()
    if floor is not None:
        pg["floor"] = np.asarray(floor, np.float64)
        pg["floor_z"] = pg["floor"] / np.asarray(scale, np.float64)
    pg.index = pd.Index(list(genes), name="gene")
    ps = pd.Series(per_sample, index=pd.Index(list(data.sample_ids), name="sample"), name="mae_z")
    ev = Evaluation(pg, ps, summarize(pg, groups))
    ev.summary["n_targets_model"] = len(model.target_ids_)
    ev.summary["n_samples"] = data.n_samples
    return ev
