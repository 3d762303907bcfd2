"""The study's figures, every model side by side, drawn from the stores and runs it wrote."""

from __future__ import annotations

from pathlib import Path

from embedkit.eval.anomaly import anomaly_store, draw_roc, draw_top_anomalies
from embedkit.eval.cluster import draw_clusters
from embedkit.eval.explore import write_explorer
from embedkit.eval.maps import draw_maps
from embedkit.eval.plots import plot_losses
from embedkit.eval.retrieval import draw_retrieval, retrieve_stores
from embedkit.study.plan import ENCODER_MODELS, MODELS, OOD_GROUP, TEST_GROUP, TRAIN_GROUP
from embedkit.training.log import read_log


def draw_all(paths, plan, data_root: Path | None) -> dict[str, list[str]]:
    """Loss curves, PCA and t-SNE maps, retrieval grids, ROC curves, anomalies, clusters: {section: [png]}, and
    the explorer page of the VICReg store: {"Explorer": [html]}."""
    stores = [paths.store(m) for m in MODELS]
    out = paths.figures
    return {
        "Loss curves": [str(_losses(paths.run(m), out / f"losses-{m}.png", m)) for m in ENCODER_MODELS],
        "Maps": [str(_maps(stores, method, plan, out / f"map-{method}.png")) for method in ("pca", "tsne")],
        "Retrieval": [str(_retrieval(stores, data_root, out / "retrieval.png"))],
        **_anomalies([paths.store(m) for m in ENCODER_MODELS], plan, data_root, out),
        "Clustering": [str(_clusters(stores, plan, out / "clusters.png"))],
        "Explorer": [str(_explorer(paths.store("vicreg"), plan, data_root, out / "explore-vicreg.html"))],
    }


def _losses(run_dir: Path, out: Path, model: str) -> Path:
    return plot_losses(read_log(run_dir), out, title=f"{model}: VICReg loss terms")


def _maps(stores: list[Path], method: str, plan, out: Path) -> Path:
    return draw_maps(stores, TEST_GROUP, method, out, max_points=plan.tsne_points, seed=plan.seed)[1]


def _retrieval(stores: list[Path], data_root, out: Path) -> Path:
    return draw_retrieval(retrieve_stores(stores, TRAIN_GROUP, 5, per_class=1), out, data_root=data_root)


def _anomalies(stores: list[Path], plan, data_root, out: Path) -> dict[str, list[str]]:
    results = [anomaly_store(s, OOD_GROUP, plan.anomaly_k, data_root=data_root) for s in stores]
    roc = draw_roc(results, out / "roc.png")
    top = draw_top_anomalies(results, 7, out / "top-anomalies.png", data_root=data_root)
    return {"ROC curves (CIFAR-10 test vs MNIST)": [str(roc)], "Most anomalous images": [str(top)]}


def _clusters(stores: list[Path], plan, out: Path) -> Path:
    return draw_clusters(stores, TEST_GROUP, plan.cluster_k, out, max_points=plan.tsne_points, seed=plan.seed)[1]


def _explorer(store: Path, plan, data_root, out: Path) -> Path:
    return write_explorer([store], TEST_GROUP, out, seed=plan.seed, data_root=data_root).path
