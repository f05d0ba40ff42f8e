"""The built-in demo compendium: **synthetic** expression data with a known noise floor.

Nothing here is measured. :func:`generate_demo` draws a compendium that looks like
log2 microarray data (values roughly 2-14) so the whole pipeline (readers aside) can
be run, tested and benchmarked without downloading anything, and so that every
model's error can be compared with the best error *any* model could reach.

What it models
--------------
* **Latent biological programs.** Each sample has an activity for each of
  ``n_programs`` programs. Samples come from ``n_tissues`` tissue-like clusters: a
  Gaussian mixture in program space (each tissue has its own mean activity per program,
  two strongly active "marker" programs and its own spread), so the data are clustered
  and multimodal like a real compendium.
* **Landmarks** (``LM0001`` ... inputs, 978 by default, as in L1000). About 10% are
  housekeeping genes (a baseline plus noise); every other landmark belongs to one program:
  ``landmark = base + loading * activity + landmark noise``.
* **Program scores.** Each program's score ``z_k`` is a fixed linear projection of the
  *observed* landmarks: the precision-weighted mean of its landmarks, centred and scaled
  to mean 0, sd 1 over the population.
* **Targets** (``TG00001`` ... outputs, ``n_targets``). Every target is a deterministic
  function of the observed landmarks plus its own Gaussian noise::

      target = base + sum_k b_k z_k + a * (h(z) - mean h) + c * u_j + e,   e ~ N(0, noise_sd**2)

  over its 1-3 driver programs ``k`` (``drivers`` in ``gene_meta``). ``linear`` targets
  (55% by default) have no ``h``; the others have one of three kinds, in equal shares:
  ``saturation`` ``h = tanh(s (z_p - t))`` (a sigmoid response that levels off),
  ``threshold`` ``h = softplus(s (z_p - t)) / s`` (flat, then rising above a program
  level) and ``interaction`` ``h = z_p z_q`` (two programs acting together). The
  amplitude ``a`` is set so that the part of ``a h`` that *no linear function of the
  scores explains* has variance ``nonlinear_strength`` (0.4-1.0) times the noise
  variance: that is what makes linear regression fall short of the floor, by a
  controlled margin. A quarter of the targets also depend on one single landmark
  ``u_j`` (standardized; ``direct_landmark``), so attribution methods have a specific
  gene to find. :attr:`DemoData.driver_matrix` says which landmarks feed which target.
  Each target is placed so its values stay within about 2.5-13.5.

Why the noise floor is exact
----------------------------
Given the observed landmarks, a target is ``f(landmarks) + e`` with ``f`` known and
``e ~ N(0, noise_sd**2)`` independent of everything else. The best possible predictor
for the mean absolute error is the conditional median, ``f`` itself, and its expected
error is ``E|e| = noise_sd * sqrt(2 / pi)``: the ``noise_floor_mae`` column of
``gene_meta``, in the original log2 units. No model can beat it in expectation (a
model that does on average over many genes reveals a bug: in the model's evaluation or
here). In the D-GEX evaluation units (each gene standardized by its training-set sd),
the floor is ``noise_floor_mae / sd_train``: :func:`noise_floor_standardized`.
:meth:`DemoData.true_targets` evaluates ``f``, the Bayes-optimal prediction, on any
landmark values.

Determinism and size
--------------------
Everything is drawn from ``numpy`` generators seeded by :class:`DemoConfig`. The
"biology" (programs, tissues, target functions) does not depend on ``n_samples``, and
samples are drawn row by row, so a config that differs only in ``n_samples`` gives the
first rows of the larger one. The default (10,000 samples x 978 landmarks + 4,000
targets, float32) is generated in a few seconds; :func:`load_demo` caches it under
``data/demo/`` (git-ignored) without pickle.

Calibration (``bench/demo_calibration.py``, results in
``bench/results/demo_calibration.json``): at the default size, split 80/10/10 and
standardized by the training sd, ridge regression's mean per-gene test MAE is 1.30x
the floor on the non-linear targets (1.01x on the linear ones), while a network with
one ReLU hidden layer of 1,000 units (dropout 0.3, Adam, one-cycle learning rate
2e-3, 30 epochs; about a minute on 2 CPU cores) reaches 1.06x the floor over all
targets and beats ridge on every non-linear target. The mean floor is about 0.37 in
standardized units, the scale of the D-GEX paper's errors on GEO data (0.32-0.38).

Examples
--------
>>> from dgex_core.demo import DemoConfig, generate_demo
>>> data = generate_demo(DemoConfig(n_samples=500, n_targets=200))
>>> data.matrix.shape
(500, 1178)
>>> bool(data.target_meta["noise_floor_mae"].gt(0).all())
True
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import time
import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from functools import cached_property
from pathlib import Path

import numpy as np
import pandas as pd

from ._atomic import atomic_dir
from .errors import DatasetError
from .matrix import ExpressionMatrix, Provenance

__all__ = [
    "APP_DEMO_SIZE",
    "GENERATOR_VERSION",
    "NONLINEAR_KINDS",
    "TARGET_KINDS",
    "DemoConfig",
    "DemoData",
    "DemoTruth",
    "app_demo_config",
    "build_truth",
    "clear_cache",
    "default_cache_dir",
    "generate_demo",
    "load_demo",
    "noise_floor_standardized",
    "parse_size",
]

#: Bumped whenever the same config would give different data; part of the cache key.
GENERATOR_VERSION = 2  # 2: tails bent into the microarray range 2-15 (array_range)

#: The kinds of target, in the order of their integer codes.
TARGET_KINDS = ("linear", "saturation", "threshold", "interaction")
#: The non-linear kinds.
NONLINEAR_KINDS = TARGET_KINDS[1:]

_SQRT_2_OVER_PI = float(np.sqrt(2.0 / np.pi))

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

# The shape of the biology. Tuned with bench/demo_calibration.py; changing any of them
# changes the data, so bump GENERATOR_VERSION with them.
_HOUSEKEEPING_FRACTION = 0.10
_MARKER_PROGRAMS_PER_TISSUE = 2
_MARKER_SHIFT = 1.5
_REFERENCE_SIZE = 8192
_PLACEMENT_SIZE = 4096  # reference rows used to place targets in the value range
_DIRECT_FRACTION = 0.25
_NOISE_SD_MEDIAN = 0.3
_NOISE_SD_RANGE = (0.12, 0.6)
_LINEAR_SNR = (1.5, 5.0)  # variance of the linear part / noise variance
_NONLINEAR_STRENGTH = (0.4, 1.0)  # unexplained-by-linear variance / noise variance
_DIRECT_SNR = (0.2, 0.6)  # variance of the direct landmark term / noise variance
_SATURATION_SLOPE = (0.8, 1.4)  # tanh(slope * (z - shift)), |shift| drawn from:
_SATURATION_SHIFT = (0.8, 1.5)
_THRESHOLD_SLOPE = (3.0, 6.0)  # softplus(slope * (z - shift)) / slope
_THRESHOLD_SHIFT = (0.3, 1.5)
_NONLINEAR_PROGRAMS = {0: 0, 1: 1, 2: 1, 3: 2}  # programs in the non-linear term, by kind code
_TARGET_MEAN = (5.0, 10.0)  # population mean of a target, before range placement
_VALUE_RANGE = (2.5, 13.5)  # where the 0.1%..99.9% quantiles of a target's noiseless values go
_SAMPLE_BLOCK = 2048


# ----------------------------------------------------------------------------- config
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


# ---------------------------------------------------------------------- the biology
@dataclass(frozen=True, eq=False)
class _Tissues:
    """Gaussian mixture in program space: weights (n_tissues,), means and sds (n_tissues, n_programs)."""

    weights: np.ndarray
    means: np.ndarray
    sds: np.ndarray

    def moments(self) -> tuple[np.ndarray, np.ndarray]:
        """Population mean and variance of each program's activity, each (n_programs,)."""
        mean = self.weights @ self.means
        second = self.weights @ (self.sds**2 + self.means**2)
        return mean, second - mean**2


@dataclass(frozen=True, eq=False)
class _Landmarks:
    """How landmarks are made from programs; every array has length n_landmarks."""

    program: np.ndarray  # int, -1 = housekeeping
    base: np.ndarray
    loading: np.ndarray  # 0 for housekeeping
    noise_sd: np.ndarray


@dataclass(frozen=True, eq=False)
class _Targets:
    """The function behind every target; every array has length n_targets unless said."""

    kind: np.ndarray  # int code into TARGET_KINDS
    drivers: tuple[tuple[int, ...], ...]  # programs each target depends on, primary first
    base: np.ndarray
    linear_coef: np.ndarray  # (n_programs, n_targets)
    nl_program: np.ndarray  # (n_targets, 2) programs of the non-linear term (-1 unused)
    nl_slope: np.ndarray
    nl_shift: np.ndarray
    nl_amplitude: np.ndarray  # 0 for linear targets
    nl_offset: np.ndarray  # population mean of the raw non-linear term, subtracted
    nl_strength: np.ndarray  # unexplained-by-linear variance / noise variance
    direct_landmark: np.ndarray  # int, -1 = none
    direct_coef: np.ndarray
    noise_sd: np.ndarray


@dataclass(frozen=True, eq=False)
class DemoTruth:
    """The exact generating model of a demo compendium: what a perfect model would learn.

    Attributes
    ----------
    score_weights
        Array (n_landmarks, n_programs): program scores are
        ``landmarks @ score_weights + score_offset``, standardized over the population.
    score_offset
        Array (n_programs,).
    landmark_mean, landmark_sd
        Arrays (n_landmarks,): population mean and sd of each landmark (used to scale
        the direct landmark terms).
    """

    score_weights: np.ndarray
    score_offset: np.ndarray
    landmark_mean: np.ndarray
    landmark_sd: np.ndarray
    tissues: _Tissues = field(repr=False)
    landmarks: _Landmarks = field(repr=False)
    targets: _Targets = field(repr=False)

    @property
    def n_landmarks(self) -> int:
        return self.score_weights.shape[0]

    @property
    def n_targets(self) -> int:
        return self.targets.base.shape[0]

    def scores(self, landmarks: np.ndarray) -> np.ndarray:
        """Program scores of samples x landmarks values; (n_samples, n_programs), float64."""
        return np.asarray(landmarks, dtype=np.float64) @ self.score_weights + self.score_offset

    def predict(self, landmarks: np.ndarray) -> np.ndarray:
        """The noiseless targets ``f(landmarks)``: the Bayes-optimal prediction.

        Parameters
        ----------
        landmarks
            Array (n_samples, n_landmarks) in original log2 units, columns in landmark order.

        Returns
        -------
        numpy.ndarray
            Array (n_samples, n_targets), float64.
        """
        landmarks = np.asarray(landmarks)
        out = np.empty((landmarks.shape[0], self.n_targets), dtype=np.float64)
        for start in range(0, landmarks.shape[0], _SAMPLE_BLOCK):
            block = landmarks[start : start + _SAMPLE_BLOCK].astype(np.float64)
            out[start : start + block.shape[0]] = self._predict_block(block)
        return out

    def _predict_block(self, x: np.ndarray) -> np.ndarray:
        t = self.targets
        z = x @ self.score_weights + self.score_offset
        y = t.base + _score_terms(z, t, np.arange(t.base.size))
        direct = np.flatnonzero(t.direct_landmark >= 0)
        if direct.size:
            j = t.direct_landmark[direct]
            u = (x[:, j] - self.landmark_mean[j]) / self.landmark_sd[j]
            y[:, direct] += t.direct_coef[direct] * u
        return array_range(y)


#: Where log2 microarray values live (RMA / MAS5: about 2-15, never negative): values
#: inside the knees are kept as they are, the rare tails beyond are bent smoothly
#: towards the floor and the ceiling (tanh), so no demo value leaves [FLOOR, CEILING]
#: before the target noise is added.
ARRAY_FLOOR, ARRAY_LOW_KNEE, ARRAY_HIGH_KNEE, ARRAY_CEILING = 2.0, 3.0, 13.5, 15.0


def array_range(v: np.ndarray) -> np.ndarray:
    """``v`` with its tails bent into the microarray range (identity between the knees;
    monotone, smooth): applied to the landmarks and to each target's noise-free value, so
    targets stay an exact function of the stored landmarks plus noise (the floor is exact)."""
    v = np.asarray(v)
    out = v.copy()
    lo, hi = v < ARRAY_LOW_KNEE, v > ARRAY_HIGH_KNEE
    if lo.any():
        m = ARRAY_LOW_KNEE - ARRAY_FLOOR
        out[lo] = ARRAY_LOW_KNEE - m * np.tanh((ARRAY_LOW_KNEE - v[lo]) / m)
    if hi.any():
        m = ARRAY_CEILING - ARRAY_HIGH_KNEE
        out[hi] = ARRAY_HIGH_KNEE + m * np.tanh((v[hi] - ARRAY_HIGH_KNEE) / m)
    return out


def _score_terms(z: np.ndarray, t: _Targets, which: np.ndarray) -> np.ndarray:
    """Linear plus non-linear terms of the targets ``which`` given scores z (n, n_programs); (n, len(which))."""
    y = z @ t.linear_coef[:, which]
    nl = np.flatnonzero(t.nl_amplitude[which] != 0)
    if nl.size:
        cols = which[nl]
        y[:, nl] += t.nl_amplitude[cols] * (_nonlinear_terms(z, t, cols) - t.nl_offset[cols])
    return y


def _softplus(x: np.ndarray) -> np.ndarray:
    return np.logaddexp(0.0, x)


def _nonlinear_terms(z: np.ndarray, t: _Targets, which: np.ndarray) -> np.ndarray:
    """The raw (unscaled) non-linear term of the targets ``which``; (n_samples, len(which))."""
    kind = t.kind[which]
    p1, p2 = t.nl_program[which, 0], t.nl_program[which, 1]
    out = np.empty((z.shape[0], which.size), dtype=np.float64)
    for code, name in enumerate(TARGET_KINDS):
        cols = np.flatnonzero(kind == code)
        if not cols.size or name == "linear":
            continue
        a = z[:, p1[cols]]
        if name == "saturation":
            out[:, cols] = np.tanh(t.nl_slope[which[cols]] * (a - t.nl_shift[which[cols]]))
        elif name == "threshold":
            slope = t.nl_slope[which[cols]]
            out[:, cols] = _softplus(slope * (a - t.nl_shift[which[cols]])) / slope
        else:  # interaction
            out[:, cols] = a * z[:, p2[cols]]
    return out


def _draw_tissues(config: DemoConfig, rng: np.random.Generator) -> _Tissues:
    k, m = config.n_programs, config.n_tissues
    weights = rng.dirichlet(np.full(m, 4.0))
    means = rng.normal(0.0, 0.8, size=(m, k))
    for tissue in range(m):
        markers = rng.choice(k, size=min(_MARKER_PROGRAMS_PER_TISSUE, k), replace=False)
        means[tissue, markers] += _MARKER_SHIFT
    sds = rng.uniform(0.4, 0.8, size=(m, k))
    return _Tissues(weights, means, sds)


def _draw_landmarks(config: DemoConfig, rng: np.random.Generator) -> _Landmarks:
    n, k = config.n_landmarks, config.n_programs
    n_prog = _n_program_landmarks(n)
    # Every program gets two landmarks, the rest are shared out unevenly.
    sizes = 2 + rng.multinomial(n_prog - 2 * k, rng.dirichlet(np.full(k, 6.0)))
    program = np.concatenate([np.repeat(np.arange(k), sizes), np.full(n - n_prog, -1)])
    program = program[rng.permutation(n)]
    housekeeping = program < 0
    base = np.where(housekeeping, rng.uniform(6.0, 11.5, n), rng.uniform(5.5, 10.0, n))
    sign = np.where(rng.random(n) < 0.8, 1.0, -1.0)
    loading = np.where(housekeeping, 0.0, sign * rng.uniform(0.5, 1.2, n))
    noise_sd = np.where(housekeeping, rng.uniform(0.15, 0.35, n), rng.uniform(0.2, 0.5, n))
    return _Landmarks(program.astype(np.int64), base, loading, noise_sd)


def _score_map(lm: _Landmarks, tissues: _Tissues, n_programs: int) -> tuple[np.ndarray, np.ndarray]:
    """Weights (n_landmarks, n_programs) and offset (n_programs,) giving standardized scores.

    The raw score of a program is the precision-weighted mean of ``(x - base) / loading``
    over its landmarks, an unbiased estimate of its activity; its population mean and
    variance are known in closed form, so the standardization is exact.
    """
    n = lm.program.size
    weights = np.zeros((n, n_programs))
    act_mean, act_var = tissues.moments()
    offset = np.zeros(n_programs)
    for k in range(n_programs):
        members = np.flatnonzero(lm.program == k)
        precision = lm.loading[members] ** 2 / lm.noise_sd[members] ** 2
        share = precision / precision.sum()
        raw_w = share / lm.loading[members]  # score = sum raw_w * (x - base)
        noise_var = float(np.sum(raw_w**2 * lm.noise_sd[members] ** 2))
        sd = np.sqrt(act_var[k] + noise_var)
        weights[members, k] = raw_w / sd
        offset[k] = -(float(raw_w @ lm.base[members]) + act_mean[k]) / sd
    return weights, offset


def _landmark_moments(lm: _Landmarks, tissues: _Tissues) -> tuple[np.ndarray, np.ndarray]:
    act_mean, act_var = tissues.moments()
    prog = np.maximum(lm.program, 0)
    mean = lm.base + lm.loading * act_mean[prog]
    var = lm.loading**2 * act_var[prog] + lm.noise_sd**2
    return mean, np.sqrt(var)


def _draw_targets(
    config: DemoConfig, rng: np.random.Generator, z_ref: np.ndarray, n_landmarks: int
) -> _Targets:
    """Draw every target's function, scaled on the reference scores ``z_ref`` (n_ref, n_programs)."""
    n, k = config.n_targets, config.n_programs
    n_nl = round(config.nonlinear_fraction * n)
    kind = np.zeros(n, dtype=np.int64)
    kind[:n_nl] = 1 + np.arange(n_nl) % len(NONLINEAR_KINDS)  # equal shares of each kind
    kind = kind[rng.permutation(n)]
    noise_sd = np.clip(_NOISE_SD_MEDIAN * np.exp(rng.normal(0.0, 0.3, n)), *_NOISE_SD_RANGE)

    # drivers: the program(s) of the non-linear term first, then 0-2 more (linear: 1-3 in all);
    # every driver, the non-linear ones included, also acts linearly
    nl_program = np.full((n, 2), -1, dtype=np.int64)
    linear_coef = np.zeros((k, n))
    drivers: list[tuple[int, ...]] = []
    for g in range(n):
        n_nl_prog = _NONLINEAR_PROGRAMS[int(kind[g])]
        n_progs = n_nl_prog + int(rng.integers(0, 3)) if n_nl_prog else int(rng.integers(1, 4))
        progs = rng.choice(k, size=min(n_progs, k), replace=False)
        nl_program[g, :n_nl_prog] = progs[:n_nl_prog]
        linear_coef[progs, g] = rng.normal(0.0, 1.0, progs.size)
        drivers.append(tuple(int(p) for p in progs))
    lin_var = np.einsum("kt,kl,lt->t", linear_coef, np.cov(z_ref, rowvar=False), linear_coef)
    linear_coef *= np.sqrt(rng.uniform(*_LINEAR_SNR, n) * noise_sd**2 / lin_var)

    nl_slope, nl_shift = np.zeros(n), np.zeros(n)
    sat, thr = np.flatnonzero(kind == 1), np.flatnonzero(kind == 2)
    nl_slope[sat] = rng.uniform(*_SATURATION_SLOPE, sat.size)
    nl_shift[sat] = rng.choice([-1.0, 1.0], sat.size) * rng.uniform(*_SATURATION_SHIFT, sat.size)
    nl_slope[thr] = rng.uniform(*_THRESHOLD_SLOPE, thr.size)
    nl_shift[thr] = rng.uniform(*_THRESHOLD_SHIFT, thr.size)
    nl_sign = rng.choice([-1.0, 1.0], n)
    nl_strength = np.where(kind > 0, rng.uniform(*_NONLINEAR_STRENGTH, n), 0.0)

    has_direct = rng.random(n) < _DIRECT_FRACTION
    direct_landmark = np.where(has_direct, rng.integers(0, n_landmarks, n), -1)
    direct_sd = np.sqrt(rng.uniform(*_DIRECT_SNR, n)) * noise_sd
    direct_coef = np.where(has_direct, rng.choice([-1.0, 1.0], n) * direct_sd, 0.0)
    mean = rng.uniform(*_TARGET_MEAN, n)

    t = _Targets(
        kind=kind, drivers=tuple(drivers), base=np.zeros(n), linear_coef=linear_coef,
        nl_program=nl_program, nl_slope=nl_slope, nl_shift=nl_shift, nl_amplitude=np.zeros(n),
        nl_offset=np.zeros(n), nl_strength=nl_strength, direct_landmark=direct_landmark,
        direct_coef=direct_coef, noise_sd=noise_sd,
    )
    amplitude, offset = _calibrate_nonlinear(t, z_ref)
    t = replace(t, nl_amplitude=nl_sign * amplitude, nl_offset=offset)
    return replace(t, base=_place_in_range(t, z_ref[:_PLACEMENT_SIZE], mean))


def _place_in_range(t: _Targets, z_ref: np.ndarray, mean: np.ndarray) -> np.ndarray:
    """Bases (n_targets,) giving population means ``mean``, moved where needed so that
    the 0.1% and 99.9% quantiles of the noiseless values stay within :data:`_VALUE_RANGE`."""
    base = np.empty_like(mean)
    lo_edge, hi_edge = _VALUE_RANGE
    for start in range(0, mean.size, 512):
        which = np.arange(start, min(start + 512, mean.size))
        v = _score_terms(z_ref, t, which)
        centre = v.mean(axis=0)
        lo, hi = np.quantile(v, [0.001, 0.999], axis=0)
        b = mean[which] - centre
        b = np.maximum(b, lo_edge - lo)
        b = np.minimum(b, hi_edge - hi)
        too_wide = (hi - lo) > (hi_edge - lo_edge)
        b[too_wide] = (lo_edge + hi_edge) / 2 - (lo[too_wide] + hi[too_wide]) / 2
        base[which] = b
    return base


def _calibrate_nonlinear(t: _Targets, z_ref: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Amplitude and offset of each non-linear term so that the variance no linear
    function of the scores explains is ``nl_strength * noise_sd**2``; each (n_targets,)."""
    n = t.kind.size
    amplitude, offset = np.zeros(n), np.zeros(n)
    design = np.column_stack([np.ones(z_ref.shape[0]), z_ref])
    gram_inv = np.linalg.inv(design.T @ design)
    nl = np.flatnonzero(t.kind > 0)
    for start in range(0, nl.size, 512):
        which = nl[start : start + 512]
        g = _nonlinear_terms(z_ref, t, which)
        resid = g - design @ (gram_inv @ (design.T @ g))
        resid_var = np.maximum(resid.var(axis=0), 1e-12)
        amplitude[which] = np.sqrt(t.nl_strength[which] * t.noise_sd[which] ** 2 / resid_var)
        offset[which] = g.mean(axis=0)
    return amplitude, offset


def build_truth(config: DemoConfig) -> DemoTruth:
    """The generating model of ``config``'s compendium (no samples drawn; about a second at the default size).

    Parameters
    ----------
    config
        Size and seed.

    Returns
    -------
    DemoTruth
    """
    tissues = _draw_tissues(config, _rng(config, _STREAM_TISSUES))
    landmarks = _draw_landmarks(config, _rng(config, _STREAM_LANDMARKS))
    weights, offset = _score_map(landmarks, tissues, config.n_programs)
    lm_mean, lm_sd = _landmark_moments(landmarks, tissues)
    z_ref = _reference_scores(tissues, landmarks, weights, offset, _rng(config, _STREAM_REFERENCE))
    targets = _draw_targets(config, _rng(config, _STREAM_TARGETS), z_ref, config.n_landmarks)
    return DemoTruth(weights, offset, lm_mean, lm_sd, tissues, landmarks, targets)


def _reference_scores(
    tissues: _Tissues, lm: _Landmarks, weights: np.ndarray, offset: np.ndarray, rng: np.random.Generator
) -> np.ndarray:
    """Scores of a large reference draw from the population, (n_ref, n_programs).

    Programs have disjoint landmarks, so each score is the activity plus an independent
    Gaussian error of known variance: no landmark matrix needs to be drawn.
    """
    tissue = rng.choice(tissues.weights.size, size=_REFERENCE_SIZE, p=tissues.weights)
    act = tissues.means[tissue] + tissues.sds[tissue] * rng.standard_normal((_REFERENCE_SIZE, weights.shape[1]))
    # score = (act * sum(w * loading) + sum(w * noise)) + offset', with sum(w * loading) = 1/sd
    gain = (weights * lm.loading[:, None]).sum(axis=0)
    noise_sd = np.sqrt(((weights * lm.noise_sd[:, None]) ** 2).sum(axis=0))
    base_term = lm.base @ weights
    return act * gain + base_term + offset + noise_sd * rng.standard_normal(act.shape)


# ------------------------------------------------------------------------ the data
@dataclass(frozen=True, eq=False)
class DemoData:
    """A demo compendium: the expression matrix and the truth behind it.

    Attributes
    ----------
    config
        The config it was generated from.
    matrix
        Samples x genes (landmarks first, then targets), float32, original log2 units.
        ``gene_meta`` columns: ``symbol`` (made up), ``role`` (``"landmark"`` /
        ``"target"``), ``program`` (landmarks: their program, -1 for housekeeping;
        targets: their primary driver program), ``kind`` (landmarks: ``"program"`` /
        ``"housekeeping"``; targets: one of :data:`TARGET_KINDS`), ``nonlinear``
        (bool), ``noise_sd`` (sd of the gene's own noise, original units),
        ``noise_floor_mae`` (targets: ``E|noise|``, the best achievable MAE in original
        units; NaN for landmarks), ``nonlinear_strength`` (targets: variance no linear
        model of the program scores explains, in units of the noise variance),
        ``drivers`` (targets: driver programs joined by ``;``, primary first) and
        ``direct_landmark`` (targets: the landmark id it depends on directly, or
        ``""``). ``sample_meta`` has ``tissue`` (``"tissue-03"``...).
    landmark_ids, target_ids
        The landmark (input) and target (output) gene ids, in matrix column order.
    truth
        The generating model: :meth:`true_targets` uses it.
    from_cache
        Whether :func:`load_demo` read it from the cache.
    """

    config: DemoConfig
    matrix: ExpressionMatrix
    landmark_ids: pd.Index
    target_ids: pd.Index
    truth: DemoTruth = field(repr=False)
    from_cache: bool = False

    # ------------------------------------------------------------------ views
    @property
    def landmark_values(self) -> np.ndarray:
        """Array (n_samples, n_landmarks), a view of :attr:`matrix`."""
        return self.matrix.values[:, : len(self.landmark_ids)]

    @property
    def target_values(self) -> np.ndarray:
        """Array (n_samples, n_targets), a view of :attr:`matrix`."""
        return self.matrix.values[:, len(self.landmark_ids) :]

    @property
    def target_meta(self) -> pd.DataFrame:
        """``gene_meta`` of the targets (indexed by target id)."""
        return self.matrix.gene_meta.loc[self.target_ids]

    @property
    def landmark_meta(self) -> pd.DataFrame:
        """``gene_meta`` of the landmarks (indexed by landmark id)."""
        return self.matrix.gene_meta.loc[self.landmark_ids]

    @property
    def nonlinear_targets(self) -> pd.Index:
        """Ids of the targets with a non-linear dependence on the landmarks."""
        meta = self.target_meta
        return self.target_ids[meta["nonlinear"].to_numpy(dtype=bool)]

    @property
    def noise_floor(self) -> pd.Series:
        """Best achievable MAE of each target in original log2 units (``E|noise|``), by target id."""
        return self.target_meta["noise_floor_mae"]

    @cached_property
    def driver_matrix(self) -> np.ndarray:
        """Bool array (n_landmarks, n_targets): True where the landmark feeds the target.

        A landmark feeds a target when it belongs to one of the target's driver
        programs (it enters that program's score) or is its direct landmark: exactly
        the landmarks on which the target's expected value has a non-zero partial
        derivative.
        """
        return _driver_matrix(self.truth)

    # ------------------------------------------------------------- for users
    def dataset(self):
        """The compendium as a :class:`~dgex_core.dataset.Dataset` (landmarks -> targets by id),
        with the truth columns (``noise_floor_mae``, ``nonlinear``, ``kind``...) in its
        target metadata."""
        from .dataset import Dataset

        return Dataset.from_matrix(self.matrix, list(self.landmark_ids), targets=list(self.target_ids))

    def describe(self) -> str:
        """A few lines for people: size, value range, noise floor, kinds of targets."""
        v = self.landmark_values
        meta = self.target_meta
        floor = meta["noise_floor_mae"].astype(float)
        kinds = meta["kind"].value_counts()
        lines = [
            f"dgex demo (synthetic, seed {self.config.seed}){' from cache' if self.from_cache else ''}: "
            f"{self.matrix.n_samples:,} samples, {len(self.landmark_ids):,} landmarks, {len(self.target_ids):,} targets, "
            f"{self.config.n_tissues} tissues, {self.config.n_programs} programs",
            f"values (log2): 0.1%-99.9% range {np.quantile(v, 0.001):.1f}-{np.quantile(v, 0.999):.1f}",
            "targets: " + ", ".join(f"{kinds.get(k, 0):,} {k}" for k in TARGET_KINDS),
            f"noise floor (best achievable MAE, log2 units): mean {floor.mean():.3f}, "
            f"range {floor.min():.3f}-{floor.max():.3f}",
        ]
        return "\n".join(lines)

    # ---------------------------------------------------------------- truth
    def true_targets(self, landmarks: np.ndarray | None = None) -> np.ndarray:
        """Noiseless target values ``f(landmarks)``: the Bayes-optimal prediction.

        Parameters
        ----------
        landmarks
            Array (n_samples, n_landmarks) in original units, columns in
            :attr:`landmark_ids` order; default: this compendium's own landmarks.

        Returns
        -------
        numpy.ndarray
            Array (n_samples, n_targets), float64, columns in :attr:`target_ids` order.
            ``target_values - true_targets()`` is the noise that was drawn.

        Raises
        ------
        DatasetError
            If ``landmarks`` has the wrong number of columns.
        """
        x = self.landmark_values if landmarks is None else np.asarray(landmarks)
        if x.ndim != 2 or x.shape[1] != len(self.landmark_ids):
            raise DatasetError(
                f"landmarks must be an (n_samples, {len(self.landmark_ids)}) array in landmark order, got shape {x.shape}"
            )
        return self.truth.predict(x)


def _driver_matrix(truth: DemoTruth) -> np.ndarray:
    t, program = truth.targets, truth.landmarks.program
    k = truth.score_weights.shape[1]
    member = program[:, None] == np.arange(k)  # (n_landmarks, n_programs)
    uses = np.zeros((k, truth.n_targets), dtype=bool)
    for g, progs in enumerate(t.drivers):
        uses[list(progs), g] = True
    out = (member.astype(np.int32) @ uses.astype(np.int32)) > 0
    direct = np.flatnonzero(t.direct_landmark >= 0)
    out[t.direct_landmark[direct], direct] = True
    out.setflags(write=False)
    return out


# ----------------------------------------------------------------------- generate
def generate_demo(config: DemoConfig | None = None) -> DemoData:
    """Generate a demo compendium (pure computation, no files).

    Parameters
    ----------
    config
        Size and seed; default :class:`DemoConfig` () (10,000 samples, 978 landmarks,
        4,000 targets, a few seconds).

    Returns
    -------
    DemoData
        Values samples x (landmarks + targets), float32.
    """
    config = config or DemoConfig()
    truth = build_truth(config)
    values, tissue = _draw_samples(config, truth)
    return _assemble(config, truth, values, tissue, from_cache=False)


def _draw_samples(config: DemoConfig, truth: DemoTruth) -> tuple[np.ndarray, np.ndarray]:
    """Draw values (n_samples, n_landmarks + n_targets) float32 and tissue codes (n_samples,)."""
    n, n_lm, n_tg = config.n_samples, config.n_landmarks, config.n_targets
    tis, lm = truth.tissues, truth.landmarks
    tissue = _rng(config, _STREAM_SAMPLE_TISSUE).choice(tis.weights.size, size=n, p=tis.weights)
    rng_act = _rng(config, _STREAM_ACTIVITY)
    rng_lm = _rng(config, _STREAM_LANDMARK_NOISE)
    rng_tg = _rng(config, _STREAM_TARGET_NOISE)
    values = np.empty((n, n_lm + n_tg), dtype=np.float32)
    prog = np.maximum(lm.program, 0)
    for start in range(0, n, _SAMPLE_BLOCK):
        stop = min(start + _SAMPLE_BLOCK, n)
        t = tissue[start:stop]
        act = tis.means[t] + tis.sds[t] * rng_act.standard_normal((stop - start, config.n_programs))
        x = lm.base + lm.loading * act[:, prog]
        x += lm.noise_sd * rng_lm.standard_normal((stop - start, n_lm), dtype=np.float32)
        values[start:stop, :n_lm] = array_range(x)
        # targets are a function of the *stored* (float32) landmarks, so f is exact on them
        y = truth._predict_block(values[start:stop, :n_lm].astype(np.float64))
        y += truth.targets.noise_sd * rng_tg.standard_normal((stop - start, n_tg), dtype=np.float32)
        values[start:stop, n_lm:] = y
    return values, tissue


def _ids(prefix: str, n: int, width: int) -> list[str]:
    return [f"{prefix}{i:0{width}d}" for i in range(1, n + 1)]


def _family_names(n: int, rng: np.random.Generator) -> list[str]:
    """``n`` distinct made-up gene family names such as ``"BEKO"``."""
    consonants, vowels = "BDFGKLMNPRSTVZ", "AEIOU"
    if n > 1000:  # too many for distinct random names to come quickly
        return [f"PRG{i + 1}X" for i in range(n)]
    names: list[str] = []
    while len(names) < n:
        name = "".join(
            rng.choice(list(consonants)) + rng.choice(list(vowels)) for _ in range(2)
        )
        if name not in names:
            names.append(name)
    return names


def _gene_meta(config: DemoConfig, truth: DemoTruth, landmark_ids: list[str], target_ids: list[str]) -> pd.DataFrame:
    lm, t = truth.landmarks, truth.targets
    families = _family_names(config.n_programs, _rng(config, _STREAM_SYMBOLS))
    counters: dict[str, int] = {}

    def symbol(family: str) -> str:
        counters[family] = counters.get(family, 0) + 1
        return f"{family}{counters[family]}"

    lm_symbols = [symbol(families[p]) if p >= 0 else symbol("HKG") for p in lm.program.tolist()]
    primary = np.array([d[0] for d in t.drivers], dtype=np.int64)
    tg_symbols = [symbol(families[p] + "T") for p in primary.tolist()]
    nonlinear = t.kind > 0
    landmark_meta = pd.DataFrame(
        {
            "symbol": lm_symbols,
            "role": "landmark",
            "program": lm.program,
            "kind": np.where(lm.program >= 0, "program", "housekeeping"),
            "nonlinear": False,
            "noise_sd": lm.noise_sd,
            "noise_floor_mae": np.nan,
            "nonlinear_strength": np.nan,
            "drivers": "",
            "direct_landmark": "",
        },
        index=pd.Index(landmark_ids, dtype=object, name="gene"),
    )
    target_meta = pd.DataFrame(
        {
            "symbol": tg_symbols,
            "role": "target",
            "program": primary,
            "kind": np.asarray(TARGET_KINDS, dtype=object)[t.kind],
            "nonlinear": nonlinear,
            "noise_sd": t.noise_sd,
            "noise_floor_mae": t.noise_sd * _SQRT_2_OVER_PI,
            "nonlinear_strength": t.nl_strength,
            "drivers": [";".join(str(p) for p in d) for d in t.drivers],
            "direct_landmark": [landmark_ids[j] if j >= 0 else "" for j in t.direct_landmark.tolist()],
        },
        index=pd.Index(target_ids, dtype=object, name="gene"),
    )
    return pd.concat([landmark_meta, target_meta])


def _assemble(
    config: DemoConfig, truth: DemoTruth, values: np.ndarray, tissue: np.ndarray, *, from_cache: bool
) -> DemoData:
    landmark_ids = _ids("LM", config.n_landmarks, max(4, len(str(config.n_landmarks))))
    target_ids = _ids("TG", config.n_targets, max(5, len(str(config.n_targets))))
    sample_ids = _ids("DEMO", config.n_samples, max(5, len(str(config.n_samples))))
    width = max(2, len(str(config.n_tissues)))
    sample_meta = pd.DataFrame(
        {"tissue": [f"tissue-{i + 1:0{width}d}" for i in tissue.tolist()]},
        index=pd.Index(sample_ids, dtype=object, name="sample"),
    )
    provenance = Provenance(
        None,
        "demo",
        notes={
            "synthetic": True,
            "description": "dgex demo compendium: SYNTHETIC data with a known per-target noise floor",
            "config": config.to_dict(),
            "generator_version": GENERATOR_VERSION,
        },
    )
    matrix = ExpressionMatrix(
        values, sample_ids, landmark_ids + target_ids, sample_meta,
        _gene_meta(config, truth, landmark_ids, target_ids), provenance,
    )
    return DemoData(
        config, matrix, pd.Index(landmark_ids, dtype=object, name="gene"),
        pd.Index(target_ids, dtype=object, name="gene"), truth, from_cache,
    )


# ----------------------------------------------------------------------- evaluate
def noise_floor_standardized(
    data: DemoData, train_samples: Sequence | np.ndarray | pd.Index, *, ddof: int = 0
) -> pd.Series:
    """Each target's noise floor in D-GEX units: ``noise_floor_mae / sd_train``.

    The D-GEX evaluation standardizes every gene with the mean and sd of the training
    samples; an MAE in those units is the original-unit MAE divided by that sd, and so
    is the floor.

    Parameters
    ----------
    data
        The demo compendium.
    train_samples
        The training samples: a boolean mask of length n_samples, integer row
        positions, or sample ids.
    ddof
        Delta degrees of freedom of the sd (0, as :class:`sklearn.preprocessing.StandardScaler`).

    Returns
    -------
    pandas.Series
        The floor of each target (indexed by target id), in standardized units.

    Raises
    ------
    DatasetError
        If the mask has the wrong length, an id is unknown, or fewer than two
        training samples are given.
    """
    rows = _rows(data.matrix, train_samples)
    if rows.size < 2:
        raise DatasetError(f"need at least 2 training samples to compute a standard deviation, got {rows.size}")
    sd = data.target_values[rows].astype(np.float64).std(axis=0, ddof=ddof)
    return pd.Series(data.noise_floor.to_numpy() / sd, index=data.target_ids, name="noise_floor_std")


def _rows(matrix: ExpressionMatrix, samples: Sequence | np.ndarray | pd.Index) -> np.ndarray:
    arr = np.asarray(samples)
    if arr.dtype == bool:
        if arr.shape != (matrix.n_samples,):
            raise DatasetError(f"a boolean sample mask must have length {matrix.n_samples}, got shape {arr.shape}")
        return np.flatnonzero(arr)
    if arr.dtype.kind in "iu":
        if arr.size and (arr.min() < 0 or arr.max() >= matrix.n_samples):
            raise DatasetError(f"sample positions must be in [0, {matrix.n_samples}), got {arr.min()}..{arr.max()}")
        return arr.astype(np.int64)
    return matrix._positions(matrix.sample_ids, list(arr), "sample")


# -------------------------------------------------------------------------- cache
_VALUES_FILE = "values.npz"
_GENES_FILE = "genes.parquet"
_SAMPLES_FILE = "samples.parquet"
_MANIFEST_FILE = "manifest.json"
_CACHE_NAME = re.compile(r"n\d+-t\d+-v\d+-[0-9a-f]{10}")


def default_cache_dir() -> Path:
    """Where :func:`load_demo` caches: ``$DGEX_DATA_DIR/demo``, else ``<repo>/data/demo``."""
    root = os.environ.get("DGEX_DATA_DIR")
    base = Path(root).expanduser() if root else Path(__file__).resolve().parents[1] / "data"
    return base / "demo"


def load_demo(config: DemoConfig | None = None, cache_dir: str | os.PathLike | None = None) -> DemoData:
    """The demo compendium of ``config``, from the cache when a valid copy is there.

    The cache is a folder per config (:meth:`DemoConfig.key`) holding ``values.npz``
    (read with ``allow_pickle=False``), ``genes.parquet``, ``samples.parquet`` and
    ``manifest.json`` (config, generator version, a SHA-256 of the values). It is written
    atomically; a copy that fails any check (unreadable, checksum, shape, ids,
    metadata) is regenerated and replaced, with a warning. When the cache cannot be
    written (read-only folder) the generated data is returned anyway, with a warning.

    Parameters
    ----------
    config
        Size and seed; default :class:`DemoConfig` ().
    cache_dir
        The folder that holds the per-config folders; default :func:`default_cache_dir`.

    Returns
    -------
    DemoData
        With ``from_cache`` True when it was read from the cache.
    """
    config = config or DemoConfig()
    folder = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    path = folder / config.key()
    truth = build_truth(config)
    if path.exists():
        try:
            return _read_cache(path, config, truth)
        except Exception as e:  # a bad cache is never trusted: regenerate it
            warnings.warn(f"demo cache {path} is unusable ({e}); regenerating it", RuntimeWarning, stacklevel=2)
    values, tissue = _draw_samples(config, truth)
    data = _assemble(config, truth, values, tissue, from_cache=False)
    try:
        _write_cache(path, data)
    except OSError as e:
        if not _cache_is_valid(path, config, truth):
            warnings.warn(f"could not write the demo cache {path} ({e}); using the data uncached", RuntimeWarning, stacklevel=2)
    return data


def _sha256(values: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(values).data).hexdigest()


def _write_cache(path: Path, data: DemoData) -> None:
    m = data.matrix
    with atomic_dir(path, overwrite=True) as tmp:
        np.savez(tmp / _VALUES_FILE, values=m.values)
        m.gene_meta.to_parquet(tmp / _GENES_FILE)
        m.sample_meta.to_parquet(tmp / _SAMPLES_FILE)
        manifest = {
            "what": "dgex demo compendium (SYNTHETIC data); see dgex_core/demo.py",
            "config": data.config.to_dict(),
            "generator_version": GENERATOR_VERSION,
            "shape": list(m.values.shape),
            "dtype": str(m.values.dtype),
            "values_sha256": _sha256(m.values),
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        }
        (tmp / _MANIFEST_FILE).write_text(json.dumps(manifest, indent=2))


def _cache_is_valid(path: Path, config: DemoConfig, truth: DemoTruth) -> bool:
    try:
        _read_cache(path, config, truth)
    except Exception:
        return False
    return True


def _read_cache(path: Path, config: DemoConfig, truth: DemoTruth) -> DemoData:
    """Read and check a cached compendium; raises on any mismatch."""
    manifest = json.loads((path / _MANIFEST_FILE).read_text())
    if manifest.get("config") != config.to_dict() or manifest.get("generator_version") != GENERATOR_VERSION:
        raise DatasetError("it was made from another config or generator version")
    with np.load(path / _VALUES_FILE, allow_pickle=False) as npz:
        values = npz["values"]
    expected = (config.n_samples, config.n_landmarks + config.n_targets)
    if values.shape != expected or values.dtype != np.float32:
        raise DatasetError(f"values are {values.shape} {values.dtype}, expected {expected} float32")
    if _sha256(values) != manifest.get("values_sha256"):
        raise DatasetError("the values do not match their checksum")
    gene_meta = pd.read_parquet(path / _GENES_FILE)
    sample_meta = pd.read_parquet(path / _SAMPLES_FILE)
    tissue_names = sample_meta["tissue"].astype(str)
    tissue = tissue_names.str.removeprefix("tissue-").astype(int).to_numpy() - 1
    data = _assemble(config, truth, values, tissue, from_cache=True)
    if not data.matrix.sample_ids.equals(pd.Index(sample_meta.index.astype(str))):
        raise DatasetError("sample ids differ from the generator's")
    expected_meta = data.matrix.gene_meta
    if list(gene_meta.index.astype(str)) != list(expected_meta.index) or not np.allclose(
        gene_meta["noise_sd"].to_numpy(), expected_meta["noise_sd"].to_numpy()
    ):
        raise DatasetError("gene metadata differ from the generator's (stale cache?)")
    return data


def clear_cache(config: DemoConfig | None = None, cache_dir: str | os.PathLike | None = None) -> list[Path]:
    """Remove the cached copy of ``config``, or every cached demo when ``config`` is None.

    Only folders named like a :meth:`DemoConfig.key` are touched, never anything else in
    ``cache_dir``.

    Returns
    -------
    list of pathlib.Path
        The folders removed.
    """
    folder = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    if config is not None:
        doomed = [folder / config.key()]
    else:
        doomed = [p for p in folder.glob("n*-t*-v*-*") if _CACHE_NAME.fullmatch(p.name)] if folder.is_dir() else []
    removed = []
    for path in doomed:
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
            removed.append(path)
    return removed


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
