"""Helpers shared by test modules: the ``dgex`` command run in-process, and small
synthetic datasets. Test modules import these from here, not from one another."""

from __future__ import annotations

import contextlib
import io
import os
import sys
import tempfile
import traceback
import warnings
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import NamedTuple

import h5py
import numpy as np
import pandas as pd
from hypothesis import strategies as st

from dgex_core.dataset import Dataset
from dgex_core.matrix import ExpressionMatrix


# ----------------------------------------------------------------- the dgex command
class CliResult(NamedTuple):
    """What a run of the command left: its exit status and what it printed (the
    attribute names of :class:`subprocess.CompletedProcess`)."""

    returncode: int
    stdout: str
    stderr: str


@contextlib.contextmanager
def _environment(env: Mapping[str, str] | None, cwd: str | os.PathLike | None,
                 umask: int | None) -> Iterator[None]:
    """``os.environ`` with ``env`` added, the working folder ``cwd`` and the umask ``umask``
    for the block; all three as they were afterwards."""
    saved_env = {k: os.environ.get(k) for k in env or {}}
    saved_cwd = os.getcwd() if cwd is not None else None
    saved_umask = os.umask(umask) if umask is not None else None
    try:
        for k, v in (env or {}).items():
            os.environ[k] = str(v)
        if cwd is not None:
            os.chdir(cwd)
        yield
    finally:
        for k, v in saved_env.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        if saved_cwd is not None:
            os.chdir(saved_cwd)
        if saved_umask is not None:
            os.umask(saved_umask)


@contextlib.contextmanager
def _captured_fds() -> Iterator[list[str]]:
    """What is written to file descriptors 1 and 2 (C libraries, child processes) during
    the block; the list receives (stdout, stderr) at its end."""
    got: list[str] = []
    with tempfile.TemporaryFile("w+b") as out, tempfile.TemporaryFile("w+b") as err:
        saved = [os.dup(1), os.dup(2)]
        try:
            os.dup2(out.fileno(), 1)
            os.dup2(err.fileno(), 2)
            yield got
        finally:
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            os.close(saved[0])
            os.close(saved[1])
            for f in (out, err):
                f.seek(0)
                got.append(f.read().decode(errors="replace"))


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """A warning written to standard error, as a fresh interpreter writes it."""
    sys.stderr.write(warnings.formatwarning(message, category, filename, lineno, line))


def run_cli(*args, env: Mapping[str, str] | None = None, cwd: str | os.PathLike | None = None,
            umask: int | None = None) -> CliResult:
    """``dgex ARGS`` run in this process through :func:`dgex_core.cli.main`, as a shell runs it:
    the exit status (argparse's SystemExit included: 2 for a usage error, 0 for --help),
    everything printed to standard output and error (Python's and the file descriptors'),
    warnings shown on standard error under Python's default filters, and an exception
    that escapes ``main`` (``--debug``) printed as a traceback with status 1. ``env``,
    ``cwd`` and ``umask`` apply to this run only."""
    from dgex_core.cli import main

    out, err = io.StringIO(), io.StringIO()
    with _environment(env, cwd, umask), _captured_fds() as fds, warnings.catch_warnings():
        warnings.resetwarnings()  # Python's defaults, not pytest's: as the console shows them
        for category in (DeprecationWarning, PendingDeprecationWarning, ImportWarning, ResourceWarning):
            warnings.simplefilter("ignore", category)
        warnings.showwarning = _show_warning
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                code = main([str(a) for a in args])
            except SystemExit as e:
                code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
                if e.code is not None and not isinstance(e.code, int):
                    print(e.code, file=sys.stderr)
            except Exception:
                traceback.print_exc()
                code = 1
            sys.stdout.flush()
            sys.stderr.flush()
    return CliResult(code, out.getvalue() + fds[0], err.getvalue() + fds[1])


def cli(*args, check: bool = True, **kw) -> CliResult:
    """:func:`run_cli`, raising AssertionError with its standard error when ``check`` and
    the command failed."""
    res = run_cli(*args, **kw)
    if check and res.returncode != 0:
        raise AssertionError(f"dgex {' '.join(map(str, args))} failed ({res.returncode}):\n{res.stderr}")
    return res


#: The installed console command (``pip install -e .`` puts it beside this Python), for the
#: few tests that run ``dgex`` as a separate process.
DGEX_SCRIPT = Path(sys.executable).parent / "dgex"


# ------------------------------------------------------------------------ datasets
def linear_data(n=600, p=40, t=25, seed=0, nonlinear=False) -> Dataset:
    """``n`` samples of ``p`` landmarks L0.. (normal, per-gene scale) and ``t`` targets T0..
    that are a sparse linear function of them plus unit noise (+ tanh of L0 when
    ``nonlinear``)."""
    rng = np.random.default_rng(seed)
    X = rng.normal(8, 2, size=(n, p)) * rng.uniform(0.5, 3, size=p)
    W = rng.normal(0, 1, size=(p, t)) * (rng.random((p, t)) < 0.2)
    Y = 5 + X @ W * 0.1 + rng.normal(0, 1, size=(n, t))
    if nonlinear:
        Y += np.tanh(X[:, :1] - 8)
    genes = [f"L{i}" for i in range(p)] + [f"T{j}" for j in range(t)]
    m = ExpressionMatrix(np.hstack([X, Y]), [f"S{i}" for i in range(n)], genes)
    return Dataset.from_matrix(m, genes[:p])


# ---------------------------------------------------------------------- ARCHS4 files
#: An ARCHS4-like file: 8 genes (symbols with duplicates: FIRST are the first rows of
#: each) x 12 samples ACC of counts COUNTS (genes x samples, as ARCHS4 stores them).
SYMBOLS = ["TP53", "EGFR", "GAPDH", "EGFR", "ACTB", "MYC", "TP53", "AR"]
ENSEMBL = [f"ENSG0000000000{i}" for i in range(8)]
FIRST = [0, 1, 2, 4, 5, 7]  # first row of each symbol
ACC = [f"GSM{1000 + j}" for j in range(12)]
SC_PROB = np.array([0.01, 0.9, 0.02, 0.03, 0.97, 0.1, 0.2, 0.6, 0.0, 0.05, np.nan, 0.3])
COUNTS = (np.arange(8)[:, None] * 100 + np.arange(12)[None, :]).astype(np.uint32)  # genes x samples


def make_archs4(path: Path, *, transposed: bool = False, drop: tuple[str, ...] = (), edit=None) -> Path:
    """A small file laid out like human_gene_v2.x.h5 (fixed and variable-length strings)."""
    vlen = h5py.string_dtype("utf-8")
    with h5py.File(path, "w") as f:
        data = COUNTS.T if transposed else COUNTS
        f.create_dataset("data/expression", data=data, chunks=(4, 5) if not transposed else (5, 4),
                         compression="gzip")
        f["meta/genes/symbol"] = np.array(SYMBOLS, dtype="S")
        f["meta/genes/ensembl_gene"] = np.array(ENSEMBL, dtype="S")
        f["meta/genes/biotype"] = np.array(["protein_coding"] * 8, dtype=object).astype(vlen)
        f["meta/samples/geo_accession"] = np.array(ACC, dtype="S")
        f["meta/samples/series_id"] = np.array(["GSE1"] * 6 + ["GSE2"] * 6, dtype="S")
        f["meta/samples/title"] = np.array([f"sample {j}" for j in range(12)], dtype=object).astype(vlen)
        f.create_dataset("meta/samples/characteristics_ch1", data=[f"tissue: liver,age: {30 + j}" for j in range(12)],
                         dtype=vlen)
        f["meta/samples/singlecellprobability"] = SC_PROB
        f["meta/info/version"] = np.array([b"2.2"])
        for node in drop:
            del f[node]
        if edit is not None:
            edit(f)
    return path


def mixed_data(n=900, p=10, t=8, seed=0) -> Dataset:
    """Half the targets linear in the landmarks, half strongly non-linear; samples x genes."""
    rng = np.random.default_rng(seed)
    X = rng.normal(0, 1, size=(n, p))
    B = rng.normal(0, 1, size=(p, t))
    Y = X @ B
    Y[:, t // 2:] += 2.0 * np.tanh(3 * X[:, : t - t // 2]) + X[:, 1: t - t // 2 + 1] ** 2
    Y += rng.normal(0, 0.3, size=Y.shape)
    genes = [f"L{i}" for i in range(p)] + [f"T{j}" for j in range(t)]
    m = ExpressionMatrix(np.hstack([X + 8, Y + 6]).astype(np.float32), [f"S{i}" for i in range(n)], genes)
    return Dataset.from_matrix(m, genes[:p])


# ------------------------------------------------------------------ matrix checks
#: Characters a gene or sample id may hold in the round-trip property tests.
ID_CHARS = st.characters(blacklist_categories=("Cc", "Cs", "Zs", "Zl", "Zp"))


def assert_meta_equal(a: pd.DataFrame, b: pd.DataFrame) -> None:
    """Same columns, same missing cells, same values (numbers compared exactly, text as text)."""
    assert list(map(str, a.columns)) == list(map(str, b.columns))
    assert list(a.index) == list(b.index)
    for c in a.columns:
        x, y = a[c].tolist(), b[c].tolist()
        for u, v in zip(x, y, strict=True):
            assert pd.isna(u) == pd.isna(v), (c, u, v)
            if not pd.isna(u):
                assert str(u) == str(v), (c, u, v)


def assert_same(a: ExpressionMatrix, b: ExpressionMatrix) -> None:
    assert list(a.sample_ids) == list(b.sample_ids)
    assert list(a.gene_ids) == list(b.gene_ids)
    assert a.values.dtype == b.values.dtype
    np.testing.assert_array_equal(a.values, b.values)  # NaN == NaN here, and exact
    assert_meta_equal(a.sample_meta, b.sample_meta)
    assert_meta_equal(a.gene_meta, b.gene_meta)
