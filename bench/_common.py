"""Shared pieces of the benchmarks: machine description, timing, peak memory, results files.

Benchmarks are scripts, not tests: they compare dgex with the peer a user would
otherwise use (scikit-learn) in the same process, on the same data and dtype, and
write JSON under ``bench/results/``. No timing is ever asserted in the test suite.
"""

from __future__ import annotations

import json
import os
import platform
import resource
import subprocess
import sys
import time
from contextlib import contextmanager, suppress
from pathlib import Path

import numpy as np

RESULTS = Path(__file__).resolve().parent / "results"


def machine() -> dict:
    """CPU, cores, memory, library versions and the BLAS numpy uses."""
    info = {"platform": platform.platform(), "python": platform.python_version(), "cpu_count": os.cpu_count(),
            "numpy": np.__version__}
    try:
        with open("/proc/cpuinfo") as fh:
            info["cpu"] = next((ln.split(":", 1)[1].strip() for ln in fh if ln.startswith("model name")), "?")
        with open("/proc/meminfo") as fh:
            info["mem_gb"] = round(int(fh.readline().split()[1]) / 2**20, 1)
    except OSError:
        pass
    try:
        import threadpoolctl

        info["blas"] = [{k: p.get(k) for k in ("internal_api", "version", "architecture", "num_threads")}
                        for p in threadpoolctl.threadpool_info()]
    except ImportError:
        pass
    for mod in ("torch", "sklearn", "scipy", "h5py"):
        with suppress(ImportError):
            info[mod] = __import__(mod).__version__
    try:
        import torch

        info["cuda"] = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
        info["torch_threads"] = torch.get_num_threads()
    except ImportError:
        pass
    return info


@contextmanager
def timer(out: dict, key: str):
    t0 = time.perf_counter()
    yield
    out[key] = time.perf_counter() - t0


def best_of(fn, repeat: int = 3) -> float:
    """Fastest of ``repeat`` wall-clock runs of ``fn()`` in seconds."""
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def peak_rss_gb() -> float:
    """Peak resident memory of this process so far (GB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def run_isolated(code: str, timeout: int = 3600) -> dict:
    """Run ``code`` (which must print one JSON line last) in a fresh interpreter; returns that JSON.

    Used to measure peak memory of one case without the others' allocations mixing in.
    """
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=timeout,
                         cwd=Path(__file__).resolve().parents[1])
    if out.returncode != 0:
        raise RuntimeError(out.stderr[-3000:])
    return json.loads(out.stdout.strip().splitlines()[-1])


def write_results(name: str, payload: dict) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    payload = {"machine": machine(), "written": time.strftime("%Y-%m-%d %H:%M:%S"), **payload}
    path.write_text(json.dumps(payload, indent=1, default=float))
    return path


def matmul_rate(dtype=np.float64, n: int = 4096, lib: str = "numpy") -> float:
    """The machine's dense matrix-multiply rate in GFLOP/s (best of 3 after a warm-up), numpy or torch."""
    rng = np.random.default_rng(0)
    a = rng.normal(size=(n, n)).astype(dtype)
    b = rng.normal(size=(n, n)).astype(dtype)
    if lib == "torch":
        import torch

        ta, tb = torch.from_numpy(a), torch.from_numpy(b)
        torch.mm(ta, tb)
        t = best_of(lambda: torch.mm(ta, tb))
    else:
        a @ b
        t = best_of(lambda: a @ b)
    return 2 * n**3 / t / 1e9
