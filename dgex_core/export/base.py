"""What every block writer of :mod:`dgex_core.export` shares: :class:`BlockWriter`,
the base that makes a writer a context manager (closed on success, discarded on an
exception), and :func:`n_threads`, the cores a writer may format or compress on.
"""

from __future__ import annotations

import os

__all__ = ["BlockWriter", "n_threads"]


def n_threads() -> int:
    """Cores this process may run on (its CPU affinity), at least 1."""
    return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1))


class BlockWriter:
    """A writer of sample blocks: ``append(block)``, ``close()``, ``discard()``; used as a
    context manager it closes when the block ends and discards on an exception."""

    #: Whether appended blocks are kept until close (their arrays must not be reused).
    retains_blocks = False

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.discard()
