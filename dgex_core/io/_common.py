"""Helpers shared by the readers: opening files transparently through gzip, sniffing
magic bytes, parsing numbers with missing-value markers."""

from __future__ import annotations

import contextlib
import gzip
import io
import os
import stat
import zlib
from pathlib import Path
from typing import IO

import numpy as np

from ..errors import DataFormatError

GZIP_MAGIC = b"\x1f\x8b"
HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"
PARQUET_MAGIC = b"PAR1"

#: Tokens read as a missing value (NaN) in numeric cells, compared case-insensitively.
MISSING_TOKENS = frozenset({"", "na", "nan", "null", "#n/a", "-666", "-666.0"})


# In a numeric cell, -666 is a number here; formats that use it as a marker (GCT)
# convert it themselves, so the fast and careful parse paths always agree.
_NUMBER_MISSING = MISSING_TOKENS - {"-666", "-666.0"}


def head_bytes(path: str | os.PathLike, n: int = 4096) -> bytes:
    """The first ``n`` bytes of a file, decompressed when it is gzip.

    Raises
    ------
    DataFormatError
        If the file is missing, empty, or a gzip stream too damaged to start.
    """
    p = Path(path)
    if not p.exists():
        raise DataFormatError(p, None, "file not found", "an existing file path")
    if p.is_dir():
        raise DataFormatError(p, None, "is a folder, not a file", "a file path")
    mode = p.stat().st_mode
    if not stat.S_ISREG(mode):  # reading a FIFO or a device would wait for a writer, or never end
        kind = "a FIFO (named pipe)" if stat.S_ISFIFO(mode) else "a socket" if stat.S_ISSOCK(mode) else "a device"
        raise DataFormatError(p, None, f"is {kind}, not a regular file; dgex reads files it can seek in",
                              "a regular file (save the stream to a file first)")
    with open(p, "rb") as fh:
        raw = fh.read(n)
    if not raw:
        raise DataFormatError(p, "line 1", "the file is empty", "a non-empty expression file")
    if raw[:2] == GZIP_MAGIC:
        try:
            with gzip.open(p, "rb") as fh:
                raw = fh.read(n)
        except (OSError, EOFError, zlib.error) as e:
            raise DataFormatError(p, "gzip stream", f"cannot decompress: {e}", "a complete gzip file") from None
        if not raw:
            raise DataFormatError(p, "line 1", "the file is empty once decompressed", "a non-empty expression file")
    return raw


def is_gzip(path: str | os.PathLike) -> bool:
    with open(path, "rb") as fh:
        return fh.read(2) == GZIP_MAGIC


def open_text(path: str | os.PathLike) -> IO[str]:
    """Open a text file for reading, through gzip when its magic bytes say so.

    Decoding is UTF-8 with replacement so stray bytes never stop a read, and a leading
    byte-order mark (Excel's and Notepad's "UTF-8 with BOM") is dropped; newlines are
    universal (``\\r\\n`` files read like ``\\n`` ones).
    """
    p = Path(path)
    if is_gzip(p):
        return io.TextIOWrapper(gzip.open(p, "rb"), encoding="utf-8-sig", errors="replace", newline=None)
    return open(p, encoding="utf-8-sig", errors="replace", newline=None)


def _env_number(name: str, default: float) -> float:
    try:
        return float(os.environ.get(name, "") or default)
    except ValueError:
        return default


def max_expansion() -> float:
    """How many times its compressed size a gzip text file may expand to
    (``$DGEX_MAX_EXPANSION``, default 200; expression tables expand 3-30x, a
    decompression bomb thousands of times), beyond a first :data:`EXPANSION_ALLOWANCE`."""
    return _env_number("DGEX_MAX_EXPANSION", 200.0)


#: Text any gzip file may expand to whatever its ratio (small files compress well).
EXPANSION_ALLOWANCE = 64 * 2**20


def max_line_chars() -> int:
    """Longest line a text reader accepts (``$DGEX_MAX_LINE_MB``, default 64 MB: ~6
    million cells), so one line without an end cannot fill memory."""
    return int(_env_number("DGEX_MAX_LINE_MB", 64.0) * 2**20)


def max_text_chars(path: str | os.PathLike) -> int | None:
    """The most text ``path`` may hold once decompressed (None for an uncompressed file,
    whose size is its bound)."""
    p = Path(path)
    if not is_gzip(p):
        return None
    return int(p.stat().st_size * max_expansion()) + EXPANSION_ALLOWANCE


def text_size_bound(path: str | os.PathLike) -> int:
    """Characters of text ``path`` can give at most: its size, or its decompression limit."""
    bound = max_text_chars(path)
    return Path(path).stat().st_size if bound is None else bound


class TextLines:
    """Iterate over a text file's lines with their 1-based line numbers.

    Wraps gzip errors (a truncated ``.gz``) into :class:`DataFormatError` naming the
    line where the stream broke. Bounded: a gzip file that expands more than
    :func:`max_expansion` times, or a line longer than :func:`max_line_chars`, ends
    in a :class:`DataFormatError` saying which limit and how to raise it.
    """

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        self._limit = max_text_chars(self.path)
        self._line_limit = max_line_chars()
        self._chars = 0
        # lines cost Python time to parse: a gzip of millions of identical short rows takes
        # minutes, so lines are bounded too, at one line per compressed byte (a genuine row,
        # even a SOFT table's "ID_REF VALUE" row, compresses to several bytes)
        self._line_count_limit = (int((100_000 + self.path.stat().st_size) * max_expansion() / 200)
                                  if self._limit is not None else None)
        self._fh = open_text(self.path)
        self.lineno = 0

    def __enter__(self) -> TextLines:
        return self

    def __exit__(self, *exc) -> None:
        self._fh.close()

    def __iter__(self):
        return self

    def __next__(self) -> str:
        try:
            line = self._fh.readline(self._line_limit + 1)
        except (OSError, EOFError, zlib.error) as e:
            raise DataFormatError(
                self.path, f"line {self.lineno + 1}", f"the compressed stream is cut off or damaged ({e})",
                "a complete gzip file",
            ) from None
        if not line:
            raise StopIteration
        self.lineno += 1
        if len(line) > self._line_limit:
            raise DataFormatError(
                self.path, f"line {self.lineno}", f"the line is longer than {self._line_limit / 2**20:.0f} MB",
                "lines of a table (set DGEX_MAX_LINE_MB to allow longer ones)")
        self._chars += len(line)
        if self._limit is not None and (self._chars > self._limit or self.lineno > self._line_count_limit):
            size = self.path.stat().st_size
            what = (f"{self._chars / 2**20:,.0f} MB of text" if self._chars > self._limit
                    else f"{self.lineno:,} lines")
            raise DataFormatError(
                self.path, f"line {self.lineno}",
                f"the gzip file ({size:,} bytes) expands to more than {what}, more than a compression ratio of "
                f"{max_expansion():g} allows (a decompression bomb?)",
                "an expression table (set DGEX_MAX_EXPANSION to a larger ratio if the file is genuine)")
        return line.rstrip("\r\n")

    def next_line(self, expected: str) -> str:
        """The next line, or a :class:`DataFormatError` saying the file ended early."""
        try:
            return next(self)
        except StopIteration:
            raise DataFormatError(
                self.path, f"line {self.lineno + 1}", "the file ends here (truncated?)", expected
            ) from None


def parse_float_row(
    cells: list[str], path: str | os.PathLike, lineno: int, first_col: int, dtype=np.float32,
    columns: list[int] | None = None, names: list[str] | None = None,
) -> np.ndarray:
    """Parse numeric cells, turning missing-value markers (NA, NaN, empty...) into NaN.

    ``first_col`` is the 1-based column number of ``cells[0]`` in the file, for the
    error message; ``columns`` gives each cell's column instead when they are not
    consecutive, and ``names`` their header names.

    Raises
    ------
    DataFormatError
        Naming the line and column of the first cell that is not a number.
    """
    def where(j: int) -> tuple[str, str]:
        col = columns[j] if columns is not None else first_col + j
        return f"line {lineno}, column {col}", (f" (column {names[j]!r})" if names is not None else "")

    joined = "".join(cells)
    # Python's float() also takes '7_5' (75) and non-ASCII digits ('٧', '７'): not numbers in a data file
    plain = joined.isascii() and "_" not in joined
    out = None
    if plain:
        with contextlib.suppress(ValueError):
            out = np.asarray(cells, dtype=np.float64)
    if out is None:
        out = np.empty(len(cells), dtype=np.float64)
        for j, c in enumerate(cells):
            s = c.strip()
            if s.lower() in _NUMBER_MISSING:
                out[j] = np.nan
                continue
            try:
                if not s.isascii() or "_" in s:
                    raise ValueError(s)
                out[j] = float(s)
            except ValueError:
                place, named = where(j)
                odd = " (digits other than 0-9, or '_')" if not s.isascii() or "_" in s else ""
                raise DataFormatError(
                    path, place, f"{s[:40]!r} is not a number{odd}{named}",
                    "a numeric value or a missing-value marker (NA, NaN, null, empty)",
                ) from None
    if np.dtype(dtype) == np.float32:
        with np.errstate(over="ignore"):
            cast = out.astype(np.float32)
        big = np.isinf(cast) & np.isfinite(out)  # finite, but float32 cannot hold it ('inf' stays inf)
        if big.any():
            j = int(np.flatnonzero(big)[0])
            place, named = where(j)
            raise DataFormatError(path, place, f"{cells[j].strip()[:40]!r} is beyond float32's range{named}",
                                  f"values within +-{_FLOAT32_MAX:.3g} (expression values are far smaller; "
                                  "read with dtype=float64 to keep it)")
    return out.astype(dtype, copy=False)


_FLOAT32_MAX = float(np.finfo(np.float32).max)


def missing_to_nan(values: np.ndarray) -> np.ndarray:
    """Replace the CMap missing marker -666 by NaN (in place for float arrays)."""
    values[values == -666] = np.nan
    return values


def check_unique(ids, path, where: str, what: str) -> None:
    """Raise :class:`DataFormatError` naming repeated ids."""
    import pandas as pd

    idx = pd.Index(ids)
    if not idx.is_unique:
        dup = idx[idx.duplicated()].unique()[:5].tolist()
        raise DataFormatError(path, where, f"duplicate {what} ids, e.g. {dup}", f"each {what} id once")
