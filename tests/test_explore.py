"""`embedkit explore`: the page's data against NumPy and the CLI's own JSON, its safety as HTML, and the page
itself driven in a real Chromium (click a point, read its neighbours, no console error, no request)."""

from __future__ import annotations

import base64
import io
import json
import re

import numpy as np
import pytest
from eval_helpers import CLASS_NAMES, make_image_folder

N_PER_CLASS = 30


@pytest.fixture
def images(tmp_path, monkeypatch):
    """A tiny image folder (3 classes x 30 distinct images, split 'test'), decoded once into a private cache."""
    from embedkit.data.sources import load_images

    monkeypatch.setenv("EMBEDKIT_CACHE", str(tmp_path / "cache"))
    root = make_image_folder(tmp_path / "imgs", N_PER_CLASS)
    return root, load_images(str(root), "test")


def _store(tmp_path, images, name: str, seed: int, class_names=CLASS_NAMES):
    """A store whose group toy/test holds one Gaussian blob per class of the folder's images (ids = image index)."""
    from embedkit.store.store import open_store

    root, image_set = images
    rng = np.random.default_rng(seed)
    x = (rng.normal(size=(3, 6)) * 4)[image_set.labels] + rng.normal(size=(len(image_set.labels), 6))
    attrs = {"dataset": str(root), "split": "test", "class_names": list(class_names)}
    open_store(tmp_path / name, create=True).write_group(
        "toy/test", x.astype(np.float32), image_set.labels, attrs=attrs
    )
    return tmp_path / name


def _brute_force(x: np.ndarray, rows: np.ndarray, k: int, farthest: bool) -> tuple[np.ndarray, np.ndarray]:
    full = np.linalg.norm(x[rows, None].astype(np.float64) - x[None], axis=2)
    full[np.arange(len(rows)), rows] = -np.inf if farthest else np.inf
    order = np.argsort(-full if farthest else full, axis=1)[:, :k]
    return order, np.take_along_axis(full, order, 1)


def _page_data(path) -> dict:
    text = path.read_text()
    payload = re.search(r'<script id="explorer-data" type="application/json">(.*?)</script>', text, re.S).group(1)
    return json.loads(payload)


@pytest.mark.parametrize("max_points", [90, 40])
def test_page_data_matches_numpy_neighbours_scores_and_images(tmp_path, images, max_points):
    from PIL import Image

    from embedkit.eval.explore import explorer_data
    from embedkit.eval.maps import project_2d
    from embedkit.store.store import open_store

    path = _store(tmp_path, images, "a.h5", seed=0)
    data = explorer_data([path], "toy/test", k=4, max_points=max_points)
    group = open_store(path).read("toy/test")
    rows = group.rows_of_ids(data["ids"])
    assert len(rows) == min(max_points, len(group.ids))
    model = data["models"][0]
    for kind, farthest in (("near", False), ("far", True)):
        order, distances = _brute_force(group.embeddings, rows, 4, farthest)  # over the whole group, sample or not
        np.testing.assert_array_equal(np.reshape(model[kind], (-1, 4)), group.ids[order])
        np.testing.assert_allclose(np.reshape(model[kind + "_d"], (-1, 4)), distances, rtol=1e-4)
    np.testing.assert_allclose(model["score"], _brute_force(group.embeddings, rows, 4, False)[1].mean(1), rtol=1e-4)
    np.testing.assert_allclose(
        np.reshape(model["xy"], (-1, 2)), project_2d(group.embeddings[rows]), atol=1e-3
    )  # the page's map is the library's PCA map
    assert data["labels"] == group.labels[rows].tolist()
    # Every image the page can show is there once, and decodes to that image's pixels (PNG: lossless).
    needed = set(data["ids"]) | set(model["near"]) | set(model["far"])
    assert set(data["image_ids"]) == needed
    for image_id, uri in zip(data["image_ids"][:5], data["images"][:5]):
        kind, encoded = re.fullmatch(r"data:image/(png|jpeg);base64,(.+)", uri).groups()
        decoded = np.asarray(Image.open(io.BytesIO(base64.b64decode(encoded))).convert("RGB"))
        assert np.abs(decoded.astype(int) - images[1].images[image_id]).max() <= (0 if kind == "png" else 12)


def test_a_second_store_is_matched_by_id_and_a_different_one_refused(tmp_path, images):
    from embedkit.errors import StoreError
    from embedkit.eval.explore import explorer_data
    from embedkit.store.store import open_store

    a, b = _store(tmp_path, images, "a.h5", seed=0), _store(tmp_path, images, "b.h5", seed=1)
    calls = []
    data = explorer_data([a, b], "toy/test", k=3, max_points=50, on_progress=lambda *call: calls.append(call))
    assert calls[0] == (0, 5) and calls[-1] == (5, 5)  # per store: its PCA map, then neighbours; then thumbnails
    assert [done for done, _ in calls] == sorted(done for done, _ in calls) and {t for _, t in calls} == {5}
    group_b = open_store(b).read("toy/test")
    rows_b = group_b.rows_of_ids(data["ids"])
    order, _ = _brute_force(group_b.embeddings, rows_b, 3, False)
    assert [m["name"] for m in data["models"]] == ["a", "b"]
    np.testing.assert_array_equal(np.reshape(data["models"][1]["near"], (-1, 3)), group_b.ids[order])
    other = tmp_path / "other.h5"
    open_store(other, create=True).write_group(
        "toy/test", np.ones((5, 6), np.float32), np.zeros(5, np.int64), ids=np.arange(1000, 1005)
    )
    with pytest.raises(StoreError, match="must hold the same images"):
        explorer_data([a, other], "toy/test")


def test_no_text_from_the_store_can_close_the_pages_script(tmp_path, images):
    from embedkit.eval.explore import write_explorer

    hostile = ("</script><script>alert(1)</script>", "bee", "cat")
    path = _store(tmp_path, images, "a.h5", seed=0, class_names=hostile)
    page = write_explorer([path], "toy/test", tmp_path / "page.html").path
    text = page.read_text()
    assert text.count("</script>") == 2  # the data's and the code's, nothing from the store
    assert _page_data(page)["class_names"][0] == hostile[0]


def test_cli_writes_the_page_and_prints_its_json(tmp_path, images, runner, cli_app):
    path = _store(tmp_path, images, "a.h5", seed=0)
    out = tmp_path / "pages" / "x.html"
    result = runner.invoke(cli_app, ["explore", str(path), "--group", "toy/test", "--out", str(out), "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["page"] == str(out) and summary["points"] == 3 * N_PER_CLASS and summary["models"] == ["a"]
    assert summary["size_bytes"] == out.stat().st_size
    assert len(_page_data(out)["models"][0]["near"]) == 3 * N_PER_CLASS * summary["k"]


def test_cli_refuses_to_overwrite_what_is_not_a_page(tmp_path, images, runner, cli_app):
    path = _store(tmp_path, images, "a.h5", seed=0)
    for target in (path, tmp_path / "notes.txt"):
        if not target.exists():
            target.write_text("my notes\n")
        before = target.read_bytes()
        result = runner.invoke(cli_app, ["explore", str(path), "-g", "toy/test", "--out", str(target)])
        assert result.exit_code == 1, result.output
        assert result.output.startswith("error: ") and len(result.output.strip().splitlines()) == 1, result.output
        assert target.read_bytes() == before


# ---------------------------------------------------------------- in a real browser


def _open_explorer(chromium, page_path):
    from browser_helpers import open_page

    return open_page(chromium, page_path, wait_for="window.explorer && window.explorer.ready")


def _click_point(page, index: int) -> None:
    """A real mouse click where the page draws point `index`."""
    x, y = page.evaluate(f"window.explorer.pointOnScreen({index})")
    box = page.locator("#map").bounding_box()
    page.mouse.click(box["x"] + x, box["y"] + y)


def _shown_ids(page, row: str) -> list[int]:
    return [int(i) for i in page.eval_on_selector_all(f"#{row} .cell", "cells => cells.map(c => c.dataset.id)")]


@pytest.mark.slow
def test_clicking_a_point_shows_the_neighbours_of_embedkit_neighbors(tmp_path, images, runner, cli_app, chromium):
    a, b = _store(tmp_path, images, "a.h5", seed=0), _store(tmp_path, images, "b.h5", seed=1)
    out = tmp_path / "explore.html"
    result = runner.invoke(cli_app, ["explore", str(a), str(b), "-g", "toy/test", "--out", str(out), "-k", "5"])
    assert result.exit_code == 0, result.output
    page, log = _open_explorer(chromium, out)
    ids = page.evaluate("window.explorer.ids")
    for index in (0, 37, 89):
        _click_point(page, index)
        query = ids[index]
        assert _shown_ids(page, "query") == [query]
        for row, extra in (("nearest", []), ("farthest", ["--farthest"])):
            for store, model in ((a, "0"), (b, "1")):
                page.select_option("#model", model)
                cli = runner.invoke(
                    cli_app,
                    ["neighbors", str(store), "-g", "toy/test", "--ids", str(query), "-k", "5", "--json", *extra],
                )
                expected = json.loads(cli.stdout)["results"][0]["ids"]
                assert _shown_ids(page, row) == expected, (index, row, store.name)
            page.select_option("#model", "0")
    # Hover shows the image, its class and id; every image in the page decoded.
    x, y = page.evaluate("window.explorer.pointOnScreen(3)")
    box = page.locator("#map").bounding_box()
    page.mouse.move(box["x"] + x, box["y"] + y)
    hover = page.locator("#hover")
    assert hover.is_visible() and f"id {ids[3]}" in hover.inner_text()
    broken = page.evaluate("[...document.images].filter(i => i.src && !(i.complete && i.naturalWidth > 0)).length")
    assert broken == 0
    assert log.console_errors == [] and log.page_errors == []
    assert log.other_files == [], "the explorer must be one file that requests nothing"
    page.context.close()


@pytest.mark.slow
def test_the_class_filter_hides_points_from_the_map_and_the_mouse(tmp_path, images, runner, cli_app, chromium):
    path = _store(tmp_path, images, "a.h5", seed=0)
    out = tmp_path / "explore.html"
    assert runner.invoke(cli_app, ["explore", str(path), "-g", "toy/test", "--out", str(out)]).exit_code == 0
    page, log = _open_explorer(chromium, out)
    labels = _page_data(out)["labels"]
    index = labels.index(1)
    page.uncheck('#classes input[data-label="1"]')
    _click_point(page, index)
    assert _shown_ids(page, "query") != [page.evaluate("window.explorer.ids")[index]]
    page.check('#classes input[data-label="1"]')
    _click_point(page, index)
    assert _shown_ids(page, "query") == [page.evaluate("window.explorer.ids")[index]]
    assert log.console_errors == [] and log.page_errors == []
    page.context.close()


@pytest.mark.slow
@pytest.mark.realdata
def test_ten_thousand_real_images_make_one_small_page_that_loads_fast(
    real_data_root, tmp_path, runner, cli_app, chromium
):
    """CIFAR-10's whole test split (10,000 images; embeddings: 8x8 pooled pixels) in one page under 25 MB."""
    import time

    from embedkit.data.sources import load_images
    from embedkit.store.store import open_store

    test = load_images("cifar10", "test", real_data_root)
    pooled = test.images.reshape(-1, 8, 4, 8, 4, 3).mean(axis=(2, 4)).reshape(len(test.images), -1) / 255
    store = tmp_path / "pixels.h5"
    open_store(store, create=True).write_group(
        "cifar10/test", pooled.astype(np.float32), test.labels, attrs={"dataset": "cifar10", "split": "test"}
    )
    out = tmp_path / "explore.html"
    args = ["explore", str(store), "-g", "cifar10/test", "--data-root", str(real_data_root), "--out", str(out)]
    summary = json.loads(runner.invoke(cli_app, [*args, "--json"]).stdout)
    assert summary["points"] == summary["images"] == 10_000
    assert summary["size_bytes"] < 25_000_000
    started = time.perf_counter()
    page, log = _open_explorer(chromium, out)
    load_s = time.perf_counter() - started
    assert load_s < 20, f"the page took {load_s:.1f} s to load"
    assert page.evaluate("window.explorer.drawMs()") < 200  # one redraw of 10,000 points
    query = page.evaluate("window.explorer.ids")[1234]
    _click_point(page, 1234)
    cli = runner.invoke(cli_app, ["neighbors", str(store), "-g", "cifar10/test", "--ids", str(query), "--json"])
    assert _shown_ids(page, "nearest") == json.loads(cli.stdout)["results"][0]["ids"]
    assert log.console_errors == [] and log.page_errors == [] and log.other_files == []
    page.context.close()
