"""Where the heavy work runs: `local` (this process, the default) or `ray` (tasks and actors on a Ray cluster).

With `engine="ray"` an exact search is split into blocks of query rows, each answered exactly by one of a pool of
Ray actors that built the search over the whole reference once (put once in Ray's object store), and the blocks
are concatenated in order: every query's answer is the one `knn` gives locally, ids and distances alike. A
self-join (every row of a group against the others: `pairs`, `neighbors` over the whole group) shares out the
score blocks of `embedkit.search.self_join` instead, each computed once for both of its sides as locally, and
merges the actors' candidates before the same exact re-ranking. An approximate index (IVF, HNSW) is built, or
loaded, and tuned by the caller; the actors search copies of it, sent once, and answer as it does locally.
`ray_address` None starts an embedded Ray with this machine's CPUs and no dashboard, and shuts it down at the end,
also on an error or Ctrl-C; "auto" or HOST:PORT joins a running cluster (`ray job submit -- embedkit ... --engine
ray --ray-address auto`). A Ray session the caller already opened (a notebook's `ray.init()`) is used and left
running. Ray is imported only here, only when asked for.
"""

from __future__ import annotations

import contextlib
import math
import os
import re
import signal
import socket
import time
import traceback
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np

from embedkit._util.progress import ProgressFn
from embedkit.device import default_threads
from embedkit.errors import ConfigError, SearchError
from embedkit.search.arrays import (
    Frame,
    build_index,
    check_query,
    is_whole_self_join,
    load_faiss,
    prepare,
    search_index,
    self_knn,
)
from embedkit.search.self_join import SelfJoin, block_pairs

ENGINES = ("local", "ray")
RAY_INSTALL_HINT = "--engine ray needs Ray: pip install 'embedkit[ray]'"
BLOCKS_PER_CPU = 4  # query blocks per Ray CPU: progress to report, and a short tail when blocks take uneven time
MIN_BLOCK_ROWS = 256
JOIN_CHUNKS_PER_ACTOR = 64  # calls a self-join actor gets: progress to report, and Ctrl-C seen between them
CONNECT_TIMEOUT_S = 10.0
_ADDRESS = re.compile(r"^(auto|(ray://)?[A-Za-z0-9.\-\[\]:]+:\d{1,5})$")


def check_engine(engine: str, ray_address: str | None) -> None:
    """ConfigError for an unknown engine, a Ray address without `engine="ray"`, or a malformed address."""
    if engine not in ENGINES:
        raise ConfigError(f"unknown engine {engine!r}: use {' or '.join(ENGINES)}")
    if ray_address is not None:
        if engine != "ray":
            raise ConfigError("--ray-address only applies with --engine ray")
        if not _ADDRESS.match(ray_address):
            raise ConfigError(f"Ray address {ray_address!r}: use auto, HOST:PORT or ray://HOST:PORT")


def load_ray():
    """The `ray` module, or ConfigError saying how to install it."""
    try:
        import ray
    except ImportError:
        raise ConfigError(RAY_INSTALL_HINT) from None
    return ray


@contextlib.contextmanager
def ray_session(address: str | None = None) -> Iterator[object]:
    """Yield a connected `ray` module: an embedded Ray (address None) shut down on exit, or a running cluster."""
    ray = load_ray()
    if ray.is_initialized():  # the caller's own session: use it, leave it running
        yield ray
        return
    try:
        _connect(ray, address)
        yield ray
    except BaseException as exc:
        # The frames this error left (its traceback) hold Ray's object refs and actor handles. Freed after the
        # shutdown, when the interpreter exits, they can crash it (SIGSEGV after a Ctrl-C): free them while Ray runs.
        traceback.clear_frames(exc.__traceback__)
        raise
    finally:  # also after a failed start or a Ctrl-C during it
        spawned = _descendants(os.getpid()) if address is None else set()  # the embedded Ray's processes
        ray.shutdown()
        _end_processes(spawned)


def _connect(ray, address: str | None) -> None:
    """ray.init: an embedded Ray on this machine's CPUs (address None) or a running cluster; ConfigError if not."""
    options = dict(include_dashboard=False, log_to_driver=False, logging_level="ERROR")
    if address not in (None, "auto"):
        _check_reachable(address)
    try:
        if address is None:
            ray.init(num_cpus=default_threads(), **options)
        else:
            ray.init(address=address, **options)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        if address == "auto" and isinstance(exc, ConnectionError):
            raise ConfigError(
                "--ray-address auto: no running Ray cluster found (start one with `ray start --head`, "
                "or leave out --ray-address for an embedded Ray)"
            ) from None
        where = "an embedded Ray" if address is None else f"Ray at {address}"
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ConfigError(f"cannot start {where}: {reason}") from None


def _descendants(pid: int) -> set[int]:
    """PIDs of every process below `pid` (Linux /proc; empty elsewhere)."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            fields = stat.read_text().rpartition(")")[2].split()
            children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found, todo = set(), [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


def _end_processes(pids: set[int], grace_s: float = 3.0) -> None:
    """SIGTERM, then SIGKILL, whatever of `pids` outlived ray.shutdown() (its agents can, after a Ctrl-C)."""
    alive = {pid for pid in pids if Path(f"/proc/{pid}").exists()}
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid in alive:
            with contextlib.suppress(OSError):
                os.kill(pid, sig)
        deadline = time.monotonic() + grace_s
        while alive and time.monotonic() < deadline:
            time.sleep(0.05)
            alive = {pid for pid in alive if Path(f"/proc/{pid}").exists()}


def _check_reachable(address: str, timeout_s: float = CONNECT_TIMEOUT_S) -> None:
    """ConfigError unless HOST:PORT accepts a TCP connection: Ray itself retries an unreachable address for minutes."""
    host, _, port = address.removeprefix("ray://").rpartition(":")
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=timeout_s).close()
    except OSError as exc:
        raise ConfigError(f"cannot reach Ray at {address}: {exc.strerror or exc}") from None


def ordered_results(submit: Callable[[int], object], n: int, *, in_flight: int, force_cancel: bool = True):
    """The results of Ray calls `submit(0)` .. `submit(n - 1)` (each returns an ObjectRef), yielded in that order.

    At most `in_flight` calls are submitted and not yet yielded, so memory stays bounded when one slow call holds
    up the order. Waits in short polls (Ctrl-C is seen at once); on an error, a Ctrl-C or an early close it
    cancels the calls still running (`force_cancel=False` for actor calls, which Ray cannot force-cancel).
    """
    ray = load_ray()
    pending: dict[object, int] = {}
    ready: dict[int, object] = {}
    submitted = yielded = 0
    try:
        while yielded < n:
            while submitted < n and submitted - yielded < in_flight:
                pending[submit(submitted)] = submitted
                submitted += 1
            if yielded in ready:
                yield ready.pop(yielded)
                yielded += 1
                continue
            done, _ = ray.wait(list(pending), num_returns=1, timeout=0.2)
            for ref in done:
                ready[pending.pop(ref)] = ray.get(ref)
    finally:
        for ref in pending:
            with contextlib.suppress(Exception):  # a call that ended meanwhile cannot be cancelled: nothing to do
                ray.cancel(ref, force=force_cancel)


class _BlockSearcher:
    """A Ray actor holding one search over the whole reference: the exact frame and flat index, built here once,
    or an index built by the caller (IVF, HNSW), sent as FAISS's serialized bytes. It answers every block of
    queries as `search_index` answers it locally, without rebuilding anything per block."""

    def __init__(
        self,
        reference: np.ndarray,
        metric: str,
        farthest: bool,
        kind: str = "flat",
        index_bytes: np.ndarray | None = None,
        nprobe: int | None = None,
    ) -> None:
        self.reference = prepare(reference, metric)
        if index_bytes is None:
            self.frame = Frame(self.reference, metric)
            self.index = build_index(self.reference, "flat", metric, farthest=farthest, frame=self.frame)
        else:
            self.frame, self.index = None, load_faiss().deserialize_index(index_bytes)
        self.metric, self.farthest, self.kind, self.nprobe = metric, farthest, kind, nprobe

    def search(self, queries: np.ndarray, k: int, self_rows: np.ndarray | None):
        return search_index(
            self.index,
            self.kind,
            self.reference,
            prepare(queries, self.metric),
            k,
            farthest=self.farthest,
            metric=self.metric,
            self_rows=self_rows,
            frame=self.frame,
            nprobe=self.nprobe,
        )


def ray_knn(
    reference: np.ndarray,
    queries: np.ndarray,
    k: int,
    *,
    farthest: bool = False,
    metric: str = "l2",
    self_rows: np.ndarray | None = None,
    on_progress: ProgressFn | None = None,
    index=None,
    kind: str = "flat",
    nprobe: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """`knn(reference, queries, k, ...)` over blocks of query rows, in an open Ray session.

    One actor per Ray CPU builds the exact search over the whole reference (put once in Ray's object store) and
    answers blocks of queries; the answers are identical to `knn`'s, distances and rows alike. Every row against
    the others (`self_rows` 0..N-1) is the self-join, shared out by `ray_self_join`. With `index`, a FAISS index of
    `kind` built over the prepared reference (`embedkit.search.index.load_or_build_index`), the actors answer
    from a copy of it searched with `nprobe` instead: the answers of `search_index` on that index here.
    Returns (distances (Q, k) float32, rows (Q, k) int64).
    """
    check_query(len(reference), reference.shape[1], queries, k, exclude_self=self_rows is not None)
    if not np.isfinite(reference).all():
        raise SearchError("reference contains NaN or inf")
    if index is None and is_whole_self_join(self_rows, len(reference), len(queries)):
        prepared = prepare(reference, metric)
        return self_knn(prepared, k, farthest=farthest, metric=metric, on_progress=on_progress, join=ray_self_join)
    ray = load_ray()
    cpus = max(1, int(ray.cluster_resources().get("CPU", 1)))
    block = max(MIN_BLOCK_ROWS, math.ceil(len(queries) / (BLOCKS_PER_CPU * cpus)))
    starts = list(range(0, len(queries), block))
    shared = ray.put(np.ascontiguousarray(reference))
    index_bytes = None if index is None else ray.put(load_faiss().serialize_index(index))
    searcher = ray.remote(num_cpus=1)(_BlockSearcher)
    actors = [
        searcher.remote(shared, metric, farthest, kind, index_bytes, nprobe)
        for _ in range(min(cpus, max(1, len(starts))))
    ]

    def submit(i: int):
        s = starts[i]
        rows = None if self_rows is None else self_rows[s : s + block]
        return actors[i % len(actors)].search.remote(queries[s : s + block], k, rows)

    answers, done = [], 0
    if on_progress is not None:
        on_progress(0, len(queries))
    try:
        for answer in ordered_results(submit, len(starts), in_flight=2 * len(actors), force_cancel=False):
            answers.append(answer)
            done += len(answer[0])
            if on_progress is not None:
                on_progress(done, len(queries))
    finally:
        for actor in actors:
            ray.kill(actor)
    distances = np.concatenate([a[0] for a in answers]) if answers else np.zeros((0, k), np.float32)
    rows = np.concatenate([a[1] for a in answers]) if answers else np.zeros((0, k), np.int64)
    return distances, rows


class _SelfJoinPart:
    """A Ray actor that runs its share of a self-join's score blocks and keeps their candidates (a `SelfJoin`)."""

    def __init__(self, reference: np.ndarray, k: int, farthest: bool, metric: str) -> None:
        self.join = SelfJoin(reference, k, farthest=farthest, metric=metric)

    def run(self, pairs: list[tuple[int, int]]) -> int:
        self.join.run(pairs)
        return len(pairs)

    def state(self) -> tuple[np.ndarray, np.ndarray]:
        return self.join.state()


def ray_self_join(
    reference: np.ndarray,
    k: int,
    *,
    farthest: bool = False,
    metric: str = "l2",
    on_progress: ProgressFn | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """`self_join_rows` with its score blocks shared among Ray actors, in an open Ray session; the same rows and
    worst scores. Each actor runs two threads (one computes the next block while the other selects), so one per
    two Ray CPUs; the reference goes into Ray's object store once."""
    ray = load_ray()
    cpus = max(1, int(ray.cluster_resources().get("CPU", 1)))
    pairs = block_pairs(len(reference))
    part = ray.remote(num_cpus=min(2, cpus))(_SelfJoinPart)
    shared = ray.put(np.ascontiguousarray(reference))
    actors = [part.remote(shared, k, farthest, metric) for _ in range(max(1, min(cpus // 2, len(pairs))))]
    size = math.ceil(len(pairs) / (JOIN_CHUNKS_PER_ACTOR * len(actors)))
    chunks = [pairs[s : s + size] for s in range(0, len(pairs), size)]

    def submit(i: int):
        return actors[i % len(actors)].run.remote(chunks[i])

    done = 0
    if on_progress is not None:
        on_progress(0, len(reference))
    try:
        for count in ordered_results(submit, len(chunks), in_flight=2 * len(actors), force_cancel=False):
            done += count
            if on_progress is not None:
                on_progress(len(reference) * done // len(pairs), len(reference))
        join = SelfJoin(reference, k, farthest=farthest, metric=metric)
        for scores, rows in ray.get([actor.state.remote() for actor in actors]):
            join.merge(scores, rows)
    finally:
        for actor in actors:
            ray.kill(actor)
    return join.rows, join.kth
