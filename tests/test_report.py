"""The study report: a page whose every image exists, and results.json with what the page shows."""

from __future__ import annotations

import json
import re

import numpy as np
from PIL import Image

from embedkit.study.report import write_report


def _png(path, size=(40, 30)):
    Image.fromarray(np.full((size[1], size[0], 3), 128, np.uint8)).save(path)
    return path


def test_report_links_every_figure_and_writes_results(tmp_path):
    (tmp_path / "vicreg").mkdir()
    (tmp_path / "laplacian").mkdir()
    figs = {
        "Maps": [_png(tmp_path / "vicreg" / "map.png"), _png(tmp_path / "laplacian" / "map.png")],
        "ROC curves": [_png(tmp_path / "roc.png")],
    }
    results = {
        "environment": {"preset": "smoke", "device": "cpu"},
        "models": {"vicreg": {"linear_probe": 0.61, "silhouette": 0.1}, "laplacian": {"linear_probe": 0.12}},
        "stages": {"train-vicreg": {"seconds": 3.5, "finished": "now", "config": {"epochs": 1}}},
    }
    page = write_report(tmp_path / "report", results, figs)
    text = page.read_text()
    sources = re.findall(r'<img src="([^"]+)"', text)
    assert len(sources) == 3, "two maps of the same name must not overwrite each other"
    for src in sources:
        with Image.open(page.parent / src) as img:
            assert img.format == "PNG" and img.size == (40, 30)
    vicreg_row = re.search(r"<tr><td>vicreg</td>.*?</tr>", text).group(0)
    assert "0.610" in vicreg_row and "72%" in vicreg_row, "measured and reference numbers side by side"
    saved = json.loads((tmp_path / "report" / "results.json").read_text())
    assert saved["models"]["vicreg"]["linear_probe"] == 0.61
    assert saved["figures"]["Maps"] == sources[:2]


def _write(tmp_path, models, plan, figures=None):
    results = {
        "environment": {"preset": plan["preset"], "plan": plan, "encoder": {"kind": "small", "parameters": 1234}},
        "models": models,
        "stages": {"train-vicreg": {"seconds": 90.0, "finished": "now", "config": {}}},
    }
    return write_report(tmp_path / "report", results, figures or {}).read_text()


def _text(page: str) -> str:
    return re.sub(r"<[^>]+>", "", page)


def test_the_reading_is_generated_from_the_numbers(tmp_path):
    plan = {"preset": "gpu", "vicreg_epochs": 200, "ablation_epochs": 100, "latent_epochs": 200}
    collapsed = {
        "vicreg": {"effective_rank": 40.0, "roc_auc_mnist": 0.7, "linear_probe": 0.7},
        "no-variance": {"effective_rank": 1.5, "roc_auc_mnist": 0.9, "linear_probe": 0.2},
        "laplacian": {"linear_probe": 0.12},
    }
    text = _text(_write(tmp_path, collapsed, plan))
    assert "effective rank goes from 40.0 (VICReg) to 1.5: the embeddings collapse into far fewer" in text
    assert "no-variance separates MNIST from CIFAR-10 best (0.900)" in text
    assert "vicreg the highest linear-probe accuracy (0.700)" in text
    assert "laplacian 0.120" in text
    assert "Smoke run" not in text and "Short run" not in text
    collapsed["no-variance"]["effective_rank"] = 33.0
    assert "40.0 (VICReg) to 33.0: somewhat fewer dimensions, not (yet) a collapse" in _text(
        _write(tmp_path, collapsed, plan)
    )
    collapsed["no-variance"]["effective_rank"] = 41.0
    assert "no collapse shows" in _text(_write(tmp_path, collapsed, plan))


def test_every_metric_is_defined_with_its_direction_and_every_row_names_its_method(tmp_path):
    from embedkit.study.report import METRICS

    plan = {"preset": "smoke", "vicreg_epochs": 1, "ablation_epochs": 1, "latent_epochs": 3}
    page = _write(tmp_path, {"vicreg": {"linear_probe": 0.3}, "latent": {"linear_probe": 0.2}}, plan)
    text = _text(page)
    for _, label, definition, direction in METRICS:
        assert f"{label} ({direction})" in text and definition in text
    assert "small (1,234 parameters) encoder trained with VICReg for 1 epoch(s)" in text
    assert "no encoder: one free vector per image" in text
    assert "Smoke run." in text and "seed report this study follows" in text
    assert "1.5 min over 1 stages" in text


def test_figures_open_at_full_size_with_captions_in_words_and_pages_are_linked(tmp_path):
    (tmp_path / "figures").mkdir()
    explorer = tmp_path / "figures" / "explore-vicreg.html"
    explorer.write_text("<!doctype html><title>x</title>")
    figures = {"Maps": [_png(tmp_path / "figures" / "map-pca.png")], "Explorer": [explorer]}
    plan = {"preset": "cpu", "vicreg_epochs": 6, "ablation_epochs": 2, "latent_epochs": 30}
    page = _write(tmp_path, {"vicreg": {}}, plan, figures)
    src = re.search(r'<img src="([^"]+)"', page).group(1)
    assert f'<a href="{src}"' in page, "a click on a figure opens it at full size"
    assert "PCA of the CIFAR-10 test embeddings" in _text(page) and "--" not in _text(page).split("Stages")[0]
    assert "<img" not in page.split("<h2>Explorer</h2>")[1].split("<h2>")[0]
    link = re.search(r'class="explorer" href="([^"]+)"', page).group(1)
    assert (tmp_path / "report" / link).read_text() == explorer.read_text()
    assert "Short run." in _text(page)
