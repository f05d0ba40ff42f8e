"""The ``dgex`` command line: everything the dashboard does, scriptable.

Each command prints a one-line reason and exits with status 1 on failure (2 for a
usage error); ``--debug`` shows the traceback instead. Long work shows a progress bar
on standard error.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import sys
from collections.abc import Sequence
from pathlib import Path

from . import __version__
from .errors import DgexError, ModelError
from .models.factory import FAMILIES


# ------------------------------------------------------------------------- helpers
class _Bar:
    """A tqdm bar driven by dgex's ``progress(step, total, metrics)`` callbacks."""

    def __init__(self, desc: str, unit: str = "it") -> None:
        from tqdm import tqdm

        self._tqdm = tqdm
        self.bar = None
        self.desc, self.unit = desc, unit

    def __call__(self, step: int, total, metrics: dict):
        if self.bar is None or (total is not None and self.bar.total != total):
            if self.bar is not None:
                self.bar.close()
            self.bar = self._tqdm(total=total, desc=self.desc, unit=self.unit, file=sys.stderr, leave=False,
                                  dynamic_ncols=True, disable=None)
        self.bar.n = step
        post = {k: (f"{v:.4f}" if isinstance(v, float) else v) for k, v in metrics.items()
                if k in ("part", "val_mae", "best_val_mae", "train_loss", "stage", "epoch", "group", "k", "alpha")}
        if post:
            self.bar.set_postfix(post, refresh=False)
        self.bar.refresh()
        return None

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _load_dataset(data: str, landmarks: str | None, allow_missing: bool, sample_sheet: str | None = None,
                  normalize: str | None = None, platform: str | None = None):
    """``demo`` or a file plus a landmark list -> Dataset (lazy for files: read by blocks)."""
    from .dataset import Dataset

    if data == "demo" or data.startswith("demo:"):
        from .demo import DemoConfig, load_demo, parse_size

        cfg = DemoConfig()
        if data != "demo":
            try:
                n, t = parse_size(data.split(":", 1)[1])
            except ValueError:
                raise DgexError(f"--data {data}: write demo or demo:SAMPLESxTARGETS, e.g. demo:2000x500") from None
            cfg = DemoConfig(n_samples=n, n_targets=t)
        return load_demo(cfg).dataset(), data
    if not landmarks:
        raise DgexError("--landmarks is required with --data FILE (a LINCS gene-info file, an L1000 GCT/GCTX, "
                        "or one id per line)")
    from .io import open_matrix
    from .landmarks import read_landmarks

    lm_list = read_landmarks(landmarks)
    bar = _Bar(f"cache {Path(data).name}", "samples")
    try:
        m = open_matrix(data, progress=bar, landmark_ids=_list_ids(lm_list), platform=platform)
    finally:
        bar.close()
    _print_reader_notes(m, sys.stderr)
    m = _normalized(m, normalize)
    if sample_sheet:
        from .io.sheets import read_sample_sheet, sheet_for_samples

        rows, note = sheet_for_samples(read_sample_sheet(sample_sheet), m.sample_ids, sample_sheet)
        if note:
            print(note, file=sys.stderr)
        m = m.with_sample_meta(rows)
    for note in lm_list.notes:
        print(f"{landmarks}: {note}", file=sys.stderr)
    ds = Dataset.from_matrix(m, lm_list, allow_missing=allow_missing)
    if ds.coverage is not None:
        print(ds.coverage.summary(), file=sys.stderr)
    return ds, Path(data).name


#: What a reader noted about a file that changes how its cells were read.
READER_NOTES = ("decimal_comma",)


def _print_reader_notes(m, stream) -> None:
    notes = getattr(m.provenance, "notes", None) or {}
    for key in READER_NOTES:
        if notes.get(key):
            print(f"{m.provenance.path}: note: {notes[key]}", file=stream)


def _normalized(m, normalize: str | None, check: bool = True):
    """The matrix through the chosen per-sample normalization (``log2cpm``, ``log2``),
    recorded in its provenance. Not chosen (None) and ``check``: values that look
    unlogged (counts, TPM, intensities) are refused with the choices, since a model of
    log2 expression trained or scored on them is silently wrong; ``none`` takes the
    values as they are."""
    from .preprocess import AS_GIVEN, NORMALIZATIONS, matrix_scale_problem

    if normalize == "none":  # recorded, so a run trained on these values expects them when it predicts
        return m.with_recorded(AS_GIVEN)
    if not normalize:
        problem = matrix_scale_problem(m) if check else None
        if problem:
            raise DgexError(f"{m.provenance.path}: {problem}: choose --normalize log2cpm (counts), --normalize "
                            "log2 (TPM, FPKM, linear intensities: log2(x+1)) or --normalize none (as they are)")
        return m
    if normalize not in NORMALIZATIONS:
        raise DgexError(f"--normalize {normalize}: use none, {' or '.join(NORMALIZATIONS)}")
    fn, label = NORMALIZATIONS[normalize]
    return m.with_row_transform(fn, label)


def _positive_int(text: str) -> int:
    """argparse type: a whole number of at least 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _model_from_args(args):
    from .models.factory import make_model

    settings = {}
    if args.config:
        text = Path(args.config).read_text()
        try:
            settings = json.loads(text)
        except json.JSONDecodeError:
            import tomllib

            try:
                settings = tomllib.loads(text)
            except tomllib.TOMLDecodeError as e:
                raise DgexError(f"{args.config}: neither JSON nor TOML ({e})") from None
        if not isinstance(settings, dict):
            raise DgexError(f"{args.config}: the settings must be a JSON object or a TOML table of name: value "
                            f"(e.g. {{\"mlp\": {{\"hidden\": [3000]}}}}), not a {type(settings).__name__}")
        settings = settings.get(args.model, settings)
        if not isinstance(settings, dict):
            raise DgexError(f"{args.config}: the {args.model!r} settings must be an object of name: value, "
                            f"not a {type(settings).__name__}")
        settings = dict(settings)
    if args.input_transform:
        settings["input_transform"] = args.input_transform
    if args.model == "choice":
        if getattr(args, "parts", None):
            settings["parts"] = [p.strip() for p in args.parts.split(",") if p.strip()]
        if args.checkpoint_dir:
            settings["mlp"] = {**(settings.get("mlp") or {}), "checkpoint_dir": args.checkpoint_dir}
    elif args.checkpoint_dir:
        settings["checkpoint_dir"] = args.checkpoint_dir
    try:
        return make_model(args.model, **settings)  # settings checked now, not after loading the data
    except ModelError as e:
        raise DgexError(f"bad model setting in {args.config or 'the command line'}: {e}") from None


def _open_run(name: str, runs_dir: str):
    """A run given by name (in ``runs_dir``) or by its folder."""
    from .store import load_run

    return load_run(name if Path(name).is_dir() else Path(runs_dir) / name)


def _fmt(x, nd=4):
    return "-" if x is None else (f"{x:.{nd}f}" if isinstance(x, float) else str(x))


def _print_summary(name: str, s: dict, label: str) -> None:
    line = (f"{label}: mean per-gene MAE {_fmt(s.get('mean_mae'))} (sd {_fmt(s.get('sd_mae'))}) "
            f"[{s.get('metric')}], mean Pearson r {_fmt(s.get('mean_pearson'), 3)}, {s.get('n_genes')} genes")
    if "mean_floor" in s:
        line += f"; noise floor {_fmt(s['mean_floor'])} (x{_fmt(s['ratio_to_floor'], 3)})"
    print(line)
    for g, gs in (s.get("groups") or {}).items():
        extra = f", floor {_fmt(gs.get('mean_floor'))} (x{_fmt(gs.get('ratio_to_floor'), 3)})" if "mean_floor" in gs else ""
        print(f"  {g:>8}: {gs['n_genes']} genes, MAE {_fmt(gs['mean_mae'])}{extra}")


# ------------------------------------------------------------------------ commands
def _cmd_demo(args) -> int:
    from .demo import DemoConfig, load_demo

    data = load_demo(DemoConfig(n_samples=args.samples, n_targets=args.targets, seed=args.seed))
    print(data.describe())
    return 0


def _list_ids(lm_list) -> set[str] | None:
    """Every id of a landmark list (they decide a table's orientation in every command)."""
    return None if lm_list is None else lm_list.all_ids()


def _cmd_inspect(args) -> int:
    import numpy as np

    from .io import open_matrix, sniff
    from .lazy import block_rows
    from .preprocess import scale_problem

    fmt = sniff(args.path)
    lm_list = None
    if args.landmarks:
        from .landmarks import read_landmarks

        lm_list = read_landmarks(args.landmarks)
    bar = _Bar(f"cache {Path(args.path).name}", "samples")
    try:
        m = open_matrix(args.path, progress=bar, landmark_ids=_list_ids(lm_list), platform=args.platform)
    finally:
        bar.close()
    m = _normalized(m, args.normalize, check=False)
    print(f"{args.path}: {fmt}, {m.n_samples} samples x {m.n_genes} genes ({m.dtype})")
    _print_reader_notes(m, sys.stdout)
    # statistics from a few blocks spread over the file (all of it when it is small)
    per_block = max(1, block_rows(m.n_genes, 8 * 2**20))
    n_blocks = min(8, -(-m.n_samples // per_block))
    starts = np.unique(np.linspace(0, max(0, m.n_samples - per_block), n_blocks).astype(int))
    rows = np.unique(np.concatenate([np.arange(a, min(a + per_block, m.n_samples)) for a in starts]))
    v = m.read(rows)
    problem = None if args.normalize else scale_problem(v)  # on the values sampled for the statistics
    if problem:
        print(f"note: {problem}; train with --normalize log2cpm (counts) or --normalize log2 (TPM, intensities)")
    finite = v[np.isfinite(v)]
    where = ("all samples" if rows.size == m.n_samples
             else f"from a sample of {rows.size:,} of the {m.n_samples:,} samples in {starts.size} blocks")
    if finite.size:
        q = np.quantile(finite, [0, 0.5, 1])
        print(f"values ({where}): min {q[0]:.3g}, median {q[1]:.3g}, max {q[2]:.3g}; missing {v.size - finite.size}")
    if len(m.sample_meta.columns):
        print(f"sample metadata: {', '.join(map(str, m.sample_meta.columns[:12]))}")
    if len(m.gene_meta.columns):
        print(f"gene metadata: {', '.join(map(str, m.gene_meta.columns[:12]))}")
    if lm_list is not None:
        from .landmarks import match_landmarks

        for note in lm_list.notes:
            print(f"{args.landmarks}: {note}")
        cov = match_landmarks(lm_list, m.gene_ids, m.gene_meta)
        print(cov.summary(max_missing=args.max_missing))
    return 0


def _run_name(args) -> str:
    """The run's name: ``--name``, or ``<data file stem>-<model>``."""
    data = args.data.replace(":", "-") if args.data == "demo" or args.data.startswith("demo:") else Path(args.data).name
    return args.name or f"{data.split('.')[0]}-{args.model}"


def _ddp_checkpoints(args) -> Path:
    """Where a DDP training keeps its per-epoch checkpoints unless ``--checkpoint-dir`` says:
    ``<runs dir>/.checkpoints/<run name>`` (removed once the run is saved)."""
    return Path(args.checkpoint_dir or Path(args.runs_dir) / ".checkpoints" / _run_name(args))


def _cmd_train(args) -> int:
    from .distributed import ddp
    from .store import check_run_name, save_run
    from .training import evaluate_external, fit_split, train_run

    rank, world = ddp.world()
    if world > 1 and args.model != "mlp":
        raise DgexError(f"torch DDP trains the network (--model mlp); {args.model} runs on one process, or on a "
                        "Dask cluster with --dask")
    name = _run_name(args)
    check_run_name(name, args.runs_dir, overwrite=args.overwrite)  # refused now, not after the fit
    own_checkpoints = world > 1 and not args.checkpoint_dir
    if own_checkpoints:
        args.checkpoint_dir = str(_ddp_checkpoints(args))
    if rank > 0:
        ddp.wait_for_all()  # rank 0 reads (and caches) the data first
    ds, dname = _load_dataset(args.data, args.landmarks, args.allow_missing_landmarks, args.sample_sheet,
                              args.normalize, args.platform)
    if rank == 0 and world > 1:
        ddp.wait_for_all()
    model = _model_from_args(args)
    if rank > 0:  # the other ranks train their shards alongside rank 0, which scores and saves the run
        fit_split(model, ds, ds.split(val=args.val, test=args.test, seed=args.seed, group_by=args.group_by))
        return 0
    bar = _Bar(f"train {args.model}", "epoch" if args.model in ("mlp", "choice") else "step")
    try:
        run = train_run(ds, model, name, val=args.val, test=args.test, seed=args.seed, group_by=args.group_by,
                        progress=bar, dataset_name=dname, keep_predictions=args.keep_predictions)
    finally:
        bar.close()
    if args.external:
        ext, ename = _load_dataset(args.external, args.landmarks or None, args.allow_missing_landmarks,
                                   normalize=args.normalize)
        ev = evaluate_external(run, ext, quantile=args.quantile)
        run.metrics["external"] = {"dataset": ename, **ev.summary}
    path = save_run(run, args.runs_dir, overwrite=args.overwrite)
    if own_checkpoints:
        import shutil

        shutil.rmtree(args.checkpoint_dir, ignore_errors=True)
        with contextlib.suppress(OSError):  # the .checkpoints folder too, once empty
            Path(args.checkpoint_dir).parent.rmdir()
    print(f"run {name} ({run.family}) saved to {path}: {run.config['split']['n_train']} train, "
          f"{run.config['split']['n_val']} validation, {run.config['split']['n_test']} test samples; "
          f"{len(run.model.landmark_ids_)} landmarks -> {len(run.model.target_ids_)} targets; "
          f"fit {run.metrics['fit_seconds']:.1f} s")
    if "test" in run.metrics:
        _print_summary(name, run.metrics["test"], "test")
    if "n_well_inferred" in run.metrics:
        p = run.config.get("well_inferred_p")
        print(f"well inferred (validation r >= {run.config['well_inferred_r']}"
              + (f", p < {p} on {run.config['split']['n_val']} samples" if p else "") + "): "
              f"{run.metrics['n_well_inferred']} of {len(run.model.target_ids_)} targets")
    elif "well_inferred_note" in run.metrics:
        print(f"well inferred: {run.metrics['well_inferred_note']} (a larger --val gives it)")
    if "external" in run.metrics:
        _print_summary(name, run.metrics["external"], f"external ({run.metrics['external']['dataset']})")
    return 0


def _cmd_evaluate(args) -> int:
    from .training import evaluate_external

    run = _open_run(args.run, args.runs_dir)
    if not args.data:
        if "test" not in run.metrics:
            raise DgexError(f"run {run.name} has no test-set metrics; give --data to score it on a dataset")
        _print_summary(run.name, run.metrics["test"], "test")
        return 0
    from .dataset import Dataset
    from .io import open_matrix

    m = _normalized(open_matrix(args.data, landmark_ids=run.model.landmark_ids_, platform=args.platform),
                    args.normalize or run.config.get("normalize"))
    ds = Dataset.from_matrix(m, list(run.model.landmark_ids_), allow_missing=False)
    bar = _Bar("evaluate", "samples")
    try:
        ev = evaluate_external(run, ds, quantile=args.quantile, progress=bar)
    finally:
        bar.close()
    _print_summary(run.name, ev.summary, f"{Path(args.data).name}{' (quantile-normalized)' if args.quantile else ''}")
    if args.per_gene:
        ev.per_gene.to_csv(args.per_gene, sep="\t" if args.per_gene.endswith(".tsv") else ",")
        print(f"per-gene metrics written to {args.per_gene}")
    return 0


def _cmd_predict(args) -> int:
    from .prediction import MAX_IMPUTED_SHARE, predict_file

    run = _open_run(args.run, args.runs_dir)
    bar = _Bar("predict", "samples")
    try:
        s = predict_file(run, args.input, args.output, format=args.format, block_size=args.block_size,
                         compression=args.compression,
                         missing=args.missing, progress=bar, clip=not args.no_clip,
                         normalize=args.normalize or "run", platform=args.platform, gather=args.gather)
    finally:
        bar.close()
    print(f"{s['samples']} samples: {s['landmarks']} measured + {s['targets']} inferred genes written to "
          f"{s['output']}; "
          + (f"{s['ood_flagged']} samples flagged out of distribution" if s.get("ood_checked", True) else
             "no out-of-distribution check in this run (too few training samples, or saved before dgex had one)"
             + (f"; {s['ood_flagged']} samples flagged for imputed landmarks" if s["ood_flagged"] else ""))
          + (f"; missing landmarks imputed in {s['samples_imputed']} samples" if s["samples_imputed"] else "")
          + (f" ({s['samples_mostly_imputed']} of them flagged: more than {MAX_IMPUTED_SHARE:.0%} of their landmarks "
             "imputed)" if s.get("samples_mostly_imputed") else "")
          + (f"; {s['values_clipped']:,} inferred values in {s['samples_clipped']} samples clipped to the training "
             f"range {s['clip_range'][0]:.3g}-{s['clip_range'][1]:.3g} (n_clipped per sample; --no-clip keeps them)"
             if s.get("values_clipped") else "")
          + ("; not clipped: the run does not record its training range (train it again to get one)"
             if not args.no_clip and s.get("clip_range") is None else "")
          + (f"; gene roles and well_inferred flags in {s['gene_meta']}" if s.get("gene_meta") else ""))
    return 0


def _cmd_runs(args) -> int:
    from .store import list_runs

    df = list_runs(args.runs_dir)
    if df.empty:
        print(f"no runs in {args.runs_dir}")
        return 0
    with __import__("pandas").option_context("display.width", 200, "display.max_columns", 20):
        print(df.to_string(index=False, float_format=lambda v: f"{v:.4f}"))
    return 0


def _cmd_compare(args) -> int:
    from .evaluation import compare

    runs = [_open_run(r, args.runs_dir) for r in (args.run_a, args.run_b)]
    a, b = runs
    if a.per_gene is None or b.per_gene is None:
        raise DgexError("both runs need per-gene test metrics")
    c = compare(a.per_gene, b.per_gene)
    print(f"{b.name} vs {a.name} on {c['n_genes']} common genes [{c['metric']}]: mean {_fmt(c['mean_other'])} vs "
          f"{_fmt(c['mean_baseline'])}; relative improvement {100 * c['relative_improvement']:.2f}%; "
          f"{b.name} better on {100 * c['share_genes_improved']:.2f}% of genes")
    if args.per_gene:
        import pandas as pd

        both = pd.DataFrame({a.name: a.per_gene[c["metric"]], b.name: b.per_gene[c["metric"]]}).dropna()
        both.to_csv(args.per_gene, sep="\t" if args.per_gene.endswith(".tsv") else ",")
        print(f"per-gene comparison written to {args.per_gene}")
    return 0


def _cmd_explain(args) -> int:
    import pandas as pd

    from . import attribution
    from .genes import symbol_column

    run = _open_run(args.run, args.runs_dir)
    source = args.data or run.config.get("dataset", {}).get("name", "")
    if not args.data and not str(source).startswith("demo"):
        raise DgexError(f"run {run.name} was trained on {source}; give --data with the samples to explain it on")
    if str(source).startswith("demo"):
        ds, _ = _load_dataset(source, None, False)
    else:
        from .dataset import Dataset
        from .io import open_matrix

        m = open_matrix(source, landmark_ids=run.model.landmark_ids_)
        ds = Dataset.from_matrix(m, list(run.model.landmark_ids_), allow_missing=False)
    target = args.target
    if target not in set(run.model.target_ids_):
        # a symbol: look it up in the dataset's target metadata
        meta, col = ds.target_meta, symbol_column(ds.target_meta)
        hits = [] if col is None else list(meta.index[meta[col].astype(str).str.upper() == target.upper()])
        if not hits:
            raise DgexError(f"{target} is neither a target id of run {run.name} nor a target symbol in the data")
        target = hits[0]
    X, meta = attribution.explain_samples(run, ds, args.on, max_samples=args.samples or None)
    method = "integrated_gradients" if args.method == "ig" else "gradient"
    kw = {"statistic": "mean_abs"} if method == "integrated_gradients" else {}
    attr = attribution.attributions(run.model, X, method=method, targets=[target], **kw)[target]
    table = pd.DataFrame({"attribution": attr})
    if "symbol" in ds.landmark_meta:
        table.insert(0, "symbol", ds.landmark_meta["symbol"].reindex(table.index).to_numpy())
    if run.family != "linear":
        table["abs_rank"] = table["attribution"].abs().rank(ascending=False, method="first").astype(int)
    if args.group_by:
        if args.group_by not in meta:
            raise DgexError(f"no sample-metadata column {args.group_by!r}; columns: {list(meta.columns)}")
        by = attribution.group_attributions(run.model, X, meta[args.group_by].astype(str).where(meta[args.group_by].notna()),
                                        method=method, targets=[target], **kw)
        for g, frame in by.items():
            table[f"{args.group_by}={g}"] = frame[target].reindex(table.index).to_numpy()
        score = attribution.context_dependence(by)[target]
        print(f"context dependence of {target} across {len(by)} {args.group_by} groups: {score:.3f}")
    table = table.reindex(table["attribution"].abs().sort_values(ascending=False).index)
    out = Path(args.output)
    from ._atomic import atomic_path

    with atomic_path(out) as tmp:
        table.to_csv(tmp, sep="\t" if out.suffix == ".tsv" else ",", index_label="landmark")
    top = ", ".join(f"{i} ({v:+.3f})" for i, v in table["attribution"].head(5).items())
    print(f"{target} in run {run.name} ({run.family}, {method}, standardized units, {len(X):,} "
          f"{'samples' if args.on == 'all' else attribution.SAMPLE_SETS[args.on]}"
          + (f", {X.attrs['n_incomplete']:,} with missing landmarks left out" if X.attrs.get("n_incomplete") else "")
          + f"): top landmarks {top}; "
          f"table written to {out}")
    return 0


def _cmd_fetch(args) -> int:
    from . import fetching

    if args.list or not args.name:
        for src in fetching.list_sources():
            print(f"{src.name:<18} {src.size_hint or '':>10}  {src.description}")
        print(f"{'geo:GSEnnnnn':<18} {'':>10}  any GEO series by accession (series matrix, every platform)")
        return 0
    state = {"file": None, "bar": None}

    def progress(done, total, info):
        if info.get("file") != state["file"]:
            if state["bar"] is not None:
                state["bar"].close()
            state["file"] = info.get("file")
            state["bar"] = _Bar(f"{info.get('file')}{' (cached)' if info.get('cached') else ''}", "B")
        state["bar"](done, total, {})

    try:
        paths = fetching.fetch(args.name, args.cache_dir, progress=progress, mirror=args.mirror, force=args.force)
    finally:
        if state["bar"] is not None:
            state["bar"].close()
    for p in paths:
        print(p)
    return 0


# -------------------------------------------------------------------------- parser
def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="dgex", description="Infer the whole transcriptome from landmark genes.")
    p.add_argument("--version", action="version", version=f"dgex {__version__}")
    p.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    sub = p.add_subparsers(dest="command", required=True)
    runs_dir = argparse.ArgumentParser(add_help=False)
    runs_dir.add_argument("--runs-dir", default=None, help="folder of runs (default $DGEX_RUNS_DIR or ./runs)")
    dask = argparse.ArgumentParser(add_help=False)
    dask.add_argument("--dask", metavar="SCHEDULER", default=None,
                      help="run the heavy passes on a Dask cluster: local:N (N worker processes here) or a scheduler "
                           "address (tcp://host:8786); default $DGEX_DASK_SCHEDULER, else this process. Linear "
                           "regression's X'X and X'Y are summed per partition on the workers")

    d = sub.add_parser("demo", help="build (or load from cache) the built-in synthetic demo and describe it")
    d.add_argument("--samples", type=int, default=10_000, help="number of samples (default 10,000)")
    d.add_argument("--targets", type=int, default=4_000, help="number of target genes (default 4,000)")
    d.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    d.set_defaults(func=_cmd_demo)

    i = sub.add_parser("inspect", help="read an expression file: shape, metadata, landmark coverage")
    i.add_argument("path", help="GCT, GCTX, GEO series matrix / SOFT, CSV/TSV/Parquet, h5ad or ARCHS4 file")
    i.add_argument("--landmarks", help="landmark list (LINCS gene info, L1000 GCT/GCTX, one id per line)")
    i.add_argument("--max-missing", type=int, default=20, help="missing landmarks to list (default 20)")
    i.add_argument("--platform", help="the platform to read from a GEO SOFT file that spans several (e.g. GPL96)")
    i.add_argument("--normalize", choices=["none", "log2cpm", "log2"],
                   help="per-sample normalization (counts: log2cpm; TPM, intensities: log2)")
    i.set_defaults(func=_cmd_inspect)

    t = sub.add_parser("train", parents=[runs_dir, dask], help="train a model and write a run folder")
    t.add_argument("--data", required=True,
                   help="expression file, or 'demo' for the built-in demo ('demo:2000x500' for a smaller one)")
    t.add_argument("--landmarks", help="landmark list (required with a file)")
    t.add_argument("--model", choices=list(FAMILIES), default="linear",
                   help="model family (default linear); choice: per gene, the family or blend of families with the "
                        "lowest validation error")
    t.add_argument("--parts", help="(choice) families to choose among, comma-separated (default linear,mlp)")
    t.add_argument("--config", help="JSON or TOML file of model settings (optionally under a "
                                    "[linear]/[knn]/[mlp]/[choice] key)")
    t.add_argument("--platform", help="the platform to read from a GEO SOFT file that spans several (e.g. GPL96)")
    t.add_argument("--normalize", choices=["none", "log2cpm", "log2"],
                   help="per-sample normalization of the whole profile before anything else: log2cpm = "
                        "log2(counts per million + 1), for RNA-seq counts such as ARCHS4; log2 = log2(x+1), for "
                        "TPM, FPKM or linear intensities; none = as they are (recorded in the run; without it, "
                        "values that look unlogged are refused)")
    t.add_argument("--input-transform", choices=["none", "log2", "quantile", "log2+quantile"],
                   help="landmark preprocessing before standardization (default none)")
    t.add_argument("--name", help="run name (default: <data>-<model>)")
    t.add_argument("--val", type=float, default=0.1, help="validation fraction (default 0.1)")
    t.add_argument("--test", type=float, default=0.1, help="test fraction (default 0.1)")
    t.add_argument("--seed", type=int, default=0, help="split seed (default 0)")
    t.add_argument("--group-by", help="sample-metadata column whose groups stay on one side of the split")
    t.add_argument("--sample-sheet", help="CSV/TSV of sample annotations (first column = sample id)")
    t.add_argument("--external", help="also score the run on this external dataset")
    t.add_argument("--quantile", action="store_true",
                   help="quantile-normalize the external dataset to the training distribution")
    t.add_argument("--allow-missing-landmarks", action="store_true", help="proceed with the landmarks present")
    t.add_argument("--checkpoint-dir", help="(mlp) write a checkpoint each epoch here; rerun to resume")
    t.add_argument("--nproc", type=_positive_int, default=None, metavar="N",
                   help="(mlp) train on N processes of this machine with torch DDP (gloo on CPU, NCCL on GPUs), "
                        "each on its shard of the samples; across machines run torchrun -m dgex_core.cli train")
    t.add_argument("--keep-predictions", action="store_true", help="store the test-set predictions in the run")
    t.add_argument("--overwrite", action="store_true", help="replace a run of the same name")
    t.set_defaults(func=_cmd_train)

    e = sub.add_parser("evaluate", parents=[runs_dir, dask], help="score a run on its test split or an external dataset")
    e.add_argument("run", help="run name (in --runs-dir) or run folder")
    e.add_argument("--data", help="external expression file with measured targets")
    e.add_argument("--quantile", action="store_true", help="quantile-normalize it to the training distribution")
    e.add_argument("--per-gene", help="write per-gene metrics to this CSV/TSV")
    e.add_argument("--platform", help="the platform to read from a GEO SOFT file that spans several (e.g. GPL96)")
    e.add_argument("--normalize", choices=["none", "log2cpm", "log2"],
                   help="per-sample normalization of --data (default: the run's own)")
    e.set_defaults(func=_cmd_evaluate)

    pr = sub.add_parser("predict", parents=[runs_dir, dask], help="apply a run to landmark-only profiles")
    pr.add_argument("run", help="run name (in --runs-dir) or run folder")
    pr.add_argument("input", help="landmark profiles (L1000 GCT/GCTX, a table...)")
    pr.add_argument("-o", "--output", required=True, help="output file: .gctx, .gct, .parquet, .csv or .tsv")
    pr.add_argument("--format", choices=["gctx", "gct", "parquet", "csv", "tsv", "zarr"],
                    help="override the suffix (.zarr: an AnnData-zarr store, a folder)")
    pr.add_argument("--block-size", type=_positive_int, default=None,
                    help="samples per block (default: ~128 MB of output per block, $DGEX_BLOCK_MB)")
    pr.add_argument("--compression", choices=["none", "gzip", "lzf", "lz4", "zstd", "snappy"],
                    help="output codec: GCTX none (default, fastest), gzip (cmapPy's; ~10x slower, ~15%% smaller) "
                         "or lzf; Parquet lz4 (default), zstd, snappy, gzip or none")
    pr.add_argument("--gather", action="store_true",
                    help="(--dask) write every block from this process, also to an uncompressed GCTX or zarr, "
                         "which the workers otherwise write (that needs a folder they share)")
    pr.add_argument("--no-clip", action="store_true",
                    help="keep inferred values outside the range of the training targets (default: clip them to it "
                         "and count them per sample in n_clipped)")
    pr.add_argument("--platform", help="the platform to read from a GEO SOFT file that spans several (e.g. GPL96)")
    pr.add_argument("--normalize", choices=["none", "log2cpm", "log2"],
                    help="per-sample normalization of the input (default: the run's own, e.g. log2cpm for a run "
                         "trained on counts)")
    pr.add_argument("--missing", choices=["refuse", "impute"], default="refuse",
                    help="missing landmark values: refuse the input (default) or impute the training means; "
                         "the output's n_imputed column says where")
    pr.set_defaults(func=_cmd_predict)

    r = sub.add_parser("runs", parents=[runs_dir], help="list runs with their summaries")
    r.set_defaults(func=_cmd_runs)

    c = sub.add_parser("compare", parents=[runs_dir], help="per-gene comparison of two runs")
    c.add_argument("run_a", help="baseline run")
    c.add_argument("run_b", help="run compared with it")
    c.add_argument("--per-gene", help="write both runs' per-gene errors to this CSV/TSV")
    c.set_defaults(func=_cmd_compare)

    x = sub.add_parser("explain", parents=[runs_dir],
                       help="which landmarks drive a target: network attributions or linear weights")
    x.add_argument("run", help="run name (in --runs-dir) or run folder")
    x.add_argument("--target", required=True, help="target gene id or symbol")
    x.add_argument("--data", help="samples to explain on (default: the run's demo data)")
    x.add_argument("--method", choices=["gradient", "ig"], default="gradient",
                   help="mean input gradient (default) or integrated gradients (mean |IG|) against the training mean")
    x.add_argument("--group-by", help="also per group of this sample-metadata column, with a context-dependence score")
    x.add_argument("--on", choices=["all", "train", "val", "test"], default="all",
                   help="which samples: all of --data (default), or a part of the run's own split of it")
    x.add_argument("--samples", type=int, help="explain on a random subset of this many samples")
    x.add_argument("-o", "--output", required=True, help="CSV/TSV table: one row per landmark")
    x.set_defaults(func=_cmd_explain)

    f = sub.add_parser("fetch", help="download public data into the cache (see --list)")
    f.add_argument("name", nargs="?", help="a source name from --list, or geo:GSEnnnnn")
    f.add_argument("--list", action="store_true", help="list the known sources")
    f.add_argument("--cache-dir", help="cache folder (default $DGEX_CACHE_DIR or data/fetch)")
    f.add_argument("--force", action="store_true", help="download again even when complete in the cache")
    f.add_argument("--mirror", help="fetch https://HOST/PATH from MIRROR/HOST/PATH instead ($DGEX_FETCH_MIRROR)")
    f.set_defaults(func=_cmd_fetch)
    return p


def _launch_ddp(args, argv: Sequence[str]) -> int:
    """``dgex train --nproc N``: the same command on N ranks started by torch's launcher."""
    from .distributed import ddp
    from .store import check_run_name

    if args.model != "mlp":
        raise DgexError(f"--nproc trains the network with torch DDP (--model mlp); for {args.model} use --dask local:N")
    if args.dask or os.environ.get("DGEX_DASK_SCHEDULER"):
        raise DgexError("--nproc and --dask do not combine: the network trains under torch DDP, not on Dask")
    check_run_name(_run_name(args), args.runs_dir, overwrite=args.overwrite)  # refused before N processes start
    rest, skip = [], False
    for a in argv:  # the children get the same command without --nproc
        if skip:
            skip = False
        elif a == "--nproc":
            skip = True
        elif not a.startswith("--nproc="):
            rest.append(a)
    ckpt = _ddp_checkpoints(args)
    return ddp.launch(args.nproc, [*rest, "--runs-dir", args.runs_dir], resume_hint=lambda: (
        f"rerun the same command to resume from the checkpoint of the last finished epoch in {ckpt}"
        if any(ckpt.glob("checkpoint-*")) else "no epoch had finished, so a rerun starts afresh"))


def _ddp_rank(args) -> int:
    """One rank of a DDP training (started by ``--nproc`` or torchrun): the command inside the
    process group; a lost peer ends it with one line (the launcher names the rank that failed)."""
    from .distributed import ddp

    rank = os.environ.get("RANK", "?")
    try:
        with ddp.process_group_from_env():
            return args.func(args)
    except RuntimeError as e:  # a collective whose peer is gone (gloo / NCCL)
        if args.debug:
            raise
        first = next((line for line in str(e).splitlines() if line.strip()), type(e).__name__)
        if any(w in first for w in ("gloo", "NCCL", "Connection", "peer")):
            first = "lost contact with another rank"
        print(f"dgex {args.command} (rank {rank}): stopped: {first[:300]}", file=sys.stderr)
        return 1


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    if getattr(args, "runs_dir", "x") is None:
        from .store import default_runs_dir

        args.runs_dir = str(default_runs_dir())
    from .distributed import ddp

    previous = _terminate_cleanly()
    try:
        if getattr(args, "nproc", None) and args.nproc > 1 and not ddp.launched():
            return _launch_ddp(args, argv)
        if ddp.launched():
            if args.command != "train":
                raise DgexError(f"torchrun starts ranks of a training (dgex train --model mlp); run dgex "
                                f"{args.command} as one process (or on Dask with --dask)")
            return _ddp_rank(args)
        if hasattr(args, "dask") and (args.dask or os.environ.get("DGEX_DASK_SCHEDULER")):
            from .distributed import dask_client

            with dask_client(args.dask, announce=lambda line: print(line, file=sys.stderr)):
                return args.func(args)
        return args.func(args)
    except (DgexError, OSError, ValueError) as e:
        if args.debug:
            raise
        msg = str(e).splitlines()[0] if str(e) else type(e).__name__
        rank = ddp.world()[0] if ddp.launched() else 0
        print(f"dgex {args.command}: error" + (f" (rank {rank})" if rank else "") + f": {msg}", file=sys.stderr)
        return 1
    except MemoryError as e:
        if args.debug:
            raise
        print(f"dgex {args.command}: error: out of memory ({e or 'an allocation failed'}); a smaller "
              "--block-size or $DGEX_BLOCK_MB, or a machine with more memory", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"dgex {args.command}: interrupted; nothing partial was left", file=sys.stderr)
        return 130
    except _Terminated:
        print(f"dgex {args.command}: terminated (SIGTERM); nothing partial was left", file=sys.stderr)
        return 143
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


class _Terminated(BaseException):
    """SIGTERM, raised in the main thread so every ``finally`` and discard runs."""


def _terminate_cleanly():
    """Turn SIGTERM into :class:`_Terminated` (the default kills the process at once,
    leaving a half-written temporary behind); returns the previous handler, or None
    when not in the main thread."""
    def handler(signum, frame):
        raise _Terminated()

    try:
        return signal.signal(signal.SIGTERM, handler)
    except ValueError:  # not the main thread (main() called from a thread)
        return None


if __name__ == "__main__":
    sys.exit(main())
