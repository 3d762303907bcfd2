"""The docs: docs/cli.md is what `--help` says today, the README stays a newcomer's page that links every docs page."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_cli_reference_is_fresh():
    result = subprocess.run([sys.executable, "docs/gen_cli.py", "--check"], cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_cli_reference_covers_every_command():
    page = (REPO / "docs" / "cli.md").read_text()
    for command in (
        "data",
        "train",
        "encode",
        "add",
        "info",
        "neighbors",
        "pairs",
        "probe",
        "retrieve",
        "anomaly",
        "cluster",
        "plot map",
        "plot losses",
        "baseline laplacian",
        "compare",
        "study",
    ):
        assert f"## `embedkit {command}`" in page, command


def test_readme_is_short_and_links_every_docs_page():
    readme = (REPO / "README.md").read_text()
    assert len(readme.encode()) <= 12 * 1024
    linked = set(re.findall(r"\]\((docs/[\w-]+\.md)", readme))
    pages = {f"docs/{p.name}" for p in (REPO / "docs").glob("*.md")}
    assert pages <= linked, f"not linked from the README: {sorted(pages - linked)}"
    for page in linked:
        assert (REPO / page).exists(), page


def test_readme_results_table_is_the_committed_results_file():
    """Every number in the README's study table comes from the study's results.json under docs/results/ (no
    hand-edited drift): one row per model, named as the store records it."""
    import json

    (path,) = sorted((REPO / "docs/results").glob("study-cpu-*.json"))
    results = json.loads(path.read_text())["models"]
    readme = (REPO / "README.md").read_text()
    assert f"(docs/results/{path.name})" in readme
    for model in results.values():
        cells = [
            f"{100 * model['linear_probe']:.1f}%",
            f"{100 * model['knn_accuracy']:.1f}%",
            f"{model['effective_rank']:.1f}",
            "-" if model["roc_auc_mnist"] is None else f"{model['roc_auc_mnist']:.3f}",
            f"{model['silhouette']:.3f}",
        ]
        row = f"| {model['model']} | " + " | ".join(cells) + " |"
        assert row in readme, row


def test_readme_preset_table_is_the_committed_preset_runs():
    """Every preset run committed under docs/results/ is a row of the README's preset table, numbers as in its file."""
    import json

    readme = (REPO / "README.md").read_text()
    runs = sorted((REPO / "docs/results").glob("preset-*.json"))
    for path in runs:
        run = json.loads(path.read_text())
        for key in (
            "preset",
            "seed",
            "encoder",
            "epochs",
            "train_seconds",
            "linear_probe",
            "knn_accuracy",
            "machine",
            "commit",
            "config",
            "epoch_losses",
        ):
            assert key in run, (path.name, key)
        shared = " (cores shared)" if run.get("timing_note") else ""  # a run whose time is only an upper bound
        row = (
            f"| `{run['preset']}` | {run['seed']} | {run['epochs']} | {run['train_seconds'] / 60:.1f} min{shared} | "
            f"{100 * run['linear_probe']:.1f}% | {100 * run['knn_accuracy']:.1f}% | "
            f"[{path.name}](docs/results/{path.name}) |"
        )
        assert row in readme, row
