"""Drawing a demo compendium from its truth: the samples (tissue, program activities,
landmark and target noise, a block of rows at a time), their ids and the gene and sample
metadata, assembled into a :class:`~.data.DemoData`. :func:`generate_demo` does it all,
with no files.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..matrix import ExpressionMatrix, Provenance
from .config import (
    _STREAM_ACTIVITY,
    _STREAM_LANDMARK_NOISE,
    _STREAM_SAMPLE_TISSUE,
    _STREAM_SYMBOLS,
    _STREAM_TARGET_NOISE,
    GENERATOR_VERSION,
    DemoConfig,
    _rng,
)
from .data import DemoData
from .truth import _SAMPLE_BLOCK, TARGET_KINDS, DemoTruth, array_range, build_truth

__all__ = ["generate_demo"]

_SQRT_2_OVER_PI = float(np.sqrt(2.0 / np.pi))


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
