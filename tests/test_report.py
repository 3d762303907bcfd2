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
