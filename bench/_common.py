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
import select
import shutil
import signal
import subprocess
import sys
import tempfile
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


def disk_free_gb(path: str | os.PathLike) -> float:
    """Free space (GB) on the file system holding ``path`` (or its nearest existing parent)."""
    p = Path(path).resolve()
    while not p.exists():
        p = p.parent
    return shutil.disk_usage(p).free / 2**30


def _proc_kb(pid: int, field: str) -> int:
    """A ``/proc/PID/status`` memory field (``VmRSS``, ``VmHWM``) in KiB; 0 once the process is gone."""
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return 0


def _tail(path: Path, n_lines: int, max_bytes: int = 16384) -> list[str]:
    with open(path, "rb") as fh:
        fh.seek(max(0, path.stat().st_size - max_bytes))
        text = fh.read().decode("utf-8", "replace").replace("\r", "\n")
    return [ln.rstrip() for ln in text.splitlines() if ln.strip()][-n_lines:]


def run_measured(argv: list[str], *, timeout: float = 1800, max_rss_gb: float | None = None,
                 cwd: str | os.PathLike | None = None, env: dict | None = None, log_dir: str | os.PathLike | None = None,
                 name: str = "cmd", tail_lines: int = 12, poll_s: float = 0.1) -> dict:
    """Run ``argv`` as a subprocess: wall seconds, peak RSS, exit code and the last lines of its output.

    Peak RSS is the child's ``ru_maxrss`` from ``os.wait4`` (KiB on Linux; it covers the
    child and the descendants it waited for), cross-checked with ``VmHWM`` polled from
    ``/proc``. The child runs in its own session; past ``timeout`` seconds, or once its
    resident memory passes ``max_rss_gb``, that session is killed (SIGKILL) and the
    record says so. Nothing is raised for a failing command: the record carries it.
    Output goes to ``log_dir/<name>.stdout|.stderr`` (kept) or a temporary folder.
    """
    tmp = None
    if log_dir is None:
        tmp = tempfile.TemporaryDirectory()
        log_dir = tmp.name
    log_dir = Path(log_dir)
    log_dir.mkdir(parents=True, exist_ok=True)
    out_path, err_path = log_dir / f"{name}.stdout", log_dir / f"{name}.stderr"
    rec: dict = {"argv": [str(a) for a in argv], "timed_out": False, "killed_for_rss": False}
    try:
        with open(out_path, "wb") as out, open(err_path, "wb") as err:
            t0 = time.perf_counter()
            try:
                proc = subprocess.Popen([str(a) for a in argv], stdout=out, stderr=err, cwd=cwd, env=env,
                                        start_new_session=True)
            except OSError as e:
                rec.update(exit_code=None, wall_s=0.0, peak_rss_gb=0.0, error=f"could not start: {e}",
                           stdout_tail=[], stderr_tail=[])
                return rec
            pidfd = os.pidfd_open(proc.pid) if hasattr(os, "pidfd_open") else None
            hwm_kb = 0
            try:
                while True:
                    pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
                    if pid:
                        break
                    hwm_kb = max(hwm_kb, _proc_kb(proc.pid, "VmHWM"))
                    why = None
                    if time.perf_counter() - t0 > timeout:
                        why = "timed_out"
                    elif max_rss_gb and _proc_kb(proc.pid, "VmRSS") > max_rss_gb * 2**20:
                        why = "killed_for_rss"
                    if why:
                        rec[why] = True
                        with suppress(ProcessLookupError):
                            os.killpg(proc.pid, signal.SIGKILL)
                        pid, status, usage = os.wait4(proc.pid, 0)
                        break
                    if pidfd is not None:
                        select.select([pidfd], [], [], poll_s)  # wakes as soon as the child exits
                    else:
                        time.sleep(poll_s)
            finally:
                if pidfd is not None:
                    os.close(pidfd)
            wall = time.perf_counter() - t0
            proc.returncode = os.waitstatus_to_exitcode(status)  # reaped here, not by Popen
        rec.update(exit_code=proc.returncode, wall_s=wall,
                   peak_rss_gb=max(usage.ru_maxrss, hwm_kb) / 2**20,
                   stdout_tail=_tail(out_path, tail_lines), stderr_tail=_tail(err_path, tail_lines))
        if tmp is None:
            rec["logs"] = [str(out_path), str(err_path)]
        return rec
    finally:
        if tmp is not None:
            tmp.cleanup()


def write_results(name: str, payload: dict, machine_info: dict | None = None) -> Path:
    """Write ``bench/results/<name>.json``: the machine (``machine_info`` or :func:`machine`), the time, ``payload``."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    payload = {"machine": machine_info or machine(), "written": time.strftime("%Y-%m-%d %H:%M:%S"), **payload}
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
