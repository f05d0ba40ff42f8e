"""Which Dask cluster dgex works on: starting a local one or joining a scheduler, and the
client current for the work in progress.

``local:N`` starts a :class:`distributed.LocalCluster` of N worker processes with one
thread each on this machine (stopped when the work ends); ``tcp://host:8786`` (any
address the scheduler listens on) joins a running cluster, e.g. one started by
dask-jobqueue on SLURM or by the Dask Kubernetes operator. The workers read the input
files themselves, so on a cluster the files must sit on a filesystem every worker sees.
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
import os
import re
from collections.abc import Iterator

__all__ = ["SCHEDULER_ENV", "current_client", "dask_client", "parse_scheduler", "use_client"]

#: Environment variable naming the scheduler when ``--dask`` is not given.
SCHEDULER_ENV = "DGEX_DASK_SCHEDULER"

_LOCAL = re.compile(r"^local:(\d+)$")
_ADDRESS = re.compile(r"^(tcp|tls|inproc|ucx|ws|wss)://[^\s]+$")
_CURRENT: contextvars.ContextVar = contextvars.ContextVar("dgex_dask_client", default=None)


def parse_scheduler(spec: str) -> tuple[str, int | str]:
    """``("local", n_workers)`` for ``local:N``, ``("address", address)`` for a scheduler address.

    Raises
    ------
    ValueError
        If ``spec`` is neither, or asks for fewer than one or more than 1,024 local workers.
    """
    spec = str(spec).strip()
    m = _LOCAL.match(spec)
    if m:
        n = int(m.group(1))
        if not 1 <= n <= 1024:
            raise ValueError(f"--dask {spec}: a local cluster needs 1 to 1,024 workers")
        return "local", n
    if _ADDRESS.match(spec):
        return "address", spec
    raise ValueError(f"--dask {spec!r}: write local:N (N worker processes on this machine) or a scheduler "
                     "address such as tcp://host:8786")


def current_client():
    """The Dask client of the enclosing :func:`dask_client` block, or None (work runs in this process)."""
    return _CURRENT.get()


@contextlib.contextmanager
def dask_client(spec: str | None = None, *, announce=None) -> Iterator[object]:
    """Start (``local:N``) or join (an address) a Dask cluster for the work inside the block.

    Parameters
    ----------
    spec
        ``local:N`` or a scheduler address; None: ``$DGEX_DASK_SCHEDULER``.
    announce
        Called with one line naming the cluster and its dashboard address (the CLI prints it).

    Yields
    ------
    distributed.Client
        Also :func:`current_client` inside the block.

    Raises
    ------
    ValueError
        If neither ``spec`` nor the environment variable names a cluster, or the spec is malformed.
    """
    spec = spec or os.environ.get(SCHEDULER_ENV)
    if not spec:
        raise ValueError(f"no Dask scheduler given: pass --dask local:N or an address, or set ${SCHEDULER_ENV}")
    kind, where = parse_scheduler(spec)
    from distributed import Client, LocalCluster

    with contextlib.ExitStack() as stack:
        if kind == "local":
            cluster = stack.enter_context(LocalCluster(n_workers=int(where), threads_per_worker=1, processes=True,
                                                       dashboard_address="127.0.0.1:0", silence_logs=logging.ERROR))
            client = stack.enter_context(Client(cluster))
        else:
            client = stack.enter_context(Client(where, timeout="30s"))
        if announce is not None:
            n = len(client.scheduler_info().get("workers", {}))
            announce(f"Dask: {n} workers at {client.scheduler.address}; dashboard {client.dashboard_link}")
        with use_client(client):
            yield client


@contextlib.contextmanager
def use_client(client) -> Iterator[object]:
    """Make an existing ``distributed.Client`` the current one inside the block (not closed after)."""
    token = _CURRENT.set(client)
    try:
        yield client
    finally:
        _CURRENT.reset(token)
