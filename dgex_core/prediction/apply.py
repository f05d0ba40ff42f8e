"""Apply a stored run to landmark-only profiles, block by block, and write the result.

The output carries, for every sample, the measured landmarks and the inferred
targets (like the LINCS level-3 "INF" files), per-gene metadata ``role``
(``measured`` / ``inferred``) and ``well_inferred`` (from the run's validation), and
per-sample ``ood_score`` / ``ood_flag`` (how far the profile lies from the training
data; a sample with more than :data:`MAX_IMPUTED_SHARE` of its landmarks imputed is
flagged whatever its score), ``n_imputed`` (landmark values that were missing and
imputed with the training means, when the user chose to impute rather than refuse) and ``n_clipped``
(inferred values brought back into the range of the training targets: a model asked
about profiles unlike its training data can extrapolate far outside any measured
value, so dgex clips to the training range by default, as LINCS clips its inferred
values to a fixed 0-15; the range is in the gene metadata, ``clip_low`` / ``clip_high``). Inputs are read in
sample blocks when the format allows it (GCTX); other formats are read whole and then
processed in blocks. Where the gene metadata go in each output format (a side file
``<name>.genes.csv`` for CSV / TSV) is in :mod:`dgex_core.export`.

The arithmetic is float32 end to end (the output is float32): landmarks are cast to
float32, standardized in float32, multiplied by a float32 copy of a linear model's
weights (one SGEMM per block) and written into a preallocated output block. While
one block is computed, the previous one is written by a background thread
(:class:`~dgex_core.export.BackgroundWriter`), and blocks are sized in bytes
(:func:`default_block_size`), so memory stays bounded whatever the number of samples.
"""

from __future__ import annotations

import collections
import contextlib
import os
import queue
import threading
import weakref
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pandas as pd

from .._atomic import output_target, refuse_input_as_output
from ..errors import ModelError
from ..export import gene_meta_path, open_block_writer, resolve_compression, workers_write
from ..landmarks import LandmarkList, match_landmarks
from ..matrix import ExpressionMatrix
from ..models.base import Model
from ..models.linear import LinearModel
from ..store import Run

__all__ = ["MAX_IMPUTED_SHARE", "OUTPUT_BLOCK_BYTES", "default_block_size", "landmark_columns", "missing_landmarks_message",
           "output_gene_meta", "predict_file", "predict_matrix_block"]

#: Bytes of output values (samples x measured + inferred genes, float32) per block by
#: default: 128 MiB, or ``$DGEX_BLOCK_MB``. At 22,283 genes that is 1,310 samples.
OUTPUT_BLOCK_BYTES = 128 * 2**20


def default_block_size(n_genes: int, itemsize: int = 4, budget: int | None = None) -> int:
    """Samples per block so that one output block (samples x ``n_genes``) holds about ``budget`` bytes.

    The budget is :data:`OUTPUT_BLOCK_BYTES` (``$DGEX_BLOCK_MB`` overrides it); the
    count is rounded down to a whole number of the GCTX chunk's samples (262 at
    22,283 float32 genes), so blocks fill whole chunks. Peak memory of a prediction is
    a few blocks (the one computed, one queued, the one being written; Parquet
    gathers its row groups, :data:`~dgex_core.export.rows.PARQUET_ROW_GROUP_BYTES`) plus the model.
    """
    from ..io.gctx_layout import broad_chunks

    if budget is None:
        try:
            budget = int(float(os.environ.get("DGEX_BLOCK_MB", "")) * 2**20)
        except ValueError:
            budget = OUTPUT_BLOCK_BYTES
    n = max(1, budget // max(1, n_genes * itemsize))
    rows = broad_chunks(None, n_genes, itemsize)[0]
    return n // rows * rows if n >= rows else n


def missing_landmarks_message(run: Run, missing: list[str], gene_ids: pd.Index) -> str:
    """What to tell a user whose input lacks some of the run's landmarks: how many, which
    kind of ids the input and the run have, what the run was trained on, what to do."""
    from ..landmarks import id_mismatch

    want = run.model.landmark_ids_
    trained_on = run.config.get("dataset", {}).get("name") or "its training data"
    if len(missing) == len(want):
        why = id_mismatch(want, gene_ids, "the run's landmarks", "the input's genes")
        todo = ("use a run trained on data with the input's kind of ids (for an L1000 plate: train with "
                "--landmarks PLATE, the plate's own 978 probes, on a compendium of the same platform)")
        return (f"none of the run's {len(want)} landmarks is in the input; {why}. The run {run.name} was trained "
                f"on {trained_on}: {todo}")
    return (f"{len(missing)} of the run's {len(want)} landmarks are not in the input (e.g. {missing[:5]}); the "
            f"model needs every landmark it was trained on ({trained_on}): add them, or use a run trained without them")


def landmark_columns(run: Run, gene_ids: pd.Index, gene_meta: pd.DataFrame | None, source: str) -> np.ndarray:
    """Positions in the input of each of the run's landmarks (matched by id, any id kind)."""
    want = run.model.landmark_ids_
    pos = gene_ids.get_indexer(want)
    if (pos >= 0).all():
        return pos
    cov = match_landmarks(LandmarkList.from_ids(list(want)), gene_ids, gene_meta)
    if cov.missing:
        raise ModelError(f"{source}: {missing_landmarks_message(run, cov.missing, gene_ids)}")
    return gene_ids.get_indexer(pd.Index(cov.gene_ids))


#: A sample with more than this share of its landmarks imputed is flagged out of
#: distribution whatever its score: its profile is mostly the training means.
MAX_IMPUTED_SHARE = 0.1


def predict_matrix_block(
    run: Run, block: ExpressionMatrix, lm_pos: np.ndarray, missing: str = "refuse", out: np.ndarray | None = None,
    clip: tuple[float, float] | None = None,
) -> ExpressionMatrix:
    """One output block, samples x (measured landmarks + inferred targets), float32, with
    ``n_imputed``, ``n_clipped`` and the OOD columns in sample_meta.

    ``clip=(low, high)`` clips the inferred values to that range (original units) and
    counts per sample how many were clipped; ``None`` leaves them as the model gives
    them (``n_clipped`` is then 0).

    ``missing="impute"`` replaces missing landmark values by the training means and
    records per sample how many were imputed (``n_imputed``); ``"refuse"`` (default)
    stops with a message naming the samples. The landmarks are cast to float32 first
    and the predictions are written straight into the output block (no stacking
    copy); a linear model predicts with one float32 GEMM (:func:`_linear_weights32`).
    The result equals ``run.model.predict`` on the same float32 landmarks to float32
    rounding. ``out``, a C-contiguous float32 array of at least ``block.n_samples``
    rows x output genes, receives the values (the block's values are then a view of it).
    """
    if missing not in ("refuse", "impute"):
        raise ModelError(f"missing must be 'refuse' or 'impute', got {missing!r}")
    model = run.model
    x = np.take(block.values, lm_pos, axis=1).astype(np.float32, copy=False)
    nan = ~np.isfinite(x)
    any_nan = bool(nan.any())
    if any_nan and missing == "refuse":
        bad = block.sample_ids[nan.any(axis=1)][:5].tolist()
        raise ModelError(f"missing or infinite landmark values in samples {bad}; impute them with the training means "
                         "(--missing impute) or drop those samples")
    n_lm = x.shape[1]
    shape = (x.shape[0], n_lm + len(model.target_ids_))
    if out is None:
        values = np.empty(shape, np.float32)
    elif out.dtype != np.float32 or not out.flags.c_contiguous or out.shape[0] < shape[0] or out.shape[1] != shape[1]:
        raise ValueError(f"out must be a C-contiguous float32 array of at least {shape[0]} x {shape[1]}")
    else:
        values = out[:shape[0]]
    values[:, :n_lm] = x
    pred = values[:, n_lm:]
    # standardized landmarks, missing ones at 0 (the training mean), as Model.predict_standardized does
    z = model.standardize_landmarks(np.where(nan, np.nan, x) if any_nan else x)
    if any_nan:
        z = np.where(np.isnan(z), 0.0, z).astype(z.dtype, copy=False)
    weights = _linear_weights32(model)
    if weights is not None:
        np.matmul(z.astype(np.float32, copy=False), weights[0], out=pred)
        pred += weights[1]
    elif type(model).predict is Model.predict:  # predict = inverse-standardize(predict_standardized): into place
        model.target_scaler_.inverse_transform(model.predict_standardized(x, missing), out=pred)
    else:
        pred[:] = model.predict_landmarks(x, missing=missing)
    meta = block.sample_meta.copy()
    meta["n_imputed"] = nan.sum(axis=1)
    n_clipped = np.zeros(pred.shape[0], dtype=np.int64)
    if clip is not None:
        low, high = np.float32(clip[0]), np.float32(clip[1])
        n_clipped += np.count_nonzero(pred < low, axis=1)
        n_clipped += np.count_nonzero(pred > high, axis=1)
        np.clip(pred, low, high, out=pred)
    meta["n_clipped"] = n_clipped
    # a sample mostly made of training means looks typical to the check: flag it outright
    mostly_imputed = meta["n_imputed"].to_numpy() > MAX_IMPUTED_SHARE * n_lm
    score = run.trust.score(z) if run.trust is not None else np.full(x.shape[0], np.nan)
    meta["ood_score"] = score
    meta["ood_flag"] = (score > 1.0) | mostly_imputed
    genes = model.landmark_ids_.append(model.target_ids_)
    return ExpressionMatrix(values, block.sample_ids, genes, meta, None, block.provenance)


_WEIGHTS32: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _linear_weights32(model) -> tuple[np.ndarray, np.ndarray] | None:
    """A linear model's weights from standardized landmarks straight to targets in original
    units, float32: ``(coef_ * sd_y, intercept_ * sd_y + mean_y)`` (n_landmarks x n_targets,
    n_targets), so one GEMM and one addition give the predictions.

    Made on first use and kept while the model lives (rebuilt if its weights or target
    scaler are replaced); never saved. ``None`` for other models.
    """
    if not isinstance(model, LinearModel) or type(model).predict is not Model.predict:
        return None
    ys = model.target_scaler_
    key = (model.coef_, model.intercept_, ys.scale_, ys.mean_)
    hit = _WEIGHTS32.get(model)
    if hit is None or any(a is not b for a, b in zip(hit[0], key, strict=True)):
        W = np.multiply(model.coef_, ys.scale_, dtype=np.float32)  # no float64 temporary
        b = (model.intercept_ * ys.scale_ + ys.mean_).astype(np.float32)
        hit = (key, W, b)
        _WEIGHTS32[model] = hit
    return hit[1], hit[2]


def output_gene_meta(run: Run, clip: tuple[float, float] | None = None) -> pd.DataFrame:
    """Per output gene: ``role``, ``well_inferred`` and, when clipping, ``clip_low`` /
    ``clip_high`` (the range the inferred values were clipped to; NaN for measured genes)."""
    lm, tg = run.model.landmark_ids_, run.model.target_ids_
    well = run.well_inferred()
    meta = pd.DataFrame({
        "role": ["measured"] * len(lm) + ["inferred"] * len(tg),
        "well_inferred": [True] * len(lm) + well.reindex(tg).fillna(False).astype(bool).tolist(),
    }, index=lm.append(tg))
    if clip is not None:
        measured = np.arange(len(meta)) < len(lm)
        meta["clip_low"] = np.where(measured, np.nan, float(clip[0]))
        meta["clip_high"] = np.where(measured, np.nan, float(clip[1]))
    return meta


def _blocks(path: Path, block_size: int, normalize: str | None = None, landmark_ids=None,
            expect_unlogged: bool | None = None, platform: str | None = None,
            ) -> Iterator[tuple[ExpressionMatrix, pd.Index, pd.DataFrame, int]]:
    """The input by blocks of samples, whatever its format (:func:`dgex_core.io.open_matrix`):
    GCTX, h5ad and ARCHS4 read block by block, other formats through the on-disk cache
    (a table's orientation decided by the run's ``landmark_ids``).
    ``normalize`` (``"log2cpm"``, ``"log2"``) applies a per-sample normalization of
    :data:`~dgex_core.preprocess.NORMALIZATIONS`. ``expect_unlogged`` (True: counts or
    linear values expected, False: log-scaled) checks the input's first samples and
    refuses a file on the other scale. Each block comes with the input's gene ids,
    gene metadata and number of samples."""
    from ..io import open_matrix
    from ..preprocess import NORMALIZATIONS, matrix_scale_problem

    m = open_matrix(path, landmark_ids=landmark_ids, platform=platform)
    try:
        if expect_unlogged is not None and m.n_samples:
            problem = matrix_scale_problem(m, 200, leading=True)  # the first block's rows: cheap
            if expect_unlogged is False and problem:
                raise ModelError(f"{path}: {problem}; the run was trained on log-scaled values: give log2 data, "
                                 "or --normalize log2cpm (counts) / log2 (TPM, intensities) to log these first")
            if expect_unlogged is True and not problem:
                raise ModelError(f"{path}: the values look log-scaled already, but the run logs its input "
                                 f"({normalize}): give the raw values, or --normalize none if they are raw")
        if normalize in NORMALIZATIONS:
            fn, label = NORMALIZATIONS[normalize]
            m = m.with_row_transform(fn, label)
        for sl, values in m.iter_blocks(block_size):
            yield (ExpressionMatrix(values, m.sample_ids[sl], m.gene_ids, m.sample_meta.iloc[sl],
                                    m.gene_meta, m.provenance), m.gene_ids, m.gene_meta, m.n_samples)
    finally:
        m.close()


class _Prefetch:
    """Iterate ``items`` on a thread of its own, at most ``depth`` items ahead (bounded memory).

    Exceptions raised by ``items`` are re-raised by the iteration, in the caller's
    thread; :meth:`close` stops the thread and closes ``items`` (e.g. an open file).
    """

    _END = object()

    def __init__(self, items, depth: int = 1) -> None:
        self._items = items
        self._q: queue.Queue = queue.Queue(maxsize=depth)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="dgex-block-reader", daemon=True)
        self._thread.start()

    def _put(self, item) -> bool:
        while not self._stop.is_set():
            try:
                self._q.put(item, timeout=0.05)
                return True
            except queue.Full:
                pass
        return False

    def _run(self) -> None:
        try:
            for item in self._items:
                if not self._put(item):
                    return
            self._put(self._END)
        except BaseException as e:  # re-raised in the caller's thread
            self._put(e)
        finally:
            close = getattr(self._items, "close", None)
            if close is not None:
                close()

    def __iter__(self):
        while True:
            item = self._q.get()
            if item is self._END:
                return
            if isinstance(item, BaseException):
                raise item
            yield item

    def close(self) -> None:
        self._stop.set()
        self._thread.join()


def _predict_and_write(run: Run, block: ExpressionMatrix, lm_pos: np.ndarray, missing: str, clip,
                       plan) -> ExpressionMatrix:
    """Predict a block and write its values where the writer's ``plan`` says (on a Dask
    worker); returns the block's samples and metadata without the values."""
    from ..export import write_planned

    out = predict_matrix_block(run, block, lm_pos, missing, clip=clip)
    write_planned(plan, out.values)
    return ExpressionMatrix(np.empty((out.n_samples, 0), np.float32), out.sample_ids, pd.Index([], dtype=object),
                            out.sample_meta, None, out.provenance)


def predict_file(
    run: Run,
    input_path: str | os.PathLike,
    output_path: str | os.PathLike,
    *,
    format: str | None = None,
    block_size: int | None = None,
    missing: str = "refuse",
    compression: str | None = None,
    progress: Callable[[int, int | None, dict], None] | None = None,
    background: bool = True,
    clip: bool = True,
    normalize: str | None = "run",
    platform: str | None = None,
    gather: bool = False,
) -> dict:
    """Predict every target for every sample of ``input_path`` and write ``output_path``.

    The output (samples x measured landmarks + inferred targets, float32) appears only
    when complete: it is written under a hidden temporary name and renamed, so an
    error, Ctrl-C or a kill leaves nothing under ``output_path``.

    Parameters
    ----------
    format
        Output format (``gctx``, ``parquet``, ``csv``, ``tsv``, ``gct``); default from
        the suffix of ``output_path``. CSV / TSV carry the per-gene ``role`` and
        ``well_inferred`` in the side file ``<name>.genes.<csv|tsv>``
        (:func:`~dgex_core.export.gene_meta_path`); GCTX and Parquet carry them inside.
    block_size
        Samples per block; default :func:`default_block_size` (~128 MiB of output
        values per block: 1,310 samples at 22,283 genes). Memory grows with it, speed
        hardly does beyond a few hundred samples.
    missing
        ``"refuse"`` (default) or ``"impute"`` missing landmark values (see
        :func:`predict_matrix_block`).
    compression
        As :func:`~dgex_core.export.open_block_writer` takes it: for GCTX ``"none"``
        (default), ``"gzip"`` (deflate 6, as cmapPy and the Broad's files: ~17%
        smaller, and ~20x slower than the prediction itself on 2 cores; the chunks are
        compressed on every core) or ``"lzf"``; for Parquet ``"lz4"`` (default),
        ``"zstd"``, ``"snappy"``, ``"gzip"``, ``"none"``.
    progress
        ``progress(samples_done, total_or_None, info)`` after each block.
    background
        Write each block on a thread of its own while the next one is computed
        (default); ``False`` writes in the caller's thread (same file).
    clip
        Clip inferred values to the range of the run's training targets
        (:meth:`~dgex_core.store.Run.target_range`; default). Runs saved before dgex
        recorded the range are not clipped (``clip_range`` is then ``None``).
    normalize
        Per-sample normalization of the input: ``"run"`` (default) applies the one the
        run was trained with (``log2cpm`` for a run trained on counts, so counts are
        predicted from as they were trained on; the measured landmarks in the output
        are then in log2 CPM) and refuses an input on the other scale (counts given to
        a run trained on log2 values, or log2 values to a run that logs its input);
        ``"log2cpm"``, ``"log2"`` or ``None`` / ``"none"`` force it, unchecked.
    platform
        The platform to read from a GEO SOFT family file spanning several.
    gather
        With a Dask cluster: bring every block's values back and write them here, also
        to an uncompressed GCTX or a zarr store, which the workers otherwise write
        themselves (that needs the output's folder on a filesystem they share, not an
        object store mounted on each machine).

    Returns
    -------
    dict
        ``samples``, ``landmarks``, ``targets``, ``ood_flagged``, ``samples_imputed``,
        ``samples_mostly_imputed`` (flagged for it),
        ``values_clipped``, ``samples_clipped``, ``clip_range``, ``output``, ``gene_meta`` (the side file of a CSV / TSV, else ``None``),
        ``block_size`` and ``compression``.

    Raises
    ------
    ModelError
        If the input lacks landmarks of the run, has missing values (with
        ``missing="refuse"``) or no samples.
    ValueError
        For an unknown output format or a compression the format does not take.
    """
    input_path = Path(input_path)
    refuse_input_as_output(output_path, input_path)
    fmt, codec = resolve_compression(output_path, format, compression)
    if fmt != "zarr":  # a zarr store is a folder (ZarrWriter refuses anything else there)
        output_target(output_path)  # a device, FIFO or folder is refused before any work
    genes = run.model.landmark_ids_.append(run.model.target_ids_)
    block_size = int(block_size) if block_size else default_block_size(len(genes))
    n_done, n_flagged, n_imputed, n_mostly_imputed, lm_pos, writer = 0, 0, 0, 0, None, None
    clip_range = run.target_range() if clip else None
    n_clipped_values = n_clipped_samples = 0
    total = None
    # output buffers come back once written and are reused: no fresh pages to fault in per block
    spare: collections.deque = collections.deque()
    in_flight: collections.deque = collections.deque()
    written = threading.Semaphore(0)
    expect_unlogged = None
    if normalize == "run":
        normalize = run.config.get("normalize")
        # the input checked against the scale the run was trained on ("none": values taken as
        # they are, whatever they look like, so nothing to check)
        expect_unlogged = None if normalize == "none" else normalize is not None
    if normalize not in (None, "none", "log2cpm", "log2"):
        raise ValueError(f"normalize must be 'run', 'log2cpm', 'log2' or 'none', got {normalize!r}")
    reader = _Prefetch(_blocks(input_path, block_size, normalize, run.model.landmark_ids_, expect_unlogged,
                               platform))  # reading overlaps computing, too
    from ..distributed import current_client

    client = current_client()  # with a Dask cluster: blocks predicted on the workers, written here in order
    remote_run = None if client is None else client.scatter(run, broadcast=True, hash=False)
    window = 0 if client is None else 2 * max(1, len(client.scheduler_info().get("workers", {})))
    pending: collections.deque = collections.deque()
    remote_store = False  # whether the workers write the output's values themselves

    def finish(out: ExpressionMatrix, written_by_worker: bool = False) -> None:
        nonlocal n_done, n_imputed, n_mostly_imputed, n_clipped_values, n_clipped_samples, n_flagged
        writer.record(out) if written_by_worker else writer.append(out)
        n_done += out.n_samples
        n_imputed += int((out.sample_meta["n_imputed"] > 0).sum())
        n_mostly_imputed += int((out.sample_meta["n_imputed"] > MAX_IMPUTED_SHARE * len(lm_pos)).sum())
        n_clipped_values += int(out.sample_meta["n_clipped"].sum())
        n_clipped_samples += int((out.sample_meta["n_clipped"] > 0).sum())
        n_flagged += int(out.sample_meta["ood_flag"].sum())
        if progress:
            progress(n_done, total, {"samples": n_done})

    try:
        for block, gene_ids, gene_meta, n_input in reader:
            if lm_pos is None:
                lm_pos = landmark_columns(run, gene_ids, gene_meta, str(input_path))
                total = n_input
                # zarr, or uncompressed GCTX, from the workers: each writes its own blocks into the
                # output, no values travel back (else one writer here, in order)
                remote_store = client is not None and not gather and workers_write(fmt, codec)
                writer = open_block_writer(output_path, genes, output_gene_meta(run, clip_range), fmt,
                                           compression=codec, background=background and not remote_store,
                                           on_written=(lambda b: written.release()) if background else None,
                                           n_samples=n_input, chunk_rows=block_size)
                recycle = not writer.retains_blocks
            if client is not None:
                if remote_store:
                    pending.append(client.submit(_predict_and_write, remote_run, block, lm_pos, missing, clip_range,
                                                 writer.reserve(block.n_samples), pure=False))
                else:
                    pending.append(client.submit(predict_matrix_block, remote_run, block, lm_pos, missing,
                                                 clip=clip_range, pure=False))
                while len(pending) > window:
                    finish(pending.popleft().result(), remote_store)
                continue
            while recycle and written.acquire(blocking=False):
                spare.append(in_flight.popleft())
            buf = spare.pop() if spare else None
            if buf is None or buf.shape[0] < block.n_samples:
                buf = np.empty((max(block.n_samples, block_size), len(genes)), np.float32) if recycle else None
            finish(predict_matrix_block(run, block, lm_pos, missing, out=buf, clip=clip_range))
            if recycle:
                (in_flight if background else spare).append(buf)
        while pending:
            finish(pending.popleft().result(), remote_store)
        if writer is None:
            raise ModelError(f"{input_path}: no samples to predict")
        writer.close()
    except BaseException:
        if remote_store and pending:  # blocks being written on workers land before the temporary goes
            from distributed import wait

            with contextlib.suppress(Exception):
                wait(list(pending), timeout=600)
        for f in pending:
            f.cancel()
        if writer is not None:
            writer.discard()
        raise
    finally:
        reader.close()
    return {"samples": n_done, "landmarks": len(run.model.landmark_ids_), "targets": len(run.model.target_ids_),
            "ood_flagged": n_flagged, "ood_checked": run.trust is not None, "samples_imputed": n_imputed,
            "samples_mostly_imputed": n_mostly_imputed, "values_clipped": n_clipped_values,
            "samples_clipped": n_clipped_samples, "clip_range": clip_range, "output": str(output_path),
            "gene_meta": str(gene_meta_path(output_path, fmt)) if fmt in ("csv", "tsv") else None,
            "block_size": block_size, "compression": codec}
