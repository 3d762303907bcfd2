"""The package's shape: imports point downward only (no cycle, counting imports inside functions too), the CLI
installs under embedkit's name, and `import embedkit` stays cheap."""

from __future__ import annotations

import ast
import inspect
import subprocess
import sys
from pathlib import Path

import embedkit

PACKAGE = Path(embedkit.__file__).parent
REPO = PACKAGE.parent


def module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph() -> dict[str, set[str]]:
    """{module: embedkit modules it imports anywhere in its source}; `from pkg import name` counts as pkg.name when
    that is a module, else as pkg."""
    modules = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        edges = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                targets = [
                    f"{node.module}.{a.name}" if f"{node.module}.{a.name}" in modules else node.module
                    for a in node.names
                ]
            else:
                continue
            edges |= {t for t in targets if t in modules and t != name}
        graph[name] = edges
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt) :] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_find_cycle_finds_one():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": set()}) is None


def test_no_import_cycle_among_embedkits_modules():
    graph = import_graph()
    assert len(graph) > 30 and "embedkit.search.arrays" in graph["embedkit.search"]
    cycle = find_cycle({name: edges - {"embedkit"} for name, edges in graph.items()})  # the root only re-exports
    assert cycle is None, " -> ".join(cycle)


def test_subpackages_do_not_import_higher_layers():
    """data and store know nothing of search, training, eval or study; eval and training know nothing of study."""
    lower_than = {
        "embedkit.data": ("search", "training", "eval", "study", "baselines"),
        "embedkit.store": ("search", "training", "eval", "study", "baselines", "data"),
        "embedkit.search": ("training", "eval", "study", "baselines"),
        "embedkit.eval": ("study",),
        "embedkit.training": ("study", "eval"),
    }
    for name, edges in import_graph().items():
        for package, banned in lower_than.items():
            if name == package or name.startswith(package + "."):
                bad = [e for e in edges if any(e.startswith(f"embedkit.{b}") for b in banned)]
                assert not bad, f"{name} imports {bad}"


def test_import_embedkit_is_cheap_and_lists_the_api():
    code = (
        "import sys, embedkit; assert 'torch' not in sys.modules and 'faiss' not in sys.modules; "
        "print(sorted(n for n in dir(embedkit) if not n.startswith('_')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    for name in (
        "open_store",
        "knn",
        "KNNDetector",
        "linear_probe",
        "train",
        "TrainConfig",
        "encode",
        "vicreg_loss",
        "StoreError",
    ):
        assert f"'{name}'" in out


def test_cli_installs_as_embedkit_cli_not_cli(tmp_path):
    """Outside the repository nothing named `cli` is importable; the CLI is `embedkit_cli`."""
    code = "import importlib.util as u; print(u.find_spec('cli') is None, u.find_spec('embedkit_cli') is not None)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=tmp_path)
    assert out.stdout.split() == ["True", "True"]


def test_no_public_name_shadows_a_module():
    """`from embedkit.search import knn` must not hide a module `embedkit.search.knn` (mock.patch paths break)."""
    import importlib

    for path in PACKAGE.rglob("*.py"):
        name = module_name(path)
        importlib.import_module(name)
    for path in PACKAGE.rglob("*.py"):
        name = module_name(path)
        parent, _, leaf = name.rpartition(".")
        if parent and leaf != "__init__":
            assert inspect.ismodule(getattr(sys.modules[parent], leaf)), f"{parent}.{leaf} is not the module"


def test_every_subpackage_is_listed_for_installation():
    """pyproject lists the packages explicitly (cli/ installs as embedkit_cli): a new subpackage must be added."""
    import tomllib

    listed = set(tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    found = {module_name(init) for init in PACKAGE.rglob("__init__.py")} | {"embedkit_cli"}
    assert listed == found
