"""One table of malformed inputs, read through the public entry point ``dgex_core.io.read``.

Each case must raise :class:`DataFormatError` (the one documented error type of the
readers) whose message names the file and the place, and says what was expected.
"""

from __future__ import annotations

import gzip
from pathlib import Path

import h5py
import numpy as np
import pytest

from dgex_core.dataset import Dataset
from dgex_core.errors import DataFormatError, DatasetError
from dgex_core.io import read, sniff

GOOD_GCT = "#1.2\n2\t3\nName\tDescription\tS1\tS2\tS3\ng1\tna\t1.0\t2.0\t3.0\ng2\tna\t4.0\t5.0\t6.0\n"


def _write(path: Path, content: str | bytes) -> Path:
    if isinstance(content, str):
        content = content.encode()
    path.write_bytes(content)
    return path


def _hdf5_without_gctx(path: Path) -> Path:
    with h5py.File(path, "w") as f:
        f.create_dataset("some/other/matrix", data=np.ones((3, 3)))
    return path


def _gctx_missing_col_ids(path: Path) -> Path:
    with h5py.File(path, "w") as f:
        f.attrs["version"] = "GCTX1.0"
        f.create_dataset("0/DATA/0/matrix", data=np.ones((3, 2), np.float32))
        f.create_dataset("0/META/ROW/id", data=np.array([b"g1", b"g2"]))
    return path


def _truncated_gz(path: Path) -> Path:
    body = GOOD_GCT.replace("#1.2\n2\t3", "#1.2\n2000\t3") + "".join(
        f"g{i}\tna\t{i}.5\t{i}.25\t{i}.125\n" for i in range(3, 2001))
    data = gzip.compress(body.encode())
    return _write(path, data[: len(data) // 2])


# (case id, file name, builder, words the message must contain)
CASES = [
    ("empty file", "empty.gct", lambda p: _write(p, ""), ["empty"]),
    ("truncated GCT", "trunc.gct", lambda p: _write(p, GOOD_GCT.replace("2\t3", "5\t3")), ["line", "5"]),
    ("header counts disagree", "cols.gct", lambda p: _write(p, GOOD_GCT.replace("2\t3", "2\t4")), ["line 3"]),
    ("ragged row", "ragged.gct", lambda p: _write(p, GOOD_GCT.replace("4.0\t5.0\t6.0", "4.0\t5.0")), ["line 5"]),
    ("non-numeric value", "text.gct", lambda p: _write(p, GOOD_GCT.replace("5.0", "high")), ["line 5", "high"]),
    ("duplicate gene ids", "dup.gct", lambda p: _write(p, GOOD_GCT.replace("g2", "g1")), ["duplicate", "g1"]),
    ("duplicate sample ids", "dups.gct", lambda p: _write(p, GOOD_GCT.replace("S3", "S1")), ["duplicate", "S1"]),
    ("truncated gzip", "cut.gct.gz", _truncated_gz, ["gzip"]),
    ("HDF5 without GCTX nodes", "other.gctx", _hdf5_without_gctx, ["/0/DATA/0/matrix"]),
    ("GCTX without column ids", "nocol.gctx", _gctx_missing_col_ids, ["/0/META/COL/id"]),
    ("binary garbage named .tsv", "garbage.tsv", lambda p: _write(p, bytes(range(256)) * 8), ["binary"]),
    ("ragged CSV", "ragged.csv", lambda p: _write(p, "gene,S1,S2\ng1,1,2\ng2,3\ng3,4,5,6\n"), ["line"]),
    ("non-numeric CSV", "text.csv", lambda p: _write(p, "gene,S1,S2\ng1,1,2\ng2,3,oops\n"), ["oops"]),
]


@pytest.mark.parametrize(("name", "fname", "build", "words"), CASES, ids=[c[0] for c in CASES])
def test_bad_input_raises_documented_error_naming_file_and_place(tmp_path, name, fname, build, words):
    path = build(tmp_path / fname)
    with pytest.raises(DataFormatError) as err:
        read(path)
    msg = str(err.value)
    assert fname in msg, msg
    for w in words:
        assert w.lower() in msg.lower(), f"{name}: {w!r} not in {msg!r}"


def test_text_gct_named_gctx_is_read_by_content(tmp_path):
    """Sniffing goes by content: a text GCT with a .gctx name is still a GCT."""
    p = _write(tmp_path / "plain.gctx", GOOD_GCT)
    assert sniff(p) == "gct"
    m = read(p)
    assert m.shape == (3, 2)


def test_text_gct_forced_as_gctx_says_it_is_not_hdf5(tmp_path):
    p = _write(tmp_path / "plain.gctx", GOOD_GCT)
    with pytest.raises(DataFormatError, match=r"plain\.gctx.*HDF5"):
        read(p, format="gctx")


def test_table_without_landmark_genes_is_a_clear_error(tmp_path):
    p = _write(tmp_path / "nolm.csv", "gene,S1,S2\nA,1,2\nB,3,4\n")
    with pytest.raises(DatasetError, match=r"nolm\.csv.*none of the 2 landmark genes"):
        Dataset.from_matrix(read(p), ["X1", "X2"])


def test_missing_file_is_named(tmp_path):
    with pytest.raises(DataFormatError, match=r"nothere\.gct.*not found"):
        read(tmp_path / "nothere.gct")
