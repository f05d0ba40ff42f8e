"""dgex dashboard entry point: ``streamlit run app.py``.

Page navigation and the shared sidebar (current dataset, the user's training and runs);
nothing else. A reload or a second tab comes back to the same user (``pages/_common.py``).
The pages live in ``pages/``; every computation in ``dgex_core``.
Opens on the built-in synthetic demo (size from ``$DGEX_DEMO_SIZE``, e.g. ``1500x200``).
"""

from __future__ import annotations

import streamlit as st

from pages._common import (
    current_job,
    init_state,
    remember_place,
    remember_user_in_browser,
    runs,
)

st.set_page_config(page_title="dgex", page_icon=":material/genetics:", layout="wide")
init_state()

with st.sidebar:
    ds = st.session_state["dataset"]
    st.markdown(f"**Dataset:** {st.session_state['dataset_label']}")
    st.caption(f"{ds.n_samples:,} samples · {ds.n_landmarks:,} landmarks · {ds.n_targets:,} targets")
    job = current_job()
    if job is not None and not job.done:
        st.caption(f"Training **{job.name}**…")
    st.markdown("**Your runs**")
    if runs():
        for name, run in runs().items():
            mae = run.metrics.get("test", {}).get("mean_mae")
            st.caption(f"{name} ({run.family})" + (f" · test MAE {mae:.3f}" if mae is not None else ""))
    else:
        st.caption("none yet: train or load one on the Train page")
    remember_user_in_browser()

nav = st.navigation([
    st.Page("pages/data.py", title="Data", icon=":material/dataset:", default=True),
    st.Page("pages/train.py", title="Train", icon=":material/model_training:"),
    st.Page("pages/errors.py", title="Errors", icon=":material/bar_chart:"),
    st.Page("pages/coefficients.py", title="Coefficients", icon=":material/grid_on:"),
    st.Page("pages/interpret.py", title="Interpret", icon=":material/psychology:"),
    st.Page("pages/predict.py", title="Predict", icon=":material/output:"),
])

nav.run()
remember_place()
