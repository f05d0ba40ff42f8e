"""Synthetic files at field scale for ``bench_scale.py``, generated once and cached.

Three kinds of file, each written in the layout the real one has:

- **compendium**: a D-GEX-size GEO training matrix (the paper's bgedv2: 111,009
  profiles x 22,268 GPL96 probes), float32, GCTX in the Broad layout and chunk shape
  (:func:`dgex_core.io.gctx_layout.broad_chunks`) but **uncompressed**, so that ~10 GB is
  written in minutes rather than hours;
- **l1000**: LINCS level-3-like landmark profiles (978 probes), float32, GCTX with the
  Broad's gzip, drawn from the same model as the compendium's landmarks, so a run
  trained on the compendium predicts them;
- **archs4**: an ARCHS4-v2-layout HDF5 of gene counts (``data/expression`` uint32,
  genes x samples, gzip), negative-binomial-like counts with per-sample library sizes.

Values are synthetic. Log2-like profiles come from a low-rank latent model (50
programs, a per-series offset in program space), per-gene means in ~[3, 13], gene
scales and gene-specific noise, with 3% of the targets non-linear in the programs
(saturation, threshold, interaction), clipped to [1, 16]. Samples are generated in
fixed blocks from ``numpy.random.default_rng([seed, stream, block])``, so a smaller
file is the prefix of a larger one of the same stream.

Gene ids are the real GPL96 probe ids and L1000 landmarks when ``../shared/data/real``
is there (``gpl96_bladder_n57x22283.gct.gz``, ``l1000_LJP009_A375_24H_qnorm_n371x978.gct``),
else synthetic ids of the same shapes.

Every file is cached under :func:`cache_dir` by a name that carries its parameters,
with a ``<file>.json`` sidecar (parameters, seconds to generate, bytes); it is reused
when the sidecar matches.
"""

from __future__ import annotations

import gzip
import json
import math
import os
import time
import zlib
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
REAL = ROOT.parent / "shared" / "data" / "real"
GPL96_FILE = REAL / "gpl96_bladder_n57x22283.gct.gz"
PLATE_FILE = REAL / "l1000_LJP009_A375_24H_qnorm_n371x978.gct"

#: Bumped whenever the generator changes, so cached files of an older generator are not reused.
GEN_VERSION = 1
#: Version of the ARCHS4 count generator (2: 40% of genes barely expressed; chunks compressed in threads).
ARCHS4_VERSION = 2
N_PROBES = 22_268  # the D-GEX paper's GPL96 probes (bgedv2)
N_LANDMARKS = 978
#: Samples generated per block: a multiple of the Broad chunk's samples (262 for 22,268
#: float32 genes, 268 for 978), so blocks fill whole chunks.
COMPENDIUM_BLOCK = 262 * 8
L1000_BLOCK = 268 * 16
ARCHS4_BLOCK = 1000
#: ARCHS4 ``data/expression`` chunking: no stored source says what the v2 files use; one
#: sample across all genes per chunk follows archs4py, which reads ``[:, i]`` one sample
#: at a time, and the archs4-api README's advice of (n_genes, k) chunks. gzip level 4
#: (h5py's default for "gzip").
ARCHS4_CHUNK_SAMPLES = 1
ARCHS4_GZIP = 4

Log = Callable[[str], None]


def cache_dir() -> Path:
    """``$DGEX_BENCH_CACHE`` or ``bench/tmp/scale`` (git-ignored)."""
    return Path(os.environ.get("DGEX_BENCH_CACHE") or ROOT / "bench" / "tmp" / "scale")


# ============================================================== gene ids
@dataclass
class GeneSpace:
    """The probes of the compendium (platform order) and the landmarks among them."""

    gene_ids: list[str]
    landmark_ids: list[str]
    landmark_symbols: list[str]
    landmark_entrez: list[str]
    source: str

    @property
    def landmark_pos(self) -> np.ndarray:
        where = {g: i for i, g in enumerate(self.gene_ids)}
        return np.array([where[g] for g in self.landmark_ids], dtype=np.int64)


def _gct_ids(path: Path) -> list[str]:
    """The first column (probe ids) of a gzipped GCT, without reading the values."""
    ids = []
    with gzip.open(path, "rt") as fh:
        for i, line in enumerate(fh):
            if i >= 3:
                ids.append(line.split("\t", 1)[0])
    return ids


def _synthetic_probes(n: int) -> list[str]:
    suffixes = ("_at", "_s_at", "_x_at", "_at", "_at")
    return [f"{200000 + i}{suffixes[i % len(suffixes)]}" for i in range(n)]


@lru_cache(maxsize=4)
def gene_space(n_genes: int = N_PROBES) -> GeneSpace:
    """The 978 L1000 landmark probes plus other GPL96 probes (controls last) up to ``n_genes``."""
    if GPL96_FILE.exists() and PLATE_FILE.exists():
        from dgex_core.landmarks import read_landmarks

        probes = _gct_ids(GPL96_FILE)
        lm = read_landmarks(PLATE_FILE)
        lm_ids, symbols = lm.ids("probe_id"), lm.ids("symbol")
        entrez = lm.ids("entrez_id") if "entrez_id" in lm.kinds else [""] * len(lm_ids)
        source = (f"GPL96 probe ids from {GPL96_FILE.name}, the {len(lm_ids)} L1000 landmark probes (with "
                  f"pr_gene_symbol / pr_gene_id) from {PLATE_FILE.name}")
        missing = sorted(set(lm_ids) - set(probes))
        probes = probes + missing  # none on the real files
    else:
        probes = _synthetic_probes(n_genes + 15)
        rng = np.random.default_rng([0, 11])
        lm_ids = [probes[i] for i in np.sort(rng.choice(len(probes), N_LANDMARKS, replace=False))]
        symbols = [f"LMK{i:03d}" for i in range(len(lm_ids))]
        entrez = [str(100000 + i) for i in range(len(lm_ids))]
        source = "synthetic probe ids ('200000_at' style) and landmarks: ../shared/data/real is absent"
    lm_set = set(lm_ids)
    others = [p for p in probes if p not in lm_set]
    ranked = [p for p in others if not p.startswith("AFFX")] + [p for p in others if p.startswith("AFFX")]
    keep = lm_set | set(ranked[: n_genes - len(lm_ids)])
    gene_ids = [p for p in probes if p in keep]
    return GeneSpace(gene_ids, list(lm_ids), list(symbols), list(entrez), source)


# ============================================================== the profile model
@dataclass
class ProfileModel:
    """Log2-like profiles: ``mean + scale * f(z @ W) + noise * eps``, clipped to [1, 16].

    ``z`` (50 programs) is a per-series centre plus a per-sample draw, both unit
    variance; ``W`` has unit-norm gene columns (sparse modules plus a dense weak part);
    ``f`` is the identity except on 3% of the targets (saturation, threshold or
    interaction with a second loading), so linear regression has much to learn and a
    network a little more.
    """

    n_genes: int
    landmark_pos: np.ndarray
    seed: int = 0
    n_programs: int = 50
    nonlinear_frac: float = 0.03
    series_len: tuple[int, int] = (40, 160)
    W: np.ndarray = field(init=False, repr=False)

    def __post_init__(self) -> None:
        rng = np.random.default_rng([self.seed, 0])
        G, K = self.n_genes, self.n_programs
        W = rng.normal(size=(K, G)) * (rng.random((K, G)) < 0.15) + 0.15 * rng.normal(size=(K, G))
        self.W = (W / np.linalg.norm(W, axis=0, keepdims=True)).astype(np.float32)
        self.mean = (3 + 10 * rng.beta(2.0, 2.5, G)).astype(np.float32)
        self.scale = rng.uniform(0.4, 1.4, G).astype(np.float32)
        self.noise = rng.uniform(0.15, 0.6, G).astype(np.float32)
        targets = np.setdiff1d(np.arange(G), self.landmark_pos)
        nl = rng.choice(targets, size=round(self.nonlinear_frac * targets.size), replace=False)
        kind = rng.integers(0, 3, size=nl.size)
        self.nonlinear = {k: np.sort(nl[kind == i]) for i, k in enumerate(("saturation", "threshold", "interaction"))}
        W2 = rng.normal(size=(K, self.nonlinear["interaction"].size))
        self.W2 = (W2 / np.linalg.norm(W2, axis=0, keepdims=True)).astype(np.float32)

    def params(self) -> dict:
        return {"model": "low-rank latent log2 profiles", "n_programs": self.n_programs, "seed": self.seed,
                "gene_mean": "3 + 10 * Beta(2, 2.5)", "gene_scale": "U(0.4, 1.4)", "gene_noise_sd": "U(0.15, 0.6)",
                "nonlinear_targets": {k: int(v.size) for k, v in self.nonlinear.items()},
                "series_run_length": list(self.series_len), "clip": [1, 16], "generator_version": GEN_VERSION}

    def series_of(self, stream: int, n: int) -> np.ndarray:
        """Series index of each of the first ``n`` samples of a stream (runs of 40-160; prefix-stable)."""
        rng = np.random.default_rng([self.seed, stream, 98])
        out = np.empty(n, dtype=np.int64)
        pos, s = 0, 0
        while pos < n:
            length = int(rng.integers(self.series_len[0], self.series_len[1] + 1))
            out[pos:pos + length] = s
            pos += length
            s += 1
        return out

    def _center(self, stream: int, series: int) -> np.ndarray:
        return np.random.default_rng([self.seed, stream, 10**9 + int(series)]).normal(
            size=self.n_programs).astype(np.float32)

    def block(self, stream: int, b: int, block_size: int, series: np.ndarray,
              cols: np.ndarray | None = None) -> np.ndarray:
        """Samples ``[b * block_size, ...)`` of a stream (a whole block is always drawn, so the
        values do not depend on the file's length), all genes or only ``cols`` (no non-linear
        target among them)."""
        rng = np.random.default_rng([self.seed, stream, b])
        nb = block_size
        lo = b * block_size
        ser = series[lo:lo + nb]
        within = rng.standard_normal((nb, self.n_programs), dtype=np.float32)
        centers = np.zeros((nb, self.n_programs), np.float32)
        for s in np.unique(ser):
            centers[: ser.size][ser == s] = self._center(stream, s)
        z = 0.7 * centers + 0.71 * within
        W = self.W if cols is None else self.W[:, cols]
        S = z @ W
        if cols is None:
            for kind, pos in self.nonlinear.items():
                u = S[:, pos]
                if kind == "saturation":
                    S[:, pos] = np.tanh(1.2 * u) / 0.66
                elif kind == "threshold":
                    S[:, pos] = (np.maximum(u - 0.3, 0) - 0.267) / 0.48
                else:
                    S[:, pos] = u * (z @ self.W2)
        g = slice(None) if cols is None else cols
        S *= self.scale[g]
        S += self.mean[g]
        eps = rng.standard_normal(S.shape, dtype=np.float32)
        eps *= self.noise[g]
        S += eps
        np.clip(S, 1, 16, out=S)
        return S[: max(0, min(nb, series.size - lo))]


# ============================================================== cached files
def _sidecar(path: Path) -> Path:
    return path.with_name(path.name + ".json")


def cached(path: Path, params: dict) -> dict | None:
    """The sidecar of a complete cached file with these parameters, else ``None``."""
    side = _sidecar(path)
    if not (path.exists() and side.exists()):
        return None
    try:
        info = json.loads(side.read_text())
    except (OSError, json.JSONDecodeError):
        return None
    if info.get("params") != json.loads(json.dumps(params)) or info.get("bytes") != path.stat().st_size:
        return None
    return info


def _record(path: Path, params: dict, seconds: float, extra: dict | None = None) -> dict:
    info = {"file": path.name, "params": params, "generate_s": seconds, "bytes": path.stat().st_size,
            "written": time.strftime("%Y-%m-%d %H:%M:%S"), **(extra or {})}
    tmp = _sidecar(path).with_suffix(".tmp")
    tmp.write_text(json.dumps(info, indent=1))
    tmp.replace(_sidecar(path))
    return info


def write_id_list(path: Path, ids: list[str]) -> Path:
    """One id per line (a landmark list file); rewritten only when it differs."""
    text = "\n".join(ids) + "\n"
    if not (path.exists() and path.read_text() == text):
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(text)
        tmp.replace(path)
    return path


def compendium_name(n: int, genes: GeneSpace, model: ProfileModel) -> str:
    src = "gpl96" if "GPL96" in genes.source else "synth"
    return f"compendium_n{n}_g{len(genes.gene_ids)}_{src}_k{model.n_programs}_s{model.seed}_v{GEN_VERSION}.gctx"


def compendium_params(n: int, genes: GeneSpace, model: ProfileModel) -> dict:
    from dgex_core.io.gctx_layout import broad_chunks

    return {"kind": "compendium (D-GEX bgedv2-size GEO training matrix)", "n_samples": n,
            "n_genes": len(genes.gene_ids), "n_landmarks": len(genes.landmark_ids), "dtype": "float32",
            "layout": "GCTX, Broad layout", "chunks": list(broad_chunks(n, len(genes.gene_ids))),
            "compression": None, "compression_note": "uncompressed (the Broad compresses with gzip) so that "
            "generation takes minutes, not hours", "gene_ids": genes.source,
            "sample_meta": "series (GSE-like, runs of 40-160 samples)", "values": "synthetic", **model.params()}


def write_compendium(path: Path, n: int, genes: GeneSpace, model: ProfileModel, *, stream: int = 0,
                     log: Log = print) -> None:
    """The first ``n`` samples of the compendium stream as an uncompressed Broad-layout GCTX."""
    from dgex_core.io.gctx_write import GCTXWriter
    from dgex_core.matrix import ExpressionMatrix

    series = model.series_of(stream, n)
    gene_idx = pd.Index(genes.gene_ids, name="gene")
    n_blocks = math.ceil(n / COMPENDIUM_BLOCK)
    t0 = time.perf_counter()
    with GCTXWriter(path, gene_idx, compression=None, n_samples=n) as w:
        for b in range(n_blocks):
            v = model.block(stream, b, COMPENDIUM_BLOCK, series)
            lo = b * COMPENDIUM_BLOCK
            ids = [f"GSM{1_000_000 + i}" for i in range(lo, lo + v.shape[0])]
            meta = pd.DataFrame({"series": [f"GSE{10_000 + s}" for s in series[lo:lo + v.shape[0]]]}, index=ids)
            w.append(ExpressionMatrix(v, ids, gene_idx, meta))
            if b % 10 == 9 or b == n_blocks - 1:
                log(f"    {path.name}: {lo + v.shape[0]:,}/{n:,} samples, {time.perf_counter() - t0:.0f} s")


def l1000_name(n: int, genes: GeneSpace, model: ProfileModel) -> str:
    src = "gpl96" if "GPL96" in genes.source else "synth"
    return f"l1000_n{n}_g{len(genes.landmark_ids)}_{src}_k{model.n_programs}_s{model.seed}_v{GEN_VERSION}.gctx"


def l1000_params(n: int, genes: GeneSpace, model: ProfileModel) -> dict:
    from dgex_core.io.gctx_layout import broad_chunks

    return {"kind": "L1000-like landmark profiles (LINCS level 3 layout)", "n_samples": n,
            "n_genes": len(genes.landmark_ids), "dtype": "float32", "layout": "GCTX, Broad layout",
            "chunks": list(broad_chunks(n, len(genes.landmark_ids))), "compression": "gzip 6 (as the Broad)",
            "gene_ids": genes.source, "gene_meta": ["pr_gene_symbol", "pr_gene_id"],
            "sample_meta": "det_plate (384-well plates)", "values": "synthetic: the compendium model's landmarks, "
            "another sample stream", **model.params()}


def write_l1000(path: Path, n: int, genes: GeneSpace, model: ProfileModel, *, stream: int = 1,
                log: Log = print) -> None:
    """Landmark-only profiles from the compendium's model (another stream), gzip GCTX."""
    from dgex_core.io.gctx_write import GCTXWriter
    from dgex_core.matrix import ExpressionMatrix

    lm_pos = genes.landmark_pos
    series = model.series_of(stream, n)
    lm_idx = pd.Index(genes.landmark_ids, name="gene")
    gmeta = pd.DataFrame({"pr_gene_symbol": genes.landmark_symbols, "pr_gene_id": genes.landmark_entrez},
                         index=lm_idx)
    rows = "ABCDEFGHIJKLMNOP"
    n_blocks = math.ceil(n / L1000_BLOCK)
    t0 = time.perf_counter()
    with GCTXWriter(path, lm_idx, gmeta, n_samples=n) as w:
        for b in range(n_blocks):
            v = model.block(stream, b, L1000_BLOCK, series, cols=lm_pos)
            lo = b * L1000_BLOCK
            pos = np.arange(lo, lo + v.shape[0])
            plate, well = pos // 384, pos % 384
            ids = [f"SYN{p:05d}_24H_X1_B1:{rows[q // 24]}{q % 24 + 1:02d}" for p, q in zip(plate, well, strict=True)]
            meta = pd.DataFrame({"det_plate": [f"SYN{p:05d}" for p in plate]}, index=ids)
            w.append(ExpressionMatrix(v, ids, lm_idx, meta))
            if b % 10 == 9 or b == n_blocks - 1:
                log(f"    {path.name}: {lo + v.shape[0]:,}/{n:,} samples, {time.perf_counter() - t0:.0f} s")


def _bytes(values) -> np.ndarray:
    """Text as fixed-length UTF-8 byte strings (how ARCHS4 stores its metadata)."""
    return np.array([str(v).encode() for v in values])


def archs4_name(n_genes: int, n_samples: int, seed: int, src: str) -> str:
    return f"archs4_g{n_genes}_n{n_samples}_{src}_s{seed}_v{ARCHS4_VERSION}.h5"


def archs4_params(n_genes: int, n_samples: int, seed: int, genes: GeneSpace) -> dict:
    return {"kind": "ARCHS4 v2 layout gene counts", "n_genes": n_genes, "n_samples": n_samples,
            "dtype": "uint32", "layout": "data/expression (genes, samples); meta/genes/{symbol,ensembl_gene,"
            "biotype}; meta/samples/{geo_accession,series_id,title,characteristics_ch1,source_name_ch1,"
            "singlecellprobability,readsaligned}; meta/info/version",
            "chunks": [n_genes, ARCHS4_CHUNK_SAMPLES], "compression": f"gzip {ARCHS4_GZIP}",
            "chunks_note": "the chunk shape of the real v2 files was not found in the stored sources; one "
            "sample x all genes per chunk was chosen (archs4py reads one sample, [:, i], at a time; the "
            "archs4-api README advises (n_genes, k) chunks)",
            "gene_symbols": f"the {len(genes.landmark_symbols)} L1000 landmark symbols plus synthetic SYNnnnnnn "
            "symbols, 0.1% of those listed twice (ARCHS4 lists some symbols twice)", "landmarks_from": genes.source,
            "model": "counts ~ Poisson(library * p_gene * exp(latent + lognormal overdispersion)): "
            "negative-binomial-like; 30 programs; library sizes log-uniform 1e6..5e7; landmarks well expressed, "
            "40% of the other genes barely expressed (mostly zeros)",
            "seed": seed, "values": "synthetic", "generator_version": ARCHS4_VERSION}


def write_archs4(path: Path, n_genes: int, n_samples: int, genes: GeneSpace, *, seed: int = 0,
                 log: Log = print) -> None:
    """An ARCHS4-v2-layout count file (written under a temporary name, then renamed)."""
    import h5py

    rng = np.random.default_rng([seed, 3, 0])
    n_lm = len(genes.landmark_symbols)
    n_syn = n_genes - n_lm
    syn = [f"SYN{i:06d}" for i in range(n_syn)]
    first, again = rng.choice(n_syn, 2 * max(1, n_syn // 1000), replace=False).reshape(2, -1)
    for i, j in zip(first, again, strict=True):
        syn[j] = syn[i]  # a symbol listed twice (another Ensembl gene), as in ARCHS4
    order = rng.permutation(n_genes)
    symbols = np.array(list(genes.landmark_symbols) + syn, dtype=object)[order]
    is_lm = np.r_[np.ones(n_lm, bool), np.zeros(n_syn, bool)][order]
    K = 30
    W = rng.normal(size=(K, n_genes)) * (rng.random((K, n_genes)) < 0.2) + 0.1 * rng.normal(size=(K, n_genes))
    W = (W / np.linalg.norm(W, axis=0, keepdims=True)).astype(np.float32)
    # log abundance: landmarks well expressed; 40% of the other genes barely expressed (zeros, as in ARCHS4)
    a = rng.normal(0, 2.0, n_genes) + 2.5 * is_lm - 7.0 * (~is_lm & (rng.random(n_genes) < 0.4))
    logp = (a - np.log(np.exp(a).sum())).astype(np.float32)
    sd = rng.uniform(0.2, 0.9, n_genes).astype(np.float32)
    od = np.sqrt(np.log1p(rng.uniform(0.05, 0.4, n_genes))).astype(np.float32)  # NB dispersion as lognormal sigma
    offset = (logp - 0.5 * sd**2 - 0.5 * od**2).astype(np.float32)
    lib = np.exp(rng.uniform(np.log(1e6), np.log(5e7), n_samples))
    runs = []
    while sum(runs) < n_samples:
        runs.append(int(rng.integers(6, 60)))
    series = np.repeat(np.arange(len(runs)), runs)[:n_samples]
    tissues = np.array(["blood", "liver", "brain", "lung", "kidney", "colon", "breast", "skin", "muscle", "heart"])
    series_tissue = rng.integers(0, tissues.size, len(runs))
    centers = rng.normal(size=(len(runs), K)).astype(np.float32)
    sc_prob = np.where(rng.random(n_samples) < 0.08, rng.uniform(0.5, 1, n_samples), rng.uniform(0, 0.1, n_samples))
    tmp = path.with_name(path.name + ".part")
    t0 = time.perf_counter()
    with h5py.File(tmp, "w") as f:
        g = f.create_group("meta/genes")
        g.create_dataset("symbol", data=_bytes(symbols))
        g.create_dataset("ensembl_gene", data=_bytes([f"ENSG{90_000_000_000 + i:011d}" for i in range(n_genes)]))
        g.create_dataset("biotype", data=_bytes(np.where(is_lm, "protein_coding", "synthetic")))
        s = f.create_group("meta/samples")
        s.create_dataset("geo_accession", data=_bytes([f"GSM{5_000_000 + i}" for i in range(n_samples)]))
        s.create_dataset("series_id", data=_bytes([f"GSE{200_000 + i}" for i in series]))
        s.create_dataset("title", data=_bytes([f"sample {i}" for i in range(n_samples)]))
        s.create_dataset("characteristics_ch1", data=_bytes([f"tissue: {tissues[series_tissue[i]]}" for i in series]))
        s.create_dataset("source_name_ch1", data=_bytes(tissues[series_tissue[series]]))
        s.create_dataset("singlecellprobability", data=sc_prob)
        s.create_dataset("readsaligned", data=np.round(lib).astype(np.int64))
        f.create_dataset("meta/info/version", data=np.bytes_(f"synthetic (dgex bench_scale, generator {ARCHS4_VERSION})"))
        ds = f.create_dataset("data/expression", shape=(n_genes, n_samples), dtype="uint32",
                              chunks=(n_genes, ARCHS4_CHUNK_SAMPLES), compression="gzip", compression_opts=ARCHS4_GZIP)

        def counts_of(b: int) -> np.ndarray:
            """Samples x genes counts of block ``b`` (uint32; row i is sample lo + i, one chunk)."""
            lo, hi = b * ARCHS4_BLOCK, min(n_samples, (b + 1) * ARCHS4_BLOCK)
            brng = np.random.default_rng([seed, 3, 1 + b])
            z = 0.7 * centers[series[lo:hi]] + 0.71 * brng.standard_normal((hi - lo, K), dtype=np.float32)
            L = z @ W
            L *= sd
            L += offset
            eps = brng.standard_normal(L.shape, dtype=np.float32)
            eps *= od
            L += eps
            L += np.log(lib[lo:hi]).astype(np.float32)[:, None]
            np.exp(L, out=L)
            return np.minimum(brng.poisson(L), 2**32 - 1).astype(np.uint32)

        # Chunks are one sample x all genes: each is deflated (zlib, the format of HDF5's gzip
        # filter) in a thread and written as is, so generation uses every core.
        n_blocks = math.ceil(n_samples / ARCHS4_BLOCK)
        workers = max(1, len(os.sched_getaffinity(0)))
        with ThreadPoolExecutor(workers) as pool:
            ahead = {b: pool.submit(counts_of, b) for b in range(min(2, n_blocks))}
            for b in range(n_blocks):
                counts = ahead.pop(b).result()
                if b + 2 < n_blocks:
                    ahead[b + 2] = pool.submit(counts_of, b + 2)
                lo = b * ARCHS4_BLOCK
                for i, data in enumerate(pool.map(lambda row: zlib.compress(row.tobytes(), ARCHS4_GZIP), counts)):
                    ds.id.write_direct_chunk((0, lo + i), data)
                if b % 10 == 9 or b == n_blocks - 1:
                    log(f"    {path.name}: {lo + counts.shape[0]:,}/{n_samples:,} samples, "
                        f"{time.perf_counter() - t0:.0f} s")
    tmp.replace(path)


def ensure(path: Path, params: dict, build: Callable[[], None], log: Log = print) -> dict:
    """The cached file's record, generating it first when absent or of other parameters."""
    info = cached(path, params)
    if info is not None:
        log(f"  reuse {path.name} ({info['bytes'] / 2**30:.2f} GB, generated in {info['generate_s']:.0f} s)")
        return {**info, "reused": True, "path": str(path)}
    for stale in (path, _sidecar(path)):
        stale.unlink(missing_ok=True)
    log(f"  generate {path.name} ...")
    t0 = time.perf_counter()
    build()
    info = _record(path, params, time.perf_counter() - t0)
    log(f"  wrote {path.name}: {info['bytes'] / 2**30:.2f} GB in {info['generate_s']:.1f} s")
    return {**info, "reused": False, "path": str(path)}
