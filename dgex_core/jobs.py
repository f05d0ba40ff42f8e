"""Background training that outlives a browser session: the job and the users who own it.

:class:`TrainingJob` runs ``train_run`` (then ``save_run``) in a thread with progress
events and a stop flag. A browser reload or a second tab makes a new Streamlit
session, so what must outlive one (the training job, its dataset and settings, the
finished runs, the private folder) lives in a process-wide registry of
:class:`UserSlot` objects keyed by an unguessable token the browser keeps (the app puts
it in the URL and a cookie). No Streamlit here.
"""

from __future__ import annotations

import queue
import re
import secrets
import tempfile
import threading
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from .dataset import Dataset
from .errors import DatasetError, ModelError
from .store import Run, default_runs_dir, save_run

__all__ = ["PLACE_KEYS", "USER_IDLE_SECONDS", "TrainingJob", "UserSlot", "find_user", "new_session_dir", "new_user"]


def new_session_dir() -> Path:
    """A fresh private temporary folder for one user's uploads and downloads."""
    return Path(tempfile.mkdtemp(prefix="dgex-session-"))


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

