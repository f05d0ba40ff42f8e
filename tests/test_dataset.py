"""The Dataset: built from a table plus a landmark list, by id; splits; external alignment."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from dgex_core.dataset import Dataset
from dgex_core.errors import DatasetError, LandmarkCoverageError
from dgex_core.landmarks import LandmarkList
from dgex_core.matrix import ExpressionMatrix, Provenance


def _matrix(n_samples=50, genes=("L1", "T1", "L2", "T2", "L3"), seed=0, meta=None):
    rng = np.random.default_rng(seed)
    return ExpressionMatrix(
        rng.normal(8, 2, size=(n_samples, len(genes))).astype(np.float32),
        [f"S{i:03d}" for i in range(n_samples)], list(genes),
        sample_meta=meta, provenance=Provenance("x.gct", "gct"),
    )


def test_from_matrix_splits_by_id_in_landmark_order():
    m = _matrix()
    ds = Dataset.from_matrix(m, ["L3", "L1", "L2"])
    assert ds.landmark_ids.tolist() == ["L3", "L1", "L2"]
    assert ds.target_ids.tolist() == ["T1", "T2"]
    np.testing.assert_array_equal(ds.landmarks[:, 0], m.values[:, 4])
    np.testing.assert_array_equal(ds.targets[:, 1], m.values[:, 3])
    assert ds.coverage.complete


def test_missing_landmarks_need_consent():
    m = _matrix()
    with pytest.raises(LandmarkCoverageError) as err:
        Dataset.from_matrix(m, ["L1", "L2", "LX"])
    assert err.value.coverage.missing == ["LX"]
    assert "allow_missing" in str(err.value) and "2 of 3 landmarks present" in str(err.value)
    ds = Dataset.from_matrix(m, ["L1", "L2", "LX"], allow_missing=True)
    assert ds.n_landmarks == 2 and ds.coverage.missing == ["LX"]


def test_no_landmark_at_all_is_a_clear_error():
    with pytest.raises(DatasetError, match=r"none of the 2 landmark genes .*transposed"):
        Dataset.from_matrix(_matrix(), ["Q1", "Q2"])


def test_explicit_targets_and_absent_target():
    ds = Dataset.from_matrix(_matrix(), ["L1", "L2", "L3"], targets=["T2"])
    assert ds.target_ids.tolist() == ["T2"]
    with pytest.raises(DatasetError, match="requested targets are absent"):
        Dataset.from_matrix(_matrix(), ["L1"], targets=["T9"])


def test_landmark_only_profiles_have_no_targets():
    ds = Dataset.from_matrix(_matrix(genes=("L1", "L2")), ["L1", "L2"])
    assert ds.n_targets == 0 and not ds.has_targets


def test_split_is_deterministic_disjoint_and_80_10_10():
    ds = Dataset.from_matrix(_matrix(n_samples=200), ["L1", "L2", "L3"])
    a, b = ds.split(seed=7), ds.split(seed=7)
    assert a.sample_ids() == b.sample_ids()
    assert (a.train.n_samples, a.val.n_samples, a.test.n_samples) == (160, 20, 20)
    parts = [set(x) for x in a.sample_ids().values()]
    assert not (parts[0] & parts[1]) and not (parts[0] & parts[2]) and not (parts[1] & parts[2])
    assert set().union(*parts) == set(ds.sample_ids)
    assert ds.split(seed=8).sample_ids() != a.sample_ids()
    # values travel with their ids
    sid = a.test.sample_ids[0]
    np.testing.assert_array_equal(a.test.landmarks[0], ds.landmarks[ds.sample_ids.get_loc(sid)])


def test_split_by_group_never_puts_a_group_on_two_sides():
    meta = pd.DataFrame({"series": [f"GSE{i // 10}" for i in range(200)]}, index=[f"S{i:03d}" for i in range(200)])
    ds = Dataset.from_matrix(_matrix(n_samples=200, meta=meta), ["L1", "L2", "L3"])
    sp = ds.split(seed=1, group_by="series")
    groups = [set(getattr(sp, k).sample_meta["series"]) for k in ("train", "val", "test")]
    assert not (groups[0] & groups[1]) and not (groups[0] & groups[2]) and not (groups[1] & groups[2])
    assert sp.test.n_samples >= 20 and sp.val.n_samples >= 20
    with pytest.raises(DatasetError, match="not a sample-metadata column"):
        ds.split(group_by="tissue")


def test_split_refuses_empty_parts_and_bad_fractions():
    ds = Dataset.from_matrix(_matrix(n_samples=3), ["L1", "L2", "L3"])
    with pytest.raises(DatasetError, match="split is empty"):
        ds.split(val=0.1, test=0.1)
    with pytest.raises(DatasetError, match="fractions"):
        ds.split(val=0.6, test=0.5)


def test_align_like_reorders_external_set_by_id():
    ref = Dataset.from_matrix(_matrix(), ["L1", "L2", "L3"])
    ext_m = _matrix(genes=("T2", "L2", "X", "L1", "L3"), seed=3)
    ext = Dataset.from_matrix(ext_m, ["L1", "L2", "L3"]).align_like(ref)
    assert ext.landmark_ids.tolist() == ref.landmark_ids.tolist()
    assert ext.target_ids.tolist() == ["T2"]  # T1 absent there: dropped
    np.testing.assert_array_equal(ext.landmarks[:, 1], ext_m.values[:, 1])


def test_align_like_missing_landmarks():
    ref = Dataset.from_matrix(_matrix(), ["L1", "L2", "L3"])
    ext = Dataset.from_matrix(_matrix(genes=("L1", "L2", "T1")), ["L1", "L2"])
    with pytest.raises(DatasetError, match="1 of 3 landmarks"):
        ext.align_like(ref)
    filled = ext.align_like(ref, allow_missing=True)
    assert np.isnan(filled.landmarks[:, 2]).all()


def test_subset_by_ids_and_mask():
    ds = Dataset.from_matrix(_matrix(), ["L1", "L2", "L3"])
    sub = ds.subset(samples=["S003", "S001"], landmarks=["L2"], targets=["T2", "T1"])
    assert sub.sample_ids.tolist() == ["S003", "S001"]
    assert sub.landmarks.shape == (2, 1) and sub.target_ids.tolist() == ["T2", "T1"]
    mask = np.zeros(ds.n_samples, bool)
    mask[:5] = True
    assert ds.subset(mask).n_samples == 5
    with pytest.raises(DatasetError, match="not found"):
        ds.subset(samples=["nope"])


def test_to_matrix_round_trip():
    ds = Dataset.from_matrix(_matrix(), LandmarkList.from_ids(["L1", "L2", "L3"], kind="symbol"))
    m = ds.to_matrix()
    assert m.gene_ids.tolist() == ["L1", "L2", "L3", "T1", "T2"]
    assert (m.gene_meta["role"] == ["landmark"] * 3 + ["target"] * 2).all()


def test_duplicate_ids_are_refused():
    with pytest.raises(DatasetError, match="duplicate gene ids"):
        ExpressionMatrix(np.ones((2, 2)), ["a", "b"], ["g", "g"])


def test_real_plate_and_gpl96_build_datasets(l1000_plate, gpl96_bladder, real_dir):
    from dgex_core.io import read
    from dgex_core.io.sheets import read_sample_sheet
    from dgex_core.landmarks import read_landmarks

    lm = read_landmarks(l1000_plate)
    bladder = read(gpl96_bladder)
    sheet = read_sample_sheet(real_dir / "gpl96_bladder_samples.tsv")
    bladder = ExpressionMatrix(bladder.values, bladder.sample_ids, bladder.gene_ids, sheet,
                               bladder.gene_meta, bladder.provenance)
    ds = Dataset.from_matrix(bladder, lm)
    assert (ds.n_samples, ds.n_landmarks, ds.n_targets) == (57, 978, 22283 - 978)
    assert ds.sample_meta["outcome"].iloc[0] == "Normal"
    plate = Dataset.from_matrix(read(l1000_plate), lm)
    assert (plate.n_samples, plate.n_landmarks, plate.n_targets) == (371, 978, 0)
    ext = plate.align_like(ds)
    assert ext.landmark_ids.tolist() == ds.landmark_ids.tolist()
