"""Tables of landmark -> target attributions, models side by side (behind the Interpret page)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from dgex_core import attribution
from dgex_core.errors import ModelError


def _frame(values, landmarks, targets) -> pd.DataFrame:
    return pd.DataFrame(np.asarray(values, float), index=pd.Index(landmarks, name="landmark"),
                        columns=pd.Index(targets, name="target"))


def test_side_by_side_puts_both_models_on_one_landmark_axis():
    net = pd.Series([0.1, -0.9, 0.0, 0.5, 0.2], index=["L0", "L1", "L2", "L3", "L4"])
    lin = pd.Series([0.8, 0.1, -0.6, 0.0, 0.3], index=["L0", "L1", "L2", "L3", "L4"])
    t = attribution.side_by_side({"network": net, "linear": lin}, n=2,
                             symbols=pd.Series({"L1": "EGFR"}), truth=pd.Series({"L1": True, "L0": False}))
    # the union of each model's top two (network L1, L3; linear L0, L2), by best rank then network rank
    assert t["landmark"].tolist() == ["L1", "L0", "L3", "L2"] * 2
    assert t["model"].tolist() == ["network"] * 4 + ["linear"] * 4
    assert t["label"].tolist()[:4] == ["L1 (EGFR) *", "L0", "L3", "L2"]
    net_rows = t[t["model"] == "network"].set_index("landmark")
    assert net_rows.loc["L1", "value"] == -0.9 and net_rows.loc["L1", "rank"] == 1
    assert net_rows.loc["L2", "rank"] == 5
    assert t["true_driver"].tolist()[:4] == [True, False, False, False]


def test_target_table_matches_models_by_landmark_id_not_position():
    net = pd.Series([0.1, -0.9, 0.5], index=["L0", "L1", "L2"])
    lin = pd.Series([0.5, 0.8, 0.1], index=["L2", "L0", "L1"])  # another order
    groups = {"liver": pd.Series([0.0, -2.0, 1.0], index=["L0", "L1", "L2"]),
              "brain": pd.Series([1.0, 0.0, 0.0], index=["L0", "L1", "L2"])}
    t = attribution.target_table({"network": net, "linear": lin}, groups=groups, group_field="tissue",
                             symbols=pd.Series({"L0": "A", "L1": "B", "L2": "C"}),
                             truth=pd.Series({"L1": True}))
    assert t.index.tolist() == ["L1", "L2", "L0"]  # strongest network attribution first
    assert t.loc["L0", "linear"] == 0.8 and t.loc["L2", "linear"] == 0.5
    assert t.loc["L0", "linear_rank"] == 1 and t.loc["L1", "network_rank"] == 1
    assert t.loc["L1", "tissue=liver"] == -2.0 and t.loc["L0", "tissue=brain"] == 1.0
    assert t["true_driver"].tolist() == [True, False, False]
    assert t["symbol"].tolist() == ["B", "C", "A"]


def test_landmark_targets_reads_a_row_of_each_model():
    net = _frame([[0.1, 0.9, -0.3], [0.0, 0.0, 1.0]], ["L0", "L1"], ["T0", "T1", "T2"])
    lin = _frame([[0.7, 0.0, 0.2], [0.5, 0.0, 0.0]], ["L0", "L1"], ["T0", "T1", "T2"])
    t = attribution.landmark_targets({"network": net, "linear": lin}, "L0", n=1,
                                 truth=_frame([[True, False, False], [False, False, True]], ["L0", "L1"],
                                              ["T0", "T1", "T2"]).astype(bool))
    assert t["target"].tolist() == ["T1", "T0"] * 2
    assert t.loc[t["model"] == "linear", "value"].tolist() == [0.0, 0.7]
    assert t["true_driver"].tolist() == [False, True] * 2
    with pytest.raises(ModelError, match="'L9' is not an input of the network model"):
        attribution.landmark_targets({"network": net}, "L9")


def test_agreement_table_aligns_by_id_and_scores_the_truth():
    rng = np.random.default_rng(0)
    L, T = [f"L{i}" for i in range(30)], [f"T{j}" for j in range(6)]
    A = _frame(rng.normal(size=(30, 6)), L, T)
    truth = _frame(np.abs(A.to_numpy()) > 1.0, L, T).astype(bool)
    B = A.iloc[::-1, ::-1] * 2.0  # same attributions, other order and scale
    B.loc["L99"] = 1.0  # a landmark only B has is left out
    meta = pd.DataFrame({"symbol": list("abcdef"), "kind": ["linear"] * 3 + ["saturation"] * 3}, index=T)
    t = attribution.agreement_table({"network": A, "linear": B}, k=5, truth=truth, target_meta=meta)
    assert t.index.tolist() == T
    np.testing.assert_allclose(t["spearman"], 1.0)
    np.testing.assert_allclose(t["top_k_overlap"], 1.0)
    expect = attribution.precision_at_k(A, truth, 5)
    np.testing.assert_allclose(t["precision_at_k_network"], expect)
    np.testing.assert_allclose(t["precision_at_k_linear"], expect)
    np.testing.assert_allclose(t["precision_at_k_random"], truth.mean(axis=0))
    assert t["kind"].tolist() == meta["kind"].tolist() and t.attrs["k"] == 5
    flipped = attribution.agreement_table({"network": A, "linear": -A}, k=5)
    np.testing.assert_allclose(flipped["spearman"], -1.0)
    np.testing.assert_allclose(flipped["top_k_overlap"], 1.0)  # same landmarks by |value|
    with pytest.raises(ModelError, match="share 0 landmarks"):
        attribution.agreement_table({"a": A, "b": _frame(np.ones((2, 6)), ["X0", "X1"], T)})
    with pytest.raises(ModelError, match="two models"):
        attribution.agreement_table({"a": A})


def test_group_matrix_and_groupable_columns():
    f1 = _frame([[1.0], [2.0], [3.0]], ["L0", "L1", "L2"], ["T0"])
    f1.attrs["n_samples"] = 12
    f2 = _frame([[-1.0], [0.0], [0.5]], ["L0", "L1", "L2"], ["T0"])
    f2.attrs["n_samples"] = 30
    g = attribution.group_matrix({"liver": f1, "brain": f2}, "T0", pd.Index(["L2", "L0"]))
    assert g.columns.tolist() == ["liver (n=12)", "brain (n=30)"]
    assert g.loc["L2"].tolist() == [3.0, 0.5]
    meta = pd.DataFrame({"tissue": ["a", "b"] * 10, "name": [f"s{i}" for i in range(20)], "one": ["x"] * 20,
                         "batch": ["p"] * 19 + ["q"], "dose": [1, 2] * 10})
    assert attribution.groupable_columns(meta) == ["tissue", "dose"]
