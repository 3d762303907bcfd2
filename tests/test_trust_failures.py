"""Issue 14, items 6 and 13: a failure is never reported as success, and odd inputs end in one line, not a crash.

The bad-input cases (one error line, no file changed) are in reliability_trust_failures.py; these are the
behaviours with more to check: what a diverged run leaves behind, a one-image test split, t-SNE of a collapsed
encoder's identical rows (in a subprocess, as it used to segfault), and user text printed verbatim.
"""

from __future__ import annotations

import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from reliability_world import image_folder

from embedkit.errors import ConfigError, TrainingError

REPO = Path(__file__).resolve().parent.parent
TINY = dict(epochs=2, batch_size=8, test_images=0, dim=16)


def _views():
    from embedkit.training.views import ViewConfig

    return ViewConfig(size=8)


def _finite_weights(payload: dict) -> bool:
    return all(torch.isfinite(t).all() for t in payload["encoder_state"].values() if t.is_floating_point())


def _one_error_line(output: str) -> str:
    lines = [line for line in output.splitlines() if line.strip()]
    errors = [line for line in lines if "error" in line.lower()]
    assert len(errors) == 1 and lines[-1] == errors[0] and errors[0].startswith("error: "), output
    assert "Traceback" not in output
    return errors[0]


@pytest.mark.slow
def test_a_diverging_run_fails_in_one_line_and_writes_no_nan_checkpoint(tmp_path, runner, cli_app):
    imgs = image_folder(tmp_path / "imgs", np.random.default_rng(0))
    run = tmp_path / "run"
    result = runner.invoke(
        cli_app,
        ["train", "--dataset", str(imgs), "--epochs", "1", "--lr", "1e12", "--device", "cpu", "--run-dir", str(run)],
    )
    assert result.exit_code == 1
    line = _one_error_line(result.output)
    assert "diverged at epoch 1 of 1" in line and "no checkpoint was written" in line
    assert not (run / "last.pt").exists()


@pytest.mark.slow
def test_divergence_keeps_the_last_good_checkpoint_which_is_the_shorter_runs(tmp_path, monkeypatch):
    """A loss that turns NaN in epoch 2 stops the run there; last.pt stays the epoch-1 one, bit for bit."""
    import embedkit.training.loop as train_module
    from embedkit.training.loop import make_config, train
    from embedkit.training.models import read_checkpoint

    images = np.random.default_rng(1).integers(0, 256, (16, 8, 8, 3), dtype=np.uint8)
    config = make_config("cpu", **TINY, views=_views())
    reference = train(
        make_config("cpu", **{**TINY, "epochs": 1}, views=_views()), tmp_path / "ref", images, device="cpu"
    )
    real_step = train_module._train_step

    def nan_from_step_3(session, source, rows, lr, cfg):
        terms = real_step(session, source, rows, lr, cfg)
        return {**terms, "total": math.nan} if session.step >= 2 else terms

    monkeypatch.setattr(train_module, "_train_step", nan_from_step_3)
    with pytest.raises(
        TrainingError,
        match=r"diverged at epoch 2 of 2, step 3: the loss is nan \(total\).*"
        r"last good checkpoint .*last\.pt is kept",
    ):
        train(config, tmp_path / "run", images, device="cpu")
    kept, expected = read_checkpoint(tmp_path / "run" / "last.pt"), read_checkpoint(reference.checkpoint)
    assert kept["step"] == expected["step"] == 2 and _finite_weights(kept)
    for name, tensor in expected["encoder_state"].items():
        assert torch.equal(kept["encoder_state"][name], tensor), name


@pytest.mark.parametrize(
    "name, value",
    [
        ("lr", math.inf),
        ("lam", math.inf),
        ("mu", math.nan),
        ("nu", -math.inf),
        ("weight_decay", math.nan),
        ("warmup_epochs", math.inf),
    ],
)
def test_non_finite_numbers_are_refused_before_training(name, value):
    from embedkit.baselines.latent import LatentConfig, check_latent_config
    from embedkit.training.loop import make_config

    with pytest.raises(ConfigError, match=f"{name} {value}: must be a finite number"):
        make_config("cpu", **{name: value})
    if name in ("lr", "lam", "mu", "nu"):
        with pytest.raises(ConfigError, match=f"{name} {value}: must be a finite number"):
            check_latent_config(LatentConfig(**{name: value}), 10)


def test_encode_refuses_a_batch_size_below_one():
    from embedkit.training.encode import encode_images
    from embedkit.training.models import build_encoder

    images = np.zeros((3, 8, 8, 3), np.uint8)
    for batch_size in (0, -3):  # 0 crashed in range(); -3 returned an empty (0, D) array as if all were encoded
        with pytest.raises(ConfigError, match=f"batch size {batch_size}: must be at least 1"):
            encode_images(build_encoder("small", 8), images, batch_size=batch_size, device="cpu")


def test_a_one_image_test_split_trains_with_a_warning(tmp_path, runner, cli_app):
    """It died after the first epoch (a division by zero in the test loss) and left no checkpoint."""
    from embedkit.training.loop import make_config, train

    imgs = image_folder(tmp_path / "imgs", np.random.default_rng(0), n_train=4, n_test=1)
    (imgs / "test" / "bee" / "0.png").unlink()
    result = runner.invoke(
        cli_app,
        ["train", "--dataset", str(imgs), "--epochs", "1", "--device", "cpu", "--run-dir", str(tmp_path / "run")],
    )
    assert result.exit_code == 0, result.output
    assert "warning: no test losses will be logged (the test split of" in result.output
    assert (tmp_path / "run" / "last.pt").is_file()
    images = np.zeros((4, 8, 8, 3), np.uint8)
    with pytest.raises(ConfigError, match="1 test image"):  # the library refuses it before training starts
        train(
            make_config("cpu", **{**TINY, "test_images": 16}, views=_views()),
            tmp_path / "lib",
            images,
            images[:1],
            device="cpu",
        )
    assert not (tmp_path / "lib").exists()


@pytest.mark.slow
@pytest.mark.parametrize("command", [["plot", "map", "--method", "tsne"], ["cluster", "-k", "2", "--map", "tsne"]])
def test_tsne_of_identical_rows_ends_in_one_line_not_a_segfault(tmp_path, command):
    from embedkit.store.store import open_store

    store = open_store(tmp_path / "collapsed.h5", create=True)  # what a collapsed encoder writes
    store.write_group("c/test", np.ones((30, 8), np.float32), np.arange(30) % 3)
    env = {**os.environ, "PYTHONPATH": str(REPO), "COLUMNS": "200", "NO_COLOR": "1", "MPLBACKEND": "Agg"}
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "cli.main",
            command[0],
            *command[1:],
            str(store.path),
            "-g",
            "c/test",
            "--out",
            str(tmp_path / "figs"),
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert done.returncode == 1, (done.returncode, done.stderr[-2000:])  # -11 was the segfault
    line = _one_error_line(done.stdout + done.stderr)
    assert "all 30 rows are identical" in line
    assert not (tmp_path / "figs").exists() or not any((tmp_path / "figs").iterdir())


def test_markup_in_group_and_class_names_is_printed_verbatim(tmp_path, runner, cli_app):
    """Rich read '[/]' and '[red]' in names as markup: a crash (MarkupError), or text silently dropped."""
    rng = np.random.default_rng(0)
    np.save(tmp_path / "x.npy", rng.normal(size=(6, 3)).astype(np.float32))
    np.save(tmp_path / "labels.npy", np.arange(6) % 2)
    store = tmp_path / "s[bold].h5"
    added = runner.invoke(
        cli_app,
        [
            "add",
            str(store),
            "-g",
            "m[/]x/train",
            "--embeddings",
            str(tmp_path / "x.npy"),
            "--labels",
            str(tmp_path / "labels.npy"),
            "--class-names",
            "[/],[red]b",
        ],
    )
    assert added.exit_code == 0, added.output
    assert f"added group m[/]x/train (6 x 3) to {store}" in added.output
    found = runner.invoke(cli_app, ["neighbors", str(store), "-g", "m[/]x/train", "-k", "1"])
    assert found.exit_code == 0, found.output
    assert "m[/]x/train" in found.output and "[red]b" in found.output and "[/]" in found.output


def test_diverging_latent_optimization_stops_in_one_line():
    """It returned NaN vectors, which the store refused later with an error about 'row 0', not the cause."""
    from embedkit.baselines.latent import LatentConfig, fit_latent

    n = 20
    neighbours = np.stack([(np.arange(n) + 1) % n, (np.arange(n) + 2) % n], axis=1)
    with pytest.raises(TrainingError, match="latent optimization diverged at epoch 2 of 2, step 2"):
        fit_latent(neighbours, LatentConfig(epochs=2, k=2, dim=8, batch_size=n, lr=1e30), device="cpu")
