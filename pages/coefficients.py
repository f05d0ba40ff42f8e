"""Coefficients: the landmark -> target weights of linear runs."""

from __future__ import annotations

import numpy as np
import plotly.express as px
import streamlit as st

from dgex_core.attribution import strongest, top_weights
from dgex_core.genes import gene_label, symbols
from pages._common import gene_meta, runs

ss = st.session_state
st.title("Coefficients")
linear = [n for n, r in runs().items() if hasattr(r.model, "coefficients")]
if not linear:
    st.info("No linear run yet: train a linear regression (or load one) on the Train page.")
    st.stop()

c = st.columns(3)
name = c[0].selectbox("Linear run", linear, index=len(linear) - 1, key="coef_run")
units = c[1].radio("Units", ["standardized", "original"], horizontal=True, key="coef_units",
                   help="standardized: change in a target's z-score per unit z-score of a landmark")
n_top = c[2].slider("Heatmap size (strongest landmarks x targets)", 10, 100, 40, 5, key="coef_n")


@st.cache_resource(show_spinner="Reading the weights...", max_entries=4)
def coefficients(name: str, units: str, path: str | None):
    return runs()[name].model.coefficients(units)


run = runs()[name]
coef = coefficients(name, units, str(run.path))
sym = symbols(gene_meta())
lm_sym = symbols(ss["dataset"].landmark_meta)


def label(g: str, names=sym) -> str:
    return gene_label(g, names)


st.subheader("The strongest weights, clustered")
hm = top_weights(coef, n_top, n_top)
lim = float(abs(hm.to_numpy()).max()) or 1.0
fig = px.imshow(hm, color_continuous_scale="RdBu_r", zmin=-lim, zmax=lim, aspect="auto",
                labels={"x": "target", "y": "landmark", "color": "weight"})
hover = np.array([[f"{label(t)} <- {label(g, lm_sym)}" for t in hm.columns] for g in hm.index])
fig.update_traces(customdata=hover, hovertemplate="%{customdata}<br>weight %{z:.3f}<extra></extra>")
fig.update_layout(height=620, margin=dict(t=10))
st.plotly_chart(fig, key="coef_heatmap")
st.caption("Rows and columns ordered by average-linkage hierarchical clustering (correlation distance).")

left, right = st.columns(2)
with left:
    st.subheader("Landmarks behind a target")
    target = st.selectbox("Target", coef.columns.tolist(), key="coef_target", format_func=label)
    top = strongest(coef, target=target, n=20)
    fig = px.bar(top, x="weight", y="landmark", orientation="h")
    fig.update_layout(height=460, margin=dict(t=10), yaxis=dict(autorange="reversed"))
    st.plotly_chart(fig, key="coef_target_bar")
with right:
    st.subheader("Targets a landmark drives")
    landmarks = [g for g in coef.index if g != "(intercept)"]
    lm = st.selectbox("Landmark", landmarks, key="coef_landmark", format_func=lambda g: label(g, lm_sym))
    top = strongest(coef, landmark=lm, n=20)
    top["symbol"] = top["target"].map(label)
    fig = px.bar(top, x="weight", y="target", orientation="h", hover_data=["symbol"])
    fig.update_layout(height=460, margin=dict(t=10), yaxis=dict(autorange="reversed"))
    st.plotly_chart(fig, key="coef_landmark_bar")

st.download_button(f"Download the coefficient table (CSV, {coef.shape[0]:,} x {coef.shape[1]:,})",
                   data=lambda: coef.to_csv().encode(), file_name=f"{name}_coefficients_{units}.csv",
                   mime="text/csv", key="coef_download")
