"""Benchmark: reading GCTX with dgex's reader against plain h5py (the peer).

Generates, in a temporary folder deleted afterwards, a GCTX of 100,000 samples x
1,000 genes (float32, values rounded to 4 decimals like an L1000 level-3 file),
written block by block with :class:`dgex_core.io.gctx_write.GCTXWriter`, in two layouts:

- ``broad``: the Broad's layout (deflate level 6, 1 MiB chunks of 262 samples x 1,000 genes);
- ``contiguous``: no compression, no chunks.

Then, for each layout, each case runs in a fresh Python process (so memory peaks do
not mix), timed over a few repeats:

- ``full``: the whole matrix. Ours: ``read_gctx(path)`` (an ExpressionMatrix with ids
  and metadata); peer: ``f["0/DATA/0/matrix"][()]``.
- ``block_contiguous``: 1,000 consecutive samples, all genes. Ours:
  ``GCTXFile.read(samples=slice(a, a + 1000))``; peer: ``ds[a:a + 1000]``.
- ``block_scattered``: 1,000 samples at random positions, in random order. Ours:
  ``GCTXFile.read(samples=positions)``; peer: ``ds[sorted positions]`` (h5py wants
  sorted indices) then reordered in memory.

Measured: wall time (best and median of the repeats, after a first run that is
also timed), throughput (MB of float32 values returned per second, best run), the
peak of Python allocations during the first run (tracemalloc; numpy buffers are
traced) and the peak resident memory above the starting point (VmHWM from
/proc/self/status, reset through /proc/self/clear_refs before the run; it includes
HDF5's own buffers, which tracemalloc cannot see).

Run::

    .venv/bin/python bench/bench_gctx_read.py            # writes bench/results/gctx_read.json

The files are in the OS page cache when read (just written): this measures decoding
and copying, not the disk.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

CASES = ("full", "block_contiguous", "block_scattered")
READERS = ("ours", "ours_values", "peer")


# ------------------------------------------------------------------ generation
def generate(path: Path, n_samples: int, n_genes: int, *, layout: str, block: int = 5000, seed: int = 0) -> None:
    """Write the benchmark GCTX block by block (never more than one block in memory)."""
    import pandas as pd

    from dgex_core.io.gctx_write import GCTXWriter
    from dgex_core.matrix import ExpressionMatrix

    rng = np.random.default_rng(seed)
    genes = [str(10_000 + g) for g in range(n_genes)]  # Entrez-like ids, stored as text
    gene_meta = pd.DataFrame({"pr_gene_symbol": [f"GENE{g}" for g in range(n_genes)]}, index=genes)
    kw = {} if layout == "broad" else {"compression": None, "chunks": False}
    with GCTXWriter(path, genes, gene_meta, np.float32, n_samples=n_samples, **kw) as w:
        for start in range(0, n_samples, block):
            n = min(block, n_samples - start)
            values = np.round(rng.normal(8.0, 2.0, size=(n, n_genes)), 4).astype(np.float32)
            ids = [f"BENCH{(start + i) // 384:05d}:{(start + i) % 384:03d}" for i in range(n)]
            meta = pd.DataFrame({"det_plate": [s.split(":")[0] for s in ids],
                                 "pert_dose": rng.choice([0.04, 0.12, 0.37, 1.11, 3.33, 10.0], n)}, index=ids)
            w.append(ExpressionMatrix(values, ids, genes, sample_meta=meta))


# ------------------------------------------------------------------ one case (child process)
def _status_kb(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


def _reset_peak_rss() -> bool:
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def _operation(reader: str, case: str, path: Path, block: int, seed: int):
    """A callable performing the read, returning a samples x genes float32 array."""
    import h5py

    from dgex_core.io.gctx import GCTXFile, read_gctx

    with h5py.File(path, "r") as f:
        n_samples = f["0/DATA/0/matrix"].shape[0]
    rng = np.random.default_rng(seed)
    start = int(rng.integers(0, n_samples - block))
    scattered = rng.choice(n_samples, size=block, replace=False)  # random order

    if reader in ("ours", "ours_values"):
        meta = reader == "ours"
        if case == "full" and meta:
            return lambda: read_gctx(path).values
        sel = {"full": None, "block_contiguous": slice(start, start + block)}.get(case, scattered)

        def ours():
            with GCTXFile(path) as f:
                return f.read(samples=sel, meta=meta).values
        return ours

    def peer():
        with h5py.File(path, "r") as f:
            ds = f["0/DATA/0/matrix"]
            if case == "full":
                return ds[()]
            if case == "block_contiguous":
                return ds[start : start + block]
            order = np.argsort(scattered)
            out = np.empty((block, ds.shape[1]), dtype=ds.dtype)
            out[order] = ds[np.sort(scattered)]
            return out
    return peer


def run_case(reader: str, case: str, path: Path, block: int, repeats: int, seed: int) -> dict:
    """Time and measure one case in this process; returns a JSON-friendly dict."""
    op = _operation(reader, case, path, block, seed)
    reset_ok = _reset_peak_rss()
    rss0 = _status_kb("VmRSS")
    tracemalloc.start()
    t0 = time.perf_counter()
    values = op()
    first = time.perf_counter() - t0
    _, py_peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    hwm = _status_kb("VmHWM")
    checksum = float(np.nansum(values, dtype=np.float64))
    shape = list(values.shape)
    nbytes = values.nbytes
    del values
    times = [first]
    for _ in range(repeats - 1):
        t0 = time.perf_counter()
        op()
        times.append(time.perf_counter() - t0)
    best = min(times)
    return {
        "reader": reader, "case": case, "shape": shape, "checksum": checksum,
        "seconds_first": first, "seconds_best": best, "seconds_median": statistics.median(times),
        "mb_per_s": nbytes / 1e6 / best, "result_mb": nbytes / 1e6,
        "tracemalloc_peak_mb": py_peak / 1e6,
        "rss_peak_delta_mb": (hwm - rss0) / 1024 if reset_ok else None,
        "rss_peak_reset": reset_ok,
    }


# ------------------------------------------------------------------ driver
def machine() -> dict:
    import h5py
    import pandas as pd

    cpu = platform.processor() or ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "platform": platform.platform(), "cpu": cpu, "cpu_count": os.cpu_count(),
        "memory_gb": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 1e9, 1),
        "python": platform.python_version(), "numpy": np.__version__, "pandas": pd.__version__,
        "h5py": h5py.__version__, "hdf5": h5py.version.hdf5_version,
    }


def _child(reader: str, case: str, path: Path, args) -> dict:
    cmd = [sys.executable, __file__, "--child", reader, case, str(path),
           "--block", str(args.block), "--repeats", str(args.repeats), "--seed", str(args.seed)]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def _ratio(a, b):
    return None if a is None or b in (None, 0) else a / b


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--samples", type=int, default=100_000)
    ap.add_argument("--genes", type=int, default=1_000)
    ap.add_argument("--block", type=int, default=1_000)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--layouts", nargs="+", default=["broad", "contiguous"], choices=["broad", "contiguous"])
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "gctx_read.json")
    ap.add_argument("--child", nargs=3, metavar=("READER", "CASE", "PATH"), help=argparse.SUPPRESS)
    args = ap.parse_args(argv)

    if args.child:
        reader, case, path = args.child
        print(json.dumps(run_case(reader, case, Path(path), args.block, args.repeats, args.seed)))
        return 0

    report = {"benchmark": "gctx_read", "machine": machine(),
              "params": {"n_samples": args.samples, "n_genes": args.genes, "block": args.block,
                         "repeats": args.repeats, "dtype": "float32"},
              "layouts": {}}
    tmp = Path(tempfile.mkdtemp(prefix="dgex-bench-gctx-"))
    try:
        for layout in args.layouts:
            path = tmp / f"bench_{layout}_n{args.samples}x{args.genes}.gctx"
            t0 = time.perf_counter()
            generate(path, args.samples, args.genes, layout=layout, seed=args.seed)
            gen_s = time.perf_counter() - t0
            import h5py
            with h5py.File(path, "r") as f:
                ds = f["0/DATA/0/matrix"]
                info = {"file_mb": path.stat().st_size / 1e6, "generate_seconds": gen_s,
                        "chunks": ds.chunks, "compression": ds.compression}
            results = {}
            for case in CASES:
                for reader in READERS:
                    r = _child(reader, case, path, args)
                    results[f"{reader}/{case}"] = r
                    print(f"  {layout:10s} {case:17s} {reader:11s} {r['seconds_best']:8.3f} s", flush=True)
            ratios = {}
            for case in CASES:
                p = results[f"peer/{case}"]
                for ours in READERS[:-1]:
                    o = results[f"{ours}/{case}"]
                    if o["checksum"] != p["checksum"] or o["shape"] != p["shape"]:
                        raise SystemExit(f"{layout}/{case}: {ours} and the peer disagree ({o['checksum']} vs {p['checksum']})")
                    ratios[f"{ours}/{case}"] = {
                        "time_best": _ratio(o["seconds_best"], p["seconds_best"]),
                        "tracemalloc_peak": _ratio(o["tracemalloc_peak_mb"], p["tracemalloc_peak_mb"]),
                        "rss_peak_delta": _ratio(o["rss_peak_delta_mb"], p["rss_peak_delta_mb"]),
                    }
            report["layouts"][layout] = {"file": info, "results": results, "ratios_ours_over_peer": ratios}
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print_table(report)
    print(f"\nwritten {args.out}")
    return 0


def print_table(report: dict) -> None:
    m = report["machine"]
    print(f"\n{m['cpu']} ({m['cpu_count']} cpus), numpy {m['numpy']}, h5py {m['h5py']} / HDF5 {m['hdf5']}")
    head = f"{'layout':10s} {'case':17s} {'reader':17s} {'best s':>8s} {'MB/s':>8s} {'py peak MB':>10s} {'RSS +MB':>8s}"
    print(head)
    print("-" * len(head))
    for layout, block in report["layouts"].items():
        for case in CASES:
            for reader in READERS:
                r = block["results"][f"{reader}/{case}"]
                rss = "n/a" if r["rss_peak_delta_mb"] is None else f"{r['rss_peak_delta_mb']:.1f}"
                print(f"{layout:10s} {case:17s} {reader:17s} {r['seconds_best']:8.3f} {r['mb_per_s']:8.0f} "
                      f"{r['tracemalloc_peak_mb']:10.1f} {rss:>8s}")
            for ours in READERS[:-1]:
                q = block["ratios_ours_over_peer"][f"{ours}/{case}"]
                print(f"{'':10s} {'':17s} {ours + '/peer':17s} {_fmt(q['time_best']):>8s} {'':8s} "
                      f"{_fmt(q['tracemalloc_peak']):>10s} {_fmt(q['rss_peak_delta']):>8s}")


def _fmt(v) -> str:
    return "n/a" if v is None else f"{v:.2f}"


if __name__ == "__main__":
    raise SystemExit(main())
