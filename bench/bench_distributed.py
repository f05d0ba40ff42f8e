"""What scale-out costs on the cores one process would use: ``--dask local:2`` against one
process with two BLAS threads (linear regression, KNN-GE, prediction; float64), and the
D-GEX network under torch DDP on 2 processes of one thread each against one process of
two threads (float32), same data, same machine.

    .venv/bin/python bench/bench_distributed.py                 # both parts
    .venv/bin/python bench/bench_distributed.py --part dask --samples 60000
    .venv/bin/python bench/bench_distributed.py --part ddp      # 16,000 x 978 -> 1,000 -> 4,000

The data sit in sample-major files (``bench/tmp/distributed``, removed after), as a
cluster meets them: each worker reads its own partitions, and the one process reads the
same files. Linear regression: the fit's X'X and X'Y (one process: blocks through BLAS
on two threads; Dask: per partition on two one-thread workers, tree-reduced), then the
same ridge solve on the client. KNN-GE: the neighbour search of 4,000 queries against the
training set. Prediction: a linear run applied to a 20,000-profile GCTX plate written to
GCTX (blocks predicted on the workers, written in order by one writer). Reports seconds, the ratio (cluster / one process), the achieved FLOP
rate against the machine's measured matrix-multiply rate, and the client's peak memory;
writes ``bench/results/distributed.json``. The cluster's start (~3 s) is reported apart.

DDP: the default network (978 -> 1,000 -> 4,000 with its frozen linear path, dropout, batches
of 200) trained for a few epochs on data in memory, by one process (``torch`` on two
threads) and by two ranks (gloo, one thread each, batches of 100 per rank: the same
combined batch), each run a subprocess measured for peak memory. Reports the median
epoch time (first epoch left out), the ratio, the achieved FLOP rate against torch's
measured float32 matrix-multiply rate, and the validation MAE each reached; writes
``bench/results/distributed_ddp.json``.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import best_of, matmul_rate, peak_rss_gb, write_results

from dgex_core.distributed import dask_client
from dgex_core.lazy import NpyRows
from dgex_core.models.knn import KNNModel
from dgex_core.models.linear import LinearModel
from dgex_core.models.sources import ArraySource


def _data(n, p, t, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(8, 1.5, size=(n, p))
    Y = 6 + X @ (rng.normal(0, 1, size=(p, t)) / np.sqrt(p)) + rng.normal(0, 0.5, size=(n, t))
    return X, Y


TMP = Path(__file__).resolve().parent / "tmp" / "distributed"


def _to_file(path: Path, values: np.ndarray) -> NpyRows:
    store = NpyRows.create(path, values.shape, values.dtype)
    store.write_rows(0, values)
    return NpyRows(path)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--part", choices=["all", "dask", "ddp"], default="all")
    ap.add_argument("--samples", type=int, default=None, help="default 30,000 (dask), 16,000 (ddp)")
    ap.add_argument("--targets", type=int, default=4_000)
    ap.add_argument("--landmarks", type=int, default=978)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--epochs", type=int, default=4, help="(ddp) epochs of each training")
    ap.add_argument("--batches", default="200,1000", help="(ddp) batch sizes to measure (default 200,1000)")
    ap.add_argument("--ddp-rank", nargs=3, metavar=("DATA", "OUT", "BATCH"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.ddp_rank:
        return _ddp_rank(*args.ddp_rank, epochs=args.epochs)
    if args.part in ("all", "dask"):
        dask_part(args)
    if args.part in ("all", "ddp"):
        ddp_part(args)


def dask_part(args) -> None:
    n, p, t = args.samples or 30_000, args.landmarks, args.targets
    X, Y = _data(n, p, t)
    lm, tg = [f"L{i}" for i in range(p)], [f"T{j}" for j in range(t)]
    # on disk, as a cluster meets its data: sample-major files every worker reads itself
    TMP.mkdir(parents=True, exist_ok=True)
    Xf, Yf = _to_file(TMP / "X.npy", X), _to_file(TMP / "Y.npy", Y)
    rate = matmul_rate(np.float64)

    def linear():
        m = LinearModel(alpha=1.0, alphas=None)
        m.fit_source(ArraySource(Xf, Yf), lm, tg)
        return m

    knn = KNNModel(k=10)
    knn.fit_source(ArraySource(X, Y[:, :50]), lm, tg[:50])
    knn.X_train_ = _to_file(TMP / "knn_X.npy", knn.X_train_)  # the streamed layout: landmarks on disk
    Q = X[:4000] + 0.01

    # prediction: a linear run 978 -> 4,000 applied to a 20,000-profile GCTX plate, written to GCTX
    from dgex_core.dataset import Dataset
    from dgex_core.io import write
    from dgex_core.matrix import ExpressionMatrix
    from dgex_core.prediction import predict_file
    from dgex_core.training import train_run

    genes = lm + tg
    m = ExpressionMatrix(np.hstack([X[:3000], Y[:3000]]).astype(np.float32), [f"S{i}" for i in range(3000)], genes)
    run = train_run(Dataset.from_matrix(m, lm), LinearModel(alpha=1.0, alphas=None), "bench")
    n_plate = min(n, 20_000)
    plate = write(ExpressionMatrix(X[:n_plate].astype(np.float32), [f"P{i}" for i in range(n_plate)], lm),
                  TMP / "plate.gctx")

    def predict(tag, suffix="gctx"):
        return predict_file(run, plate, TMP / f"out_{tag}.{suffix}", block_size=2048)

    flops_linear = 2.0 * n * p * (p + t)  # X'X (as syrk: half, counted whole) and X'Y
    flops_knn = 2.0 * Q.shape[0] * n * p
    rows = {}
    local_lin = best_of(linear, 2)
    local_knn = best_of(lambda: knn.predict(Q), 2)
    local_pred = best_of(lambda: predict("one"), 2)
    local_zarr = best_of(lambda: predict("one", "zarr"), 2)
    coef_local = linear().coef_
    t0 = time.perf_counter()
    with dask_client(f"local:{args.workers}") as client:
        start = time.perf_counter() - t0
        linear()  # warm: workers import dgex_core
        dask_lin = best_of(linear, 2)
        coef_dask = linear().coef_
        knn.predict(Q[:100])
        dask_knn = best_of(lambda: knn.predict(Q), 2)
        predict("warm")
        dask_pred = best_of(lambda: predict("dask"), 2)
        predict("warm", "zarr")
        dask_zarr = best_of(lambda: predict("dask", "zarr"), 2)
        n_workers = len(client.scheduler_info()["workers"])
    rel = float(np.max(np.abs(coef_dask - coef_local)) / np.max(np.abs(coef_local)))
    flops_pred = 2.0 * n_plate * p * t
    from dgex_core.io import read as read_matrix

    a, b = read_matrix(TMP / "out_one.gctx").values, read_matrix(TMP / "out_dask.gctx").values
    pred_rel = float(np.max(np.abs(a.astype(np.float64) - b)) / np.max(np.abs(a)))  # relative to the largest value
    for name, a, b, fl in (("linear fit (X'X, X'Y, solve)", local_lin, dask_lin, flops_linear),
                           ("KNN-GE neighbour search, 4,000 queries", local_knn, dask_knn, flops_knn),
                           (f"dgex predict path, {n_plate:,} profiles GCTX -> GCTX (978 -> {t:,})", local_pred,
                            dask_pred, flops_pred),
                           (f"dgex predict path, {n_plate:,} profiles GCTX -> AnnData-zarr, lz4 (978 -> {t:,}; "
                            "workers write their blocks)", local_zarr, dask_zarr, flops_pred)):
        rows[name] = {"one_process_s": round(a, 3), "dask_s": round(b, 3), "ratio": round(b / a, 3),
                      "overhead_pct": round(100 * (b / a - 1), 1),
                      "one_process_gflops": round(fl / a / 1e9, 1), "dask_gflops": round(fl / b / 1e9, 1)}
    out = {"data": {"samples": n, "landmarks": p, "targets": t, "dtype": "float64"},
           "workers": n_workers, "threads_per_worker": 1, "cluster_start_s": round(start, 2),
           "matmul_gflops_machine": round(rate, 1), "coef_max_rel_difference": rel, "predictions_max_rel_difference": pred_rel, "results": rows,
           "client_peak_rss_gb": round(peak_rss_gb(), 2),
           "command": "bench/bench_distributed.py " + " ".join(sys.argv[1:])}
    import shutil

    import anndata

    za, zb = anndata.read_zarr(TMP / "out_one.zarr").X, anndata.read_zarr(TMP / "out_dask.zarr").X
    out["zarr_predictions_max_rel_difference"] = float(np.max(np.abs(za.astype(np.float64) - zb)) / np.max(np.abs(za)))
    path = write_results("distributed", out)
    for f in [*TMP.glob("*.npy"), *TMP.glob("*.gctx")]:
        f.unlink()
    for f in TMP.glob("*.zarr"):
        shutil.rmtree(f)
    for name, r in rows.items():
        print(f"{name}: one process {r['one_process_s']} s, dask local:{n_workers} {r['dask_s']} s "
              f"(x{r['ratio']}; {r['dask_gflops']} of {round(rate, 1)} GFLOP/s)")
    print(f"coefficients differ by {rel:.1e}, predictions by {pred_rel:.1e} (relative); cluster start {start:.1f} s; "
          f"wrote {path}")


HIDDEN = 1000


def _ddp_rank(data: str, out: str, batch: str, epochs: int) -> None:
    """One training (one process, or one rank of a DDP job: the environment says), timings to ``out``."""
    import json
    import os

    import torch

    from dgex_core.distributed import ddp
    from dgex_core.models.mlp import MLPModel

    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    d = Path(data)
    X, Y, Xv, Yv = (np.load(d / f"{k}.npy") for k in ("x", "y", "xv", "yv"))
    ids = [f"L{i}" for i in range(X.shape[1])], [f"T{j}" for j in range(Y.shape[1])]
    model = MLPModel(hidden=(HIDDEN,), max_epochs=epochs, device="cpu", batch_size=int(batch))
    group = ddp.process_group_from_env() if ddp.launched() else contextlib.nullcontext()
    with group:
        t0 = time.perf_counter()
        model.fit_source(ArraySource(X, Y), *ids, (Xv, Yv))
        fit = time.perf_counter() - t0
        if ddp.is_main():
            Path(out).write_text(json.dumps({"fit_s": fit, "epoch_s": [h["seconds"] for h in model.history_],
                                             "val_mae": [h["val_mae"] for h in model.history_],
                                             "world": ddp.world()[1], "threads": torch.get_num_threads(),
                                             "peak_rss_gb": round(peak_rss_gb(), 2)}))


def ddp_part(args) -> None:
    import json
    import os
    import socket
    import subprocess

    from _common import run_measured

    n, p, t = args.samples or 16_000, args.landmarks, args.targets
    X, Y = _data(n + 2000, p, t)
    d = TMP / "ddp"
    d.mkdir(parents=True, exist_ok=True)
    for k, v in (("x", X[:n]), ("y", Y[:n]), ("xv", X[n:]), ("yv", Y[n:])):
        np.save(d / f"{k}.npy", v.astype(np.float32))
    del X, Y
    me = [sys.executable, str(Path(__file__).resolve()), "--epochs", str(args.epochs), "--ddp-rank", str(d)]
    clean = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR")}
    n_weights = p * HIDDEN + HIDDEN * t  # the body's matrices (the frozen ridge is forward-only)
    flops = 3 * 2.0 * n * n_weights  # forward + backward (two products) per sample, per epoch
    rate = matmul_rate(np.float32, lib="torch")
    by_batch = {}
    for batch in [int(b) for b in args.batches.split(",")]:
        one = run_measured([*me, str(d / "one.json"), str(batch)], env={**clean, "OMP_NUM_THREADS": "2"})
        if one.get("exit_code"):
            raise SystemExit(f"the one-process training failed: {one.get('stderr_tail')}")
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = str(sock.getsockname()[1])
        ranks = [subprocess.Popen([*me, str(d / "ddp.json"), str(batch)], env={
            **clean, "OMP_NUM_THREADS": "1", "RANK": str(r), "LOCAL_RANK": str(r), "WORLD_SIZE": "2",
            "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": port}) for r in range(2)]
        t0 = time.perf_counter()
        codes = [r.wait() for r in ranks]
        ddp_wall = time.perf_counter() - t0
        if any(codes):
            raise SystemExit(f"a DDP rank failed: exit codes {codes}")
        a, b = (json.loads((d / f).read_text()) for f in ("one.json", "ddp.json"))
        ea, eb = float(np.median(a["epoch_s"][1:])), float(np.median(b["epoch_s"][1:]))
        by_batch[str(batch)] = {
            "one_process": {"threads": a["threads"], "epoch_s": round(ea, 3), "fit_s": round(a["fit_s"], 2),
                            "gflops": round(flops / ea / 1e9, 1), "best_val_mae": round(min(a["val_mae"]), 4),
                            "peak_rss_gb": one.get("peak_rss_gb")},
            "ddp": {"ranks": 2, "threads_per_rank": b["threads"], "batch_per_rank": -(-batch // 2),
                    "epoch_s": round(eb, 3), "fit_s": round(b["fit_s"], 2), "job_wall_s": round(ddp_wall, 2),
                    "gflops": round(flops / eb / 1e9, 1), "best_val_mae": round(min(b["val_mae"]), 4),
                    "rank0_peak_rss_gb": b["peak_rss_gb"]},
            "epoch_ratio": round(eb / ea, 3), "overhead_pct": round(100 * (eb / ea - 1), 1)}
        print(f"batch {batch}: DDP 2 x 1 thread {eb:.2f} s per epoch against one process of 2 threads {ea:.2f} s "
              f"(x{eb / ea:.3f}); {flops / eb / 1e9:.1f} vs {flops / ea / 1e9:.1f} of {rate:.1f} GFLOP/s; "
              f"best validation MAE {min(b['val_mae']):.4f} vs {min(a['val_mae']):.4f}")
    out = {"data": {"samples": n, "validation": 2000, "landmarks": p, "targets": t, "dtype": "float32"},
           "network": f"{p} -> {HIDDEN} -> {t} (frozen linear path, dropout, Adam)", "epochs": args.epochs,
           "matmul_gflops_machine_float32_torch": round(rate, 1), "by_batch": by_batch,
           "command": "bench/bench_distributed.py " + " ".join(sys.argv[1:])}
    path = write_results("distributed_ddp", out)
    for f in d.glob("*"):
        f.unlink()
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
