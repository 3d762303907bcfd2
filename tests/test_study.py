"""`embedkit study --smoke` end to end on a tiny generated data root (every stage, the page, the rerun) and on
the real data (a few hundred images per split)."""

from __future__ import annotations

import gzip
import json
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

CLASSES = ("ant", "bee", "cow", "dog")


def _write_idx(path: Path, array: np.ndarray) -> None:
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    with gzip.open(path, "wb") as f:
        f.write(header + array.astype(np.uint8).tobytes())


def make_data_root(root: Path, n_train: int = 80, n_test: int = 24, n_mnist: int = 40) -> Path:
    """A CIFAR-10-shaped image tree (4 colour-coded classes, 32x32 PNG) and MNIST-shaped IDX files."""
    rng = np.random.default_rng(0)
    for split, n in (("train", n_train), ("test", n_test)):
        for c, name in enumerate(CLASSES):
            folder = root / "cifar10" / split / name
            folder.mkdir(parents=True)
            base = np.zeros(3)
            base[c % 3] = 160 + 40 * (c // 3)
            for i in range(n):
                image = np.clip(base + rng.normal(0, 40, (32, 32, 3)), 0, 255).astype(np.uint8)
                Image.fromarray(image).save(folder / f"{i:04d}.png")
    digits = (rng.random((n_mnist, 28, 28)) > 0.8).astype(np.uint8) * 255
    (root / "mnist-test").mkdir()
    _write_idx(root / "mnist-test" / "t10k-images-idx3-ubyte.gz", digits)
    _write_idx(root / "mnist-test" / "t10k-labels-idx1-ubyte.gz", np.arange(n_mnist) % 10)
    return root


@pytest.fixture(scope="module")
def smoke_study(tmp_path_factory):
    from typer.testing import CliRunner

    from embedkit_cli.main import app

    base = tmp_path_factory.mktemp("study")
    data_root = make_data_root(base / "data")
    env = {"EMBEDKIT_CACHE": str(base / "cache"), "COLUMNS": "120", "NO_COLOR": "1"}
    args = ["study", "--smoke", "--workspace", str(base / "ws"), "--data-root", str(data_root), "--json"]
    runner = CliRunner(env=env)
    first = runner.invoke(app, args)
    assert first.exit_code == 0, first.output
    second = runner.invoke(app, args)
    return base / "ws" / "study", first, second


@pytest.mark.slow
def test_smoke_study_runs_every_stage_and_writes_the_report(smoke_study):
    from embedkit.study.plan import MODELS

    study, first, _ = smoke_study
    results = json.loads((study / "report" / "results.json").read_text())
    assert set(results["models"]) == set(MODELS)
    for name, metrics in results["models"].items():
        assert 0.0 <= metrics["linear_probe"] <= 1.0 and 0.0 <= metrics["knn_accuracy"] <= 1.0, name
        assert metrics["effective_rank"] > 0, name
    for name in ("vicreg", "no-variance", "neighbour-positives"):
        assert 0.0 <= results["models"][name]["roc_auc_mnist"] <= 1.0
    expected_stages = {
        "train-vicreg",
        "encode-vicreg",
        "pairs",
        "train-no-variance",
        "encode-no-variance",
        "train-neighbour-positives",
        "encode-neighbour-positives",
        "fit-latent",
        "fit-laplacian",
        *(f"evaluate-{m}" for m in MODELS),
        "figures",
    }
    assert expected_stages <= set(results["stages"])
    from embedkit.training.models import build_encoder

    expected = sum(p.numel() for p in build_encoder("small").parameters())  # the cpu preset's encoder
    assert results["environment"]["encoder"] == {"kind": "small", "parameters": expected}
    # The colour-coded classes are linearly separable even in raw pixels: the baseline must find that.
    assert results["models"]["laplacian"]["linear_probe"] > 0.5
    payload = json.loads(first.stdout.strip().splitlines()[-1])
    assert payload["report"].endswith("index.html")


@pytest.mark.slow
def test_every_image_the_page_references_is_a_valid_png(smoke_study):
    study, _, _ = smoke_study
    page = study / "report" / "index.html"
    sources = re.findall(r'<img src="([^"]+)"', page.read_text())
    assert len(sources) >= 8, sources
    for src in sources:
        with Image.open(page.parent / src) as img:
            img.verify()
            assert img.format == "PNG"


@pytest.mark.slow
def test_rerun_skips_every_finished_stage(smoke_study):
    study, _, second = smoke_study
    assert second.exit_code == 0, second.output
    stages = json.loads((study / "report" / "results.json").read_text())["stages"]
    ran_again = [name for name, s in stages.items() if not s["skipped"]]
    assert ran_again == [], f"stages that ran again: {ran_again}"


@pytest.mark.slow
def test_page_loads_every_image_in_a_real_browser_offline(smoke_study, chromium):
    from browser_helpers import open_page

    study, _, _ = smoke_study
    page, log = open_page(chromium, study / "report" / "index.html", wait_for="document.body.dataset.loaded")
    broken = page.evaluate("[...document.images].filter(i => !(i.complete && i.naturalWidth > 0)).map(i => i.src)")
    assert page.evaluate("document.images.length") >= 8
    assert broken == []
    assert log.console_errors == [] and log.page_errors == []
    assert log.network_requests == [], "the report must load nothing from the network"
    widths = page.evaluate("[...document.querySelectorAll('figure img')].map(i => i.getBoundingClientRect().width)")
    assert widths and min(widths) >= 900, f"figures shown narrower than 900 px at 1280 px: {widths}"
    # The explorer of the VICReg store is linked, and opens alone with no error and no request.
    explorer = page.get_attribute("a.explorer", "href")
    page.context.close()
    page, log = open_page(chromium, study / "report" / explorer, wait_for="window.explorer && window.explorer.ready")
    assert page.evaluate("window.explorer.ids.length") > 0
    assert log.console_errors == [] and log.page_errors == [] and log.other_files == []
    page.context.close()


@pytest.mark.slow
@pytest.mark.realdata
def test_smoke_study_on_real_data_uses_a_few_hundred_images_per_split(real_data_root, tmp_path):
    from typer.testing import CliRunner

    from embedkit.store.store import open_store
    from embedkit.study.plan import MODELS, PLANS
    from embedkit_cli.main import app

    result = CliRunner(env={"COLUMNS": "120", "NO_COLOR": "1"}).invoke(
        app, ["study", "--smoke", "--workspace", str(tmp_path), "--data-root", str(real_data_root), "--json"]
    )
    assert result.exit_code == 0, result.output
    study = tmp_path / "study"
    results = json.loads((study / "report" / "results.json").read_text())
    assert set(results["models"]) == set(MODELS)
    n = PLANS["smoke"].images_per_split
    for model in MODELS:
        store = open_store(study / "stores" / f"{model}.h5")
        for group in ("cifar10/train", "cifar10/test"):
            ids = store.read(group).ids
            assert len(ids) == n and len(np.unique(ids)) == n and ids.max() >= n, (model, group)  # a sample, not a head
        classes = np.unique(store.read("cifar10/train").labels)
        assert len(classes) == 10, model


def test_the_stage_display_keeps_no_bar_once_a_stage_is_over():
    """A finished stage's bar used to stay on screen (`HTML report 0/?` above the final table)."""
    from types import SimpleNamespace

    from embedkit_cli.study_cmd import _StageDisplay

    stages = [SimpleNamespace(name="train", title="train vicreg"), SimpleNamespace(name="report", title="HTML report")]
    display = _StageDisplay([(s.name, s.title) for s in stages])
    for stage in stages:
        display.on_event("started", stage, None)
        assert [task.description for task in display.progress.tasks] == [stage.title]
        display.on_event("finished", stage, SimpleNamespace(seconds=1.0))
        assert display.progress.tasks == []
    display.on_event("skipped", stages[0], None)
    assert display.progress.tasks == []


def test_the_cpu_plan_fits_the_hour_on_a_cpu_without_native_bf16(monkeypatch):
    """The cpu preset's 20 VICReg epochs assume bf16 (AMX or AVX512-BF16); an fp32-only CPU gets fewer, and the
    plan's one-line description says which and why."""
    from embedkit.study import plan as study_plan
    from embedkit.training.config import PRESETS

    monkeypatch.setattr(study_plan, "cpu_bf16_native", lambda: True)
    native = study_plan.make_plan("cpu")
    assert native.vicreg_epochs == PRESETS["cpu"]["epochs"] == 20
    assert "bf16 on this CPU" in study_plan.describe_plan(native)
    monkeypatch.setattr(study_plan, "cpu_bf16_native", lambda: False)
    fp32 = study_plan.make_plan("cpu")
    assert fp32.vicreg_epochs == study_plan.FP32_CPU_VICREG_EPOCHS < native.vicreg_epochs
    assert fp32.ablation_epochs == native.ablation_epochs
    assert "no native bf16" in study_plan.describe_plan(fp32)
    assert study_plan.make_plan("gpu").vicreg_epochs == 200  # other presets do not depend on the CPU
