"""Helpers behind the dashboard's pages (no Streamlit here: the pages arrange widgets,
this module computes).

What the pages need beyond the rest of the library: the demo size the app opens on,
a per-session folder for uploaded bytes, reading a dataset from a file with a
landmark list, model construction from page settings, a background training job,
the test-set predictions of a run, per-gene error tables for plotting, the order of a
clustered heatmap, and predictions written to a downloadable file.

Users and sessions: a browser reload or a second tab makes a new Streamlit session, so
what must outlive one (the training job, its dataset and settings, the finished runs,
the private folder) lives in a process-wide registry of :class:`UserSlot` objects keyed
by an unguessable token the browser keeps (the app puts it in the URL and a cookie).
"""

from __future__ import annotations

import hashlib
import os
import queue
import re
import secrets
import tempfile
import threading
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from .dataset import Dataset, Split
from .demo import DemoConfig
from .errors import DatasetError, ModelError
from .matrix import ExpressionMatrix
from .store import Run, default_runs_dir, list_runs, load_run, save_run

__all__ = [
    "APP_DEMO_SIZE",
    "TrainingJob",
    "UserSlot",
    "cluster_order",
    "demo_config",
    "error_long_table",
    "explain_samples",
    "find_user",
    "gene_label",
    "make_model",
    "new_session_dir",
    "new_user",
    "predict_preview",
    "predictions_file",
    "run_split",
    "runs_dir",
    "save_upload",
    "saved_runs",
    "test_predictions",
    "top_weights",
    "wins",
]

#: Demo size the dashboard opens on (samples x targets): first load in a few seconds.
APP_DEMO_SIZE = (4000, 1500)

_SIZE = re.compile(r"^\s*(\d+)\s*[xX]\s*(\d+)\s*$")


# ------------------------------------------------------------------- data
def demo_config(size: str | None = None) -> DemoConfig:
    """The demo the app opens on: ``size`` or ``$DGEX_DEMO_SIZE`` ("samples x targets",
    e.g. ``"1500x200"``), else :data:`APP_DEMO_SIZE`.

    Raises
    ------
    ValueError
        If the size is not two integers joined by ``x``.
    """
    size = size if size is not None else os.environ.get("DGEX_DEMO_SIZE")
    if not size:
        n, t = APP_DEMO_SIZE
        return DemoConfig(n_samples=n, n_targets=t)
    m = _SIZE.match(size)
    if not m:
        raise ValueError(f"DGEX_DEMO_SIZE must look like '1500x200' (samples x targets), got {size!r}")
    return DemoConfig(n_samples=int(m.group(1)), n_targets=int(m.group(2)))


def new_session_dir() -> Path:
    """A fresh private temporary folder for one browser session's uploads and downloads."""
    return Path(tempfile.mkdtemp(prefix="dgex-session-"))


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


def dataset_values(data: Dataset, n: int = 200_000, seed: int = 0) -> np.ndarray:
    """Up to ``n`` finite expression values of ``data`` (landmarks and targets of a random
    subset of samples), for a histogram; never copies the whole matrix."""
    rng = np.random.default_rng(seed)
    n_genes = max(data.n_landmarks + data.n_targets, 1)
    rows = np.sort(rng.choice(data.n_samples, size=min(data.n_samples, max(1, n // n_genes)), replace=False))
    v = np.concatenate([np.asarray(data.landmarks[rows], dtype=np.float64).ravel(),
                        np.asarray(data.targets[rows], dtype=np.float64).ravel()])
    v = v[np.isfinite(v)]
    return v if v.size <= n else rng.choice(v, size=n, replace=False)


# ----------------------------------------------------------------- models


def make_model(family: str, **settings):
    """An unfitted model of ``family`` from page settings, its settings checked
    (:func:`dgex_core.models.factory.make_model` with the family's defaults).

    ``linear``: ``alphas`` ("auto" or a list); ``knn``: ``k_grid``, ``metric``;
    ``mlp``: ``width``, ``layers`` and any other :class:`~dgex_core.models.mlp.MLPModel`
    setting; ``choice``: ``parts`` (families) and the ``mlp`` settings for its network part.
    """
    from .models.factory import make_model as build

    s = dict(settings)
    if family not in ("mlp", "choice"):
        return build(family, **s)
    parts = s.pop("parts", ("linear", "mlp"))
    width, layers = int(s.pop("width", 1000)), int(s.pop("layers", 1))
    net = {**s, "hidden": (width,) * layers}
    if family == "mlp":
        return build("mlp", **net)
    return build("choice", parts=parts, mlp=net if "mlp" in parts else None)


# --------------------------------------------------------------- training
@dataclass
class TrainingJob:
    """``train_run`` (then ``save_run``) in a background thread, with progress and a stop flag.

    The thread puts one dict per progress call on :attr:`events`; :meth:`poll` drains
    them into :attr:`history`. :meth:`stop` asks the model to stop after the current
    epoch (the MLP keeps its best epoch so far; the other families finish their
    single pass). When done, :attr:`run` holds the (saved) run or :attr:`error` the
    message of what went wrong.
    """

    dataset: Dataset
    model: object
    name: str
    split_args: dict = field(default_factory=dict)
    runs_root: Path | None = None
    dataset_name: str | None = None
    events: queue.Queue = field(default_factory=queue.Queue, repr=False)
    history: list = field(default_factory=list)
    run: Run | None = None
    error: str | None = None
    started: float = 0.0
    finished: float | None = None
    collected: bool = False
    _stop: threading.Event = field(default_factory=threading.Event, repr=False)
    _thread: threading.Thread | None = field(default=None, repr=False)
    _poll_lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def __post_init__(self) -> None:
        from .store import check_run_name

        check_run_name(self.name, self.runs_root if self.runs_root is not None else default_runs_dir())

    def start(self) -> TrainingJob:
        self.started = time.time()
        self._thread = threading.Thread(target=self._work, name=f"dgex-train-{self.name}", daemon=True)
        self._thread.start()
        return self

    def _progress(self, step, total, metrics) -> bool:
        self.events.put({"step": step, "total": total, **(metrics or {})})
        return self._stop.is_set()

    def _work(self) -> None:
        from .training import train_run

        try:
            run = train_run(self.dataset, self.model, self.name, progress=self._progress,
                            dataset_name=self.dataset_name, **self.split_args)
            # the fractions asked for, so the app can remake a grouped split exactly
            run.config["split"].update({k: self.split_args[k] for k in ("val", "test") if k in self.split_args})
            save_run(run, self.runs_root if self.runs_root is not None else default_runs_dir())
            self.run = run
        except Exception as e:  # shown on the page; the app stays usable
            self.error = str(e) if isinstance(e, (DatasetError, ModelError, ValueError)) else (
                f"{type(e).__name__}: {e}\n{traceback.format_exc(limit=3)}")
        finally:
            self.finished = time.time()

    def stop(self) -> None:
        """Ask the training to stop after the current epoch."""
        self._stop.set()

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    @property
    def done(self) -> bool:
        return self._thread is not None and not self._thread.is_alive()

    def join(self, timeout: float | None = None) -> TrainingJob:
        if self._thread is not None:
            self._thread.join(timeout)
        self.poll()
        return self

    def poll(self) -> pd.DataFrame:
        """Drain new progress events; the whole history as a table (one row per call).
        Safe from several sessions at once (two tabs of one user): events stay in order."""
        with self._poll_lock:
            while True:
                try:
                    self.history.append(self.events.get_nowait())
                except queue.Empty:
                    break
            return pd.DataFrame(list(self.history))

    @property
    def elapsed(self) -> float:
        return (self.finished or time.time()) - self.started


# ------------------------------------------------------------------ users
#: A user's slot is forgotten this long after their last visit, unless a training runs.
USER_IDLE_SECONDS = 24 * 3600

#: What :func:`new_user` issues: ``secrets.token_urlsafe(24)``, 32 URL-safe characters (192 bits).
_TOKEN = re.compile(r"[A-Za-z0-9_-]{32}")

#: Where a session's place (dataset and split) is kept: the keys of the app's session state.
PLACE_KEYS = ("dataset", "dataset_label", "dataset_key", "is_demo", "split_args")


@dataclass
class UserSlot:
    """What one user (one browser, one token) keeps across reloads and tabs.

    Every Streamlit session of the user (a reload, a second tab) opens the same slot,
    so it finds the training job again, and the finished run is collected once into
    :attr:`runs` whichever session sees it end. Two users never share a slot.

    Attributes
    ----------
    token
        The user's token (secret: whoever holds it is that user).
    job
        The user's latest :class:`TrainingJob` (running or finished), or None.
    job_info
        What the job trains on and how, for a session that comes back to it: its place
        (:data:`PLACE_KEYS`: ``dataset``, ``dataset_label``, ``dataset_key``, ``is_demo``,
        ``split_args``) and ``inputs`` (the Train page's widget values).
    runs, run_dataset
        The user's finished runs ``{name: Run}`` in order, and the dataset key of each.
    place
        The dataset and split the user last worked on (keys of :data:`PLACE_KEYS`).
    """

    token: str
    job: TrainingJob | None = None
    job_info: dict = field(default_factory=dict)
    runs: dict = field(default_factory=dict)
    run_dataset: dict = field(default_factory=dict)
    place: dict = field(default_factory=dict)
    last_seen: float = field(default_factory=time.time)
    _folder: Path | None = field(default=None, repr=False)
    _lock: threading.RLock = field(default_factory=threading.RLock, repr=False)

    @property
    def folder(self) -> Path:
        """The user's private folder for uploads and downloads (made on first use)."""
        with self._lock:
            if self._folder is None:
                self._folder = new_session_dir()
            return self._folder

    @property
    def busy(self) -> bool:
        """A training of this user is running."""
        job = self.job
        return job is not None and not job.done

    def start_job(self, job: TrainingJob, **info) -> TrainingJob:
        """Start ``job`` as the user's training; ``info`` becomes :attr:`job_info`.

        Raises
        ------
        ModelError
            If a training of this user is still running (from this tab or another).
        """
        with self._lock:
            if self.busy:
                raise ModelError(f"training {self.job.name!r} is still running: stop it or wait for it to end "
                                 "before starting another")
            self.collect()  # a finished job's run is kept before the job is replaced
            self.job_info = dict(info)
            self.job = job.start()
            return job

    def collect(self) -> Run | None:
        """Move the finished job's run into :attr:`runs`, exactly once whichever session
        asks first; returns the run collected now, or None."""
        with self._lock:
            job = self.job
            if job is None or not job.done or job.collected:
                return None
            job.poll()
            job.collected = True
            if job.run is None:
                return None
            self.runs[job.run.name] = job.run
            self.run_dataset[job.run.name] = self.job_info.get("dataset_key")
            return job.run

    def add_run(self, run: Run, dataset_key: str | None = None) -> None:
        """Keep ``run`` (one the user loaded) among the user's runs."""
        with self._lock:
            self.runs[run.name] = run
            if dataset_key is not None:
                self.run_dataset[run.name] = dataset_key

    def snapshot(self) -> tuple[dict, dict]:
        """Copies of :attr:`runs` and :attr:`run_dataset`, safe to read while other sessions add to them."""
        with self._lock:
            return dict(self.runs), dict(self.run_dataset)

    def remember(self, place: dict) -> None:
        """Keep the dataset and split a session is on (the :data:`PLACE_KEYS` of ``place``)."""
        with self._lock:
            self.place = {k: place[k] for k in PLACE_KEYS if k in place}

    def resume(self) -> dict:
        """Where a new session of this user starts: the place of a training not yet
        collected (so its progress, and its run, match the dataset shown), else the
        place last remembered; ``{}`` for a user new to the app."""
        with self._lock:
            job = self.job
            place = self.job_info if job is not None and not job.collected else self.place
            out = {k: place[k] for k in PLACE_KEYS if k in place}
        if "split_args" in out:
            out["split_args"] = dict(out["split_args"])
        return out


_USERS: dict[str, UserSlot] = {}
_USERS_LOCK = threading.Lock()


def new_user() -> UserSlot:
    """A slot for a new user, with a fresh unguessable token."""
    with _USERS_LOCK:
        _forget_idle_users()
        while True:
            token = secrets.token_urlsafe(24)
            if token not in _USERS:
                break
        slot = _USERS[token] = UserSlot(token)
        return slot


def find_user(token: object) -> UserSlot | None:
    """The slot of the user holding ``token``, or None when ``token`` is malformed or was
    not issued by this server (a made-up, stale or forgotten token never opens a slot)."""
    if not isinstance(token, str) or not _TOKEN.fullmatch(token):
        return None
    with _USERS_LOCK:
        slot = _USERS.get(token)
        if slot is not None:
            slot.last_seen = time.time()
        return slot


def _forget_idle_users(now: float | None = None) -> None:
    """Drop slots unseen for :data:`USER_IDLE_SECONDS` with no training running or uncollected.
    Call with ``_USERS_LOCK`` held."""
    now = time.time() if now is None else now
    for token, slot in list(_USERS.items()):
        job = slot.job
        if now - slot.last_seen > USER_IDLE_SECONDS and (job is None or (job.done and job.collected)):
            del _USERS[token]


def runs_dir() -> Path:
    """Where the app saves and lists runs: ``$DGEX_RUNS_DIR`` or ``./runs``."""
    return default_runs_dir()


def saved_runs() -> pd.DataFrame:
    """The complete runs under :func:`runs_dir`."""
    return list_runs(runs_dir())


def load_saved_run(name: str) -> Run:
    return load_run(runs_dir() / name)


def unique_run_name(base: str, taken) -> str:
    """``base``, or ``base-2``, ``base-3``... whichever is not in ``taken`` nor on disk."""
    taken = set(taken) | set(saved_runs()["name"].tolist())
    name, i = base, 2
    while name in taken:
        name, i = f"{base}-{i}", i + 1
    return name


def for_display(table: pd.DataFrame, digits: int = 4):
    """A table as a person reads it (a pandas ``Styler`` for ``st.dataframe``): numbers
    shown to ``digits`` significant digits and missing values as "-" (the widget shows
    "None" otherwise), while the data underneath stay numbers (sorting works)."""
    floats = [c for c in table.columns if pd.api.types.is_float_dtype(table[c])]
    return (table.style.format(lambda v: f"{v:.{digits}g}", subset=floats, na_rep="-")
            .format(na_rep="-", subset=[c for c in table.columns if c not in floats]))


def runs_table(runs: dict[str, Run]) -> pd.DataFrame:
    """One row per run: test error (mean ± sd over genes), Pearson r, noise floor and the
    ratio to it (demo), by linear / non-linear targets when known, well-inferred genes, fit time."""
    rows = []
    for name, run in runs.items():
        m, t = run.metrics, run.metrics.get("test", {})
        row = {"run": name, "family": run.family, "test MAE": t.get("mean_mae"), "sd over genes": t.get("sd_mae"),
               "mean Pearson r": t.get("mean_pearson"), "noise floor": t.get("mean_floor"),
               "x floor": t.get("ratio_to_floor")}
        groups = t.get("groups", {})
        for key, label in (("False", "x floor, linear targets"), ("True", "x floor, non-linear targets")):
            if key in groups:
                row[label] = groups[key].get("ratio_to_floor")
        row["well inferred"] = m.get("n_well_inferred")
        row["fit s"] = m.get("fit_seconds")
        rows.append(row)
    return pd.DataFrame(rows).dropna(axis=1, how="all")


# ------------------------------------------------------------------ errors
def run_split(run: Run, data: Dataset) -> Split:
    """The run's own split of ``data`` (same seed, sizes and grouping), checked by sample-id digest.

    Raises
    ------
    DatasetError
        If ``data`` does not give back the run's test samples (another dataset).
    """
    from .training import _ids_digest

    sp = run.config.get("split", {})
    n = data.n_samples
    if sp.get("n_train", 0) + sp.get("n_val", 0) + sp.get("n_test", 0) != n:
        raise DatasetError(f"run {run.name!r} was trained on {sp.get('n_train', 0) + sp.get('n_val', 0) + sp.get('n_test', 0)} "
                           f"samples, the current dataset has {n}: load the run's dataset (the Data page; --data on the command line)")
    split = data.split(val=sp.get("val", sp["n_val"] / n), test=sp.get("test", sp["n_test"] / n),
                       seed=sp.get("seed", 0), group_by=sp.get("group_by"))
    want = sp.get("test_ids_sha")
    if want and _ids_digest(split.test.sample_ids) != want:
        raise DatasetError(f"the current dataset does not give back the test samples of run {run.name!r}: "
                           "load the run's dataset (the Data page; --data on the command line)")
    return split


def test_predictions(run: Run, data: Dataset) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Measured and predicted test-set targets of ``run`` (samples x targets, original units)."""
    split = run_split(run, data)
    pred = run.model.predict_dataset(split.test)
    measured = pd.DataFrame(split.test.targets, index=split.test.sample_ids, columns=split.test.target_ids)
    return measured[pred.columns], pred


#: The sample sets a run can be explained on, with their labels.
SAMPLE_SETS = {"test": "test samples (held out)", "val": "validation samples", "train": "training samples",
               "all": "all samples of the current dataset"}


def explain_samples(run: Run, data: Dataset, which: str = "test", max_samples: int | None = 2000,
                    seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Landmarks of the samples to explain ``run`` on, and their metadata.

    Parameters
    ----------
    which
        ``"test"``, ``"val"`` or ``"train"``: that part of the run's own split of
        ``data`` (checked to be the run's, see :func:`run_split`); ``"all"``: every
        sample of ``data``, which may be another dataset with the run's landmarks.
    max_samples
        At most this many samples, a seeded random subset (None: all).

    Samples with a missing or infinite value in one of the run's landmarks are left
    out (attributions are defined on measured profiles); ``landmarks.attrs["n_incomplete"]``
    says how many.

    Returns
    -------
    landmarks
        Samples x the run's landmarks (``landmark_ids_`` order, matched by id), original units.
    sample_meta
        Their metadata (same index).

    Raises
    ------
    DatasetError
        If ``data`` is not the run's dataset (for a split part) or lacks its landmarks.
    """
    if which not in SAMPLE_SETS:
        raise ValueError(f"which must be one of {list(SAMPLE_SETS)}, got {which!r}")
    part = data if which == "all" else getattr(run_split(run, data), which)
    want = run.model.landmark_ids_
    pos = part.landmark_ids.get_indexer(want)
    if (pos < 0).any():
        raise DatasetError(f"the current dataset lacks {int((pos < 0).sum())} of run {run.name!r}'s landmarks, "
                           f"e.g. {want[pos < 0][:5].tolist()}: load the run's dataset (the Data page; "
                           "--data on the command line)")
    if part.n_samples == 0:
        raise DatasetError(f"run {run.name!r} has no {SAMPLE_SETS[which]}: choose another sample set")
    complete = np.isfinite(part.landmarks[:, pos]).all(axis=1)
    rows = np.flatnonzero(complete)
    if not rows.size:
        raise DatasetError(f"every one of the {SAMPLE_SETS[which]} misses some of run {run.name!r}'s landmark values")
    if max_samples is not None and rows.size > max_samples:
        rows = np.sort(np.random.default_rng(seed).choice(rows, int(max_samples), replace=False))
    X = pd.DataFrame(part.landmarks[rows][:, pos], index=part.sample_ids[rows], columns=want)
    X.attrs["n_incomplete"] = int((~complete).sum())
    return X, part.sample_meta.iloc[rows]


SYMBOL_COLUMNS = ("symbol", "pr_gene_symbol", "gene_symbol", "Symbol", "Description")


def symbols(gene_meta: pd.DataFrame | None) -> pd.Series | None:
    """Gene symbols from the first symbol-like gene-metadata column (``symbol``,
    ``pr_gene_symbol``, ..., a GCT ``Description``), or None."""
    if gene_meta is None:
        return None
    for c in SYMBOL_COLUMNS:
        if c in gene_meta:
            return gene_meta[c].fillna("").astype(str)
    return None


def gene_label(gene_id: str, symbols: pd.Series | None) -> str:
    """``id (symbol)`` where ``symbols`` (from :func:`symbols`) knows a symbol other than the id, else the id."""
    s = "" if symbols is None else symbols.get(gene_id, "")
    s = "" if pd.isna(s) else str(s)
    return f"{gene_id} ({s})" if s and s != gene_id else str(gene_id)


def find_genes(query: str, per_gene: pd.DataFrame, gene_meta: pd.DataFrame | None, limit: int = 50) -> list[str]:
    """Target ids whose id or symbol contains ``query`` (case-insensitive), exact matches first."""
    q = query.strip().lower()
    if not q:
        return []
    ids = pd.Index(per_gene.index.astype(str))
    sym = symbols(gene_meta)
    sym = pd.Series("", index=ids) if sym is None else sym.reindex(ids).fillna("")
    idl, syml = ids.str.lower(), sym.str.lower().to_numpy()
    exact = [g for g, a, b in zip(ids, idl, syml, strict=True) if a == q or b == q]
    hit = idl.str.contains(q, regex=False) | pd.Series(syml).str.contains(q, regex=False).to_numpy()
    rest = [g for g in ids[np.asarray(hit)] if g not in set(exact)]
    return (exact + rest)[:limit]


def error_long_table(runs: dict[str, Run], metric: str = "mae_z", gene_meta: pd.DataFrame | None = None) -> pd.DataFrame:
    """Per-gene errors of several runs, one row per (run, gene): columns run, gene, error, symbol."""
    parts = []
    for name, run in runs.items():
        pg = run.per_gene
        if pg is None:
            continue
        m = metric if metric in pg else "mae"
        df = pd.DataFrame({"run": name, "gene": pg.index.astype(str), "error": pg[m].to_numpy()})
        parts.append(df)
    out = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=["run", "gene", "error"])
    out["symbol"] = _symbols(out["gene"], gene_meta)
    return out


def _symbols(genes: pd.Series, gene_meta: pd.DataFrame | None) -> np.ndarray:
    sym = symbols(gene_meta)
    if sym is not None:
        return sym.reindex(genes.to_numpy()).fillna("").to_numpy()
    return np.full(len(genes), "", dtype=object)


def noise_floor(run: Run, metric: str = "mae_z") -> pd.Series | None:
    """The run's per-gene noise floor in the units of ``metric`` (demo only), else None."""
    pg = run.per_gene
    col = "floor_z" if metric == "mae_z" else "floor"
    return None if pg is None or col not in pg else pg[col].dropna()


def floor_long_table(floor: pd.Series, gene_meta: pd.DataFrame | None = None) -> pd.DataFrame:
    """The noise floor as rows of :func:`error_long_table` (run ``"noise floor"``)."""
    out = pd.DataFrame({"run": "noise floor", "gene": floor.index.astype(str), "error": floor.to_numpy()})
    out["symbol"] = _symbols(out["gene"], gene_meta)
    return out


def wins(per_gene_a: pd.DataFrame, per_gene_b: pd.DataFrame, metric: str = "mae_z",
         gene_meta: pd.DataFrame | None = None) -> tuple[pd.DataFrame, dict]:
    """Per-gene errors of A and B side by side (genes both scored) and the comparison summary.

    Returns
    -------
    table
        Columns gene, symbol, a, b, winner ("A", "B" or "tie").
    summary
        :func:`dgex_core.evaluate.compare` of A (baseline) vs B plus ``share_a`` / ``share_b``.
    """
    from .evaluate import compare

    summary = compare(per_gene_a, per_gene_b, metric)
    m = summary["metric"]
    common = per_gene_a.index.intersection(per_gene_b.index)
    a, b = per_gene_a.loc[common, m].to_numpy(), per_gene_b.loc[common, m].to_numpy()
    winner = np.where(a < b, "A", np.where(b < a, "B", "tie"))
    t = pd.DataFrame({"gene": common.astype(str), "a": a, "b": b, "winner": winner})
    t["symbol"] = _symbols(t["gene"], gene_meta)
    n = max(len(t), 1)
    summary["share_a"] = float((winner == "A").sum() / n)
    summary["share_b"] = float((winner == "B").sum() / n)
    return t, summary


# ------------------------------------------------------------ coefficients
def top_weights(coef: pd.DataFrame, n_rows: int = 40, n_cols: int = 40) -> pd.DataFrame:
    """The landmarks (rows) and targets (columns) with the largest absolute weights, in
    hierarchical-clustering order (intercept dropped)."""
    w = coef.drop(index="(intercept)", errors="ignore")
    a = w.abs().to_numpy()
    rows = np.argsort(-a.max(axis=1))[:n_rows]
    cols = np.argsort(-a[rows].max(axis=0))[:n_cols]
    sub = w.iloc[np.sort(rows), np.sort(cols)]
    return sub.iloc[cluster_order(sub.to_numpy()), cluster_order(sub.to_numpy().T)]


def cluster_order(x: np.ndarray) -> np.ndarray:
    """Row order of ``x`` from average-linkage hierarchical clustering (correlation distance
    when defined, else Euclidean)."""
    from scipy.cluster.hierarchy import leaves_list, linkage

    x = np.asarray(x, dtype=float)
    if x.shape[0] < 3:
        return np.arange(x.shape[0])
    metric = "correlation" if (x.std(axis=1) > 0).all() and x.shape[1] > 1 else "euclidean"
    return leaves_list(linkage(x, method="average", metric=metric))


def strongest(coef: pd.DataFrame, *, target: str | None = None, landmark: str | None = None, n: int = 20) -> pd.DataFrame:
    """The ``n`` largest absolute weights of one target (over landmarks: columns landmark, weight)
    or of one landmark (over targets: columns target, weight), strongest first."""
    w = coef.drop(index="(intercept)", errors="ignore")
    s = w[target] if target is not None else w.loc[landmark]
    s = s.loc[s.abs().sort_values(ascending=False).index[:n]]
    return pd.DataFrame({"landmark" if target is not None else "target": s.index.astype(str),
                         "weight": s.to_numpy()})


# ----------------------------------------------------------------- predict
@dataclass
class PredictPreview:
    """What applying a run to a file would give: landmark coverage, OOD scores, a preview."""

    n_samples: int
    n_present: int
    n_needed: int
    missing: list
    ood: pd.DataFrame | None
    preview: pd.DataFrame | None
    n_clipped: pd.Series | None = None  # per sample: inferred values clipped to the training range
    clip_range: tuple[float, float] | None = None


def in_run_units(run: Run, matrix: ExpressionMatrix) -> ExpressionMatrix:
    """``matrix`` normalized per sample as the run's training data were (log2 CPM for a
    run trained on counts, log2(x+1) for one trained on TPM); unchanged otherwise."""
    from .preprocess import NORMALIZATIONS

    name = run.config.get("normalize")
    if name not in NORMALIZATIONS or NORMALIZATIONS[name][1] in matrix.provenance.transforms:
        return matrix
    fn, label = NORMALIZATIONS[name]
    return matrix.with_values(fn(matrix.values), label)


def predict_preview(run: Run, matrix: ExpressionMatrix, n_preview: int = 20, clip: bool = True) -> PredictPreview:
    """Coverage of the run's landmarks in ``matrix`` and, when complete, OOD scores, clipped
    counts (``n_clipped``, with ``clip``: inferred values clipped to the training range) and a preview."""
    from .landmarks import LandmarkList, match_landmarks
    from .predict import _landmark_columns, predict_matrix_block

    want = run.model.landmark_ids_
    matrix = in_run_units(run, matrix)
    cov = match_landmarks(LandmarkList.from_ids(list(want)), matrix.gene_ids, matrix.gene_meta)
    if cov.missing:
        return PredictPreview(matrix.n_samples, cov.n_present, len(want), cov.missing, None, None)
    pos = _landmark_columns(run, matrix.gene_ids, matrix.gene_meta, matrix.provenance.path or "input")
    clip_range = run.target_range() if clip else None
    out = predict_matrix_block(run, matrix, pos, clip=clip_range)
    cols = [c for c in ("ood_score", "ood_flag") if c in out.sample_meta]
    ood = out.sample_meta[cols] if cols and run.trust is not None else None  # no check: nothing to show
    k = min(n_preview, out.n_samples)
    prev = pd.DataFrame(out.values[:k, len(want):len(want) + 12], index=out.sample_ids[:k],
                        columns=out.gene_ids[len(want):len(want) + 12])
    return PredictPreview(matrix.n_samples, cov.n_present, len(want), [], ood, prev,
                          out.sample_meta["n_clipped"] if clip_range else None, clip_range)


EXPORT_SUFFIX = {"csv": ".csv", "parquet": ".parquet", "gct": ".gct", "gctx": ".gctx"}


def predictions_file(run: Run, matrix: ExpressionMatrix, folder: str | os.PathLike, fmt: str,
                     block_size: int = 4096, clip: bool = True) -> Path:
    """Write measured landmarks + inferred targets of ``matrix`` to ``folder`` in ``fmt``
    (inferred values clipped to the training range with ``clip``, counted in ``n_clipped``).

    Returns the written file (``<run>_predictions.<fmt>``), complete.
    """
    from .export import open_block_writer
    from .predict import _landmark_columns, output_gene_meta, predict_matrix_block

    if fmt not in EXPORT_SUFFIX:
        raise ValueError(f"format must be one of {sorted(EXPORT_SUFFIX)}, got {fmt!r}")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{run.name}_predictions{EXPORT_SUFFIX[fmt]}"
    matrix = in_run_units(run, matrix)
    pos = _landmark_columns(run, matrix.gene_ids, matrix.gene_meta, matrix.provenance.path or "input")
    genes = run.model.landmark_ids_.append(run.model.target_ids_)
    clip_range = run.target_range() if clip else None
    writer = open_block_writer(path, genes, output_gene_meta(run, clip_range), fmt)
    with writer:
        for s in range(0, matrix.n_samples, block_size):
            sl = slice(s, s + block_size)
            block = ExpressionMatrix(matrix.values[sl], matrix.sample_ids[sl], matrix.gene_ids,
                                     matrix.sample_meta.iloc[sl], matrix.gene_meta, matrix.provenance)
            writer.append(predict_matrix_block(run, block, pos, clip=clip_range))
    return path
