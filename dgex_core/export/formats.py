"""The formats predictions can be written in and the compressions each takes:
:data:`EXPORT_FORMATS`, :data:`COMPRESSIONS` and :func:`resolve_compression`, which
turns a path and the options asked into the ``(format, compression)`` written.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["COMPRESSIONS", "EXPORT_FORMATS", "resolve_compression"]

EXPORT_FORMATS = ("gctx", "gct", "parquet", "csv", "tsv", "zarr")

#: Compressions each format accepts; the first is the default.
COMPRESSIONS = {
    "gctx": ("none", "gzip", "lzf"),
    "parquet": ("lz4", "zstd", "snappy", "gzip", "none"),
    "csv": ("none",),
    "tsv": ("none",),
    "gct": ("none",),
    "zarr": ("lz4", "zstd", "none"),
}


def resolve_compression(path: str | os.PathLike, format: str | None = None,
                        compression: str | None = None) -> tuple[str, str]:
    """``(format, compression)`` an output would be written with: the format from the
    suffix when not given, the format's default compression for ``None`` / ``"default"``.

    Raises
    ------
    ValueError
        For an unknown format or a compression the format does not take.
    """
    from ..io import format_from_suffix

    path = Path(path)
    fmt = format or ("zarr" if path.suffix.lower() == ".zarr" else format_from_suffix(path))
    if fmt not in EXPORT_FORMATS:
        raise ValueError(f"cannot write predictions to {path.name}: use one of {EXPORT_FORMATS} (or a matching suffix)")
    codec = COMPRESSIONS[fmt][0] if compression in (None, "default") else str(compression).lower()
    if codec not in COMPRESSIONS[fmt]:
        raise ValueError(f"{fmt} output takes compression {' / '.join(COMPRESSIONS[fmt])}, not {compression!r}")
    return fmt, codec
