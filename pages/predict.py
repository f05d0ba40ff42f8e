"""Predict: apply a run to landmark-only profiles (e.g. an L1000 plate); download the result."""

from __future__ import annotations

from pathlib import Path

import plotly.express as px
import streamlit as st

from dgex_core.errors import DgexError
from dgex_core.prediction import missing_landmarks_message, predict_preview, predictions_file
from pages._common import kept, matrix_at, plain_message, remember, runs, session_dir, uploaded_file

ss = st.session_state
st.title("Predict")
st.caption("Infer every target of a run from measured landmarks, like the LINCS level-3 'INF' files.")
if not runs():
    st.info("No runs yet: train or load one on the Train page.")
    st.stop()

remember("pred_run", "pred_how", "pred_path", "pred_clip", "pred_format")
if ss.get("pred_run") not in runs():
    ss["pred_run"] = list(runs())[-1]
ss.setdefault("pred_clip", True)
name = st.selectbox("Run", list(runs()), **kept("pred_run"))
run = runs()[name]
how = st.radio("Profiles from", ["Upload", "Path on the server"], horizontal=True, **kept("pred_how"))
path = None
if how == "Upload":
    path = uploaded_file("Landmark profiles (GCT, GCTX, CSV/TSV, Parquet, h5ad)", "pred_upload")
else:
    text = st.text_input("Path on the server", **kept("pred_path"))
    if text:
        path = Path(text).expanduser()
        if not path.is_file():
            st.error(f"{path}: no such file")
            path = None
if path is None:
    st.stop()

clip = st.checkbox("Clip inferred values to the training range", **kept("pred_clip"),
                   help="A model shown profiles unlike its training data can infer values far outside anything "
                        "measured; LINCS clips its inferred values too. Each sample's n_clipped column counts them.")
try:
    matrix = matrix_at(path)
    preview = predict_preview(run, matrix, clip=clip)
except DgexError as e:
    st.error(plain_message(e, path))
    st.stop()

c = st.columns(3)
c[0].metric("Samples", f"{preview.n_samples:,}")
c[1].metric("Run's landmarks present", f"{preview.n_present} of {preview.n_needed}")
if preview.missing:
    st.error(f"{Path(path).name}: " + missing_landmarks_message(run, preview.missing, matrix.gene_ids)
             .replace("--landmarks PLATE", "the plate as the landmark list on the Data page"))
    st.stop()
if preview.ood is not None:
    n_flag = int(preview.ood["ood_flag"].sum())
    c[2].metric("Out of distribution", f"{n_flag} of {preview.n_samples}")
    if n_flag:
        st.warning(f"{n_flag} samples lie further from the training data than 99% of held-out samples: "
                   "their inferred values deserve less trust.")
    fig = px.histogram(preview.ood.reset_index(names="sample"), x="ood_score", color="ood_flag", nbins=50,
                       hover_data=["sample"],
                       labels={"ood_score": "out-of-distribution score (above 1: further out than 99% of held-out "
                                            "samples)", "ood_flag": "flagged"})
    fig.update_layout(yaxis_title="samples")
    fig.add_vline(x=1.0, line_dash="dash", line_color="grey")
    fig.update_layout(height=300, margin=dict(t=10))
    st.plotly_chart(fig, key="pred_ood")
if preview.clip_range is not None:
    n_vals, n_samp = int(preview.n_clipped.sum()), int((preview.n_clipped > 0).sum())
    lo, hi = preview.clip_range
    st.caption(f"Inferred values clipped to the training range {lo:.2f} to {hi:.2f}: {n_vals:,} values in "
               f"{n_samp} of {preview.n_samples} samples (counted per sample in the file's n_clipped column).")
elif clip:
    st.caption("This run does not record its training range (it was trained by an older dgex): values are "
               "not clipped. Train it again to get one.")
st.subheader("Preview (first samples, first inferred genes)")
st.dataframe(preview.preview)

fmt = st.selectbox("Format", ["csv", "parquet", "gct", "gctx"], **kept("pred_format"))
if st.button("Build the predictions file", type="primary", key="pred_build"):
    try:
        with st.spinner("Predicting..."):
            out = predictions_file(run, matrix, session_dir() / "downloads", fmt, clip=clip)
        ss["pred_file"] = {"name": out.name, "data": out.read_bytes(), "key": (name, str(path), fmt, clip)}
    except DgexError as e:
        st.error(plain_message(e, path))
built = ss.get("pred_file")
if built is not None and built["key"] == (name, str(path), fmt, clip):
    st.download_button(f"Download {built['name']} ({len(built['data']) / 1e6:.1f} MB)", data=built["data"],
                       file_name=built["name"], key="pred_download")
