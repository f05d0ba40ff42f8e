"""The exception types of dgex, one per layer.

Every message names what is wrong (the file, the line or field, the gene or the
argument), what was expected, and where possible what to do about it. The CLI and
the dashboard print the message, never the traceback.
"""

from __future__ import annotations

import os

__all__ = ["DataFormatError", "DatasetError", "DgexError", "LandmarkCoverageError", "ModelError", "OutputError"]


class DgexError(Exception):
    """Base class of every error dgex raises on purpose."""


class DataFormatError(DgexError, ValueError):
    """A file could not be read: it is malformed, truncated or not what it claims to be.

    Parameters
    ----------
    path
        The file being read.
    where
        The place in the file: ``"line 4"``, ``"line 7, column 12"``,
        ``"/0/META/ROW/id"``, ``"header"``...
    problem
        What was found.
    expected
        What a valid file has there (optional).

    Attributes
    ----------
    path, where, problem, expected
        As given, for programs that want to show them separately.
    """

    def __init__(
        self,
        path: str | os.PathLike | None,
        where: str | None,
        problem: str,
        expected: str | None = None,
    ) -> None:
        self.path = None if path is None else os.fspath(path)
        self.where = where
        self.problem = problem
        self.expected = expected
        parts = [self.path or "<input>"]
        if where:
            parts.append(where)
        msg = ": ".join(parts) + ": " + problem
        if expected:
            msg += f" (expected {expected})"
        super().__init__(msg)

    def __reduce__(self):  # keep the error picklable (multiprocessing, pytest-xdist)
        return (type(self), (self.path, self.where, self.problem, self.expected))


class DatasetError(DgexError, ValueError):
    """A dataset cannot be built or used as asked (bad ids, empty split, ...)."""


class LandmarkCoverageError(DatasetError):
    """Some landmark genes are missing from a dataset and the caller did not allow it.

    Attributes
    ----------
    coverage
        The :class:`dgex_core.landmarks.Coverage` report: which landmarks are present
        and which are missing.
    """

    def __init__(self, message: str, coverage) -> None:
        super().__init__(message)
        self.coverage = coverage


class ModelError(DgexError, ValueError):
    """A model was used wrongly (predict before fit, wrong genes) or a saved run is invalid."""


class OutputError(DgexError, ValueError):
    """An output cannot be written where asked: the name is a device, a FIFO, a socket or
    a folder, or it is one of the command's own inputs."""
