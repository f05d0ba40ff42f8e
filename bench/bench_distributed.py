"""What a Dask cluster costs on the cores one process would use: ``--dask local:2`` against
one process with two BLAS threads, same data, same dtype (float64), same machine.

    .venv/bin/python bench/bench_distributed.py            # 30,000 x 978 -> 4,000 (linear), KNN-GE
    .venv/bin/python bench/bench_distributed.py --samples 60000

The data sit in sample-major files (``bench/tmp/distributed``, removed after), as a
cluster meets them: each worker reads its own partitions, and the one process reads the
same files. Linear regression: the fit's X'X and X'Y (one process: blocks through BLAS
on two threads; Dask: per partition on two one-thread workers, tree-reduced), then the
same ridge solve on the client. KNN-GE: the neighbour search of 4,000 queries against the
training set. Prediction: a linear run applied to a 20,000-profile GCTX plate written to
GCTX (blocks predicted on the workers, written in order by one writer). Reports seconds, the ratio (cluster / one process), the achieved FLOP
rate against the machine's measured matrix-multiply rate, and the client's peak memory;
writes ``bench/results/distributed.json``. The cluster's start (~3 s) is reported apart.
"""

from __future__ import annotations

import argparse
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
    ap.add_argument("--samples", type=int, default=30_000)
    ap.add_argument("--targets", type=int, default=4_000)
    ap.add_argument("--landmarks", type=int, default=978)
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args()
    n, p, t = args.samples, args.landmarks, args.targets
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

    def predict(tag):
        return predict_file(run, plate, TMP / f"out_{tag}.gctx", block_size=2048)

    flops_linear = 2.0 * n * p * (p + t)  # X'X (as syrk: half, counted whole) and X'Y
    flops_knn = 2.0 * Q.shape[0] * n * p
    rows = {}
    local_lin = best_of(linear, 2)
    local_knn = best_of(lambda: knn.predict(Q), 2)
    local_pred = best_of(lambda: predict("one"), 2)
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
        n_workers = len(client.scheduler_info()["workers"])
    rel = float(np.max(np.abs(coef_dask - coef_local)) / np.max(np.abs(coef_local)))
    flops_pred = 2.0 * n_plate * p * t
    from dgex_core.io import read as read_matrix

    a, b = read_matrix(TMP / "out_one.gctx").values, read_matrix(TMP / "out_dask.gctx").values
    pred_rel = float(np.max(np.abs(a.astype(np.float64) - b)) / np.max(np.abs(a)))  # relative to the largest value
    for name, a, b, fl in (("linear fit (X'X, X'Y, solve)", local_lin, dask_lin, flops_linear),
                           ("KNN-GE neighbour search, 4,000 queries", local_knn, dask_knn, flops_knn),
                           (f"dgex predict path, {n_plate:,} profiles GCTX -> GCTX (978 -> {t:,})", local_pred,
                            dask_pred, flops_pred)):
        rows[name] = {"one_process_s": round(a, 3), "dask_s": round(b, 3), "ratio": round(b / a, 3),
                      "overhead_pct": round(100 * (b / a - 1), 1),
                      "one_process_gflops": round(fl / a / 1e9, 1), "dask_gflops": round(fl / b / 1e9, 1)}
    out = {"data": {"samples": n, "landmarks": p, "targets": t, "dtype": "float64"},
           "workers": n_workers, "threads_per_worker": 1, "cluster_start_s": round(start, 2),
           "matmul_gflops_machine": round(rate, 1), "coef_max_rel_difference": rel, "predictions_max_rel_difference": pred_rel, "results": rows,
           "client_peak_rss_gb": round(peak_rss_gb(), 2),
           "command": "bench/bench_distributed.py " + " ".join(sys.argv[1:])}
    path = write_results("distributed", out)
    for f in [*TMP.glob("*.npy"), *TMP.glob("*.gctx")]:
        f.unlink()
    for name, r in rows.items():
        print(f"{name}: one process {r['one_process_s']} s, dask local:{n_workers} {r['dask_s']} s "
              f"(x{r['ratio']}; {r['dask_gflops']} of {round(rate, 1)} GFLOP/s)")
    print(f"coefficients differ by {rel:.1e}, predictions by {pred_rel:.1e} (relative); cluster start {start:.1f} s; "
          f"wrote {path}")


if __name__ == "__main__":
    main()
