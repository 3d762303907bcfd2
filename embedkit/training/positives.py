"""Neighbour positives: each training image is paired with one of its k nearest neighbours instead of a view of itself.

The neighbours come from a pairs file that `embedkit pairs` (`embedkit.search.index.make_pairs`) wrote on another
model's store of the train split: datasets ids (N,), neighbor_ids (N, k), neighbor_rows (N, k), distances (N, k).
Store ids are row positions in the train split, so `neighbor_ids` index the training images directly.
`NeighborPairs` draws which of the k neighbours is the positive with the session's generator, so a resumed run
draws the same positives.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from embedkit.data.sources import KNOWN_DATASETS
from embedkit.errors import ConfigError
from embedkit.store.schema import check_declared_size
from embedkit.training.views import ViewConfig, make_views, normalize_batch, to_unit_float


def read_neighbor_table(
    path: Path | str, n_images: int, source: tuple[str, str] | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """(covered (M,), table (n_images, k)) int64: the rows the pairs file has neighbours for (sorted), and in
    row r of the table the train-split rows of image r's k nearest neighbours (-1 for rows not covered).

    A file made on a store of a sample of the split (`encode --subset`) covers only those rows.
    source: (dataset, split) of the training images, when known, checked against the store group the pairs were
    made on (`<dataset>/<split>` by the store's naming).
    Raises ConfigError (one line, naming the file) if the pairs file is missing, unreadable, malformed, made on
    another split or dataset, or names rows outside the `n_images` rows of the training split.
    """
    import h5py

    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: pairs file not found (make one with `embedkit pairs`)")
    try:
        with h5py.File(path, "r", locking=False) as h5:
            missing = [name for name in ("ids", "neighbor_ids") if name not in h5]
            if missing:
                raise ConfigError(f"{path}: not a pairs file (no dataset {missing[0]!r})")
            for name in ("ids", "neighbor_ids"):  # a hostile header must not make us allocate terabytes
                check_declared_size(str(path), name, h5[name])
            ids, neighbours = np.asarray(h5["ids"][:], np.int64), np.asarray(h5["neighbor_ids"][:], np.int64)
            group = h5.attrs.get("group")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the pairs file ({exc})") from None
    if source is not None and isinstance(group, str):
        _check_source(path, group, source)
    _check_table(path, ids, neighbours, n_images)
    table = np.full((n_images, neighbours.shape[1]), -1, dtype=np.int64)
    table[ids] = neighbours
    return np.sort(ids), table


def _check_source(path: Path, group: str, source: tuple[str, str]) -> None:
    """ConfigError if the pairs' group `<dataset>/<split>` names another split, or another known dataset, than
    `source`: its row numbers would silently pick the wrong images as positives."""
    dataset, split = source
    made_dataset, _, made_split = group.rpartition("/")
    other_split = made_split in ("train", "test") and made_split != split
    other_dataset = made_dataset in KNOWN_DATASETS and made_dataset != dataset
    if other_split or other_dataset:
        raise ConfigError(
            f"{path}: pairs made on store group '{group}', but training uses the {split} split of "
            f"{dataset} (make the pairs on a store of that split)"
        )


def _check_table(path: Path, ids: np.ndarray, neighbours: np.ndarray, n_images: int) -> None:
    if ids.ndim != 1 or neighbours.ndim != 2 or len(neighbours) != len(ids) or neighbours.shape[1] < 1:
        raise ConfigError(f"{path}: malformed pairs file (ids {ids.shape}, neighbor_ids {neighbours.shape})")
    if len(ids) > n_images or (len(ids) and (ids.min() < 0 or ids.max() >= n_images)):
        raise ConfigError(
            f"{path}: pairs for {len(ids)} images up to row {ids.max()}, but the training split has "
            f"{n_images} (make the pairs on a store of the same train split)"
        )
    if len(np.unique(ids)) != len(ids):
        raise ConfigError(f"{path}: ids repeat; a pairs file lists each row of the training split once")
    if neighbours.min() < 0 or neighbours.max() >= n_images:
        raise ConfigError(f"{path}: neighbor_ids outside the training split's rows 0..{n_images - 1}")


class NeighborPairs:
    """A `PairSource` whose positive for each anchor is a random one of its k nearest neighbours."""

    def __init__(
        self,
        images: np.ndarray,
        neighbours: np.ndarray,
        config: ViewConfig,
        device: torch.device,
        *,
        anchor_rows: np.ndarray | None = None,
        augment: bool = False,
    ):
        """images: (N, H, W, 3) uint8, the whole train split; neighbours: (N, k) rows into `images` (-1: none).

        anchor_rows: the rows trained on (a `--subset`), None for all; their positives may be any train image.
        augment: False gives both sides plain resize + normalisation; True gives both sides the VICReg views.
        """
        self.images = torch.from_numpy(np.ascontiguousarray(images)).to(device)
        self.neighbours = torch.from_numpy(np.ascontiguousarray(neighbours, dtype=np.int64)).to(device)
        rows = np.arange(len(images)) if anchor_rows is None else np.asarray(anchor_rows, dtype=np.int64)
        self.anchors = torch.from_numpy(rows).to(device)
        self.config, self.augment = config, augment

    def __len__(self) -> int:
        return self.anchors.shape[0]

    def positive_rows(self, rows: torch.Tensor, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """(anchor rows, positive rows) in the train split for the batch `rows` (B,) of this source."""
        anchors = self.anchors[rows.to(self.anchors.device)]
        pick = torch.randint(self.neighbours.shape[1], (len(anchors),), generator=generator, device=generator.device)
        return anchors, self.neighbours[anchors, pick.to(anchors.device)]

    def pair(self, rows: torch.Tensor, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """rows: (B,) int64 -> (anchors, positives), each (B, 3, size, size) float32 ready for the encoder."""
        anchors, positives = self.positive_rows(rows, generator)
        return self._view(anchors, generator), self._view(positives, generator)

    def _view(self, rows: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        x = to_unit_float(self.images[rows])
        if self.augment:
            return make_views(x, self.config, generator)
        if x.shape[-1] != self.config.size:  # the same resize `encode` applies
            x = F.interpolate(x, size=self.config.size, mode="bilinear", align_corners=False, antialias=True)
        return normalize_batch(x, self.config.mean, self.config.std)
