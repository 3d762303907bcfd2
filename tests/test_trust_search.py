"""Issue 14, exact answers on any data: every exact search path against float64 NumPy brute force on data far from
the origin, with duplicates and ties (hypothesis); one tie rule (distance, then row) everywhere; a scored group that
is the reference scored leave-one-out (anomaly, probe kNN); zero vectors under approximate cosine; extreme values."""

from __future__ import annotations

import re
import tempfile
from pathlib import Path

import h5py
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from embedkit.errors import StoreError
from embedkit.search.arrays import knn
from embedkit.search.index import make_pairs, neighbors
from embedkit.store.store import open_store

SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
RTOL = 1e-5  # distances closer than this (relative; absolute for cosine) are not told apart in float32


def brute(reference: np.ndarray, queries: np.ndarray, metric: str) -> np.ndarray:
    """(Q, N) float64 L2 or cosine distances of float32 data, computed directly (a zero vector: cosine 0)."""
    r, q = reference.astype(np.float64), queries.astype(np.float64)
    if metric == "l2":  # in blocks of queries: bounds the (q, N, D) differences
        return np.concatenate(
            [np.sqrt(((q[i : i + 64, None, :] - r[None, :, :]) ** 2).sum(axis=2)) for i in range(0, len(q), 64)]
        )
    nr, nq = np.linalg.norm(r, axis=1), np.linalg.norm(q, axis=1)
    unit_r, unit_q = r / np.where(nr > 0, nr, 1)[:, None], q / np.where(nq > 0, nq, 1)[:, None]
    d = 0.5 * ((unit_q[:, None, :] - unit_r[None, :, :]) ** 2).sum(axis=2)
    return np.where((nq[:, None] == 0) | (nr[None, :] == 0), 1.0, d)


def assert_exact(reference, queries, rows, distances, k, metric, *, farthest=False, self_rows=None):
    """`rows` (Q, k) are the brute-force answer: every rank at the right distance; the right row wherever its
    distance is told apart from every other row's; exact ties (identical rows) ordered by row, lowest first."""
    full = brute(reference, queries, metric)
    if self_rows is not None:
        full[np.arange(len(queries)), self_rows] = np.nan
    for i in range(len(queries)):
        valid = np.flatnonzero(~np.isnan(full[i]))
        d = full[i, valid]
        order = np.lexsort((valid, -d if farthest else d))
        want_rows, want_d = valid[order][:k], d[order][:k]
        got = rows[i]
        assert len(set(got.tolist())) == k and (self_rows is None or self_rows[i] not in got)
        got_d = full[i, got]
        np.testing.assert_allclose(got_d, want_d, rtol=RTOL, atol=RTOL * (metric == "cosine") + 1e-30)
        np.testing.assert_allclose(distances[i], got_d, rtol=1e-5, atol=1e-6 * (metric == "cosine") + 1e-30)
        tol = RTOL * (1.0 if metric == "cosine" else np.abs(d).max())
        for j in range(k):
            if (np.abs(d - want_d[j]) <= tol).sum() == 1:  # told apart from every other row
                assert got[j] == want_rows[j], f"query {i} rank {j}: row {got[j]}, want {want_rows[j]}"
        for row in got:  # among identical rows the lowest comes first, and is never skipped
            twins = valid[(reference[valid] == reference[row]).all(axis=1)]
            assert np.array_equal(got[np.isin(got, twins)], np.sort(twins)[: np.isin(got, twins).sum()]), (
                f"query {i}: identical rows out of row order: {got}"
            )


@st.composite
def offset_data(draw, max_rows: int = 24):
    """(N, D) float32 rows `offset + spread * pattern`: offsets up to 1e4 x the spread, rows repeated up to 4
    times (exact ties), patterns on a half-integer grid (equal distances), a few zero rows."""
    n_base, dim = draw(st.integers(2, max_rows // 2)), draw(st.integers(1, 6))
    seed, repeats = draw(st.integers(0, 2**16)), draw(st.integers(1, 4))
    rng = np.random.default_rng(seed)
    base = rng.normal(size=(n_base, dim))
    if draw(st.booleans()):
        base = np.round(base * 2) / 2
    rows = rng.permutation(np.repeat(base, repeats, axis=0))
    spread = 10.0 ** draw(st.integers(-3, 3))
    offset = 10.0 ** draw(st.integers(0, 4)) * spread * rng.normal(size=dim) * draw(st.sampled_from([0, 1]))
    x = (offset + spread * rows).astype(np.float32)
    if draw(st.booleans()):
        x[rng.choice(len(x), size=min(2, len(x)), replace=False)] = 0
    return x


@SETTINGS
@given(x=offset_data(), data=st.data(), metric=st.sampled_from(["l2", "cosine"]), farthest=st.booleans())
def test_knn_every_exact_path_matches_float64_brute_force(x, data, metric, farthest):
    """The Python API's self-join, query rows of another array and a subset of rows: exact, ties by row."""
    n = len(x)
    k = data.draw(st.integers(1, n - 1))
    distances, rows = knn(x, x, k, exclude_self=True, metric=metric, farthest=farthest)
    assert_exact(x, x, rows, distances, k, metric, farthest=farthest, self_rows=np.arange(n))
    queries = x[data.draw(st.lists(st.integers(0, n - 1), min_size=1, max_size=6))] + np.float32(0)
    distances, rows = knn(x, queries, k, metric=metric, farthest=farthest)
    assert_exact(x, queries, rows, distances, k, metric, farthest=farthest)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(x=offset_data(), data=st.data(), metric=st.sampled_from(["l2", "cosine"]), farthest=st.booleans())
def test_store_neighbors_and_pairs_match_float64_brute_force(x, data, metric, farthest):
    """`neighbors` over the whole group (the self-join), by `query_ids` (some rows), from a query group, and
    `make_pairs`: exact on data far from the origin, ties by row; the `--ids` rows answer as in the whole group."""
    n = len(x)
    k = data.draw(st.integers(1, n - 1))
    picked = np.array(sorted(set(data.draw(st.lists(st.integers(0, n - 1), min_size=1, max_size=5)))))
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "s.h5"
        store = open_store(path, create=True)
        store.write_group("g/ref", x, ids=np.arange(n) * 3 + 7)
        store.write_group("g/q", x[picked][::-1])
        whole = neighbors(path, "g/ref", k, metric=metric, farthest=farthest)
        assert_exact(x, x, whole.rows, whole.distances, k, metric, farthest=farthest, self_rows=np.arange(n))
        by_ids = neighbors(path, "g/ref", k, metric=metric, farthest=farthest, query_ids=picked * 3 + 7)
        np.testing.assert_array_equal(by_ids.rows, whole.rows[picked])
        np.testing.assert_array_equal(by_ids.ids, whole.ids[picked])
        other = neighbors(path, "g/ref", k, metric=metric, farthest=farthest, query_group="g/q")
        assert_exact(x, x[picked][::-1], other.rows, other.distances, k, metric, farthest=farthest)
        if not farthest:
            with h5py.File(make_pairs(path, "g/ref", k, Path(folder) / "p.h5", metric=metric), "r") as pairs:
                np.testing.assert_array_equal(pairs["neighbor_rows"][()], whole.rows)
                np.testing.assert_array_equal(pairs["distances"][()], whole.distances)


@pytest.mark.parametrize(
    "offset, spread, n, dim",
    [(1000.0, 0.01, 300, 32), (10.0, 0.01, 300, 32), pytest.param(20.0, 1.0, 2000, 128, marks=pytest.mark.slow)],
)
def test_self_join_exact_far_from_the_origin(rng, offset, spread, n, dim):
    """The issue's cases: 300 of 300 rows 1000 + 0.01 N(0, 1) got wrong neighbours; ReLU-like mean 20, D = 128."""
    x = (offset + spread * rng.normal(size=(n, dim))).astype(np.float32)
    full = brute(x, x, "l2")
    np.fill_diagonal(full, np.inf)
    for farthest in (False, True):
        _, rows = knn(x, x, 3, exclude_self=True, farthest=farthest)
        key = np.where(np.isinf(full), np.inf, -full) if farthest else full  # self last either way
        want = np.lexsort((np.broadcast_to(np.arange(n), key.shape), key), axis=-1)[:, :3]
        np.testing.assert_array_equal(rows, want)
    _, rows = knn(x, x[:40], 3)  # the FAISS query path
    np.testing.assert_array_equal(rows, np.argsort(brute(x, x[:40], "l2"), axis=1, kind="stable")[:, :3])


@pytest.mark.parametrize("metric", ["l2", "cosine"])
@pytest.mark.parametrize("farthest", [False, True])
def test_ties_resolve_by_row_on_every_path(tmp_path, rng, metric, farthest):
    """Rows each repeated 4 times: `--ids` and the whole-group search return the same tied rows, lowest first
    (they differed for farthest and cosine: FAISS and the self-join broke ties their own ways)."""
    x = np.repeat((100 + 0.1 * rng.normal(size=(50, 16))).astype(np.float32), 4, axis=0)
    path = tmp_path / "s.h5"
    open_store(path, create=True).write_group("g/x", x)
    picked = np.arange(0, 200, 3)
    whole = neighbors(path, "g/x", 6, metric=metric, farthest=farthest)
    some = neighbors(path, "g/x", 6, metric=metric, farthest=farthest, query_ids=picked)
    np.testing.assert_array_equal(some.rows, whole.rows[picked])
    assert_exact(x, x, whole.rows, whole.distances, 6, metric, farthest=farthest, self_rows=np.arange(200))


@pytest.mark.parametrize("kind", ["hnsw", "ivf"])
def test_approximate_cosine_puts_zero_vectors_at_distance_one(tmp_path, rng, kind):
    """A zero vector has cosine distance 1 to everything: approximate indexes rank it as flat does."""
    x = rng.normal(size=(200, 8)).astype(np.float32)
    x[::10] = 0
    path = tmp_path / "s.h5"
    open_store(path, create=True).write_group("g/x", x)
    queries = [i for i in range(1, 200, 7) if i % 10]  # unit queries (a zero query ties with every row)
    flat = neighbors(path, "g/x", 40, metric="cosine", query_ids=queries)
    approx = neighbors(path, "g/x", 40, metric="cosine", query_ids=queries, index_kind=kind)
    assert (flat.distances[:, -1] > 0.5).any()  # a zero row taken for distance 0.5 (L2 1 on unit rows) would show
    np.testing.assert_array_equal(approx.rows, flat.rows)
    np.testing.assert_allclose(approx.distances, flat.distances, atol=1e-6)


def test_rows_too_long_to_search_are_refused_at_write_naming_the_row(tmp_path, rng):
    """Values ~1e19 gave distance Infinity; 9.2e18 = sqrt(float32 max) / 2 is the longest row accepted."""
    x = rng.normal(size=(10, 4)).astype(np.float32)
    x[6] = [1e19, 0, 0, 0]
    store = open_store(tmp_path / "s.h5", create=True)
    with pytest.raises(StoreError, match="row 6 has norm 1e\\+19"):
        store.write_group("g/x", x)
    x[6] = [6e18, 6e18, 0, 0]  # each value fits, the row's norm (8.5e18) does too
    store.write_group("g/x", x)
    result = neighbors(tmp_path / "s.h5", "g/x", 3)
    assert np.isfinite(result.distances).all()
    np.testing.assert_allclose(result.distances[6], np.sort(brute(x, x[6:7], "l2")[0])[1:4], rtol=1e-6)


def test_anomaly_scores_the_reference_group_leave_one_out(rng):
    """reference == normal: each row's score is the mean distance to its k nearest OTHER rows (PyOD's
    decision_scores_), so two samples of one distribution are told apart at chance, not ROC-AUC 0.985."""
    from embedkit.eval.anomaly import detect_anomalies

    reference = rng.normal(size=(300, 8)).astype(np.float32)
    other = rng.normal(size=(300, 8)).astype(np.float32)
    result = detect_anomalies(reference, reference, other, 3, leave_one_out=("normal",))
    full = brute(reference, reference, "l2")
    np.fill_diagonal(full, np.inf)
    want = np.sort(full, axis=1)[:, :3].mean(axis=1)
    np.testing.assert_allclose(result.scores[:300], want, rtol=1e-5)
    assert 0.4 < result.roc_auc < 0.6
    assert result.to_dict()["leave_one_out"] == ["normal"]


def test_anomaly_store_and_cli_say_leave_one_out(tmp_path, rng, runner):
    from embedkit_cli.main import app

    path = tmp_path / "s.h5"
    store = open_store(path, create=True)
    store.write_group("toy/train", rng.normal(size=(60, 4)).astype(np.float32), np.arange(60) % 3)
    store.write_group("toy/ood", rng.normal(size=(20, 4)).astype(np.float32) + 3, np.arange(20) % 3)
    args = [
        "anomaly",
        str(path),
        "--reference",
        "toy/train",
        "--normal",
        "toy/train",
        "--ood",
        "toy/ood",
        "--out",
        str(tmp_path / "out"),
    ]
    result = runner.invoke(app, args + ["--json"])
    assert result.exit_code == 0, result.output
    assert re.search(r'"leave_one_out": \[\s*"normal"\s*\]', result.output), result.output
    result = runner.invoke(app, args)
    assert "normal = reference, scored leave-one-out" in result.output


def test_probe_knn_with_train_as_test_is_near_chance_on_random_labels(tmp_path, rng):
    """train == test: the kNN vote leaves each row out, so random labels give about 1/4, not 1.0."""
    from embedkit.eval.probe import probe_store

    path = tmp_path / "s.h5"
    open_store(path, create=True).write_group(
        "g/x", rng.normal(size=(400, 8)).astype(np.float32), rng.integers(0, 4, 400)
    )
    result = probe_store(path, "g/x", "g/x", knn_k=5)
    assert result.knn_leave_one_out and result.to_dict()["knn_leave_one_out"]
    assert result.knn_accuracy < 0.4


@pytest.mark.parametrize("metric", ["l2", "cosine"])
def test_rows_far_from_the_origin_are_ranked_without_a_full_scan(monkeypatch, rng, metric):
    """Rows 1000 + N(0, 1): nearly parallel, nearly equally long. Moved to their mean (cosine: their unit rows), the
    float32 ranking's margin is proven for almost every row, so the exact answer costs no O(N^2) fallback."""
    import embedkit.search.arrays as search

    scanned = []
    scan = search._scan
    monkeypatch.setattr(search, "_scan", lambda *args: scanned.append(len(args[2])) or scan(*args))
    x = (1000 + rng.normal(size=(3000, 16))).astype(np.float32)
    _, rows = knn(x, x, 3, exclude_self=True, metric=metric)
    assert sum(scanned) < 30, f"{sum(scanned)} of 3000 rows needed a full scan"
    _, rows = knn(x, x[:20], 3, metric=metric)
    assert sum(scanned) < 30
    if metric == "l2":
        np.testing.assert_array_equal(rows, np.argsort(brute(x, x[:20], "l2"), axis=1, kind="stable")[:, :3])
