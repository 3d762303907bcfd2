"""Encoders and projector shapes; checkpoints round-trip and reject anything that is not a good checkpoint."""

from __future__ import annotations

import pytest
import torch

from embedkit.errors import CheckpointError
from embedkit.training.models import (
    ResNet18Encoder,
    build_encoder,
    build_projector,
    checkpoint_payload,
    file_digest,
    load_checkpoint,
    read_checkpoint,
    save_checkpoint,
)

PREP = {"size": 32, "mean": [0.5, 0.5, 0.5], "std": [0.25, 0.25, 0.25]}


@pytest.fixture(autouse=True)
def _one_thread():
    torch.set_num_threads(1)
    torch.manual_seed(0)


@pytest.mark.parametrize("kind", ["small", "resnet18"])
def test_encoders_map_images_to_dim(kind):
    encoder = build_encoder(kind, dim=16).eval()
    assert encoder.kind == kind and encoder.dim == 16
    with torch.no_grad():
        out = encoder(torch.randn(2, 3, 32, 32))
    assert out.shape == (2, 16) and out.dtype == torch.float32


def test_resnet18_is_adapted_to_32x32():
    encoder = ResNet18Encoder()
    conv1 = encoder.backbone.conv1
    assert conv1.kernel_size == (3, 3) and conv1.stride == (1, 1)
    assert isinstance(encoder.backbone.maxpool, torch.nn.Identity)
    assert encoder.head[0].num_features == 512 and encoder.head[2].out_features == 128


def test_small_encoder_is_five_convolutions_pooled_to_4x4():
    encoder = build_encoder("small").eval()
    convs = [m for m in encoder.backbone if isinstance(m, torch.nn.Conv2d)]
    assert [c.out_channels for c in convs] == [32, 64, 128, 256, 256]
    assert all(c.kernel_size == (3, 3) and c.stride == (1, 1) for c in convs)
    maps = []
    hook = encoder.backbone[-3].register_forward_hook(lambda module, inputs, output: maps.append(inputs[0].shape))
    with torch.no_grad():
        encoder(torch.randn(1, 3, 32, 32))
    hook.remove()
    assert maps == [(1, 256, 4, 4)]  # the last ReLU's output, just before global average pooling
    assert 0.9e6 < sum(p.numel() for p in encoder.parameters()) < 1.1e6


def test_projector_is_three_linear_layers_to_512():
    projector = build_projector(128).eval()
    linears = [m for m in projector if isinstance(m, torch.nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linears] == [(128, 512), (512, 512), (512, 512)]
    assert projector(torch.randn(3, 128)).shape == (3, 512)


def test_unknown_kind_is_an_error():
    with pytest.raises(CheckpointError, match="unknown encoder kind 'vit'"):
        build_encoder("vit")


def _saved(tmp_path, encoder=None, **extra):
    encoder = encoder or build_encoder("small", dim=8)
    path = tmp_path / "ckpt.pt"
    save_checkpoint(path, checkpoint_payload(encoder, {"encoder": "small", "seed": 3}, PREP, step=5, **extra))
    return path, encoder


def test_checkpoint_round_trip_gives_same_outputs_config_and_preprocessing(tmp_path):
    path, encoder = _saved(tmp_path, epoch=1)
    loaded, config = load_checkpoint(path)
    x = torch.randn(4, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(encoder.eval()(x), loaded(x))
    assert not loaded.training
    assert config["seed"] == 3 and config["preprocessing"] == PREP
    assert loaded.preprocessing == PREP
    assert read_checkpoint(path)["step"] == 5
    assert [p.name for p in tmp_path.iterdir()] == ["ckpt.pt"]  # the atomic write left no temp file
    assert file_digest(path).startswith("sha256:") and len(file_digest(path)) == 7 + 64


def test_corrupt_file_is_a_checkpoint_error(tmp_path):
    path, _ = _saved(tmp_path)
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(CheckpointError, match="not a readable checkpoint"):
        load_checkpoint(path)
    with pytest.raises(CheckpointError, match="checkpoint not found"):
        load_checkpoint(tmp_path / "missing.pt")


def test_flipped_bytes_inside_the_weights_are_detected(tmp_path):
    path, _ = _saved(tmp_path)
    data = bytearray(path.read_bytes())
    middle = len(data) // 2
    data[middle : middle + 64] = bytes(255 - b for b in data[middle : middle + 64])
    path.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="damaged checkpoint|not a readable checkpoint"):
        load_checkpoint(path)
    with pytest.raises(CheckpointError, match="is a folder"):
        load_checkpoint(tmp_path)


def test_other_torch_files_and_bad_contents_are_rejected(tmp_path):
    other = tmp_path / "other.pt"
    torch.save({"weights": torch.zeros(3)}, other)
    with pytest.raises(CheckpointError, match="not an embedkit checkpoint"):
        load_checkpoint(other)
    path, _ = _saved(tmp_path)
    payload = torch.load(path, weights_only=True)
    for key, value, message in [
        ("encoder", {"kind": "vit", "dim": 8}, "unknown encoder kind 'vit'"),
        ("encoder", {"kind": "resnet18", "dim": 8}, "weights do not fit a resnet18 encoder"),
        ("version", 99, "checkpoint version 99"),
        ("version", 1, "version-1 checkpoint of the former 7-layer small encoder"),
    ]:
        torch.save({**payload, key: value}, other)
        with pytest.raises(CheckpointError, match=message):
            load_checkpoint(other)
    torch.save({k: v for k, v in payload.items() if k != "config"}, other)
    with pytest.raises(CheckpointError, match="lacks config"):
        load_checkpoint(other)
