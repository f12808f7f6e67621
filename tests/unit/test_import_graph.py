"""No import cycles in lab/, and the pure core imports neither Mininet nor the network side."""
import ast
from pathlib import Path

import networkx as nx

ROOT = Path(__file__).resolve().parents[2]


def module_imports():
    """module -> the lab modules it imports at load time (not inside functions, not under TYPE_CHECKING)."""
    graph = nx.DiGraph()
    for path in sorted((ROOT / "lab").rglob("*.py")):
        name = ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
        graph.add_node(name)
        for node in ast.parse(path.read_text()).body:  # top level only
            if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
                continue
            for sub in ([node] if not isinstance(node, (ast.If, ast.Try)) else ast.walk(node)):
                if isinstance(sub, ast.ImportFrom) and sub.module and sub.module.startswith("lab"):
                    graph.add_edge(name, sub.module)
                elif isinstance(sub, ast.Import):
                    graph.add_edges_from((name, a.name) for a in sub.names if a.name.startswith("lab"))
    return graph


def test_no_import_cycles():
    cycles = list(nx.simple_cycles(module_imports()))
    assert cycles == [], cycles


def test_the_core_is_pure():
    graph = module_imports()
    for path in sorted((ROOT / "lab" / "core").rglob("*.py")):
        module = ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
        if module in graph:
            assert all(dep.startswith("lab.core") for dep in graph.successors(module)), (module, list(graph.successors(module)))
            tree = ast.parse(path.read_text())
            imported = {a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
            imported |= {n.module.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
            assert not imported & {"mininet", "asyncio", "subprocess"}, module
