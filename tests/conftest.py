"""Shared fixtures. Real files come from ../shared/data/real when it exists; tests that
need them skip with a reason otherwise (a user's fresh clone has no ../shared)."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
REAL_DIR = REPO.parent / "shared" / "data" / "real"


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


def _private_caches() -> None:
    """Matrix caches and scratch files of the test run go to a temporary folder, not ~/.cache."""
    import atexit
    import os
    import shutil
    import tempfile

    if "DGEX_MATRIX_CACHE" not in os.environ:
        root = tempfile.mkdtemp(prefix="dgex-test-cache-")
        os.environ["DGEX_MATRIX_CACHE"] = os.path.join(root, "matrices")
        os.environ.setdefault("DGEX_TMPDIR", os.path.join(root, "tmp"))
        atexit.register(shutil.rmtree, root, True)


_private_caches()
