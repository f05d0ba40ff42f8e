"""The streaming layer: lazy matrices from every block-addressable format, the on-disk
cache of text formats, and the same results from the streamed and the in-memory paths
for every model family, evaluation and the out-of-distribution check."""

from __future__ import annotations

import h5py
import numpy as np
import pandas as pd
import pytest

import dgex_core.backends as backends
import dgex_core.lazy as lazy
from dgex_core.backends import H5Backend
from dgex_core.dataset import Dataset
from dgex_core.errors import ModelError
from dgex_core.evaluation import ColumnSpill, evaluate_model, per_gene_metrics
from dgex_core.io import open_matrix, read
from dgex_core.io.gctx_write import write_gctx
from dgex_core.lazy import LazyRows, NpyRows
from dgex_core.matrix import ExpressionMatrix
from dgex_core.models.knn import KNNModel, nearest_neighbours
from dgex_core.models.linear import LinearModel
from dgex_core.models.mlp import MLPModel
from dgex_core.preprocess import log2_cpm
from dgex_core.store import load_run, save_run
from dgex_core.training import train_run

N, G, L = 240, 160, 24


def _matrix(seed: int = 0) -> ExpressionMatrix:
    rng = np.random.default_rng(seed)
    z = rng.normal(size=(N, 6))
    w = rng.normal(size=(6, G))
    v = (z @ w + 0.5 * np.tanh(z[:, :1] * 2) + rng.normal(scale=0.3, size=(N, G)) + 8).astype(np.float32)
    meta = pd.DataFrame({"series": [f"GSE{i // 30}" for i in range(N)]}, index=[f"S{i:04d}" for i in range(N)])
    return ExpressionMatrix(v, meta.index, [f"g{j:03d}" for j in range(G)], sample_meta=meta)


LANDMARKS = [f"g{j:03d}" for j in range(0, G, G // L)][:L]


@pytest.fixture
def gctx(tmp_path):
    path = tmp_path / "compendium.gctx"
    write_gctx(_matrix(), path)
    return path


@pytest.fixture
def small_blocks(monkeypatch):
    """Blocks of a few dozen samples, so every path really runs over several blocks."""
    monkeypatch.setattr(backends, "BLOCK_BYTES", 16 * 1024)


def _both(path):
    mem = Dataset.from_matrix(read(path), LANDMARKS)
    lz = Dataset.from_matrix(open_matrix(path), LANDMARKS)
    assert lz.is_lazy and not mem.is_lazy
    return mem, lz


def test_lazy_dataset_reads_nothing_until_asked_and_matches_memory(gctx, small_blocks):
    mem, lz = _both(gctx)
    assert isinstance(lz.landmarks, LazyRows) and lz.landmarks.shape == mem.landmarks.shape
    sp_m, sp_l = mem.split(seed=3), lz.split(seed=3)
    assert sp_l.train.is_lazy and sp_l.train.sample_ids.equals(sp_m.train.sample_ids)
    rows = np.array([7, 0, 23, 5])
    x, y = sp_l.test.read_block(rows)
    np.testing.assert_array_equal(x, sp_m.test.landmarks[rows])
    np.testing.assert_array_equal(y, sp_m.test.targets[rows])
    got = np.vstack([yb for _, _, yb in sp_l.train.iter_blocks()])
    np.testing.assert_array_equal(got, sp_m.train.targets)


@pytest.mark.parametrize("family", ["linear", "knn", "mlp"])
def test_streamed_and_in_memory_training_agree(gctx, small_blocks, family, tmp_path, monkeypatch):
    mem, lz = _both(gctx)
    if family == "mlp":  # one loader group: the streamed shuffle is the in-memory one
        monkeypatch.setattr(backends, "BLOCK_BYTES", 64 * 2**20)

    def make():
        return {"linear": lambda: LinearModel(alphas="auto"),
                "knn": lambda: KNNModel(k_grid=[1, 3, 5]),
                "mlp": lambda: MLPModel(hidden=[32], max_epochs=3, batch_size=32, device="cpu")}[family]()

    run_m = train_run(mem, make(), "m", seed=1)
    run_l = train_run(lz, make(), "l", seed=1)
    if family == "linear":
        np.testing.assert_allclose(run_l.model.coef_, run_m.model.coef_, rtol=0, atol=1e-10)
        assert run_l.model.alpha_ == run_m.model.alpha_
    if family == "knn":
        assert isinstance(run_l.model.Y_train_, NpyRows) and run_l.model.k_ == run_m.model.k_
    # linear: float64 sums, the same to rounding; KNN and the network compute in float32 on
    # values standardized with statistics summed over other block boundaries (1e-16 apart)
    tol = 1e-9 if family == "linear" else 1e-5
    pg_m, pg_l = run_m.per_gene, run_l.per_gene
    for col in ("mae_z", "pearson", "spearman"):
        np.testing.assert_allclose(pg_l[col], pg_m[col], rtol=tol, atol=1e-10)
    np.testing.assert_allclose(run_l.per_sample["ood_score"], run_m.per_sample["ood_score"], rtol=1e-6)
    # saved and loaded, the streamed run predicts as the in-memory one
    folder = save_run(run_l, tmp_path / "runs")
    again = load_run(folder)
    p_m = run_m.model.predict_dataset(mem)
    np.testing.assert_allclose(again.model.predict_dataset(lz).to_numpy(), p_m.to_numpy(),
                               rtol=1e-5 if family == "mlp" else 1e-6, atol=1e-5)


def test_knn_training_files_travel_with_the_run(gctx, small_blocks, tmp_path):
    _, lz = _both(gctx)
    run = train_run(lz, KNNModel(k=3), "knn", seed=0)
    scratch = [run.model.X_train_.path, run.model.Y_train_.path]
    folder = save_run(run, tmp_path / "runs")
    for name in ("X_train.npy", "Y_train.npy"):
        assert (folder / name).exists()
    assert not any(p.exists() for p in scratch)
    loaded = load_run(folder)
    for attr in ("X_train_", "Y_train_"):  # read from the run folder by blocks, never loaded whole
        assert isinstance(getattr(loaded.model, attr), NpyRows)
        np.testing.assert_array_equal(getattr(loaded.model, attr)[np.arange(5)], getattr(run.model, attr)[np.arange(5)])
    save_run(run, tmp_path / "runs2")  # a second save copies them again
    for name in ("X_train.npy", "Y_train.npy"):
        assert (tmp_path / "runs2" / "knn" / name).stat().st_size == (folder / name).stat().st_size
    (folder / "X_train.npy").unlink()
    with pytest.raises(ModelError, match=r"X_train\.npy"):
        load_run(folder, verify=False)


def test_knn_scratch_files_go_with_an_unsaved_model(gctx, small_blocks, tmp_path, monkeypatch):
    import gc
    import subprocess
    import sys

    monkeypatch.setenv("DGEX_TMPDIR", str(tmp_path / "scratch"))
    _, lz = _both(gctx)
    model = KNNModel(k=3).fit(lz.split(seed=0).train)
    files = [model.X_train_.path, model.Y_train_.path]
    assert all(p.exists() for p in files)
    del model
    gc.collect()
    assert not any(p.exists() for p in files)
    # a process that ends with the model alive leaves nothing behind either
    code = ("import sys; from dgex_core.io import open_matrix; from dgex_core.dataset import Dataset; "
            "from dgex_core.models.knn import KNNModel; import dgex_core.backends as backends; backends.BLOCK_BYTES = 16384; "
            f"ds = Dataset.from_matrix(open_matrix({str(gctx)!r}), {LANDMARKS!r}); m = KNNModel(k=3).fit(ds); "
            "print(m.Y_train_.path)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={**__import__("os").environ, "DGEX_TMPDIR": str(tmp_path / "scratch2")})
    assert "scratch2" in out.stdout and not list((tmp_path / "scratch2").iterdir())


def test_neighbour_search_from_disk_blocks_equals_in_memory(tmp_path):
    rng = np.random.default_rng(3)
    X = rng.standard_normal((1000, 12)).astype(np.float32)
    X[500] = X[7]  # an exact tie: broken by training index either way
    Q = rng.standard_normal((300, 12)).astype(np.float32)
    disk = NpyRows.create(tmp_path / "x.npy", X.shape, np.float32)
    disk.write_rows(0, X)
    want = list(nearest_neighbours(Q, X, 7, 64, 4096))
    for qb, tb in ((64, 100), (300, 7), (1, 1000)):
        got = list(nearest_neighbours(Q, disk, 7, qb, tb))
        gi = np.vstack([g[1] for g in got])
        np.testing.assert_array_equal(gi, np.vstack([w[1] for w in want]))
        np.testing.assert_allclose(np.vstack([g[2] for g in got]), np.vstack([w[2] for w in want]), rtol=1e-5)
    # brute force agrees on the neighbour sets
    full = ((Q[:, None, :] - X[None]) ** 2).sum(-1)
    brute = np.argsort(full, axis=1, kind="stable")[:, :7]
    np.testing.assert_array_equal(np.sort(gi, axis=1), np.sort(brute, axis=1))


def test_network_block_loader_visits_every_sample_once_per_epoch(gctx, small_blocks):
    _, lz = _both(gctx)
    from dgex_core.models.sources import ArraySource, StandardizedSource

    src = StandardizedSource(ArraySource(lz.landmarks, lz.targets), lambda x: x, lambda y: y)
    assert src.block_size < N  # several groups
    model = MLPModel(hidden=[8], batch_size=25)
    seen = []
    from dgex_core.models.mlp import _GroupTargets

    targets = _GroupTargets(np.arange(lz.n_targets))
    for xb, _ in model._batches(src, None, targets, 123, "cpu"):
        assert xb.shape[0] == 25 or len(seen) * 25 + xb.shape[0] == N
        seen.append(xb.numpy())
    got = np.vstack(seen)
    assert got.shape[0] == N == len(seen) * 25 - (25 - got.shape[0] % 25) % 25
    order = np.lexsort(got.T[::-1])
    np.testing.assert_array_equal(got[order], np.asarray(lz.landmarks)[np.lexsort(np.asarray(lz.landmarks).T[::-1])])
    again = np.vstack([x.numpy() for x, _ in model._batches(src, None, targets, 123, "cpu")])
    np.testing.assert_array_equal(again, got)  # reproducible
    assert model._steps_per_epoch(src) == len(seen)


def test_loader_runs_follow_the_files_storage_chunks(tmp_path):
    path = tmp_path / "chunked.gctx"
    write_gctx(_matrix(), path, chunks=(16, 32))
    whole = LazyRows(open_matrix(path))
    assert lazy.chunk_starts(whole).tolist() == list(range(0, N, 16))
    rows = np.array([3, 5, 15, 16, 40, 41, 47, 48, 2])  # chunk bands 0,0,0,1,2,2,2,3,0
    view = lazy.take_rows(whole, rows)
    assert lazy.chunk_starts(view).tolist() == [0, 3, 4, 7, 8]
    assert lazy.chunk_starts(np.zeros((10, 2)), chunk=4).tolist() == [0, 4, 8]


def test_evaluation_spill_to_disk_gives_the_same_metrics():
    rng = np.random.default_rng(0)
    t = rng.normal(size=(50, 37)).astype(np.float32)
    p = (t + rng.normal(scale=0.5, size=t.shape)).astype(np.float32)
    spill = ColumnSpill(50, 37, budget=50 * 8 * 4 * 5, memory_bytes=0)
    for s in range(0, 50, 7):
        spill.write(s, t[s:s + 7], p[s:s + 7])
    got_t = np.hstack([a for _, _, a, _ in spill.blocks()])
    got_p = np.hstack([b for _, _, _, b in spill.blocks()])
    spill.close()
    np.testing.assert_array_equal(got_t, t)
    np.testing.assert_array_equal(got_p, p)


def test_evaluate_model_streams_and_matches_per_gene_metrics(gctx, small_blocks):
    mem, lz = _both(gctx)
    model = LinearModel(alpha=1.0).fit(mem)
    ev = evaluate_model(model, lz)
    ref = per_gene_metrics(mem.targets, model.predict_dataset(mem).to_numpy(), mem.target_ids,
                           model.target_scaler_.scale_)
    for col in ("mae_z", "pearson", "spearman", "rmse"):
        np.testing.assert_allclose(ev.per_gene[col], ref[col], rtol=1e-9)


def test_text_formats_are_cached_once(tmp_path, monkeypatch):
    monkeypatch.setenv("DGEX_MATRIX_CACHE", str(tmp_path / "cache"))
    from dgex_core.io import write

    path = write(_matrix(), tmp_path / "m.gct")
    first = open_matrix(path, cache=True)
    assert "cache" in first.provenance.notes
    np.testing.assert_array_equal(first.read(), read(path).values)
    assert first.sample_meta["series"].tolist() == read(path).sample_meta.reindex(first.sample_ids)["series"].tolist()
    entries = list((tmp_path / "cache").iterdir())
    second = open_matrix(path, cache=True)
    assert list((tmp_path / "cache").iterdir()) == entries and second.provenance.notes["cache"] == str(entries[0])
    # a changed file gets a new entry
    m = _matrix(seed=5)
    write(m, path)
    third = open_matrix(path, cache=True)
    np.testing.assert_array_equal(third.read(), read(path).values)
    assert len(list((tmp_path / "cache").iterdir())) == 2


def test_h5ad_backed_dense_and_sparse(tmp_path, small_blocks):
    import anndata as ad
    from scipy import sparse

    m = _matrix()
    dense_x = np.where(m.values > 9, m.values, 0).astype(np.float32)
    for name, X in (("dense", dense_x), ("csr", sparse.csr_matrix(dense_x))):
        path = tmp_path / f"{name}.h5ad"
        ad.AnnData(X, obs=pd.DataFrame(index=list(m.sample_ids)), var=pd.DataFrame(index=list(m.gene_ids))).write_h5ad(path)
        lz = open_matrix(path)
        assert not lz.in_memory and lz.provenance.notes["storage"] == name
        rows = np.array([200, 3, 4, 5, 90])
        np.testing.assert_array_equal(lz.read(rows, np.array([2, 0])), dense_x[rows][:, [2, 0]])
        np.testing.assert_array_equal(np.vstack([v for _, v in lz.iter_blocks()]), dense_x)


def test_archs4_by_sample_blocks_with_log2cpm(tmp_path):
    from .helpers import COUNTS, FIRST, make_archs4

    path = make_archs4(tmp_path / "a.h5")
    lz = open_matrix(path)
    counts = COUNTS.T[:, FIRST].astype(np.float32)
    np.testing.assert_array_equal(lz.read(), counts)
    cpm = lz.with_row_transform(log2_cpm, "log2(CPM+1)")
    np.testing.assert_allclose(cpm.read(np.array([3, 1]), np.array([0])),
                               np.log2(counts[[3, 1]][:, [0]] / counts[[3, 1]].sum(1, keepdims=True) * 1e6 + 1),
                               rtol=1e-6)
    # many rows, few genes: transformed by blocks of whole rows, the same values
    seen = []
    blocked = lz.with_row_transform(lambda x: seen.append(x.shape[0]) or log2_cpm(x), "log2(CPM+1)")
    real = lazy.block_rows
    lazy.block_rows = lambda *a, **k: 2
    try:
        rows = np.array([5, 0, 4, 2, 3])
        got = blocked.read(rows, np.array([1, 0]))
    finally:
        lazy.block_rows = real
    np.testing.assert_allclose(got, log2_cpm(counts[rows])[:, [1, 0]], rtol=1e-6)
    assert seen == [2, 2, 1]


def test_scattered_samples_of_one_sample_chunks_are_read_alone(tmp_path):
    # ARCHS4's layout (genes x samples), one sample per chunk: a scattered sample costs
    # one chunk, so no slice reads the samples between two asked ones
    counts = np.arange(40 * 300, dtype=np.float32).reshape(40, 300)
    path = tmp_path / "one_per_chunk.h5"
    with h5py.File(path, "w") as f:
        f.create_dataset("m", data=counts, chunks=(40, 1))
    backend = H5Backend(path, "m", genes_first=True)
    spans = []
    real = backend._slice
    backend._slice = lambda a, b, c: spans.append((a, b)) or real(a, b, c)
    rows = np.array([250, 10, 40, 41, 42, 100])
    np.testing.assert_array_equal(backend.read(rows, None), counts.T[rows])
    assert sorted(spans) == [(10, 11), (40, 43), (100, 101), (250, 251)]
    backend.chunk_rows = None  # unchunked: neighbours within the gap share a slice
    spans.clear()
    backend.read(rows, None)
    assert sorted(spans) == [(10, 101), (250, 251)]


def test_cli_train_and_evaluate_stream_a_gctx(gctx, tmp_path, capsys):
    from dgex_core.cli import main

    lm = tmp_path / "lm.txt"
    lm.write_text("\n".join(LANDMARKS) + "\n")
    runs = tmp_path / "runs"
    for family in ("linear", "knn"):
        assert main(["train", "--data", str(gctx), "--landmarks", str(lm), "--model", family,
                     "--runs-dir", str(runs)]) == 0
    assert (runs / "compendium-knn" / "Y_train.npy").exists()
    assert main(["evaluate", "compendium-linear", "--data", str(gctx), "--runs-dir", str(runs)]) == 0
    assert main(["inspect", str(gctx), "--landmarks", str(lm)]) == 0
    out = capsys.readouterr().out
    assert "mean per-gene MAE" in out and "values (all samples)" in out


def test_npy_rows_bounds(tmp_path):
    store = NpyRows.create(tmp_path / "x.npy", (10, 3))
    store.write_rows(2, np.ones((2, 3)))
    assert np.load(tmp_path / "x.npy")[2:4].sum() == 6
    with pytest.raises(ValueError):
        store.write_rows(9, np.ones((2, 3)))
    with h5py.File(tmp_path / "not.h5", "w"):
        pass


def test_file_backends_travel_to_another_process_by_reopening_their_file(tmp_path):
    """A Dask worker receives a lazy matrix pickled: an HDF5 backend reopens its file there."""
    import pickle

    import h5py

    values = np.arange(60, dtype=np.float32).reshape(6, 10)
    with h5py.File(tmp_path / "m.h5", "w") as f:
        f["m"] = values
    backend = H5Backend(tmp_path / "m.h5", "m")
    again = pickle.loads(pickle.dumps(backend))
    np.testing.assert_array_equal(again.read(np.array([4, 1]), None), values[[4, 1]])
    assert again.shape == (6, 10)
