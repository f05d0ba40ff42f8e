"""One battery over every format dgex writes and reads: the same matrix back (values,
ids, metadata), the same values read lazily by blocks and by scattered samples, and a
cut-off file refused with an error that names it (never a silent misread)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from dgex_core.errors import DataFormatError, DatasetError
from dgex_core.io import open_matrix, read, write
from dgex_core.matrix import ExpressionMatrix

FORMATS = ["gct", "gctx", "csv", "tsv", "parquet", "h5ad"]


def _matrix(n_samples=37, n_genes=23, seed=0) -> ExpressionMatrix:
    rng = np.random.default_rng(seed)
    values = rng.normal(8, 2, size=(n_samples, n_genes)).astype(np.float32)
    values[3, 5] = np.nan
    samples = [f"GSM{100 + i}" for i in range(n_samples)]
    genes = [f"{200 + g}_at" for g in range(n_genes)]
    meta = pd.DataFrame({"tissue": [["liver", "lung", "brain"][i % 3] for i in range(n_samples)]}, index=samples)
    return ExpressionMatrix(values, samples, genes, meta)


@pytest.fixture(params=FORMATS)
def written(request, tmp_path):
    m = _matrix()
    return request.param, m, write(m, tmp_path / f"m.{request.param}")


def test_round_trip_gives_the_same_values_ids_and_sample_metadata(written):
    fmt, m, path = written
    back = read(path)
    assert list(back.sample_ids) == list(m.sample_ids) and list(back.gene_ids) == list(m.gene_ids)
    np.testing.assert_array_equal(back.values.astype(np.float32), m.values)  # NaN where NaN, exact elsewhere
    if fmt in ("gct", "gctx", "h5ad"):  # formats that carry sample metadata
        assert back.sample_meta["tissue"].astype(str).tolist() == m.sample_meta["tissue"].tolist()


def test_lazy_reads_by_blocks_and_scattered_samples_equal_the_whole_read(written):
    _fmt, m, path = written
    lazy = open_matrix(path, cache=True)
    try:
        assert lazy.shape == m.shape
        blocks = [(sl, v) for sl, v in lazy.iter_blocks(5)]
        assert [sl.start for sl, _ in blocks] == list(range(0, 37, 5))
        np.testing.assert_array_equal(np.vstack([v for _, v in blocks]), m.values)
        rows, cols = np.array([30, 2, 17, 2]), np.array([22, 0, 5])
        np.testing.assert_array_equal(lazy.read(rows, cols), m.values[np.ix_(rows, cols)])
    finally:
        lazy.close()


def test_a_cut_off_file_is_refused_naming_it(written, tmp_path):
    fmt, _m, path = written
    data = path.read_bytes()
    cut = tmp_path / f"cut.{fmt}"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises((DataFormatError, DatasetError)) as err:
        read(cut)
    assert "cut." + fmt in str(err.value)
