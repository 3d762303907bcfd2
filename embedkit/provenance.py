"""Which code produced a result: embedkit's version, the git commit of its checkout, and whether it had edits.

Study stages are keyed by it (a code change reruns them instead of silently reusing stale outputs) and reports
print it, so every number can be traced to the code that computed it.
"""

from __future__ import annotations

import hashlib
import subprocess
from collections.abc import Mapping
from functools import lru_cache
from pathlib import Path

from embedkit import __version__

PACKAGE = Path(__file__).resolve().parent


@lru_cache(maxsize=1)
def code_version() -> dict:
    """{"embedkit": version, "git_commit": sha or None, "git_dirty": bool or None, "source_digest": sha256[:16]}.

    `git_*` are None outside a git checkout (an installed wheel); `source_digest` hashes every .py file of the
    package, so two different uncommitted states never share a key.
    """
    digest = hashlib.sha256()
    for path in sorted(PACKAGE.rglob("*.py")):
        digest.update(str(path.relative_to(PACKAGE)).encode() + b"\0" + path.read_bytes())
    return {"embedkit": __version__, **_git_state(PACKAGE.parent), "source_digest": digest.hexdigest()[:16]}


def model_label(attrs: Mapping, fallback: str) -> str:
    """How a table names the model behind a store group: the training recipe its provenance records
    (`vicreg (small, 6 ep)`, `no-variance (small, 2 ep)`, `neighbour-positives (small, 2 ep, 5,000 img)`), the
    `method` of a baseline, else `fallback` (the store's file stem, for embeddings added from another model)."""
    config = attrs.get("config")
    if isinstance(config, Mapping) and "encoder" in config and "epochs" in config:
        kind = "neighbour-positives" if config.get("positives") else "vicreg"
        kind = "no-variance" if config.get("mu") == 0 else kind
        subset = f", {config['subset']:,} img" if config.get("subset") else ""
        return f"{kind} ({config['encoder']}, {config['epochs']} ep{subset})"
    return str(attrs.get("method") or fallback)


def _git_state(repo: Path) -> dict:
    def git(*args: str) -> str | None:
        try:
            done = subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True, timeout=10)
        except (OSError, subprocess.TimeoutExpired):
            return None
        return done.stdout.strip() if done.returncode == 0 else None

    if git("rev-parse", "--show-toplevel") != str(repo):  # embedkit's own checkout, not some enclosing repo
        return {"git_commit": None, "git_dirty": None}
    status = git("status", "--porcelain", "--untracked-files=no")
    return {"git_commit": git("rev-parse", "HEAD"), "git_dirty": None if status is None else bool(status)}
