"""--engine ray against --engine local (same ids and distances), Ray's lifetime, and --index auto's recall estimate.

Ray runs in local mode on this machine: one session for the library tests (Ray's start costs seconds), and real
`embedkit` processes for what a command must leave behind (no Ray process, also after an error or Ctrl-C).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from embedkit.errors import ConfigError
from embedkit.search import approximate
from embedkit.search.arrays import MARGIN_ROWS
from embedkit.search.engines import check_engine, load_ray
from embedkit.search.index import make_pairs, neighbors, pairs_attributes
from embedkit.store.store import open_store

REPO = Path(__file__).resolve().parents[1]
N, D = 20_000, 32


def clustered(rng, n: int, dim: int = D, clusters: int = 50) -> np.ndarray:
    centers = rng.normal(size=(clusters, dim)) * 4
    return (centers[rng.integers(0, clusters, n)] + rng.normal(size=(n, dim))).astype(np.float32)


@pytest.fixture(scope="module")
def store_path(tmp_path_factory) -> Path:
    rng = np.random.default_rng(0)
    path = tmp_path_factory.mktemp("engines") / "store.h5"
    store = open_store(path, create=True)
    store.write_group("g/train", clustered(rng, N), rng.integers(0, 10, N), ids=np.arange(N) * 3 + 7)
    store.write_group("g/query", clustered(rng, 700))
    return path


@pytest.fixture(scope="module")
def ray_local():
    """One embedded Ray for the module's library calls; `ray_session` uses it and leaves it running."""
    ray = pytest.importorskip("ray", reason="Ray is not installed: pip install -e '.[test]'")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="ERROR")
    yield ray
    ray.shutdown()


def _same(a, b) -> None:
    np.testing.assert_array_equal(a.ids, b.ids)
    np.testing.assert_array_equal(a.rows, b.rows)
    np.testing.assert_array_equal(a.distances, b.distances)
    np.testing.assert_array_equal(a.query_ids, b.query_ids)


@pytest.mark.slow
@pytest.mark.parametrize(
    "options",
    [
        pytest.param(dict(k=5), id="nearest-self-join"),
        pytest.param(dict(k=4, farthest=True), id="farthest"),
        pytest.param(dict(k=3, query_ids=[7, 10, 5998 * 3 + 7, (N - 1) * 3 + 7]), id="ids"),
        pytest.param(dict(k=6, query_group="g/query"), id="query-group"),
        pytest.param(dict(k=5, metric="cosine"), id="cosine"),
    ],
)
def test_ray_engine_gives_the_local_answer(store_path, ray_local, options):
    local = neighbors(store_path, "g/train", **options)
    ray = neighbors(store_path, "g/train", engine="ray", **options)
    _same(local, ray)
    assert ray.engine == "ray" and local.engine == "local"
    # and the local answer is the brute-force one
    data = open_store(store_path).read("g/train")
    if options.get("metric", "l2") == "l2" and not options.get("farthest") and "query_group" not in options:
        rows = np.arange(N) if "query_ids" not in options else (np.asarray(options["query_ids"]) - 7) // 3
        x = data.embeddings.astype(np.float64)
        dist = np.sqrt(((x[rows, None, :] - x[None, :, :]) ** 2).sum(-1)) if len(rows) < 100 else None
        if dist is not None:
            dist[np.arange(len(rows)), rows] = np.inf
            np.testing.assert_array_equal(np.argsort(dist, axis=1, kind="stable")[:, : options["k"]], local.rows)


@pytest.mark.slow
def test_ray_pairs_file_equals_the_local_one(store_path, ray_local, tmp_path, monkeypatch):
    import h5py

    from embedkit.search import engines

    joins = []

    def counted(*args, **kwargs):
        joins.append(args[1])
        return ray_self_join(*args, **kwargs)

    ray_self_join = engines.ray_self_join
    monkeypatch.setattr(engines, "ray_self_join", counted)
    local = make_pairs(store_path, "g/train", 3, tmp_path / "local.h5")
    ray = make_pairs(store_path, "g/train", 3, tmp_path / "ray.h5", engine="ray")
    assert joins == [3 + MARGIN_ROWS]  # a self-join: half the score blocks of a search, shared among actors
    with h5py.File(local, "r") as a, h5py.File(ray, "r") as b:
        for name in ("ids", "neighbor_ids", "neighbor_rows", "distances"):
            np.testing.assert_array_equal(a[name][()], b[name][()])
    assert pairs_attributes(ray)["index"] == "flat" and "recall" not in pairs_attributes(ray)


def test_auto_index_reports_the_recall_it_reaches(store_path, monkeypatch):
    """Above the size threshold `auto` is IVF tuned to the target; its estimate (on queries it was not tuned on)
    matches the recall measured against exact search over every query."""
    monkeypatch.setattr(approximate, "AUTO_FLAT_MAX_ROWS", 1000)
    exact = neighbors(store_path, "g/train", 10, query_group="g/query")
    auto = neighbors(store_path, "g/train", 10, query_group="g/query", index_kind="auto", recall=0.9)
    assert auto.index_kind == "ivf" and exact.recall_estimate is None
    measured = np.mean([len(np.intersect1d(a, b)) / 10 for a, b in zip(auto.rows, exact.rows)])
    estimate = auto.recall_estimate
    assert estimate.n_queries == 350 and estimate.k == 10 and estimate.target == 0.9
    assert estimate.recall >= 0.85 and abs(estimate.recall - measured) < 0.03, (estimate, measured)
    assert 1 <= estimate.nprobe < 4 * np.sqrt(N)
    # a stricter target probes more lists and reaches it
    strict = neighbors(store_path, "g/train", 10, query_group="g/query", index_kind="auto", recall=0.99)
    assert strict.recall_estimate.nprobe > estimate.nprobe and strict.recall_estimate.recall >= 0.97
    # the self-join form: rows are never their own neighbours, and small groups stay exact
    pairs = make_pairs(store_path, "g/train", 3, store_path.parent / "auto-pairs.h5", index_kind="auto")
    assert pairs_attributes(pairs)["index"] == "ivf" and pairs_attributes(pairs)["recall"] >= 0.9
    monkeypatch.setattr(approximate, "AUTO_FLAT_MAX_ROWS", N)
    assert neighbors(store_path, "g/train", 3, index_kind="auto").recall_estimate is None


@pytest.mark.slow
def test_ray_engine_searches_an_approximate_index_as_locally(store_path, ray_local, monkeypatch, tmp_path):
    """`--index auto` above the threshold (IVF, tuned here) and `--index hnsw`: the actors search the index this
    process built or loaded, with the tuned nprobe, and answer as the local search of that index does."""
    monkeypatch.setattr(approximate, "AUTO_FLAT_MAX_ROWS", 1000)
    for options in (dict(index_kind="auto", query_group="g/query"), dict(index_kind="hnsw")):
        local = neighbors(store_path, "g/train", 6, **options)
        ray = neighbors(store_path, "g/train", 6, engine="ray", **options)
        _same(local, ray)
        assert ray.index_kind == local.index_kind != "flat" and ray.index_status.endswith("searched on Ray actors")
    assert local.index_kind == "hnsw" and ray.recall_estimate == local.recall_estimate
    auto = neighbors(store_path, "g/train", 6, engine="ray", index_kind="auto", query_group="g/query")
    exact = neighbors(store_path, "g/train", 6, query_group="g/query")
    assert auto.index_kind == "ivf" and auto.recall_estimate.nprobe >= 1
    measured = np.mean([len(np.intersect1d(a, b)) / 6 for a, b in zip(auto.rows, exact.rows)])
    assert abs(auto.recall_estimate.recall - measured) < 0.03 and measured >= 0.9
    # the self-join form through the pairs file: rows never their own neighbours, identical to local
    local_pairs = make_pairs(store_path, "g/train", 3, tmp_path / "local.h5", index_kind="auto")
    ray_pairs = make_pairs(store_path, "g/train", 3, tmp_path / "ray.h5", index_kind="auto", engine="ray")
    import h5py

    with h5py.File(local_pairs, "r") as a, h5py.File(ray_pairs, "r") as b:
        assert not (a["neighbor_rows"][()] == np.arange(N)[:, None]).any()
        for name in ("ids", "neighbor_ids", "neighbor_rows", "distances"):
            np.testing.assert_array_equal(a[name][()], b[name][()])
        assert a.attrs["index"] == b.attrs["index"] == "ivf" and a.attrs["recall"] == b.attrs["recall"]


def test_engine_options_are_checked_before_any_work(tmp_path):
    missing = tmp_path / "no-such-store.h5"  # checked before the store is even opened
    with pytest.raises(ConfigError, match="only applies with --engine ray"):
        neighbors(missing, "g/train", 3, ray_address="auto")
    with pytest.raises(ConfigError, match="unknown engine"):
        check_engine("spark", None)
    with pytest.raises(ConfigError, match="only applies with --engine ray"):
        check_engine("local", "auto")
    for bad in ("http://x", "host", "a b:1", "; rm -rf /:1"):
        with pytest.raises(ConfigError, match="Ray address"):
            check_engine("ray", bad)
    check_engine("ray", "auto")
    check_engine("ray", "10.0.0.1:6379")


def test_without_ray_the_engine_says_how_to_install_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray -> ImportError
    with pytest.raises(ConfigError, match=r"pip install 'embedkit\[ray\]'"):
        load_ray()


def _embedkit(args: list[str], extra_env: dict[str, str] | None = None, **kwargs) -> subprocess.Popen:
    env = {**os.environ, "COLUMNS": "200", "NO_COLOR": "1", "TERM": "dumb", **(extra_env or {})}
    return subprocess.Popen(
        [sys.executable, "-m", "cli.main", *args],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
        **kwargs,
    )


def _ray_processes() -> list[str]:
    found = subprocess.run(["pgrep", "-f", "raylet|gcs_server|ray::"], capture_output=True, text=True)
    return [line for line in found.stdout.splitlines() if line.strip()]


def _new_ray_processes(before: list[str]) -> list[str]:
    """Ray processes started since `before` and still running (the module's own embedded Ray may stop workers)."""
    return [line for line in _ray_processes() if line not in before]


def test_a_failed_ray_session_frees_what_its_frames_held_before_shutdown(monkeypatch):
    """Object refs and actor handles left in the frames of a failed (or Ctrl-C'd) call must be freed before
    ray.shutdown(): freed after it, as the interpreter exits, they can crash it (a CI run saw SIGSEGV)."""
    import weakref

    from embedkit.search import engines

    class Handle:
        pass

    held, seen = [], {}

    class FakeRay:
        def is_initialized(self):
            return False

        def init(self, **options):
            pass

        def shutdown(self):
            seen["alive at shutdown"] = held[0]() is not None

    def work():
        handle = Handle()  # a local of a frame the error leaves behind
        held.append(weakref.ref(handle))
        raise KeyboardInterrupt

    monkeypatch.setattr(engines, "load_ray", FakeRay)
    monkeypatch.setattr(engines, "_descendants", lambda pid: set())
    with pytest.raises(KeyboardInterrupt), engines.ray_session():
        work()
    assert seen == {"alive at shutdown": False}


def test_local_engine_never_imports_ray(store_path):
    code = (
        "import sys; from embedkit.search.index import neighbors; "
        f"neighbors({str(store_path)!r}, 'g/train', 3, query_ids=[7]); "
        "print('ray' in sys.modules)"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False"


@pytest.mark.slow
def test_a_ray_command_leaves_no_ray_process_behind(store_path, tmp_path):
    pytest.importorskip("ray")
    before = _ray_processes()
    # success
    done = _embedkit(["neighbors", str(store_path), "-g", "g/train", "--k", "3", "--engine", "ray", "--json"])
    output, _ = done.communicate(timeout=300)
    assert done.returncode == 0, output
    assert not _new_ray_processes(before)
    # failure: no cluster at that address
    failed = _embedkit(
        ["neighbors", str(store_path), "-g", "g/train", "--engine", "ray", "--ray-address", "127.0.0.1:9"]
    )
    output, _ = failed.communicate(timeout=300)
    assert failed.returncode == 1 and output.startswith("error:") and "Traceback" not in output, output
    assert not _new_ray_processes(before)
    # Ctrl-C while the Ray tasks run
    out = tmp_path / "pairs.h5"
    proc = _embedkit(["pairs", str(store_path), "-g", "g/train", "--k", "200", "--out", str(out), "--engine", "ray"])
    _ctrl_c_once(proc, lambda: len(_new_ray_processes(before)) > 1, "the Ray workers")
    assert not out.exists() and not list(tmp_path.glob(".pairs.h5.tmp-*"))
    _no_new_ray_processes(before)


def test_kmeans_lloyd_steps_match_scikit_learn_from_the_same_start():
    """The block map-reduce Lloyd (local) against scikit-learn's Lloyd from the same centres: same clusters,
    same inertia; and against the inertia recomputed from its own assignments."""
    from sklearn.cluster import KMeans

    from embedkit.eval.kmeans import lloyd, seeded_init

    x = clustered(np.random.default_rng(3), 3000, dim=8, clusters=6)
    start = seeded_init(x, 6, seed=0)
    ours = lloyd(x, start, block_rows=700)
    theirs = KMeans(6, init=start, n_init=1, algorithm="lloyd", tol=1e-4).fit(x.astype(np.float64))
    np.testing.assert_allclose(ours.inertia, theirs.inertia_, rtol=1e-6)
    np.testing.assert_array_equal(ours.assignments, theirs.labels_)
    direct = ((x.astype(np.float64) - ours.centers.astype(np.float64)[ours.assignments]) ** 2).sum()
    np.testing.assert_allclose(ours.inertia, direct, rtol=1e-5)


@pytest.mark.slow
def test_ray_kmeans_and_anomaly_scores_equal_the_local_ones(store_path, ray_local):
    from embedkit.eval.anomaly import detect_anomalies
    from embedkit.eval.cluster import cluster_embeddings
    from embedkit.eval.kmeans import lloyd, seeded_init

    data = open_store(store_path).read("g/train")
    x = data.embeddings
    start = seeded_init(x, 10, seed=0)
    local, ray = lloyd(x, start, block_rows=4096), lloyd(x, start, block_rows=4096, engine="ray")
    assert local.inertia == ray.inertia and local.iterations == ray.iterations
    np.testing.assert_array_equal(local.assignments, ray.assignments)
    result = cluster_embeddings(x, 10, data.labels, engine="ray")  # the same seeded start, default (larger) blocks
    assert result.inertia == pytest.approx(local.inertia, rel=1e-12)
    np.testing.assert_array_equal(result.assignments, local.assignments)
    ood = open_store(store_path).read("g/query").embeddings + 3.0
    for leave in ((), ("normal",)):
        normal = x if leave else x[:500]
        a = detect_anomalies(x, normal, ood, 2, leave_one_out=leave)
        b = detect_anomalies(x, normal, ood, 2, leave_one_out=leave, engine="ray")
        np.testing.assert_array_equal(a.scores, b.scores)
        assert a.roc_auc == b.roc_auc


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    from reliability_world import small_checkpoint

    return small_checkpoint(tmp_path_factory.mktemp("ckpt") / "run")


def _same_encoding(local_path: Path, ray_path: Path, groups: list[str]) -> None:
    local, ray = open_store(local_path), open_store(ray_path)
    assert local.groups() == ray.groups() == sorted(groups)
    for group in groups:
        a, b = local.read(group), ray.read(group)
        np.testing.assert_array_equal(a.ids, b.ids)
        np.testing.assert_array_equal(a.labels, b.labels)
        np.testing.assert_allclose(a.embeddings, b.embeddings, atol=1e-5, rtol=0)
        written = ("content_id", "created")  # when and which bytes; the rest is provenance, which no engine changes
        assert {k: v for k, v in a.attrs.items() if k not in written} == {
            k: v for k, v in b.attrs.items() if k not in written
        }


@pytest.mark.slow
def test_ray_encode_equals_the_local_one(ray_local, checkpoint, tmp_path, rng, monkeypatch):
    """Encoder actors, blocks streamed back in row order: the local embeddings to float rounding, the same ids,
    labels and provenance, also with a subset (ids are rows of the split) and blocks that do not divide it."""
    from reliability_world import image_folder

    from embedkit.training.encode import encode_to_store

    monkeypatch.setenv("EMBEDKIT_CACHE", str(tmp_path / "cache"))
    folder = image_folder(tmp_path / "pets", rng, n_train=150, n_test=40, size=32)
    for options in (dict(), dict(subset=111, seed=3)):
        stores = {engine: tmp_path / f"{engine}-{len(options)}.h5" for engine in ("local", "ray")}
        for engine, path in stores.items():
            encode_to_store(checkpoint, str(folder), ["train", "test"], path, batch_size=16, engine=engine, **options)
        _same_encoding(stores["local"], stores["ray"], ["pets/train", "pets/test"])


@pytest.mark.slow
@pytest.mark.realdata
def test_ray_encode_of_500_real_images_equals_the_local_one(ray_local, checkpoint, real_data_root, tmp_path):
    from embedkit.training.encode import encode_to_store

    for engine in ("local", "ray"):
        path = tmp_path / f"{engine}.h5"
        encode_to_store(checkpoint, "cifar10", ["test"], path, data_root=real_data_root, subset=500, engine=engine)
    _same_encoding(tmp_path / "local.h5", tmp_path / "ray.h5", ["cifar10/test"])
    assert open_store(tmp_path / "ray.h5").read("cifar10/test").embeddings.shape == (500, 128)


@pytest.mark.slow
def test_a_ray_encode_interrupted_leaves_the_store_byte_identical(checkpoint, tmp_path, rng):
    """Ctrl-C while the encoder actors run: exit 130 in one line, the store's bytes unchanged, no temp file and no
    Ray process left; run again, it writes the group."""
    import hashlib

    from reliability_world import write_idx_mnist

    pytest.importorskip("ray")
    write_idx_mnist(tmp_path / "data", 30_000, rng)  # seconds of encoding on two actors
    store = tmp_path / "store.h5"
    open_store(store, create=True).write_group("old/group", rng.normal(size=(10, 128)).astype(np.float32))
    before, ray_before = hashlib.sha256(store.read_bytes()).hexdigest(), _ray_processes()
    args = ["encode", str(checkpoint), "--dataset", "mnist", "--split", "test", "--data-root", str(tmp_path / "data")]
    args += ["--out", str(store), "--batch-size", "50", "--device", "cpu", "--engine", "ray"]
    proc = _embedkit(args, {"EMBEDKIT_CACHE": str(tmp_path / "cache")})
    output = _ctrl_c_once(proc, lambda: any("_EncoderActor" in line for line in _ray_commands()), "the encoder actors")
    assert "interrupted" in output, output
    assert hashlib.sha256(store.read_bytes()).hexdigest() == before
    assert not list(tmp_path.glob(".store.h5.tmp-*"))
    _no_new_ray_processes(ray_before)
    done = subprocess.run(
        [sys.executable, "-m", "cli.main", *args], cwd=REPO, capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert open_store(store).groups() == ["mnist/test", "old/group"]
    assert open_store(store).verify("mnist/test").n == 30_000


def _ctrl_c_once(proc: subprocess.Popen, started, what: str) -> str:
    """Wait until `started()`, let the work run a second, press Ctrl-C: exit 130 without a traceback; the output."""
    deadline = time.monotonic() + 180
    while not started():
        assert proc.poll() is None, proc.communicate()[0]
        assert time.monotonic() < deadline, f"{what} never started"
        time.sleep(0.2)
    time.sleep(1.0)
    assert proc.poll() is None, "the command finished before it could be interrupted"
    proc.send_signal(signal.SIGINT)
    output, _ = proc.communicate(timeout=120)
    assert proc.returncode == 130 and "Traceback" not in output, output
    return output


def _no_new_ray_processes(before: list[str]) -> None:
    """Within 30 s, no Ray process is left that was not there `before`."""
    deadline = time.monotonic() + 30
    while _new_ray_processes(before):
        assert time.monotonic() < deadline, _new_ray_processes(before)
        time.sleep(0.5)


def _ray_commands() -> list[str]:
    found = subprocess.run(["pgrep", "-af", "ray::"], capture_output=True, text=True)
    return found.stdout.splitlines()
