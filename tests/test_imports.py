"""The kit's modules import each other without cycles (imports inside functions count too)."""
import ast
from pathlib import Path

import kit

KIT = Path(kit.__file__).parent


def module_name(path: Path) -> str:
    """kit/data/cache.py -> kit.data.cache; kit/metrics/__init__.py -> kit.metrics."""
    parts = path.relative_to(KIT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def kit_imports(path: Path, modules: set) -> set:
    """The kit modules a source file imports anywhere in its body (`from kit import x` names module kit.x if any)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{a.name}" for a in node.names)
    return {name for name in found if name in modules}


def import_graph() -> dict:
    """{module: modules it imports} for every module under kit/."""
    files = {module_name(p): p for p in KIT.rglob("*.py")}
    return {name: kit_imports(path, set(files)) - {name} for name, path in files.items()}


def find_cycle(graph: dict):
    """One import cycle as a list of modules (first == last), or None."""
    state = {}

    def visit(node, path):
        state[node] = "open"
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == "open":
                return path[path.index(nxt):] + [nxt]
            if nxt not in state and (cycle := visit(nxt, path + [nxt])):
                return cycle
        state[node] = "done"
        return None

    for start in sorted(graph):
        if start not in state and (cycle := visit(start, [start])):
            return cycle
    return None


def test_cycle_finder_finds_cycles_and_accepts_chains():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": set()}) is None
    assert find_cycle({"a": {"a"}}) == ["a", "a"]


def test_graph_sees_imports_inside_functions(tmp_path):
    source = tmp_path / "m.py"
    source.write_text("def f():\n    from kit.x import y\n    import kit.z\n")
    assert kit_imports(source, {"kit.x", "kit.x.y", "kit.z", "kit.w"}) == {"kit.x", "kit.x.y", "kit.z"}


def test_kit_has_no_import_cycle():
    graph = import_graph()
    assert "kit.train" in graph and "kit.data.cache" in graph["kit.train"]   # the walk sees real edges
    cycle = find_cycle(graph)
    assert cycle is None, "import cycle: " + " -> ".join(cycle)
