"""Data: choose the dataset (built-in demo, an upload, a path on the server) and its
landmark list; see shape, landmark coverage, values and samples; choose the split."""

from __future__ import annotations

from pathlib import Path

import plotly.express as px
import streamlit as st

from dgex_core.dataset import Dataset, sample_values
from dgex_core.errors import DgexError
from dgex_core.io import TABLE_FORMATS, sniff
from dgex_core.io.sheets import read_sample_sheet, sheet_for_samples
from dgex_core.landmarks import id_mismatch, match_landmarks
from dgex_core.preprocess import AS_GIVEN, NORMALIZATIONS
from pages._common import (
    current_demo,
    current_demo_dataset,
    kept,
    landmarks_at,
    lazy_matrix_at,
    plain_message,
    platforms_of,
    remember,
    scale_problem_of,
    uploaded_file,
)

ss = st.session_state
st.title("Data")
st.caption("Pick the expression compendium to learn from and the landmark genes that are the model's inputs.")

FORMATS = ["gct", "gctx", "csv", "tsv", "txt", "parquet", "h5ad", "gz", "h5"]
#: How unlogged values are brought to a log scale (dgex_core.preprocess.NORMALIZATIONS)
SCALES = {"log2cpm": "counts: log2(counts per million + 1)", "log2": "TPM, FPKM or intensities: log2(x + 1)",
          "none": "already right: use them as they are"}


def file_source(label: str, key: str, types: list[str] | None) -> Path | None:
    """An uploaded file (saved to this session's folder) or a server path; None until given."""
    remember(f"{key}_how", f"{key}_path")  # kept when the user visits another page and comes back
    how = st.radio(f"{label} from", ["Upload", "Path on the server"], horizontal=True, **kept(f"{key}_how"))
    if how == "Upload":
        return uploaded_file(label, f"{key}_upload", types)
    text = st.text_input(f"{label}: path on the server", **kept(f"{key}_path"))
    if not text:
        return None
    p = Path(text).expanduser()
    if not p.is_file():
        st.error(f"{p}: no such file")
        return None
    return p


source = st.radio("Dataset", ["Built-in demo", "A file"], index=0 if ss.get("is_demo", True) else 1,
                  horizontal=True, key="data_source")

dataset, label, key = None, None, None
if source == "Built-in demo":
    demo = current_demo()
    st.info("A **synthetic** compendium that looks like log2 microarray data, with a known noise floor per "
            "target gene; its own 978 landmarks are the inputs.")
    st.code(demo.describe(), language=None)
    dataset = current_demo_dataset()
    cfg = demo.config
    label, key = f"demo-{cfg.n_samples}x{cfg.n_targets}", f"demo:{cfg.key()}"
else:
    data_path = file_source("Expression file (GCT, GCTX, CSV/TSV, Parquet, h5ad, GEO)", "data_file", None)
    matrix, platform = None, None
    if data_path is not None:
        try:
            if sniff(data_path) == "geo_soft":  # a series may span platforms: the user picks one
                counts = platforms_of(str(data_path), Path(data_path).stat().st_mtime)
                if len(counts) > 1:
                    if ss.get("_kept_data_platform") not in counts:  # kept for another file
                        ss.pop("_kept_data_platform", None)
                        ss.pop("data_platform", None)
                    remember("data_platform")
                    platform = st.selectbox("Platform", list(counts), **kept("data_platform"),
                                            format_func=lambda p: f"{p} ({counts[p]:,} samples)")
            matrix = lazy_matrix_at(data_path, platform=platform)
        except DgexError as e:
            st.error(plain_message(e, data_path))
    lm_path = file_source("Landmark list (an L1000 GCT/GCTX, a LINCS gene-info file, one id per line)",
                          "landmark_file", None)
    if matrix is not None and lm_path is not None:
        try:
            landmarks = landmarks_at(lm_path)
            ids = landmarks.all_ids()
            table = sniff(data_path) in TABLE_FORMATS
            cov = match_landmarks(landmarks, matrix.gene_ids, matrix.gene_meta)
            if table and cov.missing:  # the landmark ids decide a table's orientation, as in every command
                matrix = lazy_matrix_at(data_path, ids, platform)
                cov = match_landmarks(landmarks, matrix.gene_ids, matrix.gene_meta)
            else:
                ids = None  # the table as first opened
        except DgexError as e:
            st.error(plain_message(e, lm_path))
            st.stop()
        for note in landmarks.notes:
            st.caption(f"Landmark list: {note}.")
        st.subheader("Landmark coverage")
        if cov.n_present == 0:  # nothing to proceed with: say why, not "proceed with the 0 present"
            st.error(f"None of the {cov.n_requested} landmarks of {Path(lm_path).name} is in "
                     f"{Path(data_path).name}: "
                     + id_mismatch(landmarks.ids(), matrix.gene_ids, "the list's landmarks", "the file's genes")
                     + ". Choose a landmark list with the file's kind of ids (for GPL96 arrays: the L1000 plate's "
                       "probes), or a file of the list's platform.")
            st.stop()
        st.write(cov.summary())
        problem = scale_problem_of(str(data_path), Path(data_path).stat().st_mtime,
                                   tuple(sorted(ids)) if table and ids else None, platform)
        if problem:
            st.warning(f"{Path(data_path).name}: {problem}. A model of log2 expression trained on them is "
                       "silently wrong: choose how to log them (recorded in the run and applied when it predicts).")
            remember("data_normalize")
            how = st.radio("The values are", list(SCALES), index=None, format_func=SCALES.get,
                           **kept("data_normalize"))
            if how is None:
                st.stop()
            if how == "none":
                matrix = matrix.with_recorded(AS_GIVEN)  # the run then expects such values when it predicts
            else:
                fn, label_ = NORMALIZATIONS[how]
                matrix = matrix.with_row_transform(fn, label_)
        sheet_path = file_source("Sample sheet (optional: sample id, then columns such as tissue, batch, series; "
                                 "to keep groups apart in the split and colour the plots)", "sheet_file", None)
        if sheet_path is not None:
            try:
                rows, note = sheet_for_samples(read_sample_sheet(sheet_path), matrix.sample_ids,
                                               Path(sheet_path).name)
                matrix = matrix.with_sample_meta(rows)
                st.caption(f"Sample sheet {Path(sheet_path).name}: {', '.join(map(str, rows.columns[:8]))}"
                           + (f". {note}." if note else "."))
            except DgexError as e:
                st.error(plain_message(e, sheet_path))
                sheet_path = None
        allow = False
        if cov.missing:
            with st.expander(f"{len(cov.missing)} missing landmarks"):
                st.dataframe({"missing landmark": cov.missing}, hide_index=True)
            allow = st.checkbox(f"Proceed with the {cov.n_present} present landmarks", key="allow_missing")
            if not allow:
                st.warning("Some landmarks are missing: tick the box to proceed with the present ones.")
        if not cov.missing or allow:
            try:
                dataset = Dataset.from_matrix(matrix, landmarks, allow_missing=allow)
            except DgexError as e:
                st.error(plain_message(e, data_path))
            label = Path(data_path).name + (f" ({platform})" if platform else "")
            key = f"file:{data_path}:{platform}:{lm_path}:{allow}:{ss.get('data_normalize')}:{sheet_path}"
    elif matrix is not None:
        st.caption(f"{matrix.n_samples:,} samples x {matrix.n_genes:,} genes read; now the landmark list.")
    elif data_path is None:
        st.caption("Upload a file or give a path to continue.")

if dataset is None:
    if ss.get("is_demo", True):
        st.stop()
    dataset, label, key = ss["dataset"], ss["dataset_label"], ss["dataset_key"]  # the file in use

if ss.get("dataset_key") != key:
    if st.button(f"Use {label}", type="primary", key="use_dataset"):
        ss["dataset"], ss["dataset_label"], ss["dataset_key"] = dataset, label, key
        ss["is_demo"] = source == "Built-in demo"
        g = ss["split_args"].get("group_by")
        if g is not None and g not in dataset.sample_meta:
            ss["split_args"] = {**ss["split_args"], "group_by": None}
        st.rerun()
    st.caption("Not the current dataset yet.")
else:
    st.success(f"Current dataset: {label}")
    if not ss.get("runs"):
        st.info("**Next steps.** 1. **Train**: linear regression first (the LINCS baseline, seconds), then the "
                "D-GEX network. 2. **Errors**: the two compared gene by gene, against the noise floor on the demo. "
                "3. **Coefficients** and **Interpret**: which landmarks drive a target. 4. **Predict**: apply a "
                "run to landmark-only profiles, such as an L1000 plate, and download the result.")

c = st.columns(4)
c[0].metric("Samples", f"{dataset.n_samples:,}")
c[1].metric("Landmarks (inputs)", f"{dataset.n_landmarks:,}")
c[2].metric("Targets (outputs)", f"{dataset.n_targets:,}")
cov = dataset.coverage
c[3].metric("Landmark coverage", "n/a" if cov is None else f"{cov.n_present} of {cov.n_requested}")

left, right = st.columns(2)
with left:
    st.subheader("Value distribution")
    fig = px.histogram(x=sample_values(dataset), nbins=80, labels={"x": "expression"})
    fig.update_layout(yaxis_title="values", height=320, margin=dict(t=10))
    st.plotly_chart(fig, key="value_hist")
with right:
    st.subheader("Sample metadata")
    meta = dataset.sample_meta
    if meta.shape[1]:
        st.dataframe(meta.head(500), height=320)
    else:
        st.caption("This file has no sample metadata.")

st.subheader("Split")
st.caption("Train / validation / test, made before anything is fitted; settings are chosen on validation, "
           "the test samples are scored once.")
sa = ss["split_args"]
columns = [None, *[c for c in dataset.sample_meta.columns if dataset.sample_meta[c].nunique() < dataset.n_samples]]
s = st.columns(4)
val = s[0].number_input("Validation fraction", 0.0, 0.5, float(sa["val"]), 0.05, key="split_val")
test = s[1].number_input("Test fraction", 0.01, 0.5, float(sa["test"]), 0.05, key="split_test")
seed = s[2].number_input("Seed", 0, 2**31 - 1, int(sa["seed"]), key="split_seed")
gb = sa.get("group_by")
group_by = s[3].selectbox("Keep groups together", columns, index=columns.index(gb) if gb in columns else 0,
                          format_func=lambda c: "(no grouping)" if c is None else c, key="split_group")
ss["split_args"] = {"val": float(val), "test": float(test), "seed": int(seed), "group_by": group_by}
n_test, n_val = round(test * dataset.n_samples), round(val * dataset.n_samples)
st.caption(f"About {dataset.n_samples - n_test - n_val:,} train, {n_val:,} validation, {n_test:,} test samples"
           + (f", whole '{group_by}' groups on one side" if group_by else ""))
