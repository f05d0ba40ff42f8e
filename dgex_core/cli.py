"""The ``dgex`` command line.

Each command prints a one-line reason and exits non-zero on failure; ``--debug``
shows the traceback instead.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from . import __version__
from .errors import DgexError


def _cmd_demo(args: argparse.Namespace) -> int:
    from .demo import DemoConfig, load_demo

    cfg = DemoConfig(n_samples=args.samples, n_targets=args.targets, seed=args.seed)
    data = load_demo(cfg)
    print(data.describe())
    return 0


def _cmd_inspect(args: argparse.Namespace) -> int:
    import numpy as np

    from .io import read, sniff

    fmt = sniff(args.path)
    m = read(args.path)
    v = m.values
    finite = v[np.isfinite(v)]
    print(f"{args.path}: {fmt}, {m.n_samples} samples x {m.n_genes} genes ({v.dtype})")
    if finite.size:
        q = np.quantile(finite, [0, 0.5, 1])
        print(f"values: min {q[0]:.3g}, median {q[1]:.3g}, max {q[2]:.3g}; missing {v.size - finite.size}")
    if len(m.sample_meta.columns):
        print(f"sample metadata: {', '.join(map(str, m.sample_meta.columns[:12]))}")
    if len(m.gene_meta.columns):
        print(f"gene metadata: {', '.join(map(str, m.gene_meta.columns[:12]))}")
    if args.landmarks:
        from .landmarks import match_landmarks, read_landmarks

        cov = match_landmarks(read_landmarks(args.landmarks), m.gene_ids, m.gene_meta)
        print(cov.summary(max_missing=args.max_missing))
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="dgex", description="Infer the whole transcriptome from landmark genes.")
    p.add_argument("--version", action="version", version=f"dgex {__version__}")
    p.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    sub = p.add_subparsers(dest="command", required=True)

    d = sub.add_parser("demo", help="build (or load from cache) the built-in synthetic demo and describe it")
    d.add_argument("--samples", type=int, default=10_000, help="number of samples (default 10,000)")
    d.add_argument("--targets", type=int, default=4_000, help="number of target genes (default 4,000)")
    d.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    d.set_defaults(func=_cmd_demo)

    i = sub.add_parser("inspect", help="read an expression file and report its shape, metadata and landmark coverage")
    i.add_argument("path", help="GCT, GCTX, GEO series matrix / SOFT, CSV/TSV/Parquet, h5ad or ARCHS4 file")
    i.add_argument("--landmarks", help="landmark list (LINCS gene info, L1000 GCT/GCTX, one id per line)")
    i.add_argument("--max-missing", type=int, default=20, help="missing landmarks to list (default 20)")
    i.set_defaults(func=_cmd_inspect)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (DgexError, OSError) as e:
        if args.debug:
            raise
        print(f"dgex {args.command}: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"dgex {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
