"""dgex dashboard entry point: ``streamlit run app.py``.

Opens on the built-in synthetic demo with nothing to configure. The full multipage
dashboard (data, train, errors, coefficients, predict) lands with the dashboard
issue; this first page shows the demo compendium the library builds.
"""

from __future__ import annotations

import numpy as np
import plotly.express as px
import streamlit as st

from dgex_core.demo import DemoConfig, load_demo

st.set_page_config(page_title="dgex", page_icon="🧬", layout="wide")


@st.cache_resource(show_spinner="Building the demo compendium (first time only, a few seconds)...")
def demo(n_samples: int, n_targets: int, seed: int):
    return load_demo(DemoConfig(n_samples=n_samples, n_targets=n_targets, seed=seed))


st.title("dgex: the whole transcriptome from ~1,000 landmark genes")
st.caption(
    "Built-in demo: a **synthetic** compendium that looks like log2 microarray data, with a known noise floor "
    "for every target gene. Nothing here is measured data."
)
data = demo(DemoConfig.n_samples, DemoConfig.n_targets, DemoConfig.seed)
meta = data.target_meta
c1, c2, c3, c4 = st.columns(4)
c1.metric("Samples", f"{data.matrix.n_samples:,}")
c2.metric("Landmarks (inputs)", f"{len(data.landmark_ids):,}")
c3.metric("Targets (outputs)", f"{len(data.target_ids):,}")
c4.metric("Non-linear targets", f"{int(meta['nonlinear'].sum()):,}")

left, right = st.columns(2)
rng = np.random.default_rng(0)
rows = rng.choice(data.matrix.n_samples, size=min(300, data.matrix.n_samples), replace=False)
with left:
    st.subheader("Value distribution")
    sample = data.matrix.values[rows].ravel()
    st.plotly_chart(px.histogram(x=sample, nbins=80, labels={"x": "log2 expression"}), use_container_width=True)
with right:
    st.subheader("Noise floor per target")
    st.plotly_chart(
        px.histogram(meta, x="noise_floor_mae", color="kind", nbins=60,
                     labels={"noise_floor_mae": "irreducible MAE (log2 units)"},
                     hover_data=["symbol"]),
        use_container_width=True,
    )
st.subheader("Samples by tissue")
st.dataframe(data.matrix.sample_meta["tissue"].value_counts().rename("samples"), use_container_width=False)
