"""kNN-density anomaly detection: how far is each point from its k nearest reference embeddings?

The score is the mean true L2 distance (not squared) to the k nearest reference rows, PyOD's `KNN(method="mean")`.
Normal points (label 0) and out-of-distribution points (label 1) are scored against the reference; ROC-AUC says how
well the score separates them (1.0 perfect, 0.5 chance). A scored set that IS the reference is scored leave-one-out:
each row's neighbours are the other rows (PyOD's `decision_scores_`), else every row would find itself at distance 0.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from embedkit._util.progress import ProgressFn
from embedkit.errors import ConfigError, StoreError, about
from embedkit.eval.plots import distinct_decimals, plot_image_grid, plot_roc
from embedkit.eval.retrieval import load_group_images
from embedkit.provenance import model_label
from embedkit.search.engines import check_engine, ray_knn, ray_session
from embedkit.search.index import knn
from embedkit.store.store import class_name, open_store
from embedkit.training.encode import encode_to_store


def knn_scores(
    reference: np.ndarray, queries: np.ndarray, k: int, *, leave_one_out: bool = False, engine: str = "local"
) -> np.ndarray:
    """Anomaly score (Q,) float32 of each of `queries` (Q, D): mean L2 distance to its k nearest `reference` rows.

    `leave_one_out`: the queries are the reference rows, in order, and a row is never its own neighbour.
    `engine="ray"`: the same exact search on Ray actors, in an open `ray_session` (the same scores).
    """
    if engine == "ray":
        self_rows = np.arange(len(queries)) if leave_one_out else None
        distances, _ = ray_knn(np.asarray(reference), np.asarray(queries), k, self_rows=self_rows)
    else:
        distances, _ = knn(reference, queries, k, exclude_self=leave_one_out)
    return distances.mean(axis=1, dtype=np.float64).astype(np.float32)


@dataclass(frozen=True)
class AnomalyResult:
    """Scores of the normal then the OOD points, and the ROC curve of telling them apart."""

    k: int
    roc_auc: float
    n_reference: int
    n_normal: int
    n_ood: int
    scores: np.ndarray = field(repr=False)  # (n_normal + n_ood,) float32, normal rows first
    is_ood: np.ndarray = field(repr=False)  # (n_normal + n_ood,) bool
    fpr: np.ndarray = field(repr=False)
    tpr: np.ndarray = field(repr=False)
    leave_one_out: tuple[str, ...] = ()  # scored sets ("normal", "ood") that are the reference: scored leave-one-out

    def to_dict(self) -> dict:
        """The scalar results (what `--json` prints)."""
        normal, ood = self.scores[~self.is_ood], self.scores[self.is_ood]
        return {
            "k": self.k,
            "roc_auc": self.roc_auc,
            "n_reference": self.n_reference,
            "n_normal": self.n_normal,
            "n_ood": self.n_ood,
            "mean_score_normal": float(normal.mean()),
            "mean_score_ood": float(ood.mean()),
            "leave_one_out": list(self.leave_one_out),
        }

    def top(self, n: int) -> np.ndarray:
        """Positions (n,) of the highest scores, most anomalous first (ties: the earlier position)."""
        return np.argsort(-self.scores, kind="stable")[:n]


def detect_anomalies(
    reference: np.ndarray,
    normal: np.ndarray,
    ood: np.ndarray,
    k: int,
    *,
    leave_one_out: tuple[str, ...] = (),
    engine: str = "local",
) -> AnomalyResult:
    """Score `normal` (N, D) and `ood` (M, D) against `reference` (R, D) with `knn_scores`; ROC-AUC with OOD = 1.

    `leave_one_out` names the sets ("normal", "ood") that are the reference rows themselves: scored leave-one-out.
    `engine`: as in `knn_scores`.
    """
    from sklearn.metrics import roc_auc_score, roc_curve

    if len(normal) == 0 or len(ood) == 0:
        raise ConfigError(f"ROC-AUC needs normal and OOD points, got {len(normal)} normal and {len(ood)} OOD")
    scores = np.concatenate(
        [
            knn_scores(reference, normal, k, leave_one_out="normal" in leave_one_out, engine=engine),
            knn_scores(reference, ood, k, leave_one_out="ood" in leave_one_out, engine=engine),
        ]
    )
    is_ood = np.concatenate([np.zeros(len(normal), bool), np.ones(len(ood), bool)])
    fpr, tpr, _ = roc_curve(is_ood, scores)
    return AnomalyResult(
        k=k,
        roc_auc=float(roc_auc_score(is_ood, scores)),
        n_reference=len(reference),
        n_normal=len(normal),
        n_ood=len(ood),
        scores=scores,
        is_ood=is_ood,
        fpr=fpr,
        tpr=tpr,
        leave_one_out=tuple(leave_one_out),
    )


def ood_group_name(ood: str) -> str:
    """`--ood` value -> group: a dataset name means its test split (mnist -> mnist/test); a group stays as is."""
    return ood if "/" in ood else f"{ood}/test"


@dataclass(frozen=True)
class StoreAnomaly:
    """`AnomalyResult` for one store, with the group and id of every scored point (to show the images)."""

    name: str
    store_path: Path
    reference_group: str
    normal_group: str
    ood_group: str
    result: AnomalyResult
    groups: tuple[str, ...] = field(repr=False)  # group of each scored point, aligned with result.scores
    ids: np.ndarray = field(repr=False)  # (n_normal + n_ood,) int64 ids within that group
    labels: np.ndarray = field(repr=False)  # (n_normal + n_ood,) int64 class labels within that group
    group_attrs: dict = field(repr=False, default_factory=dict)  # group name -> its attrs
    encoded: bool = False  # the OOD group was encoded by this call

    @property
    def model(self) -> str:
        """The model behind the store's embeddings (its reference group's provenance), for tables."""
        return model_label(self.group_attrs.get(self.reference_group, {}), self.name)

    def top(self, n: int, *, ood: bool | None = None) -> list[dict]:
        """The `n` most anomalous points: group, id, label, score, whether OOD (what `--json` prints); with `ood`,
        only the OOD (True) or only the normal (False) points."""
        order = self.result.top(n if ood is None else len(self.result.scores))
        if ood is not None:
            order = order[self.result.is_ood[order] == ood][:n]
        return [
            {
                "group": self.groups[i],
                "id": int(self.ids[i]),
                "label": int(self.labels[i]),
                "score": float(self.result.scores[i]),
                "ood": bool(self.result.is_ood[i]),
            }
            for i in order
        ]


def anomaly_store(
    store_path: Path | str,
    ood: str,
    k: int,
    *,
    reference_group: str = "cifar10/train",
    normal_group: str = "cifar10/test",
    data_root: Path | None = None,
    device: str = "auto",
    on_progress: ProgressFn | None = None,
    download: bool = False,
    engine: str = "local",
    ray_address: str | None = None,
) -> StoreAnomaly:
    """Score `normal_group` and the OOD group (`ood`: dataset name or group) against `reference_group`.

    If the OOD group is missing and the reference group's attrs name its checkpoint, it is encoded into the store
    (its images downloaded first when missing, with `download`). `engine="ray"` scores with Ray tasks
    (`embedkit.search.engines`; `ray_address` as there): the same scores and ROC-AUC.
    """
    check_engine(engine, ray_address)
    store_path = Path(store_path)
    ood_group = ood_group_name(ood)
    encoded = ensure_group(
        store_path,
        ood_group,
        reference_group,
        data_root=data_root,
        device=device,
        on_progress=on_progress,
        download=download,
    )
    store = open_store(store_path)
    with store.snapshot():
        reference, normal, outlier = (store.read(g) for g in (reference_group, normal_group, ood_group))
    with about(store_path, f"{reference_group}' -> '{normal_group}', '{ood_group}"):
        same = tuple(role for role, g in (("normal", normal_group), ("ood", ood_group)) if g == reference_group)
        with ray_session(ray_address) if engine == "ray" else contextlib.nullcontext():
            result = detect_anomalies(
                reference.embeddings, normal.embeddings, outlier.embeddings, k, leave_one_out=same, engine=engine
            )
    groups = (normal_group,) * len(normal.ids) + (ood_group,) * len(outlier.ids)
    return StoreAnomaly(
        name=store_path.stem,
        store_path=store_path,
        reference_group=reference_group,
        normal_group=normal_group,
        ood_group=ood_group,
        result=result,
        groups=groups,
        ids=np.concatenate([normal.ids, outlier.ids]),
        labels=np.concatenate([normal.labels, outlier.labels]),
        group_attrs={reference_group: reference.attrs, normal_group: normal.attrs, ood_group: outlier.attrs},
        encoded=encoded,
    )


def ensure_group(
    store_path: Path,
    group: str,
    like_group: str,
    *,
    data_root: Path | None = None,
    device: str = "auto",
    on_progress: ProgressFn | None = None,
    download: bool = False,
) -> bool:
    """Make sure `group` exists, encoding it with the checkpoint of `like_group` if needed. True if it encoded."""
    store = open_store(store_path)
    if group in store:
        return False
    dataset, _, split = group.rpartition("/")
    how = f"encode it first: `embedkit encode CKPT --dataset {dataset} --split {split} --out {store_path}`"
    if like_group not in store:
        raise StoreError(f"{store_path}: group '{like_group}' not found (groups: {', '.join(store.groups())})")
    checkpoint = store.info(like_group).attrs.get("checkpoint")
    if not checkpoint:
        raise StoreError(
            f"{store_path}: group '{group}' not found and group '{like_group}' names no checkpoint "
            f"to encode it with; {how}"
        )
    if not Path(checkpoint).is_file():
        raise StoreError(f"{store_path}: group '{group}' not found and its checkpoint {checkpoint} is gone; {how}")

    encode_to_store(
        Path(checkpoint),
        dataset,
        [split],
        store_path,
        data_root=data_root,
        device=device,
        download=download,
        on_progress=on_progress,
    )
    return True


def draw_roc(results: list[StoreAnomaly], out_path: Path) -> Path:
    """One ROC curve per store (normal vs OOD), with the chance diagonal."""
    first = results[0]
    curves = [(r.name, r.result.fpr, r.result.tpr, r.result.roc_auc) for r in results]
    return plot_roc(curves, out_path, title=f"{first.normal_group} vs {first.ood_group}, k={first.result.k}")


def draw_top_anomalies(results: list[StoreAnomaly], n: int, out_path: Path, *, data_root: Path | None = None) -> Path:
    """Two grid rows per store: the `n` most anomalous images of the normal group, then of the OOD group (the OOD
    set alone would hide the most unusual normal images), captioned with class and score."""
    cache: dict = {}
    rows = []
    for r in results:
        for ood, group in ((False, r.normal_group), (True, r.ood_group)):
            points = r.top(n, ood=ood)
            digits = distinct_decimals([p["score"] for p in points])
            cells = []
            for point in points:
                attrs = r.group_attrs[point["group"]]
                image = load_group_images(attrs, np.array([point["id"]]), data_root, cache)[0]
                cells.append((image, f"{class_name(attrs, point['label'])}\n{point['score']:.{digits}f}"))
            rows.append((f"{r.name}\n{group}", cells))
    first = results[0]
    return plot_image_grid(
        rows,
        out_path,
        title=f"most anomalous of {first.normal_group} + {first.ood_group} "
        f"(mean L2 to {first.result.k} nearest in {first.reference_group})",
    )
