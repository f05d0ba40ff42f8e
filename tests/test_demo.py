"""The demo compendium: deterministic, shaped like log2 microarray data, with an exact
noise floor that no model beats, and a cache that never trusts a damaged copy."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import Ridge

from dgex_core.demo import (
    GENERATOR_VERSION,
    NONLINEAR_KINDS,
    TARGET_KINDS,
    DemoConfig,
    clear_cache,
    default_cache_dir,
    generate_demo,
    load_demo,
    noise_floor_standardized,
)
from dgex_core.errors import DatasetError

SMALL = DemoConfig(n_samples=1_500, n_targets=300)
TINY = DemoConfig(n_samples=200, n_targets=40)
GENE_META_COLUMNS = [
    "symbol", "role", "program", "kind", "nonlinear", "noise_sd", "noise_floor_mae",
    "nonlinear_strength", "drivers", "direct_landmark",
]


@pytest.fixture(scope="module")
def small():
    return generate_demo(SMALL)


@pytest.fixture(scope="module")
def split(small):
    perm = np.random.default_rng(0).permutation(small.matrix.n_samples)
    n_train = int(0.8 * perm.size)
    return np.sort(perm[:n_train]), np.sort(perm[n_train:])


# ------------------------------------------------------------------ determinism
def test_same_config_gives_identical_data(small):
    again = generate_demo(SMALL)
    assert again.matrix.equals(small.matrix)
    np.testing.assert_array_equal(again.driver_matrix, small.driver_matrix)


def test_another_seed_gives_other_data(small):
    other = generate_demo(DemoConfig(n_samples=SMALL.n_samples, n_targets=SMALL.n_targets, seed=1))
    assert other.matrix.shape == small.matrix.shape
    assert not np.array_equal(other.matrix.values, small.matrix.values)
    assert not other.target_meta["noise_sd"].equals(small.target_meta["noise_sd"])


def test_fewer_samples_give_the_first_rows_of_the_same_compendium(small):
    fewer = generate_demo(DemoConfig(n_samples=300, n_targets=SMALL.n_targets))
    np.testing.assert_array_equal(fewer.matrix.values, small.matrix.values[:300])
    assert fewer.matrix.sample_meta["tissue"].tolist() == small.matrix.sample_meta["tissue"][:300].tolist()


def test_config_key_is_stable_and_tells_configs_apart():
    assert DemoConfig().key() == DemoConfig().key()
    assert DemoConfig().key().startswith(f"n10000-t4000-v{GENERATOR_VERSION}-")
    keys = {c.key() for c in (DemoConfig(), SMALL, DemoConfig(seed=1), DemoConfig(nonlinear_fraction=0.3))}
    assert len(keys) == 4


@pytest.mark.parametrize(
    "bad",
    [
        {"n_samples": 0},
        {"n_targets": -1},
        {"n_programs": 1},
        {"n_landmarks": 20, "n_programs": 20},
        {"nonlinear_fraction": 1.5},
        {"seed": -3},
        {"n_samples": 10.5},
    ],
)
def test_invalid_config_is_refused_with_the_field_named(bad):
    with pytest.raises(ValueError, match="DemoConfig"):
        DemoConfig(**bad)


# --------------------------------------------------------------- shape and look
def test_shapes_ids_and_metadata(small):
    m = small.matrix
    assert m.shape == (1_500, 978 + 300)
    assert m.values.dtype == np.float32
    assert small.landmark_ids[0] == "LM0001" and small.landmark_ids[-1] == "LM0978"
    assert small.target_ids[0] == "TG00001" and small.target_ids[-1] == "TG00300"
    assert list(m.gene_ids) == list(small.landmark_ids) + list(small.target_ids)
    assert m.sample_ids[0] == "DEMO00001"
    assert list(m.gene_meta.columns) == GENE_META_COLUMNS
    assert m.gene_meta["symbol"].is_unique
    assert (small.landmark_meta["role"] == "landmark").all()
    assert (small.target_meta["role"] == "target").all()
    assert small.landmark_values.shape == (1_500, 978) and small.target_values.shape == (1_500, 300)
    tissues = m.sample_meta["tissue"]
    assert tissues.str.fullmatch(r"tissue-\d\d").all() and tissues.nunique() > 5
    assert m.provenance.format == "demo" and m.provenance.notes["synthetic"] is True
    assert m.provenance.notes["config"] == SMALL.to_dict()


def test_target_kinds_and_nonlinear_flags_agree(small):
    meta = small.target_meta
    assert set(meta["kind"]) <= set(TARGET_KINDS)
    assert (meta["nonlinear"] == (meta["kind"] != "linear")).all()
    assert meta["nonlinear"].sum() == round(SMALL.nonlinear_fraction * SMALL.n_targets)
    assert set(meta.loc[meta["nonlinear"], "kind"]) == set(NONLINEAR_KINDS)
    assert (meta.loc[meta["nonlinear"], "nonlinear_strength"] > 0).all()
    assert (meta.loc[~meta["nonlinear"], "nonlinear_strength"] == 0).all()
    assert list(small.nonlinear_targets) == list(meta.index[meta["nonlinear"]])
    assert (small.landmark_meta["program"] >= -1).all()
    assert (small.landmark_meta["program"] == -1).mean() == pytest.approx(0.1, abs=0.01)


def test_values_look_like_log2_microarray_data(small):
    v = small.matrix.values
    assert np.isfinite(v).all()
    assert ((v >= 2) & (v <= 14)).mean() > 0.999
    for part in (small.landmark_values, small.target_values):
        sd = part.std(axis=0)
        assert 3 < np.median(part) < 11
        assert 0.1 < np.median(sd) < 2.5


# ----------------------------------------------------------------- noise floor
def test_true_function_error_is_the_noise_floor(small):
    noise = small.target_values.astype(np.float64) - small.true_targets()
    sd = small.target_meta["noise_sd"].to_numpy()
    floor = small.noise_floor.to_numpy()
    assert np.allclose(floor, sd * np.sqrt(2 / np.pi))
    mae = np.abs(noise).mean(axis=0)
    # per gene, within sampling error (sd of |e| is sd * sqrt(1 - 2/pi))
    z = (mae - floor) / (sd * np.sqrt(1 - 2 / np.pi) / np.sqrt(noise.shape[0]))
    assert np.abs(z).max() < 5
    # and on average within 1%
    assert mae.mean() / floor.mean() == pytest.approx(1.0, abs=0.01)
    # the noise is what the metadata says, centred, and unrelated to the landmarks
    assert np.std(noise, axis=0) / sd == pytest.approx(np.ones_like(sd), abs=0.1)
    assert np.abs(noise.mean(axis=0) / sd).max() < 0.15
    x = small.landmark_values[:, :50].astype(np.float64)
    corr = np.corrcoef(x.T, noise[:, :50].T)[:50, 50:]
    assert np.abs(corr).max() < 0.15


def test_no_model_beats_the_floor_and_linear_falls_short_on_nonlinear_targets(small, split):
    train, test = split
    x, y = small.landmark_values.astype(np.float64), small.target_values.astype(np.float64)
    mx, sx, my, sy = x[train].mean(0), x[train].std(0), y[train].mean(0), y[train].std(0)
    model = Ridge(alpha=1_000.0).fit((x[train] - mx) / sx, (y[train] - my) / sy)
    mae = np.abs(model.predict((x[test] - mx) / sx) - (y[test] - my) / sy).mean(axis=0)
    floor = noise_floor_standardized(small, train).to_numpy()
    nonlinear = small.target_meta["nonlinear"].to_numpy()
    linear_ratio = mae[~nonlinear].mean() / floor[~nonlinear].mean()
    nonlinear_ratio = mae[nonlinear].mean() / floor[nonlinear].mean()
    assert 1.0 <= linear_ratio < 1.25
    assert nonlinear_ratio > 1.2 and nonlinear_ratio > linear_ratio + 0.1
    # the true function itself sits on the floor, below ridge on every group
    oracle = (small.true_targets(x[test]) - my) / sy
    oracle_mae = np.abs(oracle - (y[test] - my) / sy).mean(axis=0)
    assert oracle_mae.mean() / floor.mean() == pytest.approx(1.0, abs=0.02)
    assert oracle_mae.mean() < mae.mean()


def test_standardized_floor_is_floor_over_training_sd(small, split):
    train, _ = split
    floor = noise_floor_standardized(small, train)
    expected = small.noise_floor.to_numpy() / small.target_values[train].astype(np.float64).std(axis=0)
    np.testing.assert_allclose(floor.to_numpy(), expected)
    assert list(floor.index) == list(small.target_ids)
    mask = np.zeros(small.matrix.n_samples, dtype=bool)
    mask[train] = True
    pd.testing.assert_series_equal(noise_floor_standardized(small, mask), floor)
    ids = small.matrix.sample_ids[train]
    pd.testing.assert_series_equal(noise_floor_standardized(small, list(ids)), floor)
    assert 0.2 < floor.mean() < 0.5  # the scale of the D-GEX paper's errors (0.32 - 0.38)


@pytest.mark.parametrize("bad", [np.ones(3, dtype=bool), np.array([0, 99_999]), ["no-such-sample"], [0]])
def test_standardized_floor_refuses_bad_training_samples(small, bad):
    with pytest.raises(DatasetError):
        noise_floor_standardized(small, bad)


def test_true_targets_refuses_the_wrong_number_of_landmarks(small):
    with pytest.raises(DatasetError, match="978"):
        small.true_targets(np.zeros((2, 977)))


# ---------------------------------------------------------------------- drivers
def test_driver_matrix_agrees_with_gene_meta(small):
    drivers = small.driver_matrix
    assert drivers.shape == (978, 300) and drivers.dtype == bool
    program = small.landmark_meta["program"].to_numpy()
    for j, (_, row) in enumerate(small.target_meta.iterrows()):
        progs = [int(p) for p in row["drivers"].split(";")]
        assert row["program"] == progs[0]
        expected = np.isin(program, progs)
        if row["direct_landmark"]:
            expected[small.landmark_ids.get_loc(row["direct_landmark"])] = True
        np.testing.assert_array_equal(drivers[:, j], expected)
    assert not drivers.flags.writeable


def test_driver_matrix_is_exactly_where_the_true_function_moves(small):
    base = small.landmark_values[:2].astype(np.float64)
    n_lm = base.shape[1]
    bumped = np.repeat(base, n_lm, axis=0)
    rows = np.arange(bumped.shape[0])
    bumped[rows, np.tile(np.arange(n_lm), 2)] += 0.5
    moved = np.abs(small.true_targets(bumped) - np.repeat(small.true_targets(base), n_lm, axis=0)) > 1e-9
    moved = moved.reshape(2, n_lm, -1).any(axis=0)  # (n_landmarks, n_targets)
    np.testing.assert_array_equal(moved, small.driver_matrix)


# ------------------------------------------------------------------------ cache
def test_cache_round_trip(tmp_path):
    first = load_demo(TINY, cache_dir=tmp_path)
    second = load_demo(TINY, cache_dir=tmp_path)
    assert not first.from_cache and second.from_cache
    assert second.matrix.equals(first.matrix)
    assert second.matrix.provenance.format == "demo"
    np.testing.assert_array_equal(second.true_targets(), first.true_targets())
    folder = tmp_path / TINY.key()
    assert sorted(p.name for p in folder.iterdir()) == ["genes.parquet", "manifest.json", "samples.parquet", "values.npz"]
    with np.load(folder / "values.npz", allow_pickle=False) as npz:
        np.testing.assert_array_equal(npz["values"], first.matrix.values)
    assert json.loads((folder / "manifest.json").read_text())["config"] == TINY.to_dict()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary left


def test_configs_do_not_share_a_cache(tmp_path):
    a = load_demo(TINY, cache_dir=tmp_path)
    b = load_demo(DemoConfig(n_samples=TINY.n_samples, n_targets=TINY.n_targets, seed=5), cache_dir=tmp_path)
    assert not b.from_cache and not np.array_equal(a.matrix.values, b.matrix.values)
    assert len(list(tmp_path.iterdir())) == 2


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def _flip_a_value(path: Path) -> None:
    raw = bytearray(path.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    path.write_bytes(bytes(raw))


@pytest.mark.parametrize(
    ("name", "damage"),
    [
        ("values.npz", _truncate),
        ("values.npz", _flip_a_value),
        ("genes.parquet", lambda p: p.write_bytes(b"not parquet")),
        ("manifest.json", lambda p: p.write_text("{")),
        ("samples.parquet", lambda p: p.unlink()),
    ],
)
def test_damaged_cache_is_regenerated_not_trusted(tmp_path, name, damage):
    fresh = load_demo(TINY, cache_dir=tmp_path)
    damage(tmp_path / TINY.key() / name)
    with pytest.warns(RuntimeWarning, match="regenerating"):
        again = load_demo(TINY, cache_dir=tmp_path)
    assert not again.from_cache and again.matrix.equals(fresh.matrix)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert load_demo(TINY, cache_dir=tmp_path).from_cache  # repaired


def test_cache_of_another_generator_version_is_not_used(tmp_path):
    load_demo(TINY, cache_dir=tmp_path)
    manifest = tmp_path / TINY.key() / "manifest.json"
    content = json.loads(manifest.read_text())
    content["generator_version"] = GENERATOR_VERSION - 1
    manifest.write_text(json.dumps(content))
    with pytest.warns(RuntimeWarning):
        assert not load_demo(TINY, cache_dir=tmp_path).from_cache


def test_data_dir_env_var_moves_the_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("DGEX_DATA_DIR", str(tmp_path))
    assert default_cache_dir() == tmp_path / "demo"
    load_demo(TINY)
    assert (tmp_path / "demo" / TINY.key() / "values.npz").exists()
    monkeypatch.delenv("DGEX_DATA_DIR")
    assert default_cache_dir() == Path(__file__).resolve().parents[1] / "data" / "demo"


def test_clear_cache_removes_only_demo_folders(tmp_path):
    load_demo(TINY, cache_dir=tmp_path)
    other = DemoConfig(n_samples=50, n_targets=10)
    load_demo(other, cache_dir=tmp_path)
    (tmp_path / "notes.txt").write_text("keep me")
    (tmp_path / "mine").mkdir()
    assert clear_cache(TINY, cache_dir=tmp_path) == [tmp_path / TINY.key()]
    assert load_demo(other, cache_dir=tmp_path).from_cache
    assert clear_cache(cache_dir=tmp_path) == [tmp_path / other.key()]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mine", "notes.txt"]


def test_unwritable_cache_still_returns_the_data(tmp_path):
    blocker = tmp_path / "file-not-folder"
    blocker.write_text("x")
    with pytest.warns(RuntimeWarning, match="could not write"):
        data = load_demo(TINY, cache_dir=blocker)
    assert not data.from_cache and data.matrix.shape == (200, 1018)


# ------------------------------------------------------------------ default size
@pytest.mark.slow
def test_default_size_has_the_documented_shape():
    # how long it takes is measured by bench/demo_calibration.py (timing_s.generate), not asserted here
    data = generate_demo()
    assert data.matrix.shape == (10_000, 978 + 4_000)
    assert data.target_meta["nonlinear"].sum() == 1_800


def test_demo_values_lie_where_log2_arrays_do():
    """RMA / MAS5 log2 values lie in about 2-15, never negative (the demo ran -2.8 to 18.2):
    landmarks and noise-free targets stay in [2, 15]; with the target noise, no value is
    negative and none passes 17."""
    from dgex_core.demo import ARRAY_CEILING, ARRAY_FLOOR, array_range

    d = load_demo(DemoConfig(n_samples=3000, n_targets=400))
    v = d.matrix.values
    n_lm = len(d.landmark_ids)
    assert v[:, :n_lm].min() >= ARRAY_FLOOR and v[:, :n_lm].max() <= ARRAY_CEILING
    assert v.min() > 0 and v.max() < 17
    x = np.linspace(-20, 40, 2001)
    y = array_range(x)
    assert np.all(np.diff(y) >= 0) and y.min() >= ARRAY_FLOOR and y.max() <= ARRAY_CEILING
    inside = (x >= 3) & (x <= 13.5)
    np.testing.assert_array_equal(y[inside], x[inside])  # the bulk of the data untouched
