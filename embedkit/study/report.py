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

# Linear-probe accuracy of the reference report this project follows (ResNet-18, CIFAR-10).
REFERENCE_PROBE = {
    "vicreg": "72%",
    "no-variance": "17%",
    "neighbour-positives": "32%",
    "latent": "n/a",
    "laplacian": "about chance (10%)",
}
TABLE_COLUMNS = [
    ("linear_probe", "linear probe"),
    ("knn_accuracy", "kNN accuracy"),
    ("effective_rank", "effective rank"),
    ("roc_auc_mnist", "ROC-AUC vs MNIST"),
    ("silhouette", "k-means silhouette"),
]

_STYLE = """
body{font-family:system-ui,sans-serif;max-width:1200px;margin:2em auto;padding:0 1em;color:#222}
table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:4px 10px;text-align:right}
th:first-child,td:first-child{text-align:left}figure{display:inline-block;margin:.5em;vertical-align:top}
figure img{max-width:560px;border:1px solid #eee}figcaption{font-size:.85em;color:#555}
pre{background:#f6f6f6;padding:.6em;overflow:auto;font-size:.8em}
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


def _results_table(models: dict[str, dict]) -> str:
    head = "".join(f"<th>{label}</th>" for _, label in TABLE_COLUMNS)
    rows = []
    for name, metrics in models.items():
        cells = "".join(f"<td>{_fmt(metrics.get(key))}</td>" for key, _ in TABLE_COLUMNS)
        ref = html.escape(REFERENCE_PROBE.get(name, "–"))
        rows.append(f"<tr><td>{html.escape(name)}</td>{cells}<td>{ref}</td></tr>")
    return f"<table><tr><th>model</th>{head}<th>reference probe</th></tr>{''.join(rows)}</table>"


def _figures(section: str, paths: list[str]) -> str:
    items = "".join(
        f'<figure><img src="{html.escape(p)}" alt="{html.escape(Path(p).stem)}">'
        f"<figcaption>{html.escape(Path(p).stem)}</figcaption></figure>"
        for p in paths
    )
    return f"<h2>{html.escape(section)}</h2>{items}"


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


def write_report(out_dir: Path, results: dict, figures: dict[str, list[Path]]) -> Path:
    """Write `index.html`, `results.json` and `figures/` into `out_dir`; return the page's path.

    `results` holds `models` (name -> metrics), `stages` (name -> record) and `environment`;
    `figures` maps a section title to PNG files, which are copied so the folder stands alone.
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
        sections.append(_figures(section, rel))
    env = results.get("environment", {})
    page = (
        f"<!doctype html><html><head><meta charset='utf-8'><title>embedkit study</title><style>{_STYLE}</style>"
        f"</head><body><h1>embedkit study ({html.escape(str(env.get('preset', '')))})</h1>"
        f"<p>{html.escape(json.dumps(env))}</p><h2>Results</h2>{_results_table(results.get('models', {}))}"
        f"{''.join(sections)}{_stages_table(results.get('stages', {}))}{_IMAGE_CHECK}</body></html>"
    )
    _write_atomic(out_dir / "results.json", json.dumps({**results, "figures": linked}, indent=2, default=str))
    page_path = out_dir / "index.html"
    _write_atomic(page_path, page)
    return page_path


def _write_atomic(path: Path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def environment(plan: StudyPlan, device: str) -> dict:
    """Versions, device and plan, printed in the report so every number can be traced."""
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
