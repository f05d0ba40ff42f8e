"""Runs on disk: one folder per trained model with everything needed to use and judge it.

A run folder holds::

    config.json          what was trained on what: family, settings, dataset, split, versions
    genes.json           the ordered landmark and target ids
    model.json           the model's own description and small state      } the model,
    preprocess.npz       fitted preprocessing (npz, no pickle)            } see
    weights.safetensors  weights / training profiles (safetensors)        } models.persist
    trust.json, trust.npz  the out-of-distribution check (optional)
    reference.npz        the training samples' expression distribution (for quantile-normalizing external data)
    metrics.json         summaries (validation, test, noise floor, comparisons)
    per_gene.parquet     per-gene metrics on the test set, with the well-inferred flag
    per_sample.parquet   per-sample errors on the test set
    predictions.parquet  test-set predictions (optional)
    checksums.json       SHA-256 of every file above, written last

It is written under a temporary name and renamed when complete, so a crash never
leaves half a run; loading recomputes the checksums and refuses a run whose files are
missing, altered, or whose gene lists disagree with its weights.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd

from ._atomic import atomic_dir
from .errors import ModelError
from .trust import DistributionCheck

__all__ = ["Run", "default_runs_dir", "list_runs", "load_run", "load_saved_run", "run_fingerprint", "save_run",
           "saved_runs", "unique_run_name"]

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")


def default_runs_dir() -> Path:
    """``$DGEX_RUNS_DIR`` or ``runs/`` in the current folder."""
    return Path(os.environ.get("DGEX_RUNS_DIR", "runs"))


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _json_default(o):
    if isinstance(o, (np.integer,)):
        return int(o)
    if isinstance(o, (np.floating,)):
        return float(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, (Path,)):
        return str(o)
    raise TypeError(f"cannot write {type(o).__name__} to JSON")


def _write_json(path: Path, obj) -> None:
    path.write_text(json.dumps(obj, indent=1, default=_json_default, allow_nan=True))


@dataclass
class Run:
    """A trained model with its configuration and scores, as stored in a run folder."""

    name: str
    model: object
    config: dict
    metrics: dict = field(default_factory=dict)
    per_gene: pd.DataFrame | None = None
    per_sample: pd.DataFrame | None = None
    trust: DistributionCheck | None = None
    predictions: pd.DataFrame | None = None
    path: Path | None = None
    reference: np.ndarray | None = None  # sorted training distribution over all genes (quantile normalization)

    @property
    def family(self) -> str:
        return self.model.family

    def target_range(self) -> tuple[float, float] | None:
        """(lowest, highest) target value seen in training (original units), or ``None``
        for a run saved before dgex recorded it. Predictions are clipped to it by default."""
        r = self.config.get("target_range")
        return None if not r else (float(r["low"]), float(r["high"]))

    def well_inferred(self) -> pd.Series:
        """Per target: True when the model infers it well (validation Pearson r above the
        threshold and significant); all False when the run could not compute the flag
        (too few validation samples, or no test split to store it with)."""
        if self.per_gene is None or "well_inferred" not in self.per_gene:
            return pd.Series(False, index=self.model.target_ids_, name="well_inferred")
        return self.per_gene["well_inferred"].reindex(self.model.target_ids_).fillna(False).astype(bool)


def check_run_name(name: str, root: str | os.PathLike | None = None, *, overwrite: bool = False) -> Path:
    """The folder a run named ``name`` will be saved to; call it before a long fit, so a
    bad or taken name is refused before the work, not after.

    Raises
    ------
    ModelError
        If the name is not a plain folder name, or the run exists and ``overwrite`` is false.
    """
    if not _NAME.match(name):
        raise ModelError(f"run name {name!r} must be letters, digits, '.', '_' or '-' (max 100), "
                         "starting with a letter or digit")
    root = Path(root) if root is not None else default_runs_dir()
    target = root / name
    if target.exists() and not overwrite:
        raise ModelError(f"a run named {name!r} already exists in {root}; choose another name or overwrite it "
                         "(--overwrite)")
    return target


def save_run(run: Run, root: str | os.PathLike | None = None, *, overwrite: bool = False) -> Path:
    """Write ``run`` to ``root/run.name`` atomically and return the folder.

    Raises
    ------
    ModelError
        If the name is not a plain folder name, or the run exists and ``overwrite`` is false.
    """
    target = check_run_name(run.name, root, overwrite=overwrite)
    with atomic_dir(target, overwrite=overwrite) as tmp:
        run.model.save(tmp)
        config = {**run.config, "name": run.name, "family": run.model.family,
                  "saved": datetime.now(UTC).isoformat(timespec="seconds")}
        _write_json(tmp / "config.json", config)
        _write_json(tmp / "genes.json", {"landmarks": run.model.landmark_ids_.tolist(),
                                         "targets": run.model.target_ids_.tolist()})
        _write_json(tmp / "metrics.json", run.metrics)
        if run.per_gene is not None:
            run.per_gene.to_parquet(tmp / "per_gene.parquet")
        if run.per_sample is not None:
            run.per_sample.to_parquet(tmp / "per_sample.parquet")
        if run.predictions is not None:
            run.predictions.to_parquet(tmp / "predictions.parquet")
        if run.reference is not None:
            np.savez(tmp / "reference.npz", quantiles=np.asarray(run.reference, np.float64))
        if run.trust is not None:
            params, arrays = run.trust.get_state()
            _write_json(tmp / "trust.json", params)
            np.savez(tmp / "trust.npz", **arrays)
        sums = {p.name: _sha256(p) for p in sorted(tmp.iterdir()) if p.is_file()}
        _write_json(tmp / "checksums.json", sums)
    run.path = target
    return target


def verify_run(folder: str | os.PathLike) -> None:
    """Check a run folder's files against ``checksums.json``; raise :class:`ModelError` naming the problem."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ModelError(f"{folder}: no such run folder")
    ck = folder / "checksums.json"
    if not ck.exists():
        raise ModelError(f"{folder}: incomplete run (no checksums.json): it was not fully written, or is not a run")
    try:
        sums = json.loads(ck.read_text())
    except json.JSONDecodeError:
        raise ModelError(f"{folder}: checksums.json is damaged") from None
    for required in ("config.json", "genes.json", "model.json", "weights.safetensors", "preprocess.npz"):
        if required not in sums:
            raise ModelError(f"{folder}: checksums.json does not list {required}; the run is incomplete")
    for name, digest in sums.items():
        p = folder / name
        if not p.exists():
            raise ModelError(f"{folder}: {name} is missing; the run is incomplete")
        if _sha256(p) != digest:
            raise ModelError(f"{folder}: {name} was altered after the run was saved (checksum mismatch); "
                             "refusing to load it")


def load_run(folder: str | os.PathLike, *, verify: bool = True) -> Run:
    """Load a run folder, checking its files first (no pickle is ever loaded).

    Raises
    ------
    ModelError
        If the folder is incomplete, a file was altered, or the gene lists disagree.
    """
    from .models.persist import load_model

    folder = Path(folder)
    if verify:
        verify_run(folder)
    config = json.loads((folder / "config.json").read_text())
    genes = json.loads((folder / "genes.json").read_text())
    model = load_model(folder)
    if genes["landmarks"] != model.landmark_ids_.tolist() or genes["targets"] != model.target_ids_.tolist():
        raise ModelError(f"{folder}: genes.json disagrees with the model's gene lists")
    metrics = json.loads((folder / "metrics.json").read_text()) if (folder / "metrics.json").exists() else {}
    per_gene = pd.read_parquet(folder / "per_gene.parquet") if (folder / "per_gene.parquet").exists() else None
    per_sample = pd.read_parquet(folder / "per_sample.parquet") if (folder / "per_sample.parquet").exists() else None
    preds = pd.read_parquet(folder / "predictions.parquet") if (folder / "predictions.parquet").exists() else None
    trust = None
    if (folder / "trust.json").exists():
        with np.load(folder / "trust.npz", allow_pickle=False) as z:
            trust = DistributionCheck.from_state(json.loads((folder / "trust.json").read_text()), dict(z))
    reference = None
    if (folder / "reference.npz").exists():
        with np.load(folder / "reference.npz", allow_pickle=False) as z:
            reference = z["quantiles"]
    return Run(folder.name, model, config, metrics, per_gene, per_sample, trust, preds, folder, reference)


def list_runs(root: str | os.PathLike | None = None) -> pd.DataFrame:
    """One row per complete run under ``root``: name, family, dataset, test MAE, floor, saved time.

    Folders being written (temporary names) and incomplete ones are skipped; a run
    whose metadata cannot be read is listed with its problem in ``status``.
    """
    root = Path(root) if root is not None else default_runs_dir()
    rows = []
    if root.is_dir():
        for d in sorted(root.iterdir()):
            if not d.is_dir() or d.name.startswith(".") or not (d / "checksums.json").exists():
                continue
            try:
                cfg = json.loads((d / "config.json").read_text())
                met = json.loads((d / "metrics.json").read_text())
                test = met.get("test", {})
                rows.append({
                    "name": d.name, "family": cfg.get("family"), "dataset": cfg.get("dataset", {}).get("name"),
                    "n_landmarks": cfg.get("n_landmarks"), "n_targets": cfg.get("n_targets"),
                    "test_mae": test.get("mean_mae"), "test_pearson": test.get("mean_pearson"),
                    "floor": test.get("mean_floor"), "saved": cfg.get("saved"), "status": "ok",
                })
            except (OSError, json.JSONDecodeError, AttributeError) as e:
                rows.append({"name": d.name, "status": f"unreadable: {e}"})
    cols = ["name", "family", "dataset", "n_landmarks", "n_targets", "test_mae", "test_pearson", "floor",
            "saved", "status"]
    return pd.DataFrame(rows, columns=cols)


def saved_runs() -> pd.DataFrame:
    """The complete runs under :func:`default_runs_dir` (where the app saves them)."""
    return list_runs(default_runs_dir())


def load_saved_run(name: str) -> Run:
    """The run called ``name`` under :func:`default_runs_dir`."""
    return load_run(default_runs_dir() / name)


def unique_run_name(base: str, taken) -> str:
    """``base``, or ``base-2``, ``base-3``... whichever is not in ``taken`` nor on disk."""
    taken = set(taken) | set(saved_runs()["name"].tolist())
    name, i = base, 2
    while name in taken:
        name, i = f"{base}-{i}", i + 1
    return name


def run_fingerprint(run: Run) -> str:
    """A short digest of a run's configuration and scores: equal for the same saved run,
    different for two trainings (their fit times, split digests or settings differ)."""
    blob = json.dumps({"name": run.name, "config": run.config, "metrics": run.metrics}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]
