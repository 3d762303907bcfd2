"""Encode images with a trained encoder, in batches, and stream the embeddings into the store with provenance."""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from embedkit._util.progress import ProgressFn
from embedkit._util.sampling import seeded_rows
from embedkit.data.sources import (
    CIFAR10_MEAN,
    CIFAR10_STD,
    check_subset_size,
    image_digest,
    load_images,
    normalize,
    to_float_tensor,
    to_rgb32,
)
from embedkit.device import pick_device
from embedkit.errors import ConfigError, StoreError
from embedkit.search.engines import check_engine, load_ray, ordered_results, ray_session
from embedkit.store.store import open_store
from embedkit.training.models import file_digest, load_checkpoint

DEFAULT_PREPROCESSING = {"size": 32, "mean": list(CIFAR10_MEAN), "std": list(CIFAR10_STD)}
RAY_BLOCK_BATCHES = 4  # batches per Ray actor call: amortises the call's overhead, keeps every actor fed


def encode_images(
    encoder: torch.nn.Module,
    images: np.ndarray,
    *,
    batch_size: int = 512,
    device: str = "auto",
    on_progress: ProgressFn | None = None,
) -> np.ndarray:
    """(N, H, W, C) uint8 images -> (N, D) float32 embeddings, in eval mode without gradients.

    Images go through `to_rgb32` and the encoder's `preprocessing` (resize to its training size, normalise with
    its mean/std; a checkpoint's encoder carries it, the CIFAR-10 statistics otherwise).

        >>> import embedkit
        >>> from embedkit.data import load_images
        >>> from embedkit.training import load_checkpoint
        >>> encoder, config = load_checkpoint("embedkit-work/runs/vicreg-cpu/last.pt")   # doctest: +SKIP
        >>> embedkit.encode(encoder, load_images("cifar10", "test").images).shape      # doctest: +SKIP
        (10000, 128)
    """
    chunks = list(iter_embeddings(encoder, images, batch_size=batch_size, device=device, on_progress=on_progress))
    if not chunks:
        return np.zeros((0, encoder.dim), dtype=np.float32)
    return np.concatenate(chunks)


def check_batch_size(batch_size: int) -> None:
    """ConfigError for a batch size below 1: 0 never advances, a negative one encodes nothing yet 'succeeds'."""
    if batch_size < 1:
        raise ConfigError(f"batch size {batch_size}: must be at least 1")


def iter_embeddings(
    encoder: torch.nn.Module,
    images: np.ndarray,
    *,
    batch_size: int = 512,
    device: str = "auto",
    on_progress: ProgressFn | None = None,
    done_before: int = 0,
    total: int | None = None,
) -> Iterator[np.ndarray]:
    """Like `encode_images`, one (batch, D) float32 array at a time; progress counts from `done_before`.

    Raises ConfigError for a batch size below 1.
    """
    check_batch_size(batch_size)
    prep = getattr(encoder, "preprocessing", None) or DEFAULT_PREPROCESSING
    torch_device = pick_device(device)
    encoder = encoder.to(torch_device).eval()
    if torch_device.type in ("cuda", "cpu"):
        encoder = encoder.to(memory_format=torch.channels_last)
    images = to_rgb32(images)
    total = len(images) if total is None else total
    with torch.inference_mode():
        for start in range(0, len(images), batch_size):
            x = to_float_tensor(images[start : start + batch_size]).to(torch_device)
            if x.shape[-1] != prep["size"]:
                x = F.interpolate(x, size=prep["size"], mode="bilinear", align_corners=False, antialias=True)
            x = normalize(x, tuple(prep["mean"]), tuple(prep["std"]))
            yield encoder(x).float().cpu().numpy()
            if on_progress is not None:
                on_progress(done_before + min(start + batch_size, len(images)), total)


class RayEncoderPool:
    """A pool of Ray actors holding the encoder, in an open Ray session (`embedkit.search.engines.ray_session`).

    The encoder's weights go into Ray's object store once; each actor (one per GPU where the cluster has GPUs,
    else one per CPU) builds the encoder from them once. `embeddings` is `iter_embeddings` on the pool: blocks of
    `RAY_BLOCK_BATCHES` batches, back in row order, equal to the local embeddings to float rounding (the batches
    are cut at other rows). Use it as a context manager: leaving it stops the actors.
    """

    def __init__(self, encoder: torch.nn.Module, *, batch_size: int = 512, device: str = "auto") -> None:
        check_batch_size(batch_size)
        ray = load_ray()
        resources = ray.cluster_resources()
        gpus = int(resources.get("GPU", 0))
        weights = ray.put(
            {
                "kind": encoder.kind,
                "dim": encoder.dim,
                "state": {k: v.detach().cpu() for k, v in encoder.state_dict().items()},
                "preprocessing": getattr(encoder, "preprocessing", None) or DEFAULT_PREPROCESSING,
            }
        )
        actor_class = ray.remote(num_cpus=1, num_gpus=1 if gpus else 0)(_EncoderActor)
        n_actors = gpus or max(1, int(resources.get("CPU", 1)))
        self.actors = [actor_class.remote(weights, device, batch_size) for _ in range(n_actors)]
        self.block, self.ray = batch_size * RAY_BLOCK_BATCHES, ray

    def embeddings(
        self,
        images: np.ndarray,
        *,
        on_progress: ProgressFn | None = None,
        done_before: int = 0,
        total: int | None = None,
    ) -> Iterator[np.ndarray]:
        """(N, H, W, C) uint8 images -> (block, D) float32 embeddings, in row order; progress as `iter_embeddings`."""
        images = to_rgb32(images)
        total = len(images) if total is None else total
        starts = list(range(0, len(images), self.block))

        def submit(i: int):
            return self.actors[i % len(self.actors)].encode.remote(images[starts[i] : starts[i] + self.block])

        done = done_before
        for embeddings in ordered_results(submit, len(starts), in_flight=2 * len(self.actors), force_cancel=False):
            yield embeddings
            done += len(embeddings)
            if on_progress is not None:
                on_progress(done, total)

    def __enter__(self) -> RayEncoderPool:
        return self

    def __exit__(self, *exc) -> None:
        for actor in self.actors:
            self.ray.kill(actor)


class _EncoderActor:
    """A Ray actor holding one encoder, built once from the weights the driver put in the object store."""

    def __init__(self, weights: dict, device: str, batch_size: int) -> None:
        from embedkit.training.models import build_encoder

        self.encoder = build_encoder(weights["kind"], int(weights["dim"]))
        self.encoder.load_state_dict(weights["state"])
        self.encoder.preprocessing = dict(weights["preprocessing"])
        self.device, self.batch_size = device, batch_size

    def encode(self, images: np.ndarray) -> np.ndarray:
        return encode_images(self.encoder, images, batch_size=self.batch_size, device=self.device)


@contextlib.contextmanager
def _embedder(engine: str, encoder: torch.nn.Module, batch_size: int, device: str) -> Iterator[Callable]:
    """`embed(images, on_progress=, done_before=, total=)` -> embedding batches: here, or on a Ray actor pool."""
    if engine == "local":
        yield functools.partial(iter_embeddings, encoder, batch_size=batch_size, device=device)
        return
    with RayEncoderPool(encoder, batch_size=batch_size, device=device) as pool:
        yield pool.embeddings


def encode_to_store(
    checkpoint: Path,
    dataset: str,
    splits: list[str],
    store_path: Path,
    *,
    data_root: Path | None = None,
    device: str = "auto",
    batch_size: int = 512,
    overwrite: bool = False,
    subset: int | None = None,
    seed: int = 0,
    download: bool = False,
    engine: str = "local",
    ray_address: str | None = None,
    on_progress: ProgressFn | None = None,
) -> list[str]:
    """Encode each split of `dataset` with the checkpoint's encoder into group `<dataset>/<split>` of the store.

    `subset`: encode only that many images of each split, drawn with `seed` (ids keep their rows in the split).
    `download`: fetch a missing CIFAR-10 or MNIST split with torchvision first.
    `engine="ray"`: the images are encoded by a pool of Ray actors (`RayEncoderPool`; `ray_address` as in
    `embedkit.search.engines.ray_session`), and written here, in row order, by this process alone.

    Groups carry provenance attrs: checkpoint (path), checkpoint_digest (sha256), config (JSON), dataset, split,
    class_names, source (the absolute path the images were read from), source_digest (`image_digest`) and, with
    `subset`, subset and subset_seed (the options that chose the rows). An
    existing group is an error unless `overwrite`; the groups are written in one transaction.
    Returns the group names written.
    """
    check_subset_size(subset)
    check_batch_size(batch_size)  # before anything is loaded or the store is created
    check_engine(engine, ray_address)
    checkpoint = Path(checkpoint)
    encoder, config = load_checkpoint(checkpoint)
    store = open_store(store_path, create=True)
    image_sets = [load_images(dataset, split, data_root, download=download) for split in splits]
    groups = [f"{image_set.dataset}/{image_set.split}" for image_set in image_sets]
    taken = [group for group in groups if group in store] if not overwrite else []
    if taken:
        raise StoreError(f"{store.path}: group '{taken[0]}' already exists (pass --overwrite to replace it)")
    provenance = {
        "checkpoint": str(checkpoint.resolve()),
        "checkpoint_digest": file_digest(checkpoint),
        "config": config,  # stored as JSON text, read back as a dict
        **({"subset": subset, "subset_seed": seed} if subset is not None else {}),  # which rows: every option
    }
    rows = [seeded_rows(len(s.images), subset, seed) for s in image_sets]
    total, done = sum(len(r) for r in rows), 0
    session = ray_session(ray_address) if engine == "ray" else contextlib.nullcontext()
    with (
        session,
        store.transaction(groups, overwrite=overwrite) as transaction,  # every split lands, or none
        _embedder(engine, encoder, batch_size, device) as embed,
    ):
        for image_set, group, split_rows in zip(image_sets, groups, rows):
            attrs = {
                **provenance,
                "dataset": image_set.dataset,
                "split": image_set.split,
                "class_names": list(image_set.class_names),
                "source": str(Path(image_set.source).absolute()),
                "source_digest": image_digest(image_set),
            }
            images = image_set.images if subset is None else image_set.images[split_rows]
            writer = transaction.new_group(group, encoder.dim, attrs, expected_rows=len(images))
            batches = embed(images, on_progress=on_progress, done_before=done, total=total)
            start = 0
            with contextlib.closing(batches):  # a failed write stops the Ray actors at once
                for embeddings in batches:
                    ids = split_rows[start : start + len(embeddings)]
                    writer.append(embeddings, image_set.labels[ids], ids)
                    start += len(embeddings)
            done += len(images)
    return groups
