"""Synthetic data shared by the evaluation tests: labelled Gaussian blobs and a tiny image folder."""

from __future__ import annotations

from pathlib import Path

import numpy as np

CLASS_NAMES = ("ant", "bee", "cat")


def blobs(
    rng: np.random.Generator, n_per_class: int, n_classes: int, dim: int, spread: float
) -> tuple[np.ndarray, np.ndarray]:
    """(N, dim) float32 points around `n_classes` random centres (scale `spread`), and their (N,) labels."""
    centres = rng.normal(size=(n_classes, dim)) * spread
    labels = np.repeat(np.arange(n_classes), n_per_class)
    return (centres[labels] + rng.normal(size=(len(labels), dim))).astype(np.float32), labels


def make_image_folder(root: Path, n_per_class: int, split: str = "test", size: int = 8) -> Path:
    """An image folder root/<split>/<class>/NNN.png with distinct images (each image's pixels hold its number)."""
    from PIL import Image

    number = 0
    for name in CLASS_NAMES:
        folder = root / split / name
        folder.mkdir(parents=True)
        for i in range(n_per_class):
            Image.new("RGB", (size, size), (number * 7 % 256, 40 * CLASS_NAMES.index(name), 200)).save(
                folder / f"{i:03d}.png"
            )
            number += 1
    return root
