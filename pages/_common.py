"""What every page shares: cached loaders, the user, and the session-state keys no widget owns.

A browser reload or a second tab is a new Streamlit session. What must outlive one
lives in the user's :class:`~dgex_core.UserSlot`, found again from a token
kept in the URL (``?user=``, which a reload keeps) and in a cookie (for new tabs of
the same browser): the training job, its dataset and the Train page's settings, the
finished runs and the private folder. A session starts where its user was.

Session state (keys owned by no widget):

- ``user_token``: the user's token (see :func:`user`).
- ``dataset``: the current :class:`~dgex_core.dataset.Dataset`; ``dataset_label``: its name;
  ``dataset_key``: a string that changes when the dataset does; ``is_demo``.
- ``split_args``: ``{"val", "test", "seed", "group_by"}`` used for training.
- ``runs``: ``{name: Run}`` the user trained or loaded (this tab's view of the user's runs);
  ``run_dataset``: the dataset key of each.
- ``job``: the user's latest :class:`~dgex_core.TrainingJob`, if any.
"""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path

import pandas as pd
import streamlit as st

from dgex_core.demo import DemoConfig, app_demo_config, load_demo
from dgex_core.io import open_matrix, read
from dgex_core.jobs import TrainingJob, UserSlot, find_user, new_user
from dgex_core.landmarks import read_landmarks


def save_upload(folder: str | os.PathLike, name: str, data: bytes) -> Path:
    """Write uploaded ``data`` under ``folder`` (a session's own folder) and return the path.

    The file keeps the upload's name (made safe; the readers sniff content, but ``.gz``
    and table suffixes help) inside a subfolder named by a digest of the bytes, so two
    uploads never clash.
    """
    base = Path(name).name
    safe = re.sub(r"[^A-Za-z0-9._-]", "_", base).lstrip(".") or "upload"
    sub = Path(folder) / hashlib.sha256(data).hexdigest()[:16]
    sub.mkdir(parents=True, exist_ok=True)
    path = sub / safe
    if not path.exists():
        tmp = sub / (safe + ".part")
        tmp.write_bytes(data)
        tmp.replace(path)
    return path


def plain_message(error: Exception, path: str | os.PathLike | None = None) -> str:
    """The error's message with the folder of ``path`` left out (an upload's private temp folder)."""
    msg = str(error)
    return msg if path is None else msg.replace(f"{Path(path).parent}{os.sep}", "")


def for_display(table: pd.DataFrame, digits: int = 4):
    """A table as a person reads it (a pandas ``Styler`` for ``st.dataframe``): numbers
    shown to ``digits`` significant digits and missing values as "-" (the widget shows
    "None" otherwise), while the data underneath stay numbers (sorting works)."""
    floats = [c for c in table.columns if pd.api.types.is_float_dtype(table[c])]
    return (table.style.format(lambda v: f"{v:.{digits}g}", subset=floats, na_rep="-")
            .format(na_rep="-", subset=[c for c in table.columns if c not in floats]))


@st.cache_resource(show_spinner="Building the demo compendium (first time only, a few seconds)...")
def demo_data(n_samples: int, n_targets: int, seed: int = 0):
    return load_demo(DemoConfig(n_samples=n_samples, n_targets=n_targets, seed=seed))


@st.cache_resource(show_spinner=False)
def demo_dataset(n_samples: int, n_targets: int, seed: int = 0):
    return demo_data(n_samples, n_targets, seed).dataset()


def current_demo():
    cfg = app_demo_config()
    return demo_data(cfg.n_samples, cfg.n_targets, cfg.seed)


def current_demo_dataset():
    cfg = app_demo_config()
    return demo_dataset(cfg.n_samples, cfg.n_targets, cfg.seed)


@st.cache_resource(show_spinner="Reading the file...", max_entries=8)
def read_matrix(path: str, mtime: float):
    return read(path)


@st.cache_resource(show_spinner=False, max_entries=8)
def read_landmark_list(path: str, mtime: float):
    return read_landmarks(path)


@st.cache_resource(show_spinner="Opening the file (a text file is cached on first use)...", max_entries=8)
def open_lazy_matrix(path: str, mtime: float, landmark_ids: tuple[str, ...] | None = None,
                     platform: str | None = None):
    return open_matrix(path, landmark_ids=landmark_ids, platform=platform)


def lazy_matrix_at(path: str | Path, landmark_ids=None, platform: str | None = None):
    """The file as a lazy matrix: ids and metadata only, values read by blocks when used;
    ``landmark_ids`` decide a table's orientation, as in every command; ``platform``
    picks one of a GEO SOFT series' platforms."""
    p = Path(path)
    ids = tuple(sorted(set(landmark_ids))) if landmark_ids else None
    return open_lazy_matrix(str(p), p.stat().st_mtime, ids, platform)


@st.cache_data(show_spinner=False, max_entries=8)
def platforms_of(path: str, mtime: float) -> dict[str, int]:
    """Platform -> samples of a GEO SOFT family file (its ``!Sample_platform_id`` lines)."""
    from dgex_core.io.geo_soft import soft_platforms

    return soft_platforms(path)


@st.cache_data(show_spinner=False, max_entries=16)
def scale_problem_of(path: str, mtime: float, ids: tuple[str, ...] | None, platform: str | None = None
                     ) -> str | None:
    """Why the file's values look unlogged (counts, TPM...), or None; from 400 samples."""
    from dgex_core.preprocess import matrix_scale_problem

    return matrix_scale_problem(open_lazy_matrix(path, mtime, ids, platform))


def matrix_at(path: str | Path):
    p = Path(path)
    return read_matrix(str(p), p.stat().st_mtime)


def landmarks_at(path: str | Path):
    p = Path(path)
    return read_landmark_list(str(p), p.stat().st_mtime)


#: The URL query parameter and the cookie that carry the user's token.
USER_PARAM, USER_COOKIE = "user", "dgex_user"


def user() -> UserSlot:
    """This browser's user, kept across reloads and tabs.

    The session's own token first, then the cookie, then the URL's; a token that is
    malformed or was not issued by this server (made up, or from before a restart)
    is replaced by a fresh one. The URL is kept pointing at the token, so a reload
    comes back to the same user.
    """
    ss = st.session_state
    slot = None
    for token in (ss.get("user_token"), st.context.cookies.get(USER_COOKIE), st.query_params.get(USER_PARAM)):
        slot = find_user(token)
        if slot is not None:
            break
    if slot is None:
        slot = new_user()
    ss["user_token"] = slot.token
    if st.query_params.get(USER_PARAM) != slot.token:
        st.query_params[USER_PARAM] = slot.token
    return slot


def remember_user_in_browser() -> None:
    """Put the user's token in a cookie (once per session, when the browser's differs),
    so a new tab opened at the plain address finds the same user. The token is checked
    to be URL-safe characters only before it is written into the page."""
    ss = st.session_state
    token = user().token
    if ss.get("cookie_written") == token or st.context.cookies.get(USER_COOKIE) == token:
        return
    st.html(f"<script>document.cookie = '{USER_COOKIE}={token}; path=/; max-age=31536000; SameSite=Strict';"
            "</script>", unsafe_allow_javascript=True)
    ss["cookie_written"] = token


def session_dir() -> Path:
    """The user's private folder (uploads, downloads)."""
    return user().folder


def init_state() -> None:
    """Start where the user was (the dataset of a training still running, else the last
    dataset and split), or on the built-in demo with the default 80/10/10 split; then
    pick up the user's training job and runs."""
    ss = st.session_state
    slot = user()
    if "dataset" not in ss:
        ss.update(slot.resume())
    if "dataset" not in ss:
        cfg = app_demo_config()
        ss["dataset"] = current_demo_dataset()
        ss["dataset_label"] = f"demo-{cfg.n_samples}x{cfg.n_targets}"
        ss["dataset_key"] = f"demo:{cfg.key()}"
        ss["is_demo"] = True
    ss.setdefault("split_args", {"val": 0.1, "test": 0.1, "seed": 0, "group_by": None})
    ss.setdefault("runs", {})
    ss.setdefault("run_dataset", {})
    collect_job()
    remember_place()


def remember_place() -> None:
    """Keep this session's dataset and split for the user's next session (a reload)."""
    user().remember(st.session_state)


def collect_job() -> None:
    """Collect the user's finished training (once, whichever tab sees it end) and bring
    the user's runs into this session's ``runs``."""
    ss = st.session_state
    slot = user()
    slot.collect()
    if slot.job is not None:
        ss["job"] = slot.job
    runs, run_dataset = slot.snapshot()
    for name, run in runs.items():
        if name not in ss["runs"]:
            ss["runs"][name] = run
            if run_dataset.get(name) is not None:
                ss["run_dataset"][name] = run_dataset[name]


def current_job() -> TrainingJob | None:
    """The user's latest training job (running or finished), from any of their tabs."""
    return user().job


def runs() -> dict:
    return st.session_state.get("runs", {})


def gene_meta():
    """Target metadata of the current dataset (symbols on hover), or None."""
    ds = st.session_state.get("dataset")
    return None if ds is None else ds.target_meta


def remember(*keys: str) -> None:
    """Keep these widgets' values when the user leaves the page and comes back.

    Streamlit drops a widget's state when its page is not drawn. Each widget passes
    ``**kept(key)`` (an ``on_change`` that copies its new value under ``_kept_<key>``,
    plain session state, which stays); this puts the kept values back before the
    widgets are drawn. Call it before the widgets."""
    ss = st.session_state
    for key in keys:
        if f"_kept_{key}" in ss:
            ss[key] = ss[f"_kept_{key}"]


def _keep(key: str) -> None:
    st.session_state[f"_kept_{key}"] = st.session_state[key]


def kept(key: str) -> dict:
    """Widget arguments that remember its value across pages (see :func:`remember`)."""
    return {"key": key, "on_change": _keep, "args": (key,)}


def uploaded_file(label: str, key: str, types: list[str] | None = None):
    """An upload saved to the session's folder that stays when the user leaves the page:
    the last file given is used (and said so) until another is uploaded or it is cleared."""
    ss = st.session_state
    up = st.file_uploader(label, type=types, key=key)
    kept = f"_kept_file_{key}"
    if up is not None:
        ss[kept] = (up.name, save_upload(session_dir(), up.name, up.getvalue()))
    if ss.get(kept) and up is None:
        name, path = ss[kept]
        if not Path(path).exists():
            del ss[kept]
            return None
        c = st.columns([4, 1])
        c[0].caption(f"Using **{name}**, uploaded earlier; upload another to replace it.")
        if c[1].button("Clear", key=f"{key}_clear"):
            del ss[kept]
            st.rerun()
    return ss[kept][1] if ss.get(kept) else None
