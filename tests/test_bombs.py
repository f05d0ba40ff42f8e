"""Resource bombs end in a clear error, fast, in bounded memory: header counts, gzip
expansion and HDF5 shapes are not trusted before the body confirms them. Each file
goes through `dgex inspect` in a subprocess under a 4 GB address-space limit (the
allocations these files used to ask for were 7 TiB, 10.9 GiB, 16.6 GiB)."""

from __future__ import annotations

import gzip
import os
import resource
import subprocess
import sys
import time

import h5py
import numpy as np
import pytest

LIMIT = 4 * 2**30


def _limited():
    resource.setrlimit(resource.RLIMIT_AS, (LIMIT, LIMIT))


def _inspect(path, *extra, timeout=60):
    t0 = time.perf_counter()
    out = subprocess.run([sys.executable, "-m", "dgex_core.cli", "inspect", str(path), *map(str, extra)],
                         capture_output=True, text=True, timeout=timeout, preexec_fn=_limited,
                         env={**os.environ, "OPENBLAS_NUM_THREADS": "1"})
    return out, time.perf_counter() - t0


def _refused(out, *words):
    assert out.returncode == 1, (out.stdout, out.stderr)
    assert "Traceback" not in out.stderr and "out of memory" not in out.stderr, out.stderr
    for w in words:
        assert w in out.stderr, out.stderr


def test_a_gct_header_claiming_a_trillion_rows(tmp_path):
    p = tmp_path / "rows.gct"
    p.write_text("#1.2\n1000000000000\t3\nName\tDescription\tS0\tS1\tS2\nL0\tna\t1\t2\t3\n")
    out, s = _inspect(p)
    _refused(out, "rows.gct: line 2", "declares 1,000,000,000,000 rows", "at most 10 rows")
    assert s < 30


def test_a_gzip_gct_whose_rows_expand_far_beyond_its_size(tmp_path):
    p = tmp_path / "bomb.gct.gz"
    p.write_bytes(gzip.compress(b"#1.2\n100000000\t3\nName\tDescription\tS0\tS1\tS2\n"
                                + b"L0\tna\t1\t2\t3\n" * 20_000_000, 6))
    out, s = _inspect(p)
    _refused(out, "bomb.gct.gz: line 2", "declares 100,000,000 rows")
    assert s < 30


def test_a_gzip_csv_of_millions_of_identical_rows(tmp_path):
    p = tmp_path / "bomb.csv.gz"
    p.write_bytes(gzip.compress(b"gene,S0,S1,S2\n" + b"L0,1,2,3\n" * 8_000_000, 6))
    assert p.stat().st_size < 2**20
    out, s = _inspect(p)
    _refused(out, "bomb.csv.gz", "decompression bomb", "DGEX_MAX_EXPANSION")
    assert s < 30


def test_the_expansion_limit_is_a_setting(tmp_path, monkeypatch):
    from dgex_core.errors import DataFormatError
    from dgex_core.io._common import TextLines

    p = tmp_path / "many.csv.gz"
    p.write_bytes(gzip.compress(b"gene,S0\n" + b"L0,1\n" * 400_000, 6))
    with pytest.raises(DataFormatError, match="decompression bomb"), TextLines(p) as lines:
        for _ in lines:
            pass
    # a genuine file of short, distinct rows (a SOFT sample table: ID_REF, VALUE) is not a bomb
    rows = np.random.default_rng(0).normal(8, 2, 300_000)
    soft = tmp_path / "soft.txt.gz"
    soft.write_bytes(gzip.compress("".join(f"{200000 + i}_at\t{v:.2f}\n" for i, v in enumerate(rows)).encode(), 6))
    with TextLines(soft) as lines:
        assert sum(1 for _ in lines) == 300_000
    monkeypatch.setenv("DGEX_MAX_EXPANSION", "1e6")  # a genuine, very repetitive file
    with TextLines(p) as lines:
        assert sum(1 for _ in lines) == 400_001


def test_a_line_without_end(tmp_path):
    p = tmp_path / "line.csv.gz"
    p.write_bytes(gzip.compress(b"gene," + b"S," * 50_000_000, 6))
    out, s = _inspect(p)
    _refused(out, "line.csv.gz: line 1", "longer than 64 MB", "DGEX_MAX_LINE_MB")
    assert s < 30


def test_a_gctx_declaring_millions_of_samples_it_never_stored(tmp_path):
    p = tmp_path / "empty.gctx"
    n = 1_000_000
    with h5py.File(p, "w") as f:
        f.create_dataset("0/DATA/0/matrix", shape=(n, 978), dtype="f4", chunks=(1000, 978), compression="gzip")
        f.create_dataset("0/META/ROW/id", data=np.array([f"g{i}" for i in range(978)], dtype="S"))
        f.create_dataset("0/META/COL/id", data=np.char.add(b"s", np.arange(n).astype("S7")))
    out, s = _inspect(p)
    _refused(out, "empty.gctx: /0/DATA/0/matrix", "1,000 of the 1,000 chunks", "never written")
    assert s < 30


def test_a_sparse_h5ad_of_200000_samples_is_read_sparse_not_densified(tmp_path):
    anndata = pytest.importorskip("anndata")
    import pandas as pd
    import scipy.sparse as sp

    rng = np.random.default_rng(0)
    n, g, nnz = 200_000, 22_283, 400_000
    X = sp.csr_matrix((rng.random(nnz).astype(np.float32), (rng.integers(0, n, nnz), rng.integers(0, g, nnz))),
                      shape=(n, g))
    a = anndata.AnnData(X, obs=pd.DataFrame(index=[f"s{i}" for i in range(n)]),
                        var=pd.DataFrame(index=[f"g{i}" for i in range(g)]))
    a.write_h5ad(tmp_path / "sparse.h5ad")
    (tmp_path / "lm.txt").write_text("g1\ng2\ng3\n")
    out, _ = _inspect(tmp_path / "sparse.h5ad", "--landmarks", tmp_path / "lm.txt")  # dense: 16.6 GiB
    assert out.returncode == 0, out.stderr
    assert "200000 samples x 22283 genes" in out.stdout and "3 of 3 landmarks present" in out.stdout
