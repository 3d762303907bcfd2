"""Command: `embedkit baseline laplacian`, Laplacian eigenmaps of raw pixels written to a store."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from embedkit_cli.app import baseline_app, print_json
from embedkit_cli.options import DataRootOption, JsonOption, WorkspaceOption, seed_option
from embedkit_cli.progress import phase_progress
from embedkit_cli.tables import print_table


@baseline_app.command("laplacian")
def laplacian(
    dataset: Annotated[
        str, typer.Option("--dataset", help="cifar10, mnist, or the path of an image folder {train,test}/<class>/*.")
    ] = "cifar10",
    dim: Annotated[int, typer.Option("--dim", help="Embedding dimensions (eigenvectors kept).")] = 128,
    k: Annotated[int, typer.Option("--k", help="Neighbours per image in the kNN graph.")] = 10,
    out: Annotated[
        Path | None,
        typer.Option("--out", show_default="<workspace>/laplacian.h5", help="Store to write."),
    ] = None,
    pca_dim: Annotated[
        int,
        typer.Option(
            "--pca-dim",
            help="Project pixels on their top N principal components before the kNN graph, "
            "the standard speed-up (CIFAR-10, 60,000 images, 2 busy cores: kNN graph ~1 min with 128 PCA "
            "dims, ~13 min over the 3,072 raw pixels); 0 = raw pixels.",
        ),
    ] = 128,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace the groups if the store has them.")] = False,
    seed: seed_option("Seed of the PCA sample, the eigensolver's start and --subset.") = 0,
    subset: Annotated[
        int | None,
        typer.Option(
            "--subset",
            help="Embed N random images of each split (quick looks; ids keep the rows in the split).",
            show_default=False,
        ),
    ] = None,
    data_root: DataRootOption = None,
    workspace: WorkspaceOption = None,
    json_out: JsonOption = False,
) -> None:
    """Laplacian eigenmaps baseline: the spectral embedding of the kNN graph of raw pixels, train and test together.

    Pixels -> PCA (--pca-dim) -> symmetrised binary kNN graph -> bottom eigenvectors of its normalised Laplacian.

    The embedding exists only for the images it was fitted on, so train and test are embedded together.

    Writes groups <dataset>/train and <dataset>/test; prints N, dim, seconds per phase, connected components.
    """
    from embedkit.baselines.laplacian import fit_laplacian_to_store
    from embedkit.workspace import Workspace

    store = out if out is not None else Workspace.at(workspace).laplacian_store
    with phase_progress() as (on_phase, on_progress):
        run = fit_laplacian_to_store(
            dataset,
            store,
            dim=dim,
            k=k,
            pca_dim=pca_dim or None,
            data_root=data_root,
            overwrite=overwrite,
            seed=seed,
            subset=subset,
            on_progress=on_progress,
            on_phase=on_phase,
        )
    if json_out:
        print_json(run.to_json())
        return
    _print_summary(run)


def _print_summary(run) -> None:
    rows = sum(run.rows.values())
    joined = " (joined into one)" if run.n_components > 1 else ""
    pairs = [
        ["images (N)", f"{rows:,} ({', '.join(f'{g}: {n:,}' for g, n in run.rows.items())})"],
        ["dim / k", f"{run.config.dim} / {run.config.k}"],
        ["PCA dims", str(run.config.pca_dim or "none (raw pixels)")],
        ["connected components", f"{run.n_components}{joined}"],
        ["seconds", ", ".join(f"{name} {s:.1f}" for name, s in run.seconds.items())],
        ["store", str(run.store)],
    ]
    print_table("Laplacian eigenmaps", ("item", "value"), pairs, show_header=False)
