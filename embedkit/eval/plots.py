"""Every figure embedkit draws; the only module that imports matplotlib (Agg backend, PNG files).

Figures have a fixed size in inches at `DPI` and are saved without tight cropping, so their pixel size follows from
their content (panels, grid rows and columns) and nothing else. Several helpers add functions here: each section
is marked with its owner's topic.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from embedkit._util.atomic import atomic_path, check_output  # noqa: E402
from embedkit.errors import ConfigError  # noqa: E402

DPI = 100


def _save(fig, out_path: Path | str) -> Path:
    """Write `fig` as PNG at `DPI` (parents created, atomically), close it, return the path.

    An existing file there that is not a PNG (a store, a log) is refused, never replaced.
    """
    out_path = Path(out_path)
    try:
        check_output(out_path, "png")
        out_path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(out_path) as tmp:
            fig.savefig(tmp, dpi=DPI, format="png")
    finally:
        plt.close(fig)
    return out_path


def check_figures_out(folder: Path | str, names: Sequence[str]) -> Path:
    """Check, before any work, that the figures `names` may be written into `folder`; returns it.

    ConfigError if `folder` is an existing file (a store given as --out) or a figure's name holds a file that is
    not a PNG, so a command fails before it computes, encodes or writes anything.
    """
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise ConfigError(f"{folder}: exists and is not a folder (--out takes a folder for the figures)")
    for name in names:
        check_output(folder / name, "png")
    return folder


# ---------------------------------------------------------------- evaluations: maps, clusters, ROC, image grids

MAP_PANEL_IN = 5.0  # each map panel is square
LEGEND_IN = 2.0  # room on the right for the class legend
ROC_IN = 5.0
CELL_IN = 1.0  # one image (with its caption) in a grid
ROW_LABEL_IN = 1.4  # left margin naming each grid row
HEADER_IN = 0.7  # room above a grid for its title and column titles
GAP_FRACTION = 0.25  # a blank column of a grid, as a fraction of a cell


def class_colors(n: int) -> np.ndarray:
    """(n, 4) RGBA colours, one per class: tab10 up to 10 classes, tab20 up to 20, else a spaced hue wheel."""
    if n <= 10:
        return plt.get_cmap("tab10")(np.arange(n))
    if n <= 20:
        return plt.get_cmap("tab20")(np.arange(n))
    return plt.get_cmap("hsv")(np.linspace(0, 1, n, endpoint=False))


def _label_names(labels: np.ndarray, class_names: Sequence[str]) -> dict[int, str]:
    """Legend text of each label present: its class name if known, else the number; -1 is 'unlabelled'."""
    names = {}
    for label in np.unique(labels):
        label = int(label)
        names[label] = "unlabelled" if label < 0 else (class_names[label] if label < len(class_names) else str(label))
    return names


def cluster_colors(k: int) -> np.ndarray:
    """(k, 4) RGBA colours for clusters: k evenly spaced hues (so 10 clusters read as 10 colours, which tab20b's
    five hue families did not), offset from tab10's so none is exactly a class colour."""
    from matplotlib.colors import hsv_to_rgb

    hues = (np.arange(k) / max(k, 1) + 0.04) % 1.0
    rgb = hsv_to_rgb(np.stack([hues, np.full(k, 0.75), np.full(k, 0.85)], axis=1))
    return np.hstack([rgb, np.ones((k, 1))])


def point_style(n: int) -> tuple[float, float]:
    """Marker area (pt^2) and alpha of a scatter of `n` points: large and solid for a few, small and see-through
    for many, so a map of 200 points and one of 10,000 both read."""
    size = float(np.clip(12_000 / max(n, 1), 6, 40))
    alpha = float(np.clip(1.1 - 0.15 * np.log10(max(n, 1)), 0.45, 0.95))
    return size, alpha


def distinct_decimals(values: Sequence[float], lowest: int = 2, highest: int = 5) -> int:
    """The fewest decimals (from `lowest` to `highest`) at which `values` that differ also print differently."""
    values = [float(v) for v in values]
    for digits in range(lowest, highest):
        if len({f"{v:.{digits}f}" for v in values}) == len(set(values)):
            return digits
    return highest


def _scatter_by(ax, xy: np.ndarray, labels: np.ndarray, class_names: Sequence[str], colors: np.ndarray) -> None:
    """Scatter `xy` (N, 2) coloured by `labels` (N,) with `colors` (C, 4), one legend entry per label (-1 grey)."""
    size, alpha = point_style(len(xy))
    for label, name in _label_names(labels, class_names).items():
        mask = labels == label
        color = (0.6, 0.6, 0.6, 1) if label < 0 else colors[label % len(colors)]
        ax.scatter(xy[mask, 0], xy[mask, 1], s=size, color=color, label=name, alpha=alpha, linewidths=0)
    ax.set_xticks([])
    ax.set_yticks([])


def _n_colors(labels_list: Sequence[np.ndarray], class_names: Sequence[str]) -> int:
    top = max((int(labels.max()) for labels in labels_list if len(labels)), default=-1)
    return max(len(class_names), top + 1)


def plot_maps(
    panels: Sequence[tuple[str, np.ndarray, np.ndarray]],
    class_names: Sequence[str],
    out_path: Path | str,
    *,
    title: str = "",
) -> Path:
    """2-D maps side by side, one per (name, xy (N, 2), labels (N,)) panel, coloured by class with one legend.

    Size: (MAP_PANEL_IN * panels + LEGEND_IN) x MAP_PANEL_IN inches.
    """
    n = len(panels)
    fig, axes = plt.subplots(1, n, figsize=(MAP_PANEL_IN * n + LEGEND_IN, MAP_PANEL_IN), squeeze=False)
    n_colors = _n_colors([labels for _, _, labels in panels], class_names)
    for ax, (name, xy, labels) in zip(axes[0], panels):
        _scatter_by(ax, xy, labels, class_names, class_colors(n_colors))
        ax.set_title(name)
    _legend_right(fig, axes[0][-1], title)
    return _save(fig, out_path)


def _legend_right(fig, ax, title: str) -> None:
    """One legend in the right margin (large markers), the panels in the space left of it."""
    width, height = fig.get_size_inches()
    fig.subplots_adjust(
        left=0.02,
        right=(width - LEGEND_IN) / width - 0.01,
        top=1 - 0.8 / height,
        bottom=0.2 / height,
        wspace=0.05,
        hspace=0.6 / MAP_PANEL_IN,
    )
    handles, names = ax.get_legend_handles_labels()
    legend = fig.legend(handles, names, loc="center right", frameon=False, markerscale=3, fontsize=9)
    for handle in legend.legend_handles:
        handle.set_sizes([30])
    if title:  # 0.15 in from the top edge, whatever the figure's height: clear of the panel titles below it
        fig.suptitle(title, y=1 - 0.15 / height, va="top")


def plot_clusters(
    panels: Sequence[tuple[str, np.ndarray, np.ndarray, np.ndarray, np.ndarray]],
    class_names: Sequence[str],
    out_path: Path | str,
    *,
    title: str = "",
) -> Path:
    """For each (name, xy (N, 2), clusters (N,), labels (N,), centroids_xy (k, 2)): by cluster | by class.

    One row per store; centroids drawn as numbered crosses on both panels.
    Size: (2 * MAP_PANEL_IN + LEGEND_IN) x (MAP_PANEL_IN * rows) inches.
    """
    n = len(panels)
    fig, axes = plt.subplots(n, 2, figsize=(2 * MAP_PANEL_IN + LEGEND_IN, MAP_PANEL_IN * n), squeeze=False)
    n_colors = _n_colors([labels for *_, labels, _ in panels], class_names)
    for row, (name, xy, clusters, labels, centroids) in zip(axes, panels):
        _scatter_by(row[0], xy, clusters, (), cluster_colors(len(centroids)))
        _scatter_by(row[1], xy, labels, class_names, class_colors(n_colors))
        for ax in row:
            ax.scatter(centroids[:, 0], centroids[:, 1], marker="X", s=90, c="black", edgecolors="white")
            for cluster, (cx, cy) in enumerate(centroids):
                if np.isfinite(cx):
                    ax.annotate(str(cluster), (cx, cy), xytext=(4, 4), textcoords="offset points", fontsize=8)
        row[0].set_title(f"{name}: k-means clusters")
        row[1].set_title(f"{name}: classes")
    _legend_right(fig, axes[0][1], title)
    return _save(fig, out_path)


def plot_roc(
    curves: Sequence[tuple[str, np.ndarray, np.ndarray, float]], out_path: Path | str, *, title: str = "ROC"
) -> Path:
    """ROC curves, one per (name, fpr, tpr, auc), with the chance diagonal. Size: ROC_IN x ROC_IN inches."""
    fig, ax = plt.subplots(figsize=(ROC_IN, ROC_IN))
    for name, fpr, tpr, auc in curves:
        ax.plot(fpr, tpr, label=f"{name} (AUC {auc:.3f})", linewidth=1.5)
    ax.plot([0, 1], [0, 1], color="grey", linestyle="--", linewidth=1, label="chance")
    ax.set(
        xlim=(0, 1),
        ylim=(0, 1.01),
        xlabel="false positive rate (normal flagged)",
        ylabel="true positive rate (OOD flagged)",
        title=title,
    )
    ax.legend(loc="lower right", fontsize=8)
    fig.subplots_adjust(left=0.15, right=0.95, top=0.9, bottom=0.12)
    return _save(fig, out_path)


GridCell = tuple[np.ndarray | None, str]  # (image (H, W, C) uint8 or None for a blank cell, caption)


def plot_image_grid(
    rows: Sequence[tuple[str, Sequence[GridCell]]],
    out_path: Path | str,
    *,
    column_titles: Sequence[str] = (),
    title: str = "",
) -> Path:
    """A grid of captioned images, one row per (row name, cells); grey images (H, W, 1) drawn in grey.

    A column that is blank in every row is a narrow gap (GAP_FRACTION of a cell).
    Size: (ROW_LABEL_IN + CELL_IN * (image columns + GAP_FRACTION * gaps)) x (HEADER_IN + CELL_IN * rows) inches.
    """
    n_rows, n_cols = len(rows), max((len(cells) for _, cells in rows), default=1)
    ratios = [
        GAP_FRACTION if all(c >= len(cells) or cells[c][0] is None for _, cells in rows) else 1.0 for c in range(n_cols)
    ]
    width, height = ROW_LABEL_IN + CELL_IN * sum(ratios), HEADER_IN + CELL_IN * n_rows
    fig, axes = plt.subplots(
        n_rows, n_cols, figsize=(width, height), squeeze=False, gridspec_kw={"width_ratios": ratios}
    )
    fig.subplots_adjust(
        left=ROW_LABEL_IN / width, right=0.995, top=1 - HEADER_IN / height, bottom=0.005, wspace=0.08, hspace=0.35
    )
    for r, (row_name, cells) in enumerate(rows):
        axes[r][0].annotate(row_name, (-0.1, 0.5), xycoords="axes fraction", ha="right", va="center", fontsize=8)
        for c in range(n_cols):
            ax = axes[r][c]
            ax.axis("off")
            if c < len(cells) and cells[c][0] is not None:
                _show_image(ax, cells[c][0])
                ax.set_title(cells[c][1], fontsize=6, pad=2)
    for c, name in enumerate(column_titles[:n_cols]):
        axes[0][c].text(0.5, 1.42, name, transform=axes[0][c].transAxes, ha="center", fontsize=8, weight="bold")
    if title:
        fig.suptitle(title, fontsize=10, y=1 - 0.08 / height, va="top")
    return _save(fig, out_path)


def _show_image(ax, image: np.ndarray) -> None:
    image = np.asarray(image)
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[:, :, 0]
    ax.imshow(image, cmap="gray" if image.ndim == 2 else None, vmin=0, vmax=255, interpolation="nearest")
    ax.axis("off")


# ---------------------------------------------------------------- training: loss curves (owner: train)

LOSS_PANEL_IN = 4.0
LOSS_TERMS = (
    ("total", "total loss"),
    ("inv", "invariance"),
    ("var", "variance (both views)"),
    ("cov", "covariance (both views)"),
)


def plot_losses(records: Sequence[dict], out_path: Path | str, *, title: str = "") -> Path:
    """The total loss and its three unweighted terms against the batch index, train and test, in a 2x2 figure.

    records: the JSON lines of a run's `log.jsonl` (keys split, step, total, inv, var, cov). Train lines are drawn
    as a line (from 200 steps on: faint, under a running mean over 1% of the steps); test lines (one per epoch) as
    dots joined by a line.
    Size: 2 x LOSS_PANEL_IN by 2 x LOSS_PANEL_IN inches.
    """
    train = [r for r in records if r.get("split") == "train"]
    test = [r for r in records if r.get("split") == "test"]
    fig, axes = plt.subplots(2, 2, figsize=(2 * LOSS_PANEL_IN, 2 * LOSS_PANEL_IN))
    window = max(1, len(train) // 100)
    for ax, (key, label) in zip(axes.flat, LOSS_TERMS):
        if train:
            steps = np.array([r["step"] for r in train])
            values = np.array([r[key] for r in train], dtype=float)
            if window > 1:
                ax.plot(steps, values, color="tab:blue", alpha=0.3, linewidth=0.6)
                smooth = np.convolve(values, np.ones(window) / window, mode="valid")
                ax.plot(steps[window - 1 :], smooth, color="tab:blue", linewidth=1.2, label="train")
            else:
                ax.plot(steps, values, color="tab:blue", linewidth=1.0, label="train")
        if test:
            ax.plot(
                [r["step"] for r in test],
                [r[key] for r in test],
                "o-",
                color="tab:orange",
                markersize=3,
                linewidth=1.0,
                label="test",
            )
        ax.set_title(label, fontsize=10)
        ax.set_xlabel("batch", fontsize=8)
        ax.tick_params(labelsize=8)
        ax.grid(alpha=0.3)
        if train or test:
            ax.legend(fontsize=8)
    if title:
        fig.suptitle(title, fontsize=11)
    fig.subplots_adjust(left=0.09, right=0.97, top=0.9 if title else 0.94, bottom=0.08, wspace=0.25, hspace=0.35)
    return _save(fig, out_path)
