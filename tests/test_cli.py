"""The dgex command as a user runs it (in this process, through ``main``; tests/test_cli_smoke.py
runs each command as a separate process): exit codes, one-line failure messages."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from dgex_core.io import read, write
from dgex_core.matrix import ExpressionMatrix

from .helpers import cli


def dgex(*args, cwd=None, env_extra=None, check=True):
    return cli(*args, env=env_extra, cwd=cwd, check=check)


@pytest.fixture
def env(tmp_path):
    return {"DGEX_DATA_DIR": str(tmp_path / "data"), "DGEX_RUNS_DIR": str(tmp_path / "runs"),
            "DGEX_CACHE_DIR": str(tmp_path / "cache")}


@pytest.fixture
def small_files(tmp_path):
    """A 300-sample GCT of 20 landmarks + 30 targets, a landmark list, and a landmark-only plate."""
    rng = np.random.default_rng(0)
    n, p, t = 300, 20, 30
    X = rng.normal(8, 1, size=(n, p))
    Y = 5 + X @ rng.normal(0, 0.3, size=(p, t)) + np.tanh(X[:, :1] - 8) + rng.normal(0, 0.2, size=(n, t))
    genes = [f"L{i}" for i in range(p)] + [f"T{j}" for j in range(t)]
    m = ExpressionMatrix(np.hstack([X, Y]).astype(np.float32), [f"S{i}" for i in range(n)], genes,
                         sample_meta=pd.DataFrame({"batch": [f"b{i % 3}" for i in range(n)]},
                                                  index=[f"S{i}" for i in range(n)]))
    data = write(m, tmp_path / "train.gct")
    lm = tmp_path / "landmarks.txt"
    lm.write_text("\n".join(genes[:p]) + "\n")
    plate = ExpressionMatrix(rng.normal(8, 1, size=(40, p)).astype(np.float32), [f"P{i}" for i in range(40)],
                             genes[:p][::-1] and list(reversed(genes[:p])))
    plate_path = write(ExpressionMatrix(plate.values, plate.sample_ids, plate.gene_ids), tmp_path / "plate.gct")
    return data, lm, plate_path


def test_every_command_has_help():
    for cmd in ["", "demo", "inspect", "train", "evaluate", "predict", "runs", "compare", "explain", "fetch"]:
        out = dgex(*([cmd] if cmd else []), "--help")
        assert out.returncode == 0 and out.stdout.startswith(f"usage: dgex {cmd}".rstrip() + " ["), out.stdout


def test_demo_describes_the_synthetic_data(env):
    out = dgex("demo", "--samples", 500, "--targets", 60, env_extra=env)
    assert "synthetic" in out.stdout and "500 samples" in out.stdout and "noise floor" in out.stdout


def test_train_runs_compare_evaluate_predict(tmp_path, env, small_files):
    data, lm, plate = small_files
    trained = dgex("train", "--data", data, "--landmarks", lm, "--model", "linear", "--name", "lin", env_extra=env)
    assert trained.stdout.startswith(f"run lin (linear) saved to {tmp_path / 'runs' / 'lin'}: 240 train, 30 validation, "
                                     "30 test samples; 20 landmarks -> 30 targets; fit ")
    test_line = trained.stdout.splitlines()[1]
    assert re.fullmatch(r"test: mean per-gene MAE 0\.\d{4} \(sd 0\.\d{4}\) \[mae_z\], mean Pearson r 0\.\d{3}, "
                        r"30 genes", test_line), test_line
    assert trained.stderr == "20 of 20 landmarks present (100.0%), matched on list symbol = dataset gene id\n"
    cfg = tmp_path / "knn.json"
    cfg.write_text('{"knn": {"k_grid": [1, 5, 15]}}')
    dgex("train", "--data", data, "--landmarks", lm, "--model", "knn", "--config", cfg, "--name", "knn",
         env_extra=env)
    out = dgex("train", "--data", data, "--landmarks", lm, "--model", "mlp", "--name", "mlp",
               "--config", tmp_path / "mlp.json", env_extra=env, check=False)
    assert out.returncode == 1
    assert out.stderr.splitlines()[-1] == ("dgex train: error: [Errno 2] No such file or directory: "
                                           f"'{tmp_path / 'mlp.json'}'"), out.stderr  # a missing config file is named
    runs = dgex("runs", env_extra=env).stdout.splitlines()
    assert runs[0].split()[:4] == ["name", "family", "dataset", "n_landmarks"]
    assert [row.split()[:5] for row in runs[1:]] == [["knn", "knn", "train.gct", "20", "30"],
                                                     ["lin", "linear", "train.gct", "20", "30"]]
    out = dgex("compare", "lin", "knn", "--per-gene", tmp_path / "cmp.csv", env_extra=env)
    lines = out.stdout.splitlines()
    assert lines[0].startswith("knn vs lin on 30 common genes [mae_z]: mean ") and "; relative improvement " in lines[0]
    assert lines[1:] == [f"per-gene comparison written to {tmp_path / 'cmp.csv'}"]
    cmp = pd.read_csv(tmp_path / "cmp.csv", index_col=0)
    assert cmp.shape == (30, 2) and cmp.columns.tolist() == ["lin", "knn"]
    assert dgex("evaluate", "lin", env_extra=env).stdout == test_line + "\n"  # the test metrics train printed
    out = dgex("evaluate", "lin", "--data", data, "--quantile", env_extra=env)
    assert out.stdout.startswith("train.gct (quantile-normalized): mean per-gene MAE ") and \
        out.stdout.endswith(" 30 genes\n"), out.stdout
    genes = [f"L{i}" for i in range(20)] + [f"T{j}" for j in range(30)]
    for suffix in ("gctx", "parquet", "csv", "gct"):
        target = tmp_path / f"pred.{suffix}"
        out = dgex("predict", "lin", plate, "-o", target, "--block-size", 16, env_extra=env)
        assert out.stdout.startswith(f"40 samples: 20 measured + 30 inferred genes written to {target}; 0 samples "
                                     "flagged out of distribution"), out.stdout
        if suffix == "csv":  # the per-sample columns first, then the genes
            table = pd.read_csv(target, index_col="sample")
            assert table.columns.tolist() == ["n_imputed", "n_clipped", "ood_score", "ood_flag", *genes]
            assert table.index.tolist() == [f"P{i}" for i in range(40)]
        else:
            written = read(target)
            assert written.gene_ids.tolist() == genes and written.sample_ids.tolist() == [f"P{i}" for i in range(40)]
    m = read(tmp_path / "pred.gctx")
    assert m.shape == (40, 50)
    assert {"ood_score", "ood_flag"} <= set(m.sample_meta.columns)
    assert set(m.gene_meta["role"]) == {"measured", "inferred"}
    assert "well_inferred" in m.gene_meta
    # measured landmarks are copied by id although the plate lists them in reverse order
    plate_m = read(plate)
    np.testing.assert_array_equal(m.subset(genes=["L3"]).values, plate_m.subset(genes=["L3"]).values)
    side = pd.read_csv(tmp_path / "pred.genes.csv")
    assert side["gene"].tolist()[:2] == ["L0", "L1"]


def test_failures_are_one_line_without_traceback(tmp_path, env, small_files):
    data, lm, plate = small_files
    bad = tmp_path / "bad.gct"
    bad.write_text("#1.2\n2\t3\nName\tDescription\tA\tB\tC\ng1\tna\t1\t2\n")
    cases = [
        (("inspect", tmp_path / "none.gct"), "not found"),
        (("inspect", bad), "bad.gct: line 5"),
        (("train", "--data", data), "--landmarks is required"),
        (("train", "--data", bad, "--landmarks", lm), "bad.gct"),
        (("evaluate", "nosuchrun"), "no such run folder"),
        (("predict", "nosuchrun", plate, "-o", tmp_path / "x.gctx"), "no such run folder"),
        (("train", "--data", "demo:abc"), "demo:SAMPLESxTARGETS"),
        (("fetch", "nosuchdata"), "nosuchdata"),
    ]
    for args, words in cases:
        out = dgex(*args, env_extra=env, check=False)
        assert out.returncode == 1, (args, out.stderr)
        assert words in out.stderr, (args, out.stderr)
        assert "Traceback" not in out.stderr
        assert len(out.stderr.strip().splitlines()) == 1, out.stderr
    lm2 = tmp_path / "lm2.txt"
    lm2.write_text("L0\nL1\nLX\n")
    out = dgex("train", "--data", data, "--landmarks", lm2, env_extra=env, check=False)
    assert out.returncode == 1 and "allow-missing-landmarks" in out.stderr and "missing: LX" in out.stderr
    out = dgex("train", "--data", data, "--landmarks", lm2, "--allow-missing-landmarks", "--name", "two",
               env_extra=env)
    assert "2 landmarks -> 48 targets" in out.stdout
    # --debug shows the traceback
    out = dgex("--debug", "inspect", bad, env_extra=env, check=False)
    assert "Traceback" in out.stderr


def test_predict_with_missing_landmark_leaves_no_output(tmp_path, env, small_files):
    data, lm, _ = small_files
    dgex("train", "--data", data, "--landmarks", lm, "--name", "lin", env_extra=env)
    part = write(ExpressionMatrix(np.ones((3, 2), np.float32), ["a", "b", "c"], ["L0", "L1"]), tmp_path / "p.gct")
    out = dgex("predict", "lin", part, "-o", tmp_path / "out.gctx", env_extra=env, check=False)
    assert out.returncode == 1 and "landmarks are not in the input" in out.stderr
    assert not (tmp_path / "out.gctx").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".out.gctx")]


def test_train_on_the_demo_reports_the_noise_floor(env):
    out = dgex("train", "--data", "demo:1500x100", "--model", "linear", "--name", "d", env_extra=env)
    assert "noise floor" in out.stdout and "nonlinear" not in out.stdout.split("noise floor")[0]
    assert "True:" in out.stdout and "False:" in out.stdout


@pytest.mark.slow
def test_lincs_workflow_on_real_files(tmp_path, env, real_dir):
    """Train OLS/ridge on GPL96 arrays with the L1000 plate's 978 probes as landmarks, then infer
    the plate: 371 samples x (978 measured + 21,305 inferred) genes, like a LINCS level-3 INF file."""
    plate = real_dir / "l1000_LJP009_A375_24H_qnorm_n371x978.gct"
    arrays = real_dir / "gpl96_bladder_n57x22283.gct.gz"
    out = dgex("train", "--data", arrays, "--landmarks", plate, "--model", "linear", "--name", "gpl96",
               env_extra=env)
    assert "978 landmarks -> 21305 targets" in out.stdout
    target = tmp_path / "LJP009_A375_24H_INF_n371x22283.gctx"
    out = dgex("predict", "gpl96", plate, "-o", target, env_extra=env)
    assert "371 samples: 978 measured + 21305 inferred genes" in out.stdout
    m = read(target)
    assert m.shape == (371, 22283)
    assert (m.gene_meta["role"] == "measured").sum() == 978
    assert np.isfinite(m.values).all()
    plate_m = read(plate)
    np.testing.assert_array_equal(m.subset(genes=plate_m.gene_ids[:5]).values, plate_m.values[:, :5])
    # inferred values stay within the range measured in training, the clipped ones counted per sample
    from dgex_core.store import load_run

    lo, hi = load_run(Path(env["DGEX_RUNS_DIR"]) / "gpl96").target_range()
    arrays_m = read(arrays)
    assert lo == pytest.approx(float(np.nanmin(arrays_m.values[:, 978:])), abs=3) and lo >= np.nanmin(arrays_m.values)
    inferred = m.values[:, (m.gene_meta["role"] == "inferred").to_numpy()]
    assert inferred.min() >= np.float32(lo) and inferred.max() <= np.float32(hi)
    assert (m.gene_meta.loc[m.gene_meta["role"] == "inferred", "clip_high"] == hi).all()
    assert m.sample_meta["n_clipped"].sum() > 0 and "clipped to the training range" in out.stdout
    raw = tmp_path / "raw.gctx"
    out = dgex("predict", "gpl96", plate, "-o", raw, "--no-clip", env_extra=env)
    r = read(raw)
    assert (r.sample_meta["n_clipped"] == 0).all()
    raw_inferred = r.values[:, (r.gene_meta["role"] == "inferred").to_numpy()]
    outside = (raw_inferred < np.float32(lo)) | (raw_inferred > np.float32(hi))
    np.testing.assert_array_equal(outside.sum(axis=1), m.sample_meta["n_clipped"].to_numpy())


def test_explain_a_target_with_groups(tmp_path, env):
    cfg = tmp_path / "mlp.json"
    cfg.write_text('{"mlp": {"hidden": [64], "max_epochs": 3}}')
    dgex("train", "--data", "demo:1500x80", "--model", "mlp", "--config", cfg, "--name", "net", env_extra=env)
    dgex("train", "--data", "demo:1500x80", "--model", "linear", "--name", "lin", env_extra=env)
    out = dgex("explain", "net", "--target", "TG00003", "--group-by", "tissue", "-o", tmp_path / "a.csv",
               env_extra=env)
    assert "context dependence of TG00003" in out.stdout and "top landmarks LM" in out.stdout
    table = pd.read_csv(tmp_path / "a.csv", index_col=0)
    from dgex_core.demo import DemoConfig, load_demo

    demo = load_demo(DemoConfig(n_samples=1500, n_targets=80)).dataset()
    assert table.shape[0] == 978 and sorted(table.index) == sorted(demo.landmark_ids)
    assert sorted(c for c in table.columns if c.startswith("tissue=")) == sorted(
        f"tissue={t}" for t in pd.Series(demo.sample_meta["tissue"]).unique())
    assert table["attribution"].abs().is_monotonic_decreasing
    # for a linear run the attribution is its standardized coefficient
    dgex("explain", "lin", "--target", "TG00003", "-o", tmp_path / "l.csv", env_extra=env)
    from dgex_core.store import load_run

    lin = load_run(Path(env["DGEX_RUNS_DIR"]) / "lin")
    got = pd.read_csv(tmp_path / "l.csv", index_col=0)["attribution"]
    np.testing.assert_allclose(got.sort_index(), lin.model.coefficients().drop(index="(intercept)")["TG00003"].sort_index(),
                               rtol=1e-6, atol=1e-9)
    # on the run's held-out test samples only, grouped: the groups are those of the test samples
    out = dgex("explain", "net", "--target", "TG00003", "--on", "test", "--group-by", "tissue", "-o",
               tmp_path / "t.csv", env_extra=env)
    assert "150 test samples (held out)" in out.stdout
    from dgex_core import attribution

    net = load_run(Path(env["DGEX_RUNS_DIR"]) / "net")
    test = demo.split(0.1, 0.1, seed=0).test
    X = pd.DataFrame(test.landmarks, columns=test.landmark_ids)
    want = attribution.attributions(net.model, X, "gradient", ["TG00003"])["TG00003"]
    got = pd.read_csv(tmp_path / "t.csv", index_col=0)
    np.testing.assert_allclose(got["attribution"], want.reindex(got.index), rtol=1e-6, atol=1e-9)
    tissues = pd.Series(test.sample_meta["tissue"]).value_counts()
    assert sorted(c for c in got.columns if c.startswith("tissue=")) == sorted(f"tissue={t}" for t in tissues.index)
    out = dgex("explain", "lin", "--target", "NOPE", "-o", tmp_path / "n.csv", env_extra=env, check=False)
    assert out.returncode == 1 and "NOPE" in out.stderr


def test_inspect_and_train_read_a_table_in_the_same_orientation(tmp_path, env):
    """60 samples (rows) x 30 genes (columns), ids that look like neither: the length
    rule alone would take the 60 rows as genes; the landmark list decides, for every
    command alike."""
    rng = np.random.default_rng(4)
    genes = [f"G{i}" for i in range(30)]
    df = pd.DataFrame(rng.normal(8, 1, size=(60, 30)), index=[f"X{i}" for i in range(60)], columns=genes)
    df.index.name = "sample"
    df.to_csv(tmp_path / "t.csv")
    (tmp_path / "lm.txt").write_text("\n".join(genes[:10]) + "\n")
    out = dgex("inspect", tmp_path / "t.csv", "--landmarks", tmp_path / "lm.txt", env_extra=env)
    assert "60 samples x 30 genes" in out.stdout and "10 of 10 landmarks present" in out.stdout, out.stdout
    out = dgex("train", "--data", tmp_path / "t.csv", "--landmarks", tmp_path / "lm.txt", "--model", "linear",
               "--name", "t", env_extra=env)
    assert "10 of 10 landmarks present" in out.stderr and "10 landmarks -> 20 targets" in out.stdout, out.stdout


def test_unlogged_values_are_refused_until_a_normalization_is_chosen(tmp_path, env):
    """Counts (median ~250) trained on as they are gave a model of nonsense with no word;
    now: refused with the quantiles and the choices; --normalize log2 / log2cpm / none
    trains, the run records it, and predict checks its input against that scale."""
    rng = np.random.default_rng(0)
    counts = rng.poisson(rng.gamma(2, 150, (1, 60)), (120, 60)).astype(np.float32)
    m = ExpressionMatrix(counts, [f"S{i}" for i in range(120)], [f"G{i}" for i in range(60)])
    from dgex_core.io import write

    write(m, tmp_path / "counts.gct")
    (tmp_path / "lm.txt").write_text("\n".join(f"G{i}" for i in range(10)) + "\n")
    base = ["train", "--data", tmp_path / "counts.gct", "--landmarks", tmp_path / "lm.txt", "--model", "linear"]
    out = dgex(*base, "--name", "raw", env_extra=env, check=False)
    assert out.returncode == 1 and "look unlogged" in out.stderr and "--normalize log2cpm" in out.stderr, out.stderr
    assert "whole numbers: counts" in out.stderr
    assert not (tmp_path / "runs" / "raw").exists()
    assert "look unlogged" in dgex("inspect", tmp_path / "counts.gct", env_extra=env).stdout
    for how in ("log2cpm", "log2", "none"):
        dgex(*base, "--name", how, "--normalize", how, env_extra=env)
    from dgex_core.store import load_run

    assert load_run(tmp_path / "runs" / "log2").config["normalize"] == "log2"
    assert load_run(tmp_path / "runs" / "none").config["normalize"] == "none"  # chosen: recorded
    # the run trained on counts as they are takes counts as they are when it predicts
    dgex("predict", "none", tmp_path / "counts.gct", "-o", tmp_path / "n.parquet", env_extra=env)
    # the log2 run logs counts it is given; given log2 values it refuses
    dgex("predict", "log2", tmp_path / "counts.gct", "-o", tmp_path / "a.parquet", env_extra=env)
    write(m.with_values(np.log2(counts + 1)), tmp_path / "logged.gct")
    out = dgex("predict", "log2", tmp_path / "logged.gct", "-o", tmp_path / "b.parquet", env_extra=env, check=False)
    assert out.returncode == 1 and "look log-scaled already" in out.stderr, out.stderr
    # a run trained on log2 values refuses counts
    dgex("train", "--data", tmp_path / "logged.gct", "--landmarks", tmp_path / "lm.txt", "--model", "linear",
         "--name", "onlog", env_extra=env)
    out = dgex("predict", "onlog", tmp_path / "counts.gct", "-o", tmp_path / "c.parquet", env_extra=env, check=False)
    assert out.returncode == 1 and "trained on log-scaled values" in out.stderr, out.stderr


@pytest.mark.parametrize("config, words", [
    ([1, 2], "must be a JSON object"),
    ({"mlp": [1]}, "'mlp' settings must be an object"),
    ({"mlp": {"hidden": [200_000_000]}}, "hidden width must be a whole number from 1 to 20,000"),
    ({"mlp": {"batch_size": 0}}, "batch_size must be a whole number from 1 up"),
    ({"mlp": {"dropout": 1.5}}, "dropout must be in [0, 1)"),
    ({"mlp": {"no_such": 1}}, "bad model setting"),
])
def test_bad_model_settings_are_one_line_errors(tmp_path, env, config, words):
    cfg = tmp_path / "c.json"
    cfg.write_text(json.dumps(config))
    out = dgex("train", "--data", "demo:300x20", "--model", "mlp", "--config", cfg, "--name", "c", env_extra=env,
               check=False)
    assert out.returncode == 1 and "Traceback" not in out.stderr and words in out.stderr, out.stderr
    assert len(out.stderr.strip().splitlines()) == 1


def test_block_size_zero_is_refused_by_the_parser(tmp_path, env):
    out = dgex("predict", "x", tmp_path / "in.gct", "-o", tmp_path / "o.gctx", "--block-size", "0", env_extra=env,
               check=False)
    assert out.returncode == 2 and "--block-size: must be at least 1" in out.stderr, out.stderr
