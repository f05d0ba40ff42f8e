"""What names a demo compendium: its size and seed (:class:`DemoConfig`), the generator
version, the seeded random streams every draw comes from, and the size the dashboard opens
on (:func:`app_demo_config`). Nothing here draws data.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import asdict, dataclass

import numpy as np

__all__ = ["APP_DEMO_SIZE", "GENERATOR_VERSION", "DemoConfig", "app_demo_config", "parse_size"]

#: Bumped whenever the same config would give different data; part of the cache key.
GENERATOR_VERSION = 2  # 2: tails bent into the microarray range 2-15 (array_range)

# Independent random streams (SeedSequence spawn keys), so that changing one size
# leaves the draws of the others alone. The "biology" streams never see n_samples.
_STREAM_TISSUES = 1
_STREAM_LANDMARKS = 2
_STREAM_TARGETS = 3
_STREAM_REFERENCE = 4
_STREAM_SYMBOLS = 5
_STREAM_SAMPLE_TISSUE = 11
_STREAM_ACTIVITY = 12
_STREAM_LANDMARK_NOISE = 13
_STREAM_TARGET_NOISE = 14

# Share of housekeeping landmarks: part of the biology (see .truth), so bump
# GENERATOR_VERSION with it; DemoConfig checks its sizes against it.
_HOUSEKEEPING_FRACTION = 0.10


#: Demo size the dashboard opens on (samples x targets): first load in a few seconds.
APP_DEMO_SIZE = (4000, 1500)

_SIZE = re.compile(r"^\s*(\d+)\s*[xX]\s*(\d+)\s*$")


def parse_size(size: str) -> tuple[int, int]:
    """``(samples, targets)`` of a demo size written ``"SAMPLESxTARGETS"`` (e.g. ``"2000x500"``).

    Raises
    ------
    ValueError
        If ``size`` is not two whole numbers joined by ``x``.
    """
    m = _SIZE.match(str(size))
    if not m:
        raise ValueError(f"a demo size is SAMPLESxTARGETS, e.g. 2000x500; got {size!r}")
    return int(m.group(1)), int(m.group(2))


@dataclass(frozen=True)
class DemoConfig:
    """The size and seed of a demo compendium.

    Parameters
    ----------
    n_samples
        Number of samples (rows).
    n_targets
        Number of target genes (outputs).
    n_landmarks
        Number of landmark genes (inputs); 978 as in L1000.
    n_programs
        Number of latent biological programs.
    n_tissues
        Number of tissue-like sample clusters.
    nonlinear_fraction
        Share of targets with a non-linear dependence on the landmarks.
    seed
        Seed of every random draw.

    Raises
    ------
    ValueError
        If a size is too small for the others (each program needs at least two
        landmarks) or the fraction is outside [0, 1].
    """

    n_samples: int = 10_000
    n_targets: int = 4_000
    n_landmarks: int = 978
    n_programs: int = 20
    n_tissues: int = 12
    nonlinear_fraction: float = 0.45
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("n_samples", "n_targets", "n_landmarks", "n_programs", "n_tissues", "seed"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
                raise ValueError(f"DemoConfig.{name} must be an integer, got {value!r}")
        if self.n_samples < 1 or self.n_targets < 1 or self.n_tissues < 1:
            raise ValueError("DemoConfig needs at least one sample, one target and one tissue")
        if self.n_programs < 2:
            raise ValueError(f"DemoConfig.n_programs must be at least 2, got {self.n_programs}")
        if _n_program_landmarks(self.n_landmarks) < 2 * self.n_programs:
            raise ValueError(
                f"DemoConfig.n_landmarks={self.n_landmarks} is too few for {self.n_programs} programs: "
                f"each needs at least 2 landmarks beyond the ~{_HOUSEKEEPING_FRACTION:.0%} housekeeping ones"
            )
        if self.seed < 0:
            raise ValueError(f"DemoConfig.seed must be non-negative, got {self.seed}")
        if not 0.0 <= float(self.nonlinear_fraction) <= 1.0:
            raise ValueError(f"DemoConfig.nonlinear_fraction must be in [0, 1], got {self.nonlinear_fraction}")

    def to_dict(self) -> dict:
        """The settings as a JSON-friendly dict (plain ints and floats)."""
        return {k: (float(v) if k == "nonlinear_fraction" else int(v)) for k, v in asdict(self).items()}

    def key(self) -> str:
        """A short stable name for this config and generator version (cache folder names).

        Examples
        --------
        >>> DemoConfig().key()[:16]
        'n10000-t4000-v1-'
        """
        blob = json.dumps({"config": self.to_dict(), "version": GENERATOR_VERSION}, sort_keys=True)
        digest = hashlib.sha256(blob.encode()).hexdigest()[:10]
        return f"n{self.n_samples}-t{self.n_targets}-v{GENERATOR_VERSION}-{digest}"


def _n_program_landmarks(n_landmarks: int) -> int:
    return n_landmarks - round(_HOUSEKEEPING_FRACTION * n_landmarks)


def _rng(config: DemoConfig, stream: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence(int(config.seed), spawn_key=(stream,)))


def app_demo_config(size: str | None = None) -> DemoConfig:
    """The demo the dashboard opens on: ``size`` or ``$DGEX_DEMO_SIZE`` ("samples x targets",
    e.g. ``"1500x200"``), else :data:`APP_DEMO_SIZE`.

    Raises
    ------
    ValueError
        If the size is not two integers joined by ``x``.
    """
    size = size if size is not None else os.environ.get("DGEX_DEMO_SIZE")
    if not size:
        n, t = APP_DEMO_SIZE
        return DemoConfig(n_samples=n, n_targets=t)
    try:
        n, t = parse_size(size)
    except ValueError:
        raise ValueError(f"DGEX_DEMO_SIZE must look like '1500x200' (samples x targets), got {size!r}") from None
    return DemoConfig(n_samples=n, n_targets=t)
