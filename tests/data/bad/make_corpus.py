"""Regenerate the bad-input corpus in this folder: ``python tests/data/bad/make_corpus.py``.

Each file is small and wrong in one way; ``expected.tsv`` says what each entry point
must answer. The files are committed so the corpus is fixed; this script documents
how they were made.
"""

from __future__ import annotations

import gzip
from pathlib import Path

import h5py
import numpy as np

HERE = Path(__file__).resolve().parent
LANDMARKS = [f"L{i}" for i in range(6)]
TARGETS = [f"T{j}" for j in range(4)]


def gct(rows: int, cols: int, body: list[str], header_cols: int | None = None) -> str:
    names = [f"S{i}" for i in range(header_cols if header_cols is not None else cols)]
    return "#1.2\n" + f"{rows}\t{cols}\n" + "Name\tDescription\t" + "\t".join(names) + "\n" + "\n".join(body) + "\n"


def row(gene: str, values) -> str:
    return f"{gene}\tna\t" + "\t".join(str(v) for v in values)


def good_rows(genes, n=3, seed=0):
    rng = np.random.default_rng(seed)
    return [row(g, np.round(rng.normal(8, 1, n), 3)) for g in genes]


def main() -> None:
    genes = LANDMARKS + TARGETS
    files = {
        "empty.gct": "",
        "truncated.gct": gct(10, 3, good_rows(genes[:4])),
        "header_counts.gct": gct(10, 4, good_rows(genes), header_cols=3),
        "ragged_rows.tsv": "gene\tS0\tS1\tS2\n" + "L0\t1\t2\t3\nL1\t4\t5\nL2\t6\t7\t8\n",
        "non_numeric.gct": gct(10, 3, [*good_rows(genes[:6]), row("T0", [1.0, "high", 2.0]), *good_rows(genes[7:])]),
        "nan_inf.gct": gct(10, 3, [*good_rows(genes[:6]), row("T0", ["NaN", "inf", 2.0]), *good_rows(genes[7:])]),
        "duplicate_genes.gct": gct(10, 3, good_rows([*genes[:9], "L0"])),
        "duplicate_samples.csv": "gene,S0,S1,S0\n" + "\n".join(f"{g},1,2,3" for g in genes) + "\n",
        "no_landmarks.csv": "gene,S0,S1,S2\n" + "\n".join(f"X{j},1,2,3" for j in range(8)) + "\n",
        "half_landmarks.txt": "\n".join([*LANDMARKS[:3], "LX1", "LX2", "LX3"]) + "\n",
        "landmarks.txt": "\n".join(LANDMARKS) + "\n",
        "wrong_orientation.csv": "sample," + ",".join(genes) + "\n" + "\n".join(
            f"S{i}," + ",".join(f"{v:.3f}" for v in np.random.default_rng(i).normal(8, 1, len(genes)))
            for i in range(40)) + "\n",
        # a quote that opens a cell and never closes; a cell over the csv module's 128 KB
        "stray_quote.csv": "gene,S0,S1,S2\n" + "L0,1,2,3\nL1,\"4,5,6\n"
                           + "\n".join(f"{g},1,2,3" for g in genes[2:]) + "\n",
        "long_cell.csv": "gene,S0,S1,S2\n" + "L0,1,2,3\nL1," + "7" * 140_000 + ",5,6\n",
        # numbers Python's float() takes but a data file does not mean: 7_5 (75), Arabic-Indic and
        # full-width digits; a value beyond float32; a column written with decimal commas (read)
        "underscore_digits.csv": "gene,S0,S1,S2\n" + "L0,1,2,3\nL1,4,7_5,6\n",
        "arabic_digits.tsv": "gene\tS0\tS1\nL0\t1\t2\nL1\t\u0667\t3\n",
        "fullwidth_digits.tsv": "gene\tS0\tS1\nL0\t1\t2\nL1\t\uff17\t3\n",
        "float32_overflow.gct": gct(10, 3, [*good_rows(genes[:6]), row("T0", [1.0, "1e39", 2.0]), *good_rows(genes[7:])]),
        "decimal_comma.tsv": "gene\t" + "\t".join(f"S{i}" for i in range(40)) + "\n" + "\n".join(
            g + "\t" + "\t".join((f"{v:.3f}".replace(".", ",") if i == 7 else f"{v:.3f}")
                                  for i, v in enumerate(np.random.default_rng(k).normal(8, 1, 40)))
            for k, g in enumerate(genes)) + "\n",
        # landmark lists as people write them: read (with a note), or refused with the reason
        "bom_dup_landmarks.txt": "\ufeff" + "\n".join([*LANDMARKS, "L0", "L3"]) + "\n",
        "one_line_landmarks.txt": ",".join(LANDMARKS) + "\n",
        "one_id_landmarks.txt": "L0\n",
    }
    for name, text in files.items():
        (HERE / name).write_text(text, encoding="utf-8")
    (HERE / "binary_garbage.tsv").write_bytes(bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8)))
    data = gzip.compress(gct(10, 3, good_rows(genes)).encode() * 20)
    (HERE / "cut_off.gct.gz").write_bytes(data[: len(data) // 2])
    with h5py.File(HERE / "not_gctx.gctx", "w") as f:
        f.create_dataset("expression/values", data=np.ones((3, 3), np.float32))


if __name__ == "__main__":
    main()
