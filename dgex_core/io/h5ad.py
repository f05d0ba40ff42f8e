"""AnnData ``.h5ad`` files: ``X`` (or a layer) is samples x genes, ``obs`` the samples,
``var`` the genes.

Each node is read on its own with anndata's element reader (``X`` or
``layers/<name>``, ``obs``, ``var``), so a damaged node is named in the error and an
unused layer is never loaded. Sparse ``X`` (CSR or CSC) is made dense.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import h5py
import numpy as np
import pandas as pd

from .._atomic import atomic_path
from ..errors import DataFormatError
from ..matrix import ExpressionMatrix, Provenance, as_id_index

__all__ = ["read_h5ad", "write_h5ad"]

#: ``uns`` key under which :func:`write_h5ad` stores the matrix's provenance (JSON text).
PROVENANCE_KEY = "dgex_provenance"


def _read_elem():
    try:
        from anndata.io import read_elem
    except ImportError:  # anndata < 0.11
        from anndata.experimental import read_elem
    return read_elem


def read_h5ad(
    path: str | os.PathLike,
    *,
    layer: str | None = None,
    gene_id_column: str | None = None,
    dtype=np.float32,
) -> ExpressionMatrix:
    """Read an AnnData ``.h5ad`` file.

    Parameters
    ----------
    path
        The file.
    layer
        Read ``layers/<layer>`` (e.g. ``"counts"``) instead of ``X``.
    gene_id_column
        A ``var`` column to use as gene ids (e.g. ``"gene_ids"`` holding Ensembl ids)
        instead of ``var_names``; the ``var_names`` are then kept in
        ``gene_meta["var_names"]``.
    dtype
        Floating-point type of the values.

    Returns
    -------
    ExpressionMatrix
        ``n_obs x n_vars`` = samples x genes, dense; ``sample_meta`` is ``obs``,
        ``gene_meta`` is ``var``. A file written by :func:`write_h5ad` gets its
        transforms back.

    Raises
    ------
    DataFormatError
        If the file is not HDF5, a node is missing (``/X``, ``/obs``, ``/var``,
        ``/layers/<layer>``) or cannot be decoded (the node is named), shapes disagree,
        or ids repeat or are missing.
    """
    path = Path(path)
    dtype = np.dtype(dtype)
    if dtype.kind != "f":
        raise ValueError(f"dtype must be a floating-point type, got {dtype}")
    try:
        f = h5py.File(path, "r")
    except (OSError, FileNotFoundError) as e:
        raise DataFormatError(path, "HDF5 header", f"cannot open as HDF5 ({e})", "an .h5ad file written by anndata") from None
    with f:
        node = _values_node(f, path, layer)
        values = _dense(_read_node(f, node, path), path, node, dtype)
        obs = _read_node(f, "obs", path)
        var = _read_node(f, "var", path)
        transforms = _stored_transforms(f)
    sample_ids, gene_ids, var = _axes(obs, var, values.shape, path, node, gene_id_column)
    notes = {"layer": layer or "X"}
    if gene_id_column:
        notes["gene_id_column"] = gene_id_column
    return ExpressionMatrix(values, sample_ids, gene_ids, sample_meta=obs, gene_meta=var,
                            provenance=Provenance(str(path), "h5ad", transforms, notes))


def _axes(obs, var, shape, path: Path, node: str, gene_id_column: str | None):
    """Sample ids, gene ids and ``var`` of an h5ad, checked against the matrix shape."""
    for name, frame, n in (("/obs", obs, shape[0]), ("/var", var, shape[1])):
        if not isinstance(frame, pd.DataFrame):
            raise DataFormatError(path, name, f"is a {type(frame).__name__}, not a data frame", "an anndata dataframe group")
        if len(frame) != n:
            raise DataFormatError(path, name, f"{len(frame)} rows but /{node} has {n} along that axis",
                                  f"one {name[1:]} row per {'sample' if name == '/obs' else 'gene'} of /{node}")
    sample_ids = _ids(obs.index, path, "/obs (obs_names)", "sample", "adata.obs_names_make_unique()")
    gene_ids, var = _gene_ids(var, path, gene_id_column)
    return sample_ids, gene_ids, var


def _values_node(f: h5py.File, path: Path, layer: str | None) -> str:
    layers = sorted(f["layers"].keys()) if isinstance(f.get("layers"), h5py.Group) else []
    if layer is None:
        if "X" not in f:
            hint = f"; pass layer= one of {layers}" if layers else ""
            raise DataFormatError(path, "/X", f"no X matrix in this file{hint}", "an /X matrix or a layer")
        return "X"
    if layer not in layers:
        raise DataFormatError(path, f"/layers/{layer}", f"no layer {layer!r} (layers: {layers or 'none'})",
                              "layer= naming one of the file's layers")
    return f"layers/{layer}"


def _read_node(f: h5py.File, node: str, path: Path):
    if node not in f:
        raise DataFormatError(path, f"/{node}", "missing", f"an /{node} node, as anndata writes it")
    try:
        return _read_elem()(f[node])
    except Exception as e:  # anndata raises many types for damaged or foreign nodes
        raise DataFormatError(path, f"/{node}", f"cannot be read by anndata ({type(e).__name__}: {e})",
                              "a node written by anndata >= 0.7") from None


def _dense(x, path: Path, node: str, dtype) -> np.ndarray:
    """X as a dense float array, samples x genes."""
    if hasattr(x, "toarray"):  # scipy sparse matrix / array
        x = x.toarray()
    x = np.asarray(x)
    if x.ndim != 2:
        raise DataFormatError(path, f"/{node}", f"has shape {x.shape}", "a 2-D samples x genes matrix")
    if x.dtype.kind not in "biuf":
        raise DataFormatError(path, f"/{node}", f"holds {x.dtype} values", "numbers")
    return x.astype(dtype, copy=False)


def _ids(index, path: Path, where: str, what: str, fix: str) -> pd.Index:
    if len(index) and pd.isna(index).any():
        raise DataFormatError(path, where, f"missing {what} ids", f"an id for every {what}")
    ids = as_id_index(index)
    if not ids.is_unique:
        dup = ids[ids.duplicated()].unique()[:5].tolist()
        raise DataFormatError(path, where, f"duplicate {what} ids, e.g. {dup}", f"unique ids (in anndata: {fix})")
    return ids


def _gene_ids(var: pd.DataFrame, path: Path, column: str | None) -> tuple[pd.Index, pd.DataFrame]:
    if column is None:
        return _ids(var.index, path, "/var (var_names)", "gene", "adata.var_names_make_unique()"), var
    if column not in var.columns:
        raise DataFormatError(path, f"/var/{column}", f"no var column {column!r} (columns: {list(var.columns)[:10]})",
                              "gene_id_column= naming a column of var")
    ids = _ids(pd.Index(var[column].astype(object)), path, f"/var/{column}", "gene",
               "choose a column with one id per gene")
    meta = var.drop(columns=[column])
    meta.insert(0, "var_names", var.index.astype(str))
    meta.index = ids
    return ids, meta


def _stored_transforms(f: h5py.File) -> tuple[str, ...]:
    node = f"uns/{PROVENANCE_KEY}"
    if node not in f:
        return ()
    try:
        raw = _read_elem()(f[node])
        return tuple(json.loads(raw).get("transforms", ()))
    except Exception:  # a foreign or damaged note is not worth failing the read
        return ()


def write_h5ad(matrix: ExpressionMatrix, path: str | os.PathLike, *, compression: str | None = None) -> Path:
    """Write a matrix as an AnnData ``.h5ad`` file, atomically.

    Parameters
    ----------
    matrix
        ``n_samples x n_genes``; becomes ``X`` (dense), with ``obs`` = ``sample_meta``
        and ``var`` = ``gene_meta``. The provenance is stored as JSON in
        ``uns["dgex_provenance"]``.
    path
        Target file.
    compression
        ``"gzip"`` or ``"lzf"`` for ``X``; none by default.

    Returns
    -------
    Path
        ``path``.

    Notes
    -----
    Text metadata columns with missing values are written as categoricals (anndata
    cannot write object columns holding ``None``); values and ids round-trip exactly.
    """
    import anndata

    path = Path(path)
    adata = anndata.AnnData(
        X=matrix.values,
        obs=_frame_for_anndata(matrix.sample_meta, matrix.sample_ids),
        var=_frame_for_anndata(matrix.gene_meta, matrix.gene_ids),
    )
    adata.uns[PROVENANCE_KEY] = json.dumps(matrix.provenance.to_dict(), default=str)
    with atomic_path(path) as tmp:
        adata.write_h5ad(tmp, compression=compression, convert_strings_to_categoricals=False)
    return path


def _frame_for_anndata(meta: pd.DataFrame, ids: pd.Index) -> pd.DataFrame:
    """Metadata anndata can write: str column names, object columns as text or categorical."""
    out = meta.copy()
    out.columns = [str(c) for c in out.columns]
    out.index = pd.Index(ids.tolist(), dtype=object)
    for c in out.columns:
        col = out[c]
        if col.dtype != object:
            continue
        text = col.where(col.isna(), col.astype(str))
        out[c] = pd.Categorical(text) if text.isna().any() else text.astype(str)
    return out


def open_h5ad(path: str | os.PathLike, *, layer: str | None = None, gene_id_column: str | None = None):
    """An h5ad file as a :class:`~dgex_core.lazy.LazyMatrix` (backed): ``obs``/``var`` read, values on demand.

    A dense ``X`` (or layer) is read by sample slices; a CSR sparse one by row
    pointers (only the stored values of the samples asked are read, and densified
    block by block). A CSC matrix cannot be read by samples and is read whole.
    """
    from ..backends import CSRBackend, H5Backend
    from ..lazy import LazyMatrix

    path = Path(path)
    try:
        f = h5py.File(path, "r")
    except (OSError, FileNotFoundError) as e:
        raise DataFormatError(path, "HDF5 header", f"cannot open as HDF5 ({e})", "an .h5ad file written by anndata") from None
    with f:
        node = _values_node(f, path, layer)
        obj = f[node]
        if isinstance(obj, h5py.Dataset):
            kind, shape = "dense", obj.shape
        else:
            enc = obj.attrs.get("encoding-type", b"")
            enc = enc.decode() if isinstance(enc, bytes) else str(enc)
            kind = "csr" if enc == "csr_matrix" else ("csc" if enc == "csc_matrix" else enc or "group")
            shape = tuple(int(v) for v in obj.attrs.get("shape", (0, 0)))
        obs = _read_node(f, "obs", path)
        var = _read_node(f, "var", path)
        transforms = _stored_transforms(f)
    if kind not in ("dense", "csr") or len(shape) != 2:
        return LazyMatrix.from_matrix(read_h5ad(path, layer=layer, gene_id_column=gene_id_column))
    sample_ids, gene_ids, var = _axes(obs, var, shape, path, node, gene_id_column)
    backend = H5Backend(path, node) if kind == "dense" else CSRBackend(path, node)
    notes = {"layer": layer or "X", "storage": kind}
    if gene_id_column:
        notes["gene_id_column"] = gene_id_column
    return LazyMatrix(backend, sample_ids, gene_ids, obs, var, Provenance(str(path), "h5ad", transforms, notes))
