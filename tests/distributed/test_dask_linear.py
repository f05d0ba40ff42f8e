"""Linear regression on a real Dask cluster (LocalCluster, two worker processes started
here): the same coefficients as one process, also when a worker dies mid-fit."""

from __future__ import annotations

import itertools
import os
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("distributed")

from dgex_core.distributed import current_client, parse_scheduler, use_client
from dgex_core.distributed.sums import merge_gram, partition_ranges
from dgex_core.models.linear import GramAccumulator, LinearModel
from dgex_core.models.sources import ArraySource


def _data(n=3000, p=40, t=120, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(8.0, 1.0, (n, p))
    Y = X @ rng.normal(size=(p, t)) * 0.3 + rng.normal(size=(n, t)) + 6.0
    return X, Y


def _rel(a, b) -> float:
    """Largest difference relative to the largest value (0 when both are all zeros)."""
    scale = float(np.max(np.abs(b)))
    return float(np.max(np.abs(a - b))) / scale if scale else float(np.max(np.abs(a)))


@pytest.fixture(scope="module")
def cluster():
    from distributed import Client, LocalCluster

    with LocalCluster(n_workers=2, processes=True, threads_per_worker=1, dashboard_address=":0") as lc, Client(lc) as c:
        yield c


def test_scheduler_specs_are_parsed_or_refused_with_what_to_write():
    assert parse_scheduler("local:2") == ("local", 2)
    assert parse_scheduler("tcp://10.0.0.5:8786") == ("address", "tcp://10.0.0.5:8786")
    for bad in ("local", "2", "host:8786"):
        with pytest.raises(ValueError, match="write local:N"):
            parse_scheduler(bad)
    with pytest.raises(ValueError, match="1 to 1,024 workers"):
        parse_scheduler("local:0")


def test_partitions_cover_the_samples_in_whole_blocks():
    assert partition_ranges(1000, 100, 3) == [(0, 400), (400, 800), (800, 1000)]
    assert partition_ranges(50, 100, 8) == [(0, 50)]
    r = partition_ranges(10_007, 64, 8)
    assert r[0][0] == 0 and r[-1][1] == 10_007 and all(a % 64 == 0 for a, _ in r)
    assert all(b == c for (_, b), (c, _) in itertools.pairwise(r))


def test_merged_partial_sums_equal_one_pass():
    X, Y = _data(n=900)
    whole = GramAccumulator().update(X, Y)
    parts = [GramAccumulator().update(X[a:b], Y[a:b]) for a, b in ((0, 100), (100, 650), (650, 900))]
    merged = merge_gram(merge_gram(parts[0], parts[1]), parts[2])
    for got, want in zip(merged.finalize(), whole.finalize(), strict=True):
        assert _rel(got, want) < 1e-12
    assert _rel(merged.target_sum_of_squares(), whole.target_sum_of_squares()) < 1e-12


@pytest.mark.parametrize("alphas", [None, "auto"])
def test_coefficients_on_the_cluster_equal_one_process(cluster, alphas):
    X, Y = _data()
    Xv, Yv = _data(n=400, seed=1)
    local = LinearModel(alphas=alphas, block_size=256)
    local.fit_source(ArraySource(X, Y, 256), [f"L{i}" for i in range(40)], [f"T{j}" for j in range(120)],
                     val=(Xv, Yv) if alphas else None)
    seen = []
    with use_client(cluster):
        remote = LinearModel(alphas=alphas, block_size=256)
        remote.fit_source(ArraySource(X, Y, 256), [f"L{i}" for i in range(40)], [f"T{j}" for j in range(120)],
                          val=(Xv, Yv) if alphas else None, progress=lambda *a: seen.append(a))
    assert remote.alpha_ == local.alpha_
    assert _rel(remote.coef_, local.coef_) < 1e-10 and _rel(remote.intercept_, local.intercept_) < 1e-10
    assert current_client() is None  # only inside the block
    assert any("cluster" in str(a[2].get("stage", "")) for a in seen)


class _DiesOnce(ArraySource):
    """A source whose first read of one partition kills the worker process reading it
    (shipped to the workers as a source, like one on disk, so the read happens there)."""

    in_memory = False

    def __init__(self, X, Y, block_size, marker: str, at: int) -> None:
        super().__init__(X, Y, block_size)
        self.marker, self.at = marker, at

    def read(self, rows):
        if isinstance(rows, slice) and rows.start == self.at and not os.path.exists(self.marker):
            Path(self.marker).write_text(str(os.getpid()))
            os._exit(1)  # the worker dies mid-task; its nanny starts a new one
        return super().read(rows)


def test_a_worker_killed_mid_fit_is_replaced_and_the_result_unchanged(cluster, tmp_path):
    X, Y = _data()
    lm, tg = [f"L{i}" for i in range(40)], [f"T{j}" for j in range(120)]
    local = LinearModel(alpha=1.0, alphas=None, block_size=256)
    local.fit_source(ArraySource(X, Y, 256), lm, tg)
    marker = tmp_path / "killed"
    before = set(cluster.scheduler_info()["workers"])
    with use_client(cluster):
        remote = LinearModel(alpha=1.0, alphas=None, block_size=256)
        remote.fit_source(_DiesOnce(X, Y, 256, str(marker), at=256 * 4), lm, tg)
    assert marker.exists()  # a worker did die
    assert set(cluster.scheduler_info()["workers"]) != before  # and was replaced
    assert _rel(remote.coef_, local.coef_) < 1e-10
