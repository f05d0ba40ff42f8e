"""Errors: per-gene error distributions of the runs, run against run, one gene's
predictions, per-sample errors and the out-of-distribution score."""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.express as px
import plotly.graph_objects as go
import streamlit as st

from dgex_core.errors import DgexError
from dgex_core.evaluation import (
    error_long_table,
    floor_long_table,
    held_out_predictions,
    noise_floor,
    wins,
)
from dgex_core.genes import find_genes, gene_label, symbols
from dgex_core.store import run_fingerprint
from pages._common import gene_meta, runs

ss = st.session_state


@st.cache_resource(max_entries=4, show_spinner="Predicting the test samples...")
def held_out(run_id: str, dataset_key: str, _run, _data):
    """Measured and predicted test samples of a run (shared by sessions asking for the same run and data)."""
    try:
        return held_out_predictions(_run, _data)
    except DgexError as e:
        return str(e)
#: 24 distinct colours, so more than 10 groups stay apart (plotly's default has 10)
PALETTE = px.colors.qualitative.Dark24
st.title("Errors")
if not runs():
    st.info("No runs yet: train or load one on the Train page.")
    st.stop()

names = list(runs())
#: Axis titles in words, with units
METRIC_LABEL = {"mae_z": "mean absolute error per gene (training sd units)",
                "mae": "mean absolute error per gene (the data's units, log2 on arrays)"}


def units(run) -> str:
    """The expression units of a run's data, in words."""
    return {"log2cpm": "log2 CPM", "log2": "log2(x+1)"}.get(run.config.get("normalize"), "the data's units")
metric = st.radio("Error", ["mae_z", "mae"], horizontal=True, key="err_metric",
                  format_func={"mae_z": "MAE in standardized units (D-GEX)", "mae": "MAE in original units"}.get)
meta = gene_meta()

# ------------------------------------------------------------ distributions
st.subheader("Per-gene error on the test samples")
chosen = st.multiselect("Runs", names, default=names[-3:], key="err_runs")
kind = st.radio("Plot", ["Histogram", "Box", "ECDF"], horizontal=True, key="err_kind")
if chosen:
    table = error_long_table({n: runs()[n] for n in chosen}, metric, meta)
    floor = noise_floor(runs()[chosen[0]], metric)
    if floor is not None:
        table = pd.concat([table, floor_long_table(floor, meta)], ignore_index=True)
    labels = {"error": METRIC_LABEL[metric], "run": "run"}
    if kind == "Histogram":
        fig = px.histogram(table, x="error", color="run", barmode="overlay", opacity=0.55, nbins=80,
                           hover_data=["gene", "symbol"], labels=labels, color_discrete_sequence=PALETTE)
        fig.update_layout(yaxis_title="genes")
    elif kind == "Box":
        fig = px.box(table, x="run", y="error", color="run", points="outliers", hover_data=["gene", "symbol"],
                     labels=labels, color_discrete_sequence=PALETTE)
    else:
        fig = px.ecdf(table, x="error", color="run", hover_data=["gene", "symbol"], labels=labels,
                      color_discrete_sequence=PALETTE)
        fig.update_layout(yaxis_title="share of genes with at most this error")
    fig.update_layout(height=380, margin=dict(t=10))
    st.plotly_chart(fig, key="err_dist")
    summ = table.groupby("run", sort=False)["error"].agg(["mean", "median", "std", "count"])
    st.dataframe(summ.rename(columns={"count": "genes"}))

# ------------------------------------------------- per-gene choice runs
picks = [n for n in names if "uses" in runs()[n].per_gene]
if picks:
    st.subheader("Which family each gene uses (per-gene choice runs)")
    pick = st.selectbox("Choice run", picks, index=len(picks) - 1, key="err_choice_run")
    pg = runs()[pick].per_gene
    counts = pg.groupby("uses", sort=False).agg(genes=("uses", "size"), mean_error=(metric, "mean"))
    counts = counts.sort_values("genes", ascending=False)
    st.caption("Chosen per gene on the validation samples (the family, or convex blend of families, with the "
               "lowest validation error); errors here are on the test samples.")
    c = st.columns([2, 3])
    c[0].dataframe(counts.rename(columns={"mean_error": f"mean {metric}"}))
    fig = px.bar(counts.reset_index(), x="uses", y="genes", labels={"uses": "family or blend", "genes": "genes"})
    fig.update_layout(height=300, margin=dict(t=10))
    c[1].plotly_chart(fig, key="err_choice_bar")

# --------------------------------------------------------------- A vs B
st.subheader("Run A against run B, gene by gene")
if len(names) < 2:
    st.caption("Train or load a second run to compare.")
else:
    c = st.columns(2)
    a = c[0].selectbox("Run A", names, index=0, key="err_a")
    b = c[1].selectbox("Run B", names, index=1, key="err_b")
    t, s = wins(runs()[a].per_gene, runs()[b].per_gene, metric, meta)
    m = st.columns(3)
    m[0].metric(f"Genes where {a} wins", f"{s['share_a']:.1%}")
    m[1].metric(f"Genes where {b} wins", f"{s['share_b']:.1%}")
    m[2].metric(f"{b} vs {a}: relative improvement", f"{s['relative_improvement']:.2%}")
    fig = px.scatter(t, x="a", y="b", color="winner", hover_data=["gene", "symbol"], opacity=0.6,
                     labels={"a": f"{a}: {METRIC_LABEL.get(s['metric'], s['metric'])}",
                             "b": f"{b}: {METRIC_LABEL.get(s['metric'], s['metric'])}"})
    lo, hi = float(np.nanmin(t[["a", "b"]].to_numpy())), float(np.nanmax(t[["a", "b"]].to_numpy()))
    fig.add_trace(go.Scatter(x=[lo, hi], y=[lo, hi], mode="lines", name="equal error",
                             line=dict(color="grey", dash="dash")))
    fig.update_layout(height=420, margin=dict(t=10))
    st.plotly_chart(fig, key="err_ab")

# ----------------------------------------------------------------- a gene
st.subheader("One gene: predicted against measured on the test samples")
run_g = st.selectbox("Run", names, index=len(names) - 1, key="gene_run")
run = runs()[run_g]
query = st.text_input("Gene id or symbol", key="gene_query", placeholder="e.g. the first target's id")
hits = find_genes(query, run.per_gene.index, meta) if query else []
if query and not hits:
    st.warning(f"No target gene matches {query!r}.")
if hits:
    sym = symbols(meta)
    gene = st.selectbox("Gene", hits, key="gene_pick",
                        format_func=lambda g: gene_label(g, sym))
    got = held_out(run_fingerprint(run), ss["dataset_key"], run, ss["dataset"])
    if isinstance(got, str):
        st.error(got)
    else:
        measured, pred = got
        row = run.per_gene.loc[gene]
        df = pd.DataFrame({"measured": measured[gene], "predicted": pred[gene], "sample": measured.index})
        fig = px.scatter(df, x="measured", y="predicted", hover_data=["sample"], opacity=0.7,
                         labels={"measured": f"measured ({units(run)})", "predicted": f"predicted ({units(run)})"})
        lo, hi = float(df[["measured", "predicted"]].min().min()), float(df[["measured", "predicted"]].max().max())
        fig.add_trace(go.Scatter(x=[lo, hi], y=[lo, hi], mode="lines", name="perfect", line=dict(color="grey", dash="dash")))
        fig.update_layout(height=400, margin=dict(t=40),
                          title=(f"{gene} ({row['uses']}): " if "uses" in row else f"{gene}: ")
                                + f"MAE {row.get('mae', float('nan')):.3f} ({units(run)}), "
                                f"{row.get('mae_z', float('nan')):.3f} training sd, "
                                f"Pearson r {row.get('pearson', float('nan')):.3f}, {len(df):,} test samples")
        st.plotly_chart(fig, key="gene_scatter")

# -------------------------------------------------------------- samples
st.subheader("Per-sample error and out-of-distribution score")
st.caption(f"Run **{run_g}** (the run chosen above), its test samples.")
ps = run.per_sample
if ps is None:
    st.caption("This run has no per-sample scores.")
else:
    err_col = "mae_z" if "mae_z" in ps else ps.columns[0]
    meta_cols = [c for c in ps.columns if c not in (err_col, "ood_score", "mae")]
    color = st.selectbox("Colour by", [None, *meta_cols], index=1 if meta_cols else 0, key="sample_color",
                         format_func=lambda c: "(nothing)" if c is None else c)
    df = ps.reset_index(names="sample")
    c = st.columns(2)
    sample_label = {"mae_z": "mean absolute error over genes (training sd units)",
                    "mae": f"mean absolute error over genes ({units(run)})"}.get(err_col, err_col)
    fig = px.histogram(df, x=err_col, color=color, barmode="overlay", opacity=0.6, nbins=50, hover_data=["sample"],
                       labels={err_col: sample_label}, color_discrete_sequence=PALETTE)
    fig.update_layout(height=360, margin=dict(t=10), yaxis_title="samples")
    c[0].plotly_chart(fig, key="sample_err")
    if "ood_score" in df:
        fig = px.scatter(df, x="ood_score", y=err_col, color=color, hover_data=["sample"], opacity=0.7,
                         labels={"ood_score": "out-of-distribution score (above 1: further out than 99% of "
                                              "held-out samples)", err_col: sample_label},
                         color_discrete_sequence=PALETTE)
        fig.add_vline(x=1.0, line_dash="dash", line_color="grey")
        fig.update_layout(height=360, margin=dict(t=10))
        c[1].plotly_chart(fig, key="sample_ood")
