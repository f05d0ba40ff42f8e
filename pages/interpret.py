"""Interpret: which landmarks drive each target in the network, beside the linear weights;
per sample group; and the targets a landmark drives in each model."""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.express as px
import streamlit as st

from dgex_core import attribution
from dgex_core.attribution import SAMPLE_SETS
from dgex_core.attribution.runs import explain_runs, explainable, target_attributions
from dgex_core.errors import DgexError
from dgex_core.genes import gene_label, symbols
from dgex_core.store import run_fingerprint
from pages._common import current_demo, gene_meta, runs

ss = st.session_state
st.title("Interpret")
st.caption("Attributions in standardized units, like linear weights: the change in a target's z-score per unit "
           "z-score of a landmark. For the network, the **mean input gradient** is its local linear weights averaged "
           "over the chosen samples (for a linear model it is exactly its coefficients); **mean |integrated "
           "gradients|** (against the training mean) ranks landmarks by how much of each sample's prediction they "
           "account for.")

nets = [n for n, r in runs().items() if explainable(r)]
lins = [n for n, r in runs().items() if hasattr(r.model, "coef_")]
if not nets:
    st.info("No network run yet: train a D-GEX network (and a linear regression to compare with) on the Train "
            "page, or load saved runs there.")
    st.stop()

METHODS = {"gradient": "mean gradient", "integrated_gradients": "mean |integrated gradients| (slower)"}
c = st.columns(4)
net_name = c[0].selectbox("Network (or per-gene choice) run", nets, index=len(nets) - 1, key="int_net")
lin_name = c[1].selectbox("Compare with (linear run)", [None, *lins], index=len(lins),
                          format_func=lambda n: "(no linear run)" if n is None else n, key="int_lin")
which = c[2].selectbox("Explained on", list(SAMPLE_SETS), format_func=SAMPLE_SETS.get,
                       key="int_samples")
method = c[3].radio("Attribution", list(METHODS), format_func=METHODS.get, key="int_method")
k = st.slider("k (top landmarks compared per target)", 5, 50, 20, 5, key="int_k")

net, lin = runs()[net_name], runs().get(lin_name)
sym = symbols(gene_meta())
lm_sym = symbols(ss["dataset"].landmark_meta)
names = {"network": net_name, **({"linear": lin_name} if lin is not None else {})}


def label(g: str, names=sym) -> str:
    return gene_label(g, names)


def bars(long: pd.DataFrame, axis: str, value: str):
    """Each model's values as horizontal bars, side by side on one shared ``axis`` (landmark or
    target) in the table's order; true drivers in red where known."""
    fig = px.bar(long, x="value", y="label", color="true_driver" if "true_driver" in long else None,
                 facet_col="model", orientation="h", hover_data=[axis, "rank"], labels={"value": value, "label": axis},
                 category_orders={"label": long["label"].drop_duplicates().tolist(),
                                  "model": long["model"].drop_duplicates().tolist()},
                 color_discrete_map={True: "#d62728", False: "#7f7f7f"})
    fig.update_layout(height=max(320, 22 * long["label"].nunique() + 80), margin=dict(t=30))
    fig.for_each_annotation(lambda a: a.update(text=f"{a.text.split('=')[-1]}: {names[a.text.split('=')[-1]]}"))
    return fig


# ------------------------------------------------------------- attributions
# Computed once per (runs, dataset, samples, ...) and shared by the sessions that ask for
# the same thing; a bounded number of entries is kept. Runs and datasets are identified by
# fingerprint and key (the leading-underscore arguments are not hashed).
@st.cache_resource(max_entries=4, show_spinner=False)
def explained(net_id: str, lin_id: str | None, dataset_key: str, which: str, _net, _lin, _data):
    bar = st.progress(0.0, text="Attributions of every target (mean gradient)...")
    try:
        return explain_runs(_net, _lin, _data, which, progress=lambda done, total: bar.progress(
            done / total, text=f"Mean gradient: {done:,} of {total:,} sample passes"))
    except DgexError as e:
        return str(e)
    finally:
        bar.empty()


@st.cache_resource(max_entries=16, show_spinner=False)
def agreement_of(key: tuple, k: int, with_truth: bool, _attrs, _truth, _meta):
    return attribution.agreement_table(_attrs, k, truth=_truth, target_meta=_meta)


@st.cache_resource(max_entries=32, show_spinner=False)
def one_target(key: tuple, target: str, method: str, _models, _X, _landmarks):
    return target_attributions(_models, _X, target, method, _landmarks)


@st.cache_resource(max_entries=8, show_spinner=False)
def context_of(key: tuple, group_by: str, min_size: int, _model, _X, _labels):
    bar = st.progress(0.0, text="Context dependence of every target...")
    try:
        return attribution.context_dependence_scores(
            _model, _X, _labels, "gradient", min_size=min_size,
            progress=lambda done, total: bar.progress(done / total, text=f"Context dependence: {done:,} of "
                                                                          f"{total:,} targets"))
    finally:
        bar.empty()


@st.cache_resource(max_entries=32, show_spinner=False)
def groups_of(key: tuple, group_by: str, min_size: int, target: str, method: str, _model, _X, _labels):
    kw = {"statistic": "mean_abs"} if method == "integrated_gradients" else {}
    return attribution.group_attributions(_model, _X, _labels, method, [target], min_size=min_size, **kw)


key = (run_fingerprint(net), None if lin is None else run_fingerprint(lin), ss["dataset_key"], which)
got = explained(*key, net, lin, ss["dataset"])
if isinstance(got, str):
    st.error(got)
    st.stop()
X, meta, attrs, fast = got.X, got.meta, got.attrs, got.closed_form
A_net = attrs["network"]

truth = None
if ss.get("is_demo") and net.config.get("dataset", {}).get("name") == ss.get("dataset_label"):
    demo = current_demo()
    truth = pd.DataFrame(demo.driver_matrix, index=demo.landmark_ids, columns=demo.target_ids)
st.caption(f"Explained on {len(X):,} samples: {SAMPLE_SETS[which]} ({A_net.shape[0]:,} landmarks x "
           f"{A_net.shape[1]:,} targets)" + (f"; network {net_name} against linear {lin_name}" if lin else "")
           + ("; true drivers known (demo), marked *" if truth is not None else ""))
if X.attrs.get("n_incomplete"):
    st.caption(f"{X.attrs['n_incomplete']:,} samples with missing landmark values are left out.")
if not fast:
    st.caption("This network has more than two hidden layers, so its mean gradient has no closed form (one backward "
               "pass per target and sample): it is explained on a random subset of at most 200 samples.")

# ---------------------------------------------------------------- agreement
agree = None
if lin is not None:
    st.subheader("Does the network read the landmarks like the linear model?")
    agree = agreement_of(key, k, truth is not None, attrs, truth, gene_meta())
    m = st.columns(5 if truth is not None else 2)
    m[0].metric("Median Spearman r over targets", f"{agree['spearman'].median():.3f}")
    m[1].metric(f"Median top-{agree.attrs['k']} overlap", f"{agree['top_k_overlap'].median():.1%}")
    if truth is not None:
        m[2].metric(f"Network: precision at {agree.attrs['k']}", f"{agree['precision_at_k_network'].mean():.3f}",
                    help="share of a target's top-k landmarks that truly drive it, mean over targets")
        m[3].metric(f"Linear: precision at {agree.attrs['k']}", f"{agree['precision_at_k_linear'].mean():.3f}")
        m[4].metric("Random ranking", f"{agree['precision_at_k_random'].mean():.3f}")
    color = "kind" if "kind" in agree else None
    fig = px.histogram(agree.reset_index(), x="spearman", color=color, nbins=60, barmode="overlay", opacity=0.6,
                       hover_data=["target"], labels={"spearman": "Spearman r of network gradient vs linear weight"})
    fig.update_layout(height=300, margin=dict(t=10))
    st.plotly_chart(fig, key="int_agree_hist")
    st.caption("Per target, the rank correlation of the two models' landmark weights (mean gradient vs "
               "coefficients). Low values mark targets the network reads differently, often the non-linear ones.")

# ----------------------------------------------------------------- a target
st.subheader("Landmarks behind a target")
c = st.columns([3, 1])
target = c[0].selectbox("Target", A_net.columns.tolist(), key="int_target", format_func=label)
n_show = c[1].slider("Landmarks shown", 5, 50, 15, key="int_n")
if method == "gradient":
    per_target = {m: A[target] for m, A in attrs.items()}
else:
    with st.spinner(f"Integrated gradients of {target} over {len(X):,} samples..."):
        per_target = one_target(key, target, method, {m: runs()[names[m]].model for m in attrs}, X, A_net.index)
t_truth = None if truth is None or target not in truth.columns else truth[target]
long = attribution.side_by_side(per_target, n_show, symbols=lm_sym, truth=t_truth)
if len(per_target) == 2:
    one = attribution.agreement(pd.DataFrame({target: per_target["network"]}), pd.DataFrame({target: per_target["linear"]}),
                            k=min(k, len(A_net))).iloc[0]
    m = st.columns(4)
    m[0].metric("Spearman r, network vs linear", f"{one['spearman']:.3f}")
    m[1].metric(f"Shared top-{k} landmarks", f"{round(one['top_k_overlap'] * k)} of {k}")
    if t_truth is not None:
        for i, mod in enumerate(per_target):
            top = per_target[mod].abs().sort_values(ascending=False, kind="stable").index[:k]
            m[2 + i].metric(f"True drivers in the {mod}'s top {k}", f"{int(t_truth.reindex(top, fill_value=False).sum())}")
st.plotly_chart(bars(long, "landmark", METHODS[method]), key="int_target_bars")
st.caption("The same landmark axis for both models: each model's strongest landmarks, strongest first"
           + ("; * and red: the demo's true drivers of this target" if t_truth is not None else "") + ".")

# ------------------------------------------------------------------ groups
st.subheader("Attributions per group of samples")
fields = attribution.groupable_columns(meta)
group_by, by = None, None
if not fields:
    st.caption("The explained samples have no metadata column with a few groups (tissue, batch, cluster...).")
else:
    c = st.columns(2)
    group_by = c[0].selectbox("Group the samples by", fields, index=fields.index("tissue") if "tissue" in fields else 0,
                              key="int_group")
    min_size = c[1].number_input("Smallest group (samples)", 2, 1000, 10, key="int_min_group")
    labels = meta[group_by].astype(str).where(meta[group_by].notna())
    try:
        ctx = context_of(key, group_by, int(min_size), net.model, X, labels)
        by = groups_of(key, group_by, int(min_size), target, method, net.model, X, labels)
    except DgexError as e:
        st.error(f"{e}: lower the smallest group size or choose another field")
        by = None
    if by is not None:
        score = float(ctx.get(target, np.nan))
        pct = float((ctx < score).mean()) if np.isfinite(score) else np.nan
        m = st.columns(3)
        m[0].metric(f"Groups with at least {int(min_size)} samples", f"{len(by)}")
        m[1].metric(f"Context dependence of {target}", f"{score:.3f}",
                    help="size-weighted RMS change of the target's gradient vector from group to group, relative "
                         "to its norm: 0 when every group is read the same way (any linear model)")
        m[2].metric("Percentile among targets", "n/a" if not np.isfinite(pct) else f"{pct:.0%}")
        rows = attribution.side_by_side({"network": per_target["network"]}, n_show)["landmark"]
        gm = attribution.group_matrix(by, target, pd.Index(rows))
        gm.index = [label(g, lm_sym) for g in gm.index]
        lim = float(np.nanmax(np.abs(gm.to_numpy()))) or 1.0
        fig = px.imshow(gm, color_continuous_scale="RdBu_r", zmin=-lim if method == "gradient" else 0, zmax=lim,
                        aspect="auto", labels={"x": group_by, "y": "landmark", "color": METHODS[method]})
        fig.update_layout(height=max(320, 22 * len(gm) + 120), margin=dict(t=10))
        left, right = st.columns([3, 2])
        left.plotly_chart(fig, key="int_group_heat")
        left.caption(f"The network's attributions of {label(target)} within each {group_by} (rows: its strongest "
                     "landmarks overall). A linear model has the same weights in every group.")
        cd = ctx.to_frame()
        tmeta = gene_meta()
        if tmeta is not None and "kind" in tmeta:
            cd["kind"] = tmeta["kind"].reindex(cd.index).to_numpy()
        fig = px.histogram(cd.reset_index(names="target"), x="context_dependence", color="kind" if "kind" in cd else None,
                           nbins=50, barmode="overlay", opacity=0.6, hover_data=["target"])
        if np.isfinite(score):
            fig.add_vline(x=score, line_dash="dash", line_color="black")
        fig.update_layout(height=300, margin=dict(t=10))
        right.plotly_chart(fig, key="int_ctx_hist")
        right.caption(f"Context dependence of every target across {group_by} (mean gradient; the dashed line is "
                      f"{target}). The most context-dependent targets:")
        top = cd.sort_values("context_dependence", ascending=False).head(10)
        top.insert(0, "symbol", [sym.get(t, "") if sym is not None else "" for t in top.index])
        right.dataframe(top, height=240)

# ----------------------------------------------------------------- landmark
st.subheader("Targets a landmark drives")
lm = st.selectbox("Landmark", A_net.index.tolist(), key="int_landmark", format_func=lambda g: label(g, lm_sym))
lt = attribution.landmark_targets(attrs, lm, n_show, symbols=sym, truth=truth)
st.plotly_chart(bars(lt, "target", "mean gradient"), key="int_landmark_bars")

# ----------------------------------------------------------------- downloads
st.subheader("Downloads")
groups = None if not group_by or by is None else {g: f[target] for g, f in by.items()}
table = attribution.target_table(per_target, groups=groups, group_field=group_by or "group", symbols=lm_sym,
                             truth=t_truth)
d = st.columns(3)
d[0].download_button(f"{target}: every landmark, both models and groups (CSV)", data=table.to_csv().encode(),
                     file_name=f"{net_name}_{target}_{method}.csv", mime="text/csv", key="int_dl_target")
d[1].download_button(f"Network attributions, {A_net.shape[0]:,} x {A_net.shape[1]:,} (CSV)",
                     data=lambda: A_net.to_csv().encode(), file_name=f"{net_name}_mean_gradient.csv",
                     mime="text/csv", key="int_dl_matrix")
if agree is not None:
    out = agree if not group_by or by is None else agree.assign(context_dependence=ctx.reindex(agree.index).to_numpy())
    d[2].download_button(f"Per-target agreement{' and context dependence' if group_by else ''} (CSV)",
                         data=lambda: out.to_csv().encode(), file_name=f"{net_name}_vs_{lin_name}_agreement.csv",
                         mime="text/csv", key="int_dl_agree")
