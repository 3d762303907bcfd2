"""Evaluation commands: probe, retrieve, anomaly, cluster, `plot map` and explore. Each reads one or more stores,
calls the library, prints a table (or one JSON object with --json) and writes its figures (PNG) or page (HTML)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated

import typer
from rich.text import Text

from embedkit_cli.app import app, console, err_console, plot_app, print_json, warn
from embedkit_cli.options import (
    DataRootOption,
    DeviceOption,
    DownloadOption,
    EngineOption,
    JsonOption,
    MapMethod,
    RayAddressOption,
    WorkspaceOption,
    seed_option,
)
from embedkit_cli.progress import progress_bar
from embedkit_cli.tables import print_table

StoresArgument = Annotated[
    list[Path] | None,
    typer.Argument(
        help="HDF5 stores. Several are compared side by side, each named by its file stem.",
        show_default="the workspace's store.h5",
    ),
]
SeedOption = seed_option("Random seed (sampling, k-means, t-SNE, query choice).")
MaxPointsOption = Annotated[
    int, typer.Option("--max-points", min=1, help="Map a seeded sample of at most this many rows.")
]


OutOption = Annotated[
    Path | None,
    typer.Option(
        "--out", help=r"Folder for the figures \[default: <workspace>/figures/<command>].", show_default=False
    ),
]


def _stores(stores: list[Path] | None, workspace: Path | None) -> list[Path]:
    from embedkit.workspace import Workspace

    return list(stores) if stores else [Workspace.at(workspace).default_store]


def _out_dir(out: Path | None, workspace: Path | None, command: str, *figures: str) -> Path:
    """The figures folder, checked (before any work) to take the named `figures` without replacing other files."""
    from embedkit.eval.plots import check_figures_out
    from embedkit.workspace import Workspace

    return check_figures_out(out if out is not None else Workspace.at(workspace).figures_dir(command), figures)


def _figure_path(out: Path | None, workspace: Path | None, command: str, name: str) -> Path:
    return _out_dir(out, workspace, command, name) / name


def _slug(group: str) -> str:
    return group.replace("/", "-")


@contextlib.contextmanager
def _status(message: str, quiet: bool) -> Iterator[None]:
    """A spinner on stderr while a step with no progress count runs (t-SNE, k-means)."""
    if quiet:
        yield
        return
    with err_console.status(Text(message)):  # Text: a str would be read as markup
        yield


def _table(title: str, columns: list[str], rows: list[list[str]]) -> None:
    print_table(title, columns, rows, right=columns[1:])


def _fmt(value: float | None, digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


@app.command("probe")
def probe(
    stores: StoresArgument = None,
    train: Annotated[str, typer.Option("--train", help="Group to fit the classifier on.")] = "cifar10/train",
    test: Annotated[str, typer.Option("--test", help="Group to measure accuracy on.")] = "cifar10/test",
    knn_k: Annotated[int, typer.Option("--knn-k", help="Neighbours voting in the kNN classifier (cosine).")] = 20,
    workspace: WorkspaceOption = None,
    json_out: JsonOption = False,
) -> None:
    """Linear probe: a linear classifier on the frozen embeddings, plus kNN-classifier accuracy."""
    from embedkit.eval.probe import probe_store

    rows = []
    for path in _stores(stores, workspace):
        with _status(f"fitting the probe on {path.stem}", json_out):
            result = probe_store(path, train, test, knn_k=knn_k)
        rows.append({"name": path.stem, "store": str(path), **result.to_dict()})
    if json_out:
        print_json({"train": train, "test": test, "stores": rows})
        return
    loo = " (kNN leave-one-out: train is test)" if train == test else ""
    _table(
        f"linear probe {train} -> {test}{loo}",
        ["model", "linear acc", f"kNN acc (k={knn_k})", "train acc", "train", "test", "D", "fit s"],
        [
            [
                r["model"],
                _fmt(r["accuracy"]),
                _fmt(r["knn_accuracy"]),
                _fmt(r["train_accuracy"]),
                f"{r['n_train']:,}",
                f"{r['n_test']:,}",
                str(r["dim"]),
                _fmt(r["fit_seconds"], 1),
            ]
            for r in rows
        ],
    )


@plot_app.command("map")
def plot_map(
    stores: StoresArgument = None,
    group: Annotated[str, typer.Option("--group", "-g", help="Group to map.")] = "cifar10/test",
    method: Annotated[
        MapMethod, typer.Option("--method", help="pca is instant; tsne runs PCA to 50 dims first.")
    ] = "pca",
    max_points: MaxPointsOption = 10_000,
    seed: SeedOption = 0,
    out: OutOption = None,
    workspace: WorkspaceOption = None,
    json_out: JsonOption = False,
) -> None:
    """2-D map (PCA or t-SNE) of a group, points coloured by class; several stores side by side."""
    from embedkit.eval.maps import draw_maps

    figure_path = _figure_path(out, workspace, "map", f"map-{_slug(group)}-{method}.png")
    with progress_bar(f"{method} map of {group}", "steps") as on_progress:
        maps, figure = draw_maps(
            _stores(stores, workspace),
            group,
            method,
            figure_path,
            max_points=max_points,
            seed=seed,
            on_progress=on_progress,
        )
    if json_out:
        print_json(
            {
                "group": group,
                "method": method,
                "figure": str(figure),
                "stores": [{"name": m.name, "points": len(m.rows), "total": m.n_total} for m in maps],
            }
        )
        return
    console.print(f"map of {group} ({maps[0].shown}) -> {figure}")


@app.command("retrieve")
def retrieve(
    stores: StoresArgument = None,
    group: Annotated[
        str, typer.Option("--group", "-g", help="Group searched; the queries come from it too.")
    ] = "cifar10/train",
    per_class: Annotated[int, typer.Option("--per-class", help="Query images per class (seeded choice).")] = 1,
    k: Annotated[int, typer.Option("--k", "-k", help="Nearest and farthest images shown per query.")] = 5,
    seed: SeedOption = 0,
    data_root: DataRootOption = None,
    out: OutOption = None,
    workspace: WorkspaceOption = None,
    json_out: JsonOption = False,
) -> None:
    """Retrieval grids: per class, a query image with its k nearest and k farthest images in the group."""
    from embedkit.eval.retrieval import draw_retrieval, retrieve_stores

    figure_path = _figure_path(out, workspace, "retrieve", f"retrieve-{_slug(group)}.png")
    results = retrieve_stores(_stores(stores, workspace), group, k, per_class=per_class, seed=seed)
    with _status("drawing the retrieval grid", json_out):
        figure = draw_retrieval(results, figure_path, data_root=data_root)
    summary = [
        {
            "name": r.name,
            "model": r.model,
            "nearest_same_class": r.nearest_same_class,
            "farthest_same_class": r.farthest_same_class,
        }
        for r in results
    ]
    if json_out:
        print_json(
            {
                "group": group,
                "k": k,
                "per_class": per_class,
                "figure": str(figure),
                "stores": [{**s, **r.to_dict()} for s, r in zip(summary, results)],
            }
        )
        return
    _table(
        f"retrieval in {group}: {len(results[0].query_ids)} queries, k={k}",
        ["model", "nearest: same class", "farthest: same class"],
        [[s["model"], f"{s['nearest_same_class']:.0%}", f"{s['farthest_same_class']:.0%}"] for s in summary],
    )
    console.print(f"figure -> {figure}")


@app.command("anomaly")
def anomaly(
    stores: StoresArgument = None,
    ood: Annotated[
        str,
        typer.Option(
            "--ood",
            help="Anomalous set: a dataset name (its test split) or a group. "
            "Encoded with the store's checkpoint if missing.",
        ),
    ] = "mnist",
    k: Annotated[int, typer.Option("--k", "-k", help="Score = mean L2 distance to the k nearest reference rows.")] = 2,
    reference: Annotated[
        str, typer.Option("--reference", help="Normal group the kNN distances are measured to.")
    ] = "cifar10/train",
    normal: Annotated[str, typer.Option("--normal", help="Normal group scored beside the OOD one.")] = "cifar10/test",
    top: Annotated[int, typer.Option("--top", min=1, help="Most anomalous images shown per store.")] = 7,
    data_root: DataRootOption = None,
    download: DownloadOption = False,
    device: DeviceOption = "auto",
    engine: EngineOption = "local",
    ray_address: RayAddressOption = None,
    out: OutOption = None,
    workspace: WorkspaceOption = None,
    json_out: JsonOption = False,
) -> None:
    """Anomaly detection by kNN distance: ROC-AUC of normal vs OOD, ROC curves and the most anomalous images."""
    from embedkit.errors import DataError
    from embedkit.eval.anomaly import anomaly_store, draw_roc, draw_top_anomalies

    out_dir = _out_dir(out, workspace, "anomaly", "roc.png", "top-anomalies.png")
    results = []
    for path in _stores(stores, workspace):
        with progress_bar(f"encoding {ood} into {path.name}") as on_progress:
            results.append(
                anomaly_store(
                    path,
                    ood,
                    k,
                    reference_group=reference,
                    normal_group=normal,
                    data_root=data_root,
                    device=device,
                    on_progress=on_progress,
                    download=download,
                    engine=engine,
                    ray_address=ray_address,
                )
            )
    first = results[0]
    figures = {"roc": str(draw_roc(results, out_dir / "roc.png"))}
    try:
        figures["top"] = str(draw_top_anomalies(results, top, out_dir / "top-anomalies.png", data_root=data_root))
    except DataError as exc:  # the scores stand without the pictures
        warn(f"no image grid: {exc}")
    if json_out:
        print_json(
            {
                "reference": reference,
                "normal": normal,
                "ood": first.ood_group,
                "k": k,
                "figures": figures,
                "stores": [
                    {
                        "name": r.name,
                        "model": r.model,
                        "store": str(r.store_path),
                        "encoded_ood": r.encoded,
                        **r.result.to_dict(),
                        "top": r.top(top),
                    }
                    for r in results
                ],
            }
        )
        return
    loo = first.result.leave_one_out
    loo_note = f"; {' and '.join(loo)} = reference, scored leave-one-out" if loo else ""
    _table(
        f"anomaly: {normal} (normal) vs {first.ood_group} (OOD), reference {reference}, k={k}{loo_note}",
        ["model", "ROC-AUC", "mean score normal", "mean score OOD", "normal", "OOD"],
        [
            [
                r.model,
                _fmt(r.result.roc_auc),
                _fmt(d["mean_score_normal"]),
                _fmt(d["mean_score_ood"]),
                f"{d['n_normal']:,}",
                f"{d['n_ood']:,}",
            ]
            for r, d in ((r, r.result.to_dict()) for r in results)
        ],
    )
    for r in results:
        if r.encoded:
            what = f"{r.result.to_dict()['n_ood']:,} {ood} images"
            console.print(f"encoded {what} into new group {r.ood_group} of {r.store_path}", highlight=False)
    console.print("figures -> " + ", ".join(figures.values()))


@app.command("cluster")
def cluster(
    stores: StoresArgument = None,
    group: Annotated[str, typer.Option("--group", "-g", help="Group to cluster.")] = "cifar10/test",
    k: Annotated[int, typer.Option("--k", "-k", help="Number of k-means clusters.")] = 10,
    map_method: Annotated[
        MapMethod, typer.Option("--map", help="2-D map for the figure; tsne takes minutes on 10,000 points.")
    ] = "pca",
    max_points: MaxPointsOption = 10_000,
    seed: SeedOption = 0,
    engine: EngineOption = "local",
    ray_address: RayAddressOption = None,
    out: OutOption = None,
    workspace: WorkspaceOption = None,
    json_out: JsonOption = False,
) -> None:
    """k-means clusters vs classes: silhouette, ARI, NMI; a map coloured by cluster beside one by class.

    --engine ray: one k-means from a seeded k-means++ start, its Lloyd steps as Ray tasks over row blocks.
    """
    from embedkit.eval.cluster import draw_clusters

    paths = _stores(stores, workspace)
    out_path = _figure_path(out, workspace, "cluster", f"clusters-{_slug(group)}-k{k}.png")
    with progress_bar(f"k-means and {map_method} maps of {group}", "steps") as on_progress:
        clustered, figure = draw_clusters(
            paths,
            group,
            k,
            out_path,
            map_method=map_method,
            max_points=max_points,
            seed=seed,
            engine=engine,
            ray_address=ray_address,
            on_progress=on_progress,
        )
    results = [{"name": name, "store": str(path), **result.to_dict()} for (name, result), path in zip(clustered, paths)]
    if json_out:
        print_json({"group": group, "k": k, "figure": str(figure), "stores": results})
        return
    sampled = any(r["silhouette_sampled"] for r in results)
    _table(
        f"k-means of {group}, k={k}",
        ["model", "ARI", "NMI", "silhouette k-means", "silhouette classes", "points"],
        [
            [
                r["model"],
                _fmt(r["ari"]),
                _fmt(r["nmi"]),
                _fmt(r["silhouette_kmeans"]),
                _fmt(r["silhouette_classes"]),
                f"{r['n']:,}",
            ]
            for r in results
        ],
    )
    if sampled:
        console.print(f"silhouettes on a seeded sample of {results[0]['silhouette_points']:,} points")
    console.print(f"figure -> {figure}")


@app.command("explore")
def explore(
    stores: StoresArgument = None,
    group: Annotated[str, typer.Option("--group", "-g", help="Group to explore.")] = "cifar10/test",
    method: Annotated[str, typer.Option("--method", help="2-D map: pca (instant) or tsne (slower, tighter).")] = "pca",
    k: Annotated[
        int, typer.Option("--k", "-k", min=1, help="Nearest and farthest images stored per point (exact L2).")
    ] = 5,
    clusters: Annotated[int, typer.Option("--clusters", min=2, help="k-means clusters to colour by.")] = 10,
    max_points: MaxPointsOption = 10_000,
    seed: SeedOption = 0,
    data_root: DataRootOption = None,
    out: Annotated[
        Path | None,
        typer.Option(
            "--out", help=r"The HTML file \[default: <workspace>/explore/<group>-<method>.html].", show_default=False
        ),
    ] = None,
    workspace: WorkspaceOption = None,
    json_out: JsonOption = False,
) -> None:
    """One offline HTML page to browse a group: its 2-D map, each image's neighbours, a switch between stores."""
    from embedkit.eval.explore import write_explorer
    from embedkit.workspace import Workspace

    out_path = out if out is not None else Workspace.at(workspace).explorer_page(group, method)
    with progress_bar(f"{method} map, neighbours and thumbnails of {group}", "steps") as on_progress:
        page = write_explorer(
            _stores(stores, workspace),
            group,
            out_path,
            method=method,
            k=k,
            n_clusters=clusters,
            max_points=max_points,
            seed=seed,
            data_root=data_root,
            on_progress=on_progress,
        )
    if json_out:
        print_json(page.to_dict())
        return
    console.print(
        f"explorer of {group} ({page.n_points:,} points, {len(page.models)} model(s), "
        f"{page.size_bytes / 1e6:.1f} MB) -> {page.path}",
        highlight=False,
    )
