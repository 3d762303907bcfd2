"""The stages of `embedkit study`, each a call into the library with the config that keys it."""

from __future__ import annotations

import shutil
from pathlib import Path

from embedkit._util.progress import ProgressFn
from embedkit.baselines.laplacian import fit_laplacian_to_store
from embedkit.baselines.latent import LatentConfig, fit_latent_to_store
from embedkit.data.sources import load_images
from embedkit.eval.compare import evaluate_store as evaluate_one
from embedkit.search.index import make_pairs
from embedkit.study.figures import draw_all
from embedkit.study.plan import DATASET, ENCODER_MODELS, MODELS, OOD_GROUP, TEST_GROUP, TRAIN_GROUP
from embedkit.study.report import environment, stage_summaries, write_report
from embedkit.study.runner import Stage, StageRecord
from embedkit.training.config import PRESETS, make_config
from embedkit.training.encode import encode_to_store
from embedkit.training.loop import train
from embedkit.training.models import encoder_parameters


def build_stages(
    plan, paths, *, data_root: Path | None, device: str, on_progress: ProgressFn | None, records: dict[str, StageRecord]
) -> list[Stage]:
    """Every stage in order; `records` is filled by the runner as stages finish (the report reads it)."""
    data = {
        "dataset": DATASET,
        "data_root": str(data_root or ""),
        "seed": plan.seed,
        "images_per_split": plan.images_per_split,
    }
    stages: list[Stage] = []
    for model in ENCODER_MODELS:
        stages += _encoder_stages(model, plan, paths, data, data_root, device, on_progress)
    stages.insert(
        2,
        Stage(
            "pairs",
            f"neighbour pairs (k={plan.pairs_k}) on the VICReg store",
            {"k": plan.pairs_k, "group": TRAIN_GROUP},
            lambda: _make_pairs(paths, plan, on_progress),
            outputs=(paths.pairs,),
            after=("encode-vicreg",),
        ),
    )
    stages.append(_latent_stage(plan, paths, data, data_root, device, on_progress))
    stages.append(
        Stage(
            "fit-laplacian",
            "Laplacian eigenmaps of the raw pixels",
            {**data, "pca_dim": plan.laplacian_pca},
            lambda: _fit_laplacian(paths, plan, data_root, on_progress),
            outputs=(paths.store("laplacian"),),
        )
    )
    for model in MODELS:
        upstream = f"encode-{model}" if model in ENCODER_MODELS else f"fit-{model}"
        stages.append(
            Stage(
                f"evaluate-{model}",
                f"evaluate {model}",
                {"k_anomaly": plan.anomaly_k, "k_cluster": plan.cluster_k},
                lambda m=model: evaluate_store(paths.store(m), plan, data_root, device),
                after=(upstream,),
            )
        )
    evaluations = tuple(f"evaluate-{m}" for m in MODELS)
    stages.append(
        Stage(
            "figures",
            "figures: losses, maps, retrieval, ROC, anomalies, clusters; the explorer",
            {"tsne_points": plan.tsne_points, "explorer": "vicreg"},
            lambda: draw_figures(paths, plan, data_root),
            after=evaluations,
        )
    )
    stages.append(
        Stage(
            "report",
            "HTML report",
            {},
            lambda: _write_report(paths, plan, device, records),
            outputs=(paths.report / "index.html",),
            after=("figures",),
            always=True,
        )
    )
    return stages


def _encoder_stages(model, plan, paths, data, data_root, device, on_progress) -> list[Stage]:
    # The pairs file exists only once the "pairs" stage ran, so the config is made when the stage runs; its key
    # holds everything else plus the pairs path (whose content is keyed by the upstream "pairs" stage).
    overrides = {"no-variance": {"mu": 0.0}}.get(model, {})
    positives = str(paths.pairs) if model == "neighbour-positives" else None
    epochs = plan.vicreg_epochs if model == "vicreg" else plan.ablation_epochs
    settings = dict(epochs=epochs, subset=plan.train_subset, seed=plan.seed, test_images=plan.test_images, **overrides)
    key = {**data, "train": make_config(plan.train_preset, **settings).to_dict(), "positives": positives}
    after = ("pairs",) if positives else ()
    checkpoint = paths.run(model) / "last.pt"

    def run_training() -> dict:
        config = make_config(plan.train_preset, positives=positives, **settings)
        return _train(config, paths.run(model), data_root, device, on_progress)

    return [
        Stage(f"train-{model}", f"train {model}", key, run_training, outputs=(checkpoint,), after=after),
        Stage(
            f"encode-{model}",
            f"encode CIFAR-10 and MNIST with {model}",
            {**data, "groups": [TRAIN_GROUP, TEST_GROUP, OOD_GROUP]},
            lambda: _encode(checkpoint, paths.store(model), plan, data_root, device, on_progress),
            outputs=(paths.store(model),),
            after=(f"train-{model}",),
        ),
    ]


def _train(config, run_dir: Path, data_root, device, on_progress) -> dict:
    shutil.rmtree(run_dir, ignore_errors=True)  # an interrupted earlier attempt restarts from scratch
    train_set = load_images(config.dataset, "train", data_root)
    test_set = load_images(config.dataset, "test", data_root)
    result = train(config, run_dir, train_set, test_set, device=device, on_progress=on_progress)
    return result.to_json()


def _encode(checkpoint: Path, store: Path, plan, data_root, device, on_progress) -> dict:
    subset = dict(subset=plan.images_per_split, seed=plan.seed)
    groups = encode_to_store(
        checkpoint,
        DATASET,
        ["train", "test"],
        store,
        data_root=data_root,
        device=device,
        overwrite=True,
        on_progress=on_progress,
        **subset,
    )
    groups += encode_to_store(
        checkpoint,
        "mnist",
        ["test"],
        store,
        data_root=data_root,
        device=device,
        overwrite=True,
        on_progress=on_progress,
        **subset,
    )
    return {"store": str(store), "groups": groups}


def _make_pairs(paths, plan, on_progress) -> dict:
    make_pairs(paths.store("vicreg"), TRAIN_GROUP, plan.pairs_k, paths.pairs, on_progress=on_progress)
    return {"pairs": str(paths.pairs)}


def _latent_stage(plan, paths, data, data_root, device, on_progress) -> Stage:
    config = LatentConfig(epochs=plan.latent_epochs, k=plan.pairs_k, seed=plan.seed)
    return Stage(
        "fit-latent",
        "latent optimization (no encoder) on train and test",
        {**data, "latent": config.to_dict()},
        lambda: fit_latent_to_store(
            paths.store("vicreg"), paths.store("latent"), config, device=device, on_progress=on_progress
        ).to_json(),
        outputs=(paths.store("latent"),),
        after=("encode-vicreg",),
    )


def _fit_laplacian(paths, plan, data_root, on_progress) -> dict:
    run = fit_laplacian_to_store(
        DATASET,
        paths.store("laplacian"),
        pca_dim=plan.laplacian_pca,
        data_root=data_root,
        overwrite=True,
        seed=plan.seed,
        subset=plan.images_per_split,
        on_progress=on_progress,
    )
    return run.to_json()


def evaluate_store(store: Path, plan, data_root, device) -> dict:
    """The report's numbers for one model (see `embedkit.eval.compare.evaluate_store`), with the plan's settings."""
    return evaluate_one(
        store, anomaly_k=plan.anomaly_k, cluster_k=plan.cluster_k, seed=plan.seed, data_root=data_root, device=device
    )


def draw_figures(paths, plan, data_root) -> dict:
    """Every figure of the report, models side by side; returns {section: [png paths]}."""
    return draw_all(paths, plan, data_root)


def _encoder(plan) -> dict:
    """The encoder the plan trains: its kind and parameter count."""
    kind = PRESETS[plan.train_preset]["encoder"]
    return {"kind": kind, "parameters": encoder_parameters(kind)}


def _write_report(paths, plan, device, records: dict[str, StageRecord]) -> dict:
    results = {
        "environment": environment(plan, device, _encoder(plan)),
        "models": {m: records[f"evaluate-{m}"].results for m in MODELS},
        "stages": stage_summaries(records),
    }
    page = write_report(paths.report, results, records["figures"].results)
    return {"page": str(page), "results": str(page.parent / "results.json"), "models": results["models"]}
