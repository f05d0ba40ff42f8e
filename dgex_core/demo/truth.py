"""The generative truth of the demo: tissues (a Gaussian mixture in program space), the
landmarks each program makes, and the function behind every target (its driver programs,
its kind in :data:`TARGET_KINDS`, its direct landmark). :func:`build_truth` draws it from a
:class:`~.config.DemoConfig`; :class:`DemoTruth` evaluates the noiseless targets.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

from .config import (
    _STREAM_LANDMARKS,
    _STREAM_REFERENCE,
    _STREAM_TARGETS,
    _STREAM_TISSUES,
    DemoConfig,
    _n_program_landmarks,
    _rng,
)

__all__ = [
    "ARRAY_CEILING",
    "ARRAY_FLOOR",
    "ARRAY_HIGH_KNEE",
    "ARRAY_LOW_KNEE",
    "NONLINEAR_KINDS",
    "TARGET_KINDS",
    "DemoTruth",
    "array_range",
    "build_truth",
]

#: The kinds of target, in the order of their integer codes.
TARGET_KINDS = ("linear", "saturation", "threshold", "interaction")
#: The non-linear kinds.
NONLINEAR_KINDS = TARGET_KINDS[1:]

# The shape of the biology. Tuned with bench/demo_calibration.py; changing any of them
# changes the data, so bump GENERATOR_VERSION with them.
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

