"""The bench scripts import most of the project inside functions (after Django is set up), so a
module that moves (as ``config.embedded_pg`` -> ``core.embedded_pg`` did) breaks a bench only when
someone runs it. Every ``import`` in ``bench/`` must name a module and a name that exist."""

import ast
import importlib
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"


def _imports(path: Path):
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name, None
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            for alias in node.names:
                yield node.lineno, node.module, alias.name
        elif isinstance(node, ast.ImportFrom):  # relative: bench is a package
            for alias in node.names:
                yield node.lineno, "bench." + (node.module or ""), alias.name


@pytest.mark.parametrize("path", sorted(BENCH.glob("*.py")), ids=lambda p: p.name)
def test_every_import_of_a_bench_script_resolves(path):
    missing = []
    for lineno, module, name in _imports(path):
        try:
            imported = importlib.import_module(module.rstrip("."))
            if name not in (None, "*") and not hasattr(imported, name):
                importlib.import_module(f"{module}.{name}")  # a submodule
        except ImportError:
            missing.append(f"{path.name}:{lineno} {module} {name or ''}")
    assert missing == []
