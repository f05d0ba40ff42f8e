"""The dashboard, page by page, on a small demo (Streamlit's AppTest, no browser)."""

from __future__ import annotations

import io
import re
import shutil
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("streamlit")
from streamlit.testing.v1 import AppTest

from dgex_core.attribution import cluster_order, explain_samples
from dgex_core.attribution.runs import explain_runs, target_attributions
from dgex_core.demo import APP_DEMO_SIZE, DemoConfig, app_demo_config, load_demo
from dgex_core.errors import DatasetError, ModelError
from dgex_core.evaluation import held_out_predictions
from dgex_core.genes import find_genes
from dgex_core.jobs import TrainingJob, find_user, new_session_dir, new_user
from dgex_core.models.factory import from_settings
from pages._common import for_display, save_upload

APP = Path(__file__).resolve().parents[2] / "app.py"
SIZE = "1500x200"


@pytest.fixture
def env(tmp_path, monkeypatch):
    monkeypatch.setenv("DGEX_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("DGEX_RUNS_DIR", str(tmp_path / "runs"))
    monkeypatch.setenv("DGEX_DEMO_SIZE", SIZE)
    return tmp_path


def open_app() -> AppTest:
    at = AppTest.from_file(str(APP), default_timeout=120).run()
    assert not at.exception, at.exception
    return at


def goto(at: AppTest, page: str) -> AppTest:
    at.switch_page(f"pages/{page}.py").run()
    assert not at.exception, at.exception
    return at


def train(at: AppTest, family: str, **widgets) -> str:
    goto(at, "train")
    at.selectbox(key="train_family").set_value(family).run()
    for key, value in widgets.items():
        at.number_input(key=key).set_value(value)
    name = at.text_input[0].value
    at.button(key="train_start").click().run()
    at.session_state["job"].join(120)
    at.run()  # the finished job's run moves into the session
    assert not at.exception, at.exception
    assert name in at.session_state["runs"]
    return name


def open_file(at: AppTest, data, landmarks) -> AppTest:
    """On the Data page: a file and a landmark list given as paths on the server."""
    at.radio(key="data_source").set_value("A file").run()
    for k in ("data_file", "landmark_file"):
        at.radio(key=f"{k}_how").set_value("Path on the server").run()
    at.text_input(key="data_file_path").set_value(str(data)).run()
    at.text_input(key="landmark_file_path").set_value(str(landmarks)).run()
    return at


def texts(at: AppTest) -> str:
    parts = [e.value for kind in ("markdown", "caption", "success", "error", "warning", "info", "title", "subheader")
             for e in getattr(at, kind)]
    return "\n".join(map(str, parts))


def test_demo_size_comes_from_the_environment(monkeypatch):
    monkeypatch.setenv("DGEX_DEMO_SIZE", "1500x200")
    assert (app_demo_config().n_samples, app_demo_config().n_targets) == (1500, 200)
    monkeypatch.delenv("DGEX_DEMO_SIZE")
    assert (app_demo_config().n_samples, app_demo_config().n_targets) == APP_DEMO_SIZE
    with pytest.raises(ValueError, match="1500x200"):
        app_demo_config("big")


def test_app_opens_on_the_demo_data_page(env):
    at = open_app()
    assert at.title[0].value == "Data"
    labels = {m.label: m.value for m in at.metric}
    assert labels["Samples"] == "1,500"
    assert labels["Landmarks (inputs)"] == "978"
    assert labels["Targets (outputs)"] == "200"
    assert labels["Landmark coverage"] == "978 of 978"
    assert "demo-1500x200" in "\n".join(m.value for m in at.sidebar.markdown)
    assert "none yet" in "\n".join(c.value for c in at.sidebar.caption)
    assert at.session_state["split_args"] == {"val": 0.1, "test": 0.1, "seed": 0, "group_by": None}
    # the split widgets write the non-widget state the Train page reads
    at.number_input(key="split_seed").set_value(3).run()
    at.selectbox(key="split_group").set_value("tissue").run()
    assert at.session_state["split_args"]["seed"] == 3
    assert at.session_state["split_args"]["group_by"] == "tissue"


def test_malformed_file_shows_the_format_error_and_the_app_stays_usable(env, tmp_path):
    bad = tmp_path / "bad.gct"
    bad.write_text("#1.2\n2\t2\nName\tDescription\tS1\tS2\nG1\tx\t1.0\thigh\nG2\ty\t2.0\t3.0\n")
    lm = tmp_path / "lm.txt"
    lm.write_text("G1\n")
    at = open_app()
    at.radio(key="data_source").set_value("A file").run()
    at.radio(key="data_file_how").set_value("Path on the server").run()
    at.radio(key="landmark_file_how").set_value("Path on the server").run()
    at.text_input(key="data_file_path").set_value(str(bad)).run()
    at.text_input(key="landmark_file_path").set_value(str(lm)).run()
    assert not at.exception
    assert len(at.error) == 1 and "bad.gct" in at.error[0].value and "high" in at.error[0].value
    goto(at, "train")  # still usable: the demo is still the current dataset
    assert "demo-1500x200" in at.caption[0].value


def test_file_with_missing_landmarks_needs_consent(env, tmp_path):
    demo = load_demo(app_demo_config())
    genes = list(demo.target_ids[:50]) + list(demo.landmark_ids[:900])
    m = pd.DataFrame(demo.matrix.values[:300, demo.matrix.gene_ids.get_indexer(genes)],
                     index=[f"S{i}" for i in range(300)], columns=genes)
    m.insert(0, "batch", ["a", "b", "c"] * 100)
    data = tmp_path / "table.csv"
    m.to_csv(data)
    lm = tmp_path / "landmarks.txt"
    lm.write_text("\n".join(demo.landmark_ids) + "\n")
    at = open_file(open_app(), data, lm)
    assert "900 of 978" in texts(at)
    assert any("tick the box" in w.value for w in at.warning)
    at.checkbox(key="allow_missing").check().run()
    at.button(key="use_dataset").click().run()
    assert not at.exception, at.exception
    ds = at.session_state["dataset"]
    assert (ds.n_samples, ds.n_landmarks, ds.n_targets) == (300, 900, 50)
    assert at.session_state["dataset_label"] == "table.csv"
    assert {m.label: m.value for m in at.metric}["Landmark coverage"] == "900 of 978"
    assert "batch" in at.dataframe[-1].value.columns
    # back on the Data page later, the file in use is still shown
    goto(at, "train")
    goto(at, "data")
    assert at.radio(key="data_source").value == "A file"
    assert any("Current dataset: table.csv" in s.value for s in at.success)


def test_demo_workflow_train_errors_coefficients_predict(env, tmp_path):
    at = open_app()
    lin = train(at, "linear")
    knn = train(at, "knn")
    assert lin == "demo-1500x200-linear" and knn == "demo-1500x200-knn"
    assert (env / "runs" / lin / "checksums.json").exists()
    table = at.dataframe[-1].value
    assert table["run"].tolist() == [lin, knn]
    assert {"test MAE", "noise floor", "x floor", "x floor, non-linear targets"} <= set(table.columns)
    assert (table["x floor"] > 1).all()  # nothing beats the noise floor
    # the shared sidebar lists the session's runs (AppTest keeps the sidebar of the first page only)
    side = AppTest.from_file(str(APP), default_timeout=120)
    side.session_state["runs"] = at.session_state["runs"]
    side.run()
    sidebar = "\n".join(c.value for c in side.sidebar.caption)
    assert f"{lin} (linear)" in sidebar and f"{knn} (knn)" in sidebar

    # the saved run loads back from the list
    at2 = open_app()
    goto(at2, "train")
    at2.selectbox(key="load_pick").set_value(lin)
    at2.button(key="load_run").click().run()
    assert lin in at2.session_state["runs"]

    goto(at, "errors")
    figs = at.get("plotly_chart")
    assert len(figs) >= 4
    assert any("noise floor" in p.proto.spec for p in figs)
    metrics = {m.label: m.value for m in at.metric}
    share_a = float(metrics[f"Genes where {lin} wins"].rstrip("%"))
    share_b = float(metrics[f"Genes where {knn} wins"].rstrip("%"))
    assert share_a + share_b == pytest.approx(100, abs=0.2)
    for kind in ("Box", "ECDF"):
        at.radio(key="err_kind").set_value(kind).run()
        assert not at.exception
    gene = at.session_state["runs"][lin].per_gene.index[0]
    at.text_input(key="gene_query").set_value(gene).run()
    assert not at.exception, at.exception
    assert at.selectbox(key="gene_pick").value == gene
    measured, pred = held_out_predictions(at.session_state["runs"][knn], at.session_state["dataset"])  # what it plots
    assert measured.shape == (150, 200) and pred.shape == (150, 200)
    at.selectbox(key="sample_color").set_value("tissue").run()
    assert not at.exception

    goto(at, "coefficients")
    assert at.selectbox(key="coef_run").value == lin
    assert len(at.get("plotly_chart")) == 3
    assert at.get("download_button")[0].proto.label.startswith("Download the coefficient table (CSV, 979 x 200)")

    demo = load_demo(app_demo_config())
    plate = pd.DataFrame(demo.landmark_values[:40], index=[f"P{i}" for i in range(40)], columns=demo.landmark_ids)
    plate_path = tmp_path / "plate.csv"
    plate.to_csv(plate_path)
    goto(at, "predict")
    at.selectbox(key="pred_run").set_value(lin).run()
    at.radio(key="pred_how").set_value("Path on the server").run()
    at.text_input(key="pred_path").set_value(str(plate_path)).run()
    assert not at.exception, at.exception
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Samples"] == "40" and metrics["Run's landmarks present"] == "978 of 978"
    at.selectbox(key="pred_format").set_value("csv").run()
    at.button(key="pred_build").click().run()
    built = at.session_state["pred_file"]
    assert built["name"] == f"{lin}_predictions.csv"
    out = pd.read_csv(io.BytesIO(built["data"]), index_col=0)
    assert out.index.astype(str).tolist() == [f"P{i}" for i in range(40)]  # a row per sample
    # the per-sample columns, the measured genes, the inferred genes
    assert out.columns.tolist() == ["n_imputed", "n_clipped", "ood_score", "ood_flag", *demo.landmark_ids,
                                    *demo.target_ids]
    expect = at.session_state["runs"][lin].model.predict(demo.landmark_values[:40])
    got = out[demo.target_ids[0]]
    np.testing.assert_allclose(got.to_numpy(dtype=float), expect[:, 0], rtol=1e-4, atol=1e-4)
    assert at.get("download_button")[0].proto.label.startswith(f"Download {lin}_predictions.csv")

    # profiles without all the run's landmarks: said plainly, nothing to download
    short = tmp_path / "short.csv"
    plate.iloc[:, :500].to_csv(short)
    at.text_input(key="pred_path").set_value(str(short)).run()
    assert not at.exception, at.exception
    assert any("478 of the run's 978 landmarks are not in the input" in e.value for e in at.error)
    assert not at.get("download_button")


def test_mlp_trains_in_the_background_with_an_epoch_curve(env, monkeypatch):
    monkeypatch.setenv("DGEX_DEMO_SIZE", "600x50")
    at = open_app()
    goto(at, "train")
    at.selectbox(key="train_family").set_value("mlp").run()
    at.number_input(key="mlp_width").set_value(32)
    at.number_input(key="mlp_epochs").set_value(3)
    at.button(key="train_start").click().run()
    job = at.session_state["job"]
    job.join(120)
    assert job.error is None
    hist = job.poll()
    assert hist["stage"].iloc[0] == "fitting the linear path (ridge)" and np.isnan(hist["epoch"].iloc[0])
    assert hist["epoch"].iloc[1:].tolist() == [1, 2, 3]
    assert {"train_loss", "val_mae", "best_val_mae"} <= set(hist.columns)
    at.run()
    assert not at.exception, at.exception
    assert any("trained in" in s.value for s in at.success)
    spec = next(p.proto.spec for p in at.get("plotly_chart") if "training loss" in p.proto.spec)
    # two named axes, whole epochs
    assert "validation MAE (training sd units)" in spec and '"overlaying":"y"' in spec.replace(" ", "")
    assert '"tickformat":"d"' in spec.replace(" ", "")


def test_training_job_stops_when_asked(env):
    data = load_demo(DemoConfig(n_samples=400, n_targets=30)).dataset()
    job = TrainingJob(data, from_settings("mlp", width=16, max_epochs=200), "stopper",
                               runs_root=env / "runs")
    job._stop.set()  # asked before the first epoch ends: stops after it
    job.start().join(60)
    assert job.error is None and [h.get("epoch") for h in job.history] == [None, 1]  # the ridge stage, one epoch
    assert (env / "runs" / "stopper").is_dir()


def test_uploads_go_to_a_private_folder_per_session(tmp_path):
    a, b = new_session_dir(), new_session_dir()
    assert a != b
    p = save_upload(a, "../../etc/my file.gct", b"#1.2\n")
    assert p.parent.parent == a and p.name == "my_file.gct" and p.read_bytes() == b"#1.2\n"
    assert save_upload(b, "my file.gct", b"other").parent.parent == b
    for d in (a, b):
        shutil.rmtree(d)


def test_cluster_order_groups_similar_rows():
    rng = np.random.default_rng(0)
    base = rng.normal(size=(2, 30))
    x = np.vstack([base[i % 2] + 0.01 * rng.normal(size=30) for i in range(8)])
    order = cluster_order(x)
    assert sorted(order) == list(range(8))
    groups = [i % 2 for i in order]
    assert groups in ([0] * 4 + [1] * 4, [1] * 4 + [0] * 4)


def test_gene_search_matches_ids_and_symbols_exact_first():
    per_gene = pd.DataFrame({"mae": [1, 2, 3]}, index=["G1", "G10", "G2"])
    meta = pd.DataFrame({"Description": ["TP53", "TP53BP1", "EGFR"]}, index=["G1", "G10", "G2"])
    assert find_genes("tp53", per_gene.index, meta) == ["G1", "G10"]
    assert find_genes("g1", per_gene.index, None) == ["G1", "G10"]
    assert find_genes("egfr", per_gene.index, meta) == ["G2"]
    assert find_genes("nothing", per_gene.index, meta) == []


def _grouped_run(env, family: str):
    """A run of ``family`` on a 400-sample demo, split 65/15/20 with whole tissues on one side."""
    data = load_demo(DemoConfig(n_samples=400, n_targets=30)).dataset()
    job = TrainingJob(data, from_settings(family), f"grouped-{family}", runs_root=env / "runs",
                               split_args={"val": 0.15, "test": 0.2, "seed": 4, "group_by": "tissue"})
    job.start().join(60)
    assert job.error is None
    return data, job.run, data.split(0.15, 0.2, 4, "tissue")


def test_test_predictions_remake_a_grouped_split(env):
    data, run, split = _grouped_run(env, "knn")
    measured, pred = held_out_predictions(run, data)
    assert list(measured.index) == list(split.test.sample_ids)
    assert pred.shape == measured.shape == (split.test.n_samples, 30)
    other = load_demo(DemoConfig(n_samples=300, n_targets=30)).dataset()
    with pytest.raises(DatasetError, match="Data page"):
        held_out_predictions(run, other)


def test_two_sessions_at_once_never_see_each_other(env, tmp_path):
    """Two browser sessions: one on its own file, one on the demo, training at the same time."""
    from dgex_core.io import write
    from dgex_core.matrix import ExpressionMatrix

    rng = np.random.default_rng(5)
    genes = [f"L{i}" for i in range(12)] + [f"T{j}" for j in range(8)]
    own = write(ExpressionMatrix(rng.normal(8, 1, (200, 20)).astype(np.float32), [f"S{i}" for i in range(200)],
                                 genes), tmp_path / "mine.gct")
    lm = tmp_path / "lm.txt"
    lm.write_text("\n".join(genes[:12]))
    a, b = open_app(), open_app()
    a.radio(key="data_source").set_value("A file").run()
    a.radio(key="data_file_how").set_value("Path on the server").run()
    a.radio(key="landmark_file_how").set_value("Path on the server").run()
    a.text_input(key="data_file_path").set_value(str(own)).run()
    a.text_input(key="landmark_file_path").set_value(str(lm)).run()
    a.button(key="use_dataset").click().run()
    assert not a.exception, a.exception
    assert a.session_state["dataset"].n_landmarks == 12
    assert b.session_state["dataset"].n_landmarks == 978  # b still on the demo
    # both train at the same time, in their own background jobs
    for at, family in ((a, "linear"), (b, "knn")):
        goto(at, "train")
        at.selectbox(key="train_family").set_value(family).run()
        at.button(key="train_start").click().run()
    assert a.session_state["job"] is not b.session_state["job"]
    for at in (a, b):
        at.session_state["job"].join(120)
        at.run()
        assert not at.exception, at.exception
    runs_a, runs_b = set(a.session_state["runs"]), set(b.session_state["runs"])
    assert runs_a and runs_b and not (runs_a & runs_b)
    assert all(a.session_state["runs"][r].model.n_train_ < 200 for r in runs_a)
    assert all(len(b.session_state["runs"][r].model.landmark_ids_) == 978 for r in runs_b)
    assert b.session_state["dataset_label"] != a.session_state["dataset_label"]
    assert b.session_state["dataset"].n_landmarks == 978  # a's file never reached b


@pytest.mark.slow
def test_interpret_page_explains_the_network_beside_the_linear_weights(env):
    from dgex_core import attribution

    at = open_app()
    goto(at, "interpret")
    assert any("No network run yet" in i.value for i in at.info)
    lin = train(at, "linear")
    net = train(at, "mlp", mlp_width=256, mlp_epochs=40)
    goto(at, "interpret")
    assert at.selectbox(key="int_net").value == net and at.selectbox(key="int_lin").value == lin
    runs = at.session_state["runs"]
    ds = at.session_state["dataset"]
    # what the page shows is explain_runs of the two runs on the test samples
    entry = explain_runs(runs[net], runs[lin], ds, "test")
    X, attrs = entry.X, entry.attrs
    assert list(X.index) == list(ds.split(0.1, 0.1, seed=0).test.sample_ids)  # the held-out samples, by id
    assert list(X.columns) == list(runs[net].model.landmark_ids_)
    np.testing.assert_array_equal(attrs["linear"].to_numpy(), runs[lin].model.coef_)  # a linear model's are its weights
    assert attrs["network"].shape == (978, 200)

    metrics = {m.label: m.value for m in at.metric}
    agree = attribution.agreement(attrs["network"], attrs["linear"], k=20)
    assert metrics["Median Spearman r over targets"] == f"{agree['spearman'].median():.3f}"
    assert metrics["Median top-20 overlap"] == f"{agree['top_k_overlap'].median():.1%}"
    # against the demo's true drivers: both models far above a random ranking
    p_net, p_lin = float(metrics["Network: precision at 20"]), float(metrics["Linear: precision at 20"])
    p_rand = float(metrics["Random ranking"])
    assert p_net > 3 * p_rand and p_lin > 3 * p_rand
    # a target whose residual gate is 0 is explained by exactly the ridge weights (the linear
    # run's: the same training samples and alpha chosen on the same validation samples)
    gates = runs[net].model.networks_[0].gate.numpy()
    off = np.flatnonzero(gates == 0)
    assert off.size and runs[net].model.linear_alpha_ == runs[lin].model.alpha_
    np.testing.assert_allclose(attrs["network"].to_numpy()[:, off], runs[lin].model.coef_[:, off], rtol=1e-4,
                               atol=1e-6)
    assert len(at.get("plotly_chart")) == 5
    labels = [b.proto.label for b in at.get("download_button")]
    assert labels == ["TG00001: every landmark, both models and groups (CSV)", "Network attributions, 978 x 200 (CSV)",
                      "Per-target agreement and context dependence (CSV)"]

    # groups: the test samples' tissues with at least 10 samples
    tissues = X.index.map(ds.sample_meta["tissue"]).value_counts()
    assert metrics["Groups with at least 10 samples"] == str(int((tissues >= 10).sum()))
    labels = X.index.map(ds.sample_meta["tissue"]).astype(str)
    ctx = attribution.context_dependence_scores(runs[net].model, X, pd.Series(labels, index=X.index), "gradient",
                                                min_size=10)
    assert metrics["Context dependence of TG00001"] == f"{ctx['TG00001']:.3f}"
    at.number_input(key="int_min_group").set_value(1000).run()
    assert not at.exception, at.exception
    assert any("no group has at least 1000 samples" in e.value for e in at.error)
    assert len(at.get("plotly_chart")) == 3  # the rest of the page stays
    at.number_input(key="int_min_group").set_value(5).run()

    # another target, integrated gradients: linear IG is |coef| * mean|x_z|, exactly
    target = ds.target_meta.index[ds.target_meta["nonlinear"].astype(bool)][0]
    at.selectbox(key="int_target").set_value(target).run()
    at.radio(key="int_method").set_value("integrated_gradients").run()
    assert not at.exception, at.exception
    ig = target_attributions({"network": runs[net].model, "linear": runs[lin].model}, X, target,
                             "integrated_gradients", attrs["network"].index)
    model = runs[lin].model
    j = list(model.target_ids_).index(target)
    Xz = model.standardize_landmarks(X.to_numpy()).astype(np.float64)
    np.testing.assert_allclose(ig["linear"].to_numpy(), np.abs(model.coef_[:, j]) * np.abs(Xz).mean(axis=0),
                               rtol=1e-10)
    assert (ig["network"] >= 0).all() and ig["network"].max() > 0
    metrics = {m.label: m.value for m in at.metric}
    assert 0 <= int(metrics["True drivers in the network's top 20"]) <= 20
    assert at.get("download_button")[0].proto.label.startswith(f"{target}: every landmark")

    # a landmark; the validation samples instead of the test samples
    at.selectbox(key="int_landmark").set_value("LM0005").run()
    assert not at.exception, at.exception
    at.selectbox(key="int_samples").set_value("val").run()
    assert not at.exception, at.exception
    assert at.caption[0].value  # the page rendered
    X_val = explain_runs(runs[net], runs[lin], ds, "val").X
    assert list(X_val.index) == list(ds.split(0.1, 0.1, seed=0).val.sample_ids)


def test_explain_samples_are_the_runs_own_split(env):
    data, run, split = _grouped_run(env, "linear")
    for which in ("test", "val", "train"):
        X, meta = explain_samples(run, data, which)
        part = getattr(split, which)
        assert list(X.index) == list(part.sample_ids) and list(meta.index) == list(part.sample_ids)
    X, _ = explain_samples(run, data, "all", max_samples=50)
    assert len(X) == 50 and X.index.is_unique and set(X.index) <= set(data.sample_ids)
    # columns follow the run's landmarks by id, whatever the data's column order
    shuffled = data.subset(np.arange(data.n_samples))
    order = np.random.default_rng(0).permutation(data.n_landmarks)
    from dgex_core.dataset import Dataset

    other = Dataset(shuffled.landmarks[:, order], shuffled.targets, shuffled.landmark_ids[order], shuffled.target_ids,
                    shuffled.sample_ids, shuffled.sample_meta)
    X2, _ = explain_samples(run, other, "test")
    pd.testing.assert_frame_equal(X2, explain_samples(run, data, "test")[0])
    with pytest.raises(DatasetError, match="Data page"):
        explain_samples(run, load_demo(DemoConfig(n_samples=300, n_targets=30)).dataset(), "test")
    # samples missing a landmark value are left out, and counted
    holes = data.landmarks.copy()
    holes[data.sample_ids.get_indexer(split.test.sample_ids[:3]), 5] = np.nan
    gappy = Dataset(holes, data.targets, data.landmark_ids, data.target_ids, data.sample_ids, data.sample_meta)
    X3, _ = explain_samples(run, gappy, "test")
    assert list(X3.index) == list(split.test.sample_ids[3:]) and X3.attrs["n_incomplete"] == 3


def test_interpret_page_without_a_linear_run_and_with_a_deep_network(env, monkeypatch):
    monkeypatch.setenv("DGEX_DEMO_SIZE", "600x50")
    at = open_app()
    net = train(at, "mlp", mlp_width=16, mlp_layers=3, mlp_epochs=1)
    goto(at, "interpret")
    assert any("no closed form" in c.value for c in at.caption)
    at.selectbox(key="int_samples").set_value("all").run()
    assert not at.exception, at.exception
    entry = explain_runs(at.session_state["runs"][net], None, at.session_state["dataset"], "all")
    assert not entry.closed_form and len(entry.X) == 200 and list(entry.attrs) == ["network"]  # one pass per target and sample
    assert any(f"Explained on {len(entry.X):,} samples" in c.value for c in at.caption)
    assert not any("Does the network read" in s.value for s in at.subheader)
    labels = [b.proto.label for b in at.get("download_button")]
    assert len(labels) == 2 and labels[1] == "Network attributions, 978 x 50 (CSV)"


def test_a_reload_finds_the_running_training_again(env, monkeypatch):
    """A browser reload (or a second tab) is a new session of the same app with the same
    ``?user=`` token: it shows the running job's progress, its settings and Stop, offers
    no second training on top, and gets the finished run once."""
    monkeypatch.setenv("DGEX_DEMO_SIZE", "600x50")
    gate = threading.Event()  # each epoch waits here: the training runs until the test lets it go
    progress = TrainingJob._progress

    def held(self, step, total, metrics):
        stop = progress(self, step, total, metrics)
        if "epoch" in (metrics or {}):  # the ridge stage of the linear path goes by
            gate.wait(60)
        return stop or self._stop.is_set()

    monkeypatch.setattr(TrainingJob, "_progress", held)
    at = open_app()
    token = at.query_params["user"]
    goto(at, "train")
    at.selectbox(key="train_family").set_value("mlp").run()
    at.number_input(key="mlp_width").set_value(16)
    at.number_input(key="mlp_epochs").set_value(400)
    at.selectbox(key="mlp_activation").set_value("tanh")
    at.button(key="train_start").click().run()
    job = at.session_state["job"]
    name = job.name
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not any("epoch" in e for e in [*job.history, *job.events.queue]):
            time.sleep(0.05)  # the first epoch is done and waits at the gate

        again = AppTest.from_file(str(APP), default_timeout=120)
        again.query_params["user"] = token
        again.run()
        assert not again.exception, again.exception
        assert again.query_params["user"] == token
        goto(again, "train")
        assert again.session_state["job"] is job and not job.done
        progress_bars = again.get("progress")
        assert progress_bars and "epoch 1 of 400" in progress_bars[0].proto.text
        assert not again.button(key="train_stop").disabled
        assert again.button(key="train_start").disabled  # no second training on top
        assert any(f"**{name}** is training" in c.value for c in again.caption)
        # the page shows the settings the network trains with, not the defaults
        assert again.selectbox(key="train_family").value == "mlp"
        assert again.number_input(key="mlp_width").value == 16 and again.number_input(key="mlp_epochs").value == 400
        assert again.selectbox(key="mlp_activation").value == "tanh"
        with pytest.raises(ModelError, match="still running"):  # even from a tab drawn before it started
            find_user(token).start_job(TrainingJob(job.dataset, from_settings("linear"), "x"))

        # another user (no token, or a made-up one) sees none of it
        for other in ("", "A" * 32, "../../etc/passwd"):
            stranger = AppTest.from_file(str(APP), default_timeout=120)
            if other:
                stranger.query_params["user"] = other
            stranger.run()
            assert stranger.query_params["user"] not in (token, other)
            assert find_user(stranger.query_params["user"]) is not None
            goto(stranger, "train")
            assert "job" not in stranger.session_state and not stranger.button(key="train_start").disabled
            assert not stranger.get("progress")

        again.button(key="train_stop").click().run()
        assert job.stopping
    finally:  # never leave the training held or running
        if not job.done:
            job.stop()
        gate.set()
    job.join(60)
    assert job.error is None and job.done
    for session in (again, at):  # both tabs get the run; it is collected once
        session.run()
        assert not session.exception, session.exception
        assert list(session.session_state["runs"]) == [name]
        assert session.session_state["runs"][name] is job.run
        assert any("trained in" in s.value for s in session.success)
        assert not session.button(key="train_start").disabled
    assert list(find_user(token).runs) == [name]
    assert [p.name for p in (env / "runs").iterdir()] == [name]
    # a reload after the end starts with the user's runs
    later = AppTest.from_file(str(APP), default_timeout=120)
    later.query_params["user"] = token
    later.run()
    assert list(later.session_state["runs"]) == [name]
    assert f"{name} (mlp)" in "\n".join(c.value for c in later.sidebar.caption)


def test_user_tokens_are_unguessable_and_checked():
    a, b = new_user(), new_user()
    assert a.token != b.token and len(a.token) == 32 and re.fullmatch(r"[A-Za-z0-9_-]{32}", a.token)
    assert find_user(a.token) is a and find_user(b.token) is b
    for bad in (None, 42, "", a.token[:-1], a.token + "x", a.token[:-1] + "/", "A" * 32):
        assert find_user(bad) is None


def test_data_page_catches_unlogged_values_and_a_run_records_the_choice(env, tmp_path):
    """Counts on the Data page: a warning with the quantiles and no dataset until the
    user says how to log them; the choice is applied, recorded in the run, and the
    orientation of a samples x genes table follows the landmark ids as in the CLI."""
    rng = np.random.default_rng(1)
    genes = [f"G{i}" for i in range(40)]
    counts = rng.poisson(rng.gamma(2, 150, (1, 40)), (90, 40))
    pd.DataFrame(counts, index=[f"X{i}" for i in range(90)], columns=genes).rename_axis("sample").to_csv(
        tmp_path / "counts.csv")  # 90 rows, 40 columns: the length rule alone takes the rows as genes
    (tmp_path / "lm.txt").write_text("\ufeff" + "\n".join([*genes[:10], "G0"]) + "\n")  # a BOM, a duplicate
    at = open_file(open_app(), tmp_path / "counts.csv", tmp_path / "lm.txt")
    assert not at.exception, at.exception
    shown = texts(at)
    assert "10 of 10 landmarks present" in shown and "1 duplicate" in shown, shown
    assert any("look unlogged" in w.value and "whole numbers: counts" in w.value for w in at.warning)
    assert not [b for b in at.button if b.key == "use_dataset"]  # no dataset until the scale is chosen
    at.radio(key="data_normalize").set_value("log2cpm").run()
    at.button(key="use_dataset").click().run()
    ds = at.session_state["dataset"]
    assert (ds.n_samples, ds.n_landmarks, ds.n_targets) == (90, 10, 30)
    assert float(np.asarray(ds.landmarks).max()) < 20  # logged
    name = train(at, "linear")
    assert at.session_state["runs"][name].config["normalize"] == "log2cpm"


def test_messages_that_used_to_stop_a_newcomer(env, tmp_path):
    """A list matching nothing: why (the kinds of ids), no "proceed with 0"; the home page
    gives next steps; a demo run applied to an L1000-like plate says what the file has,
    what the run was trained on and what to do."""
    at = open_app()
    assert any("Next steps" in i.value for i in at.info)
    demo = load_demo(app_demo_config())
    plate = tmp_path / "plate.csv"
    pd.DataFrame(np.random.default_rng(0).normal(8, 1, (5, 3)), index=[f"P{i}" for i in range(5)],
                 columns=["200814_at", "222103_at", "201453_x_at"]).rename_axis("sample").to_csv(plate)
    lm = tmp_path / "symbols.txt"
    lm.write_text("\n".join(demo.landmark_ids[:20]) + "\n")
    open_file(at, plate, lm)
    err = " ".join(e.value for e in at.error)
    assert "None of the 20 landmarks of symbols.txt is in plate.csv" in err and "array probe ids" in err, err
    assert not [c for c in at.checkbox if c.key == "allow_missing"] and str(tmp_path) not in err
    # the demo run applied to the plate
    at.radio(key="data_source").set_value("Built-in demo").run()
    name = train(at, "linear")
    from dgex_core.prediction import missing_landmarks_message

    msg = missing_landmarks_message(at.session_state["runs"][name], list(demo.landmark_ids),
                                    pd.Index(["200814_at", "222103_at", "201453_x_at"]))
    assert "none of the run's 978 landmarks is in the input" in msg and "array probe ids" in msg
    assert "was trained on demo" in msg and "use a run trained on data with the input's kind of ids" in msg


def test_tables_show_a_dash_for_missing_values_and_keep_numbers_underneath():
    table = pd.DataFrame({"run": ["a", "b"], "test MAE": [0.123456, np.nan], "well inferred": [12, None]})
    styled = for_display(table)
    text = styled.to_string()
    assert "0.1235" in text and "None" not in text and "nan" not in text and text.count(" -") >= 2
    assert styled.data["test MAE"].dtype.kind == "f"  # sorting still numeric


def test_errors_page_labels_axes_in_words_and_colours_many_groups_apart(env):
    at = open_app()
    train(at, "linear")
    goto(at, "errors")
    specs = " ".join(p.proto.spec for p in at.get("plotly_chart"))
    assert "mean absolute error per gene (training sd units)" in specs
    assert "out-of-distribution score (above 1: further out than 99% of held-out samples)" in specs
    assert any("Run **" in c.value and "its test samples" in c.value for c in at.caption)
    # 12 tissues: a palette of 24 colours, not plotly's 10 that repeat
    assert "#2E91E5" in specs  # the first colour of plotly's Dark24


def test_pages_keep_their_inputs_when_the_user_comes_back(env, tmp_path):
    """Train keeps the chosen family and settings, Predict its run, options and the
    uploaded plate, across a visit to another page."""
    at = open_app()
    name = train(at, "linear")
    goto(at, "train")
    at.selectbox(key="train_family").set_value("mlp").run()
    at.number_input(key="mlp_width").set_value(64).run()
    goto(at, "errors")
    goto(at, "train")
    assert at.selectbox(key="train_family").value == "mlp"
    assert at.number_input(key="mlp_width").value == 64
    # Predict: an uploaded plate stays (AppTest cannot drive the uploader: the kept file is set as an upload sets it)
    demo = load_demo(app_demo_config())
    plate = tmp_path / "plate.csv"
    demo.matrix.to_frame().iloc[:5][list(demo.landmark_ids)].rename_axis("sample").to_csv(plate)
    goto(at, "predict")
    at.session_state["_kept_file_pred_upload"] = ("plate.csv", plate)
    at.run()
    at.checkbox(key="pred_clip").uncheck().run()
    at.selectbox(key="pred_format").set_value("parquet").run()
    assert any("Using **plate.csv**" in c.value for c in at.caption)
    goto(at, "errors")
    goto(at, "predict")
    assert at.selectbox(key="pred_run").value == name
    assert at.checkbox(key="pred_clip").value is False
    assert at.selectbox(key="pred_format").value == "parquet"
    assert any("Using **plate.csv**" in c.value for c in at.caption)
    assert {m.label: m.value for m in at.metric}["Samples"] == "5"
    assert not at.warning or all("Session State" not in w.value for w in at.warning)


def test_a_sample_sheet_on_the_data_page_groups_the_split_and_colours_the_plots(env, tmp_path):
    demo = load_demo(app_demo_config())
    data = tmp_path / "arrays.csv"
    frame = demo.matrix.to_frame().iloc[:300]
    frame.rename_axis("sample").to_csv(data)
    lm = tmp_path / "landmarks.txt"
    lm.write_text("\n".join(demo.landmark_ids) + "\n")
    sheet = tmp_path / "samples.tsv"
    sheet.write_text("sample\tbatch\n" + "".join(f"{s}\tb{i % 7}\n" for i, s in enumerate(frame.index[:290])))
    at = open_file(open_app(), data, lm)
    at.radio(key="sheet_file_how").set_value("Path on the server").run()  # offered once data and list are in
    at.text_input(key="sheet_file_path").set_value(str(sheet)).run()
    assert not at.exception, at.exception
    shown = texts(at)
    assert "Sample sheet samples.tsv: batch. samples.tsv: 10 of the 300 samples are not in the sheet" in shown, shown
    assert at.selectbox(key="split_group").value is None  # "(no grouping)" by default
    at.button(key="use_dataset").click().run()
    assert "batch" in at.session_state["dataset"].sample_meta
    at.selectbox(key="split_group").set_value("batch").run()
    assert at.session_state["split_args"]["group_by"] == "batch"
    name = train(at, "linear")
    run = at.session_state["runs"][name]
    assert run.config["split"]["group_by"] == "batch" and "batch" in run.per_sample
    goto(at, "errors")
    assert "batch" in at.selectbox(key="sample_color").options
    # a sheet that matches no sample: said, and the page stays usable
    bad = tmp_path / "other.tsv"
    bad.write_text("sample\tbatch\nX1\ta\nX2\tb\n")
    goto(at, "data")
    at.text_input(key="sheet_file_path").set_value(str(bad)).run()
    assert not at.exception and any("none of its 2 sample ids" in e.value for e in at.error)


def test_errors_page_shows_which_family_each_gene_of_a_choice_run_uses(env, monkeypatch):
    monkeypatch.setenv("DGEX_DEMO_SIZE", "600x50")
    at = open_app()
    name = train(at, "choice", mlp_width=32, mlp_epochs=3)
    run = at.session_state["runs"][name]
    goto(at, "errors")
    assert "Which family each gene uses (per-gene choice runs)" in [s.value for s in at.subheader]
    counts = next(d.value for d in at.dataframe if d.value.index.name == "uses")
    assert counts["genes"].sum() == len(run.model.target_ids_)
    assert counts["genes"].to_dict() == run.per_gene["uses"].value_counts().to_dict()
