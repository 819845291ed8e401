"""`stylegan.io` imports point one way: a walk over the `ast` imports of its modules finds no circle.

Issue 15 part 4: `io/load.py` sniffs and dispatches, every reader sits below it, and the official
package's restricted unpickler imports no reader. Function-level imports count too (a lazy import
that closes a loop is still a loop).
"""
import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _resolve(module: str, is_package: bool, node: ast.ImportFrom) -> list[str]:
    if node.level == 0:
        base = node.module or ""
    else:
        pkg = module.split(".") if is_package else module.split(".")[:-1]
        pkg = pkg[: len(pkg) - (node.level - 1)]
        base = ".".join(pkg + ([node.module] if node.module else []))
    return [base] + [f"{base}.{a.name}" for a in node.names]


def import_graph(package: str) -> dict[str, set[str]]:
    """module -> the modules of `package` it imports (anywhere in its body)."""
    files = {_module_name(p): p for p in (SRC / package.replace(".", "/")).rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in files.items():
        deps: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                targets = _resolve(name, path.name == "__init__.py", node)
            elif isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            else:
                continue
            deps |= {t for t in targets if t in files and t != name}
        graph[name] = deps
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}  # 1: on the stack, 2: done

    def visit(node: str, stack: list[str]) -> list[str] | None:
        state[node] = 1
        for dep in sorted(graph.get(node, ())):
            if state.get(dep) == 1:
                return stack[stack.index(dep):] + [dep] if dep in stack else [node, dep]
            if dep not in state and (found := visit(dep, stack + [dep])):
                return found
        state[node] = 2
        return None

    for start in sorted(graph):
        if start not in state and (found := visit(start, [start])):
            return found
    return None


def test_cycle_finder_finds_a_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set(), "c": {"a", "b"}}) is None


def test_io_has_no_import_cycle():
    graph = import_graph("stylegan.io")
    assert "stylegan.io.load" in graph and "stylegan.io.official.unpickler" in graph
    assert find_cycle(graph) is None, f"import cycle: {' -> '.join(find_cycle(graph))}"


@pytest.mark.parametrize("module", ["stylegan.io.checkpoint", "stylegan.io.official.unpickler",
                                    "stylegan.io.official.common", "stylegan.io.official.records"])
def test_low_io_modules_do_not_import_readers_or_dispatchers(module):
    graph = import_graph("stylegan.io")
    high = {"stylegan.io.load", "stylegan.io.official", "stylegan.io.official.pytorch",
            "stylegan.io.official.tf", "stylegan.io.official.tf1", "stylegan.io.rosinality"}
    assert not graph[module] & high, f"{module} imports {sorted(graph[module] & high)}"


def test_nothing_in_io_imports_load():
    graph = import_graph("stylegan.io")
    assert [m for m, deps in graph.items() if "stylegan.io.load" in deps] == []
