"""Shared fixtures. Real files come from ../shared/data/real when it exists; tests that
need them skip with a reason otherwise (a user's fresh clone has no ../shared)."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
REAL_DIR = REPO.parent / "shared" / "data" / "real"


def pytest_collection_modifyitems(config, items) -> None:
    """Tests marked slow run first (otherwise in their order): pytest-xdist hands tests to
    its workers in this order, so the long ones start early and the workers end together."""
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)


@pytest.fixture(scope="session")
def real_dir() -> Path:
    """The folder of real expression files (../shared/data/real), or skip."""
    if not REAL_DIR.is_dir():
        pytest.skip(f"real data folder {REAL_DIR} is absent (it ships beside the project, not in it)")
    return REAL_DIR


@pytest.fixture(scope="session")
def l1000_plate(real_dir: Path) -> Path:
    return real_dir / "l1000_LJP009_A375_24H_qnorm_n371x978.gct"


@pytest.fixture(scope="session")
def gpl96_bladder(real_dir: Path) -> Path:
    return real_dir / "gpl96_bladder_n57x22283.gct.gz"


#: Set to the private folder of this test process's caches; a process that inherits it
#: (a pytest-xdist worker, started by the controller that imported this file first)
#: makes its own.
_OURS = "DGEX_TEST_PRIVATE_ROOT"


def _private_caches() -> None:
    """Matrix caches, scratch files and the demo cache of the test run go to a temporary
    folder of this process (one per pytest-xdist worker), not to ~/.cache or the project's
    data/ folder: workers never share a writable folder. What the user set is kept."""
    import atexit
    import os
    import shutil
    import tempfile

    inherited = os.environ.get(_OURS)
    root = tempfile.mkdtemp(prefix=f"dgex-test-{os.environ.get('PYTEST_XDIST_WORKER', 'main')}-")
    atexit.register(shutil.rmtree, root, True)
    for var, sub in (("DGEX_MATRIX_CACHE", "matrices"), ("DGEX_TMPDIR", "tmp"), ("DGEX_DATA_DIR", "data")):
        given = os.environ.get(var)
        if not given or (inherited and given.startswith(inherited + os.sep)):
            os.environ[var] = os.path.join(root, sub)
    os.environ[_OURS] = root


_private_caches()


def _threads_per_worker() -> None:
    """Under pytest-xdist, each worker's OpenMP/BLAS pools (torch, numpy) and those of the
    processes it starts get its share of the cores, not all of them each: N workers of
    C threads on C cores spend their time waiting for one another. What the user set is kept."""
    import os
    import sys

    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT") or 0)
    if not workers:
        return
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    share = max(1, cores // workers)
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(var, str(share))
    if "torch" in sys.modules:  # imported before this file: set its pool directly
        sys.modules["torch"].set_num_threads(int(os.environ["OMP_NUM_THREADS"]))
    try:  # numpy's BLAS, loaded before this file by a plugin, read its variable already
        from threadpoolctl import threadpool_limits
    except ImportError:
        return
    threadpool_limits(int(os.environ["OPENBLAS_NUM_THREADS"]), user_api="blas")


_threads_per_worker()
