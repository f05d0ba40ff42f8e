"""What the GEO readers share: the per-sample attribute table, dtype and id checks.

Both GEO readers (:mod:`dgex_core.io.geo_series` for series matrix files,
:mod:`dgex_core.io.geo_soft` for SOFT family files) return **samples x probes** (the
transpose of the file's tables) and build ``sample_meta`` the same way, with
:class:`MetaBuilder`: per-sample attributes become columns named without the
``!Sample_`` prefix (``title``, ``geo_accession``, ``source_name_ch1``,
``platform_id``...); ``!Sample_characteristics_ch1`` lines of the form ``key: value``
become one column per key (``tissue``, ``age``...), kept as text. Attributes repeated
for one sample (``data_processing``, ``relation``...) are joined with ``"; "``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

__all__ = ["MetaBuilder", "check_dtype", "first_duplicate", "single_or_list"]


def check_dtype(dtype) -> np.dtype:
    """``dtype`` as a NumPy floating-point dtype; a ValueError naming it otherwise."""
    dt = np.dtype(dtype)
    if dt.kind != "f":
        raise ValueError(f"dtype must be a floating-point type (float32 or float64), got {dt}")
    return dt


def first_duplicate(ids: list[str]) -> int | None:
    """Position of the first id seen twice, or None."""
    idx = pd.Index(ids)
    if idx.is_unique:
        return None
    return int(np.flatnonzero(idx.duplicated())[0])


class MetaBuilder:
    """Collect per-sample attributes into a DataFrame, one column per field.

    ``characteristics_chN`` values of the form ``key: value`` go to a column ``key``
    (``key_chN`` for channels other than 1); a characteristic without a key goes to
    ``characteristics`` (``characteristics_chN``). A characteristic key equal to an
    attribute name is renamed ``<key>_characteristics``.
    """

    def __init__(self) -> None:
        self._cols: dict[tuple[str, str], dict[int, str]] = {}

    def add(self, i: int, name: str, value: str) -> None:
        value = value.strip()
        if not value:
            return
        kind = "attr"
        if name.startswith("characteristics_ch"):
            kind = "char"
            channel = name[len("characteristics_"):]
            key, sep, rest = value.partition(":")
            if sep and key.strip():
                col, value = key.strip(), rest.strip()
            else:
                col = "characteristics"
            if channel != "ch1":
                col = f"{col}_{channel}"
            name = col
        cells = self._cols.setdefault((kind, name), {})
        cells[i] = f"{cells[i]}; {value}" if i in cells else value

    def frame(self, ids: list[str]) -> pd.DataFrame:
        attrs = {name for kind, name in self._cols if kind == "attr"}
        data = {}
        for (kind, name), cells in self._cols.items():
            col = f"{name}_characteristics" if kind == "char" and name in attrs else name
            data[col] = [cells.get(i) for i in range(len(ids))]
        return pd.DataFrame(data, index=pd.Index(ids, dtype=object), dtype=object)


def single_or_list(values: list[str]) -> str | list[str]:
    """One value as itself, several as a list (how repeated attributes go in ``notes``)."""
    return values[0] if len(values) == 1 else list(values)

