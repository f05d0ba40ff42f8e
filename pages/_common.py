"""What every page shares: cached loaders and the session-state keys no widget owns.

Session state (keys owned by no widget):

- ``dataset``: the current :class:`~dgex_core.dataset.Dataset`; ``dataset_label``: its name;
  ``dataset_key``: a string that changes when the dataset does; ``is_demo``.
- ``split_args``: ``{"val", "test", "seed", "group_by"}`` used for training.
- ``runs``: ``{name: Run}`` trained or loaded in this session.
- ``job``: the background :class:`~dgex_core.appstate.TrainingJob`, if any.
- ``session_dir``: this session's private temporary folder (uploads, downloads).
"""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from dgex_core import appstate
from dgex_core.demo import DemoConfig, load_demo
from dgex_core.io import read
from dgex_core.landmarks import read_landmarks


@st.cache_resource(show_spinner="Building the demo compendium (first time only, a few seconds)...")
def demo_data(n_samples: int, n_targets: int, seed: int = 0):
    return load_demo(DemoConfig(n_samples=n_samples, n_targets=n_targets, seed=seed))


@st.cache_resource(show_spinner=False)
def demo_dataset(n_samples: int, n_targets: int, seed: int = 0):
    return demo_data(n_samples, n_targets, seed).dataset()


def current_demo():
    cfg = appstate.demo_config()
    return demo_data(cfg.n_samples, cfg.n_targets, cfg.seed)


def current_demo_dataset():
    cfg = appstate.demo_config()
    return demo_dataset(cfg.n_samples, cfg.n_targets, cfg.seed)


@st.cache_resource(show_spinner="Reading the file...", max_entries=8)
def read_matrix(path: str, mtime: float):
    return read(path)


@st.cache_resource(show_spinner=False, max_entries=8)
def read_landmark_list(path: str, mtime: float):
    return read_landmarks(path)


def matrix_at(path: str | Path):
    p = Path(path)
    return read_matrix(str(p), p.stat().st_mtime)


def landmarks_at(path: str | Path):
    p = Path(path)
    return read_landmark_list(str(p), p.stat().st_mtime)


def session_dir() -> Path:
    if "session_dir" not in st.session_state:
        st.session_state["session_dir"] = appstate.new_session_dir()
    return st.session_state["session_dir"]


def init_state() -> None:
    """Open on the built-in demo with the default 80/10/10 split."""
    ss = st.session_state
    if "dataset" not in ss:
        cfg = appstate.demo_config()
        ss["dataset"] = current_demo_dataset()
        ss["dataset_label"] = f"demo-{cfg.n_samples}x{cfg.n_targets}"
        ss["dataset_key"] = f"demo:{cfg.key()}"
        ss["is_demo"] = True
    ss.setdefault("split_args", {"val": 0.1, "test": 0.1, "seed": 0, "group_by": None})
    ss.setdefault("runs", {})
    collect_job()


def collect_job() -> None:
    """Move a finished training job's run into ``runs``."""
    job = st.session_state.get("job")
    if job is not None and job.done and not job.collected:
        job.poll()
        if job.run is not None:
            st.session_state["runs"][job.run.name] = job.run
            st.session_state["run_dataset"] = st.session_state.get("run_dataset", {})
            st.session_state["run_dataset"][job.run.name] = st.session_state["dataset_key"]
        job.collected = True


def runs() -> dict:
    return st.session_state.get("runs", {})


def gene_meta():
    """Target metadata of the current dataset (symbols on hover), or None."""
    ds = st.session_state.get("dataset")
    return None if ds is None else ds.target_meta
