"""The D-GEX network at the paper's size on a GPU: epoch time, achieved FLOP rate against
the GPU's own measured matrix-multiply rate, peak GPU memory.

    python bench/bench_gpu.py                 # 943 -> 9,000 x 3 -> 9,520, 100,000 samples, bf16 autocast
    python bench/bench_gpu.py --small         # a CPU-sized smoke run of the same script

The compendium is synthetic (landmarks normal, targets a random linear map of them plus
a tanh term and noise), generated on the host in float32 and trained by
:class:`dgex_core.models.mlp.MLPModel` exactly as ``dgex train`` trains it: the paper's
recipe (tanh, 10% dropout, no linear path, batches of 200) with dgex's Adam and
one-cycle schedule, bfloat16 autocast on CUDA. Reports the median epoch time (first
epoch left out), the training FLOP rate (forward + backward = 6 x weights per sample)
against ``torch.mm``'s bf16 rate on 8,192 x 8,192 matrices measured in the same process,
and ``torch.cuda.max_memory_allocated``; writes ``bench/results/gpu.json``.
"""

from __future__ import annotations

import argparse
import itertools
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import write_results


def _matmul_rate(dev, dtype, n: int) -> float:
    """torch.mm GFLOP/s on ``dev`` (best of 5 after a warm-up)."""
    import torch

    a = torch.randn(n, n, device=dev, dtype=dtype)
    b = torch.randn(n, n, device=dev, dtype=dtype)
    torch.mm(a, b)
    best = float("inf")
    for _ in range(5):
        if dev.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        for _ in range(10):
            torch.mm(a, b)
        if dev.type == "cuda":
            torch.cuda.synchronize()
        best = min(best, (time.perf_counter() - t0) / 10)
    return 2 * n**3 / best / 1e9


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--samples", type=int, default=100_000)
    ap.add_argument("--landmarks", type=int, default=943)
    ap.add_argument("--targets", type=int, default=9_520)
    ap.add_argument("--hidden", type=int, default=9_000)
    ap.add_argument("--layers", type=int, default=3)
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--batch", type=int, default=200)
    ap.add_argument("--small", action="store_true", help="a smoke run: 2,000 samples, 943 -> 512 x 3 -> 952")
    args = ap.parse_args()
    if args.small:
        args.samples, args.targets, args.hidden, args.epochs = 2_000, 952, 512, 2
    import torch

    from dgex_core.models.mlp import MLPModel, pick_device

    dev = pick_device("auto")
    n, p, t, h = args.samples, args.landmarks, args.targets, args.hidden
    n_val = max(200, n // 20)
    rng = np.random.default_rng(0)
    X = rng.standard_normal((n + n_val, p), dtype=np.float32)
    W = (rng.standard_normal((p, t), dtype=np.float32) / np.sqrt(p)).astype(np.float32)
    Y = X @ W
    Y += 0.5 * np.tanh(X[:, :1] * X[:, 1:2])
    Y += 0.3 * rng.standard_normal(Y.shape, dtype=np.float32)
    lm, tg = [f"L{i}" for i in range(p)], [f"T{j}" for j in range(t)]
    model = MLPModel(hidden=(h,) * args.layers, activation="tanh", dropout=0.1, input_dropout=0.0,
                     linear_path="off", adaptive=False, batch_size=args.batch, max_epochs=args.epochs,
                     patience=args.epochs, device="auto", amp=True)
    from dgex_core.models.sources import ArraySource

    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats(dev)
    t0 = time.perf_counter()
    model.fit_source(ArraySource(X[:n], Y[:n]), lm, tg, (X[n:], Y[n:]))
    fit_s = time.perf_counter() - t0
    epochs = [r["seconds"] for r in model.history_]
    epoch_s = float(np.median(epochs[1:] if len(epochs) > 1 else epochs))
    widths = [p, *(h,) * args.layers, t]
    weights = sum(a * b for a, b in itertools.pairwise(widths))
    flops = 6.0 * weights * n  # forward (2) + backward (4) per weight per sample
    amp = dev.type == "cuda"
    rate = _matmul_rate(dev, torch.bfloat16 if amp else torch.float32, 8192 if amp else 2048)
    out = {"device": torch.cuda.get_device_name(dev) if amp else "cpu", "dtype": "bf16 autocast" if amp else "float32",
           "network": " -> ".join(map(str, widths)), "weights": weights,
           "data": {"samples": n, "validation": n_val, "batch": args.batch},
           "epoch_s": round(epoch_s, 3), "epochs_s": [round(e, 3) for e in epochs], "fit_s": round(fit_s, 2),
           "samples_per_s": round(n / epoch_s, 1), "train_tflops": round(flops / epoch_s / 1e12, 2),
           "matmul_tflops_measured": round(rate / 1e3, 2), "share_of_matmul": round(flops / epoch_s / 1e9 / rate, 3),
           "peak_gpu_memory_gb": round(torch.cuda.max_memory_allocated(dev) / 2**30, 2) if amp else None,
           "val_mae": [round(r["val_mae"], 4) for r in model.history_],
           "command": "bench/bench_gpu.py " + " ".join(sys.argv[1:])}
    if not args.small:
        write_results("gpu", out)
    print(out)


if __name__ == "__main__":
    main()
