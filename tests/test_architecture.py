"""The package's shape: layers depend downwards only, no import cycles, family folders.

Layers, lowest first: ``core`` <- ``stream`` <- ``models`` <- ``export`` <- ``bench`` <- ``cli``
(and ``sigstream`` itself, the public API, on top). Every import counts, including the
ones inside functions: a lazy import is still a dependency.
"""

from __future__ import annotations

import ast
from pathlib import Path

import sigstream

ROOT = Path(sigstream.__file__).resolve().parent
LAYERS = ("core", "stream", "models", "export", "bench", "cli")


def _modules() -> dict[str, Path]:
    mods = {}
    for path in ROOT.rglob("*.py"):
        rel = path.relative_to(ROOT).with_suffix("")
        parts = [p for p in rel.parts if p != "__init__"]
        mods[".".join(["sigstream", *parts])] = path
    return mods


def _resolve(name: str, mods: dict[str, Path]) -> str | None:
    while name and name not in mods:
        name = name.rpartition(".")[0]
    return name or None


def import_graph() -> dict[str, set[str]]:
    """module -> the sigstream modules it imports (anywhere in its body)."""
    mods = _modules()
    graph: dict[str, set[str]] = {m: set() for m in mods}
    for mod, path in mods.items():
        for node in ast.walk(ast.parse(path.read_text())):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                targets = [f"{node.module}.{a.name}" for a in node.names]
            for t in targets:
                hit = _resolve(t, mods) if t.startswith("sigstream") else None
                if hit and hit != mod and not mod.startswith(hit + "."):
                    graph[mod].add(hit)
    return graph


def _layer(mod: str) -> int:
    parts = mod.split(".")
    return LAYERS.index(parts[1]) if len(parts) > 1 and parts[1] in LAYERS else len(LAYERS)


def test_layers_depend_downwards_only() -> None:
    graph = import_graph()
    wrong = sorted(f"{m} -> {t}" for m, ts in graph.items() for t in ts
                   if _layer(t) > _layer(m))
    assert not wrong, "imports against core <- stream <- models <- export <- bench <- cli:\n" \
        + "\n".join(wrong)


def test_no_import_cycles() -> None:
    graph = import_graph()
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []

    def visit(v: str) -> None:  # Tarjan's strongly connected components
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                cycles.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    assert not cycles, f"import cycles: {cycles}"


def test_stream_knows_no_models_and_models_no_sockets_or_audio() -> None:
    graph = import_graph()
    bad = sorted(f"{m} -> {t}" for m, ts in graph.items() for t in ts
                 if (m.startswith("sigstream.stream.") and t.startswith("sigstream.models"))
                 or (m.startswith("sigstream.models") and t.startswith(
                     ("sigstream.stream.net", "sigstream.stream.audio"))))
    assert not bad, "\n".join(bad)


def test_every_model_family_is_a_folder_with_its_tests() -> None:
    """A family is ``sigstream/models/<name>/`` declaring ``ENTRIES``, tested in
    ``tests/models/<name>/``."""
    import importlib

    tests = Path(__file__).resolve().parent / "models"
    families = [p.name for p in (ROOT / "models").iterdir()
                if (p / "__init__.py").exists() and p.name not in ("layers", "training")]
    assert {"extractor", "forecaster", "enhancer", "augmentor", "teb"} <= set(families)
    for name in families:
        module = importlib.import_module(f"sigstream.models.{name}")
        assert hasattr(module, "ENTRIES") or name == "teb", name
        assert list((tests / name).glob("test_*.py")), f"no tests/models/{name}/test_*.py"
