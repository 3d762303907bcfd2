"""The study's report: one self-contained HTML page (figures copied beside it) and `results.json`."""

from __future__ import annotations

import html
import json
import platform
import shutil
from dataclasses import asdict
from pathlib import Path

from embedkit import __version__
from embedkit._util.atomic import atomic_path
from embedkit.device import pick_device
from embedkit.eval.compare import evaluation_settings
from embedkit.provenance import code_version
from embedkit.study.plan import StudyPlan
from embedkit.study.runner import StageRecord

# Linear-probe accuracy in the seed report this project follows: a ResNet-18 trained far longer than any preset here
# (its encoder and epochs differ, so these are a direction to look in, not a target for this run).
REFERENCE_PROBE = {
    "vicreg": "72%",
    "no-variance": "17%",
    "neighbour-positives": "32%",
    "latent": "n/a",
    "laplacian": "about chance (10%)",
}
# (key, column, definition, direction): what each number is, and which way is better.
METRICS = [
    (
        "linear_probe",
        "linear probe",
        "accuracy of a logistic regression fitted on the frozen train embeddings, measured on the test embeddings",
        "higher is better",
    ),
    (
        "knn_accuracy",
        "kNN accuracy",
        "accuracy of a majority vote of the 20 nearest train embeddings (cosine)",
        "higher is better",
    ),
    (
        "effective_rank",
        "effective rank",
        "exp of the entropy of the normalised singular values of the test "
        "embeddings: how many dimensions they really use; a collapsed encoder scores near 1",
        "higher is better",
    ),
    (
        "roc_auc_mnist",
        "ROC-AUC vs MNIST",
        "how well the kNN anomaly score (mean distance to the nearest train "
        "embeddings) ranks MNIST digits above CIFAR-10 test images; 0.5 is chance",
        "higher is better",
    ),
    (
        "silhouette",
        "k-means silhouette",
        "silhouette of a k-means clustering of the test embeddings (-1 to 1): how tight and separate the clusters are",
        "higher is better",
    ),
]
# Each row's method in words; {encoder} and the epochs come from the run's environment.
METHOD = {
    "vicreg": "{encoder} encoder trained with VICReg for {vicreg_epochs} epoch(s)",
    "no-variance": "the same encoder, VICReg without its variance term, {ablation_epochs} epoch(s)",
    "neighbour-positives": "the same encoder, VICReg with a nearest neighbour as the second view, "
    "{ablation_epochs} epoch(s)",
    "latent": "no encoder: one free vector per image fitted with the VICReg loss ({latent_epochs} epochs)",
    "laplacian": "no encoder: Laplacian eigenmaps of the kNN graph of PCA-reduced pixels",
}
# Captions in words, by figure file name.
CAPTIONS = {
    "losses": "VICReg loss terms per step (invariance, variance, covariance) while training {model}.",
    "map-pca": "PCA of the CIFAR-10 test embeddings, one panel per model, points coloured by class.",
    "map-tsne": "t-SNE of the CIFAR-10 test embeddings, one panel per model, points coloured by class.",
    "retrieval": "One query image per class, its 5 nearest and its 5 farthest train images (L2) in each model. The "
    "farthest are the few images at the rim of the embedding, so they repeat from query to query.",
    "roc": "ROC curves of the kNN anomaly score: CIFAR-10 test images (normal) against MNIST digits (anomalous).",
    "top-anomalies": "The images with the highest kNN anomaly scores in each model: first the most unusual "
    "CIFAR-10 test images, then the most unusual MNIST digits.",
    "clusters": "k-means clusters of the CIFAR-10 test embeddings (left of each pair) beside the true classes.",
}
SHORT_RUN_EPOCHS = 50

_STYLE = """
body{font-family:system-ui,sans-serif;max-width:1200px;margin:2em auto;padding:0 1em;color:#222;line-height:1.45}
table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:4px 10px;text-align:right}
th:first-child,td:first-child,.text{text-align:left}th small{font-weight:normal;color:#666}
figure{margin:1.5em 0}figure img{width:100%;height:auto;border:1px solid #eee}
figcaption{color:#444;margin-top:.3em}.caveat{background:#fff4d6;border-left:4px solid #e0a800;padding:.6em 1em}
dt{font-weight:600}dd{margin:0 0 .5em 1.5em}pre{background:#f6f6f6;padding:.6em;overflow:auto;font-size:.8em}
.explorer{display:inline-block;padding:.6em 1em;border:1px solid #4e79a7;border-radius:4px;text-decoration:none}
"""
# Marks on <body> how many images the browser actually loaded, so a headless browser can check the page.
_IMAGE_CHECK = (
    "<script>window.addEventListener('load',()=>{const i=[...document.images];"
    "document.body.dataset.images=i.length;"
    "document.body.dataset.loaded=i.filter(x=>x.complete&&x.naturalWidth>0).length;});</script>"
)


def _fmt(value) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.3f}"
    return html.escape(str(value))


def _methods(env: dict) -> dict[str, str]:
    """Each model's method in words, filled in from the environment."""
    plan, encoder = env.get("plan", {}), env.get("encoder", {})
    words = {**plan, "encoder": f"{encoder.get('kind', '?')} ({encoder.get('parameters', 0):,} parameters)"}
    return {
        name: text.format(
            **{k: words.get(k, "?") for k in ("encoder", "vicreg_epochs", "ablation_epochs", "latent_epochs")}
        )
        for name, text in METHOD.items()
    }


def _results_table(models: dict[str, dict], env: dict) -> str:
    head = "".join(f"<th>{label}<br><small>{direction}</small></th>" for _, label, _, direction in METRICS)
    methods = _methods(env)
    rows = []
    for name, metrics in models.items():
        cells = "".join(f"<td>{_fmt(metrics.get(key))}</td>" for key, *_ in METRICS)
        ref = html.escape(REFERENCE_PROBE.get(name, "–"))
        method = html.escape(methods.get(name, ""))
        rows.append(f"<tr><td>{html.escape(name)}</td><td class='text'>{method}</td>{cells}<td>{ref}</td></tr>")
    definitions = "".join(
        f"<dt>{label} ({direction})</dt><dd>{html.escape(text)}</dd>" for _, label, text, direction in METRICS
    )
    return (
        f"<table><tr><th>model</th><th class='text'>method</th>{head}<th>seed report's linear probe<br>"
        f"<small>ResNet-18, long training</small></th></tr>{''.join(rows)}</table>"
        "<p><small>The last column is from the seed report this study follows: its encoder (ResNet-18) and its "
        "training (hundreds of epochs) differ from this run's, so compare directions, not values.</small></p>"
        f"<dl>{definitions}</dl>"
    )


def _reading(models: dict[str, dict]) -> str:
    """What the numbers say, in sentences generated from them (never written before the run)."""
    get = lambda name, key: (models.get(name) or {}).get(key)  # noqa: E731
    lines = []
    rank_v, rank_nv = get("vicreg", "effective_rank"), get("no-variance", "effective_rank")
    if rank_v is not None and rank_nv is not None:
        if rank_nv < rank_v / 2:
            verdict = "the embeddings collapse into far fewer dimensions"
        elif rank_nv < rank_v:
            verdict = "somewhat fewer dimensions, not (yet) a collapse"
        else:
            verdict = "no collapse shows"
        lines.append(
            f"Without the variance term the effective rank goes from {rank_v:.1f} (VICReg) to {rank_nv:.1f}: {verdict}."
        )
    for key, what in (
        ("linear_probe", "the highest linear-probe accuracy"),
        ("roc_auc_mnist", "separates MNIST from CIFAR-10 best"),
    ):
        scored = {name: m[key] for name, m in models.items() if m.get(key) is not None}
        if scored:
            best = max(scored, key=scored.get)
            lines.append(f"<b>{html.escape(best)}</b> {what} ({scored[best]:.3f}).")
    baselines = [
        f"{name} {get(name, 'linear_probe'):.3f}"
        for name in ("latent", "laplacian")
        if get(name, "linear_probe") is not None
    ]
    if baselines:
        lines.append(
            "The latent and Laplacian rows learn no encoder (they embed only the images they were fitted "
            f"on); their linear probes ({', '.join(baselines)}) are the floor a trained encoder should beat."
        )
    return "<h2>Reading the results</h2><ul>" + "".join(f"<li>{line}</li>" for line in lines) + "</ul>"


def _caveat(env: dict) -> str:
    plan = env.get("plan", {})
    epochs = plan.get("vicreg_epochs", 0)
    if plan.get("preset") == "smoke":
        return (
            f"<p class='caveat'><b>Smoke run.</b> {epochs} epoch(s) on a few hundred images: these numbers show "
            "that every stage works, not what the methods can do.</p>"
        )
    if epochs < SHORT_RUN_EPOCHS:
        return (
            f"<p class='caveat'><b>Short run.</b> VICReg trained for {epochs} epochs (papers train for hundreds): "
            "read differences between the rows, not the absolute values.</p>"
        )
    return ""


def _environment_table(env: dict, stages: dict[str, dict]) -> str:
    plan, code, encoder = env.get("plan", {}), env.get("code", {}), env.get("encoder", {})
    total = sum(s.get("seconds") or 0 for s in stages.values())
    commit = code.get("git_commit") or "not a git checkout"
    rows = [
        ("preset", env.get("preset")),
        ("encoder", f"{encoder.get('kind', '?')}, {encoder.get('parameters', 0):,} parameters"),
        (
            "epochs",
            f"VICReg {plan.get('vicreg_epochs')}, ablations {plan.get('ablation_epochs')}, "
            f"latent {plan.get('latent_epochs')}",
        ),
        (
            "images",
            f"train subset {plan.get('train_subset') or 'all'}, per split {plan.get('images_per_split') or 'all'}",
        ),
        ("device", f"{env.get('device')} ({env.get('cpu')})"),
        (
            "versions",
            f"embedkit {env.get('embedkit')}, Python {env.get('python')}, torch {env.get('torch')}, "
            f"faiss {env.get('faiss')}, scikit-learn {env.get('scikit-learn')}, h5py {env.get('h5py')}",
        ),
        ("git commit", f"{commit}{' (uncommitted changes)' if code.get('git_dirty') else ''}"),
        ("total time", f"{total / 60:.1f} min over {len(stages)} stages"),
    ]
    body = "".join(f"<tr><th>{k}</th><td class='text'>{html.escape(str(v))}</td></tr>" for k, v in rows)
    return f"<h2>Environment</h2><table>{body}</table>"


def _caption(src: str, section: str) -> str:
    stem = Path(src).stem.split("--")[-1]
    key = "losses" if stem.startswith("losses-") else stem
    text = CAPTIONS.get(key, section)
    return text.format(model=stem.removeprefix("losses-"))


def _figures(section: str, paths: list[str]) -> str:
    items = "".join(
        f'<figure><a href="{html.escape(p)}" title="open at full size"><img src="{html.escape(p)}" '
        f'alt="{html.escape(_caption(p, section))}"></a><figcaption>{html.escape(_caption(p, section))}'
        "</figcaption></figure>"
        for p in paths
    )
    return f"<h2>{html.escape(section)}</h2>{items}"


def _explorer(paths: list[str]) -> str:
    links = "".join(f'<a class="explorer" href="{html.escape(p)}">Open the explorer</a> ' for p in paths)
    return (
        "<h2>Explorer</h2><p>One offline page (no server, nothing to install) with the VICReg model's map of the "
        "test images: hover a point to see its image, click it for its nearest and farthest images.</p>" + links
    )


def _stages_table(stages: dict[str, dict]) -> str:
    rows = "".join(
        f"<tr><td>{html.escape(name)}</td><td>{_fmt(s.get('seconds'))}</td><td>{_fmt(s.get('finished'))}</td>"
        f"<td>{'skipped (done before)' if s.get('skipped') else 'ran'}</td></tr>"
        for name, s in stages.items()
    )
    configs = "".join(
        f"<details><summary>{html.escape(name)}</summary><pre>{html.escape(json.dumps(s.get('config'), indent=2))}"
        f"</pre></details>"
        for name, s in stages.items()
    )
    return (
        "<h2>Stages</h2><table><tr><th>stage</th><th>seconds</th><th>finished (UTC)</th><th>this run</th></tr>"
        f"{rows}</table>{configs}"
    )


PURPOSE = (
    "This run trains a VICReg encoder on CIFAR-10 and two ablations of it (without the variance term; with a "
    "nearest neighbour as the second view), fits two baselines that learn no encoder (latent optimisation, "
    "Laplacian eigenmaps), and compares their embeddings of the CIFAR-10 test images: how linearly separable the "
    "classes are, how many dimensions the embeddings use, how well they tell MNIST digits apart, how they cluster."
)


def write_report(out_dir: Path, results: dict, figures: dict[str, list[Path]]) -> Path:
    """Write `index.html`, `results.json` and `figures/` into `out_dir`; return the page's path.

    `results` holds `models` (name -> metrics), `stages` (name -> record) and `environment`; `figures` maps a
    section title to PNG files (and HTML pages, linked rather than shown), copied so the folder stands alone.
    """
    out_dir = Path(out_dir)
    fig_dir = out_dir / "figures"
    fig_dir.mkdir(parents=True, exist_ok=True)
    sections = []
    linked: dict[str, list[str]] = {}
    for section, paths in figures.items():
        rel = []
        for src in paths:
            src = Path(src)
            slug = section.lower().replace(" ", "-")
            dst = fig_dir / f"{slug}--{src.parent.name}--{src.name}"
            shutil.copyfile(src, dst)
            rel.append(f"figures/{dst.name}")
        linked[section] = rel
        pages = [p for p in rel if p.endswith(".html")]
        sections.append(_explorer(pages) if pages else _figures(section, rel))
    env, stages, models = results.get("environment", {}), results.get("stages", {}), results.get("models", {})
    page = (
        f"<!doctype html><html lang='en'><head><meta charset='utf-8'><title>embedkit study</title>"
        f"<link rel='icon' href='data:,'><style>{_STYLE}</style></head><body>"
        f"<h1>embedkit study: VICReg on CIFAR-10 ({html.escape(str(env.get('preset', '')))})</h1>"
        f"<p>{PURPOSE}</p>{_caveat(env)}{_environment_table(env, stages)}"
        f"<h2>Results</h2>{_results_table(models, env)}{_reading(models)}"
        f"{''.join(sections)}{_stages_table(stages)}{_IMAGE_CHECK}</body></html>"
    )
    _write_atomic(out_dir / "results.json", json.dumps({**results, "figures": linked}, indent=2, default=str))
    page_path = out_dir / "index.html"
    _write_atomic(page_path, page)
    return page_path


def _write_atomic(path: Path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def environment(plan: StudyPlan, device: str, encoder: dict | None = None) -> dict:
    """Versions, device, plan and the encoder (`{"kind", "parameters"}`), in the report so every number can be
    traced."""
    import faiss
    import h5py
    import sklearn
    import torch

    return {
        "preset": plan.preset,
        "plan": asdict(plan),
        "device": str(pick_device(device)),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "embedkit": __version__,
        "torch": torch.__version__,
        "faiss": faiss.__version__,
        "h5py": h5py.__version__,
        "scikit-learn": sklearn.__version__,
        "cpu": cpu_model(),
        "encoder": encoder,
        "code": code_version(),
        "evaluation": evaluation_settings(anomaly_k=plan.anomaly_k, cluster_k=plan.cluster_k),
    }


def cpu_model() -> str:
    """The processor's model name (Linux /proc/cpuinfo, else platform.processor()), since speeds depend on it."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def stage_summaries(records: dict[str, StageRecord]) -> dict[str, dict]:
    """What the report shows of each stage: seconds, finish time, whether it ran this time, its config."""
    return {
        name: {"seconds": r.seconds, "finished": r.finished, "skipped": r.skipped, "config": r.config}
        for name, r in records.items()
    }
