"""The VICReg training loop: sessions, steps, the JSON-lines log, checkpoints and resume.

Reads top to bottom like facebookresearch/vicreg's `main_vicreg.py`, without its globals: `train(config, run_dir,
images)` builds the encoder, projector, optimiser and view source, then steps through seeded epochs (the config and
its presets are in `embedkit.training.config`, the LARS optimiser and the schedule in `embedkit.training.optim`).
Every batch appends its loss terms to `<run_dir>/log.jsonl`; every epoch adds the terms on a fixed sample of the
test split and rewrites `<run_dir>/last.pt` atomically. `resume=True` continues from `last.pt` mid-epoch if need be:
the epoch's order is derived from (seed, epoch) and the view generator's state is in the checkpoint, so on CPU a
resumed run ends with the same weights as an uninterrupted one. Ctrl-C is deferred to the end of the current step,
which is saved before the KeyboardInterrupt propagates.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import torch

from embedkit._util.progress import ProgressFn
from embedkit._util.sampling import seeded_rows
from embedkit._util.signals import DeferredCtrlC
from embedkit.data.sources import KNOWN_DATASETS, ImageSet, load_images, to_rgb32
from embedkit.device import bf16_native, pick_device
from embedkit.errors import CheckpointError, ConfigError, DataError, TrainingError
from embedkit.provenance import code_version
from embedkit.training.config import PRESETS, TrainConfig, diverged, make_config, pairs_digest, validate_config
from embedkit.training.log import LOG_NAME
from embedkit.training.losses import vicreg_loss
from embedkit.training.models import (
    build_encoder,
    build_projector,
    checkpoint_payload,
    read_checkpoint,
    save_checkpoint,
)
from embedkit.training.optim import LARS, learning_rate
from embedkit.training.positives import NeighborPairs, read_neighbor_table
from embedkit.training.views import AugmentedPairs, PairSource

__all__ = ["PRESETS", "TrainConfig", "TrainResult", "make_config", "resume_config", "train"]

CHECKPOINT_NAME = "last.pt"
RUNS_NAME = "runs.jsonl"  # one line per start or resume: when, which command line, which code


def resume_config(run_dir: Path, epochs: int | None = None) -> TrainConfig:
    """The config saved in `<run_dir>/last.pt`, optionally with more `epochs` to continue a finished run."""
    payload = read_checkpoint(Path(run_dir) / CHECKPOINT_NAME)
    config = TrainConfig.from_dict(payload["config"])
    return validate_config(replace(config, epochs=epochs) if epochs else config)


@dataclass(frozen=True)
class TrainResult:
    """What a finished run left: its folder and checkpoint, steps done and the last logged terms."""

    run_dir: Path
    checkpoint: Path
    steps: int
    epochs: int
    train_terms: dict
    test_terms: dict | None
    images_per_s: float

    def to_json(self) -> dict:
        """What `train --json` and the study's train stage record: paths, counts, speed and the last terms."""
        return {
            "run_dir": str(self.run_dir),
            "checkpoint": str(self.checkpoint),
            "steps": self.steps,
            "epochs": self.epochs,
            "images_per_s": round(self.images_per_s, 1),
            "train": self.train_terms,
            "test": self.test_terms,
        }


@dataclass
class _Session:
    """The mutable state of a run: modules, optimiser, view generator and the global step."""

    encoder: torch.nn.Module
    projector: torch.nn.Module
    optimizer: torch.optim.Optimizer
    generator: torch.Generator
    step: int = 0


def train(
    config: TrainConfig,
    run_dir: Path,
    train_images,
    test_images=None,
    *,
    resume: bool = False,
    device: str = "auto",
    on_progress: ProgressFn | None = None,
    on_log: Callable[[dict], None] | None = None,
    command: list[str] | None = None,
    on_test_progress: ProgressFn | None = None,
) -> TrainResult:
    """Train an encoder with VICReg and leave `<run_dir>/last.pt`, `log.jsonl`, `config.json` and `runs.jsonl`.

    `command` (the command line that asked for this, e.g. `sys.argv`) is appended to `runs.jsonl` with the time and
    the code version (`embedkit.provenance.code_version()`), one line per start or resume, so a run folder says
    how it was made.

    train_images / test_images: (N, H, W, C) uint8 arrays or `ImageSet`s (resized to 32x32 RGB); test may be None.
    `on_progress(step, total_steps)` and `on_log(record)` are called after every step (records are the JSON lines);
    `on_test_progress(done, total)` after every batch of the test-loss pass that ends each epoch (test images).
    Raises ConfigError for a bad config or a resume whose checkpoint was made with another config, TrainingError
    when the loss diverges (the last good checkpoint is kept).

        >>> import embedkit
        >>> from embedkit.data import load_images
        >>> config = embedkit.make_config("cpu", epochs=1, subset=5000)        # doctest: +SKIP
        >>> result = embedkit.train(config, "runs/quick", load_images("cifar10", "train"),
        ...                         load_images("cifar10", "test"))            # doctest: +SKIP
        >>> result.checkpoint, result.images_per_s                              # doctest: +SKIP
        (PosixPath('runs/quick/last.pt'), 197.3)
    """
    validate_config(config)
    run_dir = Path(run_dir)
    torch_device = pick_device(device)
    images = _images_of(train_images)
    source = make_pair_source(
        config, images, torch_device, anchor_rows=_train_rows(config, images), origin=_origin(train_images)
    )
    test_source = None
    if test_images is not None and config.test_images > 0:
        # Test images have no neighbour pairs: their logged terms are always on two augmented views.
        test_sample = _sample(_images_of(test_images), config.test_images, config.seed)
        if len(test_sample) < 2:  # refused now: the loss of one image has no variance, and the epoch would be lost
            raise ConfigError(f"{len(test_sample)} test image(s): test losses need at least 2 (pass no test images)")
        test_source = AugmentedPairs(test_sample, config.views, torch_device)
    session = _new_session(config, torch_device)
    if resume:
        _restore(session, config, run_dir / CHECKPOINT_NAME)
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "config.json").write_text(json.dumps(config.to_dict(), indent=2) + "\n")
    _record_start(run_dir, command, resume=resume, step=session.step)
    _truncate_log(run_dir / LOG_NAME, session.step)
    first_step, started = session.step, time.perf_counter()
    loop = _Loop(config, session, source, test_source, run_dir, on_progress, on_log, on_test_progress)
    last_train, last_test = loop.run()
    elapsed = time.perf_counter() - started
    images_per_s = (session.step - first_step) * loop.batch / elapsed if elapsed > 0 else 0.0
    return TrainResult(
        run_dir,
        run_dir / CHECKPOINT_NAME,
        session.step,
        session.step // loop.steps_per_epoch,
        last_train,
        last_test,
        images_per_s,
    )


def _record_start(run_dir: Path, command: list[str] | None, *, resume: bool, step: int) -> None:
    """Append this start (or resume) of the run to `<run_dir>/runs.jsonl`: time, command line, code version."""
    record = {
        "started": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "resume": resume,
        "from_step": step,
        "command": command,
        "code": code_version(),
    }
    with open(run_dir / RUNS_NAME, "a") as f:
        f.write(json.dumps(record) + "\n")


class _Loop:
    """The epoch loop of one run: steps, per-step log lines, per-epoch test terms and checkpoints."""

    def __init__(self, config, session, source, test_source, run_dir: Path, on_progress, on_log, on_test_progress):
        self.config, self.session, self.source, self.test_source = config, session, source, test_source
        self.checkpoint, self.log_path = run_dir / CHECKPOINT_NAME, run_dir / LOG_NAME
        self.on_progress, self.on_log, self.on_test_progress = on_progress, on_log, on_test_progress
        self.batch = min(config.batch_size, len(source))
        self.steps_per_epoch = max(1, len(source) // self.batch)
        self.total_steps = config.epochs * self.steps_per_epoch

    def run(self) -> tuple[dict, dict | None]:
        """Step until the last epoch ends; on Ctrl-C (deferred to a step boundary) save, then re-raise."""
        last_train, last_test, session = {}, None, self.session
        with open(self.log_path, "a") as self.log, DeferredCtrlC() as ctrl_c:
            at_boundary = True
            if self.on_progress is not None:  # the total is known before the first (maybe only) step ends
                self.on_progress(session.step, self.total_steps)
            try:
                while session.step < self.total_steps:
                    epoch, position = divmod(session.step, self.steps_per_epoch)
                    order = _epoch_order(self.config.seed, epoch, len(self.source))
                    rows = order[position * self.batch : (position + 1) * self.batch]
                    lr = learning_rate(self.config, session.step, self.steps_per_epoch)
                    at_boundary = False
                    terms = _train_step(session, self.source, rows, lr, self.config)
                    self._check_finite(terms, "the loss", epoch, session.step + 1)
                    session.step += 1
                    at_boundary = True
                    record = {"split": "train", "epoch": epoch, "step": session.step, **terms, "lr": lr}
                    last_train = self._emit(record)
                    if session.step % self.steps_per_epoch == 0:
                        last_test = self._end_epoch(epoch) or last_test
                    if self.on_progress is not None:
                        self.on_progress(session.step, self.total_steps)
                    ctrl_c.check()
            except KeyboardInterrupt:
                if at_boundary:
                    self._save()
                raise
        return last_train, last_test  # the last step ended an epoch, so it is saved

    def _end_epoch(self, epoch: int) -> dict | None:
        record = None
        if self.test_source is not None:
            terms = _evaluate(self.session, self.test_source, self.batch, self.config, epoch, self.on_test_progress)
            self._check_finite(terms, "the test loss", epoch, self.session.step)
            record = self._emit({"split": "test", "epoch": epoch, "step": self.session.step, **terms})
        self._save()
        return record

    def _check_finite(self, values: dict, what: str, epoch: int, step: int) -> None:
        """Raise TrainingError if a value is NaN or infinite: the run diverged, and its weights are worthless."""
        error = diverged("training", what, values, epoch, self.config.epochs, step)
        if error is not None:
            kept = (
                f"the last good checkpoint {self.checkpoint} is kept"
                if self.checkpoint.exists()
                else "no checkpoint was written"
            )
            raise TrainingError(f"{error}; {kept}")

    def _emit(self, record: dict) -> dict:
        self.log.write(json.dumps(record) + "\n")
        self.log.flush()
        if self.on_log is not None:
            self.on_log(record)
        return record

    def _save(self) -> None:
        """Write last.pt; never from weights (or BatchNorm statistics) that hold a NaN or an infinity."""
        session = self.session
        tensors = [*session.encoder.state_dict().values(), *session.projector.state_dict().values()]
        if not all(torch.isfinite(t).all() for t in tensors if t.is_floating_point()):
            epoch = (session.step - 1) // self.steps_per_epoch
            self._check_finite({"weight": math.nan}, "a weight", epoch, session.step)
        rng = {"torch": torch.get_rng_state(), "views": session.generator.get_state()}
        payload = checkpoint_payload(
            session.encoder,
            self.config.to_dict(),
            _preprocessing(self.config),
            session.step,
            epoch=session.step // self.steps_per_epoch,
            projector_state=session.projector.state_dict(),
            optimizer_state=session.optimizer.state_dict(),
            rng=rng,
        )
        save_checkpoint(self.checkpoint, payload)


def load_test_split(
    dataset: str,
    data_root: Path | None = None,
    *,
    download: bool = False,
    on_progress: ProgressFn | None = None,
    sample: int | None = None,
    seed: int = 0,
) -> tuple[ImageSet | None, str | None]:
    """The test split whose losses a run logs, or (None, why) when an image folder has none or a single image
    (one image has no loss variance): such a run trains without test losses. A known dataset must have it.
    `sample`, `seed`: only the `config.test_images` images `train` draws with `config.seed` (see `load_images`)."""
    try:
        test_set = load_images(
            dataset, "test", data_root, download=download, on_progress=on_progress, sample=sample, seed=seed
        )
    except DataError as exc:
        if dataset in KNOWN_DATASETS:
            raise
        return None, str(exc)
    if len(test_set.images) < 2:
        return None, f"the test split of {dataset} has {len(test_set.images)} image"
    return test_set, None


def make_pair_source(
    config: TrainConfig,
    images: np.ndarray,
    device: torch.device,
    *,
    anchor_rows: np.ndarray | None = None,
    origin: tuple[str, str] | None = None,
) -> PairSource:
    """The source of the two inputs of each training example.

    images: (N, H, W, 3) uint8, the train split; anchor_rows: the rows trained on (None: all of them).
    Plain VICReg: two augmented views of each image. With `config.positives`: the image and one of its k nearest
    neighbours in the pairs file (which may lie outside `anchor_rows`), augmented only with `augment_positives`;
    a pairs file over a sample of the split trains on that sample (`config.subset` of it with a subset).
    origin: (dataset, split) of `images` when known; a pairs file made on another split or dataset is refused.
    """
    if config.positives is None:
        return AugmentedPairs(images if anchor_rows is None else images[anchor_rows], config.views, device)

    if config.positives_sha256 is not None and pairs_digest(config.positives) != config.positives_sha256:
        raise ConfigError(
            f"{config.positives}: pairs file changed since the run was configured (expected {config.positives_sha256})"
        )
    covered, table = read_neighbor_table(config.positives, len(images), origin)
    if len(covered) < len(images):  # pairs made on a sample of the split: its rows are the anchors
        anchor_rows = covered[seeded_rows(len(covered), config.subset, config.seed)]
    return NeighborPairs(images, table, config.views, device, anchor_rows=anchor_rows, augment=config.augment_positives)


def _origin(images) -> tuple[str, str] | None:
    """(dataset, split) of an ImageSet; None for a bare array, whose origin is unknown."""
    dataset, split = getattr(images, "dataset", None), getattr(images, "split", None)
    return (dataset, split) if isinstance(dataset, str) and isinstance(split, str) else None


def _images_of(images) -> np.ndarray:
    """(N, 32, 32, 3) uint8 from an array or an ImageSet."""
    return to_rgb32(getattr(images, "images", images))


def _train_rows(config: TrainConfig, images: np.ndarray) -> np.ndarray | None:
    """Rows of the training images trained on: None for all, or a seeded sorted subset of `config.subset`."""
    if len(images) < 2:
        raise ConfigError(f"{len(images)} training image(s): VICReg needs at least 2")
    if config.subset is None or config.subset >= len(images):
        return None
    return seeded_rows(len(images), config.subset, config.seed)


def _sample(images: np.ndarray, n: int | None, seed: int) -> np.ndarray:
    """`n` images drawn without replacement with `seed`, in their original order (all of them if n is None or more)."""
    return images if n is None or n >= len(images) else images[seeded_rows(len(images), n, seed)]


def _epoch_order(seed: int, epoch: int, n: int) -> torch.Tensor:
    """The shuffled row order of one epoch: a function of (seed, epoch) only, so a resume can recompute it."""
    generator = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
    return torch.randperm(n, generator=generator)


def _new_session(config: TrainConfig, device: torch.device) -> _Session:
    torch.manual_seed(config.seed)
    encoder = build_encoder(config.encoder, config.dim).to(device)
    projector = build_projector(config.dim, config.projector_dim, config.projector_dim).to(device)
    encoder.preprocessing = _preprocessing(config)
    if device.type in ("cuda", "cpu"):  # channels-last convolutions: about 1.3x faster steps on 2 CPU cores too
        encoder = encoder.to(memory_format=torch.channels_last)
    modules = [encoder, projector]
    decay = [p for m in modules for p in m.parameters() if p.ndim > 1]
    no_decay = [p for m in modules for p in m.parameters() if p.ndim <= 1]
    groups = [
        {"params": decay, "weight_decay": config.weight_decay, "lars": True},
        {"params": no_decay, "weight_decay": 0.0, "lars": False},
    ]
    if config.optimizer == "lars":
        optimizer = LARS(groups, lr=config.lr)
    else:
        adam = torch.optim.AdamW if config.weight_decay else torch.optim.Adam
        optimizer = adam(groups, lr=config.lr)
    generator = torch.Generator(device=device).manual_seed(config.seed)
    return _Session(encoder, projector, optimizer, generator)


def _train_step(session: _Session, source: PairSource, rows: torch.Tensor, lr: float, config: TrainConfig) -> dict:
    """One optimiser step on the batch `rows`; returns the unweighted terms and total as floats."""
    for group in session.optimizer.param_groups:
        group["lr"] = lr
    a, b = source.pair(rows, session.generator)
    with _autocast(config, a.device):
        z1 = session.projector(session.encoder(a))
        z2 = session.projector(session.encoder(b))
    terms = vicreg_loss(z1, z2, config.lam, config.mu, config.nu)
    session.optimizer.zero_grad(set_to_none=True)
    terms.total.backward()
    session.optimizer.step()
    return terms.as_floats()


@torch.no_grad()
def _evaluate(
    session: _Session,
    source: PairSource,
    batch: int,
    config: TrainConfig,
    epoch: int,
    on_progress: ProgressFn | None = None,
) -> dict:
    """Mean loss terms over the test sample, in eval mode, with views drawn from a (seed, epoch) generator;
    `on_progress(images done, test images)` after each batch."""
    device = next(session.encoder.parameters()).device
    generator = torch.Generator(device=device).manual_seed(config.seed * 1_000_003 + epoch + 7)
    session.encoder.eval()
    session.projector.eval()
    sums, count = {}, 0
    try:
        for start in range(0, len(source) - 1, batch):
            rows = torch.arange(start, min(start + batch, len(source)))
            if len(rows) < 2:
                break
            a, b = source.pair(rows, generator)
            with _autocast(config, a.device):
                z1, z2 = session.projector(session.encoder(a)), session.projector(session.encoder(b))
            for key, value in vicreg_loss(z1, z2, config.lam, config.mu, config.nu).as_floats().items():
                sums[key] = sums.get(key, 0.0) + value * len(rows)
            count += len(rows)
            if on_progress is not None:
                on_progress(count, len(source))
    finally:
        session.encoder.train()
        session.projector.train()
    return {key: value / count for key, value in sums.items()}


def _autocast(config: TrainConfig, device: torch.device):
    enabled = config.amp and bf16_native(device)
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=enabled)


def _preprocessing(config: TrainConfig) -> dict:
    """What `encode` must do to an image before the encoder: resize to `size` RGB, then normalise."""
    return {"size": config.views.size, "mean": list(config.views.mean), "std": list(config.views.std)}


def _restore(session: _Session, config: TrainConfig, path: Path) -> None:
    """Load weights, optimiser, step and RNG states from `path`; the config must match except for `epochs`."""
    payload = read_checkpoint(path)
    saved = TrainConfig.from_dict(payload["config"])
    if replace(saved, epochs=config.epochs) != config:
        raise ConfigError(f"{path}: made with another training config; resume with that config (or a new run)")
    for key in ("projector_state", "optimizer_state", "rng"):
        if key not in payload:
            raise CheckpointError(f"{path}: lacks {key}, so training cannot resume from it")
    session.encoder.load_state_dict(payload["encoder_state"])
    session.projector.load_state_dict(payload["projector_state"])
    session.optimizer.load_state_dict(payload["optimizer_state"])
    session.generator.set_state(payload["rng"]["views"])
    torch.set_rng_state(payload["rng"]["torch"])
    session.step = int(payload["step"])


def _truncate_log(log_path: Path, step: int) -> None:
    """Keep the log lines up to `step`, the checkpoint a run (re)starts from: lines written after it, and a line
    cut short by a killed process, are dropped."""
    if not log_path.exists():
        return
    kept = []
    for line in log_path.read_text().splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(record, dict) and isinstance(record.get("step"), int) and record["step"] <= step:
            kept.append(line)
    log_path.write_text("".join(line + "\n" for line in kept))
