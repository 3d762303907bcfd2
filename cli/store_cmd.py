"""Store and search commands: add, info, neighbors, pairs. Each parses, calls one library function, renders."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer

from embedkit.errors import ConfigError
from embedkit_cli.app import app, console, print_json
from embedkit_cli.options import (
    EngineOption,
    IndexOption,
    JsonOption,
    Metric,
    RayAddressOption,
    RecallOption,
    WorkspaceOption,
)
from embedkit_cli.progress import progress_bar
from embedkit_cli.tables import print_table

PROGRESS_MIN_ROWS = 20_000  # smaller jobs finish before a bar would help

StoreArgument = Annotated[
    Path | None,
    typer.Argument(help="HDF5 store.", show_default="the workspace's store.h5"),
]
GroupOption = Annotated[str, typer.Option("--group", "-g", help="Group to search, e.g. cifar10/train.")]
MetricOption = Annotated[Metric, typer.Option("--metric", help="Distance: l2 is true Euclidean, cosine is 1 - cos.")]


def _store_path(store: Path | None, workspace: Path | None) -> Path:
    from embedkit.workspace import Workspace

    return store if store is not None else Workspace.at(workspace).default_store


@app.command("add")
def add(
    store: StoreArgument = None,
    group: Annotated[str, typer.Option("--group", "-g", help="Group to write, e.g. mymodel/train.")] = ...,
    embeddings: Annotated[Path, typer.Option("--embeddings", help="(N, D) embeddings as a NumPy .npy file.")] = ...,
    labels: Annotated[Path | None, typer.Option("--labels", help="(N,) integer labels .npy (-1 unknown).")] = None,
    ids: Annotated[
        Path | None, typer.Option("--ids", help="(N,) unique integer ids .npy.", show_default="0..N-1")
    ] = None,
    class_names: Annotated[
        str | None, typer.Option("--class-names", help="Comma-separated class names, label 0 first.")
    ] = None,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace the group if it exists.")] = False,
    workspace: WorkspaceOption = None,
    json_out: JsonOption = False,
) -> None:
    """Add embeddings from any model (.npy files) to a store as a new group, atomically."""
    from embedkit.store.store import add_npy

    path = _store_path(store, workspace)
    attrs = {"class_names": class_names.split(",")} if class_names else {}
    with progress_bar(f"adding {group}", "rows", min_total=PROGRESS_MIN_ROWS) as on_progress:
        info = add_npy(path, group, embeddings, labels, ids, attrs=attrs, overwrite=overwrite, on_progress=on_progress)
    if json_out:
        print_json(
            {"store": str(path), "group": group, "n": info.n, "dim": info.dim, "content_id": info.attrs["content_id"]}
        )
    else:
        console.print(f"added group {group} ({info.n:,} x {info.dim}) to {path}", highlight=False)


@app.command("info")
def info(
    store: StoreArgument = None,
    workspace: WorkspaceOption = None,
    json_out: JsonOption = False,
) -> None:
    """Show a store's groups: rows, dimension, dataset and split, provenance, index status (checks every value)."""
    from embedkit.search.index import describe_store

    summary = describe_store(_store_path(store, workspace))
    if json_out:
        print_json(summary)
        return
    columns = ("group", "N", "D", "dataset/split", "classes", "checkpoint or source", "created", "indexes")
    rows = []
    for g in summary["groups"]:
        checkpoint = Path(g["checkpoint"]).name if g.get("checkpoint") else g.get("source", "-")
        digest = str(g.get("checkpoint_digest", ""))[:12]
        indexes = ", ".join(_index_names(g["indexes"]))
        rows.append(
            [
                g["name"],
                f"{g['n']:,}",
                str(g["dim"]),
                f"{g.get('dataset', '')}/{g.get('split', '')}",
                str(len(g.get("class_names", []))),
                f"{checkpoint} {digest}".strip(),
                str(g.get("created", ""))[:16].replace("T", " "),
                indexes or "none saved",
            ]
        )
    title = f"{summary['store']} ({summary['size_bytes'] / 2**20:,.1f} MiB)"
    print_table(title, columns, rows, right=("N", "D", "classes"))


def _parse_ids(text: str | None) -> list[int] | None:
    if text is None:
        return None
    try:
        return [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise ConfigError(f"--ids: expected comma-separated integers like 1,2,3, got {text!r}") from None


@app.command("neighbors")
def neighbors(
    store: StoreArgument = None,
    group: GroupOption = "cifar10/train",
    k: Annotated[int, typer.Option("--k", "-k", help="Neighbours per query.")] = 5,
    farthest: Annotated[bool, typer.Option("--farthest", help="The k farthest rows instead (exact).")] = False,
    query_group: Annotated[
        str | None,
        typer.Option("--query-group", help="Take the queries from this group.", show_default="--group itself"),
    ] = None,
    ids: Annotated[
        str | None, typer.Option("--ids", help="Only these query ids (the group's ids values), e.g. 1,2,3.")
    ] = None,
    metric: MetricOption = "l2",
    index: IndexOption = "flat",
    recall: RecallOption = 0.95,
    engine: EngineOption = "local",
    ray_address: RayAddressOption = None,
    out: Annotated[
        Path | None, typer.Option("--out", help="Write every result to .json, .h5 or .npz (atomic).")
    ] = None,
    limit: Annotated[int, typer.Option("--limit", min=0, help="Queries shown in the table.")] = 10,
    workspace: WorkspaceOption = None,
    json_out: JsonOption = False,
) -> None:
    """Find the k nearest (or farthest) rows for every query; a query is never its own neighbour."""
    from embedkit.search.index import check_results_out, neighbors_json, save_neighbors
    from embedkit.search.index import neighbors as find_neighbors

    path = _store_path(store, workspace)
    if out is not None:
        check_results_out(out, path)  # before the search, which may save an index
    with progress_bar("searching", "rows", min_total=PROGRESS_MIN_ROWS) as on_progress:
        result = find_neighbors(
            path,
            group,
            k,
            farthest=farthest,
            query_group=query_group,
            query_ids=_parse_ids(ids),
            metric=metric,
            index_kind=index,
            on_progress=on_progress,
            recall=recall,
            engine=engine,
            ray_address=ray_address,
        )
    if out is not None:
        save_neighbors(result, out, path)
    if json_out:
        print_json(neighbors_json(result))
        return
    _print_neighbors(result, limit)
    if out is not None:
        console.print(f"wrote {len(result.query_ids):,} results to {out}", highlight=False)


def _print_neighbors(result, limit: int) -> None:
    from embedkit.search.index import RAY_STATUS, SELF_JOIN_STATUS

    def label(value: int) -> str:
        names = result.class_names
        return names[value] if 0 <= value < len(names) else ("-" if value < 0 else str(value))

    what = "farthest" if result.farthest else "nearest"
    status = result.index_status  # "exact self-join, no index", or how the saved index was had: "loaded", "built"
    search = status if status in (SELF_JOIN_STATUS, RAY_STATUS) else f"{result.index_kind} index {status}"
    title = f"{what} {result.k} in {result.group}, {result.metric} distance, {search}{_recall_note(result)}"
    rows = [
        [
            str(result.query_ids[row]),
            label(int(result.query_labels[row])),
            " ".join(str(i) for i in result.ids[row]),
            " ".join(f"{d:.4f}" for d in result.distances[row]),
            " ".join(label(int(v)) for v in result.labels[row]),
        ]
        for row in range(min(limit, len(result.query_ids)))
    ]
    print_table(title, ("query id", "label", "neighbour ids", "distances", "labels"), rows)
    shown = min(limit, len(result.query_ids))
    if shown < len(result.query_ids):
        console.print(
            f"showing {shown} of {len(result.query_ids):,} queries: --out FILE or --json for all", highlight=False
        )


def _recall_note(result) -> str:
    """', approximate: recall@10 0.962 on 500 sampled queries (nprobe 8)' for an approximate search, else ''."""
    estimate = result.recall_estimate
    if estimate is None:
        return ""
    probes = f" (nprobe {estimate.nprobe})" if estimate.nprobe else ""
    return f", approximate: recall@{estimate.k} {estimate.recall:.3f} on {estimate.n_queries} sampled queries{probes}"


@app.command("pairs")
def pairs(
    store: StoreArgument = None,
    group: GroupOption = "cifar10/train",
    k: Annotated[int, typer.Option("--k", "-k", help="Nearest neighbours per row.")] = 3,
    out: Annotated[Path, typer.Option("--out", help="Pairs file to write (HDF5, atomic).")] = ...,
    metric: MetricOption = "l2",
    index: IndexOption = "flat",
    recall: RecallOption = 0.95,
    engine: EngineOption = "local",
    ray_address: RayAddressOption = None,
    workspace: WorkspaceOption = None,
    json_out: JsonOption = False,
) -> None:
    """Write each row's k nearest neighbours (never itself) to an HDF5 pairs file for neighbour-positive training."""
    from embedkit.search.index import make_pairs, pairs_attributes

    path = _store_path(store, workspace)
    start = time.perf_counter()
    with progress_bar("pairs", "rows", min_total=PROGRESS_MIN_ROWS) as on_progress:
        written = make_pairs(
            path,
            group,
            k,
            out,
            metric=metric,
            on_progress=on_progress,
            index_kind=index,
            recall=recall,
            engine=engine,
            ray_address=ray_address,
        )
    seconds = time.perf_counter() - start
    attributes = pairs_attributes(written)
    approximate = {key: attributes[key] for key in ("recall", "recall_queries") if key in attributes}
    if json_out:
        print_json(
            {
                "store": str(path),
                "group": group,
                "k": k,
                "metric": metric,
                "index": attributes["index"],
                "engine": engine,
                "out": str(written),
                "seconds": round(seconds, 3),
                "recall_estimate": approximate or None,
            }
        )
    else:
        how = attributes["index"] + (
            f", recall@{k} {approximate['recall']:.3f} on {approximate['recall_queries']} sampled rows"
            if approximate
            else ", exact"
        )
        console.print(
            f"wrote {k} nearest neighbours per row of {group} to {written} in {seconds:.1f} s ({how})",
            highlight=False,
        )


def _index_names(indexes: list[dict]) -> list[str]:
    """`l2.hnsw`, `l2.ivf (4 shards)`, `cosine.ivf (stale)`: one name per saved index, its shards counted once."""
    counts: dict[str, int] = {}
    for i in indexes:
        name = f"{i['metric']}.{i['kind']}{'' if i['fresh'] else ' (stale)'}"
        counts[name] = counts.get(name, 0) + 1
    return [name if n == 1 else f"{name} ({n} shards)" for name, n in counts.items()]
