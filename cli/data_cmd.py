"""`embedkit data`: which datasets are under the data root, their sizes and classes; optionally decode them now."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.text import Text

from embedkit_cli.app import app, console, print_json, styled
from embedkit_cli.options import DataRootOption, DownloadOption, JsonOption
from embedkit_cli.progress import progress_bar
from embedkit_cli.tables import print_table

PrepareOption = Annotated[
    bool,
    typer.Option("--prepare", help="Decode every found dataset into the cache now, so later commands start fast."),
]


@app.command("data")
def data_command(
    data_root: DataRootOption = None,
    prepare: PrepareOption = False,
    download: DownloadOption = False,
    as_json: JsonOption = False,
) -> None:
    """Show which datasets (CIFAR-10, MNIST) were found under the data root, their sizes, classes and sources."""
    from embedkit.data.cache import resolve_cache_dir
    from embedkit.data.sources import available_datasets, download_missing, resolve_data_root

    root, cache = resolve_data_root(data_root), resolve_cache_dir()
    downloaded = download_missing(root) if download else []
    rows = available_datasets(root)
    if prepare and _decode_uncached(root, rows):
        rows = available_datasets(root)
    if as_json:
        print_json({"data_root": str(root), "cache_dir": str(cache), "downloaded": downloaded, "datasets": rows})
        return
    if download:
        fetched = ", ".join(downloaded) if downloaded else "nothing (every split was already there)"
        console.print(f"downloaded {fetched} into {root}", highlight=False, soft_wrap=True)
    rows_shown = [
        [row["dataset"], row["split"], _count(row["n_images"]), _count(row["n_classes"]), _cached(row), _source(row)]
        for row in rows
    ]
    columns = ("dataset", "split", "images", "classes", "cached", "source")
    print_table(f"Datasets under {root}", columns, rows_shown, right=("images", "classes"))
    for dataset, names in _class_lists(rows).items():
        console.print(f"{dataset} classes: {', '.join(names)}", highlight=False, soft_wrap=True)
    console.print(f"decoded-image cache: {cache}", highlight=False)
    if not any(row["found"] for row in rows):
        hint = f"put cifar10-jpeg.tar.gz and mnist-test/ in {root}, or pass --data-root / set EMBEDKIT_DATA"
        console.print(f"nothing found: {hint}", highlight=False)


def _cached(row: dict) -> str:
    return "yes" if row["cached"] else "no"


def _count(n: int | None) -> str:
    return f"{n:,}" if n is not None else "-"


def _class_lists(rows: list[dict]) -> dict[str, list[str]]:
    """The class names of each found dataset, listed once below the table."""
    return {row["dataset"]: row["class_names"] for row in rows if row["class_names"]}


def _source(row: dict) -> Text:
    if row.get("error"):
        return styled("red", "unreadable:", row["error"])
    if not row["found"]:
        return Text("not found", style="dim")
    return Text(f"{row['layout']}: {row['source']}")


def _decode_uncached(root: Path, rows: list[dict]) -> bool:
    """Load every found image-tree split that is not cached yet, with a progress bar; True if any was loaded."""
    from embedkit.data.sources import load_images

    todo = [row for row in rows if row["found"] and not row["cached"] and row["layout"] in ("tar.gz", "image folder")]
    archives_done = set()  # one pass over an archive decodes and caches all of its splits
    for row in todo:
        if row["source"] in archives_done:
            continue
        if row["layout"] == "tar.gz":
            archives_done.add(row["source"])
        with progress_bar(f"decoding {row['dataset']} {row['split']}", "images") as on_progress:
            load_images(row["dataset"], row["split"], root, on_progress=on_progress)
    return bool(todo)
