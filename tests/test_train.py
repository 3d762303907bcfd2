"""The training loop on tiny random data: the loss falls, runs are reproducible, resume and Ctrl-C keep state."""

from __future__ import annotations

import json
import os
import signal
from dataclasses import replace

import numpy as np
import pytest
import torch

from embedkit.errors import ConfigError
from embedkit.training.log import read_log
from embedkit.training.loop import TrainConfig, make_config, resume_config, train
from embedkit.training.models import read_checkpoint
from embedkit.training.optim import learning_rate
from embedkit.training.views import ViewConfig

# 8x8 views keep the small encoder cheap; everything else is the real cpu recipe.
# The tiny runs keep the 512-wide projector and fp32 they were tuned with (bf16 would make them machine-dependent).
TINY = dict(epochs=1, batch_size=8, test_images=0, views=ViewConfig(size=8), projector_dim=512, amp=False)


@pytest.fixture(autouse=True)
def _one_thread():
    torch.set_num_threads(1)


@pytest.fixture
def images(rng) -> np.ndarray:
    return rng.integers(0, 256, (32, 32, 32, 3), dtype=np.uint8)


def _weights(run_dir) -> dict:
    payload = read_checkpoint(run_dir / "last.pt")
    return {**payload["encoder_state"], **{f"projector.{k}": v for k, v in payload["projector_state"].items()}}


def _assert_same_weights(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key


def test_a_few_steps_lower_the_loss(tmp_path, images):
    # Without augmentation the invariance term is 0 and the steps must spread and decorrelate the batch; on
    # random pixels augmented views have nothing in common to learn in 4 steps, so the loss would only wobble.
    plain = ViewConfig(size=8, crop_scale=(1.0, 1.0), crop_ratio=(1.0, 1.0), flip_p=0, jitter_p=0, gray_p=0, blur_p=0)
    config = make_config("cpu", **{**TINY, "epochs": 4, "batch_size": 16, "schedule": "constant", "views": plain})
    result = train(config, tmp_path / "run", images[:16])
    records = read_log(tmp_path / "run")
    assert result.steps == len(records) == 4
    assert records[-1]["total"] < records[0]["total"] - 2.0
    assert records[-1]["var"] < records[0]["var"]


def test_same_seed_same_weights_other_seed_differs(tmp_path, images):
    config = make_config("cpu", **TINY)
    train(config, tmp_path / "a", images)
    train(config, tmp_path / "b", images)
    train(replace(config, seed=1), tmp_path / "c", images)
    _assert_same_weights(_weights(tmp_path / "a"), _weights(tmp_path / "b"))
    assert not torch.equal(_weights(tmp_path / "a")["head.2.weight"], _weights(tmp_path / "c")["head.2.weight"])


def test_resume_after_two_steps_matches_four_uninterrupted_steps(tmp_path, images):
    config = make_config("cpu", **{**TINY, "test_images": 8})  # 32 images, batch 8: one epoch of 4 steps
    train(config, tmp_path / "full", images, images[:8])

    def stop_after_two(step, total):
        if step == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train(config, tmp_path / "resumed", images, images[:8], on_progress=stop_after_two)
    assert read_checkpoint(tmp_path / "resumed" / "last.pt")["step"] == 2
    with open(tmp_path / "resumed" / "log.jsonl", "a") as log:  # lines past the checkpoint, as after a crash
        log.write(json.dumps({"split": "train", "step": 3, "total": 0.0}) + "\n" + '{"split": "tr')
    result = train(resume_config(tmp_path / "resumed"), tmp_path / "resumed", images, images[:8], resume=True)
    assert result.steps == 4
    _assert_same_weights(_weights(tmp_path / "full"), _weights(tmp_path / "resumed"))
    assert read_log(tmp_path / "resumed") == read_log(tmp_path / "full")


def test_ctrl_c_is_deferred_to_the_step_boundary_and_saved(tmp_path, images):
    def press_ctrl_c(step, total):
        if step == 1:
            os.kill(os.getpid(), signal.SIGINT)  # handled by train(): the step finishes, is saved, then re-raised

    with pytest.raises(KeyboardInterrupt):
        train(make_config("cpu", **TINY), tmp_path / "run", images, on_progress=press_ctrl_c)
    assert read_checkpoint(tmp_path / "run" / "last.pt")["step"] == 1
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_log_has_a_line_per_step_and_test_terms_per_epoch(tmp_path, images):
    config = make_config("cpu", **{**TINY, "epochs": 2, "batch_size": 16, "test_images": 8})
    seen = []
    result = train(config, tmp_path / "run", images, images, on_log=seen.append)
    records = read_log(tmp_path / "run")
    assert records == seen
    assert [(r["split"], r["step"]) for r in records] == [
        ("train", 1),
        ("train", 2),
        ("test", 2),
        ("train", 3),
        ("train", 4),
        ("test", 4),
    ]
    assert all({"total", "inv", "var", "cov"} <= set(r) for r in records)
    assert result.test_terms == records[-1] and result.epochs == 2
    saved = json.loads((tmp_path / "run" / "config.json").read_text())
    assert TrainConfig.from_dict(saved) == config


def test_the_test_loss_pass_reports_its_progress_after_the_epochs_last_step(tmp_path, images):
    """The pass that ends each epoch reports (images done, test images) per batch, between that epoch's last
    train record and its test record, so a progress bar need not sit silent on the epoch's last step."""
    config = make_config("cpu", **{**TINY, "epochs": 2, "batch_size": 16, "test_images": 20})
    events = []
    train(
        config,
        tmp_path / "run",
        images,
        images,
        on_log=lambda r: events.append((r["split"], r["step"])),
        on_test_progress=lambda done, total: events.append(("test pass", done, total)),
    )
    pass_of_epoch = [("test pass", 16, 20), ("test pass", 20, 20)]
    assert events == [
        ("train", 1),
        ("train", 2),
        *pass_of_epoch,
        ("test", 2),
        ("train", 3),
        ("train", 4),
        *pass_of_epoch,
        ("test", 4),
    ]


def test_resume_refuses_another_config_but_allows_more_epochs(tmp_path, images):
    config = make_config("cpu", **TINY)
    train(config, tmp_path / "run", images)
    with pytest.raises(ConfigError, match="another training config"):
        train(replace(config, lr=1.0), tmp_path / "run", images, resume=True)
    assert resume_config(tmp_path / "run", epochs=3).epochs == 3
    assert train(resume_config(tmp_path / "run", epochs=2), tmp_path / "run", images, resume=True).steps == 8


@pytest.mark.parametrize("line", ['{"split": "train", "step": 1}', "[1, 2, 3]", "not json"])
def test_read_log_rejects_lines_that_are_not_loss_records(tmp_path, line):
    good = {"split": "train", "step": 1, "total": 1.0, "inv": 0.1, "var": 0.5, "cov": 0.2}
    (tmp_path / "log.jsonl").write_text(json.dumps(good) + "\n" + line + "\n")
    with pytest.raises(ConfigError, match="log.jsonl: line 2 is not"):
        read_log(tmp_path)
    with pytest.raises(ConfigError, match="no training log"):
        read_log(tmp_path / "elsewhere")


def test_presets_and_validation():
    cpu, gpu = make_config("cpu"), make_config("gpu")
    assert (cpu.encoder, cpu.optimizer) == ("small", "adam")
    assert (gpu.encoder, gpu.optimizer, gpu.amp) == ("resnet18", "lars", True)
    assert make_config("cpu", lr=0.5).lr == 0.5
    assert TrainConfig().lr == 3e-4 and TrainConfig().optimizer == "adam"
    for bad, message in [
        (dict(preset="tpu"), "unknown preset"),
        (dict(optimizer="sgd"), "optimizer 'sgd'"),
        (dict(batch_size=1), "batch size 1"),
        (dict(encoder="vit"), "encoder 'vit'"),
        (dict(subset=1), "subset 1"),
    ]:
        with pytest.raises(ConfigError, match=message):
            make_config(**bad)


def test_learning_rate_warmup_then_cosine_to_a_thousandth():
    config = TrainConfig(lr=1.0, epochs=10, warmup_epochs=1, schedule="cosine", optimizer="lars", batch_size=512)
    rates = [learning_rate(config, step, 10) for step in range(100)]
    assert rates[0] == pytest.approx(0.2) and rates[9] == pytest.approx(2.0)  # LARS: lr x 512 / 256
    assert max(rates) == pytest.approx(2.0) and rates[-1] == pytest.approx(2.0 * 1e-3, rel=0.05)
    assert all(a >= b for a, b in zip(rates[9:], rates[10:]))
    assert learning_rate(replace(config, schedule="constant", optimizer="adam"), 50, 10) == 1.0


def test_without_the_variance_term_the_embedding_spread_collapses(tmp_path):
    # Identical views (the invariance term is 0), so mu = 0 leaves only the covariance term, which any shrinking of
    # the projections lowers: the logged variance penalty (sum over both views of mean max(0, 1 - std), at most
    # about 2) climbs towards its maximum, while mu = 25 drives it down. Seeds 0-3 give 1.32 -> 1.72 and 1.32 -> 0.52.
    # (The encoder's effective rank, the study's measure, needs thousands of steps to separate; this is the cause.)
    images = np.random.default_rng(1).integers(0, 256, (32, 32, 32, 3), dtype=np.uint8)
    plain = ViewConfig(size=8, crop_scale=(1.0, 1.0), crop_ratio=(1.0, 1.0), flip_p=0, jitter_p=0, gray_p=0, blur_p=0)
    penalties = {}
    for mu in (25.0, 0.0):
        config = make_config(
            "cpu",
            **{
                **TINY,
                "epochs": 12,
                "batch_size": 32,
                "schedule": "constant",
                "warmup_epochs": 0,
                "lr": 1e-3,
                "seed": 1,
                "mu": mu,
                "views": plain,
            },
        )
        train(config, tmp_path / f"mu{mu}", images)
        log = [record for record in read_log(tmp_path / f"mu{mu}") if record["split"] == "train"]
        assert len(log) == 12 and all(record["inv"] == pytest.approx(0.0, abs=1e-6) for record in log)
        penalties[mu] = (log[0]["var"], log[-1]["var"])
    assert penalties[0.0][0] == pytest.approx(penalties[25.0][0])  # same seed, same first batch
    assert penalties[0.0][1] > 1.2 * penalties[0.0][0]
    assert penalties[25.0][1] < 0.6 * penalties[25.0][0]


def _tiny_pairs(tmp_path, n: int, k: int = 3):
    """A pairs file over `n` train images made by `make_pairs` on a store of seeded random embeddings."""
    from embedkit.search.index import make_pairs
    from embedkit.store.store import open_store

    emb = np.random.default_rng(3).normal(size=(n, 4)).astype(np.float32)
    store = open_store(tmp_path / "source.h5", create=True)
    store.write_group("cifar10/train", emb, np.zeros(n, np.int64), np.arange(n))
    return make_pairs(tmp_path / "source.h5", "cifar10/train", k, tmp_path / "pairs.h5")


def test_neighbour_positives_are_listed_neighbours(tmp_path, images):
    import h5py

    from embedkit.training.loop import make_pair_source

    pairs = _tiny_pairs(tmp_path, len(images))
    with h5py.File(pairs, "r") as h5:
        neighbor_rows = h5["neighbor_rows"][:]
    config = make_config("cpu", **TINY, positives=pairs)
    assert config.positives_sha256.startswith("sha256:") and config.positives == str(pairs)
    anchors_rows = np.array([3, 7, 11, 20])
    source = make_pair_source(config, images, torch.device("cpu"), anchor_rows=anchors_rows)
    assert len(source) == 4
    generator = torch.Generator().manual_seed(0)
    for _ in range(5):
        anchors, positives = source.positive_rows(torch.arange(4), generator)
        assert anchors.tolist() == anchors_rows.tolist()
        assert all(p in neighbor_rows[a] for a, p in zip(anchors.tolist(), positives.tolist()))
    a, b = source.pair(torch.arange(4), generator)
    assert a.shape == b.shape == (4, 3, 8, 8)


def test_neighbour_positives_train_records_the_pairs_file_and_encode(tmp_path, images):
    from embedkit.training.encode import encode_images
    from embedkit.training.models import load_checkpoint

    pairs = _tiny_pairs(tmp_path, len(images))
    config = make_config("cpu", **{**TINY, "subset": 16}, positives=pairs, augment_positives=True)
    result = train(config, tmp_path / "run", images, images[:8])
    saved = read_checkpoint(result.checkpoint)["config"]
    assert saved["positives"] == str(pairs) and saved["positives_sha256"] == config.positives_sha256
    assert result.steps == 2
    encoder, _ = load_checkpoint(result.checkpoint)
    assert np.isfinite(encode_images(encoder, images, device="cpu")).all()


def test_pairs_over_a_sample_of_the_split_train_on_that_sample(tmp_path, images):
    from embedkit.search.index import make_pairs
    from embedkit.store.store import open_store
    from embedkit.training.loop import make_pair_source

    rows = np.array([1, 4, 5, 9, 12, 17, 20, 30])  # a store made with `encode --subset`: ids are rows in the split
    emb = np.random.default_rng(5).normal(size=(len(rows), 4)).astype(np.float32)
    open_store(tmp_path / "sample.h5", create=True).write_group("cifar10/train", emb, None, rows)
    pairs = make_pairs(tmp_path / "sample.h5", "cifar10/train", 2, tmp_path / "pairs.h5")
    source = make_pair_source(make_config("cpu", **TINY, positives=pairs), images, torch.device("cpu"))
    assert len(source) == len(rows)
    anchors, positives = source.positive_rows(torch.arange(len(rows)), torch.Generator().manual_seed(0))
    assert anchors.tolist() == rows.tolist() and set(positives.tolist()) <= set(rows.tolist())
    brute = np.linalg.norm(emb[:, None] - emb[None], axis=2) + np.diag(np.full(len(rows), np.inf))
    nearest_two = {r: set(rows[np.argsort(d)[:2]]) for r, d in zip(rows, brute)}
    assert all(p in nearest_two[a] for a, p in zip(anchors.tolist(), positives.tolist()))
    subset = make_pair_source(make_config("cpu", **{**TINY, "subset": 3}, positives=pairs), images, torch.device("cpu"))
    assert len(subset) == 3 and set(subset.anchors.tolist()) <= set(rows.tolist())


def test_bad_pairs_files_are_one_line_config_errors(tmp_path, images):
    pairs = _tiny_pairs(tmp_path, len(images) + 1)
    with pytest.raises(ConfigError, match="pairs file not found"):
        make_config("cpu", **TINY, positives=tmp_path / "nope.h5")
    with pytest.raises(
        ConfigError,
        match=r"pairs\.h5: pairs for 33 images up to row 32, but the training split "
        r"has 32",
    ):
        train(make_config("cpu", **TINY, positives=pairs), tmp_path / "run", images)
    (tmp_path / "junk.h5").write_bytes(b"not hdf5")
    with pytest.raises(ConfigError, match=r"junk\.h5: cannot read the pairs file"):
        train(make_config("cpu", **TINY, positives=tmp_path / "junk.h5"), tmp_path / "run", images)
    with pytest.raises(ConfigError, match="augment_positives needs a positives file"):
        make_config("cpu", **TINY, augment_positives=True)


def test_a_run_folder_keeps_each_start_with_its_command_line_and_code(tmp_path, rng):
    import json

    from embedkit.provenance import code_version
    from embedkit.training.loop import RUNS_NAME, make_config, train

    images = rng.integers(0, 256, size=(16, 8, 8, 3), dtype=np.uint8)
    config = make_config("cpu", epochs=1, batch_size=8, test_images=0, encoder="small")
    train(config, tmp_path / "run", images, device="cpu", command=["embedkit", "train", "--epochs", "1"])
    train(
        make_config("cpu", epochs=2, batch_size=8, test_images=0, encoder="small"),
        tmp_path / "run",
        images,
        resume=True,
        device="cpu",
        command=["embedkit", "train", "--resume"],
    )
    starts = [json.loads(line) for line in (tmp_path / "run" / RUNS_NAME).read_text().splitlines()]
    assert [s["command"] for s in starts] == [["embedkit", "train", "--epochs", "1"], ["embedkit", "train", "--resume"]]
    assert [s["resume"] for s in starts] == [False, True] and starts[1]["from_step"] == 2
    assert starts[0]["code"] == code_version()


def test_progress_announces_the_total_before_the_first_step(tmp_path, rng):
    """A run of one step per epoch (the smoke study) shows `0/N` at once, not `0/?` for the whole step."""
    from embedkit.training.loop import make_config, train

    images = rng.integers(0, 256, size=(16, 8, 8, 3), dtype=np.uint8)
    calls = []
    config = make_config("cpu", epochs=2, batch_size=16, test_images=0, encoder="small")
    train(config, tmp_path / "run", images, device="cpu", on_progress=lambda done, total: calls.append((done, total)))
    assert calls == [(0, 2), (1, 2), (2, 2)]


def test_a_run_logs_test_losses_only_on_a_usable_test_split(tmp_path, rng, monkeypatch):
    """An image folder without test images, or with one, trains without test losses (and says why); a known
    dataset must have its test split."""
    import shutil

    from reliability_world import image_folder

    from embedkit.errors import DataError
    from embedkit.training.loop import load_test_split

    monkeypatch.setenv("EMBEDKIT_CACHE", str(tmp_path / "cache"))
    full = image_folder(tmp_path / "full", rng, n_test=2)
    test_set, why_not = load_test_split(str(full))
    assert why_not is None and len(test_set.images) == 4
    shutil.rmtree(full / "test" / "bee")
    for extra in list((full / "test" / "ant").iterdir())[1:]:
        extra.unlink()
    assert load_test_split(str(full)) == (None, f"the test split of {full} has 1 image")
    shutil.rmtree(full / "test")
    test_set, why_not = load_test_split(str(full))
    assert test_set is None and "test" in why_not
    with pytest.raises(DataError, match="cifar10 test not found"):
        load_test_split("cifar10", tmp_path / "empty")


def test_bf16_autocast_only_where_the_cpu_has_native_bf16(monkeypatch):
    """`amp` means bf16 on CUDA and on CPUs with AMX or AVX512-BF16; an AVX2-only CPU keeps fp32 (emulated bf16 is
    slower there), and so does any device where the config says amp=False."""
    import embedkit.device as device_module
    from embedkit.training.loop import _autocast

    cpu = torch.device("cpu")
    for flags, native in [({"avx2", "amx_bf16"}, True), ({"avx2", "avx512_bf16"}, True), ({"avx2", "avx512f"}, False)]:
        monkeypatch.setattr(device_module, "_cpu_flags", lambda flags=flags: frozenset(flags))
        assert device_module.bf16_native(cpu) is native
        with _autocast(make_config("cpu"), cpu):
            assert torch.is_autocast_enabled("cpu") is native
        with _autocast(make_config("cpu", amp=False), cpu):
            assert not torch.is_autocast_enabled("cpu")
    assert device_module.bf16_native(torch.device("cuda")) and not device_module.bf16_native(torch.device("mps"))


def test_train_subset_decodes_only_its_sample_and_trains_as_on_the_whole_split(
    tmp_path, rng, monkeypatch, runner, cli_app
):
    """`train --subset N` on a cold cache decodes the N train images and the test sample, not the whole split, and
    trains on exactly the rows a whole-split load would have chosen."""
    from reliability_world import image_folder

    from embedkit.data import images as imagefiles
    from embedkit.data.sources import load_images
    from embedkit.training.loop import load_test_split

    monkeypatch.setenv("EMBEDKIT_CACHE", str(tmp_path / "cache"))
    folder = image_folder(tmp_path / "pets", rng, n_train=10, n_test=3)  # 20 train, 6 test images
    decoded = []
    decode_blobs = imagefiles.decode_blobs
    monkeypatch.setattr(
        imagefiles, "decode_blobs", lambda blobs, names: decoded.extend(names) or decode_blobs(blobs, names)
    )
    args = ["train", "--dataset", str(folder), "--subset", "8", "--epochs", "1", "--batch-size", "4", "--seed", "2"]
    result = runner.invoke(cli_app, [*args, "--encoder", "small", "--device", "cpu", "--run-dir", str(tmp_path / "a")])
    assert result.exit_code == 0, result.output
    assert len(decoded) == 8 + 6 and sum("/train/" in name for name in decoded) == 8

    config = TrainConfig.from_dict(json.loads((tmp_path / "a" / "config.json").read_text()))
    monkeypatch.setattr(imagefiles, "decode_blobs", decode_blobs)
    train(config, tmp_path / "b", load_images(str(folder), "train"), load_test_split(str(folder))[0], device="cpu")
    sampled, whole = read_log(tmp_path / "a" / "log.jsonl"), read_log(tmp_path / "b" / "log.jsonl")
    assert [r["split"] for r in sampled] == [r["split"] for r in whole] == ["train", "train", "test"]
    for a, b in zip(sampled, whole):
        assert a["total"] == pytest.approx(b["total"], rel=1e-4), (a, b)
