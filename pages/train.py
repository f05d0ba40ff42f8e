"""Train: pick a model family and its settings, train in the background with live
progress (and a Stop button), or load a saved run.

The training belongs to the user, not to the tab: a reload or a second tab shows it
again (progress, Stop, the finished run) with the settings it was started with, and
no second training starts on top of it."""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from dgex_core.errors import DgexError
from dgex_core.evaluation import runs_table
from dgex_core.jobs import PLACE_KEYS, TrainingJob
from dgex_core.models.factory import from_settings
from dgex_core.store import default_runs_dir, load_saved_run, saved_runs, unique_run_name
from pages._common import collect_job, for_display, kept, remember, runs, user

ss = st.session_state
st.title("Train")
ds = ss["dataset"]
sa = ss["split_args"]
st.caption(f"On **{ss['dataset_label']}** ({ds.n_samples:,} samples, {ds.n_landmarks:,} landmarks -> "
           f"{ds.n_targets:,} targets); split val {sa['val']:.2f} / test {sa['test']:.2f}, seed {sa['seed']}"
           + (f", grouped by {sa['group_by']}" if sa.get("group_by") else "") + " (change it on the Data page).")

LABELS = {"linear": "Linear regression (ridge, the LINCS baseline)", "knn": "KNN-GE",
          "mlp": "D-GEX network (PyTorch)",
          "choice": "Per-gene choice (each gene: the family or blend best on validation)"}
#: The settings widgets and their defaults; a training remembers their values, so a
#: session that comes back to it (a reload) shows the settings it runs with.
INPUTS = {"train_family": "linear", "knn_metric": "euclidean", "mlp_width": 1000, "mlp_layers": 1,
          "mlp_epochs": 30, "mlp_dropout": 0.1, "mlp_activation": "relu", "mlp_linear_path": "frozen",
          "mlp_adaptive": True, "choice_parts": ["linear", "mlp"]}
slot = user()
collect_job()  # a training that ended since the last run (app.py does it too; AppTest runs the page alone)
job = slot.job
busy = slot.busy
restore = slot.job_info.get("inputs", {}) if busy else {}
remember(*INPUTS)  # the settings stay when the user visits another page and comes back
for k, default in INPUTS.items():
    ss.setdefault(k, restore.get(k, default))  # widgets below take their value from here

tab_new, tab_load = st.tabs(["Train a model", "Load a saved run"])
with tab_new:
    family = st.selectbox("Model family", list(LABELS), format_func=LABELS.get, **kept("train_family"))
    settings: dict = {}
    if family == "linear":
        st.caption("Ridge strength chosen on the validation samples from a grid (one eigendecomposition).")
        settings["alphas"] = "auto"
    elif family == "knn":
        c = st.columns(2)
        settings["metric"] = c[0].selectbox("Distance", ["euclidean", "correlation"], **kept("knn_metric"))
        c[1].caption("k chosen on validation from 1, 3, 5, 10, 20, 40.")
        settings["k_grid"] = "auto"
    if family == "choice":
        settings["parts"] = st.multiselect("Choose among", ["linear", "knn", "mlp"], **kept("choice_parts"))
        st.caption("Each part is fitted on the training samples; each gene then takes the part, or the 75/25, "
                   "50/50 blend, with the lowest validation error (never worse than the better part there). "
                   "The network settings below are its network part's.")
    if family in ("mlp", "choice"):
        c = st.columns(5)
        settings["width"] = c[0].number_input("Hidden width", 10, 10000, step=100, **kept("mlp_width"))
        settings["layers"] = c[1].number_input("Hidden layers", 1, 3, **kept("mlp_layers"))
        settings["max_epochs"] = c[2].number_input("Epochs", 1, 500, **kept("mlp_epochs"))
        settings["dropout"] = c[3].slider("Dropout", 0.0, 0.9, step=0.05, **kept("mlp_dropout"))
        settings["activation"] = c[4].selectbox("Activation", ["relu", "tanh", "sigmoid", "gelu", "elu"],
                                                **kept("mlp_activation"))
        c = st.columns([2, 3])
        settings["linear_path"] = c[0].selectbox(
            "Linear path", ["frozen", "finetune", "off"], **kept("mlp_linear_path"),
            help="frozen: ridge regression plus a learned non-linear residual, gated per gene on validation "
                 "(a gene the network cannot improve keeps the ridge answer); finetune: the ridge weights "
                 "trained too; off: the plain D-GEX network")
        settings["adaptive"] = c[1].checkbox("Adaptive activations (TAAF: learnable per-unit scale and shift)",
                                             **kept("mlp_adaptive"))
    taken = [*runs(), *([job.name] if job is not None else [])]
    default_name = unique_run_name(f"{ss['dataset_label']}-{family}", taken)
    # one widget whose value follows the suggested name (a key per suggestion left two
    # "Run name" boxes on the page for a moment while it redrew)
    if ss.get("train_name_default") != default_name or "train_name" not in ss:  # (widget state is dropped off-page)
        ss["train_name_default"] = default_name
        ss["train_name"] = default_name
    name = st.text_input("Run name", key="train_name")
    if busy:
        st.caption(f"**{job.name}** is training: stop it or wait for it to end to start another.")
    if st.button("Train", type="primary", disabled=busy, key="train_start"):
        try:
            model = from_settings(family, **settings)
            job = TrainingJob(ds, model, name, split_args=dict(sa), runs_root=default_runs_dir(),
                                       dataset_name=ss["dataset_label"])
            place = {k: ss[k] for k in PLACE_KEYS} | {"split_args": dict(sa)}
            slot.start_job(job, **place, inputs={k: ss[k] for k in INPUTS if k in ss})
            ss["job"] = job
            ss["run_dataset"][name] = ss["dataset_key"]
            st.rerun()
        except DgexError as e:
            st.error(str(e))

with tab_load:
    saved = saved_runs()
    if saved.empty:
        st.caption(f"No saved runs in {default_runs_dir()} yet.")
    else:
        st.dataframe(for_display(saved.drop(columns=["status"])), hide_index=True)
        pick = st.selectbox("Run", saved["name"].tolist(), key="load_pick")
        if st.button("Load", key="load_run"):
            try:
                ss["runs"][pick] = load_saved_run(pick)
                slot.add_run(ss["runs"][pick])
                st.success(f"Loaded {pick}")
                st.rerun()
            except DgexError as e:
                st.error(str(e))


def progress_panel(shown_busy: bool) -> None:
    """The user's latest training; ``shown_busy``: it was running when the page was drawn."""
    slot = user()
    job, info = slot.job, slot.job_info
    if job is None:
        return
    hist = job.poll()
    st.subheader(f"Run {job.name}")
    if info.get("dataset_key") != ss["dataset_key"]:
        st.caption(f"On {info.get('dataset_label', job.dataset_name)}, not the current dataset.")
    # the network's epochs (other progress rows are stages: the linear path's ridge fit, a choice's parts)
    epochs = hist.dropna(subset=["epoch"]) if "epoch" in hist else hist.iloc[:0]
    if not job.done:
        c = st.columns([3, 1])
        last_row = hist.iloc[-1] if len(hist) else None
        part = "" if last_row is None or pd.isna(last_row.get("part", np.nan)) else f"{last_row['part']}: "
        if len(epochs) and last_row is not None and not pd.isna(last_row.get("epoch", np.nan)):
            last = epochs.iloc[-1]
            c[0].progress(min(1.0, last["step"] / last["total"]),
                          text=f"{part}epoch {int(last['epoch'])} of {int(last['total'])} · val MAE "
                               f"{last['val_mae']:.4f} (best {last['best_val_mae']:.4f}) · {job.elapsed:.0f} s")
        else:
            stage = last_row.get("stage") if last_row is not None else None
            c[0].progress(0.0, text=f"{part}{stage if isinstance(stage, str) else 'fitting'}… {job.elapsed:.0f} s")
        if c[1].button("Stop", disabled=job.stopping, key="train_stop"):
            job.stop()
    if len(epochs):
        # two quantities, two scales: the training loss (of the standardized targets) on the
        # left, the validation MAE (training sd units) on the right; whole epochs only
        fig = go.Figure()
        fig.add_scatter(x=epochs["epoch"], y=epochs["train_loss"], name="training loss", mode="lines+markers")
        fig.add_scatter(x=epochs["epoch"], y=epochs["val_mae"], name="validation MAE", mode="lines+markers",
                        yaxis="y2")
        fig.update_layout(height=320, margin=dict(t=10), legend=dict(orientation="h", y=1.12),
                          xaxis=dict(title="epoch", tickmode="linear", tick0=1, dtick=max(1, len(epochs) // 10),
                                     tickformat="d"),
                          yaxis=dict(title="training loss (standardized targets)"),
                          yaxis2=dict(title="validation MAE (training sd units)", overlaying="y", side="right"))
        st.plotly_chart(fig, key="train_curve")
    if job.done:
        if job.error:
            st.error(job.error)
        else:
            test = job.run.metrics.get("test", {})
            st.success(f"Run {job.name} ({job.run.family}) trained in {job.elapsed:.1f} s and saved to "
                       f"{default_runs_dir() / job.name}"
                       + (f"; test MAE {test['mean_mae']:.4f}" if "mean_mae" in test else ""))
        if shown_busy:  # it ended since the page was drawn: draw it again with the run, Train enabled
            collect_job()
            st.rerun()


st.fragment(progress_panel, run_every=0.7 if busy else None)(busy)

if runs():
    st.subheader("Your runs")
    st.dataframe(for_display(runs_table(runs())), hide_index=True)
