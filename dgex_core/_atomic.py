"""Atomic file and folder writes: write to a temporary name beside the target, then rename.

A crash, a kill or an exception mid-write leaves either the old file or no file,
never a half-written one that looks complete.

What an output name may be (:func:`output_target`): a new name or an existing regular
file, which is replaced. A device (``/dev/full``, ``/dev/null``), a FIFO, a socket or
a folder is refused, never replaced by a regular file. A symbolic link is followed:
the file it points to is replaced and the link stays (as ``cp`` and shell
redirection do), and what it points to must pass the same test. Files and folders
are created with the user's umask (``0666`` / ``0777`` minus it), as other tools'
outputs are, not the ``0600`` / ``0700`` of temporary files; a file replaced keeps its
own permissions.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import socket
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path

__all__ = ["atomic_dir", "atomic_path", "output_target", "refuse_input_as_output", "sweep_stale"]


def _umask() -> int:
    """The process's umask, read without changing it (``os.umask`` sets it, which races
    with other threads creating files)."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


_HOST = re.sub(r"[^A-Za-z0-9]", "", socket.gethostname())[:20] or "host"


def _tmp_prefix(path: Path) -> str:
    """``.<name>.<host>-<pid>.``: whose temporary it is, so a later run can tell a dead
    process's leftovers from a live one's."""
    return f".{path.name}.{_HOST}-{os.getpid()}."


def sweep_stale(path: str | os.PathLike) -> list[Path]:
    """Remove the temporaries of ``path`` left by processes of this host that no longer
    run (killed with SIGKILL, or the machine went down mid-write); returns what was removed."""
    path = Path(path)
    removed = []
    pattern = re.compile(rf"^\.{re.escape(path.name)}\.{re.escape(_HOST)}-(\d+)\..*\.tmp$")
    with contextlib.suppress(OSError):
        for entry in os.scandir(path.parent):
            m = pattern.match(entry.name)
            if not m or _alive(int(m.group(1))):
                continue
            with contextlib.suppress(OSError):
                if entry.is_dir(follow_symlinks=False):
                    shutil.rmtree(entry.path)
                else:
                    os.unlink(entry.path)
                removed.append(Path(entry.path))
    return removed


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def output_target(path: str | os.PathLike) -> Path:
    """The file an output named ``path`` is written to: ``path`` itself, or what a
    symbolic link at ``path`` points to.

    Raises
    ------
    OutputError
        If it is a device, FIFO, socket or folder.
    """
    from .errors import OutputError

    path = Path(path)
    target = Path(os.path.realpath(path)) if path.is_symlink() else path
    try:
        st = os.stat(target)
    except FileNotFoundError:
        return target
    except OSError as e:
        raise OutputError(f"{path}: cannot be written ({e.strerror})") from None
    if stat.S_ISREG(st.st_mode):
        return target
    kind = ("a folder" if stat.S_ISDIR(st.st_mode) else "a FIFO (named pipe)" if stat.S_ISFIFO(st.st_mode)
            else "a socket" if stat.S_ISSOCK(st.st_mode) else "a device" if stat.S_ISCHR(st.st_mode) or
            stat.S_ISBLK(st.st_mode) else "not a regular file")
    via = f" (the link points to {target})" if target != path else ""
    raise OutputError(f"{path}: is {kind}{via}; outputs are written to regular files only, so it is left as it is: "
                      "give a file name")


def refuse_input_as_output(output: str | os.PathLike, *inputs: str | os.PathLike) -> None:
    """Raise :class:`~dgex_core.errors.OutputError` when ``output`` is one of ``inputs``
    (the same file, by any name or link)."""
    from .errors import OutputError

    out = Path(output)
    if not out.exists():
        return
    for i in inputs:
        with contextlib.suppress(OSError):
            if os.path.samefile(out, i):
                raise OutputError(f"{output}: is the input file {i}; writing there would destroy the input: "
                                  "give the output another name")


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path in the target's folder; rename it onto ``path`` on success.

    The temporary name starts with ``.`` and ends with ``.tmp`` so listings and globs
    skip it. On any exception the temporary file is removed and ``path`` is untouched.
    """
    path = output_target(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    sweep_stale(path)
    fd, tmp = tempfile.mkstemp(prefix=_tmp_prefix(path), suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        with open(tmp_path, "rb+") as fh:
            os.fsync(fh.fileno())
        try:  # a file replaced keeps its permissions (a private 0600 result stays private)
            mode = stat.S_IMODE(os.stat(path).st_mode)
        except FileNotFoundError:
            mode = 0o666 & ~_umask()
        os.chmod(tmp_path, mode)
        output_target(path)  # still a regular file (or nothing) now that the output is ready
        os.replace(tmp_path, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp_path.unlink()
        raise


@contextlib.contextmanager
def atomic_dir(path: str | os.PathLike, *, overwrite: bool = False) -> Iterator[Path]:
    """Yield a temporary folder beside ``path``; rename it onto ``path`` on success.

    With ``overwrite``, an existing folder at ``path`` is replaced (moved aside, then
    removed once the new one is in place). Without it, an existing folder is an error.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path} already exists; choose another name or allow overwriting")
    sweep_stale(path)
    tmp = Path(tempfile.mkdtemp(prefix=_tmp_prefix(path), suffix=".tmp", dir=path.parent))
    try:
        yield tmp
        mask = _umask()
        os.chmod(tmp, 0o777 & ~mask)
        for sub, dirs, files in os.walk(tmp):
            for d in dirs:
                os.chmod(os.path.join(sub, d), 0o777 & ~mask)
            for f in files:
                os.chmod(os.path.join(sub, f), 0o666 & ~mask)
        old = None
        if path.exists():
            old = path.with_name(f".{path.name}.old-{os.getpid()}")
            os.replace(path, old)
        os.replace(tmp, path)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
