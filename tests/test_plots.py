"""Figures are written as PNG files of the size their content implies, and are not blank."""

from __future__ import annotations

import numpy as np
import pytest

from embedkit.eval import plots


def _read(path):
    from matplotlib.image import imread

    image = imread(path)
    assert image.ndim == 3 and image.shape[2] in (3, 4)
    assert image[..., :3].std() > 0.01, f"{path} is blank"
    return image


def test_maps_side_by_side_have_one_panel_per_store(tmp_path, rng):
    xy = rng.normal(size=(60, 2))
    labels = np.repeat([0, 1, 2], 20)
    path = plots.plot_maps([("a", xy, labels), ("b", xy * 2, labels)], ["ant", "bee", "cat"], tmp_path / "m.png")
    assert _read(path).shape[:2] == (500, 1200)  # 5-inch panels + 2-inch legend, at 100 dpi


def test_map_of_unlabelled_points_and_many_classes(tmp_path, rng):
    xy = rng.normal(size=(50, 2))
    labels = np.r_[np.full(10, -1), np.arange(40) % 25]
    assert _read(plots.plot_maps([("a", xy, labels)], (), tmp_path / "m.png")).shape[:2] == (500, 700)


def test_cluster_figure_has_a_row_per_store(tmp_path, rng):
    xy = rng.normal(size=(40, 2))
    clusters, labels = np.arange(40) % 4, np.arange(40) % 2
    centres = np.array([xy[clusters == c].mean(axis=0) for c in range(4)])
    panels = [("a", xy, clusters, labels, centres), ("b", xy, clusters, labels, centres)]
    assert _read(plots.plot_clusters(panels, ["x", "y"], tmp_path / "c.png")).shape[:2] == (1000, 1200)


def test_roc_figure(tmp_path):
    curves = [("a", np.array([0, 0.5, 1]), np.array([0, 0.9, 1]), 0.7), ("b", np.array([0, 1]), np.array([0, 1]), 0.5)]
    assert _read(plots.plot_roc(curves, tmp_path / "sub" / "roc.png")).shape[:2] == (500, 500)


@pytest.mark.parametrize("channels", [3, 1])
def test_image_grid_size_follows_rows_and_columns(tmp_path, rng, channels):
    image = rng.integers(0, 256, size=(8, 8, channels), dtype=np.uint8)
    rows = [("query 1", [(image, "cat"), (None, ""), (image, "dog 0.12")]), ("query 2", [(image, "ant")])]
    path = plots.plot_image_grid(rows, tmp_path / "g.png", column_titles=["query", "", "nearest"], title="t")
    assert _read(path).shape[:2] == (270, 365)  # (0.7 + 2 x 1.0) by (1.4 + 2 x 1.0 + 0.25 for the gap) inches


def test_class_and_cluster_colors_are_distinct():
    for n in (3, 10, 15, 30):
        assert len({tuple(c) for c in plots.class_colors(n)}) == n
        assert len({tuple(c) for c in plots.cluster_colors(n)}) == n
    assert not {tuple(c) for c in plots.class_colors(10)} & {tuple(c) for c in plots.cluster_colors(10)}


def test_ten_clusters_get_ten_distinct_hues():
    from matplotlib.colors import rgb_to_hsv

    hues = np.sort(rgb_to_hsv(plots.cluster_colors(10)[:, :3])[:, 0])
    gaps = np.diff(np.append(hues, hues[0] + 1))  # around the colour wheel
    assert gaps.min() > 0.08, f"hues too close: {hues}"


def test_point_size_and_alpha_follow_the_number_of_points():
    few, many = plots.point_style(200), plots.point_style(10_000)
    assert few[0] > many[0] and few[1] > many[1]
    assert many[0] >= 6 and many[1] >= 0.45  # 10,000 points stay visible: no 1-pixel dots
    assert plots.point_style(1) == plots.point_style(10) == (40.0, 0.95)


def test_distances_print_with_the_decimals_that_tell_them_apart():
    assert plots.distinct_decimals([0.0101, 0.0123, 0.0149]) == 3
    assert plots.distinct_decimals([1.5, 2.25]) == 2
    assert plots.distinct_decimals([0.5, 0.5]) == 2  # equal values need no more digits
    assert plots.distinct_decimals([0.1, 0.1000001]) == 5  # at most 5


def test_the_figure_title_never_overlaps_a_panel_title(tmp_path, rng, monkeypatch):
    figures = []
    monkeypatch.setattr(plots, "_save", lambda fig, path: figures.append(fig) or path)
    xy, labels = rng.normal(size=(60, 2)), np.repeat(np.arange(3), 20)
    centroids = np.zeros((3, 2))
    panels = [(f"model {i}", xy, labels, labels, centroids) for i in range(5)]  # five rows: a 25-inch-tall figure
    plots.plot_clusters(panels, ("a", "b", "c"), tmp_path / "c.png", title="clusters of cifar10/test")
    plots.plot_maps([(f"m{i}", xy, labels) for i in range(5)], ("a", "b", "c"), tmp_path / "m.png", title="maps")
    for fig in figures:
        renderer = fig.canvas.get_renderer()
        suptitle = fig._suptitle.get_window_extent(renderer)
        for ax in fig.axes:
            assert not suptitle.overlaps(ax.title.get_window_extent(renderer)), ax.get_title()
        plots.plt.close(fig)


def test_plot_losses_runs_without_importing_torch(tmp_path):
    """Plotting a finished run's JSON log needs matplotlib, not torch (whose import alone takes seconds)."""
    import json
    import subprocess
    import sys

    run = tmp_path / "run"
    run.mkdir()
    records = [
        {"split": "train", "step": i, "total": 3.0 - i, "inv": 1.0, "var": 1.0, "cov": 1.0 - i / 4} for i in (0, 1)
    ]
    (run / "log.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    script = (
        "import sys\n"
        "from embedkit_cli.main import app\n"
        f"app(['plot', 'losses', {str(run)!r}, '--json'], prog_name='embedkit', standalone_mode=False)\n"
        "print('torch' in sys.modules)\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=True)
    payload, torch_loaded = done.stdout.splitlines()
    assert json.loads(payload)["train_steps"] == 2 and (run / "losses.png").is_file()
    assert torch_loaded == "False"
