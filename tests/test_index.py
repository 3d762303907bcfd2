"""Search against NumPy brute force (float64): nearest, farthest, self-exclusion, ties, cosine, persisted indexes."""

from __future__ import annotations

import os

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from embedkit.errors import SearchError
from embedkit.search.index import SELF_JOIN_STATUS, index_folder, knn, list_index_files, make_pairs, neighbors
from embedkit.store.store import open_store


def brute_distances(reference: np.ndarray, queries: np.ndarray, metric: str) -> np.ndarray:
    """(Q, N) true distances in float64: Euclidean, or 1 - cos (zero vectors have cos 0)."""
    ref, q = reference.astype(np.float64), queries.astype(np.float64)
    if metric == "l2":
        return np.sqrt(((q[:, None, :] - ref[None, :, :]) ** 2).sum(-1))
    unit = lambda x: x / np.where((n := np.linalg.norm(x, axis=1, keepdims=True)) > 0, n, 1)  # noqa: E731
    return 1.0 - unit(q) @ unit(ref).T


def assert_matches_brute(reference, queries, k, *, farthest, exclude_self, metric, tol=1e-4):
    """Distances equal brute force's k best within tol; rows may differ from brute force only among ties."""
    dist, rows = knn(reference, queries, k, farthest=farthest, exclude_self=exclude_self, metric=metric)
    assert dist.shape == rows.shape == (len(queries), k)
    assert dist.dtype == np.float32 and rows.dtype == np.int64
    full = brute_distances(reference, queries, metric)
    if exclude_self:
        np.fill_diagonal(full, np.nan)
    candidates = np.where(np.isnan(full), -np.inf if farthest else np.inf, full)
    best = np.sort(-candidates if farthest else candidates, axis=1)[:, :k]
    np.testing.assert_allclose(dist, -best if farthest else best, atol=tol)
    np.testing.assert_allclose(np.take_along_axis(full, rows, 1), dist, atol=tol)  # each row is at its distance
    assert all(len(set(r)) == k for r in rows.tolist()), "a row appears twice for one query"
    if exclude_self:
        assert not (rows == np.arange(len(queries))[:, None]).any(), "a query is its own neighbour"
    order = np.diff(dist, axis=1)
    assert ((order <= tol) if farthest else (order >= -tol)).all(), "results are not sorted"
    return dist, rows


@pytest.mark.parametrize("n", [1, 10, 1000])
@pytest.mark.parametrize("k_choice", ["1", "3", "N-1"])
@pytest.mark.parametrize("farthest", [False, True])
@pytest.mark.parametrize("exclude_self", [False, True])
@pytest.mark.parametrize("metric", ["l2", "cosine"])
def test_knn_matches_brute_force(rng, n, k_choice, farthest, exclude_self, metric):
    reference = (rng.normal(size=(n, 8)) * 3 + 1).astype(np.float32)
    queries = reference if exclude_self else rng.normal(size=(50, 8)).astype(np.float32)
    k = {"1": 1, "3": 3, "N-1": n - 1}[k_choice]
    if k < 1 or k > (n - 1 if exclude_self else n):
        with pytest.raises(SearchError, match=f"k={k}"):
            knn(reference, queries, k, farthest=farthest, exclude_self=exclude_self, metric=metric)
        return
    assert_matches_brute(reference, queries, k, farthest=farthest, exclude_self=exclude_self, metric=metric)


def test_exact_duplicates_are_neighbours_but_never_self(rng):
    """Rows 0..4 are identical: each finds the other four at distance 0, and never itself."""
    reference = rng.normal(size=(20, 4)).astype(np.float32)
    reference[:5] = reference[0]
    dist, rows = assert_matches_brute(reference, reference, 4, farthest=False, exclude_self=True, metric="l2")
    for i in range(5):
        assert sorted(rows[i]) == sorted(set(range(5)) - {i})
        np.testing.assert_array_equal(dist[i], 0.0)


def test_all_points_equal_farthest_excludes_self():
    reference = np.ones((6, 3), np.float32)
    dist, rows = knn(reference, reference, 5, farthest=True, exclude_self=True)
    np.testing.assert_array_equal(dist, 0.0)
    for i in range(6):
        assert sorted(rows[i]) == sorted(set(range(6)) - {i})


def test_distances_are_true_not_squared():
    reference = np.array([[0.0, 0.0], [3.0, 4.0], [6.0, 8.0]], np.float32)
    dist, rows = knn(reference, reference[:1], 2, exclude_self=False)
    np.testing.assert_allclose(dist, [[0.0, 5.0]])
    dist, rows = knn(reference, reference[:1], 1, farthest=True)
    assert rows.tolist() == [[2]] and dist[0, 0] == pytest.approx(10.0)


def test_large_norm_near_duplicates_keep_precision(rng):
    """Float32 |x|^2 tricks lose precision at large norms; distances are recomputed from differences."""
    base = rng.normal(size=(50, 16)).astype(np.float32) * 1000
    reference = np.vstack([base, base + 1e-3]).astype(np.float32)
    dist, rows = knn(reference, reference, 1, exclude_self=True)
    np.testing.assert_array_equal(rows[:50, 0], np.arange(50, 100))
    np.testing.assert_allclose(dist[:, 0], np.sqrt(16) * 1e-3, rtol=0.05)


@pytest.mark.parametrize(
    ("reference", "queries", "k", "exclude_self", "message"),
    [
        (np.zeros((5, 3)), np.zeros((2, 3)), 0, False, "k=0: k must be at least 1"),
        (np.zeros((5, 3)), np.zeros((2, 3)), 6, False, "k=6 is larger"),
        (np.zeros((5, 3)), np.zeros((5, 3)), 5, True, "never its own neighbour"),
        (np.zeros((0, 3)), np.zeros((2, 3)), 1, False, "empty"),
        (np.zeros((5, 3)), np.zeros((2, 4)), 1, False, "dimension mismatch"),
        (np.zeros((5, 3)), np.full((2, 3), np.nan), 1, False, "NaN"),
    ],
)
def test_knn_errors_are_one_line(reference, queries, k, exclude_self, message):
    with pytest.raises(SearchError, match=message) as info:
        knn(reference, queries, k, exclude_self=exclude_self)
    assert "\n" not in str(info.value)


@settings(max_examples=25, deadline=None)
@given(
    n=st.integers(1, 40),
    dim=st.integers(1, 6),
    k_fraction=st.floats(0, 1),
    farthest=st.booleans(),
    exclude_self=st.booleans(),
    metric=st.sampled_from(["l2", "cosine"]),
    seed=st.integers(0, 2**16),
    grid=st.booleans(),
)
def test_knn_property_random_shapes(n, dim, k_fraction, farthest, exclude_self, metric, seed, grid):
    """Random shapes, and integer grids full of exact ties."""
    rng = np.random.default_rng(seed)
    reference = rng.integers(-2, 3, size=(n, dim)) if grid else rng.normal(size=(n, dim))
    reference = reference.astype(np.float32)
    allowed = n - 1 if exclude_self else n
    if allowed < 1:
        with pytest.raises(SearchError):
            knn(reference, reference, 1, exclude_self=exclude_self)
        return
    k = 1 + int(k_fraction * (allowed - 1))
    assert_matches_brute(reference, reference, k, farthest=farthest, exclude_self=exclude_self, metric=metric)


# ---------------------------------------------------------------- store-level search and persisted indexes


def clustered(rng, n: int, dim: int = 16, clusters: int = 10) -> np.ndarray:
    centers = rng.normal(size=(clusters, dim)) * 5
    return (centers[rng.integers(0, clusters, n)] + rng.normal(size=(n, dim))).astype(np.float32)


@pytest.fixture
def store_path(tmp_path, rng):
    path = tmp_path / "store.h5"
    store = open_store(path, create=True)
    store.write_group("toy/train", clustered(rng, 2000), rng.integers(0, 10, 2000), ids=np.arange(2000) + 100)
    store.write_group("toy/test", clustered(rng, 50))
    return path


def test_neighbors_uses_group_ids_and_excludes_self(store_path):
    data = open_store(store_path).read("toy/train")
    result = neighbors(store_path, "toy/train", 3)
    dist, rows = knn(data.embeddings, data.embeddings, 3, exclude_self=True)
    np.testing.assert_array_equal(result.query_ids, data.ids)
    np.testing.assert_allclose(result.distances, dist, atol=1e-5)
    np.testing.assert_array_equal(result.ids, data.ids[result.rows])
    np.testing.assert_array_equal(result.labels, data.labels[result.rows])


def test_neighbors_query_ids_and_query_group(store_path):
    store = open_store(store_path)
    train, test = store.read("toy/train"), store.read("toy/test")
    picked = neighbors(store_path, "toy/train", 2, query_ids=[105, 100], farthest=True)
    np.testing.assert_array_equal(picked.query_ids, [105, 100])
    dist, rows = knn(train.embeddings, train.embeddings, 2, farthest=True, exclude_self=True)
    np.testing.assert_allclose(picked.distances, dist[[5, 0]], atol=1e-5)
    other = neighbors(store_path, "toy/train", 4, query_group="toy/test")
    dist, rows = knn(train.embeddings, test.embeddings, 4)
    np.testing.assert_allclose(other.distances, dist, atol=1e-5)
    np.testing.assert_array_equal(other.query_ids, test.ids)


def test_flat_index_is_built_in_memory_not_saved(store_path):
    """A whole group against itself needs no index (self-join); other flat queries build one in memory."""
    assert neighbors(store_path, "toy/train", 3).index_status == SELF_JOIN_STATUS
    assert neighbors(store_path, "toy/train", 3, farthest=True).index_status == SELF_JOIN_STATUS
    assert neighbors(store_path, "toy/train", 3, query_ids=[100, 101]).index_status == "built in memory"
    assert neighbors(store_path, "toy/train", 3, query_group="toy/test").index_status == "built in memory"
    assert list_index_files(store_path) == []


@pytest.mark.parametrize("kind", ["hnsw", "ivf"])
def test_index_persisted_reloaded_and_rebuilt_after_rewrite(store_path, rng, kind):
    first = neighbors(store_path, "toy/train", 3, index_kind=kind)
    assert first.index_status == "built"
    files = list_index_files(store_path)
    assert [(f.group, f.metric, f.kind) for f in files] == [("toy/train", "l2", kind)]
    again = neighbors(store_path, "toy/train", 3, index_kind=kind)
    assert again.index_status == "loaded"
    np.testing.assert_array_equal(again.rows, first.rows)
    np.testing.assert_array_equal(again.distances, first.distances)

    new = clustered(rng, 300)
    open_store(store_path).write_group("toy/train", new, overwrite=True)
    assert list_index_files(store_path)[0].content_id != open_store(store_path).content_id("toy/train")
    rebuilt = neighbors(store_path, "toy/train", 3, index_kind=kind, recall=0.99)  # ivf: nprobe tuned to 0.99
    assert rebuilt.index_status == "built"
    exact = knn(new, new, 3, exclude_self=True)[0]
    assert np.mean(np.isclose(rebuilt.distances, exact, atol=1e-5)) > 0.95
    (fresh,) = list_index_files(store_path)  # the stale file of the old contents is gone
    assert fresh.content_id == open_store(store_path).content_id("toy/train")


@pytest.mark.parametrize("metric", ["l2", "cosine"])
def test_ivf_is_saved_as_shards_that_answer_like_one_index(store_path, tmp_path, monkeypatch, runner, cli_app, metric):
    """IVF trained once, each shard filled with add_with_ids and saved, merged on load: the same answers as one
    IVF index built in memory over every row; a missing shard means a rebuild, an unsaved shard leaves none."""
    from embedkit.search import index as index_module
    from embedkit.search.arrays import build_index, prepare, search_index

    monkeypatch.setattr(index_module, "IVF_SHARD_ROWS", 700)  # 2,000 rows: shards of 700, 700 and 600
    first = neighbors(store_path, "toy/train", 5, index_kind="ivf", metric=metric, query_group="toy/test")
    files = list_index_files(store_path)
    assert [(f.kind, f.shard) for f in files] == [("ivf", "1of3"), ("ivf", "2of3"), ("ivf", "3of3")]
    data, queries = open_store(store_path).read("toy/train"), open_store(store_path).read("toy/test").embeddings
    reference = prepare(data.embeddings, metric)
    one = build_index(reference, "ivf", metric)
    nprobe = first.recall_estimate.nprobe if first.recall_estimate else None
    distances, rows = search_index(one, "ivf", reference, prepare(queries, metric), 5, metric=metric, nprobe=nprobe)
    np.testing.assert_array_equal(first.rows, rows)
    np.testing.assert_array_equal(first.distances, distances)
    again = neighbors(store_path, "toy/train", 5, index_kind="ivf", metric=metric, query_group="toy/test")
    assert again.index_status == "loaded"
    np.testing.assert_array_equal(again.rows, first.rows)
    result = runner.invoke(cli_app, ["info", str(store_path)], env={"COLUMNS": "200"})
    assert f"{metric}.ivf (3 shards)" in result.output, result.output

    files[1].path.unlink()
    assert neighbors(store_path, "toy/train", 5, index_kind="ivf", metric=metric).index_status == "built"
    assert len(list_index_files(store_path)) == 3
    for f in list_index_files(store_path):
        f.path.unlink()
    save = index_module._save_index

    def full_after_one(index, path):
        if list_index_files(store_path):
            raise OSError(28, "No space left on device")
        save(index, path)

    monkeypatch.setattr(index_module, "_save_index", full_after_one)
    status = neighbors(store_path, "toy/train", 5, index_kind="ivf", metric=metric).index_status
    assert status == "built (not saved: No space left on device)"
    assert list_index_files(store_path) == []  # no half-saved index


def test_corrupt_index_file_is_rebuilt(store_path):
    neighbors(store_path, "toy/train", 3, index_kind="hnsw")
    (index_file,) = list_index_files(store_path)
    index_file.path.write_bytes(b"not a faiss index")
    assert neighbors(store_path, "toy/train", 3, index_kind="hnsw").index_status == "built"


@pytest.mark.parametrize("kind", ["hnsw", "ivf"])
@pytest.mark.parametrize("metric", ["l2", "cosine"])
def test_approximate_indexes_have_high_recall(store_path, kind, metric):
    exact = neighbors(store_path, "toy/train", 5, metric=metric)
    approx = neighbors(store_path, "toy/train", 5, metric=metric, index_kind=kind)
    recall = np.mean([len(set(a) & set(e)) / 5 for a, e in zip(approx.rows.tolist(), exact.rows.tolist())])
    assert recall >= 0.95
    assert not (approx.rows == np.arange(2000)[:, None]).any()
    assert neighbors(store_path, "toy/train", 5, metric=metric, index_kind=kind).index_status == "loaded"


def test_ivf_on_a_tiny_group_is_exact(store_path):
    """Under 78 rows IVF has a single list, so it scans everything."""
    exact = neighbors(store_path, "toy/test", 3)
    approx = neighbors(store_path, "toy/test", 3, index_kind="ivf")
    np.testing.assert_allclose(approx.distances, exact.distances, atol=1e-6)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"k": 2000}, "k=2000 is larger than group 'toy/train'"),
        ({"k": 0}, "k=0"),
        ({"k": 3, "query_ids": [1]}, "ids not in group 'toy/train'.*: 1"),
        ({"k": 3, "farthest": True, "index_kind": "hnsw"}, "farthest search is exact only"),
        ({"k": 3, "metric": "manhattan"}, "unknown metric"),
        ({"k": 3, "query_group": "toy/nope"}, "group 'toy/nope' not found"),
    ],
)
def test_neighbors_errors(store_path, kwargs, message):
    with pytest.raises(Exception, match=message) as info:
        neighbors(store_path, "toy/train", **kwargs)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("kind", ["hnsw", "ivf"])
@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"k": 2000}, "k=2000 is larger than group 'toy/train'"),
        ({"k": 2001}, "k=2001 is larger than group 'toy/train'"),
        ({"k": 51, "group": "toy/test", "query_group": "toy/train"}, "k=51 is larger than group 'toy/test'"),
        ({"k": 0}, "k=0"),
        ({"k": 3, "query_group": "other/d8"}, "dimension mismatch: query group 'other/d8'"),
        ({"k": 1, "group": "other/empty", "query_group": "toy/test"}, "group 'other/empty' .* is empty"),
    ],
)
def test_bad_queries_fail_before_an_index_is_built_or_saved(store_path, rng, kind, kwargs, message):
    """An approximate index is slow to build and is saved beside the store: never for a query that must fail."""
    store = open_store(store_path)
    store.write_group("other/d8", rng.normal(size=(10, 8)))
    store.write_group("other/empty", np.zeros((0, 16), np.float32))
    kwargs = {"group": "toy/train", **kwargs}
    with pytest.raises(SearchError, match=message):
        neighbors(store_path, kwargs.pop("group"), index_kind=kind, **kwargs)
    assert not index_folder(store_path).exists()


def test_dimension_mismatch_and_empty_group(store_path, rng):
    store = open_store(store_path)
    store.write_group("other/d8", rng.normal(size=(10, 8)))
    store.write_group("other/empty", np.zeros((0, 16), np.float32))
    with pytest.raises(SearchError, match="dimension mismatch: query group 'other/d8' has D=8"):
        neighbors(store_path, "toy/train", 3, query_group="other/d8")
    with pytest.raises(SearchError, match="empty"):
        neighbors(store_path, "other/empty", 1, query_group="toy/test")


def test_make_pairs_file(store_path, tmp_path):
    import h5py

    dead, live = tmp_path / ".pairs.h5.tmp-999999999-dead", tmp_path / f".pairs.h5.tmp-{os.getpid()}-live"
    dead.write_bytes(b"left by a killed run"), live.write_bytes(b"being written")
    out = make_pairs(store_path, "toy/train", 3, tmp_path / "pairs.h5")
    assert not dead.exists() and live.exists()  # only a dead process's temp file is removed
    data = open_store(store_path).read("toy/train")
    dist, rows = knn(data.embeddings, data.embeddings, 3, exclude_self=True)
    with h5py.File(out, "r") as f:
        np.testing.assert_array_equal(f["ids"][()], data.ids)
        np.testing.assert_allclose(f["distances"][()], dist, atol=1e-5)
        np.testing.assert_array_equal(f["neighbor_ids"][()], data.ids[f["neighbor_rows"][()]])
        assert f["distances"].dtype == np.float32 and f["neighbor_rows"].shape == (2000, 3)
        assert (f.attrs["group"], int(f.attrs["k"]), f.attrs["metric"]) == ("toy/train", 3, "l2")
        assert f.attrs["content_id"] == data.content_id


# ---------------------------------------------------------------- the self-join (every row against the others)


def assert_self_join_matches_brute(reference, k, *, farthest, metric, block_rows, tol=1e-4):
    """self_join_rows over several blocks finds rows at the k best brute-force distances, never the row itself."""
    from embedkit.search.arrays import prepare
    from embedkit.search.self_join import self_join_rows

    rows = self_join_rows(prepare(reference, metric), k, farthest=farthest, metric=metric, block_rows=block_rows)[0]
    full = brute_distances(reference, reference, metric)
    np.fill_diagonal(full, -np.inf if farthest else np.inf)
    best = np.sort(-full if farthest else full, axis=1)[:, :k]
    found = np.sort(np.take_along_axis(-full if farthest else full, rows, 1), axis=1)
    np.testing.assert_allclose(found, best, atol=tol)
    assert all(len(set(r)) == k for r in rows.tolist()), "a row appears twice for one query"
    assert not (rows == np.arange(len(reference))[:, None]).any(), "a row is its own neighbour"


@pytest.mark.parametrize("farthest", [False, True])
@pytest.mark.parametrize("metric", ["l2", "cosine"])
@pytest.mark.parametrize("block_rows", [7, 64, 4096])
def test_self_join_matches_brute_force_across_blocks(rng, farthest, metric, block_rows):
    """300 rows in blocks of 7 (many blocks, a part-filled last one) or 64, or one block: the same answer."""
    reference = clustered(rng, 300, dim=8)
    assert_self_join_matches_brute(reference, 5, farthest=farthest, metric=metric, block_rows=block_rows)


@settings(max_examples=30, deadline=None)
@given(
    n=st.integers(2, 40),
    dim=st.integers(1, 5),
    k_fraction=st.floats(0, 1),
    block_rows=st.integers(1, 12),
    farthest=st.booleans(),
    metric=st.sampled_from(["l2", "cosine"]),
    seed=st.integers(0, 2**16),
    grid=st.booleans(),
)
def test_self_join_property_blocks_and_ties(n, dim, k_fraction, block_rows, farthest, metric, seed, grid):
    """Any block size (even smaller than k), and integer grids full of exact ties."""
    rng = np.random.default_rng(seed)
    reference = (rng.integers(-2, 3, size=(n, dim)) if grid else rng.normal(size=(n, dim))).astype(np.float32)
    k = 1 + int(k_fraction * (n - 2))
    assert_self_join_matches_brute(reference, k, farthest=farthest, metric=metric, block_rows=block_rows)


@settings(max_examples=30, deadline=None)
@given(
    n=st.integers(3, 40),
    block_rows=st.integers(1, 12),
    parts=st.integers(1, 4),
    farthest=st.booleans(),
    seed=st.integers(0, 2**16),
    grid=st.booleans(),
)
def test_self_join_split_among_parts_and_merged_equals_one_pass(n, block_rows, parts, farthest, seed, grid):
    """What Ray's actors do: the block pairs dealt out to several SelfJoins, in any order, merged, give the rows
    and worst scores of one pass over every block (ties included: integer grids)."""
    from embedkit.search.self_join import SelfJoin, block_pairs, self_join_rows

    rng = np.random.default_rng(seed)
    reference = (rng.integers(-2, 3, size=(n, 3)) if grid else rng.normal(size=(n, 3))).astype(np.float32)
    k = int(rng.integers(1, n))
    whole_rows, whole_kth = self_join_rows(reference, k, farthest=farthest, block_rows=block_rows)
    pairs = block_pairs(n, block_rows)
    deal = rng.integers(0, parts, len(pairs))
    joins = [SelfJoin(reference, k, farthest=farthest, metric="l2", block_rows=block_rows) for _ in range(parts)]
    for part, join in enumerate(joins):
        join.run([pairs[t] for t in rng.permutation(len(pairs)) if deal[t] == part])
    merged = SelfJoin(reference, k, farthest=farthest, metric="l2", block_rows=block_rows)
    for join in joins:
        merged.merge(*join.state())
    np.testing.assert_array_equal(merged.rows, whole_rows)
    np.testing.assert_array_equal(merged.kth, whole_kth)


def test_neighbors_of_a_whole_group_equal_a_flat_index_search(store_path):
    """The self-join path of `neighbors` and a flat FAISS search of every row give the same distances."""
    from embedkit.search.index import open_group_index

    whole = neighbors(store_path, "toy/train", 4)
    searcher = open_group_index(store_path, "toy/train")
    rows = np.arange(2000)
    dist, _ = searcher.search(searcher.data.embeddings[rows[::-1]], 4, self_rows=rows[::-1])  # not in order: FAISS
    assert searcher.status == "built in memory"
    np.testing.assert_allclose(whole.distances, dist[::-1], atol=1e-5)


@given(nlist=st.integers(1, 5000), threshold=st.integers(1, 6000))
def test_nprobe_tuning_finds_the_smallest_enough(nlist, threshold):
    """Doubling then bisecting finds the smallest nprobe whose recall reaches the target (a monotone test), as a
    scan of 1..nlist would; nlist when none does. The search at 1M rows was tuned to 4 when 3 may do."""
    from embedkit.search.approximate import _smallest_nprobe

    tried = []

    def enough(nprobe: int) -> bool:
        tried.append(nprobe)
        return nprobe >= threshold

    expected = next((p for p in range(1, nlist + 1) if p >= threshold), nlist)
    assert _smallest_nprobe(enough, nlist) == expected
    assert len(tried) <= 2 * (nlist.bit_length() + 1) and all(1 <= p <= nlist for p in tried)


def test_ivf_with_many_lists_probes_them_through_an_hnsw_graph(store_path, monkeypatch):
    """From IVF_HNSW_MIN_LISTS lists an HNSW graph over the centres picks the lists to probe: recall against exact
    search still reaches the target, the graph looks at least nprobe centres deep, and a reload answers the same."""
    import faiss

    from embedkit.search import arrays
    from embedkit.search.index import open_group_index

    monkeypatch.setattr(arrays, "IVF_HNSW_MIN_LISTS", 8)  # 2,000 rows: 51 lists
    exact = neighbors(store_path, "toy/train", 5, query_group="toy/test")
    approx = neighbors(store_path, "toy/train", 5, query_group="toy/test", index_kind="ivf", recall=0.99)
    recall = np.mean([len(set(a) & set(e)) / 5 for a, e in zip(approx.rows.tolist(), exact.rows.tolist())])
    assert recall >= 0.95 and approx.recall_estimate.recall >= 0.99
    searcher = open_group_index(store_path, "toy/train", kind="ivf")
    assert searcher.status == "loaded"
    searcher.search(open_store(store_path).read("toy/test").embeddings, 5, nprobe=40)
    quantizer = faiss.downcast_index(searcher.index.quantizer)
    assert isinstance(quantizer, faiss.IndexHNSWFlat) and quantizer.hnsw.efSearch == 40
    again = neighbors(store_path, "toy/train", 5, query_group="toy/test", index_kind="ivf", recall=0.99)
    np.testing.assert_array_equal(again.rows, approx.rows)
