"""The batched VICReg views: shape, dtype and range; per-image randomness; each op against torchvision."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch
import torchvision.transforms.v2.functional as TF

from embedkit.training.views import (
    AugmentedPairs,
    ViewConfig,
    _apply_separable,
    _gaussian_blur_3x3,
    _resample_matrix,
    _shift_hue,
    _solarize,
    make_views,
)

IDENTITY = ViewConfig(
    crop_scale=(1.0, 1.0),
    crop_ratio=(1.0, 1.0),
    flip_p=0.0,
    jitter_p=0.0,
    gray_p=0.0,
    blur_p=0.0,
    mean=(0.0, 0.0, 0.0),
    std=(1.0, 1.0, 1.0),
)


@pytest.fixture(autouse=True)
def _one_thread():
    torch.set_num_threads(1)


def _images(n: int = 16, seed: int = 0) -> torch.Tensor:
    return torch.rand(n, 3, 32, 32, generator=torch.Generator().manual_seed(seed))


def test_views_keep_shape_dtype_and_normalised_range():
    config = ViewConfig()
    views = make_views(_images(), config, torch.Generator().manual_seed(1))
    assert views.shape == (16, 3, 32, 32) and views.dtype == torch.float32
    mean, std = torch.tensor(config.mean).view(1, 3, 1, 1), torch.tensor(config.std).view(1, 3, 1, 1)
    unit = views * std + mean  # back to [0, 1] pixel values
    assert unit.min() >= -1e-5 and unit.max() <= 1 + 1e-5
    assert torch.isfinite(views).all()


def test_each_image_draws_its_own_view():
    same = _images(1).expand(8, -1, -1, -1).contiguous()
    views = make_views(same, ViewConfig(), torch.Generator().manual_seed(2))
    flat = views.flatten(1)
    distances = torch.cdist(flat, flat)
    assert (distances + torch.eye(8) * 1e9).min() > 1e-3  # no two samples got the same view


def test_same_generator_state_gives_same_views_and_other_seed_differs():
    x = _images()
    a = make_views(x, ViewConfig(), torch.Generator().manual_seed(3))
    b = make_views(x, ViewConfig(), torch.Generator().manual_seed(3))
    c = make_views(x, ViewConfig(), torch.Generator().manual_seed(4))
    assert torch.equal(a, b)
    assert not torch.allclose(a, c)


def test_identity_config_returns_input_and_flip_mirrors():
    x, g = _images(), torch.Generator().manual_seed(0)
    assert torch.allclose(make_views(x, IDENTITY, g), x, atol=1e-5)
    assert torch.allclose(make_views(x, replace(IDENTITY, flip_p=1.0), g), x.flip(-1), atol=1e-5)


def test_grayscale_makes_channels_equal():
    views = make_views(_images(), replace(IDENTITY, gray_p=1.0), torch.Generator().manual_seed(0))
    assert torch.allclose(views[:, 0], views[:, 1]) and torch.allclose(views[:, 1], views[:, 2])


def test_crop_matches_torchvision_resized_crop_for_an_integer_box():
    x = _images(4)
    top, left, height, width = 4, 8, 16, 12
    n = len(x)
    rows = _resample_matrix(
        torch.full((n,), float(top)), torch.full((n,), float(height)), 32, 32, torch.zeros(n, dtype=torch.bool)
    )
    cols = _resample_matrix(
        torch.full((n,), float(left)), torch.full((n,), float(width)), 32, 32, torch.zeros(n, dtype=torch.bool)
    )
    ours = _apply_separable(x, rows, cols)
    reference = TF.resized_crop(x, top, left, height, width, [32, 32], antialias=False)
    assert torch.allclose(ours, reference, atol=1e-5)


@pytest.mark.parametrize("shift", [-0.1, 0.03, 0.25])
def test_hue_shift_matches_torchvision(shift):
    x = _images(4)
    ours = _shift_hue(x, torch.full((4, 1, 1), shift))
    assert torch.allclose(ours, TF.adjust_hue(x, shift), atol=1e-5)


def test_blur_matches_torchvision_gaussian_blur():
    x = _images(4)
    config = ViewConfig(blur_p=1.0, blur_sigma=(0.8, 0.8))
    ours = _gaussian_blur_3x3(x, config, torch.Generator().manual_seed(0))
    assert torch.allclose(ours, TF.gaussian_blur(x, [3, 3], [0.8, 0.8]), atol=1e-5)
    assert torch.equal(_gaussian_blur_3x3(x, replace(config, blur_p=0.0), torch.Generator()), x)


def test_solarize_matches_torchvision_and_draws_per_image():
    x = _images(64)
    always = _solarize(x, ViewConfig(solarize_p=1.0), torch.Generator().manual_seed(0))
    assert torch.equal(always, TF.solarize(x, 0.5))
    some = _solarize(x, ViewConfig(solarize_p=0.5), torch.Generator().manual_seed(0))
    changed = (some != x).flatten(1).any(1)
    assert 10 < int(changed.sum()) < 54
    assert torch.equal(some[changed], TF.solarize(x[changed], 0.5)) and torch.equal(some[~changed], x[~changed])


def test_solarize_off_draws_nothing_so_older_runs_keep_their_views():
    generator, reference = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
    make_views(_images(4), ViewConfig(solarize_p=0.0), generator)
    make_views(_images(4), replace(ViewConfig(), solarize_p=1e-9), reference)
    assert not torch.equal(generator.get_state(), reference.get_state())
    assert ViewConfig().solarize_p == 0.0


def test_augmented_pairs_give_two_different_views_of_each_image():
    images = np.random.default_rng(0).integers(0, 256, (10, 32, 32, 3), dtype=np.uint8)
    source = AugmentedPairs(images, ViewConfig(), torch.device("cpu"))
    a, b = source.pair(torch.tensor([0, 3, 5]), torch.Generator().manual_seed(0))
    assert len(source) == 10 and a.shape == b.shape == (3, 3, 32, 32)
    assert not torch.allclose(a, b)
    plain = AugmentedPairs(images, IDENTITY, torch.device("cpu")).pair(torch.tensor([3]), torch.Generator())[0]
    assert torch.allclose(plain[0], torch.from_numpy(images[3]).permute(2, 0, 1).float() / 255, atol=1e-5)
