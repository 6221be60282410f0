"""The project's import graph from its source (every `import`, function-local ones included) and its cycles.

    python -m tests.support.imports            # prints each cycle (a strongly connected component) and the count

An edge `a -> b` exists when module `a` imports `b` anywhere in its file: at the top, inside a function,
under `if TYPE_CHECKING:` excepted (those never run). `from pkg import name` points at `pkg.name` when that is
a module, else at `pkg` (grimp's rule). Importing a submodule is not counted as importing its package's
`__init__` (every package would be a cycle). A cycle is a strongly connected component of more than one
module: a function-local import inside one still ties the modules into one unit that cannot be understood,
tested or loaded alone.
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterable
from pathlib import Path

__all__ = ["ROOTS", "import_graph", "cycles", "elementary_cycles", "reachable"]

ROOTS = ("coachup", "workers", "web", "celeryconfig")


def _modules(root: Path) -> dict[str, Path]:
    found: dict[str, Path] = {}
    for top in ROOTS:
        single = root / f"{top}.py"
        if single.is_file():
            found[top] = single
        for path in sorted((root / top).rglob("*.py")) if (root / top).is_dir() else []:
            parts = list(path.relative_to(root).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            found[".".join(parts)] = path
    return found


def _type_checking_only(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(tree: ast.AST, module: str, is_package: bool) -> Iterable[tuple[str, list[str]]]:
    """(imported module, names) of every import statement that can run."""
    stack = [tree]
    while stack:
        node = stack.pop()
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and _type_checking_only(child):
                stack.extend(child.orelse)
                continue
            if isinstance(child, ast.Import):
                for alias in child.names:
                    yield alias.name, []
            elif isinstance(child, ast.ImportFrom):
                base = child.module or ""
                if child.level:
                    package = module.split(".") if is_package else module.split(".")[:-1]
                    package = package[: len(package) - (child.level - 1)]
                    base = ".".join([*package, base] if base else package)
                yield base, [a.name for a in child.names]
            stack.append(child)


def import_graph(root: Path) -> dict[str, set[str]]:
    """module -> the project modules it imports."""
    modules = _modules(root)
    graph: dict[str, set[str]] = {m: set() for m in modules}
    for module, path in modules.items():
        tree = ast.parse(path.read_text(), str(path))
        for base, names in _imports(tree, module, path.name == "__init__.py"):
            targets = [f"{base}.{n}" for n in names if f"{base}.{n}" in modules] or [base]
            for target in targets:
                while target and target not in modules:  # `import a.b.c` of a non-module attribute
                    target = target.rpartition(".")[0]
                if target and target != module:
                    graph[module].add(target)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan), each sorted, largest first."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    out: list[list[str]] = []
    counter = 0

    def visit(v: str) -> None:
        nonlocal counter
        index[v] = low[v] = counter
        counter += 1
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    sys.setrecursionlimit(max(10_000, sys.getrecursionlimit()))
    for v in sorted(graph):
        if v not in index:
            visit(v)
    return sorted(out, key=lambda c: (-len(c), c))


def elementary_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every simple cycle (each listed once, from its smallest module); small graphs only."""
    out: list[list[str]] = []
    for component in cycles(graph):
        for i, start in enumerate(component):
            allowed = set(component[i:])

            def walk(v: str, path: list[str], start: str = start, allowed: set[str] = allowed) -> None:
                for w in sorted(graph[v]):
                    if w == start:
                        out.append([*path, start])
                    elif w in allowed and w not in path:
                        walk(w, [*path, w])

            walk(start, [start])
    return out


def reachable(graph: dict[str, set[str]], starts: Iterable[str]) -> set[str]:
    """Every project module that `starts` import, directly or not (the starts included)."""
    seen: set[str] = set()
    todo = [s for s in starts if s in graph]
    while todo:
        v = todo.pop()
        if v not in seen:
            seen.add(v)
            todo.extend(graph[v] - seen)
    return seen


def main(argv: list[str]) -> int:
    root = Path(__file__).resolve().parents[2]
    graph = import_graph(root)
    if argv[:1] == ["--reach"]:  # python -m tests.support.imports --reach workers.tasks.assessments ...
        found = sorted(reachable(graph, argv[1:]))
        print("\n".join(found))
        print(f"{len(found)} modules")
        return 0
    components = cycles(graph)
    for component in components:
        print(" <-> ".join(component))
    for cycle in elementary_cycles(graph):
        print("  " + " -> ".join(cycle))
    print(f"{len(components)} import cycles ({len(elementary_cycles(graph))} elementary)")
    return 1 if components else 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
