"""The package's imports run one way: no circle, and no arrow from a lower layer to a higher one.

The layers are docs/architecture.md's map. Every import counts, at module level or inside a
function: a function-level import that points up is still an upward arrow, and one that closes a
circle only hides it until the function runs. The graph is read from the source with `ast`, so
the test needs nothing importable and names the offending file and line.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"
PKG = "stylegan"

# Lower layers first; a module may import its own layer (without circles) and the layers below.
LAYERS: tuple[tuple[str, ...], ...] = (
    ("ops", "util", "device", "distributed", "version"),
    ("nn",),
    ("models",),
    ("perf",),
    ("io",),
    ("data",),
    ("metrics",),
    ("synth",),
    ("training",),
    ("selftest", "explore"),
    ("cli", "__main__", ""),  # "" is the package itself (stylegan/__init__.py)
)
RANK = {name: i for i, names in enumerate(LAYERS) for name in names}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted((SRC / PKG).rglob("*.py"))}


def resolve(importer: str, is_package: bool, node: ast.ImportFrom | ast.Import, known: set[str]) -> list[str]:
    """The stylegan modules an import statement loads (a `from X import name` loads X.name when
    that is a module, else X)."""
    if isinstance(node, ast.Import):
        return [a.name for a in node.names if a.name.split(".")[0] == PKG and a.name in known]
    if node.level:
        base = importer.split(".") if is_package else importer.split(".")[:-1]
        base = base[: len(base) - (node.level - 1)]
        target = ".".join(base + ([node.module] if node.module else []))
    else:
        target = node.module or ""
    if target.split(".")[0] != PKG:
        return []
    out = []
    for alias in node.names:
        sub = f"{target}.{alias.name}"
        out.append(sub if sub in known else target)
    return [m for m in out if m in known]


def import_graph() -> dict[str, dict[str, int]]:
    """module -> {imported module: line of the first such import}."""
    mods = modules()
    known = set(mods)
    graph: dict[str, dict[str, int]] = {}
    for name, path in mods.items():
        edges: dict[str, int] = {}
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        for node in ast.walk(tree):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                for target in resolve(name, path.name == "__init__.py", node, known):
                    if target != name:
                        edges.setdefault(target, node.lineno)
        graph[name] = edges
    return graph


def layer(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def find_cycle(graph: dict[str, dict[str, int]]) -> list[str] | None:
    """One import circle as [a, b, ..., a], or None (iterative DFS, colours white/grey/black)."""
    colour = {m: 0 for m in graph}
    for root in sorted(graph):
        if colour[root]:
            continue
        stack = [(root, iter(sorted(graph[root])))]
        path = [root]
        colour[root] = 1
        while stack:
            node, children = stack[-1]
            child = next(children, None)
            if child is None:
                colour[node] = 2
                stack.pop()
                path.pop()
            elif colour[child] == 1:
                return path[path.index(child):] + [child]
            elif colour[child] == 0:
                colour[child] = 1
                stack.append((child, iter(sorted(graph[child]))))
                path.append(child)
    return None


def test_graph_reader_sees_relative_and_absolute_imports():
    graph = import_graph()
    assert "stylegan.ops.filters" in graph["stylegan.ops"]  # from .filters import ...
    assert "stylegan.distributed" in graph["stylegan.training.loop"]  # from .. import distributed as ddp
    assert all(layer(m) in RANK for m in graph), sorted(m for m in graph if layer(m) not in RANK)


def test_the_cycle_finder_finds_a_circle():
    assert find_cycle({"a": {"b": 1}, "b": {"c": 1}, "c": {"a": 1}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b": 1}, "b": {}, "c": {"a": 1, "b": 1}}) is None


def test_no_import_circle():
    cycle = find_cycle(import_graph())
    assert cycle is None, "import circle: " + " -> ".join(cycle)


def test_no_upward_import():
    graph, paths = import_graph(), modules()
    upward = [f"{paths[m].relative_to(SRC)}:{line} imports {t} ({layer(m) or PKG} -> {layer(t)})"
              for m, edges in graph.items() for t, line in edges.items() if RANK[layer(t)] > RANK[layer(m)]]
    assert not upward, "imports pointing up:\n" + "\n".join(upward)


@pytest.mark.parametrize("limit", [500])
def test_modules_stay_small_or_say_why(limit):
    """No module over ~500 lines unless its docstring says why one concern needs the length."""
    long = []
    for name, path in modules().items():
        lines = path.read_text(encoding="utf-8").count("\n")
        doc = ast.get_docstring(ast.parse(path.read_text(encoding="utf-8"))) or ""
        if lines > limit and "over 500 lines" not in doc:
            long.append(f"{path.relative_to(SRC)}: {lines} lines")
    assert not long, "long modules without a reason in their docstring:\n" + "\n".join(long)


def test_data_layers_inside_the_package():
    """stylegan.data: the on-disk format is the bottom, only `resolve` knows builtin: specs, and no
    function-level import of stylegan is left (they existed only to dodge a circle)."""
    graph, paths = import_graph(), modules()
    assert not any(t.startswith(PKG) for t in graph["stylegan.data.format"])
    assert "stylegan.data.builtin" not in graph["stylegan.data.tool"]
    assert {m for m, edges in graph.items() if "stylegan.data.builtin" in edges} == {"stylegan.data.resolve"}
    nested = []
    for name, path in paths.items():
        if not name.startswith("stylegan.data"):
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        top = {id(n) for n in tree.body}
        nested += [f"{path.name}:{n.lineno}" for n in ast.walk(tree)
                   if isinstance(n, (ast.Import, ast.ImportFrom)) and id(n) not in top
                   and resolve(name, path.name == "__init__.py", n, set(paths))]
    assert nested == [], f"function-level stylegan imports in stylegan.data: {nested}"


@pytest.mark.parametrize("module", ["stylegan.io.checkpoint", "stylegan.io.official.unpickler",
                                    "stylegan.io.official.common", "stylegan.io.official.records"])
def test_low_io_modules_do_not_import_readers_or_dispatchers(module):
    """io: the restricted unpickler (the security boundary) and the shared pieces sit below every
    reader; `io/load.py` sniffs and dispatches, and nothing in io imports it back."""
    graph = import_graph()
    high = {"stylegan.io.load", "stylegan.io.official", "stylegan.io.official.pytorch",
            "stylegan.io.official.tf", "stylegan.io.official.tf1", "stylegan.io.rosinality"}
    assert not set(graph[module]) & high, f"{module} imports {sorted(set(graph[module]) & high)}"
    assert [m for m, edges in graph.items() if m.startswith("stylegan.io") and "stylegan.io.load" in edges] == []


DOCS = Path(__file__).resolve().parents[1] / "docs" / "architecture.md"


def documented_orders() -> dict[str, list[set[str]]]:
    """docs/architecture.md's 'Inside each package' table: package -> groups of modules, lowest first."""
    text = DOCS.read_text(encoding="utf-8").split("## Inside each package", 1)[1].split("\n## ", 1)[0]
    orders = {}
    for line in text.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) != 2 or not cells[0].startswith("`") or cells[0] == "package":
            continue
        package = cells[0].strip("`/")
        orders[package] = [{name.strip(" `") for name in group.split(",")} for group in cells[1].split("<")]
    return orders


def order_violations(package: str, groups: list[set[str]], graph: dict[str, dict[str, int]]) -> list[str]:
    """Imports inside `package` against its documented order, and modules the order does not list."""
    prefix = f"{PKG}.{package}."
    rank = {name: i for i, group in enumerate(groups) for name in group}
    unit = lambda m: m[len(prefix):].split(".")[0]  # noqa: E731 - a subpackage counts as one module
    members = {unit(m) for m in graph if m.startswith(prefix)}
    out = [f"{package}/{name} is not in the documented order" for name in sorted(members - set(rank))]
    out += [f"{package}: the documented order names {name}, which does not exist" for name in sorted(set(rank) - members)]
    for m, edges in graph.items():
        if not m.startswith(prefix) or unit(m) not in rank:
            continue
        for t, line in edges.items():
            if t.startswith(prefix) and unit(t) != unit(m) and unit(t) in rank and rank[unit(t)] >= rank[unit(m)]:
                out.append(f"{m}:{line} imports {t} ({unit(m)} may only import modules left of it)")
    return out


def test_order_checker_catches_a_wrong_arrow_and_a_missing_module():
    graph = {"stylegan.p.a": {}, "stylegan.p.b": {"stylegan.p.a": 3}, "stylegan.p.c": {}}
    assert order_violations("p", [{"a"}, {"b"}, {"c"}], graph) == []
    assert len(order_violations("p", [{"b"}, {"a"}, {"c"}], graph)) == 1  # b imports a, which is right of it
    assert len(order_violations("p", [{"a", "b"}, {"c"}], graph)) == 1  # same group: no import
    assert order_violations("p", [{"a"}, {"b"}], graph) == ["p/c is not in the documented order"]


def test_every_package_follows_its_documented_order():
    graph, orders = import_graph(), documented_orders()
    packages = {m.split(".")[1] for m in graph if m.count(".") >= 2}
    assert packages == set(orders), f"packages without a documented order: {sorted(packages - set(orders))}"
    problems = [v for package, groups in orders.items() for v in order_violations(package, groups, graph)]
    assert not problems, "\n".join(problems)
