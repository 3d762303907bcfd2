"""The VICReg views, computed for a whole batch at once on the training device.

Per-image PIL pipelines starve the model on a 2-core machine, so every transform here is a handful of tensor ops over
the batch, each image with its own random parameters drawn from an explicit `torch.Generator` (whose state goes into
the checkpoint, so a resumed run draws the same views). The recipe follows the VICReg paper for CIFAR-10:
random resized crop (scale 0.2-1), horizontal flip, colour jitter (0.4, 0.4, 0.2, 0.1) with p = 0.8, grayscale
p = 0.2, 3x3 Gaussian blur p = 0.5, optional solarization, then mean/std normalisation. Two deliberate
simplifications against torchvision: crop boxes are continuous (sub-pixel) rather than rounded, and the four jitter
operations run in a fixed order (brightness, contrast, saturation, hue) instead of a random order per image.

A `PairSource` says where the two inputs of a training step come from; `AugmentedPairs` gives two augmented views of
the same images. Other sources (a neighbour from a pairs file, free latent rows) plug into the same loop.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import torch

from embedkit.data.sources import CIFAR10_MEAN, CIFAR10_STD

# ITU-R 601-2 luma, the weights torchvision's rgb_to_grayscale uses.
_LUMA = (0.299, 0.587, 0.114)


@dataclass(frozen=True)
class ViewConfig:
    """Parameters of the VICReg views; `mean`/`std` are the normalisation every encoder input gets."""

    size: int = 32
    crop_scale: tuple[float, float] = (0.2, 1.0)
    crop_ratio: tuple[float, float] = (3 / 4, 4 / 3)
    flip_p: float = 0.5
    jitter: tuple[float, float, float, float] = (0.4, 0.4, 0.2, 0.1)  # brightness, contrast, saturation, hue
    jitter_p: float = 0.8
    gray_p: float = 0.2
    blur_p: float = 0.5
    blur_sigma: tuple[float, float] = (0.1, 2.0)
    solarize_p: float = 0.0  # solo-learn's CIFAR VICReg uses 0.1; 0 draws nothing, so older runs resume unchanged
    mean: tuple[float, float, float] = CIFAR10_MEAN
    std: tuple[float, float, float] = CIFAR10_STD


def to_unit_float(images: torch.Tensor) -> torch.Tensor:
    """(N, H, W, C) uint8 -> (N, C, H, W) float32 in [0, 1], on the images' device."""
    return images.permute(0, 3, 1, 2).float().div_(255.0)


def normalize_batch(x: torch.Tensor, mean, std) -> torch.Tensor:
    """(N, 3, H, W) float in [0, 1] -> per-channel (x - mean) / std."""
    mean_t = torch.as_tensor(mean, dtype=x.dtype, device=x.device).view(1, -1, 1, 1)
    std_t = torch.as_tensor(std, dtype=x.dtype, device=x.device).view(1, -1, 1, 1)
    return (x - mean_t) / std_t


def make_views(x: torch.Tensor, config: ViewConfig, generator: torch.Generator) -> torch.Tensor:
    """One random VICReg view of each image.

    x: (N, 3, H, W) float in [0, 1] on the generator's device. Returns (N, 3, size, size) float32, normalised with
    `config.mean`/`config.std`. Each image draws its own crop, flip, jitter, grayscale, blur and solarization.
    """
    x = _crop_and_flip(x, config, generator)
    x = _color_jitter(x, config, generator)
    gray = _uniform(generator, (x.shape[0],), 0.0, 1.0) < config.gray_p
    x = torch.where(gray.view(-1, 1, 1, 1), _grayscale(x).expand_as(x), x)
    x = _gaussian_blur_3x3(x, config, generator)
    if config.solarize_p > 0:
        x = _solarize(x, config, generator)
    return normalize_batch(x, config.mean, config.std)


class PairSource(Protocol):
    """Where the two inputs of a training step come from: `pair(rows)` -> (inputs_a, inputs_b) for the model."""

    def __len__(self) -> int: ...

    def pair(self, rows: torch.Tensor, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]: ...


class AugmentedPairs:
    """Two independent augmented views of the same images (plain VICReg)."""

    def __init__(self, images: np.ndarray, config: ViewConfig, device: torch.device):
        """images: (N, H, W, 3) uint8, kept on `device` so views are made where the model runs."""
        self.images = torch.from_numpy(np.ascontiguousarray(images)).to(device)
        self.config = config

    def __len__(self) -> int:
        return self.images.shape[0]

    def pair(self, rows: torch.Tensor, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """rows: (B,) int64 -> two (B, 3, size, size) float32 views."""
        x = to_unit_float(self.images[rows.to(self.images.device)])
        return make_views(x, self.config, generator), make_views(x, self.config, generator)


def _uniform(generator: torch.Generator, shape, low: float, high: float) -> torch.Tensor:
    return torch.rand(shape, generator=generator, device=generator.device) * (high - low) + low


def _crop_and_flip(x: torch.Tensor, config: ViewConfig, generator: torch.Generator) -> torch.Tensor:
    """Random resized crop and horizontal flip: bilinear resampling written as two batched matrix products."""
    n, _, h, w = x.shape
    # Ten candidate boxes per image, as torchvision tries; the first that fits wins, else the whole image.
    area = _uniform(generator, (n, 10), *config.crop_scale) * (h * w)
    log_ratio = _uniform(generator, (n, 10), math.log(config.crop_ratio[0]), math.log(config.crop_ratio[1]))
    box_w, box_h = torch.sqrt(area * log_ratio.exp()), torch.sqrt(area / log_ratio.exp())
    fits = (box_w <= w) & (box_h <= h)
    first = fits.float().argmax(dim=1, keepdim=True)
    any_fits = fits.any(dim=1)
    box_w = torch.where(any_fits, box_w.gather(1, first).squeeze(1), torch.full_like(box_w[:, 0], w))
    box_h = torch.where(any_fits, box_h.gather(1, first).squeeze(1), torch.full_like(box_h[:, 0], h))
    left = _uniform(generator, (n,), 0.0, 1.0) * (w - box_w)
    top = _uniform(generator, (n,), 0.0, 1.0) * (h - box_h)
    flip = _uniform(generator, (n,), 0.0, 1.0) < config.flip_p
    rows = _resample_matrix(top, box_h, h, config.size, torch.zeros_like(flip))  # (N, size, H)
    cols = _resample_matrix(left, box_w, w, config.size, flip)  # (N, size, W)
    return _apply_separable(x, rows, cols)


def _apply_separable(x: torch.Tensor, rows: torch.Tensor, cols: torch.Tensor) -> torch.Tensor:
    """Per-image separable linear map: (N, C, H, W) -> (N, C, S, T) with rows (N, S, H), cols (N, T, W)."""
    # Two einsums lower to batched matmuls over whole images, far faster than one tiny matmul per channel.
    return torch.einsum("nchw,ntw->ncht", torch.einsum("nsh,nchw->ncsw", rows, x), cols)


def _resample_matrix(start, length, extent: int, size: int, flip) -> torch.Tensor:
    """(N, size, extent) bilinear weights that sample `size` pixel centres evenly over [start, start + length).

    Bilinear like `grid_sample(..., align_corners=False)` with the box's edge pixels repeated outside it;
    `flip` (N,) bool reverses the order.
    """
    centres = (torch.arange(size, dtype=start.dtype, device=start.device) + 0.5) / size  # (size,) in (0, 1)
    centres = torch.where(flip.view(-1, 1), 1 - centres, centres)
    start, length = start.view(-1, 1), length.view(-1, 1)
    # Clamped to the box's own edge pixels, like torchvision's crop-then-resize (exact for integer boxes).
    source = torch.minimum(torch.maximum(start + length * centres - 0.5, start), start + length - 1)
    source = source.clamp(0, extent - 1)  # (N, size) source pixel coordinates
    pixels = torch.arange(extent, dtype=start.dtype, device=start.device)
    return (1 - (source.unsqueeze(2) - pixels).abs()).clamp_min_(0)


def _grayscale(x: torch.Tensor) -> torch.Tensor:
    """(N, 3, H, W) -> (N, 1, H, W) luma."""
    r, g, b = x.unbind(dim=1)
    return (_LUMA[0] * r + _LUMA[1] * g + _LUMA[2] * b).unsqueeze(1)


def _color_jitter(x: torch.Tensor, config: ViewConfig, generator: torch.Generator) -> torch.Tensor:
    """Brightness, contrast, saturation, hue with per-image factors; images not drawn (1 - p) keep identity factors."""
    n = x.shape[0]
    b, c, s, hue = config.jitter
    applied = _uniform(generator, (n,), 0.0, 1.0) < config.jitter_p

    def factor(low: float, high: float, identity: float) -> torch.Tensor:
        drawn = _uniform(generator, (n,), low, high)
        return torch.where(applied, drawn, torch.full_like(drawn, identity)).view(-1, 1, 1, 1)

    brightness = factor(max(0.0, 1 - b), 1 + b, 1.0)
    contrast = factor(max(0.0, 1 - c), 1 + c, 1.0)
    saturation = factor(max(0.0, 1 - s), 1 + s, 1.0)
    hue_shift = factor(-hue, hue, 0.0)
    x = (x * brightness).clamp_(0, 1)
    mean_luma = _grayscale(x).mean(dim=(2, 3), keepdim=True)
    x = (mean_luma + contrast * (x - mean_luma)).clamp_(0, 1)
    luma = _grayscale(x)
    x = (luma + saturation * (x - luma)).clamp_(0, 1)
    return _shift_hue(x, hue_shift.view(-1, 1, 1))


def _shift_hue(x: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
    """Rotate the HSV hue of (N, 3, H, W) images in [0, 1] by `shift` turns, (N, 1, 1) in [-0.5, 0.5]."""
    r, g, b = x.unbind(dim=1)
    # Element-wise max/min over the three planes: much faster on CPU than a reduction over dim 1.
    value = torch.maximum(torch.maximum(r, g), b)
    delta = value - torch.minimum(torch.minimum(r, g), b)
    safe = delta.clamp_min(1e-8)
    hue6 = torch.where(value == r, (g - b) / safe, torch.where(value == g, 2.0 + (b - r) / safe, 4.0 + (r - g) / safe))
    hue6 = torch.remainder(hue6 + 6.0 * shift, 6.0)
    # HSV -> RGB: channel n in (5, 3, 1) is V - (V - min) clamp(min(k, 4 - k), 0, 1), k = (n + 6 H) mod 6.
    offsets = torch.tensor([5.0, 3.0, 1.0], dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    k = torch.fmod(offsets + hue6.unsqueeze(1), 6.0)
    ramp = torch.minimum(k, 4.0 - k).clamp_(0, 1)
    return value.unsqueeze(1) - delta.unsqueeze(1) * ramp


def _gaussian_blur_3x3(x: torch.Tensor, config: ViewConfig, generator: torch.Generator) -> torch.Tensor:
    """Separable 3x3 Gaussian blur with reflect borders, sigma drawn per image; undrawn images get the identity."""
    n, _, h, w = x.shape
    sigma = _uniform(generator, (n,), *config.blur_sigma)
    applied = _uniform(generator, (n,), 0.0, 1.0) < config.blur_p
    side = torch.exp(-1.0 / (2 * sigma**2)) * applied  # weight of each neighbour relative to the centre
    return _apply_separable(x, _blur_matrix(side, h), _blur_matrix(side, w))


def _solarize(x: torch.Tensor, config: ViewConfig, generator: torch.Generator) -> torch.Tensor:
    """Invert the pixels at or above half intensity, in the images drawn with probability `solarize_p`."""
    applied = _uniform(generator, (x.shape[0],), 0.0, 1.0) < config.solarize_p
    return torch.where(applied.view(-1, 1, 1, 1) & (x >= 0.5), 1.0 - x, x)


def _blur_matrix(side: torch.Tensor, extent: int) -> torch.Tensor:
    """(N, extent, extent) tridiagonal kernel [side, 1, side] / (1 + 2 side) with reflected borders."""
    eye = torch.eye(extent, dtype=side.dtype, device=side.device)
    neighbours = eye.roll(1, dims=1) + eye.roll(-1, dims=1)
    neighbours[0, -1] = neighbours[-1, 0] = 0.0  # no wrap-around: reflection doubles the inner neighbour
    neighbours[0, 1] = neighbours[-1, -2] = 2.0
    side = side.view(-1, 1, 1)
    return (eye + side * neighbours) / (1 + 2 * side)
