"""Field scale on one machine (issue 13): every user path on a D-GEX-size compendium, in bounded memory.

    .venv/bin/python bench/bench_scale.py            # 28,000 / 56,000 / 111,009 x 22,268 (~30 GB of files; hours)
    .venv/bin/python bench/bench_scale.py --quick    # 3,000 / 6,000 / 12,000 x 22,268: checks the harness in minutes
    .venv/bin/python bench/bench_scale.py --only inspect,linear --sizes 28000
    .venv/bin/python bench/bench_scale.py --clean    # delete the cached files and runs

Each user command runs as a subprocess of ``.venv/bin/dgex`` at each size, with its
wall time, peak RSS (``os.wait4`` ``ru_maxrss``, cross-checked with ``VmHWM``), exit
code and last output lines; a failing, timed-out or memory-runaway command is recorded
and the run goes on. The in-process measurements (each in a fresh interpreter, so
that its peak memory is its own) give the rooflines of the must-show ratios: one
sequential read of the largest file plus its ``X'X`` / ``X'Y`` sums, the GEMM-bound
prediction rate, and one network epoch from memory vs streamed from disk.

Test files are synthetic (see ``bench/_scale_data.py``), generated once and cached in
``bench/tmp/scale/`` (or ``$DGEX_BENCH_CACHE``) under names that carry their parameters.

Writes ``bench/results/scale.json`` (``scale_quick.json`` with ``--quick``,
``scale_<names>.json`` with ``--only``), rewritten after every command.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import _scale_data as sd
from _common import RESULTS, disk_free_gb, machine, run_measured, write_results

ROOT = sd.ROOT
GB = 2**30
SIZE_COMMANDS = ("inspect", "linear", "knn", "mlp", "evaluate")
PREDICT_FORMATS = ("gctx", "parquet", "csv")
COMMANDS = (*SIZE_COMMANDS, *(f"predict_{f}" for f in PREDICT_FORMATS), "archs4", "roofline", "gemm", "epoch")
ALIASES = {"train": ("linear", "knn", "mlp"), "predict": tuple(f"predict_{f}" for f in PREDICT_FORMATS),
           "inprocess": ("roofline", "gemm", "epoch")}
MARKER = ".dgex_bench_scale"
RSS_LIMIT_GB, PREDICT_RSS_LIMIT_GB, FLAT_TOLERANCE = 4.0, 3.0, 0.10
LINEAR_ROOFLINE, EPOCH_SHARE, PREDICT_SHARE = 1.5, 0.8, 0.6
PREDICT_BLOCK = 10_000  # dgex predict's default --block-size
CSV_PROFILES = 20_000  # CSV text of 200,000 x 22,268 values would be ~44 GB: its rate is measured on fewer profiles


# ============================================================== plan
class Plan:
    """Sizes and files of one benchmark run."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.quick = args.quick
        default = "3000,6000,12000" if args.quick else "28000,56000,111009"
        self.sizes = sorted({int(s.replace("_", "")) for s in (args.sizes or default).split(",") if s.strip()})
        self.l1000_n = 20_000 if args.quick else 200_000
        self.csv_n = min(self.l1000_n, CSV_PROFILES)
        self.archs4 = (3_000, 5_000) if args.quick else (35_000, 100_000)  # genes, samples
        self.epoch_n = 2_000 if args.quick else 20_000
        self.names = _selected(args.only)

    @property
    def largest(self) -> int:
        return self.sizes[-1]


def _selected(only: str | None) -> list[str]:
    if not only:
        return list(COMMANDS)
    out: list[str] = []
    for name in (n.strip() for n in only.split(",") if n.strip()):
        for n in ALIASES.get(name, (name,)):
            if n not in COMMANDS:
                sys.exit(f"--only: unknown name {n!r}; choose among {', '.join(COMMANDS)} "
                         f"(or {', '.join(ALIASES)})")
            if n not in out:
                out.append(n)
    return out


def rel(p: Path | str) -> str:
    """A path relative to the project root when under it (commands run there)."""
    p = Path(p)
    try:
        return str(p.resolve().relative_to(ROOT))
    except ValueError:
        return str(p)


def dgex() -> list[str]:
    exe = ROOT / ".venv" / "bin" / "dgex"
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "dgex_core.cli"]


# ============================================================== machine
def describe_machine(cache: Path, drop_caches: bool) -> dict:
    info = machine()
    with open("/proc/meminfo") as fh:
        mem = {ln.split(":")[0]: int(ln.split()[1]) for ln in fh if ":" in ln}
    usage = shutil.disk_usage(cache)
    info.update(
        cpu_count_usable=len(os.sched_getaffinity(0)), load_average_at_start=list(os.getloadavg()),
        mem_total_gb=round(mem.get("MemTotal", 0) / 2**20, 1), mem_available_gb=round(mem.get("MemAvailable", 0) / 2**20, 1),
        disk={"path": str(cache), "free_gb": round(usage.free / GB, 1), "total_gb": round(usage.total / GB, 1)},
        page_cache=page_cache_state(drop_caches, probe=True),
    )
    return info


def page_cache_state(drop: bool, probe: bool = False) -> dict:
    """Drop the page cache when asked and allowed (root); say what happened."""
    if not drop:
        return {"dropped": False, "note": "not dropped: that needs root (sync; echo 3 > /proc/sys/vm/drop_caches; "
                "--drop-caches does it before every command when run as root). The files were just generated or "
                "read, so reads may be served from the page cache whenever the files fit in RAM"}
    try:
        os.sync()
        with open("/proc/sys/vm/drop_caches", "w") as fh:
            fh.write("3\n")
        return {"dropped": True, "note": "dropped (sync; echo 3 > /proc/sys/vm/drop_caches) before every command"}
    except OSError as e:
        return {"dropped": False, "note": f"could not drop the page cache here ({e}); it needs root"}


# ============================================================== files
class Files:
    """The cached test files this run needs, their records, and the landmark lists."""

    def __init__(self, plan: Plan, cache: Path, log=print) -> None:
        self.plan, self.cache, self.log = plan, cache, log
        self.genes = sd.gene_space()
        self.model = sd.ProfileModel(len(self.genes.gene_ids), self.genes.landmark_pos)
        self.specs: dict[str, tuple[Path, dict, float, object]] = {}
        names = set(plan.names)
        g = len(self.genes.gene_ids)
        need_sizes = set(plan.sizes) if names & set(SIZE_COMMANDS) else set()
        if "roofline" in names:
            need_sizes.add(plan.largest)
        for n in sorted(need_sizes):
            self._compendium(f"compendium_{n}", n)
        if "epoch" in names:
            self._compendium("epoch_subset", plan.epoch_n)
        predicts = names & set(ALIASES["predict"])
        for key, n, wanted in (("l1000", plan.l1000_n, predicts - {"predict_csv"}),
                               ("l1000_csv", plan.csv_n, predicts & {"predict_csv"})):
            if not wanted:
                continue
            path = cache / sd.l1000_name(n, self.genes, self.model)
            self.specs[key] = (path, sd.l1000_params(n, self.genes, self.model), n * len(self.genes.landmark_ids) * 4,
                               lambda p=path, n=n: sd.write_l1000(p, n, self.genes, self.model, log=log))
        if "archs4" in names:
            ng, ns = plan.archs4
            src = "gpl96" if "GPL96" in self.genes.source else "synth"
            path = cache / sd.archs4_name(ng, ns, 0, src)
            self.specs["archs4"] = (path, sd.archs4_params(ng, ns, 0, self.genes), ng * ns * 4 * 0.4,
                                    lambda p=path: sd.write_archs4(p, ng, ns, self.genes, log=log))
        self.records: dict[str, dict] = {}
        self.n_genes = g

    def _compendium(self, key: str, n: int) -> None:
        path = self.cache / sd.compendium_name(n, self.genes, self.model)
        self.specs[key] = (path, sd.compendium_params(n, self.genes, self.model), n * len(self.genes.gene_ids) * 4.0,
                           lambda p=path, n=n: sd.write_compendium(p, n, self.genes, self.model, log=self.log))

    def missing_bytes(self) -> float:
        return sum(est for path, params, est, _ in self.specs.values() if sd.cached(path, params) is None)

    def build(self) -> None:
        for key, (path, params, _, build) in self.specs.items():
            self.records[key] = sd.ensure(path, params, build, self.log)
        self.lm_probes = sd.write_id_list(self.cache / f"landmarks_probes_{len(self.genes.landmark_ids)}.txt",
                                          self.genes.landmark_ids)
        self.lm_symbols = sd.write_id_list(self.cache / f"landmarks_symbols_{len(self.genes.landmark_symbols)}.txt",
                                           self.genes.landmark_symbols)
        self.mlp_config = self.cache / "mlp_one_epoch.json"
        self.mlp_config.write_text(json.dumps({"mlp": {"max_epochs": 1}}))

    def path(self, key: str) -> Path:
        return self.specs[key][0]

    def summary(self) -> dict:
        out = {k: {kk: v for kk, v in r.items() if kk != "file"} | {"gb": round(r["bytes"] / GB, 3)}
               for k, r in self.records.items()}
        out["landmark_lists"] = {"probes": rel(self.lm_probes), "symbols": rel(self.lm_symbols),
                                 "source": self.genes.source}
        return out


def check_disk(files: Files, cache: Path) -> None:
    need = files.missing_bytes()
    if not need:
        return
    free = disk_free_gb(cache)
    margin = 1.0
    if need / GB + margin > free:
        sys.exit(f"bench_scale: refusing to generate the test files: they need about {need / GB:.1f} GB "
                 f"(+{margin:.0f} GB margin) but only {free:.1f} GB are free on the file system of {cache}. Free "
                 "some space, point $DGEX_BENCH_CACHE (or --cache) at a larger disk, or run fewer sizes "
                 "(--sizes, --only, --quick).")
    print(f"generating about {need / GB:.1f} GB of test files in {cache} ({free:.1f} GB free)")


# ============================================================== the benchmark
class Bench:
    def __init__(self, plan: Plan, files: Files, args: argparse.Namespace, out_name: str, machine_info: dict) -> None:
        self.plan, self.files, self.args, self.out_name, self.machine = plan, files, args, out_name, machine_info
        self.cache = files.cache
        self.runs = self.cache / "runs"
        self.logs = self.cache / "logs"
        self.outputs = self.cache / "outputs"
        self.records: list[dict] = []
        self.inprocess: dict = {}
        self.payload: dict = {}
        self.earlier_files: dict = {}
        self.argv_history: list[list[str]] = []
        if args.merge:
            self._load_earlier()

    def _load_earlier(self) -> None:
        """--merge: start from the results file's records; what this run measures replaces them."""
        path = RESULTS / f"{self.out_name}.json"
        if not path.exists():
            return
        old = json.loads(path.read_text())
        if old.get("mode") != ("quick" if self.plan.quick else "full"):
            sys.exit(f"bench_scale: --merge: {rel(path)} holds a {old.get('mode')} run; merge runs of one mode only")
        self.records = list(old.get("commands", []))
        self.inprocess = dict(old.get("in_process", {}))
        self.earlier_files = {k: v for k, v in old.get("files", {}).items() if k != "landmark_lists"}
        self.argv_history = old.get("argv_history") or [old.get("argv", [])]
        print(f"--merge: {len(self.records)} records from {rel(path)}", flush=True)

    @property
    def names(self) -> list[str]:
        """The commands this run measured or (with --merge) earlier runs did."""
        have = {r["command"] for r in self.records} | set(self.inprocess)
        return [c for c in COMMANDS if c in self.plan.names or c in have]

    @property
    def sizes(self) -> list[int]:
        have = {r["n_samples"] for r in self.records if r["command"] in SIZE_COMMANDS and r.get("n_samples")}
        return sorted(set(self.plan.sizes) | have)

    # ----------------------------------------------------------- running
    def measure(self, name: str, argv: list[str], n: int | None, *, need_bytes: float = 0, **extra) -> dict:
        rec: dict = {"command": name, "n_samples": n, **extra}
        free = disk_free_gb(self.cache)
        if need_bytes and need_bytes / GB + 1 > free:
            rec.update(status="skipped", reason=f"needs about {need_bytes / GB:.1f} GB of disk, {free:.1f} GB free")
            return self._add(rec)
        if self.args.drop_caches:
            page_cache_state(True)
        tag = f"{name}_{n}" if n is not None else name
        res = run_measured(argv, timeout=self.args.timeout, max_rss_gb=self.args.max_rss_gb, cwd=ROOT,
                           log_dir=self.logs, name=tag)
        rec.update(res)
        rec["status"] = ("timed_out" if res["timed_out"] else "killed_for_rss" if res["killed_for_rss"]
                         else "ok" if res.get("exit_code") == 0 else "failed")
        if n and res.get("wall_s") and rec["status"] == "ok":
            rec["samples_per_s"] = n / res["wall_s"]
        return rec

    def _add(self, rec: dict) -> dict:
        self.records = [r for r in self.records
                        if (r["command"], r.get("n_samples")) != (rec["command"], rec.get("n_samples"))]
        self.records.append(rec)
        self.save()
        n = f" n={rec['n_samples']:,}" if rec.get("n_samples") else ""
        if rec["status"] == "skipped":
            print(f"[{rec['command']}{n}] skipped: {rec['reason']}", flush=True)
        else:
            why = "" if rec["status"] == "ok" else f" {rec['status'].upper()}"
            rate = f", {rec['samples_per_s']:,.0f} samples/s" if rec.get("samples_per_s") else ""
            print(f"[{rec['command']}{n}] exit {rec.get('exit_code')}{why}, {rec.get('wall_s', 0):.1f} s, "
                  f"peak RSS {rec.get('peak_rss_gb', 0):.2f} GB{rate}", flush=True)
            if rec["status"] != "ok":
                for line in (rec.get("stderr_tail") or rec.get("stdout_tail") or [])[-3:]:
                    print(f"    {line}", flush=True)
        return rec

    def skip(self, name: str, n: int | None, reason: str) -> dict:
        return self._add({"command": name, "n_samples": n, "status": "skipped", "reason": reason})

    def run_dir(self, name: str) -> Path:
        return self.runs / name

    def run_exists(self, name: str) -> bool:
        return (self.run_dir(name) / "checksums.json").exists()

    def _run_facts(self, name: str) -> dict:
        """What the saved run says about itself: fit seconds, split, test scores, epochs."""
        d = self.run_dir(name)
        out: dict = {}
        try:
            met = json.loads((d / "metrics.json").read_text())
            out["fit_seconds"] = met.get("fit_seconds")
            test = met.get("test") or {}
            out["test"] = {k: test.get(k) for k in ("mean_mae", "mean_pearson", "n_genes") if k in test}
            cfg = json.loads((d / "config.json").read_text())
            out["split"] = {k: cfg.get("split", {}).get(k) for k in ("n_train", "n_val", "n_test")}
            model = json.loads((d / "model.json").read_text())
            hist = (model.get("state") or {}).get("history")
            if hist:
                out["epoch_seconds"] = [h.get("seconds") for h in hist]
            out["run_folder_gb"] = sum(f.stat().st_size for f in d.iterdir()) / GB
        except (OSError, json.JSONDecodeError, AttributeError):
            pass
        return out

    # ----------------------------------------------------------- user commands
    def size_commands(self) -> None:
        names = [c for c in SIZE_COMMANDS if c in self.plan.names]
        if not names:
            return
        lm = rel(self.files.lm_probes)
        for n in self.plan.sizes:
            data = rel(self.files.path(f"compendium_{n}"))
            for cmd in names:
                if cmd == "inspect":
                    self._add(self.measure(cmd, [*dgex(), "inspect", data, "--landmarks", lm], n))
                    continue
                if cmd == "evaluate":
                    run = f"scale-linear-{n}"
                    if not self.run_exists(run):
                        self.skip(cmd, n, f"no linear run {run} in {rel(self.runs)} (train it: --only linear)")
                        continue
                    self._add(self.measure(cmd, [*dgex(), "evaluate", run, "--runs-dir", rel(self.runs),
                                                 "--data", data], n, run=run, external_data="the same file"))
                    continue
                run = f"scale-{cmd}-{n}"
                argv = [*dgex(), "train", "--data", data, "--landmarks", lm, "--model", cmd, "--name", run,
                        "--runs-dir", rel(self.runs), "--overwrite"]
                if cmd == "mlp":
                    argv += ["--config", rel(self.files.mlp_config)]
                need = n * self.files.n_genes * 4 if cmd == "knn" else 0  # KNN keeps its training profiles
                rec = self.measure(cmd, argv, n, need_bytes=need, run=run)
                if rec.get("status") == "ok":
                    rec.update(self._run_facts(run))
                    if cmd != "linear" and not self.args.keep:
                        shutil.rmtree(self.run_dir(run), ignore_errors=True)  # not needed later; KNN's is large
                        rec["run_folder_deleted"] = True
                self._add(rec)

    def predict(self) -> None:
        wanted = [f for f in PREDICT_FORMATS if f"predict_{f}" in self.plan.names]
        if not wanted:
            return
        run = next((f"scale-linear-{n}" for n in reversed(self.plan.sizes) if self.run_exists(f"scale-linear-{n}")),
                   None)
        if run is None:
            for f in wanted:
                self.skip(f"predict_{f}", self.plan.l1000_n,
                          f"no linear run scale-linear-N in {rel(self.runs)} (train it: --only linear)")
            return
        self.outputs.mkdir(parents=True, exist_ok=True)
        n_out = self.files.n_genes
        for fmt in wanted:
            key, n = ("l1000_csv", self.plan.csv_n) if fmt == "csv" else ("l1000", self.plan.l1000_n)
            l1000 = rel(self.files.path(key))
            out = self.outputs / f"predicted.{fmt}"
            out.unlink(missing_ok=True)
            need = n * n_out * (10 if fmt == "csv" else 4)
            rec = self.measure(f"predict_{fmt}", [*dgex(), "predict", run, l1000, "-o", rel(out), "--runs-dir",
                                                  rel(self.runs)], n, need_bytes=need, run=run,
                               genes_out=f"{len(self.files.genes.landmark_ids)} measured + "
                                         f"{n_out - len(self.files.genes.landmark_ids)} inferred")
            if out.exists():
                rec["output_gb"] = out.stat().st_size / GB
                if not self.args.keep:
                    out.unlink()
                    rec["output_deleted"] = True
            if rec.get("samples_per_s"):
                rec["profiles_per_s"] = rec["samples_per_s"]
            self._add(rec)

    def archs4(self) -> None:
        if "archs4" not in self.plan.names:
            return
        ng, ns = self.plan.archs4
        run = "scale-archs4-linear"
        argv = [*dgex(), "train", "--data", rel(self.files.path("archs4")), "--landmarks", rel(self.files.lm_symbols),
                "--model", "linear", "--normalize", "log2cpm", "--name", run, "--runs-dir", rel(self.runs),
                "--overwrite"]
        rec = self.measure("archs4", argv, ns, run=run, n_genes=ng)
        if rec.get("status") == "ok":
            rec.update(self._run_facts(run))
        elif any("--normalize" in ln for ln in rec.get("stderr_tail", [])):
            rec["note"] = "the CLI does not know --normalize log2cpm yet"
        self._add(rec)

    # ----------------------------------------------------------- in-process rooflines
    def child(self, name: str, code: str, params: dict) -> dict:
        """Run ``code`` in a fresh interpreter (prints one JSON line last); its record plus that JSON."""
        if self.args.drop_caches:
            page_cache_state(True)
        res = run_measured([sys.executable, "-c", code, json.dumps({"root": str(ROOT), **params})],
                           timeout=self.args.timeout, max_rss_gb=self.args.max_rss_gb, cwd=ROOT, log_dir=self.logs,
                           name=name)
        out = {k: res.get(k) for k in ("wall_s", "peak_rss_gb", "exit_code", "timed_out", "killed_for_rss")}
        try:
            out.update(json.loads(res["stdout_tail"][-1]))
            out["status"] = "ok" if res["exit_code"] == 0 else "failed"
        except (IndexError, KeyError, json.JSONDecodeError):
            out["status"] = ("timed_out" if res.get("timed_out") else "killed_for_rss" if res.get("killed_for_rss")
                             else "failed")
            out["stderr_tail"] = res.get("stderr_tail")
        return out

    def roofline(self) -> None:
        if "roofline" not in self.plan.names:
            return
        n = self.plan.largest
        res = self.child("roofline", ROOFLINE_CODE, {"path": str(self.files.path(f"compendium_{n}")),
                                                     "landmarks": self.files.genes.landmark_ids})
        res["n_samples"] = n
        self.inprocess["roofline"] = res
        self._print_inprocess("roofline", res, ("read_s", "read_gb_per_s", "products_s", "products_gflops"))
        self.save()

    def gemm(self) -> None:
        if "gemm" not in self.plan.names:
            return
        n_lm = len(self.files.genes.landmark_ids)
        n_t = self._run_targets() or self.files.n_genes - n_lm
        res = self.child("gemm", GEMM_CODE, {"block": PREDICT_BLOCK, "n_landmarks": n_lm, "n_targets": n_t})
        self.inprocess["gemm"] = res
        self._print_inprocess("gemm", res, ("profiles_per_s", "gflops"))
        self.save()

    def _run_targets(self) -> int | None:
        for n in reversed(self.plan.sizes):
            g = self.run_dir(f"scale-linear-{n}") / "genes.json"
            if g.exists():
                with open(g) as fh:
                    genes = json.load(fh)
                t = genes.get("target_ids") or genes.get("targets")
                if t:
                    return len(t)
        return None

    def epoch(self) -> None:
        if "epoch" not in self.plan.names:
            return
        params = {"path": str(self.files.path("epoch_subset")), "landmarks": str(self.files.lm_probes)}
        res = {"n_samples": self.plan.epoch_n, "file": rel(self.files.path("epoch_subset")),
               "model": "dgex_core.models.mlp.MLPModel defaults, max_epochs=1; split val 0.1 / test 0.1, seed 0"}
        for mode in ("memory", "streamed"):
            r = self.child(f"epoch_{mode}", EPOCH_CODE, {**params, "mode": mode})
            res[mode] = r
            self._print_inprocess(f"epoch {mode}", r, ("epoch_seconds", "fit_seconds"))
        m, s = res["memory"].get("epoch_seconds"), res["streamed"].get("epoch_seconds")
        if m and s:
            res["streamed_speed_vs_memory"] = m / s
        self.inprocess["epoch"] = res
        self.save()

    @staticmethod
    def _print_inprocess(name: str, r: dict, keys: tuple[str, ...]) -> None:
        vals = ", ".join(f"{k} {r[k]:.3g}" for k in keys if isinstance(r.get(k), (int, float)))
        state = r.get("status") if r.get("available", True) else "not available"
        print(f"[{name}] {state}: {vals}; wall {r.get('wall_s') or 0:.1f} s, peak RSS {r.get('peak_rss_gb') or 0:.2f} GB"
              + (f" ({r['note']})" if r.get("note") else ""), flush=True)
        if r.get("status") != "ok":
            for line in (r.get("stderr_tail") or [])[-3:]:
                print(f"    {line}", flush=True)

    # ----------------------------------------------------------- checks
    def find(self, command: str, n: int | None = None) -> dict | None:
        return next((r for r in self.records if r["command"] == command and (n is None or r["n_samples"] == n)), None)

    def checks(self) -> list[dict]:
        out: list[dict] = []
        names, sizes = self.names, self.sizes
        big, small = sizes[-1], sizes[0]
        at = f"{big:,} x {self.files.n_genes:,}" + ("" if big == 111_009 else " (not the paper's 111,009: --sizes/--quick)")

        def add(check: str, ok: bool | None, detail: str) -> None:
            out.append({"check": check, "status": "N/A" if ok is None else "PASS" if ok else "FAIL", "detail": detail})

        for cmd in (c for c in SIZE_COMMANDS if c in names):
            rb, rs = self.find(cmd, big), self.find(cmd, small)
            name = f"{cmd}: completes on {at} with peak RSS <= {RSS_LIMIT_GB:g} GB, within {FLAT_TOLERANCE:.0%} of {small:,}"
            if rb is None or rb["status"] == "skipped":
                add(name, None, rb["reason"] if rb else "not run")
                continue
            flat = (rs is not None and rs["status"] == "ok" and rs["peak_rss_gb"] > 0
                    and rb["peak_rss_gb"] <= (1 + FLAT_TOLERANCE) * rs["peak_rss_gb"])
            detail = f"{big:,}: {rb['status']} (exit {rb.get('exit_code')}), {rb.get('peak_rss_gb', 0):.2f} GB"
            if rs is not None and rs.get("peak_rss_gb"):
                detail += (f"; {small:,}: {rs['status']}, {rs['peak_rss_gb']:.2f} GB "
                           f"(x{rb.get('peak_rss_gb', 0) / rs['peak_rss_gb']:.2f})")
            add(name, rb["status"] == "ok" and rb["peak_rss_gb"] <= RSS_LIMIT_GB and flat, detail)

        if "linear" in names or "roofline" in names:
            lin, roof = self.find("linear", big), self.inprocess.get("roofline", {})
            name = (f"linear regression (model.fit in dgex train: reading the training rows, X'X / X'Y, the ridge "
                    f"grid on validation) <= {LINEAR_ROOFLINE}x (one read + X'X, X'Y) at {at}")
            if lin and lin["status"] == "ok" and roof.get("status") == "ok" and lin.get("fit_seconds"):
                base = roof["read_s"] + roof["products_s"]
                ratio = lin["fit_seconds"] / base
                self.payload["linear_vs_roofline"] = {"fit_seconds_ratio": ratio, "command_ratio": lin["wall_s"] / base}
                add(name, ratio <= LINEAR_ROOFLINE,
                    f"fit {lin['fit_seconds']:.1f} s vs {roof['read_s']:.1f} s read + {roof['products_s']:.1f} s "
                    f"products = x{ratio:.2f}; the whole command (start-up, scoring validation and test, the "
                    f"quantile reference, saving) {lin['wall_s']:.1f} s = x{lin['wall_s'] / base:.2f}")
            else:
                failed = (lin is not None and lin["status"] not in ("ok", "skipped")) or roof.get("status", "ok") != "ok"
                add(name, False if failed else None,
                    f"linear: {lin['status'] if lin else 'not run'}; roofline: {roof.get('status', 'not run')}")

        if "epoch" in names:
            ep = self.inprocess.get("epoch", {})
            name = f"streamed network epoch >= {EPOCH_SHARE:.0%} as fast as in memory ({self.plan.epoch_n:,} x {self.files.n_genes:,})"
            share = ep.get("streamed_speed_vs_memory")
            if share is not None:
                add(name, share >= EPOCH_SHARE, f"memory {ep['memory']['epoch_seconds']:.1f} s, streamed "
                    f"{ep['streamed']['epoch_seconds']:.1f} s: {share:.0%}")
            else:
                st = ep.get("streamed", {})
                add(name, None if st.get("available") is False else False,
                    f"memory: {ep.get('memory', {}).get('status')}; streamed: "
                    f"{st.get('note') or st.get('status')}")

        if "predict_gctx" in names:
            pr, gm = self.find("predict_gctx"), self.inprocess.get("gemm", {})
            name = (f"predict GCTX ({self.plan.l1000_n:,} profiles) >= {PREDICT_SHARE:.0%} of the GEMM-bound rate, "
                    f"peak RSS <= {PREDICT_RSS_LIMIT_GB:g} GB")
            if pr and pr["status"] == "ok" and gm.get("status") == "ok":
                share = pr["profiles_per_s"] / gm["profiles_per_s"]
                add(name, share >= PREDICT_SHARE and pr["peak_rss_gb"] <= PREDICT_RSS_LIMIT_GB,
                    f"{pr['profiles_per_s']:,.0f} profiles/s vs GEMM {gm['profiles_per_s']:,.0f}: {share:.0%}; "
                    f"{pr['peak_rss_gb']:.2f} GB")
            else:
                add(name, None if (pr is None or pr["status"] == "skipped") else False,
                    f"predict: {pr['status'] if pr else 'not run'}; gemm: {gm.get('status', 'not run')}")

        if "archs4" in names:
            ar = self.find("archs4")
            ng, ns = self.plan.archs4
            name = f"ARCHS4 linear ({ng:,} genes x {ns:,} samples, --normalize log2cpm) within {RSS_LIMIT_GB:g} GB"
            if ar is None or ar["status"] == "skipped":
                add(name, None, ar["reason"] if ar else "not run")
            else:
                add(name, ar["status"] == "ok" and ar["peak_rss_gb"] <= RSS_LIMIT_GB,
                    f"{ar['status']} (exit {ar.get('exit_code')}), {ar.get('peak_rss_gb', 0):.2f} GB"
                    + (f": {ar['stderr_tail'][-1]}" if ar["status"] != "ok" and ar.get("stderr_tail") else ""))
        return out

    # ----------------------------------------------------------- results
    def save(self) -> Path:
        payload = {
            "benchmark": "bench/bench_scale.py (issue 13: field scale on one machine)",
            "mode": "quick" if self.plan.quick else "full",
            "argv": sys.argv[1:],
            **({"argv_history": [*self.argv_history, sys.argv[1:]]} if self.args.merge else {}),
            "values": "synthetic: every file was generated by bench/_scale_data.py (see files.*.params)",
            "sizes": self.sizes,
            "timeout_s": self.args.timeout,
            "max_rss_gb_before_kill": self.args.max_rss_gb,
            "dgex": dgex(),
            "files": {**self.earlier_files, **self.files.summary()},
            "commands": self.records,
            "in_process": self.inprocess,
            **self.payload,
            "notes": NOTES,
        }
        return write_results(self.out_name, payload, self.machine)


NOTES = [
    "Values are synthetic (bench/_scale_data.py); gene ids are real GPL96 probes and L1000 landmarks when "
    "../shared/data/real is present (files.landmark_lists.source).",
    "The compendium keeps the paper's 22,268 probes: 978 landmarks + 21,290 targets (not 21,305, which would be "
    "all 22,283 GPL96 probes); the 15 dropped are AFFX controls.",
    "The compendium GCTX is uncompressed (Broad layout and chunk shape otherwise) so that ~10 GB is generated in "
    "minutes; the L1000 file is gzip-compressed as LINCS level-3 files are; the ARCHS4 file is gzip 4 with one "
    "sample x all genes per chunk (the real v2 chunking was not found; see files.archs4.params.chunks_note).",
    "Peak RSS is the child's ru_maxrss (os.wait4) or polled VmHWM, whichever is larger; it includes the pages of "
    "memory-mapped or page-cached file data the process touched.",
    "In-process measurements (roofline, gemm, epoch) each run in a fresh interpreter so that their memory is "
    "their own; the roofline reads the largest compendium once with h5py (read_direct, whole chunks) and sums X'X "
    "and X'Y with dgex_core.models.linear.GramAccumulator (float64) over a fixed random 80% of the samples.",
    "evaluate scores each size's linear run on the same file it was trained on (every sample, not only its test "
    "split); predict uses the linear run of the largest size; outputs are deleted after measuring unless --keep.",
    "Commands run with the library in the working tree as it is at the time of the run.",
]


# ============================================================== in-process code (run in a fresh interpreter)
_PRELUDE = r'''
import json, resource, sys, time
import numpy as np
A = json.loads(sys.argv[1])
sys.path.insert(0, A["root"])
def peak():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
'''

ROOFLINE_CODE = _PRELUDE + r'''
import h5py
from dgex_core.models.linear import GramAccumulator
with h5py.File(A["path"], "r") as f:
    ds = f["/0/DATA/0/matrix"]
    n, g = ds.shape
    ids = [x.decode() for x in f["/0/META/ROW/id"][()]]
    where = {k: i for i, k in enumerate(ids)}
    lm = np.array([where[k] for k in A["landmarks"]])
    tg = np.setdiff1d(np.arange(g), lm)
    rows = ds.chunks[0] if ds.chunks else 256
    bs = rows * max(1, (128 * 2**20 // (g * 4)) // rows)
    train = np.random.default_rng(0).random(n) < 0.8
    buf = np.empty((bs, g), dtype=ds.dtype)
    acc = GramAccumulator()
    read_s = prod_s = 0.0
    for s in range(0, n, bs):
        e = min(n, s + bs)
        t0 = time.perf_counter()
        ds.read_direct(buf, np.s_[s:e], np.s_[0:e - s])
        read_s += time.perf_counter() - t0
        t0 = time.perf_counter()
        blk = buf[: e - s][train[s:e]]
        acc.update(blk[:, lm], blk[:, tg])
        prod_s += time.perf_counter() - t0
    t0 = time.perf_counter()
    acc.finalize()
    prod_s += time.perf_counter() - t0
nt, L, T = int(train.sum()), lm.size, tg.size
print(json.dumps({"n_samples": n, "n_genes": g, "n_train": nt, "block_samples": bs, "read_s": read_s,
                  "read_gb_per_s": n * g * 4 / read_s / 1e9, "products_s": prod_s,
                  "products_gflops": (nt * L * L + 2 * nt * L * T) / prod_s / 1e9,
                  "what": "h5py read_direct of consecutive sample blocks; GramAccumulator.update (float64) on the "
                          "80% training rows' landmark and target columns", "peak_rss_gb_inside": peak()}))
'''

GEMM_CODE = _PRELUDE + r'''
rng = np.random.default_rng(0)
n, L, T = A["block"], A["n_landmarks"], A["n_targets"]
X = rng.standard_normal((n, L), dtype=np.float32)
W = rng.standard_normal((L, T), dtype=np.float32)
out = np.empty((n, T), dtype=np.float32)
np.matmul(X, W, out=out)
times = []
for _ in range(3):
    t0 = time.perf_counter()
    np.matmul(X, W, out=out)
    times.append(time.perf_counter() - t0)
best = min(times)
print(json.dumps({"shape": f"({n} x {L}) @ ({L} x {T}) float32", "seconds": best, "profiles_per_s": n / best,
                  "gflops": 2 * n * L * T / best / 1e9, "peak_rss_gb_inside": peak()}))
'''

EPOCH_CODE = _PRELUDE + r'''
import dgex_core.io as dio
from dgex_core.dataset import Dataset
from dgex_core.landmarks import read_landmarks
from dgex_core.models.mlp import MLPModel
lm = read_landmarks(A["landmarks"])
if A["mode"] == "memory":
    t0 = time.perf_counter()
    m = dio.read(A["path"])
else:
    if not hasattr(dio, "open_matrix"):
        print(json.dumps({"available": False, "note": "dgex_core.io.open_matrix is not available yet"}))
        sys.exit(0)
    t0 = time.perf_counter()
    m = dio.open_matrix(A["path"])
ds = Dataset.from_matrix(m, lm)
load_s = time.perf_counter() - t0
sp = ds.split(val=0.1, test=0.1, seed=0)
model = MLPModel(max_epochs=1)
t0 = time.perf_counter()
model.fit(sp.train, sp.val)
fit_s = time.perf_counter() - t0
print(json.dumps({"available": True, "mode": A["mode"], "matrix": type(m).__name__, "load_s": load_s,
                  "fit_seconds": fit_s, "epoch_seconds": model.history_[0]["seconds"],
                  "device": getattr(model, "device_used_", None), "n_train": sp.train.n_samples,
                  "n_val": sp.val.n_samples, "peak_rss_gb_inside": peak()}))
'''


# ============================================================== main
def clean(cache: Path) -> None:
    if not cache.exists():
        print(f"nothing to delete: {cache} does not exist")
        return
    if not (cache / MARKER).exists():
        sys.exit(f"bench_scale: {cache} was not made by bench_scale.py (no {MARKER} in it); not deleting it")
    size = sum(f.stat().st_size for f in cache.rglob("*") if f.is_file())
    shutil.rmtree(cache)
    print(f"deleted {cache} ({size / GB:.2f} GB)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", help="compendium sample counts (default 28000,56000,111009; --quick: 3000,6000,12000)")
    ap.add_argument("--quick", action="store_true",
                    help="tiny files (3,000-12,000 x 22,268; 20,000 L1000 profiles; ARCHS4 3,000 genes x 5,000 "
                         "samples; a 2,000-sample epoch) to check the harness in minutes")
    ap.add_argument("--only", help="comma-separated: " + ",".join(COMMANDS) + " (or " + ",".join(ALIASES) + ")")
    ap.add_argument("--keep", action="store_true", help="keep prediction outputs and the KNN / network run folders")
    ap.add_argument("--clean", action="store_true", help="delete the cached files, runs and logs, then exit")
    ap.add_argument("--cache", help="cache folder (default $DGEX_BENCH_CACHE or bench/tmp/scale)")
    ap.add_argument("--timeout", type=float, default=1800, help="seconds per command before it is killed (default 1800)")
    ap.add_argument("--max-rss-gb", type=float, default=None,
                    help="kill a command whose resident memory passes this (default 80%% of RAM)")
    ap.add_argument("--drop-caches", action="store_true", help="drop the page cache before each command (needs root)")
    ap.add_argument("--merge", action="store_true",
                    help="add to the results file instead of replacing it: a command measured again replaces its "
                         "earlier record, the checks cover everything measured (run the benchmark in parts)")
    ap.add_argument("--out", help="results name under bench/results (default scale / scale_quick / scale_<only>)")
    args = ap.parse_args()
    cache = Path(args.cache) if args.cache else sd.cache_dir()
    if args.clean:
        clean(cache)
        return
    if args.max_rss_gb is None:
        with open("/proc/meminfo") as fh:
            args.max_rss_gb = round(0.8 * int(fh.readline().split()[1]) / 2**20, 1)
    plan = Plan(args)
    cache.mkdir(parents=True, exist_ok=True)
    (cache / MARKER).touch()
    out_name = args.out or "_".join(["scale", *(["quick"] if plan.quick else []),
                                     *(plan.names if args.only and not args.merge else [])])

    t0 = time.perf_counter()
    files = Files(plan, cache)
    check_disk(files, cache)
    print(f"files in {cache}:")
    files.build()
    print(f"[files] ready in {time.perf_counter() - t0:.0f} s")
    info = describe_machine(cache, args.drop_caches)
    bench = Bench(plan, files, args, out_name, info)
    try:
        bench.size_commands()
        bench.predict()
        bench.archs4()
        bench.roofline()
        bench.gemm()
        bench.epoch()
    except KeyboardInterrupt:
        print("interrupted: writing what was measured", file=sys.stderr)
    checks = bench.checks()
    bench.payload["checks"] = checks
    path = bench.save()
    print("\nmust-show checks:")
    for c in checks:
        print(f"{c['status']:<4}  {c['check']}: {c['detail']}")
    print(path)


if __name__ == "__main__":
    main()
