"""Running dgex's heavy passes on a Dask cluster (and, for the network, under torch DDP).

:func:`dask_client` starts or joins a cluster (``local:N`` or a scheduler address, also
from ``$DGEX_DASK_SCHEDULER``) and makes it the current one for the work inside the
``with`` block: linear regression's sums are then computed per partition of the
training samples on the workers and tree-reduced (:mod:`.sums`); everything else runs
as on one machine. Without a current client nothing changes.
"""

from .cluster import SCHEDULER_ENV, current_client, dask_client, parse_scheduler, use_client

__all__ = ["SCHEDULER_ENV", "current_client", "dask_client", "parse_scheduler", "use_client"]
