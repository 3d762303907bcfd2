"""Commands: train (VICReg), encode (a checkpoint into the store), plot losses (a run's loss curves)."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Annotated

import typer

from embedkit.errors import ConfigError
from embedkit.workspace import Workspace
from embedkit_cli.app import app, console, err_console, plot_app, print_json, styled, warn
from embedkit_cli.options import (
    DataRootOption,
    DeviceOption,
    DownloadOption,
    Encoder,
    EngineOption,
    JsonOption,
    Optimizer,
    RayAddressOption,
    Schedule,
    TrainPreset,
    WorkspaceOption,
    seed_option,
)
from embedkit_cli.progress import progress_bar
from embedkit_cli.tables import print_table


def _opt(kind: type, flag: str, help_text: str, default: str | None = None):
    """An optional option whose default (None) means: take the value from the preset or the saved config;
    `default` says in the help where the value then comes from."""
    return Annotated[kind | None, typer.Option(flag, help=help_text, show_default=default or False)]


PresetOption = Annotated[
    TrainPreset,
    typer.Option(
        "--preset",
        help="Recipe: auto (gpu if CUDA is available, else cpu), "
        "cpu (small encoder, Adam, 20 epochs: about 26 min on 2 cores with native bf16), "
        "cpu-long (the same, 42 epochs, 10% of views solarized), gpu (ResNet-18, LARS, 200 epochs).",
    ),
]
ResumeOption = Annotated[
    bool,
    typer.Option(
        "--resume",
        help="Continue the run in --run-dir (or the latest run) "
        "from its last.pt; only --epochs and --device may change.",
    ),
]


def _load_split(
    dataset: str, split: str, data_root: Path | None, download: bool = False, sample: int | None = None, seed: int = 0
):
    """One split, or only the `sample` images a run trains on (decoding no others when the split is not cached)."""
    from embedkit.data.sources import load_images

    what = f"loading {dataset} {split}" + (f" ({sample:,}-image sample)" if sample is not None else "")
    with progress_bar(what, "items", keep=True) as on_progress:
        return load_images(
            dataset, split, data_root, download=download, on_progress=on_progress, sample=sample, seed=seed
        )


def _test_split(dataset: str, data_root: Path | None, download: bool, sample: int, seed: int):
    """The test images whose losses are logged, or None (with the library's reason as a warning)."""
    from embedkit.training.loop import load_test_split

    with progress_bar(f"loading {dataset} test ({sample:,}-image sample)", "items", keep=True) as on_progress:
        test_set, why_not = load_test_split(
            dataset, data_root, download=download, on_progress=on_progress, sample=sample, seed=seed
        )
    if test_set is None:
        warn(f"no test losses will be logged ({why_not})")
    return test_set


@app.command("train")
def train_command(
    preset: PresetOption = "auto",
    epochs: _opt(int, "--epochs", "Epochs.", "preset") = None,
    batch_size: _opt(int, "--batch-size", "Images per step.", "preset") = None,
    optimizer: _opt(Optimizer, "--optimizer", "Warm-up and cosine via --warmup-epochs, --schedule.", "preset") = None,
    lr: _opt(float, "--lr", "Base learning rate (LARS: per 256 images).", "preset; Adam's own default 3e-4") = None,
    weight_decay: _opt(float, "--weight-decay", "Weight decay, not on biases or BatchNorm.", "preset") = None,
    warmup_epochs: _opt(float, "--warmup-epochs", "Linear warm-up length in epochs.", "preset") = None,
    schedule: _opt(Schedule, "--schedule", "After warm-up.", "preset") = None,
    lam: _opt(float, "--lam", "Invariance weight.", "25") = None,
    mu: _opt(float, "--mu", "Variance weight.", "25") = None,
    nu: _opt(float, "--nu", "Covariance weight.", "1") = None,
    encoder: _opt(Encoder, "--encoder", "Encoder network.", "preset") = None,
    projector_dim: _opt(
        int, "--projector-dim", "Width of the VICReg projector (the representation stays 128-d).", "preset"
    ) = None,
    seed: seed_option("Seed of the weights, the epoch order and the views.", optional=True, default="0") = None,
    subset: _opt(int, "--subset", "Train on N random train images (quick runs).") = None,
    dataset: _opt(
        str, "--dataset", "cifar10, or an image folder with train/ (and test/) class folders.", "cifar10"
    ) = None,
    positives: _opt(
        Path,
        "--positives",
        "Neighbour positives: a pairs file from `embedkit pairs` on another model's "
        "store of the train split; each image's positive is a random one of its k neighbours instead of "
        "an augmented view (no augmentation unless --augment-positives).",
    ) = None,
    augment_positives: Annotated[
        bool,
        typer.Option(
            "--augment-positives",
            help="With --positives: give the image and its neighbour the VICReg augmentations too.",
        ),
    ] = False,
    latent: Annotated[
        bool,
        typer.Option(
            "--latent",
            help="Latent optimization instead of VICReg: NO encoder, one "
            "free vector per image fitted with the VICReg loss over kNN pairs of "
            "--source-store; it fits cifar10 TRAIN AND TEST images together (it can "
            "only represent images it was fitted on) and writes both groups to --out. "
            "Uses --epochs, --batch-size, --lr, --lam, --mu, --nu, --seed.",
        ),
    ] = False,
    source_store: _opt(
        Path,
        "--source-store",
        "With --latent: store with cifar10/train and cifar10/test of another model, whose kNN pairs are the positives.",
        "the workspace's store.h5",
    ) = None,
    out: _opt(
        Path,
        "--out",
        "With --latent: store to write cifar10/train and cifar10/test to (overwritten).",
        "<workspace>/latent.h5",
    ) = None,
    k: _opt(int, "--k", "With --latent: neighbours per image; the positive is one of them.", "3") = None,
    run_dir: _opt(
        Path, "--run-dir", "Run folder.", "a new runs/vicreg-<preset> in the workspace; with --resume, the latest run"
    ) = None,
    resume: ResumeOption = False,
    device: DeviceOption = "auto",
    workspace: WorkspaceOption = None,
    data_root: DataRootOption = None,
    download: DownloadOption = False,
    json_out: JsonOption = False,
) -> None:
    """Train a VICReg encoder; checkpoint every epoch to RUN/last.pt, loss terms per batch to RUN/log.jsonl.

    Ablations: --mu 0 (no variance term), --positives PAIRS (neighbour positives), --latent (no encoder: free
    vectors for the train and test images, fitted together).
    """
    from embedkit.training.config import check_resume_options, flag
    from embedkit.training.loop import make_config, resume_config, train

    options = dict(
        epochs=epochs,
        batch_size=batch_size,
        optimizer=optimizer,
        lr=lr,
        weight_decay=weight_decay,
        warmup_epochs=warmup_epochs,
        schedule=schedule,
        lam=lam,
        mu=mu,
        nu=nu,
        encoder=encoder,
        projector_dim=projector_dim,
        seed=seed,
        subset=subset,
        dataset=dataset,
        positives=positives,
        augment_positives=augment_positives or None,
    )
    latent_only = dict(source_store=source_store, out=out, k=k)
    if latent:
        run_options = {"resume": resume or None, "run_dir": run_dir}
        _fit_latent({**options, **run_options, "k": k}, source_store, out, device, workspace, json_out)
        return
    if any(v is not None for v in latent_only.values()):
        name = next(key for key, v in latent_only.items() if v is not None)
        raise ConfigError(f"{flag(name)} only applies with --latent")
    ws = Workspace.at(workspace)
    if resume:
        check_resume_options(options)
        folder = ws.run_dir(run_dir, resume=True, preset=preset)
        config = resume_config(folder, epochs)
    else:
        config = make_config(preset, **options)
        folder = ws.run_dir(run_dir, resume=False, preset=config.preset)
    _warn_if_fp32_cpu(config, device)
    # Plain VICReg decodes only the images it trains on; neighbour positives may be any image of the split.
    sample = config.subset if config.positives is None else None
    train_set = _load_split(config.dataset, "train", data_root, download, sample, config.seed)
    test_set = (
        _test_split(config.dataset, data_root, download, config.test_images, config.seed)
        if config.test_images
        else None
    )
    err_console.print(f"run folder: {folder}", highlight=False)
    try:
        with progress_bar("training", "img", per_step=config.batch_size, keep=True) as bar:
            notes = _TrainNotes(bar)
            result = train(
                config,
                folder,
                train_set,
                test_set,
                resume=resume,
                device=device,
                on_progress=notes.on_progress,
                on_log=notes.on_log,
                command=["embedkit", *sys.argv[1:]],
                on_test_progress=notes.on_test_progress,
            )
    except KeyboardInterrupt:
        saved = folder / "last.pt"
        where = f"progress saved in {saved}; continue with `embedkit train --resume --run-dir {folder}`"
        err_console.print(
            styled("yellow", "interrupted:", where if saved.exists() else "no checkpoint written yet"),
            highlight=False,
            soft_wrap=True,
        )
        raise typer.Exit(130) from None
    _show_train_result(result, config, json_out)


def _warn_if_fp32_cpu(config, device: str) -> None:
    """The cpu presets' minutes assume native bf16; say so where training will run in fp32 on a CPU."""
    from embedkit.device import bf16_native, pick_device

    torch_device = pick_device(device)
    if config.amp and torch_device.type == "cpu" and not bf16_native(torch_device):
        warn(
            "this CPU has no native bf16 (AMX or AVX512-BF16): training runs in fp32, 2-3x slower than the "
            f"preset's minutes; --epochs {max(1, config.epochs // 3)} takes about as long"
        )


class _TrainNotes:
    """The training bar's callbacks and note: the last loss, and during the test-loss pass that ends each epoch,
    that pass's image count and time left (the bar's own ETA cannot see the pass coming)."""

    def __init__(self, bar) -> None:
        self.bar, self.step, self.total, self.note, self.step_done_at = bar, 0, 0, "", 0.0

    def on_progress(self, step: int, total: int) -> None:
        self.total = total
        self.bar(step, total, self.note)

    def on_log(self, record: dict) -> None:
        if record["split"] == "train":
            self.step, self.note = record["step"], f"loss {record['total']:.2f}"
            self.step_done_at = time.perf_counter()  # a test-loss pass, if any, starts now
        else:
            self.note = f"test loss {record['total']:.2f}"

    def on_test_progress(self, done: int, total: int) -> None:
        if self.total:  # known from the first step's report
            left = (time.perf_counter() - self.step_done_at) / done * (total - done)
            self.bar(self.step, self.total, f"test-loss pass {done:,}/{total:,} images, {left:,.0f} s left")


def _fit_latent(options: dict, source_store, out, device: str, workspace, json_out) -> None:
    """`train --latent`: fit free vectors for cifar10 train and test on a source store's kNN pairs."""
    from embedkit.baselines.latent import fit_latent_to_store, latent_config_from

    config = latent_config_from(options)
    ws = Workspace.at(workspace)
    source = source_store if source_store is not None else ws.default_store
    target = out if out is not None else ws.latent_store
    with progress_bar("latent optimization", "steps", keep=True) as bar:
        run = fit_latent_to_store(source, target, config, device=device, on_progress=bar)
    if json_out:
        print_json(run.to_json())
        return
    first, final = run.epoch_terms[0], run.epoch_terms[-1]
    console.print(
        f"wrote cifar10/train ({run.n_train}) and cifar10/test ({run.n_test}) to {run.store}; "
        f"{config.epochs} epochs in {run.seconds:.1f} s; loss {first['total']:.3f} -> {final['total']:.3f} "
        f"(inv {final['inv']:.3f}, var {final['var']:.3f}, cov {final['cov']:.3f})",
        highlight=False,
        soft_wrap=True,
    )


def _show_train_result(result, config, json_out: bool) -> None:
    payload = {**result.to_json(), "config": config.to_dict()}
    if json_out:
        print_json(payload)
        return
    columns = ("split", "step", "total", "inv", "var", "cov")
    rows = [
        [terms["split"], str(terms["step"]), *(f"{terms[k]:.4f}" for k in ("total", "inv", "var", "cov"))]
        for terms in (result.train_terms, result.test_terms)
        if terms
    ]
    print_table(f"VICReg run {result.run_dir}", columns, rows, right=columns[1:])
    epochs = f"{result.epochs} epoch{'s' if result.epochs != 1 else ''}"
    console.print(
        f"{config.encoder} encoder, {epochs}, {result.images_per_s:,.0f} images/s; checkpoint {result.checkpoint}",
        highlight=False,
        soft_wrap=True,
    )


@app.command("encode")
def encode_command(
    checkpoint: Annotated[
        Path | None,
        typer.Argument(help="Checkpoint (last.pt).", show_default="the workspace's latest"),
    ] = None,
    dataset: Annotated[str, typer.Option("--dataset", help="cifar10, mnist, or an image folder.")] = "cifar10",
    split: Annotated[
        list[str] | None,
        typer.Option("--split", help="Split to encode; repeat for several.", show_default="train and test"),
    ] = None,
    out: Annotated[
        Path | None, typer.Option("--out", help="HDF5 store.", show_default="the workspace's store.h5")
    ] = None,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace groups that already exist.")] = False,
    batch_size: Annotated[int, typer.Option("--batch-size", min=1, help="Images per forward pass.")] = 512,
    subset: Annotated[
        int | None,
        typer.Option(
            "--subset",
            help="Encode N random images of each split (seed 0; ids keep the rows in the split) for a quick look.",
            show_default=False,
        ),
    ] = None,
    device: DeviceOption = "auto",
    engine: EngineOption = "local",
    ray_address: RayAddressOption = None,
    workspace: WorkspaceOption = None,
    data_root: DataRootOption = None,
    download: DownloadOption = False,
    json_out: JsonOption = False,
) -> None:
    """Encode dataset splits with a trained encoder into store groups <dataset>/<split>, with provenance.

    --engine ray: a pool of encoder actors (one per GPU, else per CPU) encodes blocks of images; this process
    writes them in row order, all or nothing, as a local encode does.
    """
    from embedkit.store.store import open_store
    from embedkit.training.encode import encode_to_store

    ws = Workspace.at(workspace)
    checkpoint = checkpoint if checkpoint is not None else ws.latest_checkpoint()
    store_path = out if out is not None else ws.default_store
    splits = split or ["train", "test"]
    with progress_bar(f"encoding {dataset}", "img", keep=True) as on_progress:
        groups = encode_to_store(
            checkpoint,
            dataset,
            splits,
            store_path,
            data_root=data_root,
            device=device,
            batch_size=batch_size,
            overwrite=overwrite,
            subset=subset,
            download=download,
            engine=engine,
            ray_address=ray_address,
            on_progress=on_progress,
        )
    infos = [open_store(store_path).info(group) for group in groups]
    if json_out:
        print_json(
            {
                "store": str(store_path),
                "checkpoint": str(checkpoint),
                "groups": [{"group": i.name, "n": i.n, "dim": i.dim} for i in infos],
            }
        )
        return
    for info in infos:
        console.print(f"wrote {info.name}: {info.n} x {info.dim} to {store_path}", highlight=False)


@plot_app.command("losses")
def plot_losses_command(
    run: Annotated[
        Path | None,
        typer.Argument(help="Run folder (or its log.jsonl).", show_default="the workspace's latest run"),
    ] = None,
    out: Annotated[Path | None, typer.Option("--out", help="PNG file.", show_default="RUN/losses.png")] = None,
    workspace: WorkspaceOption = None,
    json_out: JsonOption = False,
) -> None:
    """Plot a run's total loss and its invariance, variance and covariance terms per batch, train and test."""
    from embedkit.eval.plots import plot_losses
    from embedkit.training.log import read_log

    run = run if run is not None else Workspace.at(workspace).latest_checkpoint().parent
    records = read_log(run)
    folder = run if run.is_dir() else run.parent
    path = plot_losses(records, out if out is not None else folder / "losses.png", title=f"VICReg losses: {folder}")
    n_train = sum(r.get("split") == "train" for r in records)
    if json_out:
        print_json(
            {"figure": str(path), "run": str(folder), "train_steps": n_train, "test_points": len(records) - n_train}
        )
        return
    console.print(f"wrote {path} ({n_train} train steps, {len(records) - n_train} test points)", highlight=False)
