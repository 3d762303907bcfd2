"""Properties on random shapes (hypothesis): a store gives back exactly what was written, groups and attributes, after
reopening and after rewriting a neighbour group; store-level search (`neighbors`, `pairs` files, group ids, query
groups, self-exclusion, farthest) agrees with NumPy brute force, ties included."""

from __future__ import annotations

import tempfile
from pathlib import Path

import h5py
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from embedkit.errors import SearchError
from embedkit.search.index import make_pairs, neighbors
from embedkit.store.store import add_npy, open_store

SETTINGS = settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])

names = st.text(alphabet="abcxyz019_-", min_size=1, max_size=6)
group_names = st.lists(names, min_size=1, max_size=3).map("/".join)
attr_values = st.one_of(
    st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs", "Cc")), max_size=12),
    st.integers(-(2**40), 2**40),
    st.floats(allow_nan=False, allow_infinity=False, width=64),
    st.lists(names, min_size=1, max_size=4),
)
configs = st.dictionaries(
    names, st.one_of(st.integers(-100, 100), names, st.booleans(), st.lists(st.integers(0, 9))), max_size=3
)
# Any key holds text, numbers or lists of text; dicts are for `config` (stored as JSON text, read back as a dict).
attr_dicts = st.builds(
    lambda plain, config: {**plain, **({"config": config} if config is not None else {})},
    st.dictionaries(
        names.filter(lambda n: n not in ("schema_version", "content_id", "embedkit_version", "config")),
        attr_values,
        max_size=4,
    ),
    st.none() | configs,
)


def _no_nesting(groups: list[str]) -> bool:
    """A store's groups are leaves: none may be a prefix folder of another, and names are distinct."""
    return len(set(groups)) == len(groups) and not any(a != b and b.startswith(a + "/") for a in groups for b in groups)


@SETTINGS
@given(
    groups=st.lists(group_names, min_size=1, max_size=3).filter(_no_nesting),
    shapes=st.lists(st.tuples(st.integers(0, 30), st.integers(1, 6)), min_size=3, max_size=3),
    attrs=attr_dicts,
    seed=st.integers(0, 2**16),
    with_ids=st.booleans(),
)
def test_store_round_trip_groups_arrays_and_attributes(groups, shapes, attrs, seed, with_ids):
    rng = np.random.default_rng(seed)
    written = {}
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "s.h5"
        store = open_store(path, create=True)
        for group, (n, dim) in zip(groups, shapes):
            emb = (rng.normal(size=(n, dim)) * 10.0 ** rng.integers(-20, 18)).astype(np.float32)  # norms < MAX_ROW_NORM
            labels = rng.integers(-1, 7, n)
            ids = rng.permutation(4 * n + 1)[:n] - 2 * n if with_ids else None
            store.write_group(group, emb, labels, ids, attrs)
            written[group] = (emb, labels, np.arange(n) if ids is None else ids)
        reopened = open_store(path)
        assert reopened.groups() == sorted(groups)
        for group, (emb, labels, ids) in written.items():
            data = reopened.read(group)
            np.testing.assert_array_equal(data.embeddings, emb)
            assert data.embeddings.dtype == np.float32 and data.labels.dtype == data.ids.dtype == np.int64
            np.testing.assert_array_equal(data.labels, labels)
            np.testing.assert_array_equal(data.ids, ids)
            for key, value in attrs.items():
                got = data.attrs[key]
                assert got == (list(value) if isinstance(value, tuple) else value), key
        with h5py.File(path, "r") as h5:  # plain h5py reads the same arrays
            for group, (emb, _, _) in written.items():
                np.testing.assert_array_equal(h5[group]["embeddings"][()], emb)


@SETTINGS
@given(n=st.integers(1, 30), dim=st.integers(1, 5), seed=st.integers(0, 2**16))
def test_rewriting_a_group_leaves_the_others_bit_identical(n, dim, seed):
    rng = np.random.default_rng(seed)
    with tempfile.TemporaryDirectory() as folder:
        store = open_store(Path(folder) / "s.h5", create=True)
        keep = rng.normal(size=(n, dim)).astype(np.float32)
        store.write_group("a/keep", keep, attrs={"class_names": ["x", "y"]})
        store.write_group("b/swap", rng.normal(size=(n + 1, dim)))
        kept_id, swapped_id = store.content_id("a/keep"), store.content_id("b/swap")
        new = rng.normal(size=(2 * n, dim + 1)).astype(np.float32)
        store.write_group("b/swap", new, overwrite=True)
        assert store.content_id("a/keep") == kept_id and store.content_id("b/swap") != swapped_id
        np.testing.assert_array_equal(store.read("a/keep").embeddings, keep)
        assert store.read("a/keep").attrs["class_names"] == ["x", "y"]
        np.testing.assert_array_equal(store.read("b/swap").embeddings, new)


@SETTINGS
@given(
    n=st.integers(0, 50),
    dim=st.integers(1, 5),
    seed=st.integers(0, 2**16),
    dtype=st.sampled_from([np.float16, np.float32, np.float64, np.int32, np.uint8]),
)
def test_add_npy_round_trips_any_numeric_dtype_as_float32(n, dim, seed, dtype):
    rng = np.random.default_rng(seed)
    values = (rng.normal(size=(n, dim)) * 50).astype(dtype)
    with tempfile.TemporaryDirectory() as folder:
        np.save(Path(folder) / "x.npy", values)
        np.save(Path(folder) / "y.npy", np.arange(n) % 3)
        info = add_npy(Path(folder) / "s.h5", "m/x", Path(folder) / "x.npy", Path(folder) / "y.npy")
        assert (info.n, info.dim) == (n, dim)
        data = open_store(Path(folder) / "s.h5").read("m/x")
        np.testing.assert_array_equal(data.embeddings, values.astype(np.float32))
        np.testing.assert_array_equal(data.labels, np.arange(n) % 3)


# ---------------------------------------------------------------- store-level search against brute force


def _brute_distances(reference: np.ndarray, queries: np.ndarray, metric: str) -> np.ndarray:
    """(Q, N) float64 true L2 distances, or cosine distances 1 - cos (zero vectors: cosine 0)."""
    r, q = reference.astype(np.float64), queries.astype(np.float64)
    if metric == "l2":
        return np.sqrt(np.maximum(((q[:, None, :] - r[None, :, :]) ** 2).sum(-1), 0))
    rn, qn = np.linalg.norm(r, axis=1), np.linalg.norm(q, axis=1)
    r, q = r / np.where(rn > 0, rn, 1)[:, None], q / np.where(qn > 0, qn, 1)[:, None]
    return 1.0 - q @ r.T


def assert_valid_answer(
    result_rows, result_dist, brute: np.ndarray, k: int, farthest: bool, self_rows: np.ndarray | None
) -> None:
    """Tie-tolerant: the rows found are distinct, never the query itself, and their true distances are the k best."""
    if self_rows is not None:
        brute = brute.copy()
        brute[np.arange(len(brute)), self_rows] = -np.inf if farthest else np.inf
        assert not (result_rows == self_rows[:, None]).any()
    best = -np.sort(-brute, axis=1)[:, :k] if farthest else np.sort(brute, axis=1)[:, :k]
    found = np.take_along_axis(brute, result_rows, axis=1)
    np.testing.assert_allclose(found, best, atol=1e-4)
    np.testing.assert_allclose(result_dist, best, atol=1e-4)
    assert all(len(set(row)) == k for row in result_rows.tolist())


@SETTINGS
@given(
    n=st.integers(2, 40),
    q=st.integers(1, 12),
    dim=st.integers(1, 6),
    k_fraction=st.floats(0, 1),
    farthest=st.booleans(),
    metric=st.sampled_from(["l2", "cosine"]),
    own_group=st.booleans(),
    grid=st.booleans(),
    seed=st.integers(0, 2**16),
)
def test_neighbors_matches_brute_force_on_random_stores(n, q, dim, k_fraction, farthest, metric, own_group, grid, seed):
    rng = np.random.default_rng(seed)
    draw = (lambda rows: rng.integers(-2, 3, (rows, dim))) if grid else (lambda rows: rng.normal(size=(rows, dim)))
    reference, queries = draw(n).astype(np.float32), draw(q).astype(np.float32)
    ref_ids, query_ids = rng.permutation(10 * n)[:n] + 7, rng.permutation(10 * q)[:q] - 3
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "s.h5"
        store = open_store(path, create=True)
        store.write_group("r/ref", reference, ids=ref_ids)
        store.write_group("q/query", queries, ids=query_ids)
        allowed = n - 1 if own_group else n
        k = 1 + int(k_fraction * (allowed - 1))
        if own_group:  # a subset of the group's own rows queries it: never its own neighbour
            picked = np.sort(rng.choice(n, size=min(q, n), replace=False))
            result = neighbors(path, "r/ref", k, farthest=farthest, metric=metric, query_ids=ref_ids[picked])
            brute, self_rows = _brute_distances(reference, reference[picked], metric), picked
            np.testing.assert_array_equal(result.query_ids, ref_ids[picked])
        else:
            result = neighbors(path, "r/ref", k, farthest=farthest, metric=metric, query_group="q/query")
            brute, self_rows = _brute_distances(reference, queries, metric), None
            np.testing.assert_array_equal(result.query_ids, query_ids)
        assert_valid_answer(result.rows, result.distances, brute, k, farthest, self_rows)
        np.testing.assert_array_equal(result.ids, ref_ids[result.rows])  # ids are the group's ids values
        with pytest.raises(SearchError):
            neighbors(
                path,
                "r/ref",
                allowed + 1,
                farthest=farthest,
                metric=metric,
                query_group=None if own_group else "q/query",
            )


@SETTINGS
@given(n=st.integers(2, 60), dim=st.integers(1, 6), k_fraction=st.floats(0, 1), seed=st.integers(0, 2**16))
def test_pairs_file_matches_brute_force(n, dim, k_fraction, seed):
    rng = np.random.default_rng(seed)
    emb = rng.normal(size=(n, dim)).astype(np.float32)
    ids = rng.permutation(3 * n)[:n]
    k = 1 + int(k_fraction * (n - 2))
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "s.h5"
        open_store(path, create=True).write_group("g/all", emb, ids=ids)
        out = make_pairs(path, "g/all", k, Path(folder) / "pairs.h5")
        with h5py.File(out, "r") as h5:
            rows, dist = h5["neighbor_rows"][()], h5["distances"][()]
            np.testing.assert_array_equal(h5["ids"][()], ids)
            np.testing.assert_array_equal(h5["neighbor_ids"][()], ids[rows])
            assert (h5.attrs["group"], int(h5.attrs["k"])) == ("g/all", k)
        assert_valid_answer(rows, dist, _brute_distances(emb, emb, "l2"), k, False, np.arange(n))
